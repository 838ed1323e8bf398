"""Frame sources for live inspection, without Qt: an OpenCV camera, a video file, a Basler camera.

Every source implements :class:`~engine.cameras.base.FrameSource` (``open`` / ``grab`` /
``trigger`` / ``close``) and delivers :class:`~engine.cameras.base.Frame` objects with the
camera's own values; :func:`~engine.cameras.base.frame_to_rgb` turns them into the model's input
exactly like an image file (:mod:`engine.images`). ``pylon_source`` imports ``pypylon`` only when
a Basler camera is used.
"""

from .base import TRIGGER_MODES, CameraError, CameraRemoved, Frame, FrameSource, SourceEnded, frame_to_rgb

__all__ = ["TRIGGER_MODES", "CameraError", "CameraRemoved", "Frame", "FrameSource", "SourceEnded", "frame_to_rgb"]
