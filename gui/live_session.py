"""The live path: a camera or video file feeding the model the newest frame, never a queue.

:class:`LiveSession` owns the :class:`gui.camera.FrameGrabber` and its QThread. It holds at most one
frame in flight to the model and one pending frame; a new frame replaces the pending one (the
replaced frame is counted as dropped), so the model always gets the newest frame and never queues
behind itself. The window connects ``frame_ready`` to the worker and calls :meth:`result_arrived`
when a live result came back (or :meth:`frame_failed` when the worker failed on a frame).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal

from .camera import CameraConfig, FrameGrabber


class LiveSession(QObject):
    """Camera / video frames to the model, newest first (module docstring).

    Signals:
        frame_ready(frame, source, name): a ``(H, W, 3) uint8`` RGB frame for the model.
        status_changed(str): a line for the status bar.
        failed(str): the source could not be opened or was lost (the message says what to check).
        ended(str reason): the source stopped; :attr:`running` is False from now on.
    """

    frame_ready = Signal(object, str, str)
    status_changed = Signal(str)
    failed = Signal(str)
    ended = Signal(str)
    _run_requested = Signal(object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.running = False
        self.config: CameraConfig | None = None
        self.in_flight = False
        self.pending: tuple[np.ndarray, str, str] | None = None
        self.stats = {"captured": 0, "inspected": 0, "dropped": 0}
        self._closing = False
        self.thread = QThread(self)
        self.thread.setObjectName("FrameGrabber")
        self.grabber = FrameGrabber()
        self.grabber.moveToThread(self.thread)
        self._run_requested.connect(self.grabber.run)
        self.grabber.opened.connect(self._on_opened)
        self.grabber.frame_captured.connect(self._on_frame)
        self.grabber.failed.connect(self._on_failed)
        self.grabber.stopped.connect(self._on_stopped)
        self.thread.finished.connect(self.grabber.deleteLater)
        self.thread.start()

    def start(self, config: CameraConfig) -> None:
        """Open ``config``'s source and start sending frames."""
        self.config = config
        self.running = True
        self.pending = None
        self.stats = {"captured": 0, "inspected": 0, "dropped": 0}
        self.status_changed.emit(f"Opening {config.label}…")
        self._run_requested.emit(config)

    def stop(self) -> None:
        """Stop the source; a frame waiting for the model is dropped."""
        if not self.running:
            return
        self.grabber.stop()
        if self.pending is not None:
            self.pending = None
            self.stats["dropped"] += 1

    def result_arrived(self) -> None:
        """The model answered the frame in flight: count it and send the newest pending one."""
        self.in_flight = False
        self.stats["inspected"] += 1
        self._send_pending()
        self._report()

    def frame_failed(self) -> None:
        """The model failed on the frame in flight: stop the source."""
        self.in_flight = False
        self.stop()

    def shutdown(self, wait_ms: int) -> bool:
        """Stop the source and the thread (True if the thread ended within ``wait_ms``)."""
        self._closing = True
        self.grabber.stop()
        self.thread.quit()
        return self.thread.wait(wait_ms)

    # ------------------------------------------------------------------ private
    def _on_opened(self, description: str) -> None:
        if not self._closing:
            self.status_changed.emit(f"Live: {description}")

    def _on_failed(self, message: str) -> None:
        if not self._closing:
            self.failed.emit(message)

    def _on_frame(self, frame: np.ndarray, number: int) -> None:
        if self._closing or not self.running or self.config is None:
            return
        self.stats["captured"] += 1
        if self.pending is not None:
            self.stats["dropped"] += 1
        self.pending = (frame, self.config.kind, f"{self.config.label} #{number}")
        self._send_pending()

    def _send_pending(self) -> None:
        if self.in_flight or self.pending is None or self._closing:
            return
        frame, source, name = self.pending
        self.pending = None
        self.in_flight = True
        self.frame_ready.emit(frame, source, name)

    def _on_stopped(self, reason: str) -> None:
        if self._closing:
            return
        self.running = False
        self._report(f" — {reason}")
        self.ended.emit(reason)

    def _report(self, suffix: str = "") -> None:
        if self.config is None:
            return
        s = self.stats
        self.status_changed.emit(f"Live {self.config.label}: {s['captured']} frames, {s['inspected']} inspected, "
                                 f"{s['dropped']} dropped (newest frame first){suffix}")
