"""The camera / line connection indicators of the operator view (pytest-qt, offscreen)."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QColor

from gui.station_status import StationStatus


def colour_name(hex_colour: str) -> str:
    """The colour an operator would name: grey (no saturation), else by hue."""
    c = QColor(hex_colour)
    if c.hsvSaturationF() < 0.15:
        return "grey"
    hue = c.hsvHue()
    if hue < 20 or hue >= 340:
        return "red"
    if 30 <= hue < 60:
        return "amber"
    if 90 <= hue < 160:
        return "green"
    return f"hue {hue}"


@pytest.fixture
def status(qtbot) -> StationStatus:
    w = StationStatus()
    qtbot.addWidget(w)
    w.show()
    return w


@pytest.mark.parametrize("state, colour", [("connected", "green"), ("connecting", "amber"),
                                           ("disconnected", "red"), ("off", "grey")])
def test_each_state_has_its_colour_words_and_detail(status, state, colour):
    status.set_camera_state(state, "Basler acA1300 (emulated)")
    cam = status.camera
    assert cam.state == state and colour_name(cam.colour) == colour
    assert cam.colour in cam.dot.styleSheet()  # the dot is painted in that colour
    assert cam.label.text().startswith(f"Camera: {state}")
    assert cam.toolTip() == f"Camera: {state} — Basler acA1300 (emulated)"
    assert status.broker.state == "off"  # the other indicator is untouched


def test_off_without_detail_says_not_configured(status):
    assert status.camera.state == "off" and status.broker.state == "off"  # nothing connected yet
    assert status.broker.toolTip() == "Line (MQTT): off — not configured"
    status.set_broker_state("connected", "")
    assert status.broker.toolTip() == "Line (MQTT): connected"


def test_a_lost_connection_shows_its_detail_beside_the_state_and_whole_in_the_tooltip(status):
    status.set_broker_state("connected", "127.0.0.1:1883")
    assert status.broker.label.text() == "Line (MQTT): connected"  # details of a healthy link: tooltip only
    status.set_broker_state("disconnected", "lost at 10:32:05, retrying")
    assert status.broker.label.text() == "Line (MQTT): disconnected — lost at 10:32:05, retrying"
    long = "lost at 10:32:05: connection refused by 127.0.0.1:1883, retrying every 2 s"
    status.set_broker_state("disconnected", long)
    shown = status.broker.label.text()
    assert shown.endswith("…") and long.startswith(shown[len("Line (MQTT): disconnected — "):-1])
    assert status.broker.toolTip() == f"Line (MQTT): disconnected — {long}"


def test_backlog_counts_verdicts_waiting_for_the_broker(status):
    status.set_broker_state("disconnected", "lost at 10:32:05, retrying")
    status.set_broker_backlog(3)
    assert status.broker.label.text().endswith(" · 3 verdicts waiting")
    assert status.broker.toolTip().endswith("\n3 verdicts waiting for the broker")
    status.set_broker_backlog(1)
    assert status.broker.label.text().endswith(" · 1 verdict waiting")
    status.set_broker_state("connected", "")  # the backlog stays until the sender says it is sent
    assert status.broker.label.text() == "Line (MQTT): connected · 1 verdict waiting"
    status.set_broker_backlog(0)
    assert status.broker.label.text() == "Line (MQTT): connected" and "waiting" not in status.broker.toolTip()


def test_a_backlog_the_detail_already_counts_is_said_once_in_the_tooltip(status):
    detail = "broker 127.0.0.1:1883 lost at 10:32:05, retrying; 3 verdicts waiting for the broker"
    status.set_broker_state("disconnected", detail)  # the MQTT link's detail carries the count
    status.set_broker_backlog(3)
    assert status.broker.label.text().endswith(" · 3 verdicts waiting")
    assert status.broker.toolTip() == f"Line (MQTT): disconnected — {detail}"
    assert status.broker.toolTip().count("3 verdicts waiting") == 1


def test_unknown_state_is_refused_and_the_shown_state_kept(status):
    status.set_camera_state("connected", "cam")
    with pytest.raises(ValueError, match="Camera: unknown connection state 'online'; expected one of connected"):
        status.set_camera_state("online", "cam")
    assert status.camera.state == "connected" and status.camera.label.text() == "Camera: connected"


class _Bridge(QObject):
    """A sender with the signals of the MQTT bridge and of the live session."""

    broker_state_changed = Signal(str, str)
    backlog_changed = Signal(int)
    camera_state_changed = Signal(str, str)


def test_indicators_follow_the_senders_signals(status, qtbot):
    bridge = _Bridge()
    assert status.watch_broker(bridge) and status.watch_camera(bridge)
    bridge.camera_state_changed.emit("connecting", "opening Basler acA1300")
    bridge.broker_state_changed.emit("disconnected", "lost at 10:32:05, retrying")
    bridge.backlog_changed.emit(2)
    assert status.camera.state == "connecting" and status.camera.detail == "opening Basler acA1300"
    assert status.broker.state == "disconnected" and status.backlog == 2


def test_a_sender_without_the_signal_leaves_the_indicator_off(status):
    assert not status.watch_camera(QObject()) and not status.watch_broker(QObject())
    assert status.camera.state == "off" and status.broker.state == "off"


def test_the_window_header_carries_both_indicators(qtbot, window):
    assert window.station_status.parent() is window.recipe_bar
    assert window.station_status.isVisible()
    assert window.station_status.camera.state == "off" and window.station_status.broker.state == "off"
