"""The real window with a camera that is alive but not delivering: a frozen driver (same frame),
then new pictures again; a camera delivering changing frames; a camera unplugged mid-session.
cv2.VideoCapture is replaced by fakes (no camera here); the grabber, session, guard, worker, model
and SQLite log are the real ones."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from gui import camera
from gui.camera import CameraConfig
from gui.defect_log import COLUMNS, EVENT
from tests.conftest import texture
from tests.gui.window_helpers import open_recipe

VERDICT, MESSAGE, SOURCE = COLUMNS.index("verdict"), COLUMNS.index("message"), COLUMNS.index("source")
WAIT_MS = 60_000


class ScriptedCamera:
    """A camera at about 60 fps whose behaviour the test switches: ``"moving"`` (a new picture
    each frame: the texture shifted by 5 px), ``"frozen"`` (the last picture again, bit-identical,
    as drivers do after the cable is pulled), ``"unplugged"`` (read fails) or ``"hung"`` (read
    blocks until ``unhang`` is set)."""

    mode = "moving"
    reads = 0
    lock = threading.Lock()
    unhang = threading.Event()

    def __init__(self, *args):
        self.base = texture(np.random.default_rng(5), 128)
        self.last = self.base

    def isOpened(self):  # noqa: N802 - OpenCV API
        return True

    def set(self, *args):
        return True

    def get(self, prop):
        return 0.0  # no timestamps, like many drivers

    def read(self):
        time.sleep(1 / 60)
        with ScriptedCamera.lock:
            ScriptedCamera.reads += 1
            n, mode = ScriptedCamera.reads, ScriptedCamera.mode
        if mode == "unplugged":
            return False, None
        if mode == "hung":
            ScriptedCamera.unhang.wait(WAIT_MS / 1000)
        if mode == "moving":
            self.last = np.roll(self.base, 5 * n, axis=1)
        return True, self.last.copy()

    def release(self):
        pass


@pytest.fixture
def scripted_camera(monkeypatch):
    monkeypatch.setattr(camera.cv2, "VideoCapture", ScriptedCamera)
    ScriptedCamera.mode, ScriptedCamera.reads = "moving", 0
    ScriptedCamera.unhang.clear()
    yield ScriptedCamera
    ScriptedCamera.unhang.set()  # a hung read never outlives its test


def set_mode(cam, mode):
    with cam.lock:
        cam.mode = mode


def events(w):
    return [r[MESSAGE] for r in w.log.rows(newest_first=False) if r[VERDICT] == EVENT]


def settle(qtbot, w):
    """Wait until the frame with the model (if any) is answered and logged."""
    qtbot.waitUntil(lambda: not w._live_in_flight, timeout=WAIT_MS)


def test_frozen_camera_stops_verdicts_warns_and_resumes_when_pictures_change(qtbot, window, toy_model,
                                                                              scripted_camera):
    open_recipe(qtbot, window, toy_model)
    window.strip.set_length(10_000)  # every part of the session on the verdict strip
    window.start_live(CameraConfig(kind="camera", device=0, stale_seconds=1.0))
    qtbot.waitUntil(lambda: window.live_stats["inspected"] >= 3, timeout=WAIT_MS)
    assert not window.live.stale

    set_mode(scripted_camera, "frozen")
    qtbot.waitUntil(lambda: window.live.stale, timeout=WAIT_MS)
    assert window.live_running  # waits for the picture to change; the operator may stop it
    assert window.message_bar.level == "warning"
    assert "Camera 0: camera image not changing since" in window.message_bar.text
    assert "Verdicts paused" in window.message_bar.text
    settle(qtbot, window)
    logged, inspected, captured = window.log.count(), window.live_stats["inspected"], window.live_stats["captured"]
    qtbot.waitUntil(lambda: window.live_stats["captured"] >= captured + 60, timeout=WAIT_MS)  # ~1 s more
    settle(qtbot, window)
    assert window.log.count() == logged and window.live_stats["inspected"] == inspected  # copies are not judged
    assert window.live_stats["skipped"] >= 60 and len(window.results) == inspected
    assert len(events(window)) == 1 and "camera image not changing since" in events(window)[0]

    set_mode(scripted_camera, "moving")
    qtbot.waitUntil(lambda: not window.live.stale and window.live_stats["inspected"] > inspected + 2,
                    timeout=WAIT_MS)
    assert "camera image changing again" in window.message_bar.text and window.message_bar.level == "info"
    window.stop_live()
    qtbot.waitUntil(lambda: not window.live_running, timeout=WAIT_MS)
    settle(qtbot, window)
    assert [("paused" in m, "changing again" in m) for m in events(window)] == [(True, False), (False, True)]
    assert window.log.count() == window.live_stats["inspected"] == len(window.results)
    rows = window.log.rows(newest_first=False)
    assert {r[SOURCE] for r in rows} == {"camera"}
    gap = [i for i, r in enumerate(rows) if r[VERDICT] == EVENT]
    assert gap[1] - gap[0] <= 2  # between the two events at most the frame that was with the model
    # the operator view marks the gap where it happened, with the log's messages
    # (events in a row, when no frame was with the model between them, share one marker)
    strip = [(t.verdict, t.tooltip) for t in window.strip.tiles]
    verdicts = [r[VERDICT] for r in rows]
    assert [v for v, _ in strip] == [v for i, v in enumerate(verdicts)
                                     if not (v == EVENT and i > 0 and verdicts[i - 1] == EVENT)]
    assert [line.split(" · ", 1)[1] for v, tip in strip if v == EVENT for line in tip.split("\n")] == events(window)


def test_camera_delivering_changing_frames_keeps_being_inspected(qtbot, window, toy_model, scripted_camera):
    open_recipe(qtbot, window, toy_model)
    window.start_live(CameraConfig(kind="camera", device=0, stale_seconds=1.0))
    qtbot.waitUntil(lambda: window.live_stats["captured"] >= 150, timeout=WAIT_MS)  # 2.5 s: past the stale period
    window.stop_live()
    qtbot.waitUntil(lambda: not window.live_running, timeout=WAIT_MS)
    settle(qtbot, window)
    s = window.live_stats
    assert not window.live.stale and events(window) == [] and s["skipped"] == 0
    assert s["inspected"] >= 3 and s["inspected"] + s["dropped"] == s["captured"]
    assert window.log.count() == s["inspected"]


def test_camera_unplugged_mid_session_says_so_stops_and_keeps_its_rows(qtbot, window, toy_model, scripted_camera):
    open_recipe(qtbot, window, toy_model)
    window.start_live(CameraConfig(kind="camera", device=0))
    qtbot.waitUntil(lambda: window.live_stats["inspected"] >= 2, timeout=WAIT_MS)
    set_mode(scripted_camera, "unplugged")
    qtbot.waitUntil(lambda: not window.live_running, timeout=WAIT_MS)
    settle(qtbot, window)
    assert window.message_bar.level == "error"
    assert "Camera 0 stopped delivering frames at" in window.message_bar.text
    assert "live stopped" in window.message_bar.text
    (event,) = events(window)
    assert event.startswith("live stopped: Camera 0 stopped delivering frames")
    assert [t.tooltip.split(" · ", 1)[1] for t in window.strip.tiles if t.is_event] == [event]
    assert window.log.count() == window.live_stats["inspected"] >= 2  # every judged frame is in the log
    assert window.actions.live.isEnabled() and not window.run_state.path.exists()


def test_a_camera_that_hangs_is_reported_as_sending_no_image(qtbot, window, toy_model, scripted_camera):
    open_recipe(qtbot, window, toy_model)
    window.start_live(CameraConfig(kind="camera", device=0, stale_seconds=1.0))
    qtbot.waitUntil(lambda: window.live_stats["inspected"] >= 1, timeout=WAIT_MS)
    set_mode(scripted_camera, "hung")
    qtbot.waitUntil(lambda: window.live.stale, timeout=WAIT_MS)
    assert window.message_bar.level == "warning"
    text = window.message_bar.text
    assert "Camera 0: no camera image since" in text and "hung or disconnected" in text
    assert "STALE" in window.status_label.text()
    set_mode(scripted_camera, "moving")
    scripted_camera.unhang.set()
    qtbot.waitUntil(lambda: not window.live.stale, timeout=WAIT_MS)
    window.stop_live()
    qtbot.waitUntil(lambda: not window.live_running, timeout=WAIT_MS)
    settle(qtbot, window)
    assert [m.split(": ", 1)[1][:20] for m in events(window)] == ["no camera image sinc", "camera image changin"]
