"""Frame grabber: clear messages when a camera cannot open or stops delivering frames; video end."""

from __future__ import annotations

import cv2
import numpy as np

from gui import camera
from gui.camera import CameraConfig, FrameGrabber


class Recorder:
    def __init__(self, grabber: FrameGrabber):
        self.events = []
        grabber.opened.connect(lambda d: self.events.append(("opened", d)))
        grabber.frame_captured.connect(lambda f, n: self.events.append(("frame", n, f.shape)))
        grabber.failed.connect(lambda m: self.events.append(("failed", m)))
        grabber.stopped.connect(lambda r: self.events.append(("stopped", r)))

    def kinds(self):
        return [e[0] for e in self.events]


class UnpluggedCamera:
    """Delivers three frames, then nothing (cable pulled)."""

    def __init__(self, index):
        self.reads = 0

    def isOpened(self):  # noqa: N802 - OpenCV API
        return True

    def set(self, *args):
        return True

    def get(self, prop):
        return 32.0

    def read(self):
        self.reads += 1
        return (True, np.zeros((32, 32, 3), np.uint8)) if self.reads <= 3 else (False, None)

    def release(self):
        pass


def test_missing_camera_reports_which_device_and_what_to_check(qapp):
    grabber = FrameGrabber()
    rec = Recorder(grabber)
    grabber.run(CameraConfig(kind="camera", device=63))
    assert rec.kinds() == ["failed", "stopped"]
    assert "Camera 63 could not be opened" in rec.events[0][1] and "connected" in rec.events[0][1]


def test_unplugged_camera_fails_with_message_after_its_frames(qapp, monkeypatch):
    monkeypatch.setattr(camera.cv2, "VideoCapture", UnpluggedCamera)
    monkeypatch.setattr(camera.time, "sleep", lambda s: None)
    grabber = FrameGrabber()
    rec = Recorder(grabber)
    grabber.run(CameraConfig(kind="camera", device=1))
    assert rec.kinds() == ["opened", "frame", "frame", "frame", "failed", "stopped"]
    assert "stopped delivering frames" in rec.events[4][1] and rec.events[5][1] == "failed"


def test_video_file_delivers_rgb_frames_then_ends(qapp, tmp_path):
    path = tmp_path / "v.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 60, (48, 32))
    for i in range(5):
        w.write(np.full((32, 48, 3), (255, 0, 0), np.uint8))  # pure blue in BGR
    w.release()
    grabber = FrameGrabber()
    frames = []
    grabber.frame_captured.connect(lambda f, n: frames.append(f))
    rec = Recorder(grabber)
    grabber.run(CameraConfig(kind="video", video_path=str(path), max_fps=1000))
    assert len(frames) == 5 and frames[0].shape == (32, 48, 3)
    assert frames[0][..., 2].mean() > 200 and frames[0][..., 0].mean() < 50  # converted to RGB
    assert rec.events[-1] == ("stopped", "end of video")


def test_missing_video_file_is_named_in_the_message(qapp, tmp_path):
    grabber = FrameGrabber()
    rec = Recorder(grabber)
    grabber.run(CameraConfig(kind="video", video_path=str(tmp_path / "nope.avi")))
    assert rec.kinds() == ["failed", "stopped"] and "nope.avi not found" in rec.events[0][1]
