"""evaluate with ground truth that is not what the metrics assume (ringed, empty, missing masks), and
the streamed evaluation against metrics computed from every full-size map and mask held at once."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
from PIL import Image

from engine import metrics
from engine.anomaly_map import shrink_map
from engine.datasets import load_category
from engine.evaluate import evaluate_category, example_picks
from engine.images import read_mask
from engine.model import InspectionModel


FAST = {"synthetic": 0}  # no synthetic defects at fit: the threshold is not what these tests check


def _model():
    return InspectionModel.create("efficientnet_lite0", "knn", size=64, device="cpu",
                                  scorer_params={"coreset_ratio": 0.5})


def _ring_masks(root):
    for f in sorted((root / "ground_truth").rglob("*_mask.png")):
        m = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        j = cv2.imdecode(cv2.imencode(".jpg", m, [cv2.IMWRITE_JPEG_QUALITY, 90])[1], cv2.IMREAD_GRAYSCALE)
        assert (j > 0).sum() > (m > 0).sum()  # the ringing really adds grey pixels
        cv2.imwrite(str(f), j)


def test_jpeg_ringed_masks_give_the_clean_pixel_metrics_and_a_warning(synthetic_mvtec, tmp_path, capsys):
    from cli.evaluate import print_eval

    ringed = tmp_path / "ringed"
    shutil.copytree(synthetic_mvtec, ringed)
    _ring_masks(ringed)
    clean = evaluate_category(synthetic_mvtec, _model(), report_dir=tmp_path / "r_clean", n_examples=3,
                              fit_kwargs=FAST)
    rep = evaluate_category(ringed, _model(), report_dir=tmp_path / "r_ringed", n_examples=3,
                             fit_kwargs=FAST)
    for k in ("pixel_auroc", "aupro"):
        assert rep["metrics"][k] == pytest.approx(clean["metrics"][k], abs=1e-9)
    assert clean["ground_truth"]["non_binary"] == 0 and rep["ground_truth"]["non_binary"] == 4
    assert "4 mask(s) were not binary" in (tmp_path / "r_ringed" / "summary.md").read_text()
    assert "Ground truth" not in (tmp_path / "r_clean" / "summary.md").read_text()
    capsys.readouterr()
    print_eval(rep)  # the console says it once, on stderr
    assert capsys.readouterr().err.count("mask(s) were not binary") == 1


def test_empty_and_missing_masks_of_defects_are_left_out_of_pixel_metrics_and_named(synthetic_mvtec, tmp_path):
    both_missing = tmp_path / "missing"
    shutil.copytree(synthetic_mvtec, both_missing)
    gt = synthetic_mvtec / "ground_truth" / "scratch"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(gt / "000_mask.png")  # a defect with no marked pixel
    (gt / "001_mask.png").unlink()
    for name in ("000_mask.png", "001_mask.png"):
        (both_missing / "ground_truth" / "scratch" / name).unlink()
    res = evaluate_category(synthetic_mvtec, _model(), report_dir=tmp_path / "r", fit_kwargs=FAST)
    ref = evaluate_category(both_missing, _model(), fit_kwargs=FAST)
    assert [p.rsplit("/", 1)[-1] for p in res["ground_truth"]["empty"]] == ["000_mask.png"]
    assert res["ground_truth"]["missing"] == ["scratch/001.png"]
    assert ref["ground_truth"]["missing"] == ["scratch/000.png", "scratch/001.png"]
    for k in ("pixel_auroc", "aupro"):  # the empty mask counts exactly as no mask
        assert res["metrics"][k] == pytest.approx(ref["metrics"][k], abs=1e-12)
    summary = (tmp_path / "r" / "summary.md").read_text()
    assert "1 defective image(s) have a mask with no defect pixel" in summary and "000_mask.png" in summary
    assert "1 defective image(s) have no mask" in summary


def test_streamed_evaluation_equals_metrics_from_all_maps_held_at_once(synthetic_mvtec, tmp_path):
    model = _model()
    res = evaluate_category(synthetic_mvtec, model, report_dir=tmp_path / "r", n_examples=4, metric_size=32,
                            fit_kwargs=FAST)
    cat = load_category(synthetic_mvtec)
    labels, scores, masks, maps = [], [], [], []
    for path, pred, img, err in model.predict_paths([s.path for s in cat.test]):  # the fitted model again
        s = next(t for t in cat.test if t.path == path)
        m = read_mask(s.mask_path, img.shape[:2]) if s.mask_path else np.zeros(img.shape[:2], bool)
        labels.append(s.label)
        scores.append(pred.score)
        masks.append(shrink_map(m, 32, nearest=True))
        maps.append(shrink_map(pred.anomaly_map, 32))
    ref = metrics.compute_all(np.array(labels), np.array(scores), masks, maps, threshold=model.threshold)
    for k, v in ref.items():
        assert res["metrics"][k] == pytest.approx(v, rel=1e-6, abs=1e-9), k
    shown = sorted(p.name for p in (tmp_path / "r" / "overlays").glob("*.png"))
    want = sorted(f"{s.defect_type}_{s.path.stem}.png" for s in example_picks(cat.test, 4))
    assert shown == want and len(want) == 4


def test_example_picks_are_bounded_and_spread_over_defects():
    from engine.datasets import Sample
    from pathlib import Path

    test = [Sample(Path(f"g{i}.png"), 0, "good") for i in range(50)] + \
           [Sample(Path(f"d{i}.png"), 1, "crack") for i in range(500)]
    picks = example_picks(test, 6)
    assert [p.path.name for p in picks] == ["g0.png", "g1.png", "d0.png", "d125.png", "d250.png", "d375.png"]
