"""Every accepted trigger ends in exactly one verdict or one ``trigger_failed`` (logged, answered on
the line): when live stops, fails or the window closes with triggers still waiting, when the model
fails on a picture, when a trigger's picture comes too late; triggers are refused with the right
reason while the camera opens or stops and when the model is too far behind; an unplugged camera is
noticed while it waits for triggers; a video file between software triggers keeps its pace.

Sessions, grabber, window, worker, SQLite log and broker are the real ones; the camera is pylon's
emulated Basler camera where it can show the case, else a small :class:`FrameSource` that behaves
like the camera in question (silent, late, unplugged), because the emulation answers every trigger
at once and cannot be unplugged."""

from __future__ import annotations

import json
import threading
import time

import cv2
import numpy as np
import pytest
from PIL import Image

from engine.cameras import CameraRemoved, Frame, FrameSource
from gui import camera
from gui.camera import CameraConfig, FrameGrabber, Trigger
from gui.defect_log import COLUMNS, EVENT
from gui.live_session import MAX_WAITING_TRIGGERS, LiveSession
from tests.conftest import texture, write_textures
from tests.gui.window_helpers import open_recipe

pytest.importorskip("pypylon")

VERDICT, MESSAGE = COLUMNS.index("verdict"), COLUMNS.index("message")
WAIT_MS = 60_000


@pytest.fixture
def emulation(monkeypatch):
    monkeypatch.setenv("PYLON_CAMEMU", "1")


class SilentCamera(FrameSource):
    """A software-triggered camera that never delivers a picture (wrong wiring, a fault)."""

    trigger_mode = "software"
    label = "Basler 4711"

    def __init__(self):
        self.triggers = 0
        self.removed = False

    def open(self):
        return "silent"

    def trigger(self):
        if self.removed:
            raise CameraRemoved("Basler 4711 was removed (cable pulled or power lost); live stopped.")
        self.triggers += 1

    def check_connected(self):
        if self.removed:
            raise CameraRemoved("Basler 4711 was removed (cable pulled or power lost); live stopped.")

    def grab(self, timeout_s):
        time.sleep(timeout_s)
        return None

    def close(self):
        pass


def collect_failures(session: LiveSession) -> list[tuple[str, str]]:
    failures: list[tuple[str, str]] = []
    session.trigger_failed.connect(lambda tid, msg: failures.append((tid, msg)))
    return failures


def emulated_session(qtbot, folder) -> tuple[LiveSession, list]:
    """A session on the emulated camera whose pictures go to a model that never answers."""
    session = LiveSession()
    frames = []
    session.frame_ready.connect(lambda f, source, name, trigger: frames.append(trigger))
    session.start(CameraConfig(kind="basler", trigger="software", pixel_format="RGB8", emulator_images=str(folder)))
    qtbot.waitUntil(lambda: session.triggered, timeout=WAIT_MS)
    return session, frames


def test_triggers_queued_for_the_model_when_live_stops_each_get_trigger_failed(qtbot, tmp_path, emulation):
    write_textures(tmp_path / "parts", 3, np.random.default_rng(7))
    session, sent = emulated_session(qtbot, tmp_path / "parts")
    failures = collect_failures(session)
    try:
        ids = [session.trigger("button") for _ in range(3)]
        qtbot.waitUntil(lambda: session.stats["captured"] == 3, timeout=WAIT_MS)
        assert [t.trigger_id for t in sent] == ids[:1]  # one with the model, two queued behind it
        session.stop()
        assert not session.triggered and session.trigger("button") is None  # at once, not when it has ended
        qtbot.waitUntil(lambda: not session.running, timeout=WAIT_MS)
        assert [tid for tid, _ in failures] == ids[1:]
        assert all("live stopped" in msg and tid in msg for tid, msg in failures)
        session.result_arrived()  # the one with the model still gets its verdict
        assert session.waiting_triggers == 0
    finally:
        session.shutdown(10_000)


def test_triggers_not_yet_answered_by_the_camera_when_live_stops_each_get_trigger_failed(qtbot, monkeypatch):
    silent = SilentCamera()
    monkeypatch.setattr(camera, "make_source", lambda config: silent)
    session = LiveSession()
    failures = collect_failures(session)
    session.start(CameraConfig(kind="basler", trigger="software", trigger_timeout_s=60))
    try:
        qtbot.waitUntil(lambda: session.triggered, timeout=WAIT_MS)
        ids = [session.trigger("mqtt") for _ in range(3)]
        qtbot.waitUntil(lambda: silent.triggers == 1, timeout=WAIT_MS)  # fired, no picture; two not fired yet
        session.stop()
        qtbot.waitUntil(lambda: not session.running, timeout=WAIT_MS)
        assert sorted(tid for tid, _ in failures) == sorted(ids) and len(failures) == 3
        assert all("got no verdict: live stopped before its picture came" in msg for _, msg in failures)
    finally:
        session.shutdown(10_000)


def test_the_trigger_of_a_picture_the_model_failed_on_gets_trigger_failed(qtbot, tmp_path, emulation):
    write_textures(tmp_path / "parts", 1, np.random.default_rng(7))
    session, sent = emulated_session(qtbot, tmp_path / "parts")
    failures = collect_failures(session)
    try:
        tid = session.trigger("key")
        qtbot.waitUntil(lambda: len(sent) == 1, timeout=WAIT_MS)
        session.frame_failed("out of memory")
        assert len(failures) == 1 and failures[0][0] == tid and "out of memory" in failures[0][1]
        qtbot.waitUntil(lambda: not session.running, timeout=WAIT_MS)
        assert len(failures) == 1
    finally:
        session.shutdown(10_000)


def test_closing_fails_every_trigger_still_without_a_verdict(qtbot, tmp_path, emulation):
    write_textures(tmp_path / "parts", 3, np.random.default_rng(7))
    session, _ = emulated_session(qtbot, tmp_path / "parts")
    failures = collect_failures(session)
    ids = [session.trigger("button") for _ in range(3)]
    qtbot.waitUntil(lambda: session.stats["captured"] == 3, timeout=WAIT_MS)
    assert session.shutdown(10_000)
    assert sorted(tid for tid, _ in failures) == sorted(ids)  # with the model, or queued behind it
    assert all("the window was closed" in msg for _, msg in failures)


def test_a_blank_triggered_picture_is_counted_as_blank_in_the_status_line(qtbot, tmp_path, emulation):
    (tmp_path / "dark").mkdir()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "dark" / "black.png")
    session, _ = emulated_session(qtbot, tmp_path / "dark")
    lines = []
    session.status_changed.connect(lines.append)
    try:
        session.trigger("button")
        qtbot.waitUntil(lambda: session.stats["blank"] == 1, timeout=WAIT_MS)
        assert "1 pictures, 0 inspected, 1 blank (not inspected), 1 trigger(s) without a verdict" in lines[-1]
        assert "dropped" not in lines[-1] and "software trigger" in lines[-1]
    finally:
        session.shutdown(10_000)


def test_software_triggers_beyond_the_cap_are_refused_logged_and_the_reason_shown(qtbot, window, toy_model,
                                                                                 monkeypatch):
    silent = SilentCamera()
    monkeypatch.setattr(camera, "make_source", lambda config: silent)
    open_recipe(qtbot, window, toy_model)
    window.start_live(CameraConfig(kind="basler", trigger="software", trigger_timeout_s=60))
    qtbot.waitUntil(lambda: window.live.triggered, timeout=WAIT_MS)
    assert all(window.trigger_inspection("button") for _ in range(MAX_WAITING_TRIGGERS))
    assert not window.trigger_inspection("mqtt", trigger_id="line-9")
    text = window.message_bar.text
    assert f"model busy: {MAX_WAITING_TRIGGERS} triggers waiting" in text and "line-9" in text
    rows = window.log.rows()
    assert len(rows) == 1 and rows[0][VERDICT] == EVENT and "refused: model busy" in rows[0][MESSAGE]
    window.stop_live()
    qtbot.waitUntil(lambda: not window.live_running, timeout=WAIT_MS)
    assert len(window.log.rows()) == 1 + MAX_WAITING_TRIGGERS  # each accepted one logged as failed
    assert window.trigger_inspection("button") is False


def test_hardware_triggered_pictures_beyond_the_cap_are_not_inspected_and_reported(qtbot, monkeypatch):
    class Burst(FrameSource):
        """A hardware-triggered camera whose line fires 12 times at once."""

        trigger_mode, label = "hardware", "Basler 4712"

        def __init__(self):
            self.left, self.rng = 12, np.random.default_rng(5)

        def open(self):
            return "burst"

        def grab(self, timeout_s):
            if self.left == 0:
                time.sleep(timeout_s)
                return None
            self.left -= 1
            return Frame(array=texture(self.rng), pixel_format="RGB8", number=12 - self.left)

        def close(self):
            pass

    monkeypatch.setattr(camera, "make_source", lambda config: Burst())
    session = LiveSession()
    sent = []
    session.frame_ready.connect(lambda f, source, name, trigger: sent.append(trigger))  # the model never answers
    failures = collect_failures(session)
    session.start(CameraConfig(kind="basler", trigger="hardware"))
    try:
        qtbot.waitUntil(lambda: session.stats["captured"] == 12, timeout=WAIT_MS)
        assert len(sent) == 1 and len(session.queued) == MAX_WAITING_TRIGGERS
        assert len(failures) == 12 - 1 - MAX_WAITING_TRIGGERS and all("model busy" in m for _, m in failures)
    finally:
        session.shutdown(10_000)


def test_a_trigger_while_the_camera_opens_or_stops_names_that_reason(qtbot, window, toy_model, tmp_path, emulation):
    write_textures(tmp_path / "parts", 1, np.random.default_rng(7))
    open_recipe(qtbot, window, toy_model)
    window.start_live(CameraConfig(kind="basler", trigger="software", pixel_format="RGB8",
                                   emulator_images=str(tmp_path / "parts")))
    assert not window.trigger_inspection("key")  # the grabber's "opened" cannot have arrived yet
    assert "camera is still opening" in window.message_bar.text
    qtbot.waitUntil(lambda: window.live.triggered, timeout=WAIT_MS)
    window.stop_live()
    assert not window.trigger_inspection("mqtt") and "camera is still stopping" in window.message_bar.text
    qtbot.waitUntil(lambda: not window.live_running, timeout=WAIT_MS)
    assert window.log.count() == 0


def test_an_unplugged_camera_waiting_for_triggers_ends_the_session(qtbot, monkeypatch):
    silent = SilentCamera()
    monkeypatch.setattr(camera, "make_source", lambda config: silent)
    session = LiveSession()
    failed, ended = [], []
    session.failed.connect(failed.append)
    session.ended.connect(ended.append)
    session.start(CameraConfig(kind="basler", trigger="software"))
    try:
        qtbot.waitUntil(lambda: session.triggered, timeout=WAIT_MS)
        silent.removed = True  # no trigger comes: the grabber must notice by itself
        qtbot.waitUntil(lambda: not session.running, timeout=WAIT_MS)
        assert ended == ["failed"] and "was removed" in failed[0] and session.camera_state == "disconnected"
    finally:
        session.shutdown(10_000)


def test_a_trigger_on_an_unplugged_camera_fails_it_and_ends_the_session(qtbot, monkeypatch):
    silent = SilentCamera()
    monkeypatch.setattr(camera, "CONNECTION_CHECK_S", 3600.0)  # only the trigger can find out
    monkeypatch.setattr(camera, "make_source", lambda config: silent)
    session = LiveSession()
    failures, ended = collect_failures(session), []
    session.ended.connect(ended.append)
    session.start(CameraConfig(kind="basler", trigger="software"))
    try:
        qtbot.waitUntil(lambda: session.triggered, timeout=WAIT_MS)
        silent.removed = True
        tid = session.trigger("mqtt")
        qtbot.waitUntil(lambda: not session.running, timeout=WAIT_MS)
        assert ended == ["failed"] and [t for t, _ in failures] == [tid] and "was removed" in failures[0][1]
    finally:
        session.shutdown(10_000)


def test_pylon_source_reports_a_removed_camera_as_camera_removed(emulation):
    from engine.cameras.pylon_source import PylonSource

    class Unplugged:  # pylon's own camera object, except that it now reports itself removed
        def __init__(self, cam):
            self.cam = cam

        def __getattr__(self, name):
            return getattr(self.cam, name)

        def IsCameraDeviceRemoved(self):  # noqa: N802 - pylon's name
            return True

    source = PylonSource(trigger_mode="software")
    source.open()
    try:
        source.check_connected()  # plugged in: nothing to say
        real, source.camera = source.camera, Unplugged(source.camera)
        with pytest.raises(CameraRemoved, match="was removed"):
            source.check_connected()
        with pytest.raises(CameraRemoved, match="was removed"):
            source.trigger()
        source.camera = real
    finally:
        source.close()


def run_grabber(qtbot, source, config):
    """Run a real grabber on ``source`` in a thread; returns (grabber, thread, emitted signals)."""
    grabber = FrameGrabber()
    seen = {"frames": [], "failures": [], "stopped": []}
    grabber.triggered_frame_captured.connect(lambda f, n, facts, trigger: seen["frames"].append(trigger))
    grabber.trigger_failed.connect(lambda tid, msg: seen["failures"].append(tid))
    grabber.stopped.connect(seen["stopped"].append)
    thread = threading.Thread(target=grabber.run, args=(config,))
    thread.start()
    return grabber, thread, seen


def test_a_picture_arriving_after_its_trigger_timed_out_is_not_inspected(qtbot, monkeypatch):
    class LateCamera(FrameSource):
        """Keeps reading between triggers (like OpenCV) and delivers a trigger's picture 0.5 s late."""

        trigger_mode, label, reads_between_triggers = "software", "camera 9", True

        def __init__(self):
            self.fired_at, self.delivered = None, False

        def open(self):
            return "late"

        def trigger(self):
            self.fired_at = time.monotonic()

        def grab(self, timeout_s):
            time.sleep(0.01)
            if self.fired_at is not None and time.monotonic() - self.fired_at > 0.5:
                self.fired_at, self.delivered = None, True
                return Frame(array=texture(np.random.default_rng(1)), pixel_format="RGB8", number=1)
            return None

        def close(self):
            pass

    late = LateCamera()
    monkeypatch.setattr(camera, "make_source", lambda config: late)
    grabber, thread, seen = run_grabber(qtbot, late, CameraConfig(kind="camera", trigger="software",
                                                                  trigger_timeout_s=0.1))
    try:
        grabber.request_trigger(Trigger("t-1", "mqtt", time.monotonic()))
        qtbot.waitUntil(lambda: late.delivered and seen["failures"] == ["t-1"], timeout=WAIT_MS)
    finally:
        grabber.stop()
        thread.join(10)
    qtbot.waitUntil(lambda: seen["stopped"] == ["stopped"], timeout=WAIT_MS)
    assert seen["frames"] == []  # the late picture belongs to no trigger


def write_video(path, frames: int, fps: float) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 64))
    rng = np.random.default_rng(3)
    for _ in range(frames):
        writer.write(cv2.cvtColor(texture(rng), cv2.COLOR_RGB2BGR))
    writer.release()


def test_opencv_source_forgets_a_cancelled_trigger(tmp_path):
    from engine.cameras.opencv_source import OpenCVSource

    write_video(tmp_path / "v.avi", 4, 25)
    source = OpenCVSource(video_path=str(tmp_path / "v.avi"), trigger_mode="software")
    source.open()
    try:
        source.trigger()
        source.cancel_trigger()
        assert source.grab(0.05) is None  # read and dropped: no trigger waits for it
        source.trigger()
        assert source.grab(0.05) is not None
    finally:
        source.close()


def test_a_video_between_software_triggers_keeps_its_own_pace(qtbot, tmp_path):
    """10 frames at 10 fps last 1 s; unpaced reads ran through them in milliseconds. Only a lower
    bound is checked (a busy machine can only make it slower)."""
    write_video(tmp_path / "v.avi", 10, 10)
    start = time.monotonic()
    grabber, thread, seen = run_grabber(qtbot, None, CameraConfig(kind="video", video_path=str(tmp_path / "v.avi"),
                                                                  trigger="software"))
    try:
        qtbot.waitUntil(lambda: bool(seen["stopped"]), timeout=WAIT_MS)
    finally:
        grabber.stop()
        thread.join(10)
    assert seen["stopped"] == ["end of video"] and time.monotonic() - start >= 0.85


@pytest.fixture
def broker(tmp_path):
    from tests.mqtt_broker import Broker

    b = Broker(tmp_path)
    yield b
    b.stop()


def connect_line(qtbot, window, broker, topics):
    from gui.mqtt_bridge import LineSettings
    from tests.mqtt_broker import Subscriber

    sub = Subscriber(broker.port, topics)
    window.set_station("line2")
    window.set_line_settings(LineSettings(enabled=True, host="127.0.0.1", port=broker.port, topic_prefix="plant"))
    qtbot.waitUntil(lambda: window.line.state == "connected", timeout=WAIT_MS)
    return sub


def messages(got, sub, topic):
    got.extend(sub.drain())
    return [json.loads(p) for t, p, _, _ in got if t == topic]


def test_an_accepted_trigger_without_a_verdict_is_answered_false_on_the_line(qtbot, window, toy_model, tmp_path,
                                                                            broker, emulation):
    (tmp_path / "dark").mkdir()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "dark" / "black.png")
    sub = connect_line(qtbot, window, broker, ["plant/line2/trigger/result"])
    open_recipe(qtbot, window, toy_model)
    window.start_live(CameraConfig(kind="basler", trigger="software", pixel_format="RGB8",
                                   emulator_images=str(tmp_path / "dark")))
    qtbot.waitUntil(lambda: window.live.triggered, timeout=WAIT_MS)
    got = []
    sub.client.publish("plant/line2/trigger", b'{"id": "T-9"}', qos=1)
    qtbot.waitUntil(lambda: len(messages(got, sub, "plant/line2/trigger/result")) == 2, timeout=WAIT_MS)
    accepted, failed = messages(got, sub, "plant/line2/trigger/result")
    assert (accepted["ok"], accepted["trigger_id"]) == (True, "T-9")
    assert (failed["ok"], failed["trigger_id"]) == (False, "T-9") and "black" in failed["message"]
    row, = window.log.rows()
    assert row[VERDICT] == EVENT and "T-9" in row[MESSAGE]
    window.stop_live()
    qtbot.waitUntil(lambda: not window.live_running, timeout=WAIT_MS)
    sub.close()


def test_a_trigger_message_without_an_id_gets_one_shared_by_answer_verdict_and_log_row(qtbot, window, toy_model,
                                                                                     tmp_path, broker, emulation):
    write_textures(tmp_path / "parts", 1, np.random.default_rng(7))
    sub = connect_line(qtbot, window, broker, ["plant/line2/trigger/result", "plant/line2/verdict"])
    open_recipe(qtbot, window, toy_model)
    window.start_live(CameraConfig(kind="basler", trigger="software", pixel_format="RGB8",
                                   emulator_images=str(tmp_path / "parts")))
    qtbot.waitUntil(lambda: window.live.triggered, timeout=WAIT_MS)
    got = []
    sub.client.publish("plant/line2/trigger", b"{}", qos=1)
    qtbot.waitUntil(lambda: len(messages(got, sub, "plant/line2/verdict")) == 1, timeout=WAIT_MS)
    reply, = messages(got, sub, "plant/line2/trigger/result")
    verdict, = messages(got, sub, "plant/line2/verdict")
    assert reply["ok"] is True and reply["trigger_id"] and reply["trigger_id"] == verdict["trigger_id"]
    row, = window.log.rows()
    assert row[VERDICT] in ("OK", "NOK") and row[MESSAGE] == f"trigger {reply['trigger_id']} (mqtt)"
    window.stop_live()
    qtbot.waitUntil(lambda: not window.live_running, timeout=WAIT_MS)
    sub.close()


def test_closing_the_window_logs_every_trigger_still_without_a_verdict(qtbot, window, toy_model, monkeypatch):
    from gui.defect_log import DefectLog

    silent = SilentCamera()
    monkeypatch.setattr(camera, "make_source", lambda config: silent)
    open_recipe(qtbot, window, toy_model)
    window.start_live(CameraConfig(kind="basler", trigger="software", trigger_timeout_s=60))
    qtbot.waitUntil(lambda: window.live.triggered, timeout=WAIT_MS)
    ids = [window.live.trigger("button") for _ in range(3)]
    qtbot.waitUntil(lambda: silent.triggers == 1, timeout=WAIT_MS)
    path = window.log.path
    window.close()  # the window's own shutdown: threads stopped, log closed
    log = DefectLog(path)
    try:
        rows = log.rows(newest_first=False)
    finally:
        log.close()
    assert [r[VERDICT] for r in rows] == [EVENT] * 3
    assert sorted(next(i for i in ids if i in r[MESSAGE]) for r in rows) == sorted(ids)
