"""Trigger -> verdict latency: the real operator window (offscreen), pylon's emulated Basler camera
in software-trigger mode serving a folder of part images, the real worker and model.

For each trigger the time from ``time.monotonic()`` at the trigger (``InspectionResult.triggered_at``)
to the moment the window has logged its verdict (the window's result slot ran; an MQTT publish
comes right after it) is measured. Triggers are given one at a time, the next after the previous
verdict plus ``--gap`` seconds (a station's part rate), so the figures hold no queueing. Reported:
median and p95 in ms, the model's own time per image (``latency_ms``), and the rest (trigger to
picture, hand-overs between threads, writing the log row).

Usage::

    PYLON_CAMEMU=1 python benchmarks/trigger_latency.py --model part.dimodel --images DIR [--triggers 50]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYLON_CAMEMU", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args(description: str, name: str) -> argparse.Namespace:
    """The options of a trigger benchmark (this one and station_latency.py); the app's data folder
    becomes a new temporary one (``name`` in its name), so no station's settings are touched."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--model", required=True, help="a fitted model file (.dimodel)")
    ap.add_argument("--images", required=True, help="folder of images the emulated camera serves")
    ap.add_argument("--triggers", type=int, default=50)
    ap.add_argument("--gap", type=float, default=0.2, help="seconds between a verdict and the next trigger")
    ap.add_argument("--pixel-format", default="RGB8", choices=("Mono8", "Mono12", "RGB8"))
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    os.environ["DINOINSPECT_DATA_DIR"] = tempfile.mkdtemp(prefix=f"{name}_")
    return args


def main() -> None:
    args = parse_args(__doc__.split("\n\n")[0], "trigger_latency")

    import numpy as np
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    from gui.camera import CameraConfig
    from gui.main_window import MainWindow

    w = MainWindow(device=args.device, restore_recipe=False)
    w.show()
    latencies, model_ms = [], []
    state = {"phase": "load"}

    def fail(text: str) -> None:
        print(text, file=sys.stderr)
        app.exit(1)

    def on_result(r) -> None:  # connected after the window's own slot: runs once the verdict is logged
        if r.trigger_id is None:
            return
        latencies.append(1000 * (time.monotonic() - r.triggered_at))
        model_ms.append(r.latency_ms)
        if len(latencies) >= args.triggers:
            app.exit(0)
        else:
            QTimer.singleShot(int(args.gap * 1000), lambda: w.trigger_inspection("benchmark"))

    def poll() -> None:
        if state["phase"] == "load" and w.info is not None and not w.busy:
            w.worker.result_ready.connect(on_result)
            w.start_live(CameraConfig(kind="basler", trigger="software", pixel_format=args.pixel_format,
                                      emulator_images=str(Path(args.images).resolve())))
            state["phase"] = "open"
        elif state["phase"] == "open" and w.live.triggered:
            state["phase"] = "run"
            w.trigger_inspection("benchmark")
            return
        elif state["phase"] == "open" and not w.live_running and w.message_bar.level == "error":
            return fail(w.message_bar.text)
        if state["phase"] != "run":
            QTimer.singleShot(50, poll)

    w.open_recipe(args.model)
    QTimer.singleShot(50, poll)
    rc = app.exec()
    w.close()
    if rc or not latencies:
        sys.exit(rc or 1)
    a, m = np.asarray(latencies), np.asarray(model_ms)
    print(f"{len(a)} triggers, {Path(args.model).name}, {args.pixel_format}: trigger -> verdict logged "
          f"median {np.median(a):.1f} ms, p95 {np.percentile(a, 95):.1f} ms, max {a.max():.1f} ms; "
          f"model time per image median {np.median(m):.1f} ms; the rest (camera, queues, log) median "
          f"{np.median(a - m):.1f} ms, p95 {np.percentile(a - m, 95):.1f} ms")


if __name__ == "__main__":
    main()
