"""The loop a line sees: trigger message out -> verdict message back, through the whole station.

The real window (offscreen) with a recipe, pylon's emulated Basler camera in software-trigger mode
serving a folder of part images, a real mosquitto broker on a free local port, and a paho client in
this process playing the line controller: it publishes ``{prefix}/{station}/trigger`` with an id at
``t0`` and takes the verdict message carrying that id at ``t1`` (both :func:`time.perf_counter`).
Triggers go one at a time, the next ``--gap`` seconds after the previous verdict arrived, so the
figures hold no queueing. Reported (median, p95, max):

* ``t1 - t0``: the whole loop (MQTT in, trigger, picture, inspection, log row, MQTT out);
* the message's ``trigger_to_publish_ms``: the station's part (trigger accepted -> verdict handed to
  the link, :func:`time.monotonic`);
* the message's ``latency_ms``: the model's time for the image.

Usage::

    PYLON_CAMEMU=1 python benchmarks/station_latency.py --model part.dimodel --images DIR [--triggers 50]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYLON_CAMEMU", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STATION, PREFIX = "bench", "plant"


def summary(name: str, ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=100, method="inclusive")  # as numpy.percentile: p95 <= max
    return f"{name}: median {statistics.median(ms):.1f} ms, p95 {q[94]:.1f} ms, max {max(ms):.1f} ms"


def main() -> None:
    from benchmarks.trigger_latency import parse_args

    args = parse_args(__doc__.split("\n\n")[0], "station_latency")

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from tests.mqtt_broker import Broker, Subscriber

    app = QApplication([])
    from gui.camera import CameraConfig
    from gui.main_window import MainWindow
    from gui.mqtt_bridge import LineSettings

    broker = Broker(Path(tempfile.mkdtemp(prefix="station_broker_")))
    topic = f"{PREFIX}/{STATION}"
    line = Subscriber(broker.port, [f"{topic}/verdict", f"{topic}/trigger/result"])
    loop_ms, station_ms, model_ms, verdicts = [], [], [], []
    sent: dict[str, float] = {}
    done, failed = threading.Event(), []

    def send(i: int) -> None:
        tid = f"T-{i}"
        sent[tid] = time.perf_counter()
        line.client.publish(f"{topic}/trigger", json.dumps({"id": tid}), qos=1)

    def on_message(client, userdata, msg) -> None:  # paho's thread
        t1 = time.perf_counter()
        m = json.loads(msg.payload)
        if msg.topic.endswith("trigger/result"):
            if not m["ok"]:
                failed.append(f"trigger {m['trigger_id']} refused: {m['message']}")
                done.set()
            return
        t0 = sent.pop(m.get("trigger_id"), None)
        if t0 is None:
            return  # a duplicate (QoS 1) or not ours
        loop_ms.append(1000 * (t1 - t0))
        station_ms.append(m["trigger_to_publish_ms"])
        model_ms.append(m["latency_ms"])
        verdicts.append(m["verdict"])
        if len(loop_ms) >= args.triggers:
            done.set()
        else:
            threading.Timer(args.gap, send, args=(len(loop_ms),)).start()

    line.client.on_message = on_message
    w = MainWindow(device=args.device, restore_recipe=False)
    w.show()
    w.set_station(STATION)
    w.set_line_settings(LineSettings(enabled=True, host="127.0.0.1", port=broker.port, topic_prefix=PREFIX))
    state = {"phase": "load"}

    def poll() -> None:
        if state["phase"] == "load" and w.info is not None and not w.busy and w.line.state == "connected":
            w.start_live(CameraConfig(kind="basler", trigger="software", pixel_format=args.pixel_format,
                                      emulator_images=str(Path(args.images).resolve())))
            state["phase"] = "open"
        elif state["phase"] == "open" and w.live.triggered:
            state["phase"] = "run"
            send(0)
        elif state["phase"] == "open" and not w.live_running and w.message_bar.level == "error":
            failed.append(w.message_bar.text)
            done.set()
        if done.is_set():
            app.exit(0)
        else:
            QTimer.singleShot(20, poll)

    load_before = os.getloadavg()
    w.open_recipe(args.model)
    QTimer.singleShot(20, poll)
    app.exec()
    load_after = os.getloadavg()
    w.close()
    line.close()
    broker.stop()
    if failed or not loop_ms:
        sys.exit("; ".join(failed) or "no verdict")
    print(f"{len(loop_ms)} triggers ({verdicts.count('NOK')} NOK), {Path(args.model).name}, {args.pixel_format}, "
          f"gap {args.gap} s; load average (1 min) {load_before[0]:.2f} -> {load_after[0]:.2f}, "
          f"{os.cpu_count()} CPUs")
    print(summary("trigger message -> verdict message (t1 - t0)", loop_ms))
    print(summary("trigger_to_publish_ms (in the message)", station_ms))
    print(summary("latency_ms (model, in the message)", model_ms))
    rest = [a - b for a, b in zip(loop_ms, model_ms)]
    print(summary("loop minus model", rest))


if __name__ == "__main__":
    main()
