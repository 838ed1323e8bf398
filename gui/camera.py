"""Frame sources for the live path: an OpenCV camera, a video file standing in for one, or a Basler
camera (pypylon); free-running or triggered.

:class:`FrameGrabber` lives in its own QThread and loops over a Qt-free
:class:`engine.cameras.FrameSource` (:func:`make_source` picks it from a :class:`CameraConfig`).
Each frame is converted to the model's input by :func:`engine.cameras.frame_to_rgb` (the rules of
image files, with the model's value range) and goes out with its :class:`engine.live_guard.FrameFacts`
(grey thumbnail, bit-identical to the frame before, the source's own timestamp), worked out here
so that the GUI thread only compares thumbnails:

* free-running: ``frame_captured(frame, number, facts)``; the live session keeps only the newest
  frame and its :class:`engine.live_guard.LiveGuard` decides whether it is a new picture at all;
* triggered (``config.trigger`` ``"software"`` / ``"hardware"``):
  ``triggered_frame_captured(frame, number, facts, trigger)`` with the :class:`Trigger` it answers.
  A software trigger is handed over by :meth:`FrameGrabber.request_trigger` (thread-safe); the
  grabber fires it when the previous one has its picture (or timed out), so each picture belongs to
  exactly one trigger. A hardware trigger is known only when its picture arrives: its
  ``triggered_at`` is the arrival time. A trigger without a picture within
  ``config.trigger_timeout_s`` emits ``trigger_failed(trigger_id, message)`` (and the source forgets
  it, :meth:`engine.cameras.FrameSource.cancel_trigger`); a software-mode picture no trigger waits
  for is dropped. Triggers the loop leaves unanswered when it ends are handed to the owner by
  :meth:`FrameGrabber.take_unanswered`. A video file read between software triggers keeps its own
  pace; a camera waiting for a trigger is asked about once a second whether it is still connected.

``frame`` is ``(H, W, 3) uint8`` RGB. A conversion warning (a Mono12 camera on a recipe of 8-bit
images, clipped values) is logged once per session, not once per frame.

Failures never raise into the window: a camera that cannot be
opened, or stops delivering frames (unplugged), emits ``failed(message)`` with the device and what
to check, then the grabber stops. ``stopped(reason)`` ends every session (after ``failed`` too), so
the window can always tidy up.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import cv2  # noqa: F401 - tests replace cv2.VideoCapture through this module
import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from engine.cameras import TRIGGER_MODES, CameraError, CameraRemoved, FrameSource, SourceEnded, frame_to_rgb
from engine.cameras.opencv_source import MAX_READ_FAILURES, OpenCVSource  # noqa: F401 (re-exported)
from engine.live_guard import STALE_SECONDS, describe_frame
from engine.value_range import STANDALONE, ValueRange

from .locations import as_bool

GRAB_POLL_S = 0.05
"""Longest wait for a frame before the grabber looks at its stop flag and trigger requests again (s)."""
TRIGGER_TIMEOUT_S = 2.0
"""Default wait for the picture of a trigger (s)."""
CONNECTION_CHECK_S = 1.0
"""How often a camera waiting for software triggers is asked whether it is still connected (s)."""


class _FirstOfEachKind(logging.Filter):
    """Passes the first record of each message template logged from one thread (the grabber's):
    a camera repeats a condition at its frame rate, a warning per frame would flood the console."""

    def __init__(self, thread_id: int):
        super().__init__()
        self.thread_id, self.seen = thread_id, set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread_id:
            return True
        first = record.msg not in self.seen
        self.seen.add(record.msg)
        return first


def new_trigger_id() -> str:
    """A new trigger id: 12 hex digits, unique across sessions and stations."""
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class Trigger:
    """One trigger: ``trigger_id``, ``origin`` (``"button"``, ``"key"``, ``"mqtt"``, ``"hardware"``...)
    and ``triggered_at`` (``time.monotonic()`` seconds when it was given; for a hardware trigger, when
    its picture arrived)."""

    trigger_id: str
    origin: str
    triggered_at: float


@dataclass
class CameraConfig:
    """Which frame source to open.

    Attributes:
        kind: ``"camera"`` (OpenCV device index), ``"video"`` (a video file as stand-in camera) or
            ``"basler"`` (pypylon).
        device: camera index for ``cv2.VideoCapture``.
        width, height: requested camera resolution in px; 0 = the camera's default.
        video_path: video file for ``kind="video"``.
        loop: restart the video at its end instead of stopping.
        max_fps: upper bound on the pace of a video file.
        stale_seconds: seconds without a new picture after which verdicts stop
            (:mod:`engine.live_guard`; free-running only).
        trigger: ``"free"`` (free-running), ``"software"`` (a picture per :meth:`LiveSession.trigger`)
            or ``"hardware"`` (Basler: a picture per edge on ``trigger_line``).
        trigger_timeout_s: wait for a trigger's picture (s).
        serial: Basler serial number or user-defined name; ``""`` = the first camera found.
        exposure_us: Basler exposure time (µs); 0 = the camera's own setting.
        gain_db: Basler gain (dB); negative = the camera's own setting.
        pixel_format: Basler pixel format, ``"Mono8"``, ``"Mono10"``, ``"Mono12"`` or ``"RGB8"``.
        trigger_line: Basler hardware trigger input (``"Line1"``...).
        emulator_images: a folder an emulated Basler camera serves images from (pylon emulation only).
    """

    kind: str = "camera"
    device: int = 0
    width: int = 0
    height: int = 0
    video_path: str = ""
    loop: bool = False
    max_fps: float = 30.0
    stale_seconds: float = STALE_SECONDS
    trigger: str = "free"
    trigger_timeout_s: float = TRIGGER_TIMEOUT_S
    serial: str = ""
    exposure_us: float = 0.0
    gain_db: float = -1.0
    pixel_format: str = "Mono8"
    trigger_line: str = "Line1"
    emulator_images: str = ""

    @property
    def label(self) -> str:
        if self.kind == "basler":
            return f"Basler {self.serial}" if self.serial else "Basler camera"
        return f"camera {self.device}" if self.kind == "camera" else f"video {Path(self.video_path).name}"


def make_source(config: CameraConfig) -> FrameSource:
    """The :class:`engine.cameras.FrameSource` ``config`` describes (not opened yet)."""
    if config.kind == "basler":
        from engine.cameras.pylon_source import PylonSource

        return PylonSource(serial=config.serial, exposure_us=config.exposure_us or None,
                           gain_db=None if config.gain_db < 0 else config.gain_db, pixel_format=config.pixel_format,
                           trigger_mode=config.trigger, trigger_line=config.trigger_line,
                           emulator_images=config.emulator_images)
    return OpenCVSource(device=config.device, video_path=config.video_path if config.kind == "video" else "",
                        width=config.width, height=config.height, loop=config.loop, max_fps=config.max_fps,
                        trigger_mode=config.trigger)


def load_camera_config(settings) -> CameraConfig:
    """The camera settings last used (``camera/*`` keys of a ``QSettings``), or the defaults."""
    s = settings
    return CameraConfig(kind=str(s.value("camera/kind", "camera")), device=int(s.value("camera/device", 0)),
                        width=int(s.value("camera/width", 0)), height=int(s.value("camera/height", 0)),
                        video_path=str(s.value("camera/video_path", "")), loop=as_bool(s.value("camera/loop", False)),
                        stale_seconds=_positive(s.value("camera/stale_seconds", STALE_SECONDS)),
                        trigger=_choice(s.value("camera/trigger", "free"), TRIGGER_MODES),
                        trigger_timeout_s=_positive(s.value("camera/trigger_timeout_s", TRIGGER_TIMEOUT_S),
                                                    TRIGGER_TIMEOUT_S),
                        serial=str(s.value("camera/serial", "")),
                        exposure_us=_number(s.value("camera/exposure_us", 0.0), 0.0),
                        gain_db=_number(s.value("camera/gain_db", -1.0), -1.0),
                        pixel_format=str(s.value("camera/pixel_format", "Mono8")),
                        trigger_line=str(s.value("camera/trigger_line", "Line1")),
                        emulator_images=str(s.value("camera/emulator_images", "")))


def _choice(value, allowed: tuple[str, ...]) -> str:
    """A stored choice, or the first allowed one when it is not one of them."""
    return str(value) if str(value) in allowed else allowed[0]


def _number(value, default: float) -> float:
    """A stored finite number, or ``default``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return v if np.isfinite(v) else default


def _positive(value, default: float = STALE_SECONDS) -> float:
    """A stored positive period (s), or ``default`` when it is not a positive number."""
    v = _number(value, default)
    return v if v > 0 else default


def save_camera_config(settings, c: CameraConfig) -> None:
    """Remember ``c`` in the settings (``camera/*`` keys)."""
    for key, value in (("kind", c.kind), ("device", c.device), ("width", c.width), ("height", c.height),
                       ("video_path", c.video_path), ("loop", c.loop), ("stale_seconds", c.stale_seconds),
                       ("trigger", c.trigger), ("trigger_timeout_s", c.trigger_timeout_s), ("serial", c.serial),
                       ("exposure_us", c.exposure_us), ("gain_db", c.gain_db), ("pixel_format", c.pixel_format),
                       ("trigger_line", c.trigger_line), ("emulator_images", c.emulator_images)):
        settings.setValue(f"camera/{key}", value)


class FrameGrabber(QObject):
    """Reads frames from a :class:`CameraConfig` source in its own thread (module docstring)."""

    opened = Signal(str)
    frame_captured = Signal(object, int, object)
    triggered_frame_captured = Signal(object, int, object, object)
    trigger_failed = Signal(str, str)
    failed = Signal(str)
    stopped = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self._stop = threading.Event()
        self._requests: queue.SimpleQueue[Trigger] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._waiting: Trigger | None = None  # the software trigger fired, its picture not yet here
        self._unanswered: list[Trigger] = []  # fired, then the loop ended before its picture came

    def stop(self) -> None:
        """Ask the reading loop to end (thread-safe; called from the GUI thread)."""
        self._stop.set()

    def request_trigger(self, trigger: Trigger) -> None:
        """Hand a software trigger to the reading loop (thread-safe; called from the GUI thread)."""
        self._requests.put(trigger)

    def take_unanswered(self) -> list[Trigger]:
        """The software triggers the last reading loop left without a picture (fired and still
        waiting, or never fired), oldest first; they are forgotten here. Call it once the loop has
        ended (after ``stopped``), so the owner can account for each of them."""
        with self._lock:
            left, self._unanswered = self._unanswered, []
        while True:
            try:
                left.append(self._requests.get_nowait())
            except queue.Empty:
                return left

    @Slot(object, object)
    def run(self, config: CameraConfig, value_range: ValueRange = STANDALONE) -> None:
        """Open the source and read until stopped, failed or (video) finished; frames are converted
        with ``value_range`` (the model's)."""
        self._stop.clear()
        for early in self.take_unanswered():  # normally none: the owner took them when the last loop ended
            self.trigger_failed.emit(early.trigger_id, f"{config.label.capitalize()}: trigger {early.trigger_id} "
                                                       f"({early.origin}) came before the camera was open; "
                                                       f"nothing inspected for it.")
        source = make_source(config)
        try:
            description = source.open()
        except Exception as exc:  # noqa: BLE001 - an unforeseen driver error must still end the session
            source.close()
            self.failed.emit(str(exc) if isinstance(exc, CameraError) else
                             f"{config.label.capitalize()} could not be opened ({type(exc).__name__}: {exc}). Check "
                             f"its settings in the camera dialog, then start it again.")
            self.stopped.emit("failed")
            return
        self.opened.emit(description)
        reason = "stopped"
        once = _FirstOfEachKind(threading.get_ident())
        logging.getLogger("engine.value_range").addFilter(once)
        try:
            reason = self._loop(source, config, value_range)
        finally:
            logging.getLogger("engine.value_range").removeFilter(once)
            with self._lock:
                if self._waiting is not None:
                    self._unanswered.append(self._waiting)
                    self._waiting = None
            source.close()
            self.stopped.emit(reason)

    def _next_request(self, wait_s: float) -> Trigger | None:
        try:
            return self._requests.get(timeout=wait_s) if wait_s > 0 else self._requests.get_nowait()
        except queue.Empty:
            return None

    def _fire(self, source: FrameSource, request: Trigger) -> str | None:
        """Fire ``request`` on ``source``; None when fired, "failed" when the camera is gone (the
        session ends), "" when only this trigger was refused (``trigger_failed`` says why)."""
        with self._lock:
            self._waiting = request
        try:
            source.trigger()
        except CameraError as exc:
            with self._lock:
                self._waiting = None
            self.trigger_failed.emit(request.trigger_id, str(exc))
            if isinstance(exc, CameraRemoved):
                self.failed.emit(str(exc))
                return "failed"
            return ""
        return None

    def _loop(self, source: FrameSource, config: CameraConfig, value_range: ValueRange) -> str:
        mode = source.trigger_mode
        # a video read between software triggers is paced like a delivered frame (else it races to its end)
        pace_every_read = mode == "software" and source.reads_between_triggers
        number, next_due, previous = 0, time.monotonic(), None
        deadline, next_check = 0.0, time.monotonic() + CONNECTION_CHECK_S
        while not self._stop.is_set():
            if mode == "software" and self._waiting is None:
                # a source that must keep reading between triggers (OpenCV) only looks; one that delivers
                # nothing untriggered (Basler) waits here, so a trigger fires without delay
                request = self._next_request(0 if source.reads_between_triggers else GRAB_POLL_S)
                if request is None and not source.reads_between_triggers:
                    if time.monotonic() >= next_check:  # idle: notice an unplugged camera before the next trigger
                        next_check = time.monotonic() + CONNECTION_CHECK_S
                        try:
                            source.check_connected()
                        except CameraError as exc:
                            self.failed.emit(str(exc))
                            return "failed"
                    continue
                if request is not None:
                    outcome = self._fire(source, request)
                    if outcome is not None:
                        if outcome:
                            return outcome
                        continue
                    deadline = time.monotonic() + config.trigger_timeout_s
            try:
                frame = source.grab(GRAB_POLL_S)
            except SourceEnded:
                return "end of video"
            except CameraError as exc:
                self.failed.emit(str(exc))
                return "failed"
            if frame is None:
                waiting = self._waiting
                if waiting is not None and time.monotonic() > deadline:
                    source.cancel_trigger()  # a picture coming later is not this trigger's
                    with self._lock:
                        self._waiting = None
                    self.trigger_failed.emit(waiting.trigger_id, (
                        f"{source.label.capitalize()}: no picture within {config.trigger_timeout_s:g} s of trigger "
                        f"{waiting.trigger_id} ({waiting.origin}); nothing inspected for it. Check the exposure time "
                        f"and the camera's trigger settings."))
                if pace_every_read:
                    next_due = self._wait_turn(source.period_s, next_due)
                continue
            trigger = None
            if mode != "free":
                with self._lock:
                    trigger, self._waiting = self._waiting, None
                if mode == "hardware":
                    trigger = Trigger(new_trigger_id(), "hardware", time.monotonic())
                if trigger is None:  # a software-mode picture nobody waits for (a late one) is dropped
                    next_due = self._wait_turn(source.period_s, next_due)
                    continue
            try:
                rgb = frame_to_rgb(frame, value_range, f"{source.label} #{frame.number}")
            except CameraError as exc:
                self.failed.emit(str(exc))
                return "failed"
            number += 1
            facts = describe_frame(rgb, previous, frame.timestamp_ms)
            previous = rgb
            if trigger is None:
                self.frame_captured.emit(rgb, number, facts)
            else:
                self.triggered_frame_captured.emit(rgb, number, facts, trigger)
            next_due = self._wait_turn(source.period_s, next_due)
        return "stopped"

    def _wait_turn(self, period_s: float, next_due: float) -> float:
        """Keep a source's own pace (``period_s``; 0 = none): wait until the next read is due; the new due time."""
        if not period_s:
            return next_due
        next_due += period_s
        delay = next_due - time.monotonic()
        if delay > 0:
            self._stop.wait(delay)
            return next_due
        return time.monotonic()
