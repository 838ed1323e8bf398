"""The app's MQTT side against a real mosquitto broker: the bridge's signals, and the window
publishing its logged verdicts, answering recipe and trigger messages, keeping the log when the
broker is away."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication

from gui.defect_log import COLUMNS
from gui.mqtt_bridge import LineSettings, MqttBridge, load_line_settings
from tests.gui.window_helpers import TIMEOUT_MS, make_window, open_recipe
from tests.mqtt_broker import Broker, Subscriber

WAIT_MS = 20_000


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    yield b
    b.stop()


def line(port: int) -> LineSettings:
    return LineSettings(enabled=True, host="127.0.0.1", port=port, topic_prefix="plant")


class Collect:
    """Messages the test subscriber got, gathered while Qt's event loop keeps running."""

    def __init__(self, sub: Subscriber):
        self.sub, self.got = sub, []

    def on(self, topic: str) -> list[dict]:
        self.got.extend(self.sub.drain())
        return [json.loads(p) for t, p, _, _ in self.got if t == topic]


def test_bridge_signals_reach_the_gui_thread_and_replies_the_broker(qtbot, broker):
    sub = Subscriber(broker.port, ["plant/line2/recipe/result"])
    seen = Collect(sub)
    bridge = MqttBridge()
    gui_thread = QApplication.instance().thread()
    threads, states, triggers, recipes = [], [], [], []
    bridge.broker_state_changed.connect(lambda s, d: (states.append((s, d)), threads.append(QThread.currentThread())))
    bridge.trigger_requested.connect(lambda o, t: (triggers.append((o, t)), threads.append(QThread.currentThread())))
    bridge.recipe_requested.connect(lambda n: (recipes.append(n), threads.append(QThread.currentThread())))
    try:
        bridge.start(line(broker.port), station="line2", recipe="bolt")
        qtbot.waitUntil(lambda: bridge.state == "connected", timeout=WAIT_MS)
        assert [s for s, _ in states][:2] == ["connecting", "connected"]
        sub.client.publish("plant/line2/trigger", b'{"id": "PLC-4"}', qos=1)
        sub.client.publish("plant/line2/trigger", b"", qos=1)
        qtbot.waitUntil(lambda: len(triggers) == 2, timeout=WAIT_MS)
        assert triggers == [("mqtt", "PLC-4"), ("mqtt", "")]
        sub.client.publish("plant/line2/recipe", b'{"recipe": "nut", "id": "r9"}', qos=1)
        qtbot.waitUntil(lambda: recipes == ["nut"], timeout=WAIT_MS)
        assert bridge.pending_recipe == "nut"
        bridge.reply_recipe(True, "recipe nut loaded", "nut")
        qtbot.waitUntil(lambda: bool(seen.on("plant/line2/recipe/result")), timeout=WAIT_MS)
        reply = seen.on("plant/line2/recipe/result")[0]
        assert (reply["ok"], reply["recipe"], reply["id"]) == (True, "nut", "r9")
        assert bridge.pending_recipe is None
        assert threads and all(t is gui_thread for t in threads)  # paho's thread never calls a slot
    finally:
        bridge.stop()
        sub.close()
    assert bridge.state == "off" and states[-1][0] == "off"


def test_bad_line_settings_show_one_error_and_leave_the_link_off(qtbot, window):
    window.set_station("")  # no station name: no topic
    window.set_line_settings(line(1883))
    assert not window.line.enabled
    assert "station name is empty" in window.message_bar.text
    assert load_line_settings(window.settings) == line(1883)  # kept, to be fixed in the dialog


def connect_then_lose_the_broker(qtbot, window, broker, toy_model) -> None:
    """Station "line2" connected to ``broker`` with the toy recipe open, then the broker stopped."""
    window.set_station("line2")
    window.set_line_settings(line(broker.port))
    qtbot.waitUntil(lambda: window.line.state == "connected", timeout=WAIT_MS)
    open_recipe(qtbot, window, toy_model)
    broker.stop()
    qtbot.waitUntil(lambda: window.line.state == "disconnected", timeout=WAIT_MS)

def test_folder_run_verdicts_reach_the_topic_after_the_defect_log(qtbot, window, broker, toy_model, toy_images):
    sub = Subscriber(broker.port, ["plant/line2/verdict"])
    seen = Collect(sub)
    window.set_station("line2")
    window.set_line_settings(line(broker.port))
    qtbot.waitUntil(lambda: window.line.state == "connected", timeout=WAIT_MS)
    assert window.station_status.broker.state == "connected"
    open_recipe(qtbot, window, toy_model)
    window.run_folder(toy_images)
    qtbot.waitUntil(lambda: len(seen.on("plant/line2/verdict")) == 8, timeout=TIMEOUT_MS)
    msgs = seen.on("plant/line2/verdict")
    rows = {r[0]: dict(zip(COLUMNS, r)) for r in window.log.rows()}
    assert len(rows) == 8
    for m in msgs:
        row = rows[m["log_id"]]  # every message is a logged verdict, with its row's id
        assert (m["file"], m["verdict"], m["station"], m["recipe"]) == (row["file"], row["verdict"], "line2", "toy")
        assert m["score"] == pytest.approx(row["score"]) and m["threshold"] == pytest.approx(row["threshold"])
        assert m["time"] == row["time"] and m["latency_ms"] == pytest.approx(row["latency_ms"], abs=1e-3)
        assert "trigger_id" not in m  # a folder run is not triggered
    assert [m["file"] for m in msgs] == sorted(str(p) for p in toy_images.iterdir())
    sub.close()


def test_broker_down_every_row_still_logged_status_says_so_then_all_sent(qtbot, data_dir, tmp_path, toy_model,
                                                                        toy_images):
    broker = Broker(tmp_path, persist_dir=tmp_path)  # the subscriber's session survives the outage
    sub = Subscriber(broker.port, ["plant/line2/verdict"], client_id="line-sub", clean=False)
    seen = Collect(sub)
    window = make_window(qtbot, restore_recipe=False)
    try:
        connect_then_lose_the_broker(qtbot, window, broker, toy_model)
        assert window.station_status.broker.state == "disconnected"
        assert "Line (MQTT)" in window.message_bar.text and "lost at" in window.message_bar.text
        window.run_folder(toy_images)
        qtbot.waitUntil(lambda: not window.busy, timeout=TIMEOUT_MS)
        assert window.log.count() == 8  # the defect log has every verdict, broker or not
        assert window.line.link.waiting == 8
        # the count reaches the indicator by a queued signal from the link's thread
        qtbot.waitUntil(lambda: "8 verdicts waiting for the broker" in window.station_status.broker.toolTip(),
                        timeout=WAIT_MS)
        # the bridge's backlog_changed counts them beside the state, and the tooltip says it once
        qtbot.waitUntil(lambda: window.station_status.broker.label.text().endswith(" · 8 verdicts waiting"),
                        timeout=WAIT_MS)
        assert window.line.backlog == 8 and window.station_status.backlog == 8
        assert window.station_status.broker.toolTip().count("8 verdicts waiting") == 1
        broker.start()
        qtbot.waitUntil(lambda: window.line.state == "connected" and window.line.link.waiting == 0, timeout=WAIT_MS)
        assert "connected again" in window.message_bar.text
        qtbot.waitUntil(lambda: window.station_status.backlog == 0, timeout=WAIT_MS)  # acknowledged: none shown
        assert "waiting" not in window.station_status.broker.label.text()
        qtbot.waitUntil(lambda: len({m["log_id"] for m in seen.on("plant/line2/verdict")}) == 8, timeout=WAIT_MS)
        ids = list(dict.fromkeys(m["log_id"] for m in seen.on("plant/line2/verdict")))
        assert ids == sorted(r[0] for r in window.log.rows())  # in the order they were logged
    finally:
        window.close()
        sub.close()
        broker.stop()


def test_recipe_message_opens_the_recipe_and_answers_loaded_or_why_not(qtbot, window, broker, toy_copy):
    sub = Subscriber(broker.port, ["plant/line2/recipe/result", "plant/line2/status"])
    seen = Collect(sub)
    window.set_station("line2")
    window.set_line_settings(line(broker.port))
    qtbot.waitUntil(lambda: window.line.state == "connected", timeout=WAIT_MS)
    assert window.info is None
    sub.client.publish("plant/line2/recipe", json.dumps({"recipe": str(toy_copy), "id": "A"}), qos=1)
    qtbot.waitUntil(lambda: bool(seen.on("plant/line2/recipe/result")), timeout=TIMEOUT_MS)
    reply = seen.on("plant/line2/recipe/result")[0]
    assert (reply["ok"], reply["recipe"], reply["id"]) == (True, "toy", "A"), reply
    assert window.info is not None and window.info["recipe"] == "toy"
    qtbot.waitUntil(lambda: any(s["state"] == "online" and s["recipe"] == "toy"
                                for s in seen.on("plant/line2/status")), timeout=WAIT_MS)
    # by name, now that it is a recent recipe
    sub.client.publish("plant/line2/recipe", b"toy", qos=1)
    qtbot.waitUntil(lambda: len(seen.on("plant/line2/recipe/result")) == 2, timeout=TIMEOUT_MS)
    assert seen.on("plant/line2/recipe/result")[1]["ok"] is True
    sub.client.publish("plant/line2/recipe", b"no_such_recipe", qos=1)
    qtbot.waitUntil(lambda: len(seen.on("plant/line2/recipe/result")) == 3, timeout=WAIT_MS)
    reply = seen.on("plant/line2/recipe/result")[2]
    assert reply["ok"] is False and "no recipe 'no_such_recipe'" in reply["message"]
    assert window.info["recipe"] == "toy"  # the active recipe stays
    sub.close()


def test_trigger_message_without_a_running_triggered_source_is_answered_not_accepted(qtbot, window, broker,
                                                                                      toy_model):
    sub = Subscriber(broker.port, ["plant/line2/trigger/result", "plant/line2/verdict"])
    seen = Collect(sub)
    window.set_station("line2")
    window.set_line_settings(line(broker.port))
    qtbot.waitUntil(lambda: window.line.state == "connected", timeout=WAIT_MS)
    open_recipe(qtbot, window, toy_model)
    sub.client.publish("plant/line2/trigger", b'{"id": "T-1"}', qos=1)
    qtbot.waitUntil(lambda: bool(seen.on("plant/line2/trigger/result")), timeout=WAIT_MS)
    reply = seen.on("plant/line2/trigger/result")[0]
    assert (reply["ok"], reply["trigger_id"]) == (False, "T-1") and reply["message"]
    assert window.log.count() == 0 and seen.on("plant/line2/verdict") == []
    sub.close()


def test_station_dialog_edits_the_line_settings_and_shows_the_topics(qtbot):
    from gui.settings_dialog import SettingsDialog

    dlg = SettingsDialog("line2", "/data", line=LineSettings(enabled=False, host="plc.local", port=1884,
                                                             topic_prefix="plant"))
    qtbot.addWidget(dlg)
    assert dlg.line_settings() == LineSettings(False, "plc.local", 1884, "plant")
    assert "plant/line2/verdict" in dlg.topics_label.text()
    dlg.line_group.setChecked(True)
    dlg.host_edit.setText(" 10.0.0.7 ")
    dlg.port_spin.setValue(8883)
    dlg.station_edit.setText("cell 4")
    assert dlg.line_settings() == LineSettings(True, "10.0.0.7", 8883, "plant")
    assert "plant/cell 4/trigger" in dlg.topics_label.text()


def test_a_second_recipe_message_while_one_loads_is_refused_and_the_first_answered(qtbot, window, broker, toy_copy,
                                                                                    tmp_path):
    other = tmp_path / "other.dimodel"
    other.write_bytes(toy_copy.read_bytes())
    sub = Subscriber(broker.port, ["plant/line2/recipe/result"])
    seen = Collect(sub)
    window.set_station("line2")
    window.set_line_settings(line(broker.port))
    qtbot.waitUntil(lambda: window.line.state == "connected", timeout=WAIT_MS)
    # both messages reach the link before the GUI thread handles the first (as two quick PLC messages)
    window.line.link.on_recipe(str(toy_copy), "A")
    window.line.link.on_recipe(str(other), "B")
    qtbot.waitUntil(lambda: len(seen.on("plant/line2/recipe/result")) == 2, timeout=TIMEOUT_MS)
    replies = {r["id"]: r for r in seen.on("plant/line2/recipe/result")}
    assert replies["B"]["ok"] is False and "busy loading recipe" in replies["B"]["message"], replies["B"]
    assert str(toy_copy) in replies["B"]["message"] and replies["B"]["recipe"] == str(other)
    assert (replies["A"]["ok"], replies["A"]["recipe"]) == (True, "toy"), replies["A"]
    assert window.info["path"] == str(toy_copy) and window.line.pending_recipe is None
    sub.close()


@pytest.mark.parametrize("name", ["~no_such_user_dinoinspect/x.dimodel", "r" * 300])
def test_a_recipe_name_that_cannot_be_a_path_is_answered_not_crashing(qtbot, window, broker, name):
    sub = Subscriber(broker.port, ["plant/line2/recipe/result"])
    seen = Collect(sub)
    window.set_station("line2")
    window.set_line_settings(line(broker.port))
    qtbot.waitUntil(lambda: window.line.state == "connected", timeout=WAIT_MS)
    sub.client.publish("plant/line2/recipe", json.dumps({"recipe": name, "id": "X"}), qos=1)
    qtbot.waitUntil(lambda: bool(seen.on("plant/line2/recipe/result")), timeout=WAIT_MS)
    reply = seen.on("plant/line2/recipe/result")[0]
    assert (reply["ok"], reply["id"]) == (False, "X") and reply["message"].startswith("no recipe")
    assert "\n" not in reply["message"] and window.line.pending_recipe is None
    sub.close()


def test_station_dialog_ok_keeps_the_link_and_a_real_restart_says_what_it_dropped(qtbot, window, broker, toy_model,
                                                                                 toy_images):
    connect_then_lose_the_broker(qtbot, window, broker, toy_model)
    window.run_folder(toy_images)
    qtbot.waitUntil(lambda: not window.busy, timeout=TIMEOUT_MS)
    link = window.line.link
    assert link.waiting == 8 and window.log.count() == 8
    # what the Station dialog's OK does with nothing changed: the same link, its verdicts still waiting
    window.set_station(window.station)
    window.set_line_settings(window.line_settings)
    assert window.line.link is link and link.waiting == 8 and window.line.state == "disconnected"
    # another port: restarted, and the 8 verdicts it could not send are said and logged
    moved = LineSettings(True, "127.0.0.1", broker.port + 1, "plant")
    window.set_line_settings(moved)
    assert window.line.link is not link and window.line.link.waiting == 0
    assert "8 verdicts waiting for the broker not sent" in window.message_bar.text
    events = [dict(zip(COLUMNS, r)) for r in window.log.rows() if dict(zip(COLUMNS, r))["verdict"] == "event"]
    assert len(events) == 1 and "8 verdicts waiting for the broker not sent" in events[0]["message"]
    assert window.log.count() == 8 and len(window.log.rows()) == 9  # the 8 verdicts kept, plus the event


def test_recipe_message_at_a_triggered_station_stops_loads_restarts_then_answers(qtbot, window, broker, toy_copy,
                                                                               tmp_path, monkeypatch):
    pytest.importorskip("pypylon")
    import numpy as np

    from tests.conftest import write_textures
    from tests.gui.test_live_trigger import start_triggered

    monkeypatch.setenv("PYLON_CAMEMU", "1")  # the vendor's emulated camera
    other = tmp_path / "other.dimodel"
    other.write_bytes(toy_copy.read_bytes())
    write_textures(tmp_path / "parts", 2, np.random.default_rng(3))
    sub = Subscriber(broker.port, ["plant/line2/recipe/result"])
    seen = Collect(sub)
    window.set_station("line2")
    window.set_line_settings(line(broker.port))
    qtbot.waitUntil(lambda: window.line.state == "connected", timeout=WAIT_MS)
    open_recipe(qtbot, window, toy_copy)
    states = start_triggered(qtbot, window, tmp_path / "parts")
    config = window.live.config
    sub.client.publish("plant/line2/recipe", json.dumps({"recipe": str(other), "id": "S"}), qos=1)
    qtbot.waitUntil(lambda: bool(seen.on("plant/line2/recipe/result")), timeout=TIMEOUT_MS)
    reply = seen.on("plant/line2/recipe/result")[0]
    assert (reply["ok"], reply["recipe"], reply["id"]) == (True, "other", "S"), reply
    assert "live source started again" in reply["message"]
    # answered once the camera was back: the same camera settings, triggered, under the new recipe
    assert window.info["recipe"] == "other" and window.live_running and window.live.triggered
    assert window.live.config == config
    assert states[-3:] == ["off", "connecting", "connected"]
    assert window.trigger_inspection("mqtt")
    qtbot.waitUntil(lambda: window.log.count() == 1, timeout=TIMEOUT_MS)
    assert window.log.rows()[0][COLUMNS.index("recipe")] == "other"
    window.stop_live()
    qtbot.waitUntil(lambda: not window.live_running, timeout=WAIT_MS)
    sub.close()
