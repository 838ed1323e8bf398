"""The one display rule (engine.overlay): colour scale fixed per model, outline at the image
threshold, only NOK parts outlined, a shared scale without a threshold, and the per-image fallback."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.overlay import (CONTOUR_LEVEL, OPACITY, DisplayScale, blend, display_map, display_range_from_patches,
                            display_scale, heatmap_lut, outline_level, render_overlay)

WHITE = (255, 255, 255)


def white(rgb: np.ndarray) -> np.ndarray:
    """Outline pixels: pure white (JET never yields it, and the test images are not white)."""
    return np.all(rgb == 255, axis=2)


def jet(value: float) -> np.ndarray:
    """OpenCV's JET colour of a value in [0, 1], RGB."""
    u8 = np.array([[round(value * 255)]], np.uint8)
    return cv2.applyColorMap(u8, cv2.COLORMAP_JET)[0, 0, ::-1].astype(int)


def test_scale_puts_the_floor_at_0_the_threshold_at_half_whatever_the_image():
    s = display_scale(40.0, {"floor": 20.0}, None)
    assert (s.floor, s.anchor, s.threshold, s.source) == (20.0, 40.0, 40.0, "threshold")
    assert s.normalise([20.0, 30.0, 40.0, 60.0, 100.0, 0.0]).tolist() == pytest.approx([0, 0.25, 0.5, 1, 1, 0])
    # the same raw score gets the same value in a quiet and in a hot map: nothing is stretched per image
    quiet, hot = np.full((4, 4), 30.0, np.float32), np.linspace(0, 90, 16, dtype=np.float32).reshape(4, 4)
    hot[0, 0] = 30.0
    assert s.normalise(quiet)[0, 0] == s.normalise(hot)[0, 0] == pytest.approx(0.25)


def test_without_a_threshold_the_display_range_anchors_the_scale():
    rng = {"floor": 10.0, "anchor": 50.0}
    s = display_scale(None, {}, rng)
    assert (s.floor, s.anchor, s.threshold, s.source) == (10.0, 50.0, None, "good-range")
    assert float(s.normalise(30.0)) == pytest.approx(0.25)
    assert display_scale(None, {}, None) is None  # an older file without either: per-image fallback
    assert display_scale(35.0, {}, None).floor == 0.0  # a threshold but no floor: scores are distances >= 0
    assert display_scale(35.0, {}, rng).floor == 10.0
    assert display_scale(35.0, {"floor": 12.0}, rng).floor == 12.0  # the calibration's floor first
    assert "no threshold" in s.describe() and "per image" in DisplayScale.per_image(np.zeros(2)).describe()


def test_display_range_is_the_median_and_a_high_quantile_of_good_patches():
    v = np.random.default_rng(0).permutation(np.arange(1001.0)).reshape(7, 11, 13)
    r = display_range_from_patches(v, quantile=0.999)
    # sorted values 0..1000: median 500, the 0.999 quantile (linear) 0.999 * 1000 = 999
    assert r["floor"] == 500.0 and r["anchor"] == pytest.approx(999.0) and r["n_patches"] == 1001
    with pytest.raises(ValueError, match="finite"):
        display_range_from_patches(np.array([np.nan]))


def test_outline_only_for_nok_parts_and_where_the_map_reaches_the_threshold():
    s = display_scale(40.0, {"floor": 20.0}, None, top_fraction=0.01)
    unit = np.zeros((50, 50), np.float32)
    unit[10:20, 30:40] = 0.8
    assert outline_level(s, 39.9, unit) is None  # OK: never outlined, whatever its map does
    assert outline_level(s, None, unit) is None
    assert outline_level(s, 40.0, unit) == CONTOUR_LEVEL == 0.5  # score == threshold: NOK
    # a NOK part whose blurred map peaks below the threshold: outlined around its top 1 % of pixels
    low = np.linspace(0, 0.4, 2500, dtype=np.float32).reshape(50, 50)
    level = outline_level(s, 45.0, low)
    assert level < 0.5 and np.mean(low >= level) == pytest.approx(0.01, abs=0.001)
    # no threshold: no verdict, outlined where the map reaches the stand-in; per-image: never
    assert outline_level(display_scale(None, {}, {"floor": 0, "anchor": 1}), None, unit) == 0.5
    assert outline_level(DisplayScale.per_image(unit), 99.0, unit) is None


def test_ok_part_gets_no_outline_and_nok_part_gets_it_around_the_defect():
    s = display_scale(40.0, {"floor": 20.0}, None)
    img = np.full((96, 128, 3), 90, np.uint8)
    good = np.full((96, 128), 25.0, np.float32)
    good[40:50, 60:70] = 38.0  # warm, below the threshold
    ok = render_overlay(img, good, s, score=38.0)
    assert not white(ok).any()
    bad = good.copy()
    bad[20:40, 80:110] = 70.0  # the defect
    nok = render_overlay(img, bad, s, score=65.0)
    ys, xs = np.nonzero(white(nok))
    assert ys.size > 0 and 16 <= ys.min() <= 22 and 38 <= ys.max() <= 44 and 76 <= xs.min() and xs.max() <= 113
    # the warm-but-good spot is not outlined in the NOK part either: only where the map reaches the threshold
    assert not white(nok)[40:50, 60:70].any()


def test_colours_come_from_the_shared_table_and_normal_regions_stay_clear():
    s = display_scale(40.0, {"floor": 20.0}, None)
    img = np.full((32, 32, 3), 100, np.uint8)
    amap = np.full((32, 32), 20.0, np.float32)  # typical good everywhere
    assert np.array_equal(render_overlay(img, amap, s, 10.0), img)  # transparent below ALPHA_START
    hot = np.full((32, 32), 60.0, np.float32)  # 2 * threshold - floor: the top of the scale
    out = render_overlay(img, hot, s, None).astype(int)
    expected = np.rint(100 * (1 - OPACITY) + jet(1.0) * OPACITY)
    assert np.abs(out[5, 5] - expected).max() <= 1
    assert np.array_equal(heatmap_lut()[255, :3], jet(1.0)) and heatmap_lut()[128, 3] == 255


def test_maps_are_displayed_at_256_px_and_blend_draws_the_outline_it_is_given():
    assert display_map(np.zeros((1024, 512), np.float32)).shape == (256, 128)
    assert display_map(np.zeros((100, 80), np.float32)).shape == (100, 80)
    img = np.full((32, 32, 3), 100, np.uint8)
    unit = np.zeros((16, 16), np.float32)
    unit[4:10, 4:10] = 0.9
    assert not white(blend(img, unit, None)).any() and white(blend(img, unit, 0.5)).any()


# ------------------------------------------------------------------ a real model without a threshold
@pytest.fixture(scope="module")
def uncalibrated(tmp_path_factory):
    """A toy model fitted with holdout 0 (no threshold), saved and loaded again; a good and a defective part."""
    from engine.model import InspectionModel
    from tests.conftest import texture, write_textures

    root = tmp_path_factory.mktemp("uncal")
    rng = np.random.default_rng(3)
    paths = write_textures(root, 8, rng)
    m = InspectionModel.create("efficientnet_lite0", "knn", size=64, device="cpu", scorer_params={"coreset_ratio": 0.5})
    m.fit(paths, holdout_fraction=0)
    m.save(root / "m.dimodel")
    good = texture(rng)
    bad = texture(rng)
    bad[20:36, 24:40] = [250, 20, 20]
    return InspectionModel.load(root / "m.dimodel", device="cpu"), good, bad


def test_a_model_without_threshold_keeps_a_display_range_from_good_patches_it_did_not_learn(uncalibrated):
    from engine.images import read_image

    m, good, _ = uncalibrated
    assert m.threshold is None and not m.calibration
    r = m.display_range
    assert r["n_patches"] > 0 and r["anchor"] > r["floor"] > 0  # k-NN of unseen patches: not self-matches
    assert "split: 4 images learned, 4 scored" == r["source"]
    s = m.display_scale()
    assert (s.floor, s.anchor, s.source) == (r["floor"], r["anchor"], "good-range")
    assert m.color_range() == (r["floor"], r["anchor"]) and m.contour_level() == 0.5
    # the range is not the self-match floor of the final bank: the training images score ~0 there
    train_patch = m.predict([read_image(m.provenance["images"][0])])[0].patch_scores
    assert float(np.median(train_patch)) < r["floor"]


def test_good_and_defective_parts_share_the_uncalibrated_scale_and_the_defect_is_hotter(uncalibrated):
    m, good, bad = uncalibrated
    s = m.display_scale()
    pg, pb = m.predict([good, bad])
    ug, ub = s.normalise(display_map(pg.anomaly_map)), s.normalise(display_map(pb.anomaly_map))
    assert ub.max() > ug.max() and ub[20:36, 24:40].mean() > ug[20:36, 24:40].mean()
    # the PNGs: more opaque heat on the defective part, and the defect is its hottest area
    og, ob = render_overlay(good, pg.anomaly_map, s, pg.score), render_overlay(bad, pb.anomaly_map, s, pb.score)
    heat = lambda o, img: np.abs(o.astype(int) - img.astype(int)).sum(axis=2) > 30  # noqa: E731
    assert heat(ob, bad).sum() > heat(og, good).sum()
    y, x = np.unravel_index(np.argmax(pb.anomaly_map), pb.anomaly_map.shape)
    assert 16 <= y <= 40 and 20 <= x <= 44


def test_an_older_file_without_threshold_or_display_range_still_renders_per_image(uncalibrated, tmp_path):
    from engine.model import InspectionModel

    m, good, _ = uncalibrated
    m.display_range = None  # what a file written before the display range existed holds
    m.save(tmp_path / "old.dimodel")
    old = InspectionModel.load(tmp_path / "old.dimodel", device="cpu")
    assert old.display_range is None and old.display_scale() is None and old.contour_level() is None
    p = old.predict([good])[0]
    out = render_overlay(good, p.anomaly_map, None, p.score)
    assert out.shape == good.shape and not white(out).any()  # stretched per image, never outlined


def test_evaluate_report_panels_use_the_model_s_scale_and_outline(synthetic_mvtec, tmp_path):
    """The report's overlay tile is the overlay predict and the app draw for the saved model."""
    from engine.evaluate import MODEL_FILE, evaluate_category
    from engine.images import read_image
    from engine.model import InspectionModel

    m = InspectionModel.create("efficientnet_lite0", "knn", size=64, device="cpu", scorer_params={"coreset_ratio": 0.5})
    evaluate_category(synthetic_mvtec, m, tmp_path / "rep", fit_kwargs={"folds": 2, "synthetic": 2})
    saved = InspectionModel.load(tmp_path / "rep" / MODEL_FILE, device="cpu")
    panels = sorted((tmp_path / "rep" / "overlays").glob("*.png"))
    assert panels
    for png in panels:
        kind, stem = png.stem.split("_", 1)
        img = read_image(synthetic_mvtec / "test" / kind / f"{stem}.png")
        p = saved.predict([img])[0]
        tile = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB)[22:, 64:128]
        assert np.array_equal(tile, render_overlay(img, p.anomaly_map, saved.display_scale(), p.score))
