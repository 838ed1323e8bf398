"""Integration: fit + evaluate on a real category from ../shared/data with the offline backbone.

Bounds come from measurements (see the closing note of issue 2 / docs): on mvtec_ad/bottle at
256 px EfficientNet-Lite0 + k-NN reached image AUROC 1.00, pixel AUROC 0.987, AUPRO 0.94; the
bounds below leave room for run-to-run noise of the coreset seed, and are the issue's targets.
"""

import pytest

from engine.evaluate import evaluate_category
from engine.model import InspectionModel

from tests.conftest import real_category


@pytest.mark.realdata
def test_bottle_fit_and_evaluate_meets_measured_bounds(tmp_path):
    root = real_category("mvtec_ad/bottle")
    model = InspectionModel.create("efficientnet_lite0", "knn", size=256, device="cpu")
    res = evaluate_category(root, model, report_dir=tmp_path / "bottle")
    m = res["metrics"]
    assert res["n_test"] == 83 and res["backbone"]["name"] == "efficientnet_lite0"
    assert m["image_auroc"] >= 0.99
    assert m["pixel_auroc"] >= 0.97
    assert m["aupro"] >= 0.85
    assert m["f1_max"] >= 0.95
    # the good-only threshold must not reject most good parts nor accept most defects
    assert m["recall"] >= 0.8 and m["precision"] >= 0.8
    assert (tmp_path / "bottle" / "summary.md").is_file()
