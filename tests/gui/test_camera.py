"""Frame grabber: clear messages when a camera cannot open or stops delivering frames; video end;
the facts the live guard needs (bit-identical repeats, the source's timestamps); the stale-period
setting in the settings and the camera dialog."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.live_guard import STALE_SECONDS
from gui import camera
from gui.camera import CameraConfig, FrameGrabber, load_camera_config, save_camera_config
from gui.camera_dialog import CameraDialog


class Recorder:
    def __init__(self, grabber: FrameGrabber):
        self.events = []
        grabber.opened.connect(lambda d: self.events.append(("opened", d)))
        grabber.frame_captured.connect(lambda f, n, facts: self.events.append(("frame", n, f.shape, facts)))
        grabber.failed.connect(lambda m: self.events.append(("failed", m)))
        grabber.stopped.connect(lambda r: self.events.append(("stopped", r)))

    def kinds(self):
        return [e[0] for e in self.events]


def run_grabber(monkeypatch, driver, device: int, skip_sleep: bool = True) -> "Recorder":
    """Run a FrameGrabber to its end on camera ``device`` with ``cv2.VideoCapture`` replaced by
    ``driver`` (and the grabber's sleeps skipped unless ``skip_sleep`` is False); its recorded events."""
    monkeypatch.setattr(camera.cv2, "VideoCapture", driver)
    if skip_sleep:
        monkeypatch.setattr(camera.time, "sleep", lambda s: None)
    grabber = FrameGrabber()
    rec = Recorder(grabber)
    grabber.run(CameraConfig(kind="camera", device=device))
    return rec


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
    rec = run_grabber(monkeypatch, UnpluggedCamera, 1)
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
    grabber.frame_captured.connect(lambda f, n, facts: frames.append(f))
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


class FrozenDriverCamera:
    """Two different frames, then the second one again and again; the driver's timestamp (ms)
    advances with the first two and then stops, as with a pulled cable."""

    def __init__(self, index):
        self.reads = 0

    def isOpened(self):  # noqa: N802
        return True

    def set(self, *args):
        return True

    def get(self, prop):
        return 40.0 * min(self.reads, 2) if prop == cv2.CAP_PROP_POS_MSEC else 32.0

    def read(self):
        self.reads += 1
        if self.reads > 6:
            return False, None
        return True, np.full((32, 32, 3), 50 if self.reads == 1 else 90, np.uint8)

    def release(self):
        pass


def test_grabber_tells_repeats_and_passes_the_source_timestamps(qapp, monkeypatch):
    rec = run_grabber(monkeypatch, FrozenDriverCamera, 0)
    facts = [e[3] for e in rec.events if e[0] == "frame"]
    assert [f.identical for f in facts] == [False, False, True, True, True, True]
    assert [f.source_ms for f in facts] == [40.0, 80.0, 80.0, 80.0, 80.0, 80.0]
    assert facts[0].thumb.shape == (32, 32) and float(facts[1].thumb.mean()) == 90.0


class RaisingCamera(UnpluggedCamera):
    """Delivers two frames, then raises cv2.error (some drivers do when the device goes away)."""

    def read(self):
        self.reads += 1
        if self.reads > 2:
            raise cv2.error("device gone")
        return True, np.zeros((16, 16, 3), np.uint8)


def test_a_driver_that_raises_counts_as_a_lost_camera(qapp, monkeypatch):
    rec = run_grabber(monkeypatch, RaisingCamera, 2)
    assert rec.kinds() == ["opened", "frame", "frame", "failed", "stopped"]
    assert "Camera 2 stopped delivering frames at" in rec.events[3][1]


class SixteenBitCamera(UnpluggedCamera):
    def read(self):
        return True, np.zeros((16, 16), np.uint16)


def test_a_camera_in_a_16_bit_mode_gets_a_clear_message(qapp, monkeypatch):
    rec = run_grabber(monkeypatch, SixteenBitCamera, 0, skip_sleep=False)
    assert rec.kinds() == ["opened", "failed", "stopped"]
    assert "uint16" in rec.events[1][1] and "8-bit" in rec.events[1][1]


def test_stale_period_is_remembered_and_a_bad_stored_value_falls_back_to_the_default(qapp, tmp_path):
    from PySide6.QtCore import QSettings

    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    save_camera_config(settings, CameraConfig(kind="camera", device=1, stale_seconds=7.5))
    assert load_camera_config(settings).stale_seconds == 7.5
    for bad in ("abc", "-2", "nan", "0"):
        settings.setValue("camera/stale_seconds", bad)
        assert load_camera_config(settings).stale_seconds == STALE_SECONDS


def test_camera_dialog_sets_the_stale_period(qtbot):
    dlg = CameraDialog(CameraConfig(stale_seconds=4.0))
    qtbot.addWidget(dlg)
    assert dlg.stale_spin.value() == 4.0
    dlg.stale_spin.setValue(12.5)
    assert dlg.config().stale_seconds == 12.5
    dlg.stale_spin.setValue(0.0)  # below the range: clamped, never off
    assert dlg.config().stale_seconds == 0.5


@pytest.mark.parametrize("size", [(0, 0), (1280, 720), (800, 600)])
def test_camera_dialog_gives_back_the_resolution_it_was_opened_with(qtbot, size):
    dlg = CameraDialog(CameraConfig(kind="camera", device=3, width=size[0], height=size[1]))
    qtbot.addWidget(dlg)
    c = dlg.config()
    assert (c.kind, c.device, c.width, c.height) == ("camera", 3, *size)


def test_an_unforeseen_driver_error_while_opening_ends_the_session_with_one_line(qapp, monkeypatch):
    class Crashing:
        closed = False

        def open(self):
            raise AttributeError("'EnumParameter' object has no attribute 'Min'")

        def close(self):
            Crashing.closed = True

    monkeypatch.setattr(camera, "make_source", lambda config: Crashing())
    grabber = FrameGrabber()
    rec = Recorder(grabber)
    grabber.run(CameraConfig(kind="basler"))  # returns: the thread is not left hanging at "connecting"
    assert rec.kinds() == ["failed", "stopped"] and Crashing.closed
    message = rec.events[0][1]
    assert "could not be opened (AttributeError" in message and "camera dialog" in message and "\n" not in message
