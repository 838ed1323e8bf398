"""The CLI with a region of interest: fit --roi, predict / calibrate using the model's region,
evaluate --roi, and one-line errors for a missing or damaged region file."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from engine.roi import RegionOfInterest
from main import main
from tests.conftest import texture

BACKBONE = ["--backbone", "efficientnet_lite0", "--size", "128", "--quiet"]


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    """10 good 128 px parts, a region over the left 48 columns, and test images: clean, a red
    block far outside the region, the same block inside it."""
    root = tmp_path_factory.mktemp("cli_roi")
    rng = np.random.default_rng(0)
    for sub in ("good", "test", "more_good"):
        (root / sub).mkdir()
    for i in range(10):
        Image.fromarray(texture(rng, 128)).save(root / "good" / f"{i:02d}.png")
    for i in range(3):
        Image.fromarray(texture(rng, 128)).save(root / "more_good" / f"{i:02d}.png")
    clean = texture(rng, 128)
    for name, x in (("outside", 108), ("inside", 16)):
        img = clean.copy()
        img[58:70, x:x + 12] = [250, 20, 20]
        Image.fromarray(img).save(root / "test" / f"{name}.png")
    Image.fromarray(clean).save(root / "test" / "clean.png")
    RegionOfInterest(include=[[(0, 0), (47, 0), (47, 127), (0, 127)]], ref_width=128,
                     ref_height=128).save(root / "left.roi.json")
    return root


def verdicts(csv_path):
    return {r["file"].rsplit("/", 1)[-1]: r["verdict"] for r in csv.DictReader(open(csv_path))}


def test_fit_roi_then_predict_and_calibrate_use_the_models_region(station, tmp_path, capsys):
    model = tmp_path / "left.dimodel"
    rc = main(["fit", "--good", str(station / "good"), "--out", str(model), "--roi", str(station / "left.roi.json"),
               *BACKBONE])
    assert rc == 0
    assert "roi=1 include, 0 exclude" in capsys.readouterr().err  # the banner names the region
    rc = main(["predict", "--model", str(model), str(station / "test"), "--out", str(tmp_path / "out"), "--quiet"])
    assert rc == 0
    assert verdicts(tmp_path / "out" / "predictions.csv") == {"clean.png": "OK", "outside.png": "OK",
                                                              "inside.png": "NOK"}
    rc = main(["calibrate", "--model", str(model), "--good", str(station / "more_good"), "--quiet"])
    assert rc == 0
    from engine.model import InspectionModel

    assert InspectionModel.load(model, device="cpu").roi == RegionOfInterest.load(station / "left.roi.json")


@pytest.mark.parametrize("content, expected", [
    (None, "cannot read the region of interest"),
    ("{oops", "not JSON"),
    (json.dumps({"format": "dinoinspect-roi/1", "reference_size": [10, 10], "include": [[[0, 0], [1, 1]]]}),
     "at least 3"),
    (json.dumps({"include": []}), "not a DINOInspect region of interest"),
    (json.dumps({"format": "dinoinspect-roi/1", "reference_size": [512]}), "must be [width, height]"),
    # wholly outside its reference image, and wholly excluded: told before any slow work
    (json.dumps({"format": "dinoinspect-roi/1", "reference_size": [64, 64],
                 "include": [[[600, 600], [900, 600], [900, 900]]]}), "keeps no pixel of its 64x64 reference"),
    (json.dumps({"format": "dinoinspect-roi/1", "reference_size": [64, 64],
                 "exclude": [[[0, 0], [63, 0], [63, 63], [0, 63]]]}), "outside it, or all excluded"),
])
def test_bad_roi_file_is_one_line_naming_it(station, tmp_path, capsys, content, expected):
    roi = tmp_path / "part.roi.json"
    if content is not None:
        roi.write_text(content)
    rc = main(["fit", "--good", str(station / "good"), "--out", str(tmp_path / "m.dimodel"), "--roi", str(roi),
               *BACKBONE])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "--roi" in err and str(roi) in err and expected in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "m.dimodel").exists()


def test_evaluate_roi_counts_pixels_inside_only_and_says_so(synthetic_mvtec, tmp_path, capsys):
    roi = tmp_path / "top.roi.json"
    RegionOfInterest(include=[[(0, 0), (63, 0), (63, 39), (0, 39)]], ref_width=64, ref_height=64).save(roi)
    rc = main(["evaluate", "--data", str(synthetic_mvtec), "--report", str(tmp_path / "rep"), "--roi", str(roi),
               "--backbone", "efficientnet_lite0", "--size", "64", "--quiet"])
    assert rc == 0
    m = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert m["roi"] == RegionOfInterest.load(roi).to_json() and "pixel_auroc" in m["metrics"]
    summary = (tmp_path / "rep" / "summary.md").read_text()
    assert "pixel metrics count only its pixels" in summary
    # the pixel AUROC again, by hand: the saved model's maps against the masks, region pixels only
    # (the last defect, rows 34-43, lies partly outside the region: its outside pixels must not count)
    from sklearn.metrics import roc_auc_score

    from engine.images import read_image
    from engine.model import InspectionModel

    model = InspectionModel.load(tmp_path / "rep" / "model.dimodel")
    region = RegionOfInterest.load(roi).pixel_mask(64, 64)
    labels, scores = [], []
    for kind in ("good", "scratch"):
        for path in sorted((synthetic_mvtec / "test" / kind).glob("*.png")):
            pred = model.predict([read_image(path)])[0]
            mask = np.zeros((64, 64), bool) if kind == "good" else \
                np.asarray(Image.open(synthetic_mvtec / "ground_truth" / kind / f"{path.stem}_mask.png")) > 127
            labels.append(mask[region])
            scores.append(pred.anomaly_map[region])
    expected = roc_auc_score(np.concatenate(labels), np.concatenate(scores))
    assert m["metrics"]["pixel_auroc"] == pytest.approx(expected, abs=1e-4)


def test_evaluate_roi_refuses_a_folder_of_several_categories(synthetic_mvtec, tmp_path, capsys):
    import shutil

    parts = tmp_path / "parts"
    shutil.copytree(synthetic_mvtec, parts / "a")
    shutil.copytree(synthetic_mvtec, parts / "b")
    roi = tmp_path / "top.roi.json"
    RegionOfInterest(include=[[(0, 0), (63, 0), (63, 39), (0, 39)]], ref_width=64, ref_height=64).save(roi)
    rc = main(["evaluate", "--data", str(parts), "--report", str(tmp_path / "rep"), "--roi", str(roi), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "2 categories" in err and "one category folder at a time" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "rep" / "a").exists()
