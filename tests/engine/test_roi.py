"""Region of interest: pixel mask, patch mask under resize / letterbox, model file, and the issue's
test (a defect outside the region leaves the verdict OK, one inside makes it NOK)."""

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from engine.backbones.preprocess import Preprocess
from engine.errors import DatasetError, ModelFileError
from engine.model import InspectionModel
from engine.modelfile import load_model_file, save_model_file
from engine.roi import RegionOfInterest, patch_coverage, patch_mask
from engine.scorers import KnnScorer, MahalanobisScorer
from engine.synthetic_defects import defects_of_every_kind
from tests.conftest import texture

MEAN = STD = (0.5, 0.5, 0.5)


def rect(x0, y0, x1, y1):
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


# ---------------------------------------------------------------- pixel mask
def test_pixel_mask_counts_include_minus_exclude():
    # outline pixels belong to a polygon (fillPoly): a square from 10 to 29 holds 20 x 20 pixels,
    # the hole from 15 to 19 holds 5 x 5, so 400 - 25 remain
    roi = RegionOfInterest(include=[rect(10, 10, 29, 29)], exclude=[rect(15, 15, 19, 19)], ref_width=64, ref_height=48)
    m = roi.pixel_mask(48, 64)
    assert m.shape == (48, 64) and m.dtype == bool
    assert m.sum() == 20 * 20 - 5 * 5
    assert m[10, 10] and m[29, 29] and not m[17, 17] and not m[9, 10] and not m[30, 29]


def test_pixel_mask_scales_to_another_image_size():
    # drawn on 65 x 49, used on 129 x 97: pixel centre to pixel centre, (129 - 1) / (65 - 1) = 2, so
    # corners 10 and 29 -> 20 and 58: 39 px with the outline
    roi = RegionOfInterest(include=[rect(10, 10, 29, 29)], ref_width=65, ref_height=49)
    m = roi.pixel_mask(97, 129)
    assert m.sum() == 39 * 39 and m[20, 20] and m[58, 58] and not m[59, 59] and not m[19, 19]


def test_no_include_polygon_is_the_whole_image_minus_exclusions():
    roi = RegionOfInterest(exclude=[rect(0, 0, 9, 9)], ref_width=32, ref_height=32)
    assert roi.pixel_mask(32, 32).sum() == 32 * 32 - 100
    assert roi.describe() == "roi=whole image, 1 exclude"


def test_roi_json_file_round_trip_and_bad_files(tmp_path):
    roi = RegionOfInterest(include=[rect(1, 2, 30, 40), [(0, 0), (5, 0), (0, 5)]], exclude=[rect(3, 3, 6, 6)],
                           ref_width=64, ref_height=48)
    p = tmp_path / "part.roi.json"
    roi.save(p)
    back = RegionOfInterest.load(p)
    assert back == roi and back.describe() == "roi=2 include, 1 exclude"
    with pytest.raises(DatasetError, match="missing.roi.json: cannot read"):
        RegionOfInterest.load(tmp_path / "missing.roi.json")
    (tmp_path / "bad.roi.json").write_text("{not json")
    with pytest.raises(DatasetError, match="bad.roi.json: not JSON"):
        RegionOfInterest.load(tmp_path / "bad.roi.json")
    (tmp_path / "two.roi.json").write_text(json.dumps(dict(roi.to_json(), include=[[[0, 0], [1, 1]]])))
    with pytest.raises(DatasetError, match="at least 3"):
        RegionOfInterest.load(tmp_path / "two.roi.json")


# ---------------------------------------------------------------- patch mask
def test_patch_mask_under_resize():
    # a 200 x 100 (W x H) image stretched to 112 x 112, 8 px patches (14 x 14 grid): the left half
    # of the image (columns 0..99) becomes input columns 0..55 = grid columns 0..6, every row
    roi = RegionOfInterest(include=[rect(0, 0, 99, 99)], ref_width=200, ref_height=100)
    pre = Preprocess(112, MEAN, STD, "resize")
    m = patch_mask(roi.pixel_mask(100, 200), pre, (14, 14))
    expected = np.zeros((14, 14), bool)
    expected[:, :7] = True
    np.testing.assert_array_equal(m, expected)


def test_patch_mask_under_letterbox_counts_half_covered_patches():
    # letterbox: 200 x 100 -> 112 x 56 placed at rows 28..83; grid rows 3 (input rows 24..31) and 10
    # (80..87) are exactly half inside and count ("at least half"); the padding is outside
    roi = RegionOfInterest(include=[rect(0, 0, 99, 99)], ref_width=200, ref_height=100)
    pre = Preprocess(112, MEAN, STD, "letterbox")
    cov = patch_coverage(roi.pixel_mask(100, 200), pre, (14, 14))
    assert cov[3, 0] == pytest.approx(0.5) and cov[10, 0] == pytest.approx(0.5) and cov[2, 0] == 0 and cov[5, 7] == 0
    m = patch_mask(roi.pixel_mask(100, 200), pre, (14, 14))
    expected = np.zeros((14, 14), bool)
    expected[3:11, :7] = True
    np.testing.assert_array_equal(m, expected)


def test_patch_under_half_inside_is_outside():
    # columns 0..2 of a 16 px image on a 16 px input with 8 px patches: 3/8 of patch column 0
    roi = RegionOfInterest(include=[rect(0, 0, 2, 15)], ref_width=16, ref_height=16)
    cov = patch_coverage(roi.pixel_mask(16, 16), Preprocess(16, MEAN, STD), (2, 2))
    np.testing.assert_allclose(cov, [[3 / 8, 0], [3 / 8, 0]])
    assert not patch_mask(roi.pixel_mask(16, 16), Preprocess(16, MEAN, STD), (2, 2)).any()


# ---------------------------------------------------------------- scorers with a patch mask
def test_knn_bank_holds_only_masked_patches():
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(3, 4, 4, 8, generator=g)
    mask = np.zeros((3, 4, 4), bool)
    mask[:, :2, :] = True  # the top half of every image
    s = KnnScorer(coreset_ratio=1.0, index="flat", device="cpu")
    s.fit(feats, patch_mask=mask)
    np.testing.assert_array_equal(s.memory_bank, feats[:, :2].reshape(-1, 8).numpy())
    # cross-fitting: the final bank is the union of the folds' (ratio 1: all) masked patches
    folds = [np.array([0, 2]), np.array([1])]
    s2 = KnnScorer(coreset_ratio=1.0, index="flat", device="cpu")
    for f, sc in s2.cross_fit(feats, folds, patch_mask=mask):
        learn = np.setdiff1d(np.arange(3), folds[f])
        assert len(sc.memory_bank) == 8 * len(learn)
    assert sorted(map(tuple, s2.memory_bank.tolist())) == sorted(map(tuple, s.memory_bank.tolist()))


def test_mahalanobis_with_mask_equals_fit_on_the_selected_patches():
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(6, 5, 5, 12, generator=g)
    mask = np.zeros((6, 5, 5), bool)
    mask[:, 1:4, 1:4] = True
    a = MahalanobisScorer(n_prototypes=2, pca_dim=6, device="cpu")
    a.fit_images(feats, np.array([0, 2, 3, 5]), patch_mask=mask)
    rows = feats[[0, 2, 3, 5]][:, 1:4, 1:4].reshape(1, -1, 1, 12)  # the same patches, as one "image"
    b = MahalanobisScorer(n_prototypes=2, pca_dim=6, device="cpu")
    b.fit(rows.contiguous())
    for k in ("mean", "basis", "centres"):
        np.testing.assert_allclose(a.arrays[k], b.arrays[k], rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- synthetic defects inside the region
def test_synthetic_defects_change_only_pixels_inside_the_region():
    rng = np.random.default_rng(3)
    img = texture(rng, 96)
    within = RegionOfInterest(include=[rect(8, 20, 50, 70)], ref_width=96, ref_height=96).pixel_mask(96, 96)
    made, kinds = defects_of_every_kind(img, rng, texture(rng, 96), within=within)
    for out, kind in zip(made, kinds):
        changed = (out != img).any(axis=2)
        assert changed.any(), kind
        assert not (changed & ~within).any(), kind


# ---------------------------------------------------------------- the model
@pytest.fixture(scope="module")
def station(tmp_path_factory):
    """Good parts (aligned texture, 128 px) and three test images: clean, a defect far right of the
    region (left 48 columns), the same defect inside it."""
    d = tmp_path_factory.mktemp("roi_station")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(10):
        paths.append(d / f"{i:02d}.png")
        Image.fromarray(texture(rng, 128)).save(paths[-1])
    clean = texture(rng, 128)

    def painted(x):
        out = clean.copy()
        out[58:70, x:x + 12] = [250, 20, 20]
        return out

    roi = RegionOfInterest(include=[rect(0, 0, 47, 127)], ref_width=128, ref_height=128)
    return {"paths": paths, "clean": clean, "outside": painted(108), "inside": painted(16), "roi": roi}


def fitted(station, roi):
    m = InspectionModel.create("efficientnet_lite0", "knn", size=128, device="cpu",
                               scorer_params={"coreset_ratio": 0.5})
    m.roi = roi
    m.fit(station["paths"])
    return m


@pytest.fixture(scope="module")
def roi_model(station):
    return fitted(station, station["roi"])


def test_defect_outside_the_region_keeps_ok_inside_makes_nok(station, roi_model):
    # the region is what protects the verdict: without it the same outside defect is NOK
    plain = fitted(station, None)
    p_clean, p_out, p_in = plain.predict([station["clean"], station["outside"], station["inside"]])
    assert p_clean.verdict == "OK" and p_out.verdict == "NOK" and p_in.verdict == "NOK"
    r_clean, r_out, r_in = roi_model.predict([station["clean"], station["outside"], station["inside"]])
    assert r_clean.verdict == "OK" and r_out.verdict == "OK" and r_in.verdict == "NOK"
    # the score is not exactly unchanged: the CNN's receptive field reaches from the defect some way
    # into the region; compared with what the defect does to the plain model, it moves < 5 %
    assert abs(r_out.score - r_clean.score) < 0.05 * abs(p_out.score - p_clean.score)


def test_anomaly_map_is_at_the_floor_outside_the_region(station, roi_model):
    pred = roi_model.predict([station["outside"]])[0]
    inside = station["roi"].pixel_mask(128, 128)
    outside_values = np.unique(pred.anomaly_map[~inside])
    assert outside_values.size == 1
    floor = roi_model.calibration["floor"]
    assert outside_values[0] <= floor and outside_values[0] <= pred.anomaly_map[inside].min()
    assert roi_model.display_scale().normalise(pred.anomaly_map[~inside]).max() == 0.0


def test_model_file_stores_the_region(station, roi_model, tmp_path):
    path = tmp_path / "roi.dimodel"
    roi_model.save(path)
    cfg, _ = load_model_file(path)
    assert cfg["roi"] == station["roi"].to_json()
    back = InspectionModel.load(path, device="cpu")
    assert back.roi == station["roi"] and "roi=1 include, 0 exclude" in back.describe()
    imgs = [station["outside"], station["inside"]]
    assert [p.score for p in back.predict(imgs)] == pytest.approx([p.score for p in roi_model.predict(imgs)], rel=1e-5)


def test_old_model_file_without_roi_loads_as_whole_image(station, roi_model, tmp_path):
    path = tmp_path / "old.dimodel"
    roi_model.save(path)
    cfg, arrays = load_model_file(path)
    del cfg["roi"]  # as written before regions of interest
    save_model_file(path, cfg, arrays)
    back = InspectionModel.load(path, device="cpu")
    assert back.roi is None and "roi=" not in back.describe()
    cfg["roi"] = {"format": "something else"}
    save_model_file(path, cfg, arrays)
    with pytest.raises(ModelFileError, match="region of interest"):
        InspectionModel.load(path, device="cpu")


def test_other_aspect_ratio_warns_once_per_size_and_still_inspects(station, roi_model, caplog):
    wide = np.ascontiguousarray(np.concatenate([station["clean"], station["clean"]], axis=1))  # 256 x 128
    with caplog.at_level(logging.WARNING, logger="engine"):
        preds = roi_model.predict([wide, wide])
        roi_model.predict([wide])
    assert len(preds) == 2 and np.isfinite(preds[0].score)
    assert sum("region of interest was drawn on a 128x128" in r.getMessage() for r in caplog.records) == 1


def test_region_without_a_whole_patch_is_refused(station):
    m = InspectionModel.create("efficientnet_lite0", "knn", size=128, device="cpu")
    m.roi = RegionOfInterest(include=[rect(0, 0, 2, 2)], ref_width=128, ref_height=128)
    with pytest.raises(DatasetError, match="covers no patch"):
        m.fit(station["paths"])


@pytest.mark.parametrize("scorer", ["mahalanobis", "padim"])
def test_other_scorers_honour_the_region(station, scorer):
    m = InspectionModel.create("efficientnet_lite0", scorer, size=128, device="cpu")
    m.roi = station["roi"]
    m.fit(station["paths"])
    clean, out, inside = m.predict([station["clean"], station["outside"], station["inside"]])
    assert (clean.verdict, out.verdict, inside.verdict) == ("OK", "OK", "NOK")


# ---------------------------------------------------------------- pixel metrics inside the region
def test_pixel_metrics_with_valid_pixels_equal_those_of_the_cropped_region():
    # a rectangular region: counting only its pixels must give the figures of the images cropped to it
    from engine.metrics import aupro, compute_all, pixel_auroc

    rng = np.random.default_rng(5)
    masks, maps = [], []
    for i in range(4):
        m = np.zeros((40, 50), bool)
        m[5 + 3 * i:15 + 3 * i, 8:20] = True  # inside the region
        m[30:38, 40:48] = i % 2 == 0  # outside: must not count
        a = rng.normal(0, 1, (40, 50)) + 2.0 * m
        masks.append(m)
        maps.append(a)
    masks.append(np.zeros((40, 50), bool))
    maps.append(rng.normal(0, 1, (40, 50)))
    valid = np.zeros((40, 50), bool)
    valid[:28, :35] = True
    crop = (slice(0, 28), slice(0, 35))
    cm, ca = [m[crop] for m in masks], [a[crop] for a in maps]
    assert pixel_auroc(masks, maps, valid=[valid] * 5) == pytest.approx(pixel_auroc(cm, ca), abs=1e-12)
    assert aupro(masks, maps, valid=[valid] * 5) == pytest.approx(aupro(cm, ca), abs=1e-12)
    assert aupro(masks, maps, valid=[valid] * 5) != pytest.approx(aupro(masks, maps), abs=1e-6)
    got = compute_all([1, 1, 1, 1, 0], [3, 2, 3, 2, 0], masks, maps, valid=[valid] * 5)
    assert got["aupro"] == pytest.approx(aupro(cm, ca), abs=1e-12)


def test_a_whole_image_rectangle_stays_the_whole_image_at_any_size():
    roi = RegionOfInterest(include=[rect(0, 0, 79, 63)], ref_width=80, ref_height=64)
    for h, w in ((64, 80), (128, 160), (100, 130), (32, 40), (7, 9)):
        assert roi.pixel_mask(h, w).all(), (h, w)


def test_scaling_maps_pixel_centres_and_edge_pixels_onto_each_other():
    # 81 x 65 -> 161 x 129: (161 - 1) / (81 - 1) = 2 exactly, so corners 10 and 29 land on 20 and 58
    roi = RegionOfInterest(include=[rect(10, 10, 29, 29)], exclude=[rect(0, 0, 3, 3)], ref_width=81, ref_height=65)
    big = roi.scaled(161, 129)
    assert (big.ref_width, big.ref_height) == (161, 129)
    assert big.include == [[(20.0, 20.0), (58.0, 20.0), (58.0, 58.0), (20.0, 58.0)]]
    assert big.exclude == [[(0.0, 0.0), (6.0, 0.0), (6.0, 6.0), (0.0, 6.0)]]
    assert roi.pixel_mask(129, 161).sum() == 39 * 39
    assert roi.scaled(81, 65) is roi


def test_outline_and_mask_scale_the_same_way():
    from gui.roi_geometry import scaled_polygons

    roi = RegionOfInterest(include=[[(5, 4), (70, 9), (40, 60)]], ref_width=80, ref_height=64)
    include, exclude = scaled_polygons(roi, 160, 128)
    assert include == roi.scaled(160, 128).include and exclude == []
    assert include[0][1] == pytest.approx((70 * 159 / 79, 9 * 127 / 63))
