"""OpenCV frame sources: a camera by device index (``cv2.VideoCapture(index)``), and a video file
standing in for a camera (paced at its own frame rate, at most ``max_fps``).

Trigger modes: ``"free"``, and ``"software"``: the source keeps reading (so the driver's own
buffer never holds an old picture) and :meth:`grab` returns the first frame read after
:meth:`trigger`. OpenCV has no trigger input line: ``"hardware"`` is refused at :meth:`open`.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from .base import CameraError, Frame, FrameSource, SourceEnded

MAX_READ_FAILURES = 10
"""Consecutive failed reads after which a camera counts as lost."""

_FORMATS = {1: "Mono8", 3: "BGR8", 4: "BGRA8"}


class OpenCVSource(FrameSource):
    """A camera (``device``) or a video file (``video_path``) read by OpenCV (module docstring).

    Args:
        device: camera index for ``cv2.VideoCapture``; ignored when ``video_path`` is given.
        video_path: a video file instead of a camera.
        width, height: requested camera resolution in px; 0 = the camera's default.
        loop: restart the video at its end instead of ending.
        max_fps: upper bound on the pace of a video file (frames per second).
        trigger_mode: ``"free"`` or ``"software"``.
    """

    def __init__(self, device: int = 0, video_path: str = "", width: int = 0, height: int = 0,
                 loop: bool = False, max_fps: float = 30.0, trigger_mode: str = "free"):
        self.device, self.video_path = int(device), str(video_path)
        self.width, self.height, self.loop, self.max_fps = int(width), int(height), bool(loop), float(max_fps)
        self.trigger_mode = trigger_mode
        self.reads_between_triggers = True
        self.cap: cv2.VideoCapture | None = None
        self.number = 0
        self._failures = 0
        self._reads = 0
        self._triggered = False

    @property
    def is_video(self) -> bool:
        return bool(self.video_path)

    @property
    def label(self) -> str:
        return f"video {Path(self.video_path).name}" if self.is_video else f"camera {self.device}"

    def open(self) -> str:
        if self.trigger_mode not in ("free", "software"):
            raise CameraError(f"{self.label.capitalize()}: trigger mode {self.trigger_mode!r} needs a camera with a "
                              f"trigger input (Basler); choose 'free' or 'software' for an OpenCV source.")
        if self.is_video:
            path = Path(self.video_path)
            if not path.is_file():
                raise CameraError(f"Video file {path} not found. Choose an existing video file.")
            cap = cv2.VideoCapture(str(path))
            if not cap.isOpened():
                cap.release()
                raise CameraError(f"Video file {path} could not be opened: OpenCV cannot decode it. "
                                  f"Try an MJPG .avi or H.264 .mp4 file.")
            fps = cap.get(cv2.CAP_PROP_FPS) or self.max_fps
            self.period_s = 1.0 / min(max(fps, 1.0), self.max_fps)
        else:
            cap = cv2.VideoCapture(self.device)
            if not cap.isOpened():
                cap.release()
                raise CameraError(f"Camera {self.device} could not be opened. Check that it is connected, "
                                  f"that the device index is right, and that no other program uses it.")
            if self.width and self.height:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        self.cap = cap
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        return f"{self.label} ({w}x{h})"

    def trigger(self) -> None:
        self._triggered = True

    def cancel_trigger(self) -> None:
        self._triggered = False

    def grab(self, timeout_s: float) -> Frame | None:
        """One read (module docstring); None after a failed camera read (retried by the caller) or,
        in software trigger mode, for a frame read before any trigger."""
        try:
            ok, bgr = self.cap.read()
        except cv2.error:  # some drivers raise instead of returning False when the device goes away
            ok, bgr = False, None
        if ok and bgr is not None and (bgr.dtype != np.uint8 or bgr.ndim not in (2, 3) or bgr.size == 0
                                       or (bgr.ndim == 3 and bgr.shape[2] not in _FORMATS)):
            raise CameraError(f"{self.label.capitalize()} delivers {bgr.dtype} frames of shape {bgr.shape}; live "
                              f"needs 8-bit grey or colour frames. Set the camera to an 8-bit pixel format.")
        if not ok or bgr is None:
            if self.is_video:
                if self.loop and self._reads > 0:
                    self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    return None
                raise SourceEnded("end of video")
            self._failures += 1
            if self._failures >= MAX_READ_FAILURES:
                raise CameraError(f"Camera {self.device} stopped delivering frames at {time.strftime('%H:%M:%S')} "
                                  f"(unplugged or switched off?); live stopped. Check the connection, then start "
                                  f"the camera again.")
            time.sleep(0.05)
            return None
        self._failures = 0
        self._reads += 1
        if self.trigger_mode == "software":
            if not self._triggered:
                return None
            self._triggered = False
        self.number += 1
        fmt = _FORMATS[1 if bgr.ndim == 2 else bgr.shape[2]]
        return Frame(array=bgr, significant_bits=8, pixel_format=fmt,
                     timestamp_ms=self.cap.get(cv2.CAP_PROP_POS_MSEC), number=self.number)

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None
