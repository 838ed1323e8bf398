"""A real mosquitto broker for the tests, on a free local port, and a paho subscriber that collects
what arrives.

The broker is Debian's ``mosquitto`` (``.ci/run`` installs it). Without it the tests skip with the
reason, except under ``CI=true``, where they fail: CI must run them.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

WAIT_S = 20.0
"""Longest wait for anything the broker or the link should do (never reached when things work)."""


def mosquitto_binary() -> str | None:
    return shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if os.access(p, os.X_OK)), None)


def require_mosquitto() -> str:
    """The broker's binary; skip (fail under CI) when it is not installed."""
    path = mosquitto_binary()
    if path is None:
        reason = "mosquitto not installed (apt-get install mosquitto; .ci/run installs it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason + ": CI must run the MQTT tests")
        pytest.skip(reason)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout_s: float = WAIT_S, what="condition") -> None:
    """Poll ``condition()`` every 10 ms until true; fail after ``timeout_s`` saying ``what`` (a
    string, or a function giving it then)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what() if callable(what) else what}")
        time.sleep(0.01)


class Broker:
    """One mosquitto process on 127.0.0.1:``port`` (persistence off unless ``persist_dir``: then
    sessions and retained messages survive :meth:`restart`)."""

    def __init__(self, folder: Path, persist_dir: Path | None = None, port: int | None = None,
                 extra: tuple[str, ...] = ()):
        self.binary = require_mosquitto()
        self.port = port or free_port()
        self.folder = folder
        self.conf = folder / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true"]
        if persist_dir is None:
            lines.append("persistence false")
        else:
            lines += ["persistence true", f"persistence_location {persist_dir}/"]
        lines += extra
        if os.geteuid() == 0:  # else mosquitto runs as user "mosquitto", who cannot write the test's folder
            lines.append("user root")
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(self.folder / "mosquitto.log", "ab"))
        deadline = time.monotonic() + WAIT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited ({self.proc.returncode}): "
                                   f"{(self.folder / 'mosquitto.log').read_text()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=WAIT_S)
        self.proc = None

    def kill(self) -> None:
        """End the broker at once (SIGKILL: nothing saved, no goodbye to the clients)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=WAIT_S)
        self.proc = None

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open, nothing is answered."""
        self.proc.send_signal(signal.SIGSTOP)

    def restart(self) -> None:
        self.stop()
        self.start()


class Subscriber:
    """A paho client subscribed to ``topics``, collecting ``(topic, payload bytes, retain, dup)``."""

    def __init__(self, port: int, topics: list[str], client_id: str | None = None, clean: bool = True):
        import paho.mqtt.client as mqtt

        self.messages: queue.Queue = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "", clean_session=clean)
        self.subscribed = False
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload, m.retain, m.dup))

        def on_connect(c, u, flags, rc, props):
            c.subscribe([(t, 1) for t in topics])

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *a: setattr(self, "subscribed", True)
        self.client.reconnect_delay_set(1, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        wait_until(lambda: self.subscribed, what="the test subscriber's subscription")

    def get(self, timeout_s: float = WAIT_S) -> tuple[str, bytes, bool, bool]:
        try:
            return self.messages.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"no MQTT message within {timeout_s} s") from None

    def get_json(self, topic: str, timeout_s: float = WAIT_S) -> dict:
        """The next message on ``topic`` (others on the way are skipped), decoded."""
        deadline = time.monotonic() + timeout_s
        while True:
            t, payload, _, _ = self.get(max(deadline - time.monotonic(), 0.01))
            if t == topic:
                return json.loads(payload)

    def drain(self) -> list[tuple[str, bytes, bool, bool]]:
        out = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
