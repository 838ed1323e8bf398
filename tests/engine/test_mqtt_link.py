"""engine.mqtt_link against a real mosquitto broker on a free local port (tests/mqtt_broker.py)."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engine.mqtt_link import (MqttLink, MqttPayloadError, MqttSettingsError, parse_recipe, parse_trigger,
                              verdict_message)
from tests.mqtt_broker import WAIT_S, Broker, Subscriber, free_port, require_mosquitto, wait_until

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    yield b
    b.stop()


class Recorder:
    """Collects the link's callbacks (called from paho's thread)."""

    def __init__(self):
        self.states: list[tuple[str, str]] = []
        self.triggers: list[str | None] = []
        self.recipes: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()

    def kwargs(self) -> dict:
        return {"on_state": lambda s, d: self._add(self.states, (s, d)),
                "on_trigger": lambda t: self._add(self.triggers, t),
                "on_recipe": lambda n, i: self._add(self.recipes, (n, i))}

    def _add(self, lst, item):
        with self.lock:
            lst.append(item)

    @property
    def state(self) -> str | None:
        with self.lock:
            return self.states[-1][0] if self.states else None


def make_link(port: int, rec: Recorder, **kw) -> MqttLink:
    link = MqttLink("127.0.0.1", port, station="line2", reconnect_delay=(1, 2), **rec.kwargs(), **kw)
    link.start()
    return link


def verdict(i: int, **kw) -> dict:
    return verdict_message(station="line2", recipe="bolt", time=dt.datetime(2026, 3, 1, 10, 0, i % 60),
                           file=f"part_{i:03d}.png", score=0.1 * i, threshold=0.55,
                           verdict="NOK" if 0.1 * i >= 0.55 else "OK", latency_ms=40.0 + i, log_id=i, **kw)


# ------------------------------------------------------------------ messages, no broker
def test_verdict_message_has_schema_fields_and_trigger_latency_only_when_triggered():
    m = verdict(3)
    assert set(m) == {"schema", "station", "recipe", "time", "file", "score", "threshold", "verdict",
                      "latency_ms", "log_id"}
    assert m["schema"] == 1 and ISO_MS.match(m["time"]), m["time"]
    assert m["score"] == pytest.approx(0.3) and m["verdict"] == "OK"
    t = verdict_message(station="s", recipe="r", time="2026-03-01T10:00:00.000+01:00", file="f", score=None,
                        threshold=None, verdict="error", latency_ms=None, trigger_id="T7", origin="mqtt",
                        triggered_at=100.0, now=100.25)
    assert (t["trigger_id"], t["origin"], t["trigger_to_publish_ms"]) == ("T7", "mqtt", 250.0)
    assert t["score"] is None and t["latency_ms"] is None


@pytest.mark.parametrize("payload, expected", [(b"", None), (b"  ", None), (b'{"id": "A-1"}', "A-1"),
                                               (b'{"id": 42}', "42"), (b"{}", None)])
def test_parse_trigger_accepts_empty_or_json_object_with_id(payload, expected):
    assert parse_trigger(payload) == expected


@pytest.mark.parametrize("payload, words", [(b"go", "not JSON"), (b"[1]", "not a JSON object"),
                                            (b'{"id": [1]}', "not a string or a number"),
                                            (b"\xff\xfe", "not UTF-8"), (b"{" + b" " * 5000 + b"}", "too long")])
def test_parse_trigger_rejects_malformed_messages_with_the_reason(payload, words):
    with pytest.raises(MqttPayloadError, match=words):
        parse_trigger(payload)


@pytest.mark.parametrize("payload, expected", [(b"bolt", ("bolt", None)), (b"/data/recipes/bolt.dimodel",
                                                ("/data/recipes/bolt.dimodel", None)),
                                               (b'{"recipe": "nut", "id": 5}', ("nut", "5")),
                                               (b"2024_housing", ("2024_housing", None)),
                                               # recipe numbers, as PLCs send them, and a JSON string
                                               (b"7", ("7", None)), (b"2024", ("2024", None)),
                                               (b'{"recipe": 3}', ("3", None)), (b'"bolt"', ("bolt", None))])
def test_parse_recipe_accepts_json_or_plain_text(payload, expected):
    assert parse_recipe(payload) == expected


@pytest.mark.parametrize("payload, words", [(b"", "empty"), (b'""', "names no recipe"), (b'"', "names no recipe"), (b'{"recipe": true}', "no \"recipe\" name"),
                                            (b"{bolt", "not valid JSON"), (b'["bolt"]', "not a JSON object")])
def test_parse_recipe_rejects_malformed_messages_with_the_reason(payload, words):
    with pytest.raises(MqttPayloadError, match=words):
        parse_recipe(payload)


@pytest.mark.parametrize("kw, words", [({"station": " "}, "station name is empty"),
                                       ({"topic_prefix": "a/#"}, "cannot be part of a topic"),
                                       ({"port": 0}, "not a TCP port"), ({"port": "abc"}, "not a TCP port"),
                                       ({"station": "line/2"}, "one topic level"), ({"host": ""}, "host is empty")])
def test_bad_settings_raise_one_clear_error(kw, words):
    args = {"host": "127.0.0.1", "port": 1883, "station": "line2"} | kw
    with pytest.raises(MqttSettingsError, match=words):
        MqttLink(**args)


# ------------------------------------------------------------------ with the broker
def test_verdict_round_trip_through_the_broker(broker):
    sub = Subscriber(broker.port, ["dinoinspect/line2/verdict"])
    rec = Recorder()
    link = make_link(broker.port, rec)
    try:
        wait_until(lambda: rec.state == "connected", what="connected")
        assert rec.states[0][0] == "connecting" and "127.0.0.1" in rec.states[0][1]
        sent = verdict(7, trigger_id="T1", origin="mqtt", triggered_at=0.0, now=0.012)
        link.publish_verdict(sent)
        topic, payload, retain, _ = sub.get()
        assert topic == "dinoinspect/line2/verdict" and not retain
        assert json.loads(payload) == sent
        wait_until(lambda: link.waiting == 0, what="the PUBACK")
        assert link.published == 1
    finally:
        link.stop()
        sub.close()


def test_status_is_retained_online_with_the_recipe_and_offline_after_stop(broker):
    early = Subscriber(broker.port, ["dinoinspect/line2/status"])
    rec = Recorder()
    link = make_link(broker.port, rec)
    wait_until(lambda: rec.state == "connected", what="connected")
    link.set_recipe("bolt")
    late = None
    try:
        wait_until(lambda: early.get_json("dinoinspect/line2/status").get("recipe") == "bolt",
                   what="the status with the recipe")
        early.close()
        late = Subscriber(broker.port, ["dinoinspect/line2/status"])  # joins later: gets the retained one
        _, payload, retain, _ = late.get()
        st = json.loads(payload)
        assert retain and st["state"] == "online" and st["recipe"] == "bolt" and st["station"] == "line2"
    finally:
        link.stop()
    assert rec.state == "off"
    st = late.get_json("dinoinspect/line2/status")
    assert st["state"] == "offline" and st["reason"] == "stopped"
    late.close()


def test_trigger_and_recipe_messages_reach_the_callbacks_and_replies_the_topic(broker):
    sub = Subscriber(broker.port, ["dinoinspect/line2/recipe/result", "dinoinspect/line2/trigger/result"])
    rec = Recorder()
    link = make_link(broker.port, rec)
    try:
        wait_until(lambda: rec.state == "connected", what="connected")
        sub.client.publish("dinoinspect/line2/trigger", b'{"id": "PLC-17"}', qos=1)
        sub.client.publish("dinoinspect/line2/trigger", b"", qos=1)
        wait_until(lambda: len(rec.triggers) == 2, what="two triggers")
        assert rec.triggers == ["PLC-17", None]
        sub.client.publish("dinoinspect/line2/recipe", b'{"recipe": "nut", "id": "r1"}', qos=1)
        wait_until(lambda: rec.recipes, what="the recipe request")
        assert rec.recipes == [("nut", "r1")]
        link.reply_recipe("nut", True, "recipe nut loaded", "r1")
        reply = sub.get_json("dinoinspect/line2/recipe/result")
        assert (reply["ok"], reply["recipe"], reply["id"], reply["message"]) == (True, "nut", "r1",
                                                                                "recipe nut loaded")
        link.reply_trigger("PLC-17", False, "no triggered live source is running")
        reply = sub.get_json("dinoinspect/line2/trigger/result")
        assert (reply["ok"], reply["trigger_id"]) == (False, "PLC-17")
    finally:
        link.stop()
        sub.close()


def test_malformed_messages_get_an_error_reply_and_the_link_keeps_working(broker):
    sub = Subscriber(broker.port, ["dinoinspect/line2/recipe/result", "dinoinspect/line2/trigger/result"])
    # left retained on the broker: delivered (retain flag set) when the link subscribes
    sub.client.publish("dinoinspect/line2/trigger", b'{"id": "kept"}', qos=1, retain=True).wait_for_publish(5)
    rec = Recorder()
    link = make_link(broker.port, rec)
    try:
        wait_until(lambda: rec.state == "connected", what="connected")
        reply = sub.get_json("dinoinspect/line2/trigger/result")
        assert reply["ok"] is False and "retained trigger message ignored" in reply["message"]
        sub.client.publish("dinoinspect/line2/trigger", b"[1, 2]", qos=1)
        reply = sub.get_json("dinoinspect/line2/trigger/result")
        assert reply["ok"] is False and "not a JSON object" in reply["message"]
        sub.client.publish("dinoinspect/line2/recipe", b'{"recipe": [3]}', qos=1)
        reply = sub.get_json("dinoinspect/line2/recipe/result")
        assert reply["ok"] is False and "no \"recipe\" name" in reply["message"]
        sub.client.publish("dinoinspect/line2/recipe", b"\xff\xfe", qos=1)
        reply = sub.get_json("dinoinspect/line2/recipe/result")
        assert reply["ok"] is False and "not UTF-8" in reply["message"]
        assert rec.triggers == [] and rec.recipes == []
        sub.client.publish("dinoinspect/line2/trigger", b'{"id": "ok-after"}', qos=1)
        wait_until(lambda: rec.triggers == ["ok-after"], what="a good trigger after the bad ones")
        assert rec.state == "connected"
    finally:
        link.stop()
        sub.close()


def test_verdicts_wait_while_the_broker_is_down_and_arrive_in_order_once_it_is_back(tmp_path):
    # persistence on: the test subscriber's session (not the link's) survives the restart, so it
    # receives what the link sends whichever of the two reconnects first
    broker = Broker(tmp_path, persist_dir=tmp_path)
    sub = Subscriber(broker.port, ["dinoinspect/line2/verdict"], client_id="test-sub", clean=False)
    rec = Recorder()
    link = make_link(broker.port, rec)
    try:
        wait_until(lambda: rec.state == "connected", what="connected")
        for i in range(1, 6):
            link.publish_verdict(verdict(i))
        wait_until(lambda: link.waiting == 0, what="5 verdicts acknowledged")
        got = []
        wait_until(lambda: got.extend(sub.drain()) or len(got) >= 5, what="5 verdicts at the subscriber")
        broker.stop()
        wait_until(lambda: rec.state == "disconnected", what="the link to see the broker gone")
        assert "lost at" in rec.states[-1][1]
        for i in range(6, 13):
            link.publish_verdict(verdict(i))
        assert link.waiting == 7
        assert "7 verdicts waiting for the broker" in link.detail
        broker.start()
        wait_until(lambda: rec.state == "connected", what="the link back")
        wait_until(lambda: link.waiting == 0, what="the waiting verdicts acknowledged")
        wait_until(lambda: got.extend(sub.drain()) or len({json.loads(p)["log_id"] for _, p, _, _ in got}) == 12,
                   what=lambda: f"all 12 verdicts at the subscriber, got {got}")
        seen = [(json.loads(p)["log_id"], dup) for _, p, _, dup in got]
        # every verdict arrives, first time in the order they were inspected; a repeat is only the
        # broker redelivering (dup flag) what the subscriber had not acknowledged when it stopped:
        # QoS 1 is at least once, and log_id tells repeats apart
        first = list(dict.fromkeys(i for i, _ in seen))
        assert first == list(range(1, 13))
        repeats = [(i, dup) for k, (i, dup) in enumerate(seen) if i in {j for j, _ in seen[:k]}]
        assert all(dup for _, dup in repeats), seen
        # nothing was in flight when the broker went (5 acknowledged, 7 kept in the outbox): the link
        # handed each verdict to the broker once
        assert link.dropped == 0 and link.published == 12
    finally:
        link.stop()
        sub.close()
        broker.stop()


def test_full_outbox_drops_the_oldest_counts_and_says_so_then_sends_the_rest(tmp_path):
    broker = Broker(tmp_path, persist_dir=tmp_path)  # keeps the subscriber's session while it is down
    sub = Subscriber(broker.port, ["dinoinspect/line2/verdict"], client_id="test-sub", clean=False)
    broker.stop()
    rec = Recorder()
    link = make_link(broker.port, rec, outbox_limit=3)
    try:
        wait_until(lambda: rec.state == "disconnected", what="the refused connection")
        assert "not reachable" in rec.states[-1][1]
        for i in range(1, 6):
            link.publish_verdict(verdict(i))
        assert (link.waiting, link.dropped) == (3, 2)
        assert link.detail == (f"broker 127.0.0.1:{broker.port} not reachable, retrying; 3 verdicts waiting for "
                               f"the broker; 2 dropped from the outbox (full; still in the defect log)")
        broker.start()
        wait_until(lambda: link.waiting == 0, what="the outbox sent")
        got = []
        wait_until(lambda: got.extend(sub.drain()) or len(got) >= 3, what="3 verdicts at the subscriber")
        assert [json.loads(p)["log_id"] for _, p, _, _ in got] == [3, 4, 5]  # the two oldest were dropped
    finally:
        link.stop()
        sub.close()
        broker.stop()


LINK_SCRIPT = """
import sys, time
from engine.mqtt_link import MqttLink
link = MqttLink("127.0.0.1", int(sys.argv[1]), station="line9")
link.start()
while link.state != "connected":
    time.sleep(0.01)
link.set_recipe("bolt")
print("ready", flush=True)
time.sleep(600)
"""


def test_last_will_says_offline_when_the_client_process_dies(broker):
    require_mosquitto()
    proc = subprocess.Popen([sys.executable, "-c", LINK_SCRIPT, str(broker.port)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        sub = Subscriber(broker.port, ["dinoinspect/line9/status"])
        wait_until(lambda: sub.get_json("dinoinspect/line9/status")["recipe"] == "bolt",
                   what="retained status online with recipe")
        proc.kill()
        proc.wait(timeout=WAIT_S)
        st = sub.get_json("dinoinspect/line9/status")
        assert st["state"] == "offline" and st["reason"] == "connection lost"
        sub.close()
        late = Subscriber(broker.port, ["dinoinspect/line9/status"])
        _, payload, retain, _ = late.get()
        assert retain and json.loads(payload)["state"] == "offline"
        late.close()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_verdicts_in_flight_when_the_broker_dies_are_sent_again_before_the_waiting_ones(tmp_path):
    # the subscriber's session is saved every second, so it survives the SIGKILL below
    broker = Broker(tmp_path, persist_dir=tmp_path, extra=("autosave_interval 1",))
    sub = Subscriber(broker.port, ["dinoinspect/line2/verdict"], client_id="test-sub", clean=False)
    rec = Recorder()
    link = make_link(broker.port, rec)
    try:
        wait_until(lambda: rec.state == "connected", what="connected")
        db = tmp_path / "mosquitto.db"
        wait_until(db.exists, what="the broker's first autosave")
        saved = db.stat().st_mtime_ns
        wait_until(lambda: db.exists() and db.stat().st_mtime_ns != saved, what="an autosave with the session")
        broker.pause()  # verdicts 1-3 leave the link but get no PUBACK
        for i in range(1, 4):
            link.publish_verdict(verdict(i))
        wait_until(lambda: len(link._inflight) == 3, what="3 verdicts handed to paho")
        broker.kill()
        wait_until(lambda: rec.state == "disconnected", what="the link to see the broker gone")
        for i in range(4, 6):  # these wait in the outbox, not handed to paho
            link.publish_verdict(verdict(i))
        assert link.waiting == 5 and len(link._inflight) == 3
        broker.start()
        wait_until(lambda: rec.state == "connected" and link.waiting == 0, what="all 5 acknowledged")
        got = []
        wait_until(lambda: got.extend(sub.drain()) or len({json.loads(p)["log_id"] for _, p, _, _ in got}) == 5,
                   what=lambda: f"5 verdicts at the subscriber, got {got}")
        # paho resent 1-3 (its own queue), the link sent 4-5 only after: the order holds
        assert list(dict.fromkeys(json.loads(p)["log_id"] for _, p, _, _ in got)) == [1, 2, 3, 4, 5]
        assert link.published == 5
    finally:
        link.stop()
        sub.close()
        broker.stop()


def test_dropping_the_last_awaited_resend_does_not_hold_back_the_outbox():
    # after a reconnect the link waits for paho's resends (_resending); when the outbox overflows and
    # drops the last of them, nothing is awaited any more: the link must not wait for its ack forever
    link = MqttLink("127.0.0.1", free_port(), station="line2", outbox_limit=1)
    link.publish_verdict({"n": 1})
    first = link._outbox[0]
    first.mid = 7
    link._inflight[7] = first
    link._resending = True
    link.publish_verdict({"n": 2})  # overflows: the in-flight first verdict is dropped
    assert link.dropped == 1 and link._inflight == {} and link._resending is False
    link._on_publish(None, None, 7, None, None)  # its late acknowledgement changes nothing
    assert link.waiting == 1 and link._resending is False
