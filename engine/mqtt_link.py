"""The station's line link over MQTT: each verdict out, a trigger and a recipe switch in.

A PLC or line controller talks to one station through an MQTT broker (e.g. mosquitto) on these
topics (``prefix`` is ``"dinoinspect"`` unless set, ``station`` the station's name):

==================================  ======  ==========================================================
topic                               way     payload (UTF-8 JSON unless said)
==================================  ======  ==========================================================
``{prefix}/{station}/verdict``      out     one message per inspected part (:func:`verdict_message`),
                                            QoS 1, not retained
``{prefix}/{station}/status``       out     retained ``{"state": "online", "station", "recipe",
                                            "time"}``; the broker's last will (the link died without
                                            saying goodbye) and a clean stop set ``"state": "offline"``
``{prefix}/{station}/trigger``      in      inspect now; empty, or ``{"id": "..."}`` whose id comes
                                            back in the verdict as ``trigger_id``
``{prefix}/{station}/trigger/result`` out   ``{"ok", "trigger_id", "message"}``: accepted, or why not
                                            (bad payload, no triggered source running)
``{prefix}/{station}/recipe``       in      switch recipe: ``{"recipe": "name or path", "id": ...}``
                                            or the name / path as plain text
``{prefix}/{station}/recipe/result`` out    ``{"ok", "recipe", "id", "message"}``: loaded, or why not
==================================  ======  ==========================================================

Verdict messages (``"schema": 1``): ``station, recipe, time`` (ISO 8601 with milliseconds and UTC
offset, when the part was inspected), ``file, score, threshold, verdict`` (``"OK"``, ``"NOK"``,
``"n/a"`` without a threshold, ``"error"`` when the image could not be read), ``latency_ms`` (the
model's time for the image), ``log_id`` (the defect-log row: the key to deduplicate on) and, for
triggered inspections, ``trigger_id``, ``origin`` and ``trigger_to_publish_ms`` (from the trigger
to the moment the app published the verdict, i.e. handed it to this link, :func:`time.monotonic`;
a verdict that waits for an absent broker goes out later than that, and the broker's delivery to
a subscriber adds its own time: ``benchmarks/station_latency.py`` measures the whole loop).

No verdict is lost from the defect log: it holds every verdict before the link gets it. The line
may miss verdicts that were still waiting when the app stopped or that overflowed the outbox (both
counted and said); nothing replays them from the log after a restart. The link keeps
its own outbox in order: a verdict leaves it only when the broker acknowledged it (QoS 1 PUBACK).
While the broker is away verdicts wait there ("N verdicts waiting for the broker") and go out in
order when it is back. paho itself keeps the unacknowledged QoS-1 messages it was given and sends
them again after a reconnect (flagged as duplicates); the link hands it new ones only once those
are acknowledged, so the order holds. QoS 1 means *at least once*: a verdict whose PUBACK was lost
with the connection arrives twice (same ``log_id``). The outbox holds at most ``outbox_limit``
verdicts; past that the oldest is dropped from the outbox (it stays in the defect log), counted
in :attr:`MqttLink.dropped` and said in the state detail. Verdicts still waiting when the link is
stopped are not sent (counted the same way).

Incoming messages are checked (:func:`parse_trigger`, :func:`parse_recipe`); a bad one gets a
reply on the matching ``result`` topic saying what is wrong, never an exception in the link. A
retained trigger or recipe message is refused the same way: it would act again at every connection.

Connection: paho-mqtt's network thread (``loop_start``), reconnecting by itself with a backoff of
``reconnect_delay`` seconds (doubling up to the maximum). The state goes to ``on_state(state,
detail)`` as ``"connecting"``, ``"connected"``, ``"disconnected"`` or ``"off"`` with a one-line
detail ("broker 127.0.0.1:1883 lost at 10:32:05, retrying; 3 verdicts waiting for the broker").
Callbacks run in paho's thread: a GUI forwards them by queued signals (:mod:`gui.mqtt_bridge`).

Example::

    link = MqttLink("127.0.0.1", 1883, station="line2", on_trigger=lambda tid: ...)
    link.start()
    link.publish_verdict(verdict_message(station="line2", recipe="bolt", time=..., file="a.png",
                                         score=0.4, threshold=0.5, verdict="OK", latency_ms=38.0))
    link.stop()

See also: :mod:`engine.mqtt_messages` (the messages, re-exported here), :mod:`gui.mqtt_bridge` (the app's side), :mod:`gui.inspection_recorder` (the defect log).
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import threading
import time as _time
from typing import Callable

from .mqtt_messages import (MAX_PAYLOAD_BYTES, SCHEMA, MqttPayloadError, MqttSettingsError,  # noqa: F401
                            check_topic_part, iso_time, parse_recipe, parse_trigger, verdict_message)

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "dinoinspect"
VERDICT_QOS = 1
MAX_INFLIGHT = 20
"""Verdicts handed to paho and not yet acknowledged, at most."""
STATES = ("connected", "connecting", "disconnected", "off")


# ---------------------------------------------------------------------------------------- the link
class _Pending:
    __slots__ = ("payload", "mid")

    def __init__(self, payload: bytes):
        self.payload, self.mid = payload, None


class MqttLink:
    """One station's connection to the broker (module docstring).

    Args:
        host, port: the broker.
        station: the station's name (a topic level).
        topic_prefix: first topic level(s).
        client_id: MQTT client id; default ``dinoinspect-<station>-<random>``.
        username, password: broker login, when it asks for one.
        tls: connect with TLS (the system's CA certificates).
        keepalive: seconds between pings; a dead broker is noticed within 1.5 times this.
        outbox_limit: verdicts kept while the broker is away (module docstring).
        reconnect_delay: ``(min, max)`` seconds between reconnection attempts.
        on_state: ``on_state(state, detail)``, from paho's thread or the caller's.
        on_trigger: ``on_trigger(trigger_id or None)`` for a valid trigger message.
        on_recipe: ``on_recipe(name_or_path, request_id or None)`` for a valid recipe message.
        on_backlog: ``on_backlog(n)`` whenever the number of verdicts waiting (:attr:`waiting`)
            may have changed (a verdict queued, acknowledged, dropped), from paho's thread or the caller's.

    Raises:
        MqttSettingsError: a bad setting, or paho-mqtt not installed.
    """

    def __init__(self, host: str, port: int = 1883, station: str = "station", topic_prefix: str = DEFAULT_PREFIX,
                 client_id: str | None = None, username: str | None = None, password: str | None = None,
                 tls: bool = False, keepalive: int = 15, outbox_limit: int = 10_000,
                 reconnect_delay: tuple[int, int] = (1, 30),
                 on_state: Callable[[str, str], None] | None = None,
                 on_trigger: Callable[[str | None], None] | None = None,
                 on_recipe: Callable[[str, str | None], None] | None = None,
                 on_backlog: Callable[[int], None] | None = None):
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise MqttSettingsError("MQTT needs paho-mqtt: pip install 'dinoinspect[station]'") from None
        self.host = host.strip()
        if not self.host:
            raise MqttSettingsError("MQTT broker host is empty: set it (Station… > Line (MQTT))")
        try:
            port_ok = 0 < int(port) < 65536
        except (TypeError, ValueError):
            port_ok = False
        if not port_ok:
            raise MqttSettingsError(f"MQTT broker port {port!r} is not a TCP port (1-65535)")
        self.port = int(port)
        self.station = check_topic_part(station, "station name", one_level=True)
        self.prefix = check_topic_part(topic_prefix, "topic prefix")
        if outbox_limit < 1:
            raise MqttSettingsError(f"MQTT outbox limit {outbox_limit} must be at least 1")
        self.outbox_limit = outbox_limit
        self.on_state, self.on_trigger, self.on_recipe, self.on_backlog = on_state, on_trigger, on_recipe, on_backlog
        self.recipe = ""
        self.state, self.detail, self._base_detail = "off", "MQTT off", "MQTT off"
        self.dropped = 0  # verdicts dropped from the outbox (still in the defect log)
        self.published = 0  # verdicts acknowledged by the broker
        self._lock = threading.RLock()
        self._outbox: collections.deque[_Pending] = collections.deque()  # oldest first, not yet acknowledged
        self._inflight: dict[int, _Pending] = {}  # mid -> handed to paho, not yet acknowledged
        self._resending = False  # after a reconnect, until paho's own resends are acknowledged
        self._lost_at: str | None = None
        self._started = False

        if client_id is None:
            import secrets
            client_id = f"dinoinspect-{self.station}-{secrets.token_hex(3)}"[:64]
        self._mqtt = mqtt
        c = self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        if username:
            c.username_pw_set(username, password)
        if tls:
            c.tls_set()
        self.keepalive = keepalive
        c.reconnect_delay_set(*reconnect_delay)
        c.max_inflight_messages_set(MAX_INFLIGHT + 10)  # ours plus status and replies
        c.will_set(self.topic("status"), self._status_payload("offline", "connection lost"), qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_connect_fail = self._on_connect_fail
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message

    # ------------------------------------------------------------------ public
    def topic(self, name: str) -> str:
        """Full topic of ``name`` (``"verdict"``, ``"status"``, ``"trigger"``, ``"recipe/result"``...)."""
        return f"{self.prefix}/{self.station}/{name}"

    @property
    def waiting(self) -> int:
        """Verdicts not yet acknowledged by the broker (in the outbox)."""
        with self._lock:
            return len(self._outbox)

    def start(self) -> None:
        """Connect in the background (returns at once; the state says how it goes)."""
        if self._started:
            return
        self._started = True
        self._set_state("connecting", f"connecting to broker {self.host}:{self.port}")
        self._client.connect_async(self.host, self.port, keepalive=self.keepalive)
        self._client.loop_start()

    def stop(self, timeout_s: float = 2.0) -> int:
        """Say ``offline`` (retained) and disconnect; returns the verdicts that were still waiting
        (not sent; they stay in the defect log and are counted in :attr:`dropped`)."""
        if not self._started:
            return 0
        self._started = False
        c = self._client
        if c.is_connected():
            deadline = _time.monotonic() + timeout_s  # give waiting verdicts a moment to go out
            while self.waiting and c.is_connected() and _time.monotonic() < deadline:
                _time.sleep(0.02)
            info = c.publish(self.topic("status"), self._status_payload("offline", "stopped"), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=timeout_s)
            except (RuntimeError, ValueError):
                pass  # not connected any more: the last will says offline
        with self._lock:
            left = len(self._outbox)
            self.dropped += left
            self._outbox.clear()
            self._inflight.clear()
        c.disconnect()
        c.loop_stop()
        self._backlog_changed()
        self._set_state("off", "MQTT off" + (f"; {left} verdict{'s' if left != 1 else ''} not sent (in the defect log)"
                                             if left else ""))
        return left

    def publish_verdict(self, message: dict) -> None:
        """Queue one verdict message (:func:`verdict_message`) and send it when the broker is there."""
        item = _Pending(json.dumps(message, separators=(",", ":")).encode("utf-8"))
        note = False
        with self._lock:
            self._outbox.append(item)
            while len(self._outbox) > self.outbox_limit:
                old = self._outbox.popleft()
                if old.mid is not None:
                    self._inflight.pop(old.mid, None)
                self.dropped += 1
                note = True
            if self._resending and not self._inflight:
                self._resending = False  # the resends still awaited were all dropped
        self._pump()
        self._backlog_changed()
        with self._lock:  # state and detail change together: paho's thread may change the state meanwhile
            if not (self.state in ("connecting", "disconnected") or note):
                return
            self.detail = self._with_counts(self._base_detail)
            state, detail = self.state, self.detail
        if self.on_state is not None:
            self.on_state(state, detail)

    def set_recipe(self, name: str) -> None:
        """The active recipe: said in the retained status message."""
        self.recipe = name
        if self._client.is_connected():
            self._client.publish(self.topic("status"), self._status_payload("online"), qos=1, retain=True)

    def reply_recipe(self, recipe: str, ok: bool, message: str, request_id: str | None = None) -> None:
        """Answer a recipe message on ``recipe/result``."""
        self._reply("recipe/result", {"ok": ok, "recipe": recipe, "id": request_id, "message": message})

    def reply_trigger(self, trigger_id: str | None, ok: bool, message: str) -> None:
        """Answer a trigger message on ``trigger/result``."""
        self._reply("trigger/result", {"ok": ok, "trigger_id": trigger_id, "message": message})

    # ------------------------------------------------------------------ internals
    def _reply(self, name: str, obj: dict) -> None:
        obj["station"] = self.station
        obj["time"] = iso_time(dt.datetime.now())
        self._client.publish(self.topic(name), json.dumps(obj), qos=1)

    def _status_payload(self, state: str, reason: str | None = None) -> str:
        obj = {"state": state, "station": self.station, "recipe": self.recipe, "time": iso_time(dt.datetime.now())}
        if reason:
            obj["reason"] = reason
        return json.dumps(obj)

    def _set_state(self, state: str, detail: str, base: str | None = None) -> None:
        """New state; ``base`` is the detail without the outbox counts (default ``detail``)."""
        with self._lock:
            self.state, self.detail, self._base_detail = state, detail, detail if base is None else base
        if self.on_state is not None:
            self.on_state(state, detail)

    def _backlog_changed(self) -> None:
        if self.on_backlog is not None:
            self.on_backlog(self.waiting)

    def _away(self) -> None:
        base = f"broker {self.host}:{self.port} " + (f"lost at {self._lost_at}, retrying" if self._lost_at
                                                     else "not reachable, retrying")
        self._set_state("disconnected", self._with_counts(base), base)

    def _with_counts(self, base: str) -> str:
        """``base`` plus the verdicts waiting and dropped, when any."""
        n = self.waiting
        parts = [base]
        if n:
            parts.append(f"{n} verdict{'s' if n != 1 else ''} waiting for the broker")
        if self.dropped:
            parts.append(f"{self.dropped} dropped from the outbox (full; still in the defect log)")
        return "; ".join(parts)

    def _pump(self) -> None:
        """Hand waiting verdicts to paho, in order, while connected and the window allows.

        Lock order: paho's message lock, then ours (paho calls ``on_publish`` holding its lock);
        holding it here also means an acknowledgement cannot arrive before the verdict is booked.
        """
        c = self._client
        with c._out_message_mutex:  # noqa: SLF001 - see the docstring
            with self._lock:
                if not c.is_connected() or self._resending:
                    return
                room = MAX_INFLIGHT - len(self._inflight)
                todo = [item for item in self._outbox if item.mid is None][:max(room, 0)]
            for item in todo:
                info = c.publish(self.topic("verdict"), item.payload, qos=VERDICT_QOS)
                if info.rc not in (self._mqtt.MQTT_ERR_SUCCESS, self._mqtt.MQTT_ERR_NO_CONN):
                    break  # paho refuses it: it stays in the outbox, handed again later
                with self._lock:  # NO_CONN: paho keeps it and sends it after the reconnect
                    item.mid = info.mid
                    self._inflight[info.mid] = item

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._set_state("disconnected", f"broker {self.host}:{self.port} refused: {reason_code}; retrying")
            return
        client.subscribe([(self.topic("trigger"), 1), (self.topic("recipe"), 1)])
        client.publish(self.topic("status"), self._status_payload("online"), qos=1, retain=True)
        with self._lock:
            self._resending = bool(self._inflight)  # paho sends those again first
            self._lost_at = None
        n = self.waiting
        self._set_state("connected", f"broker {self.host}:{self.port}"
                        + (f"; sending {n} waiting verdict{'s' if n != 1 else ''}" if n else ""))
        self._pump()

    def _on_connect_fail(self, client, userdata) -> None:
        self._away()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if not self._started:
            return
        with self._lock:
            if self._lost_at is None:
                self._lost_at = dt.datetime.now().strftime("%H:%M:%S")
        self._away()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            item = self._inflight.pop(mid, None)
            if item is not None:  # else: status, reply, or a verdict dropped meanwhile
                try:
                    self._outbox.remove(item)
                except ValueError:
                    pass
                self.published += 1
            if self._resending and not self._inflight:
                self._resending = False
        self._pump()
        if item is not None:
            self._backlog_changed()

    def _on_message(self, client, userdata, msg) -> None:
        try:
            if msg.retain and msg.topic in (self.topic("trigger"), self.topic("recipe")):
                what = msg.topic.rsplit("/", 1)[1]
                reply = self.reply_trigger if what == "trigger" else lambda tid, ok, m: self.reply_recipe("", ok, m)
                reply(None, False, f"retained {what} message ignored (it would act again at every connection): "
                                   f"publish {what} messages without the retain flag")
                return
            if msg.topic == self.topic("trigger"):
                try:
                    tid = parse_trigger(msg.payload)
                except MqttPayloadError as exc:
                    self.reply_trigger(None, False, str(exc))
                    return
                if self.on_trigger is not None:
                    self.on_trigger(tid)
            elif msg.topic == self.topic("recipe"):
                try:
                    name, rid = parse_recipe(msg.payload)
                except MqttPayloadError as exc:
                    self.reply_recipe("", False, str(exc))
                    return
                if self.on_recipe is not None:
                    self.on_recipe(name, rid)
        except Exception as exc:  # noqa: BLE001 - a callback's bug must not stop the network thread
            log.exception("MQTT message on %s not handled: %s", msg.topic, exc)
