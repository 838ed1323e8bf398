"""The live path: a camera or video file feeding the model the newest frame, never a queue.

:class:`LiveSession` owns the :class:`gui.camera.FrameGrabber` and its QThread. It holds at most one
frame in flight to the model and one pending frame; a new frame replaces the pending one (the
replaced frame is counted as dropped), so the model always gets the newest frame and never queues
behind itself. The window connects ``frame_ready`` to the worker and calls :meth:`result_arrived`
when a live result came back (or :meth:`frame_failed` when the worker failed on a frame).

Only new pictures go to the model: each captured frame is judged by an
:class:`engine.live_guard.LiveGuard` first. Repeats of the same picture and blank frames are never
inspected, near-identical ones only during the stale period (``config.stale_seconds``); after it
``source_event`` says the source went stale (and later that it resumed), and nothing is inspected
or logged until the picture changes. A timer checks the guard twice a second, so a source that
delivers no frames at all is reported too. Frames not inspected are counted as ``skipped``.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QThread, QTimer, Signal

from engine.live_guard import FrameFacts, GuardEvent, LiveGuard

from .camera import CameraConfig, FrameGrabber

GUARD_TICK_MS = 500
"""How often the guard is asked whether the source went stale while no frame arrives (ms)."""


class LiveSession(QObject):
    """Camera / video frames to the model, newest first (module docstring).

    Signals:
        frame_ready(frame, source, name): a ``(H, W, 3) uint8`` RGB frame for the model.
        status_changed(str): a line for the status bar.
        failed(str): the source could not be opened or was lost (the message says what to check).
        ended(str reason): the source stopped; :attr:`running` is False from now on.
        source_event(GuardEvent): the source went stale or resumed (:mod:`engine.live_guard`).
    """

    frame_ready = Signal(object, str, str)
    status_changed = Signal(str)
    failed = Signal(str)
    ended = Signal(str)
    source_event = Signal(object)
    _run_requested = Signal(object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.running = False
        self.config: CameraConfig | None = None
        self.in_flight = False
        self.pending: tuple[np.ndarray, str, str] | None = None
        self.stats = {"captured": 0, "inspected": 0, "dropped": 0, "skipped": 0}
        self.guard: LiveGuard | None = None
        self._closing = False
        self._tick = QTimer(self)
        self._tick.setInterval(GUARD_TICK_MS)
        self._tick.timeout.connect(self._check_guard)
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
        self.stats = {"captured": 0, "inspected": 0, "dropped": 0, "skipped": 0}
        self.guard = None  # made when the source opened: opening a camera may take seconds
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
        if self._closing or self.config is None:
            return
        self.guard = LiveGuard(self.config.label, self.config.stale_seconds)
        self._tick.start()
        self.status_changed.emit(f"Live: {description}")

    def _on_failed(self, message: str) -> None:
        if not self._closing:
            self.failed.emit(message)

    @property
    def stale(self) -> bool:
        """The source delivers no new picture (verdicts paused)."""
        return self.guard is not None and self.guard.stale

    def _on_frame(self, frame: np.ndarray, number: int, facts: FrameFacts) -> None:
        if self._closing or not self.running or self.config is None or self.guard is None:
            return
        self.stats["captured"] += 1
        decision = self.guard.check(facts)
        if decision.event is not None:
            self._announce(decision.event)
        if not decision.inspect:
            self.stats["skipped"] += 1
            return
        if self.pending is not None:
            self.stats["dropped"] += 1
        self.pending = (frame, self.config.kind, f"{self.config.label} #{number}")
        self._send_pending()

    def _check_guard(self) -> None:
        if self.running and not self._closing and self.guard is not None:
            event = self.guard.tick()
            if event is not None:
                self._announce(event)
            elif self.stale:  # no results come to update the counts: the status line says the feed is alive
                self._report()

    def _announce(self, event: GuardEvent) -> None:
        if event.kind == "stale" and self.pending is not None:  # a copy of the stale picture: never judged
            self.pending = None
            self.stats["dropped"] += 1
        self.source_event.emit(event)
        self._report()

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
        self._tick.stop()
        self._report(f" — {reason}")
        self.ended.emit(reason)

    def _report(self, suffix: str = "") -> None:
        if self.config is None:
            return
        s = self.stats
        skipped = ""
        if s["skipped"] and self.guard is not None:
            c = self.guard.counts
            skipped = (f", {s['skipped']} not inspected ({c['repeat']} repeated, {c['blank']} blank, "
                       f"{c['still']} unchanged)")
        state = ", STALE: verdicts paused" if self.stale else ""
        self.status_changed.emit(f"Live {self.config.label}: {s['captured']} frames, {s['inspected']} inspected, "
                                 f"{s['dropped']} dropped (newest frame first){skipped}{state}{suffix}")
