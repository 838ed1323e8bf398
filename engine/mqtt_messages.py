"""The line's MQTT messages: the verdict message (schema 1) and the checks of incoming trigger and
recipe messages and of topic settings. The topics, the schema's fields and the link that sends and
receives them are described in :mod:`engine.mqtt_link`, which re-exports everything here.
"""

from __future__ import annotations

import datetime as dt
import json
import time as _time

from .errors import InspectError

SCHEMA = 1
"""Version of the verdict message (its ``"schema"`` field)."""
MAX_PAYLOAD_BYTES = 4096
"""Longest trigger / recipe message accepted."""


class MqttSettingsError(InspectError):
    """An MQTT setting (broker, port, station, topic prefix) cannot be used."""


class MqttPayloadError(ValueError):
    """An incoming trigger / recipe message is malformed (the message says how)."""


def iso_time(t: dt.datetime) -> str:
    """``t`` as ISO 8601 with milliseconds and UTC offset (a naive ``t`` is local time)."""
    return t.astimezone().isoformat(timespec="milliseconds")


def verdict_message(*, station: str, recipe: str, time: dt.datetime | str, file: str, score: float | None,
                    threshold: float | None, verdict: str, latency_ms: float | None, log_id: int | None = None,
                    trigger_id: str | None = None, origin: str | None = None,
                    triggered_at: float | None = None, now: float | None = None) -> dict:
    """The verdict message of one inspected part (module docstring; schema 1).

    Args:
        time: when the part was inspected (a datetime, naive = local; or an ISO 8601 string).
        score, threshold: image anomaly score and the threshold it was judged at (scorer units);
            None when unreadable / no threshold.
        latency_ms: the model's time for the image, ms.
        log_id: the defect-log row holding this verdict.
        trigger_id, origin: for a triggered inspection (``origin`` e.g. ``"mqtt"``, ``"key"``).
        triggered_at: :func:`time.monotonic` at the trigger, s; gives ``trigger_to_publish_ms``.
        now: :func:`time.monotonic` now (tests); default the clock.

    Returns:
        A JSON-able dict; ``trigger_id`` / ``origin`` / ``trigger_to_publish_ms`` only when triggered.
    """
    msg = {"schema": SCHEMA, "station": station, "recipe": recipe,
           "time": time if isinstance(time, str) else iso_time(time), "file": file,
           "score": None if score is None else float(score),
           "threshold": None if threshold is None else float(threshold), "verdict": verdict,
           "latency_ms": None if latency_ms is None else round(float(latency_ms), 3), "log_id": log_id}
    if trigger_id is not None or origin is not None or triggered_at is not None:
        msg["trigger_id"] = trigger_id
        msg["origin"] = origin
        if triggered_at is not None:
            msg["trigger_to_publish_ms"] = round(((_time.monotonic() if now is None else now)
                                                  - triggered_at) * 1000.0, 3)
    return msg


def _text(payload: bytes, what: str) -> str:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise MqttPayloadError(f"{what} message of {len(payload)} bytes is too long (at most {MAX_PAYLOAD_BYTES})")
    try:
        return payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise MqttPayloadError(f"{what} message is not UTF-8 text: send JSON or plain text") from None


def parse_trigger(payload: bytes) -> str | None:
    """The trigger id of a ``trigger`` message: None for an empty message, else the ``"id"`` of a
    JSON object (a string or a number, as text; the object may omit it).

    Raises:
        MqttPayloadError: not UTF-8, too long, not a JSON object, or an id that is not a string /
            number.
    """
    text = _text(payload, "trigger")
    if not text:
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        raise MqttPayloadError(f"trigger message {text[:60]!r} is not JSON: send nothing or {{\"id\": \"...\"}}") \
            from None
    if not isinstance(obj, dict):
        raise MqttPayloadError(f"trigger message {text[:60]!r} is not a JSON object: send nothing or "
                               f"{{\"id\": \"...\"}}")
    tid = obj.get("id")
    if tid is None:
        return None
    if isinstance(tid, bool) or not isinstance(tid, (str, int, float)):
        raise MqttPayloadError(f"trigger id {tid!r} is not a string or a number")
    return str(tid)


def parse_recipe(payload: bytes) -> tuple[str, str | None]:
    """``(recipe name or model-file path, request id or None)`` of a ``recipe`` message: a JSON
    object ``{"recipe": "...", "id": ...}`` or the name / path as plain text.

    Raises:
        MqttPayloadError: empty, not UTF-8, too long, or text starting with ``{`` / ``[`` that is
            not a JSON object with a non-empty ``"recipe"`` string or number. Anything else is a name
            (``7``, ``"bolt"`` and ``bolt`` all name a recipe).
    """
    text = _text(payload, "recipe")
    if not text:
        raise MqttPayloadError("recipe message is empty: send the recipe name, a model-file path or "
                               "{\"recipe\": \"name\"}")
    if text[0] == '"':
        text = text[1:-1].strip() if len(text) > 1 and text[-1] == '"' else ""  # a JSON string: the name
        if not text:
            raise MqttPayloadError("recipe message names no recipe: send the recipe name, a model-file path or "
                                   "{\"recipe\": \"name\"}")
    if text[0] not in "{[":
        return text, None  # plain text: a name, a recipe number ("7", "2024") or a path
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        raise MqttPayloadError(f"recipe message {text[:60]!r} is not valid JSON: send {{\"recipe\": \"name\"}} "
                               f"or the name as plain text") from None
    if not isinstance(obj, dict):
        raise MqttPayloadError(f"recipe message {text[:60]!r} is not a JSON object: send {{\"recipe\": \"name\"}} "
                               f"or the name as plain text")
    name = obj.get("recipe")
    if isinstance(name, (int, float)) and not isinstance(name, bool):
        name = str(name)  # a recipe number
    if not isinstance(name, str) or not name.strip():
        raise MqttPayloadError(f"recipe message {text[:60]!r} has no \"recipe\" name: send {{\"recipe\": \"name\"}}")
    rid = obj.get("id")
    return name.strip(), None if rid is None else str(rid)


def check_topic_part(value: str, what: str, one_level: bool = False) -> str:
    """``value`` stripped, if it can be part of a topic (no ``+``, ``#``, NUL, not empty, no leading or
    trailing ``/``; with ``one_level`` no ``/`` at all).

    Raises:
        MqttSettingsError: naming the setting and the fix.
    """
    v = value.strip()
    if not v:
        raise MqttSettingsError(f"MQTT {what} is empty: set it (Station… > Line (MQTT))")
    if any(c in v for c in "+#\0") or v.startswith("/") or v.endswith("/"):
        raise MqttSettingsError(f"MQTT {what} {v!r} cannot be part of a topic: remove '+', '#' and leading or "
                                f"trailing '/'")
    if one_level and "/" in v:
        raise MqttSettingsError(f"MQTT {what} {v!r} must be one topic level: remove the '/'")
    return v
