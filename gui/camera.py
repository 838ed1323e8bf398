"""Frame sources for the live path: an OpenCV camera, or a video file standing in for one.

:class:`FrameGrabber` lives in its own QThread and reads frames as fast as the source delivers them
(a video file is paced at its own frame rate). Every frame goes out as ``frame_captured(frame,
number, facts)`` with ``frame`` ``(H, W, 3) uint8`` RGB and ``facts`` its
:class:`engine.live_guard.FrameFacts` (grey thumbnail, bit-identical to the frame before, the
source's own timestamp), worked out here so that the GUI thread only compares thumbnails. The live
session keeps only the newest frame and hands it to the model when the model is free, so
inspection never queues behind a busy model; its :class:`engine.live_guard.LiveGuard` decides
whether a frame is a new picture at all (see :mod:`gui.live_session`).

Failures never raise into the window: a camera that cannot be opened, or stops delivering frames
(unplugged), emits ``failed(message)`` with the device and what to check, then the grabber stops.
``stopped(reason)`` ends every session (after ``failed`` too), so the window can always tidy up.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from engine.live_guard import STALE_SECONDS, describe_frame

from .locations import as_bool

MAX_READ_FAILURES = 10
"""Consecutive failed reads after which a camera counts as lost."""


@dataclass
class CameraConfig:
    """Which frame source to open.

    Attributes:
        kind: ``"camera"`` (OpenCV device index) or ``"video"`` (a video file as stand-in camera).
        device: camera index for ``cv2.VideoCapture``.
        width, height: requested camera resolution in px; 0 = the camera's default.
        video_path: video file for ``kind="video"``.
        loop: restart the video at its end instead of stopping.
        max_fps: upper bound on the pace of a video file.
        stale_seconds: seconds without a new picture after which verdicts stop
            (:mod:`engine.live_guard`).
    """

    kind: str = "camera"
    device: int = 0
    width: int = 0
    height: int = 0
    video_path: str = ""
    loop: bool = False
    max_fps: float = 30.0
    stale_seconds: float = STALE_SECONDS

    @property
    def label(self) -> str:
        return f"camera {self.device}" if self.kind == "camera" else f"video {Path(self.video_path).name}"


def load_camera_config(settings) -> CameraConfig:
    """The camera settings last used (``camera/*`` keys of a ``QSettings``), or the defaults."""
    s = settings
    return CameraConfig(kind=str(s.value("camera/kind", "camera")), device=int(s.value("camera/device", 0)),
                        width=int(s.value("camera/width", 0)), height=int(s.value("camera/height", 0)),
                        video_path=str(s.value("camera/video_path", "")), loop=as_bool(s.value("camera/loop", False)),
                        stale_seconds=_positive(s.value("camera/stale_seconds", STALE_SECONDS)))


def _positive(value) -> float:
    """A stored stale period, or the default when it is not a positive number."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return STALE_SECONDS
    return v if np.isfinite(v) and v > 0 else STALE_SECONDS


def save_camera_config(settings, c: CameraConfig) -> None:
    """Remember ``c`` in the settings (``camera/*`` keys)."""
    for key, value in (("kind", c.kind), ("device", c.device), ("width", c.width), ("height", c.height),
                       ("video_path", c.video_path), ("loop", c.loop), ("stale_seconds", c.stale_seconds)):
        settings.setValue(f"camera/{key}", value)


class FrameGrabber(QObject):
    """Reads frames from a :class:`CameraConfig` source in its own thread (module docstring)."""

    opened = Signal(str)
    frame_captured = Signal(object, int, object)
    failed = Signal(str)
    stopped = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the reading loop to end (thread-safe; called from the GUI thread)."""
        self._stop.set()

    @Slot(object)
    def run(self, config: CameraConfig) -> None:
        """Open the source and read until stopped, failed or (video) finished."""
        self._stop.clear()
        cap = self._open(config)
        if cap is None:
            self.stopped.emit("failed")
            return
        reason = "stopped"
        try:
            reason = self._loop(cap, config)
        finally:
            cap.release()
            self.stopped.emit(reason)

    def _open(self, config: CameraConfig) -> cv2.VideoCapture | None:
        if config.kind == "video":
            path = Path(config.video_path)
            if not path.is_file():
                self.failed.emit(f"Video file {path} not found. Choose an existing video file.")
                return None
            cap = cv2.VideoCapture(str(path))
            if not cap.isOpened():
                self.failed.emit(f"Video file {path} could not be opened: OpenCV cannot decode it. "
                                 f"Try an MJPG .avi or H.264 .mp4 file.")
                return None
        else:
            cap = cv2.VideoCapture(int(config.device))
            if not cap.isOpened():
                cap.release()
                self.failed.emit(f"Camera {config.device} could not be opened. Check that it is connected, "
                                 f"that the device index is right, and that no other program uses it.")
                return None
            if config.width and config.height:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, int(config.width))
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, int(config.height))
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.opened.emit(f"{config.label} ({w}x{h})")
        return cap

    def _loop(self, cap: cv2.VideoCapture, config: CameraConfig) -> str:
        period = 0.0
        if config.kind == "video":
            fps = cap.get(cv2.CAP_PROP_FPS) or config.max_fps
            period = 1.0 / min(max(fps, 1.0), config.max_fps)
        number, failures, next_due, previous = 0, 0, time.monotonic(), None
        while not self._stop.is_set():
            try:
                ok, bgr = cap.read()
            except cv2.error:  # some drivers raise instead of returning False when the device goes away
                ok, bgr = False, None
            if ok and bgr is not None and (bgr.dtype != np.uint8 or bgr.ndim not in (2, 3) or bgr.size == 0):
                self.failed.emit(f"{config.label.capitalize()} delivers {bgr.dtype} frames of shape {bgr.shape}; "
                                 f"live needs 8-bit grey or colour frames. Set the camera to an 8-bit pixel format.")
                return "failed"
            if not ok or bgr is None:
                if config.kind == "video":
                    if config.loop and number > 0:
                        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                        continue
                    return "end of video"
                failures += 1
                if failures >= MAX_READ_FAILURES:
                    self.failed.emit(f"Camera {config.device} stopped delivering frames at {time.strftime('%H:%M:%S')} "
                                     f"(unplugged or switched off?); live stopped. Check the connection, then start "
                                     f"the camera again.")
                    return "failed"
                time.sleep(0.05)
                continue
            failures = 0
            number += 1
            code = (cv2.COLOR_GRAY2RGB if bgr.ndim == 2 or bgr.shape[2] == 1 else
                    cv2.COLOR_BGRA2RGB if bgr.shape[2] == 4 else cv2.COLOR_BGR2RGB)
            rgb = np.ascontiguousarray(cv2.cvtColor(bgr, code))
            facts = describe_frame(rgb, previous, cap.get(cv2.CAP_PROP_POS_MSEC))
            previous = rgb
            self.frame_captured.emit(rgb, number, facts)
            if period:
                next_due += period
                delay = next_due - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_due = time.monotonic()
        return "stopped"
