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
    th = Thresholds(applied=66.0, calibrated=66.0, floor=10.0, recipe="bottle")
    r = result(50.0, 66.0)  # map 0..100 over 8 rows, row-major
    for t in (66.0, 41.2):  # applied, then a preview
        th.set_preview(t)
        unit, outline = th.map_display(r)
        expected = np.clip(0.5 * (r.anomaly_map - 10.0) / (t - 10.0), 0, 1)
        assert np.allclose(unit, expected, atol=1e-6)
        assert th.contour_level() == 0.5 and f"threshold {t:.4g}" in th.scale_text()
        if t == 66.0:  # score 50 < 66: OK, nothing to outline although the map reaches 100
            assert outline is None
        else:  # NOK in the preview: outlined where the map reaches 41.2 (from map row 3 of 8 down)
            ys = outline[1][~np.isnan(outline[1])]
            assert 20 <= ys.min() <= 40 and ys.max() > 70  # image pixels: the 8x8 map covers 80x80
    unit_logged, level = th.display(r, threshold=66.0)  # e.g. a NOK image saved when inspected
    assert np.allclose(unit_logged, np.clip(0.5 * (r.anomaly_map - 10.0) / 56.0, 0, 1), atol=1e-6)
    assert level is None  # OK at 66


def test_without_a_threshold_the_recipe_s_display_range_is_the_scale_and_outlines_every_part():
    th = Thresholds(display_range={"floor": 10.0, "anchor": 60.0}, recipe="r")
    r = result(50.0, None)
    unit, outline = th.map_display(r)
    assert np.allclose(unit, np.clip(0.5 * (r.anomaly_map - 10.0) / 50.0, 0, 1), atol=1e-6)
    assert outline is not None and outline[0].size > 0  # no verdict: outlined where the map reaches 60
    assert th.normalised(50.0) is None and "no threshold" in th.scale_text() and th.scale_floor == 10.0
    bare = Thresholds(recipe="old")  # an older file with neither: stretched per image, no outline
    unit, outline = bare.map_display(r)
    assert unit.min() == 0.0 and unit.max() == 1.0 and outline is None and "per image" in bare.scale_text()
    assert bare.scale_floor == 0.0  # the threshold slider's range starts there
