"""The threshold panel's expected false-reject rate (pytest-qt, offscreen)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from gui.threshold_widget import ThresholdPanel


def test_expected_frr_follows_the_threshold_with_clopper_pearson_interval(qtbot):
    panel = ThresholdPanel()
    qtbot.addWidget(panel)
    good = np.arange(1.0, 21.0)  # 20 calibration scores 1..20
    panel.set_calibration(18.5, 0.0, good)
    f = panel.expected_frr()
    # 19 and 20 are >= 18.5: 2 of 20; interval computed independently by scipy's exact binomial test
    ci = binomtest(2, 20).proportion_ci(confidence_level=0.95, method="exact")
    assert f["exceed"] == 2 and f["n"] == 20 and f["estimate"] == pytest.approx(0.1)
    assert f["ci95"] == pytest.approx([ci.low, ci.high], abs=1e-9)
    assert "10.0%" in panel.frr_label.text() and "2 of 20" in panel.frr_label.text()

    panel.set_threshold(25.0)  # above every good score: 0 of 20, upper bound 1 - 0.025^(1/20)
    f = panel.expected_frr()
    assert f["exceed"] == 0 and f["ci95"][1] == pytest.approx(1 - 0.025 ** (1 / 20), rel=1e-6)
    assert "0 of 20" in panel.frr_label.text()


def test_without_calibration_scores_the_label_says_so(qtbot):
    panel = ThresholdPanel()
    qtbot.addWidget(panel)
    panel.set_calibration(1.0, 0.0, [])
    assert panel.expected_frr() is None
    assert "no calibration scores" in panel.frr_label.text()


def test_weak_threshold_warning_reaches_the_operator_message():
    from gui.main_window import MainWindow
    from gui.worker import model_info

    class FakeModel:  # only what model_info reads
        threshold = 3.0
        calibration = {"threshold": 3.0, "chosen_by": "good-only", "holdout_scores": [1.0, 2.0],
                       "synthetic": {"detection_rate": 0.1, "n": 32}}
        provenance = {"n_fit": 2}

        class backbone:
            name, weights_source = "efficientnet_lite0", "package"

        class scorer:
            name = "knn"

        class pre:
            size = 64

        def color_range(self):
            return (1.0, 3.0)

        def describe(self):
            return "fake"

    info = model_info(FakeModel(), "part.dimodel")
    note = MainWindow._calibration_note(None, info)
    assert "Only 10% of 32 synthetic defects" in note and "slider" in note
    FakeModel.calibration = FakeModel.calibration | {"synthetic": {"detection_rate": 0.9, "n": 32}}
    assert MainWindow._calibration_note(None, model_info(FakeModel(), "part.dimodel")) == ""
