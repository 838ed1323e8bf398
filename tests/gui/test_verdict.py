"""Which threshold judges what on screen (gui.verdict): logged verdicts stay, previews are marked,
colours and contours follow the threshold in use."""

from __future__ import annotations

import numpy as np
import pytest

from gui.run_results import InspectionResult
from gui.verdict import Thresholds


def result(score: float, threshold: float) -> InspectionResult:
    amap = np.linspace(0.0, 100.0, 64, dtype=np.float32).reshape(8, 8)
    return InspectionResult(source="folder", name="a.png", score=score, anomaly_map=amap, image_hw=(80, 80),
                            threshold=threshold)


def test_without_preview_the_screen_shows_the_logged_verdict():
    th = Thresholds(applied=66.0, calibrated=66.0, floor=10.0, recipe="bottle")
    r = result(50.0, 66.0)
    v = th.screen_verdict(r)
    assert (v.verdict, v.preview, v.note) == ("OK", False, "")
    assert v.normalised == pytest.approx(0.5 * 40 / 56)


def test_preview_is_marked_and_names_the_logged_verdict():
    th = Thresholds(applied=66.0, calibrated=66.0, floor=10.0, recipe="bottle")
    assert th.set_preview(41.2) and th.in_use == 41.2
    v = th.screen_verdict(result(50.0, 66.0))
    assert v.verdict == "NOK" and v.preview
    assert v.note == "Preview: NOK at 41.2 — not applied. Logged: OK at 66."
    assert v.normalised == pytest.approx(0.5 * 40 / 31.2)
    assert th.set_preview(66.0) and not th.previewing  # the applied value itself ends the preview
    assert not th.set_preview(None)


def test_result_logged_before_an_apply_keeps_its_verdict_and_says_what_the_new_one_would_give():
    th = Thresholds(applied=41.2, calibrated=66.0, floor=10.0, recipe="bottle")
    v = th.screen_verdict(result(50.0, 66.0))
    assert v.verdict == "OK" and not v.preview
    assert "Logged: OK at 66" in v.note and "at the applied threshold 41.2 it would be NOK" in v.note
    v = th.screen_verdict(result(30.0, 66.0))  # the same verdict either way: no "would be"
    assert v.verdict == "OK" and v.note == "Logged: OK at 66 (the threshold then in force)."


def test_colours_and_contours_follow_the_threshold_in_use():
    th = Thresholds(applied=66.0, calibrated=66.0, floor=10.0, pixel_threshold=80.0, recipe="bottle")
    r = result(50.0, 66.0)
    for t in (66.0, 41.2):  # applied, then a preview
        th.set_preview(t)
        unit, outline = th.map_display(r)
        expected = np.clip(0.5 * (r.anomaly_map - 10.0) / (t - 10.0), 0, 1)
        assert np.allclose(unit, expected, atol=1e-6)
        assert th.contour_level() == pytest.approx(min(0.5 * 70.0 / (t - 10.0), 1.0))
        if t == 66.0:  # score 50 < 66: OK, nothing to outline although the map reaches 80
            assert outline is None
        else:  # NOK in the preview: outlined where the map reaches the pixel threshold 80 (last rows)
            assert outline[0].size > 0 and np.nanmax(outline[1]) > 60  # NaN separates curves
    unit_logged, _ = th.map_display(r, threshold=66.0, contours=False)  # e.g. a NOK image saved when inspected
    assert np.allclose(unit_logged, np.clip(0.5 * (r.anomaly_map - 10.0) / 56.0, 0, 1), atol=1e-6)
