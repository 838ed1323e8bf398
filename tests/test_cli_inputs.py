"""Inputs through the commands: what a listing skipped is said on the console and in evaluate's
report; predict's --bit-depth overrides the model's depth; clipped images are warned by name."""

import csv
import json
import os

import cv2
import numpy as np
from PIL import Image

from main import main


def test_fit_says_what_it_skipped_before_any_work(tmp_path, capsys):
    good = tmp_path / "good"
    good.mkdir()
    for i in range(2):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(good / f"{i}.png")
    (good / "notes.txt").write_text("x")
    (good / "old").mkdir()
    rc = main(["fit", "--good", str(good), "--out", str(tmp_path / "no/such/m.dimodel"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2  # the unwritable --out stops it after the listing
    assert f"note: {good}: skipped 2 entries: 1 not an image type: notes.txt; 1 sub-folder, not searched: old " \
           f"(add --recursive)" in err


def test_evaluate_reports_skipped_entries_and_predict_follows_links_with_bit_depth(synthetic_mvtec, tmp_path,
                                                                                  capsys):
    (synthetic_mvtec / "train/good/readme.txt").write_text("x")
    (synthetic_mvtec / "test/scratch/Thumbs.db").write_bytes(b"\0")
    rep = tmp_path / "rep"
    rc = main(["evaluate", "--data", str(synthetic_mvtec), "--report", str(rep), "--backbone", "efficientnet_lite0",
               "--size", "64", "--folds", "2", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 0
    assert "skipped 2 entries: 2 not an image type: readme.txt, Thumbs.db" in err
    m = json.loads((rep / "metrics.json").read_text())
    assert sorted(os.path.basename(x.split(":")[0]) for x in m["inputs_skipped"]) == ["Thumbs.db", "readme.txt"]
    assert "Not taken from the folders (skipped 2 entries" in (rep / "summary.md").read_text()

    # predict: a linked sub-folder, and the same scene as 8-bit PNG and as 12-bit data in a 16-bit PNG
    a8 = np.asarray(Image.open(synthetic_mvtec / "test/good/000.png").convert("L"))
    a12 = np.rint(a8.astype(np.float64) * 4095 / 255).astype(np.uint16)  # maps back to a8 exactly at 12 bits
    far = tmp_path / "far"
    far.mkdir()
    Image.fromarray(np.repeat(a8[:, :, None], 3, 2)).save(far / "scene8.png")
    cv2.imwrite(str(far / "scene12.png"), a12)
    (tmp_path / "in").mkdir()
    os.symlink(far, tmp_path / "in" / "linked")
    rc = main(["predict", "--model", str(rep / "model.dimodel"), str(tmp_path / "in"), "--recursive",
               "--no-overlays", "--out", str(tmp_path / "p"), "--quiet", "--bit-depth", "12"])
    assert rc == 0 and "inspecting 2 images" in capsys.readouterr().err
    scores = {os.path.basename(r["file"]): float(r["score"]) for r in csv.DictReader(open(tmp_path / "p/predictions.csv"))}
    # the model learned 8-bit images (no depth of its own; a 16-bit file alone would be read as 0..65535, dark):
    # --bit-depth 12 says what the file holds, and it is then the same picture as the 8-bit copy
    assert abs(scores["scene12.png"] - scores["scene8.png"]) <= 1e-5 * scores["scene8.png"]


def test_an_image_beyond_the_model_depth_is_read_clipped_with_a_warning(tmp_path, capsys):
    from engine.images import read_image
    from engine.value_range import ValueRange

    from cli.common import route_engine_warnings

    route_engine_warnings()
    a = np.full((16, 16), 5000, np.uint16)
    cv2.imwrite(str(tmp_path / "hot.png"), a)
    out = read_image(tmp_path / "hot.png", ValueRange(bit_depth=12, source="measured", detail="12-bit from 9 good images"))
    assert (out == 255).all()
    err = capsys.readouterr().err
    assert err.startswith("warning: ") and "hot.png: 256 pixels lie outside the model's 12-bit range" in err
    assert err.count("\n") == 1
