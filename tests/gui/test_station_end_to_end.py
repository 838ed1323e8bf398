"""The whole station, end to end, offscreen: a recipe with a region of interest, pylon's emulated
Basler camera (``PYLON_CAMEMU``) in software-trigger mode serving synthetic parts from a folder, a
real mosquitto broker, triggers sent by the line as MQTT messages (and by the operator's Trigger
button and F5 key), and the verdicts checked in the defect log, on the verdict topic, in the verdict
strip and against the region: a defect outside it leaves the part OK, the same defect inside makes it
NOK. Window, grabber, worker, model, SQLite log, broker and camera emulation are the real ones.

Skips (with the reason) only when pypylon or mosquitto is missing outside CI; under ``CI=true`` a
missing one fails the test (:func:`tests.mqtt_broker.require_mosquitto`, :func:`require_pypylon`)."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from engine.model import InspectionModel
from engine.roi import RegionOfInterest
from gui.camera import CameraConfig
from gui.defect_log import COLUMNS
from gui.mqtt_bridge import LineSettings
from tests.conftest import texture
from tests.gui.window_helpers import TIMEOUT_MS, make_window, open_recipe
from tests.mqtt_broker import Broker, Subscriber

WAIT_MS = 30_000
SIDE = 128
"""Side of the synthetic parts and the recipe's network input (px)."""
STATION, PREFIX = "cell7", "plant"


def require_pypylon() -> None:
    try:
        import pypylon.pylon  # noqa: F401
    except ImportError:
        reason = "pypylon not installed (pip install pypylon; it is in the 'station' and 'test' extras)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason + ": CI must run the station test")
        pytest.skip(reason)


def rect(x0: int, y0: int, x1: int, y1: int) -> list[tuple[int, int]]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


@pytest.fixture
def station_parts(tmp_path):
    """Ten good parts to fit on, the region (left 48 columns of 128), and the folder the camera
    serves, in name order: a good part, a red defect right of the region, the same defect inside it,
    another good part. Returns (good paths, region, served paths, verdict expected for each)."""
    rng = np.random.default_rng(0)
    good = tmp_path / "good"
    good.mkdir()
    paths = []
    for i in range(10):
        paths.append(good / f"{i:02d}.png")
        Image.fromarray(texture(rng, SIDE)).save(paths[-1])
    clean, other = texture(rng, SIDE), texture(rng, SIDE)

    def painted(x: int) -> np.ndarray:
        out = clean.copy()
        out[58:70, x:x + 12] = [250, 20, 20]
        return out

    roi = RegionOfInterest(include=[rect(0, 0, 47, SIDE - 1)], ref_width=SIDE, ref_height=SIDE)
    served = tmp_path / "line"
    served.mkdir()
    parts = {"00_good": clean, "01_defect_outside": painted(108), "02_defect_inside": painted(16),
             "03_good": other}
    for name, img in parts.items():
        Image.fromarray(img).save(served / f"{name}.png")
    # the defects sit where the region says: outside it entirely, and inside it entirely
    mask = roi.pixel_mask(SIDE, SIDE)
    assert not mask[58:70, 108:120].any() and mask[58:70, 16:28].all()
    return paths, roi, served, ["OK", "OK", "NOK", "OK"]


def fitted_recipe(paths, roi, target):
    model = InspectionModel.create("efficientnet_lite0", "knn", size=SIDE, device="cpu",
                                   scorer_params={"coreset_ratio": 0.5})
    model.roi = roi  # set before the fit, like the worker does for a recipe's region
    model.fit(paths)
    model.save(target)
    return model


def test_triggers_from_the_line_give_one_logged_and_published_verdict_each_honouring_the_region(
        qtbot, data_dir, tmp_path, station_parts, monkeypatch):
    require_pypylon()
    monkeypatch.setenv("PYLON_CAMEMU", "1")
    paths, roi, served, expected = station_parts
    recipe = tmp_path / "recipes" / "station.dimodel"
    recipe.parent.mkdir()
    model = fitted_recipe(paths, roi, recipe)
    # the region is what keeps the outside defect OK: the same parts on a whole-image recipe
    plain = InspectionModel.create("efficientnet_lite0", "knn", size=SIDE, device="cpu",
                                   scorer_params={"coreset_ratio": 0.5})
    plain.fit(paths)
    outside = np.asarray(Image.open(served / "01_defect_outside.png"))
    assert plain.predict([outside])[0].verdict == "NOK"
    assert model.predict([outside])[0].verdict == "OK"

    broker = Broker(tmp_path)
    topic = f"{PREFIX}/{STATION}"
    sub = Subscriber(broker.port, [f"{topic}/verdict", f"{topic}/trigger/result"])
    got: list[tuple[str, dict]] = []

    def on(name: str) -> list[dict]:
        got.extend((t, json.loads(p)) for t, p, _, _ in sub.drain())
        return [m for t, m in got if t == f"{topic}/{name}"]

    window = make_window(qtbot, restore_recipe=False)
    try:
        window.set_station(STATION)
        window.set_line_settings(LineSettings(enabled=True, host="127.0.0.1", port=broker.port, topic_prefix=PREFIX))
        qtbot.waitUntil(lambda: window.line.state == "connected", timeout=WAIT_MS)
        open_recipe(qtbot, window, recipe)
        assert window.info["roi"] == roi.to_json()  # the recipe's region reached the app (and the view's outline)
        window.start_live(CameraConfig(kind="basler", trigger="software", pixel_format="RGB8",
                                       emulator_images=str(served)))
        qtbot.waitUntil(lambda: window.live.triggered or not window.live_running, timeout=WAIT_MS)
        assert window.live.triggered, window.message_bar.text
        assert window.station_status.camera.state == "connected"
        assert window.station_status.broker.state == "connected"

        # one trigger at a time, each after the previous verdict: the emulator serves the folder's
        # images in name order, one per trigger, so the k-th trigger sees part k mod 4
        plan = [("mqtt", "PLC-1"), ("mqtt", "PLC-2"), ("mqtt", "PLC-3"), ("mqtt", "PLC-4"),
                ("button", None), ("key", None), ("mqtt", "PLC-7")]
        for k, (origin, tid) in enumerate(plan):
            if origin == "mqtt":
                sub.client.publish(f"{topic}/trigger", json.dumps({"id": tid}), qos=1)
            elif origin == "button":
                window.actions.trigger.trigger()
            else:
                window.activateWindow()
                qtbot.keyClick(window, Qt.Key.Key_F5)
            qtbot.waitUntil(lambda: window.log.count() == k + 1 and not window.live.in_flight, timeout=TIMEOUT_MS)
            qtbot.waitUntil(lambda: len({m["log_id"] for m in on("verdict")}) == k + 1, timeout=WAIT_MS)
        time.sleep(0.2)  # a second verdict for a trigger (there must be none) would arrive in this time
        results = window.results.results
        assert [r.origin for r in results] == [o for o, _ in plan]
        assert [r.trigger_id for r in results][:4] == ["PLC-1", "PLC-2", "PLC-3", "PLC-4"]
        assert results[6].trigger_id == "PLC-7" and len({r.trigger_id for r in results}) == len(plan)
        replies = on("trigger/result")
        assert [(m["trigger_id"], m["ok"]) for m in replies] == [(t, True) for o, t in plan if o == "mqtt"]

        # each trigger: exactly one log row and one verdict message (deduplicated on log_id), equal
        rows = [dict(zip(COLUMNS, r)) for r in window.log.rows(newest_first=False)]
        msgs = list({m["log_id"]: m for m in on("verdict")}.values())
        assert len(rows) == len(plan) and len(msgs) == len(plan)
        assert [m["log_id"] for m in msgs] == [r["id"] for r in rows]
        assert [m["trigger_id"] for m in msgs] == [r.trigger_id for r in results]
        for row, m, r in zip(rows, msgs, results):
            assert (m["file"], m["verdict"], m["time"]) == (row["file"], row["verdict"], row["time"])
            assert m["score"] == pytest.approx(row["score"]) and m["threshold"] == pytest.approx(row["threshold"])
            assert (m["station"], m["recipe"], m["origin"]) == (STATION, "station", r.origin)
            assert row["source"] == "basler" and m["trigger_to_publish_ms"] >= m["latency_ms"] > 0

        # the region decides: part k mod 4 of the folder, in order
        want = [expected[k % len(expected)] for k in range(len(plan))]
        assert [r["verdict"] for r in rows] == want
        assert window.strip.verdicts() == want
        assert window.station_status.camera.state == "connected"
        assert window.station_status.broker.state == "connected"
        window.stop_live()
        qtbot.waitUntil(lambda: not window.live_running, timeout=WAIT_MS)
    finally:
        window.close()
        sub.close()
        broker.stop()
