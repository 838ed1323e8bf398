"""The threshold panel: expected false-reject rate, preview / apply / revert, slider scale (pytest-qt, offscreen)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from gui.threshold_widget import STEPS, SliderScale, ThresholdPanel, spin_step
from gui.verdict import Thresholds


def recipe(threshold: float, floor: float = 0.0, calibrated: float | None = None) -> Thresholds:
    return Thresholds(applied=threshold, calibrated=threshold if calibrated is None else calibrated, floor=floor,
                      recipe="part")


def test_expected_frr_follows_the_threshold_with_clopper_pearson_interval(qtbot):
    panel = ThresholdPanel()
    qtbot.addWidget(panel)
    good = np.arange(1.0, 21.0)  # 20 calibration scores 1..20
    panel.set_recipe(recipe(18.5), good)
    f = panel.expected_frr()
    # 19 and 20 are >= 18.5: 2 of 20; interval computed independently by scipy's exact binomial test
    ci = binomtest(2, 20).proportion_ci(confidence_level=0.95, method="exact")
    assert f["exceed"] == 2 and f["n"] == 20 and f["estimate"] == pytest.approx(0.1)
    assert f["ci95"] == pytest.approx([ci.low, ci.high], abs=1e-9)
    assert "10.0%" in panel.frr_label.text() and "2 of 20" in panel.frr_label.text()

    panel.set_threshold(25.0)  # a preview above every good score: 0 of 20, upper bound 1 - 0.025^(1/20)
    f = panel.expected_frr()
    assert f["exceed"] == 0 and f["ci95"][1] == pytest.approx(1 - 0.025 ** (1 / 20), rel=1e-6)
    assert "0 of 20" in panel.frr_label.text() and "(preview)" in panel.frr_label.text()
    assert "at the applied 18.5: 10.0%" in panel.frr_label.text()


def test_without_calibration_scores_the_label_says_so(qtbot):
    panel = ThresholdPanel()
    qtbot.addWidget(panel)
    panel.set_recipe(recipe(1.0), [])
    assert panel.expected_frr() is None
    assert "no calibration scores" in panel.frr_label.text()


def test_preview_apply_and_revert(qtbot):
    panel = ThresholdPanel()
    qtbot.addWidget(panel)
    panel.set_recipe(recipe(10.0, calibrated=12.0), np.arange(1.0, 21.0))
    assert not panel.thresholds.previewing and not panel.apply_button.isEnabled()
    assert panel.status_label.text() == "Applied 10 (calibrated 12)"
    with qtbot.waitSignal(panel.preview_changed):
        panel.slider.setValue(panel.slider.value() + 40)  # the operator drags the slider
    th = panel.thresholds
    assert th.previewing and th.applied == 10.0 and th.preview == pytest.approx(panel.value_at(panel.slider.value()))
    assert panel.threshold() == th.preview and panel.spin.value() == pytest.approx(th.preview, abs=panel.spin.singleStep())
    assert panel.apply_button.isEnabled() and panel.revert_button.isEnabled()
    assert panel.status_label.text().startswith("Preview ") and "not applied" in panel.status_label.text()
    with qtbot.waitSignal(panel.apply_requested) as blocker:
        panel.apply_button.click()
    assert blocker.args == [th.preview]
    assert th.applied == 10.0  # applying is the window's job: nothing changes until set_applied
    panel.revert_button.click()
    assert not th.previewing and panel.threshold() == 10.0
    assert panel.slider.value() == STEPS // 2  # the applied threshold sits in the middle of the scale
    panel.reset_to_calibrated()
    assert th.preview == 12.0
    panel.set_applied(12.0)
    assert th.applied == 12.0 and not th.previewing and not panel.apply_button.isEnabled()


def test_slider_scale_is_fine_near_the_applied_threshold_and_invertible():
    scale = SliderScale(0.0, 140.0, 66.0)
    values = np.array([scale.value(p) for p in range(STEPS + 1)])
    assert values[0] == pytest.approx(0.0) and values[-1] == pytest.approx(140.0)
    assert values[STEPS // 2] == pytest.approx(66.0) and np.all(np.diff(values) > 0)
    steps = np.diff(values)
    assert steps[STEPS // 2] < 0.001 * 66.0  # one step near the threshold: under 0.1 % of it
    assert steps[-1] > 20 * steps[STEPS // 2]  # coarse far away
    assert all(scale.position(scale.value(p)) == p for p in range(0, STEPS + 1, 7))
    assert scale.position(-5.0) == 0 and scale.position(500.0) == STEPS


def test_spin_step_is_a_round_tenth_of_a_percent():
    assert spin_step(66.0) == pytest.approx(0.01) and spin_step(0.4123) == pytest.approx(1e-4)
    assert spin_step(1234.0) == pytest.approx(1.0) and spin_step(0.0) == 1e-3


def test_weak_threshold_warning_reaches_the_operator_message():
    from engine.value_range import STANDALONE
    from gui.recipes import calibration_note
    from gui.worker import model_info

    class FakeModel:  # only what model_info reads
        threshold = 3.0
        calibration = {"threshold": 3.0, "chosen_by": "good-only", "holdout_scores": [1.0, 2.0],
                       "synthetic": {"detection_rate": 0.1, "n": 32}}
        provenance = {"n_fit": 2}
        display_range, top_fraction = None, 0.01
        value_range = STANDALONE

        class backbone:
            name, weights_source = "efficientnet_lite0", "package"

        class scorer:
            name = "knn"

        class pre:
            size = 64

        def describe(self):
            return "fake"

    info = model_info(FakeModel(), "part.dimodel")
    note = calibration_note(info)
    assert "Only 10% of 32 synthetic defects" in note and "slider" in note
    FakeModel.calibration = FakeModel.calibration | {"synthetic": {"detection_rate": 0.9, "n": 32}}
    assert calibration_note(model_info(FakeModel(), "part.dimodel")) == ""
