"""The window's live part: start and stop a camera or video file, show its state, log its gaps.

:class:`LiveControls` is mixed into :class:`gui.main_window.MainWindow` (it uses the window's
message bar, status label, recorder, run state and job bookkeeping). Frames and their checks live
in :class:`gui.live_session.LiveSession`; here its events become what the operator and the auditor
see: a warning in the message bar when the source goes stale ("camera image not changing since
HH:MM:SS ..."), a note when it resumes, and an event row in the defect log for each (verdict
``event``, like a threshold change), so a gap in the log is explained by the log itself. A camera
lost during a session is logged the same way. Everything here runs in the GUI thread.

Software trigger: :meth:`LiveControls.trigger_inspection` (the toolbar's Trigger button, the F5
key, an MQTT message) asks the running software-triggered source for one picture. A trigger refused
(no software-triggered source, camera still opening or stopping, model busy) is answered False with
the reason in the message bar; an accepted trigger that gets no verdict (no picture, a blank one,
the source stopped or failed, the model failed, the window closed) is shown in the message bar,
logged as an event row and answered on the line's ``trigger/result`` topic (``ok`` false, its
trigger id, the reason), so every trigger is accounted for in the defect log and on the line.
"""

from __future__ import annotations

from PySide6.QtGui import QKeySequence, QShortcut

from engine.live_guard import GuardEvent
from engine.value_range import ValueRange

from .camera import CameraConfig, save_camera_config
from .defect_log import EVENT, LogEntry
from .live_session import LiveSession


class LiveControls:
    """Live-source methods of the main window (module docstring)."""

    def _connect_live(self) -> None:
        """Create the live session and connect it (called once, while the window starts its threads)."""
        self.live = LiveSession(self)
        self.live.frame_ready.connect(self.frame_requested)
        self.live.status_changed.connect(self._on_live_status)
        self.live.failed.connect(self._on_live_failed)
        self.live.ended.connect(self._on_live_ended)
        self.live.source_event.connect(self._on_live_source_event)
        self.live.trigger_failed.connect(self._on_trigger_failed)
        self.live.camera_state_changed.connect(lambda _state, _detail: self._update_actions())
        self._trigger_key = QShortcut(QKeySequence("F5"), self, lambda: self.trigger_inspection("key"))

    def trigger_inspection(self, origin: str, trigger_id: str | None = None) -> bool:
        """Software trigger: inspect the next picture of the running triggered source. GUI thread only
        (a client thread, e.g. MQTT's, hands the request over by a queued signal).

        Args:
            origin: who triggered (``"button"``, ``"key"``, ``"mqtt"``...), logged and published with the verdict.
            trigger_id: the sender's id of this trigger (an MQTT trigger message's), carried to the
                result; None = a new id.
        Returns:
            True when the trigger was handed to the camera; False (the reason in the message bar) when no
            software-triggered live source is running, the camera is still opening or stopping, or the
            model is busy with :data:`gui.live_session.MAX_WAITING_TRIGGERS` triggers (logged as an event row).
        """
        config = self.live.config
        software = config is not None and config.trigger == "software"
        if self.live.stopping or (self.live_running and software and not self.live.triggered):
            why = "the camera is still stopping" if self.live.stopping else "the camera is still opening"
            self.show_message("warning", f"Trigger ({origin}) ignored: {why}; trigger again once it is "
                                         f"{'off' if self.live.stopping else 'connected'}.")
            return False
        if not self.live.triggered or not software:
            why = ("its trigger mode is hardware (the trigger input line fires it)" if self.live.triggered else
                   "no live source in software trigger mode is running")
            self.show_message("warning", f"Trigger ({origin}) ignored: {why}. Start a camera with trigger mode "
                                         f"'software' (Live…).")
            return False
        busy = self.live.busy_reason()
        if busy is not None:
            message = f"Trigger ({origin}{', ' + trigger_id if trigger_id else ''}) refused: {busy}."
            self.show_message("warning", message)
            self._log_live_event(message)
            return False
        return self.live.trigger(origin, trigger_id) is not None

    def _on_trigger_failed(self, trigger_id: str, message: str) -> None:
        """An accepted trigger got no verdict: log it (also while the window closes: the log is still
        open), tell the operator and answer the line."""
        self._log_live_event(f"trigger {trigger_id}: {message}")
        if self._closing:
            return
        self.show_message("warning", message)
        line = getattr(self, "line", None)  # the MQTT part of the window (gui.line_controls)
        if line is not None:
            line.reply_trigger(trigger_id, False, message)

    @property
    def live_running(self) -> bool:
        """A live source is open (until it has stopped)."""
        return self.live.running

    @property
    def live_stats(self) -> dict[str, int]:
        """Frames of the live session: ``captured``, ``inspected``, ``dropped`` (replaced by a newer
        one while waiting for the model) and ``skipped`` (not a new picture: repeated, blank, or
        unchanged after the stale period); in a trigger mode ``blank`` (triggered pictures refused as
        blank) and ``failed`` (accepted triggers that got no verdict)."""
        return self.live.stats

    @property
    def _live_in_flight(self) -> bool:
        """A live frame is with the model now (its result will still be logged)."""
        return self.live.in_flight

    def start_live(self, config: CameraConfig) -> None:
        """Start a camera or a video file; new pictures are inspected newest-first as the model allows."""
        if self.live_running or not self._can_start("live", need_model=True):
            return
        save_camera_config(self.settings, config)
        self._run_started(config.kind, config.label)
        self.live.start(config, ValueRange.from_json(self.info.get("value_range")))
        self._update_actions()

    def stop_live(self) -> None:
        """Stop the live source; a frame waiting for the model is dropped, a trigger waiting is logged as failed."""
        self.live.stop()

    def _on_live_status(self, text: str) -> None:
        if not self._closing:
            self.status_label.setText(text)

    def _on_live_failed(self, message: str) -> None:
        if self._closing:
            return
        self.show_message("error", message)
        if self.live.guard is not None:  # lost after it opened: the log shows where its rows stop
            self._log_live_event(f"live stopped: {message}")
            self.strip.add_event(f"live stopped: {message}")

    def _on_live_ended(self, _reason: str) -> None:
        if self._closing:
            return
        self._warn(self.run_state.finish())
        self._update_actions()

    def _on_live_source_event(self, event: GuardEvent) -> None:
        """The source went stale (warn; nothing is judged until it changes) or resumed (say so)."""
        if self._closing:
            return
        self.show_message("warning" if event.kind == "stale" else "info", event.message)
        self._log_live_event(event.message, event.at.isoformat(timespec="milliseconds"))
        self.strip.add_event(event.message, event.at)

    def _log_live_event(self, message: str, time: str | None = None) -> None:
        config = self.live.config
        extra = {"time": time} if time else {}
        self.recorder.record_event(LogEntry(
            source=config.kind if config else "camera", file=config.label if config else "", verdict=EVENT,
            station=self.station, recipe=self.info["recipe"] if self.info else "",
            backbone=self.info["backbone"] if self.info else "", message=message, **extra))
