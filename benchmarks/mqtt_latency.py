"""MQTT legs of the station's latency, through a real mosquitto on 127.0.0.1 (engine.mqtt_link).

* trigger in: a client publishes ``{prefix}/{station}/trigger`` -> the link's ``on_trigger`` runs;
* verdict out: ``MqttLink.publish_verdict`` -> a subscriber's ``on_message`` has the verdict.

One message at a time (the next after the previous arrived), times from :func:`time.perf_counter`
in this one process. The model's time and the camera's are not in these figures: the whole chain
trigger -> published verdict is the sum of these two legs, the frame grab and the inspection.

Usage::

    python benchmarks/mqtt_latency.py [--n 300]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def summary(name: str, ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=100)
    return (f"{name}: n={len(ms)} median {statistics.median(ms):.2f} ms, p95 {q[94]:.2f} ms, "
            f"max {max(ms):.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()

    from engine.mqtt_link import MqttLink, verdict_message
    from tests.mqtt_broker import Broker, Subscriber, wait_until

    broker = Broker(Path(tempfile.mkdtemp(prefix="mqtt_latency_")))
    arrived = threading.Event()
    link = MqttLink("127.0.0.1", broker.port, station="bench", on_trigger=lambda tid: arrived.set())
    link.start()
    wait_until(lambda: link.state == "connected", what="the link connected")
    sub = Subscriber(broker.port, ["dinoinspect/bench/verdict"])
    sub.client.on_message = lambda c, u, m: arrived.set()
    try:
        trigger_ms, verdict_ms = [], []
        for i in range(args.n):
            arrived.clear()
            t0 = time.perf_counter()
            sub.client.publish("dinoinspect/bench/trigger", f'{{"id": "{i}"}}', qos=1)
            if not arrived.wait(10):
                raise SystemExit(f"trigger {i} not received within 10 s")
            trigger_ms.append((time.perf_counter() - t0) * 1000)
        for i in range(args.n):
            arrived.clear()
            msg = verdict_message(station="bench", recipe="r", time=dt.datetime.now(), file=f"{i}.png", score=0.1,
                                  threshold=0.5, verdict="OK", latency_ms=40.0, log_id=i)
            t0 = time.perf_counter()
            link.publish_verdict(msg)
            if not arrived.wait(10):
                raise SystemExit(f"verdict {i} not received within 10 s")
            verdict_ms.append((time.perf_counter() - t0) * 1000)
        print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}, {os.cpu_count()} CPUs")
        print(summary("trigger message -> on_trigger", trigger_ms))
        print(summary("publish_verdict -> subscriber", verdict_ms))
    finally:
        link.stop()
        sub.close()
        broker.stop()


if __name__ == "__main__":
    main()
