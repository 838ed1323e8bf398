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

Triggered sources (``config.trigger`` ``"software"`` / ``"hardware"``) are different: every
triggered picture is inspected, in trigger order (a queue, never replaced by a newer one), and the
guard's repeat / still / stale rules do not apply (a station may rest between parts for hours);
only a blank picture (black, saturated, uniform) is refused, with ``trigger_failed``. :meth:`trigger`
hands a software trigger to the grabber from the GUI thread; at most :data:`MAX_WAITING_TRIGGERS`
triggers wait for their verdict at once (:meth:`busy_reason` says why a further one is refused).
Every accepted trigger ends in exactly one verdict or one ``trigger_failed``: a trigger still waiting
for its picture or for the model when the source stops, fails or the window closes, and the
trigger of a picture the model failed on, get ``trigger_failed`` too. ``frame_ready`` carries the
:class:`gui.camera.Trigger` of a triggered frame (None when free-running), so the result can say
which trigger it answers and the time from trigger to verdict.

``camera_state_changed(state, detail)`` follows the source: ``"connecting"`` (opening),
``"connected"``, ``"disconnected"`` (could not open, or lost: ``detail`` is the message) and
``"off"`` (stopped or ended).
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np
from PySide6.QtCore import QCoreApplication, QObject, QThread, QTimer, Signal

from engine.live_guard import FrameFacts, GuardEvent, LiveGuard, blank_kind
from engine.value_range import STANDALONE, ValueRange

from .camera import CameraConfig, FrameGrabber, Trigger, new_trigger_id

GUARD_TICK_MS = 500
"""How often the guard is asked whether the source went stale while no frame arrives (ms)."""
MAX_WAITING_TRIGGERS = 8
"""Triggers that may wait for their verdict at once; a further software trigger is refused, a further
hardware-triggered picture is not inspected (both reported): memory and latency stay bounded."""

_NEW_STATS = {"captured": 0, "inspected": 0, "dropped": 0, "skipped": 0, "blank": 0, "failed": 0}


class LiveSession(QObject):
    """Camera / video frames to the model, newest first (module docstring).

    Signals:
        frame_ready(frame, source, name, trigger): a ``(H, W, 3) uint8`` RGB frame for the model, with
            its :class:`gui.camera.Trigger` (None when free-running).
        status_changed(str): a line for the status bar.
        failed(str): the source could not be opened or was lost (the message says what to check).
        ended(str reason): the source stopped; :attr:`running` is False from now on.
        source_event(GuardEvent): the source went stale or resumed (:mod:`engine.live_guard`).
        trigger_failed(trigger_id, message): a trigger got no picture, or a blank one (nothing inspected).
        camera_state_changed(state, detail): ``"connecting"``, ``"connected"``, ``"disconnected"``, ``"off"``.
    """

    frame_ready = Signal(object, str, str, object)
    status_changed = Signal(str)
    failed = Signal(str)
    ended = Signal(str)
    source_event = Signal(object)
    trigger_failed = Signal(str, str)
    camera_state_changed = Signal(str, str)
    _run_requested = Signal(object, object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.running = False
        self.config: CameraConfig | None = None
        self.in_flight = False
        self.pending: tuple[np.ndarray, str, str] | None = None
        self.queued: deque[tuple[np.ndarray, str, str, Trigger]] = deque()  # triggered frames, in order
        self.camera_state = "off"
        self._opened = False
        self._stopping = False
        self._unanswered: dict[str, Trigger] = {}  # accepted software triggers without a verdict yet
        self._in_flight_trigger: Trigger | None = None
        self.stats = dict(_NEW_STATS)
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
        self.grabber.triggered_frame_captured.connect(self._on_triggered_frame)
        self.grabber.trigger_failed.connect(self._on_trigger_failed)
        self.grabber.failed.connect(self._on_failed)
        self.grabber.stopped.connect(self._on_stopped)
        self.thread.finished.connect(self.grabber.deleteLater)
        self.thread.start()

    def start(self, config: CameraConfig, value_range: ValueRange = STANDALONE) -> None:
        """Open ``config``'s source and start sending frames, converted with ``value_range`` (the model's)."""
        self.config = config
        self.running = True
        self._opened = False
        self._stopping = False
        self.pending = None
        self.queued.clear()
        self._unanswered.clear()
        self.stats = dict(_NEW_STATS)
        self.guard = None  # made when the source opened: opening a camera may take seconds
        self.status_changed.emit(f"Opening {config.label}…")
        self._set_state("connecting", f"opening {config.label}")
        self._run_requested.emit(config, value_range)

    @property
    def triggered(self) -> bool:
        """A source in a trigger mode is open (software or hardware) and not stopping."""
        return (self.running and self._opened and not self._stopping and self.config is not None
                and self.config.trigger != "free")

    @property
    def stopping(self) -> bool:
        """:meth:`stop` was called and the source has not ended yet."""
        return self.running and self._stopping

    @property
    def waiting_triggers(self) -> int:
        """Triggers accepted and not yet answered (a verdict or ``trigger_failed``)."""
        return len(self._unanswered) + sum(1 for q in self.queued if q[3].trigger_id not in self._unanswered)

    def busy_reason(self) -> str | None:
        """Why a further software trigger would be refused now (the model is behind), or None."""
        n = self.waiting_triggers
        if n >= MAX_WAITING_TRIGGERS:
            return f"model busy: {n} triggers waiting for their verdict (at most {MAX_WAITING_TRIGGERS})"
        return None

    def trigger(self, origin: str, trigger_id: str | None = None) -> str | None:
        """Ask the running software-triggered source for one picture to inspect.

        Args:
            origin: who triggered (``"button"``, ``"key"``, ``"mqtt"``...), carried to the result.
            trigger_id: the sender's id for this trigger (e.g. the line controller's); None = a new one.
        Returns:
            the trigger id, or None when no software-triggered source is open, or when
            :meth:`busy_reason` refuses it (nothing happens).
        """
        if not self.triggered or self.config.trigger != "software" or self._closing or self.busy_reason():
            return None
        trigger = Trigger(trigger_id or new_trigger_id(), origin, time.monotonic())
        self._unanswered[trigger.trigger_id] = trigger
        self.grabber.request_trigger(trigger)
        return trigger.trigger_id

    def stop(self) -> None:
        """Stop the source; a frame waiting for the model is dropped, a trigger waiting for its picture
        or for the model gets ``trigger_failed`` (the frame in flight still gets its verdict)."""
        if not self.running:
            return
        self._stopping = True
        self.grabber.stop()
        if self.pending is not None:
            self.pending = None
            self.stats["dropped"] += 1
        self._fail_queued("live stopped")

    def result_arrived(self) -> None:
        """The model answered the frame in flight: count it and send the newest pending one."""
        self.in_flight = False
        if self._in_flight_trigger is not None:
            self._unanswered.pop(self._in_flight_trigger.trigger_id, None)
            self._in_flight_trigger = None
        self.stats["inspected"] += 1
        self._send_pending()
        self._report()

    def frame_failed(self, message: str = "") -> None:
        """The model failed on the frame in flight (``message``: its error): its trigger, if any, gets
        ``trigger_failed``; the source stops."""
        self.in_flight = False
        trigger, self._in_flight_trigger = self._in_flight_trigger, None
        if trigger is not None:
            self._fail(trigger, f"the model failed on its picture: {message or 'see the message above'}")
        self.stop()

    def shutdown(self, wait_ms: int) -> bool:
        """Stop the source and the thread (True if the thread ended within ``wait_ms``). Every trigger
        still without a verdict (waiting for its picture, queued, or with the model: the window
        no longer takes results) gets ``trigger_failed`` here, before this returns."""
        if self._closing:
            return self.thread.wait(wait_ms)
        self._stopping = True
        self.grabber.stop()
        self.thread.quit()
        ended = self.thread.wait(wait_ms)
        QCoreApplication.sendPostedEvents(self)  # pictures and failures the grabber sent before it ended
        self._closing = True
        why = "the window was closed"
        if self._in_flight_trigger is not None:
            self._fail(self._in_flight_trigger, why)
            self._in_flight_trigger = None
        self._fail_queued(why)
        if ended:
            for trigger in self.grabber.take_unanswered():
                self._fail(trigger, why)
        for trigger in list(self._unanswered.values()):  # fired, never came back (a grabber that did not end)
            self._fail(trigger, why)
        return ended

    # ------------------------------------------------------------------ private
    def _on_opened(self, description: str) -> None:
        if self._closing or self.config is None:
            return
        self._opened = True
        self.guard = LiveGuard(self.config.label, self.config.stale_seconds)
        if self.config.trigger == "free":  # triggered sources are silent between parts: no stale period
            self._tick.start()
        self.status_changed.emit(f"Live: {description}")
        self._set_state("connected", description)

    def _on_failed(self, message: str) -> None:
        if not self._closing:
            self._set_state("disconnected", message)
            self.failed.emit(message)

    def _set_state(self, state: str, detail: str) -> None:
        self.camera_state = state
        self.camera_state_changed.emit(state, detail)

    def _on_triggered_frame(self, frame: np.ndarray, number: int, facts: FrameFacts, trigger: Trigger) -> None:
        if self._closing or not self.running or self.config is None:
            return
        self.stats["captured"] += 1
        if self._stopping:
            self._fail(trigger, "live stopped")
            return
        blank = blank_kind(facts.thumb)
        if blank:
            self.stats["blank"] += 1
            self._fail(trigger, f"its picture is {blank}; not inspected. Check the light, the lens and the exposure "
                                f"time", prefixed=True)
            self._report()
            return
        if trigger.trigger_id not in self._unanswered and self.waiting_triggers >= MAX_WAITING_TRIGGERS:
            self._fail(trigger, f"model busy: {self.waiting_triggers} triggers waiting for their verdict; its picture "
                                f"was not inspected. Trigger less often, or use a faster recipe", prefixed=True)
            self._report()
            return
        self.queued.append((frame, self.config.kind, f"{self.config.label} #{number}", trigger))
        self._send_pending()

    def _on_trigger_failed(self, trigger_id: str, message: str) -> None:
        if not self._closing and self.running:
            self._answer_failed(trigger_id, message)

    def _answer_failed(self, trigger_id: str, message: str) -> None:
        """The trigger ``trigger_id`` gets no verdict: say so once (``trigger_failed``) and forget it."""
        self._unanswered.pop(trigger_id, None)
        self.stats["failed"] += 1
        self.trigger_failed.emit(trigger_id, message)

    def _fail(self, trigger: Trigger, why: str, prefixed: bool = False) -> None:
        """``trigger`` gets no verdict because of ``why`` (:meth:`_answer_failed` with the message)."""
        label = self.config.label.capitalize() if self.config is not None else "Live"
        if prefixed:
            message = f"{label}: trigger {trigger.trigger_id} ({trigger.origin}): {why}."
        else:
            message = (f"{label}: trigger {trigger.trigger_id} ({trigger.origin}) got no verdict: {why}; nothing "
                       f"inspected for it.")
        self._answer_failed(trigger.trigger_id, message)

    def _fail_queued(self, why: str) -> None:
        while self.queued:
            self._fail(self.queued.popleft()[3], why)

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
        if self.in_flight or self._closing:
            return
        if self.queued:
            frame, source, name, trigger = self.queued.popleft()
            self._in_flight_trigger = trigger
        elif self.pending is not None:
            (frame, source, name), trigger = self.pending, None
            self.pending = None
        else:
            return
        self.in_flight = True
        self.frame_ready.emit(frame, source, name, trigger)

    def _on_stopped(self, reason: str) -> None:
        if self._closing:
            return
        for trigger in self.grabber.take_unanswered():  # fired or handed over, no picture before the end
            self._fail(trigger, f"live {reason} before its picture came")
        self.running = False
        self._opened = False
        self._stopping = False
        self._tick.stop()
        if self.camera_state != "disconnected":
            self._set_state("off", reason)
        self._report(f" — {reason}")
        self.ended.emit(reason)

    def _report(self, suffix: str = "") -> None:
        if self.config is None:
            return
        s = self.stats
        if self.config.trigger != "free":  # every picture is a trigger's: nothing is replaced or repeated
            self.status_changed.emit(
                f"Live {self.config.label} ({self.config.trigger} trigger): {s['captured']} pictures, "
                f"{s['inspected']} inspected, {s['blank']} blank (not inspected), {s['failed']} trigger(s) without "
                f"a verdict{suffix}")
            return
        skipped = ""
        if s["skipped"] and self.guard is not None:
            c = self.guard.counts
            skipped = (f", {s['skipped']} not inspected ({c['repeat']} repeated, {c['blank']} blank, "
                       f"{c['still']} unchanged)")
        state = ", STALE: verdicts paused" if self.stale else ""
        self.status_changed.emit(f"Live {self.config.label}: {s['captured']} frames, {s['inspected']} inspected, "
                                 f"{s['dropped']} dropped (newest frame first){skipped}{state}{suffix}")
