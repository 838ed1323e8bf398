"""The real window with pylon's emulated Basler camera (``PYLON_CAMEMU``) serving our synthetic
parts from a folder: software-triggered inspection (each trigger -> exactly one logged result
carrying its trigger id, origin and trigger time), a blank triggered picture refused and logged, the
camera's connection states, triggers refused without a triggered source, and the camera dialog's
Basler fields. Grabber, session, worker, model and SQLite log are the real ones."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from gui.camera import CameraConfig
from gui.camera_dialog import CameraDialog
from gui.defect_log import COLUMNS, EVENT
from tests.conftest import write_textures
from tests.gui.window_helpers import open_recipe

pytest.importorskip("pypylon")

VERDICT, MESSAGE, SOURCE, FILE = (COLUMNS.index(c) for c in ("verdict", "message", "source", "file"))
WAIT_MS = 60_000


@pytest.fixture
def emulation(monkeypatch):
    monkeypatch.setenv("PYLON_CAMEMU", "1")


def start_triggered(qtbot, window, folder, trigger="software"):
    states = []
    window.live.camera_state_changed.connect(lambda s, d: states.append(s))
    window.start_live(CameraConfig(kind="basler", trigger=trigger, pixel_format="RGB8", emulator_images=str(folder)))
    qtbot.waitUntil(lambda: window.live.triggered or not window.live_running, timeout=WAIT_MS)
    assert window.live.triggered, window.message_bar.text
    return states


def test_each_software_trigger_gives_exactly_one_logged_result_with_its_trigger(qtbot, window, toy_model, tmp_path,
                                                                                 emulation):
    write_textures(tmp_path / "parts", 3, np.random.default_rng(7))
    open_recipe(qtbot, window, toy_model)
    states = start_triggered(qtbot, window, tmp_path / "parts")
    assert window.actions.trigger.isEnabled()
    assert window.log.count() == 0  # free frames are never inspected in trigger mode

    before = time.monotonic()
    ids = [window.live.trigger("button"), window.live.trigger("mqtt")]
    assert window.trigger_inspection("key")
    assert window.trigger_inspection("mqtt", trigger_id="line-42")  # the line controller's own id
    qtbot.waitUntil(lambda: window.log.count() == 4 and not window.live.in_flight, timeout=WAIT_MS)
    results = window.results.results
    assert [r.trigger_id for r in results][:2] == ids and results[3].trigger_id == "line-42"
    assert len({r.trigger_id for r in results}) == 4
    assert [r.origin for r in results] == ["button", "mqtt", "key", "mqtt"]
    assert all(before <= r.triggered_at <= time.monotonic() for r in results)
    assert all(r.source == "basler" and r.verdict in ("OK", "NOK") for r in results)
    rows = window.log.rows(newest_first=False)
    assert [r[SOURCE] for r in rows] == ["basler"] * 4 and [r[FILE] for r in rows] == [r.name for r in results]
    assert window.live.stats["captured"] == 4 and window.live.stats["inspected"] == 4

    window.stop_live()
    qtbot.waitUntil(lambda: not window.live_running, timeout=WAIT_MS)
    assert window.log.count() == 4  # nothing inspected without a trigger
    assert states == ["connecting", "connected", "off"]
    assert not window.actions.trigger.isEnabled()


def test_a_blank_triggered_picture_is_refused_and_logged_as_an_event(qtbot, window, toy_model, tmp_path, emulation):
    (tmp_path / "dark").mkdir()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "dark" / "black.png")
    open_recipe(qtbot, window, toy_model)
    start_triggered(qtbot, window, tmp_path / "dark")
    tid = window.live.trigger("button")
    qtbot.waitUntil(lambda: len(window.log.rows()) == 1, timeout=WAIT_MS)
    row = window.log.rows()[0]
    assert row[VERDICT] == EVENT and tid in row[MESSAGE] and "black" in row[MESSAGE]
    assert "black" in window.message_bar.text and len(window.results) == 0 and window.log.count() == 0
    window.stop_live()


def test_trigger_is_refused_with_the_reason_without_a_software_triggered_source(qtbot, window, toy_model, tmp_path,
                                                                                emulation):
    assert not window.trigger_inspection("key")
    assert "no live source in software trigger mode" in window.message_bar.text
    write_textures(tmp_path / "parts", 1, np.random.default_rng(7))
    open_recipe(qtbot, window, toy_model)
    start_triggered(qtbot, window, tmp_path / "parts", trigger="hardware")
    assert not window.trigger_inspection("mqtt") and "hardware" in window.message_bar.text
    assert not window.actions.trigger.isEnabled()
    window.stop_live()


def test_a_missing_basler_camera_is_reported_and_its_state_is_disconnected(qtbot, window, toy_model, emulation):
    open_recipe(qtbot, window, toy_model)
    states = []
    window.live.camera_state_changed.connect(lambda s, d: states.append((s, d)))
    window.start_live(CameraConfig(kind="basler", serial="21234567", trigger="software"))
    qtbot.waitUntil(lambda: not window.live_running, timeout=WAIT_MS)
    assert window.message_bar.level == "error" and "Basler camera '21234567' not found" in window.message_bar.text
    assert [s for s, _ in states] == ["connecting", "disconnected"] and "not found" in states[-1][1]


def test_find_cameras_asks_pylon_off_the_gui_thread_and_fills_the_list_when_it_answers(qtbot, emulation):
    dlg = CameraDialog(CameraConfig(kind="basler"))
    qtbot.addWidget(dlg)
    assert dlg.find_button.isEnabled()
    with qtbot.waitSignal(dlg.cameras_listed, timeout=WAIT_MS) as listed:
        dlg.find_button.click()
        # the click returned before pylon answered: the button waits greyed, nothing listed yet
        assert not dlg.find_button.isEnabled() and dlg.find_button.text() == "Searching…"
        assert dlg.serial_combo.count() == 0
    assert listed.args == [["0815-0000"]]
    assert dlg.serial_combo.itemData(0) == "0815-0000" and dlg.find_button.isEnabled()
    assert dlg.find_button.text() == "Find cameras"


def test_camera_dialog_offers_the_basler_settings_and_finds_the_emulated_camera(qtbot, emulation):
    dlg = CameraDialog(CameraConfig())
    qtbot.addWidget(dlg)
    assert not dlg.exposure_spin.isEnabled() and not dlg.serial_combo.isEnabled()  # greyed unless Basler
    assert dlg.find_cameras() == ["0815-0000"]
    assert dlg.basler_radio.isChecked() and dlg.exposure_spin.isEnabled()
    dlg.exposure_spin.setValue(1500)
    dlg.gain_spin.setValue(3.5)
    dlg.format_combo.setCurrentText("Mono12")
    dlg.trigger_combo.setCurrentIndex(2)
    dlg.line_combo.setCurrentText("Line2")
    c = dlg.config()
    assert (c.kind, c.serial, c.exposure_us, c.gain_db, c.pixel_format, c.trigger, c.trigger_line) == \
        ("basler", "0815-0000", 1500.0, 3.5, "Mono12", "hardware", "Line2")
    dlg.camera_radio.setChecked(True)  # an OpenCV camera has no trigger input
    assert dlg.config().trigger == "free" and not dlg.line_combo.isEnabled()


def test_a_video_file_in_software_trigger_mode_inspects_one_frame_per_trigger(qtbot, window, toy_model, tmp_path):
    import cv2

    from tests.conftest import texture

    video = tmp_path / "line.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 64))
    rng = np.random.default_rng(3)
    for _ in range(12):
        writer.write(cv2.cvtColor(texture(rng), cv2.COLOR_RGB2BGR))
    writer.release()
    open_recipe(qtbot, window, toy_model)
    window.start_live(CameraConfig(kind="video", video_path=str(video), loop=True, trigger="software"))
    qtbot.waitUntil(lambda: window.live.triggered, timeout=WAIT_MS)
    ids = [window.live.trigger("button") for _ in range(2)]
    qtbot.waitUntil(lambda: window.log.count() == 2 and not window.live.in_flight, timeout=WAIT_MS)
    assert [r.trigger_id for r in window.results.results] == ids
    window.stop_live()
    qtbot.waitUntil(lambda: not window.live_running, timeout=WAIT_MS)
    assert window.log.count() == 2 and window.live.stats["captured"] == 2


@pytest.mark.parametrize("bit_depth", [12, 16])
def test_mono12_pictures_reach_the_model_mapped_by_the_models_value_range(qtbot, emulation, bit_depth):
    from engine.cameras.pylon_source import PylonSource
    from engine.value_range import ValueRange
    from gui.live_session import LiveSession

    probe = PylonSource(pixel_format="Mono12", trigger_mode="software")
    probe.open()
    probe.trigger()
    top = int(probe.grab(2.0).array.max())  # the emulator's test image, 12-bit
    probe.close()
    session = LiveSession()
    frames = []
    session.frame_ready.connect(lambda f, source, name, trigger: frames.append((f, trigger)))
    session.start(CameraConfig(kind="basler", pixel_format="Mono12", trigger="software"),
                  ValueRange(bit_depth=bit_depth, source="option"))
    try:
        qtbot.waitUntil(lambda: session.triggered, timeout=WAIT_MS)
        tid = session.trigger("test")
        qtbot.waitUntil(lambda: len(frames) == 1, timeout=WAIT_MS)
    finally:
        session.shutdown(10_000)
    frame, trigger = frames[0]
    assert frame.dtype == np.uint8 and frame.shape[2] == 3 and trigger.trigger_id == tid
    assert top > 255 and int(frame.max()) == round(top * 255 / (2 ** bit_depth - 1))


def test_a_trigger_without_a_picture_times_out_with_a_message_naming_it(qtbot, monkeypatch):
    """pylon's emulation answers every trigger at once, so a camera that takes no picture (wrong
    trigger wiring, a fault) is a source here that never delivers; the grabber and its timer are real."""
    import threading

    from engine.cameras import FrameSource
    from gui import camera
    from gui.camera import FrameGrabber, Trigger

    class SilentCamera(FrameSource):
        trigger_mode = "software"
        label = "Basler 4711"
        triggers = 0

        def open(self):
            return "silent"

        def trigger(self):
            SilentCamera.triggers += 1

        def grab(self, timeout_s):
            time.sleep(timeout_s)
            return None

        def close(self):
            pass

    monkeypatch.setattr(camera, "make_source", lambda config: SilentCamera())
    grabber = FrameGrabber()
    failures, stopped = [], []
    grabber.trigger_failed.connect(lambda tid, msg: failures.append((tid, msg)))
    grabber.stopped.connect(stopped.append)
    worker = threading.Thread(target=grabber.run, args=(CameraConfig(kind="basler", trigger="software",
                                                                     trigger_timeout_s=0.2),))
    worker.start()
    try:
        grabber.request_trigger(Trigger("t-1", "mqtt", time.monotonic()))
        qtbot.waitUntil(lambda: len(failures) > 0, timeout=WAIT_MS)
    finally:
        grabber.stop()
        worker.join(10)
    qtbot.waitUntil(lambda: stopped == ["stopped"], timeout=WAIT_MS)
    (tid, msg), = failures
    assert tid == "t-1" and SilentCamera.triggers == 1
    assert msg.startswith("Basler 4711: no picture within 0.2 s of trigger t-1 (mqtt)") and "exposure" in msg


def test_basler_settings_are_remembered_and_bad_stored_values_fall_back(qapp, tmp_path):
    from PySide6.QtCore import QSettings

    from gui.camera import TRIGGER_TIMEOUT_S, load_camera_config, save_camera_config

    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    config = CameraConfig(kind="basler", serial="21234567", exposure_us=800.0, gain_db=2.5, pixel_format="Mono12",
                          trigger="hardware", trigger_line="Line3", trigger_timeout_s=0.75,
                          emulator_images=str(tmp_path))
    save_camera_config(settings, config)
    assert load_camera_config(settings) == config
    settings.setValue("camera/trigger", "sometimes")
    settings.setValue("camera/trigger_timeout_s", "-1")
    settings.setValue("camera/gain_db", "abc")
    back = load_camera_config(settings)
    assert (back.trigger, back.trigger_timeout_s, back.gain_db) == ("free", TRIGGER_TIMEOUT_S, -1.0)


def test_a_mono12_camera_on_a_recipe_of_8_bit_images_is_warned_once_per_session(qtbot, emulation, caplog):
    from engine.value_range import EIGHT_BIT
    from gui.live_session import LiveSession

    session = LiveSession()
    frames = []
    session.frame_ready.connect(lambda f, source, name, trigger: (frames.append(f), session.result_arrived()))
    session.start(CameraConfig(kind="basler", pixel_format="Mono12", trigger="software"), EIGHT_BIT)
    try:
        qtbot.waitUntil(lambda: session.triggered, timeout=WAIT_MS)
        for _ in range(3):
            session.trigger("test")
        qtbot.waitUntil(lambda: len(frames) == 3, timeout=WAIT_MS)
    finally:
        session.shutdown(10_000)
    warned = [r for r in caplog.records if r.name == "engine.value_range" and "8-bit images" in r.getMessage()]
    assert len(warned) == 1 and "Basler 0815-0000 #1" in warned[0].getMessage()
