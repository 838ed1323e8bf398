"""The app and ``predict`` draw the same overlay of the same part: same colour at every pixel, the
same outline, on a NOK part only (engine.overlay is the one rule both call)."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from tests.conftest import texture


def test_app_and_predict_show_the_same_colours_and_outlines(toy_model, tmp_path, capsys):
    from engine.images import read_image
    from engine.model import InspectionModel
    from engine.overlay import blend
    from gui.verdict import Thresholds
    from gui.worker import InspectionWorker, model_info
    from main import main

    rng = np.random.default_rng(7)
    parts = tmp_path / "parts"
    parts.mkdir()
    good, bad = texture(rng), texture(rng)
    bad[18:38, 22:42] = [250, 20, 20]
    Image.fromarray(good).save(parts / "good.png")
    Image.fromarray(bad).save(parts / "bad.png")
    assert main(["predict", "--model", str(toy_model), str(parts), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    capsys.readouterr()

    model = InspectionModel.load(toy_model, device="cpu")
    worker = InspectionWorker(device="cpu")
    worker._model = model  # the worker's own result-making, without its thread
    th = Thresholds.from_info(model_info(model, toy_model))
    for name, want in (("good", "OK"), ("bad", "NOK")):
        img = read_image(parts / f"{name}.png")
        r = worker._result("image", name, model.predict([img])[0], img, None)
        assert r.verdict == want
        png = cv2.cvtColor(cv2.imread(str(tmp_path / "out" / "overlays" / f"parts_{name}.png")), cv2.COLOR_BGR2RGB)
        unit, level = th.display(r)
        assert np.array_equal(blend(img, unit, level), png)  # every pixel: colours and outline
        white = np.all(png == 255, axis=2)
        _, outline = th.map_display(r)
        if want == "OK":
            assert level is None and outline is None and not white.any()
        else:
            x, y = outline
            xy = np.column_stack([x, y])[~np.isnan(x)]
            cols, rows = np.floor(xy[:, 0]).astype(int), np.floor(xy[:, 1]).astype(int)
            assert white.any() and white[rows, cols].all()  # the app's outline runs on predict's white pixels
            ys, xs = np.nonzero(white)
            assert ys.min() < 38 and ys.max() > 18 and xs.min() < 42 and xs.max() > 22  # around the defect
