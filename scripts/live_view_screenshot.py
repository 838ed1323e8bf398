"""Save a screenshot of the main window during a triggered live session into
docs/screenshots/live_view.png.

The real window (offscreen) with a recipe that has a region of interest, pylon's emulated Basler
camera (``PYLON_CAMEMU``) in software-trigger mode serving real test parts (good ones, then a
defective one), a real mosquitto broker on a free local port, and triggers sent as MQTT messages by a
paho client playing the line controller. After the last trigger the window shows the NOK part with
its heatmap and the region's outline, the Camera and Line (MQTT) indicators connected, and the strip
of the last verdicts.

    PYLON_CAMEMU=1 python scripts/live_view_screenshot.py                  # fits a quick recipe
    python scripts/live_view_screenshot.py --model bottle.dimodel         # a recipe fitted before

docs/screenshots/live_view.png was made with a DINOv2 recipe (the default backbone) fitted on the first
30 bottle good images with a 16-corner region around the bottle (the recipe of benchmarks/station_latency.py,
see docs/CAMERAS.md): ``python main.py fit --good GOOD30 --out bottle.dimodel --roi bottle.roi.json``.

Without ``--model`` it fits ``efficientnet_lite0`` on the first ``--n-train`` good images of
``--data`` with a region around the part (a 32-corner polygon on a circle of 46 % of the image
side). Data and settings go to a temporary folder (DINOINSPECT_DATA_DIR), never the user's own.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "mvtec_ad" / "bottle"),
                   help="category folder in MVTec AD layout (default ../shared/data/mvtec_ad/bottle)")
    p.add_argument("--model", default=None, help="a fitted recipe (.dimodel); default: fit a quick one")
    p.add_argument("--n-train", type=int, default=30, help="good images to learn from (first N), without --model")
    p.add_argument("--defect", default="broken_large", help="defect folder the NOK part comes from")
    p.add_argument("--out", default=str(REPO / "docs" / "screenshots" / "live_view.png"))
    args = p.parse_args(argv)

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("PYLON_CAMEMU", "1")
    tmp = Path(tempfile.mkdtemp(prefix="dinoinspect_live_shot_"))
    os.environ["DINOINSPECT_DATA_DIR"] = str(tmp / "appdata")
    sys.path.insert(0, str(REPO))

    category = Path(args.data)
    good = sorted((category / "train" / "good").glob("*.png"))
    test_good = sorted((category / "test" / "good").glob("*.png"))
    defects = sorted((category / "test" / args.defect).glob("*.png"))
    if not good or not test_good or not defects:
        print(f"error: {category} has no train/good, test/good or test/{args.defect} images; pass --data "
              f"PATH/TO/bottle", file=sys.stderr)
        return 2

    from PIL import Image
    from PySide6.QtWidgets import QApplication

    from engine.model import InspectionModel
    from engine.roi import RegionOfInterest
    from gui.camera import CameraConfig
    from gui.main_window import MainWindow
    from gui.mqtt_bridge import LineSettings
    from tests.mqtt_broker import Broker, Subscriber

    model_path = Path(args.model) if args.model else tmp / "recipes" / "bottle.dimodel"
    if args.model is None:
        w, h = Image.open(good[0]).size
        r = 0.46 * min(w, h)
        circle = [(w / 2 + r * math.cos(2 * math.pi * k / 32), h / 2 + r * math.sin(2 * math.pi * k / 32))
                  for k in range(32)]
        model = InspectionModel.create("efficientnet_lite0", "knn", device="cpu")
        model.roi = RegionOfInterest(include=[circle], ref_width=w, ref_height=h)
        t0 = time.monotonic()
        model.fit(good[:args.n_train])
        model_path.parent.mkdir(parents=True)
        model.save(model_path)
        print(f"fitted in {time.monotonic() - t0:.1f} s on {args.n_train} images: {model_path}")

    # what the camera serves, in name order: five good parts, a defective one
    served = tmp / "camera"
    served.mkdir()
    parts = test_good[:5] + defects[:1]
    for i, src in enumerate(parts):
        os.symlink(src, served / f"part{i:02d}_{src.parent.name}{src.suffix}")

    app = QApplication.instance() or QApplication([])
    app.setOrganizationName("DINOInspect")
    app.setApplicationName("DINOInspect")
    broker = Broker(tmp)
    topic = "plant/line1"
    line = Subscriber(broker.port, [f"{topic}/verdict"])
    window = MainWindow(restore_recipe=False)
    window.resize(1500, 920)
    window.set_station("line1")
    window.show()

    def wait(condition, what: str, limit_s: float = 600) -> None:
        end = time.monotonic() + limit_s
        while not condition():
            if time.monotonic() > end:
                raise SystemExit(f"error: timed out waiting for {what}: {window.message_bar.text}")
            app.processEvents()
            time.sleep(0.01)

    try:
        window.set_line_settings(LineSettings(enabled=True, host="127.0.0.1", port=broker.port, topic_prefix="plant"))
        wait(lambda: window.line.state == "connected", "the broker")
        window.open_recipe(model_path)
        wait(lambda: window.info is not None and not window.busy, "the recipe")
        window.start_live(CameraConfig(kind="basler", trigger="software", pixel_format="RGB8",
                                       emulator_images=str(served)))
        wait(lambda: window.live.triggered or not window.live_running, "the camera")
        if not window.live.triggered:
            raise SystemExit(f"error: camera did not start: {window.message_bar.text}")
        verdicts = []
        for i in range(len(parts)):
            line.client.publish(f"{topic}/trigger", json.dumps({"id": f"PLC-{i + 1}"}), qos=1)
            wait(lambda: window.log.count() == i + 1 and not window.live.in_flight, f"trigger PLC-{i + 1}")
            wait(lambda: len(verdicts) == i + 1 or bool(verdicts.extend(json.loads(p)["verdict"]
                                                                        for _, p, _, _ in line.drain())),
                 f"the verdict message of PLC-{i + 1}")
        print(f"verdicts on the topic: {verdicts}; camera {window.station_status.camera.state}, "
              f"line {window.station_status.broker.state}")
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(out))
        # 256 colours (median cut) keep it under 300 kB
        Image.open(out).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
        print(f"saved {out}: {out.stat().st_size / 1024:.0f} kB")
        window.stop_live()
        wait(lambda: not window.live_running, "the camera to stop")
    finally:
        window.close()
        line.close()
        broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
