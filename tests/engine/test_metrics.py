"""Tests of engine.metrics: each metric on tiny cases whose value is derived by hand in a comment,
plus a randomized cross-check of the exact AUPRO against a slow, direct reference."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from engine.metrics import (
    aupro,
    average_precision,
    compute_all,
    f1_max,
    image_auroc,
    pixel_auroc,
    precision_recall_f1_at,
    threshold_candidates,
)

# Ranked example used by several image-level tests (scores already in decreasing order):
#   score  0.9 0.8 0.7 0.6 0.5 0.4
#   label   1   0   1   0   0   1
LABELS = np.array([1, 0, 1, 0, 0, 1])
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])


# ------------------------------------------------------------------------------------------
# image_auroc


def test_image_auroc_counts_correctly_ordered_pairs():
    # positives 0.9, 0.7, 0.4; negatives 0.8, 0.6, 0.5; 3*3 = 9 pairs.
    # 0.9 beats all 3 negatives, 0.7 beats 0.6 and 0.5 (2), 0.4 beats none -> 5/9.
    assert image_auroc(LABELS, SCORES) == pytest.approx(5 / 9, abs=1e-12)


def test_image_auroc_three_scores_with_tie():
    # neg 0.3; pos 0.3, 0.9. Pairs: (0.3 vs 0.3) tie = 1/2, (0.9 vs 0.3) = 1 -> 1.5 / 2 = 0.75.
    assert image_auroc([0, 1, 1], [0.3, 0.3, 0.9]) == pytest.approx(0.75, abs=1e-12)


def test_image_auroc_perfect_and_inverted():
    y = np.array([0, 0, 1, 1, 0])
    s = np.array([0.1, 0.2, 0.8, 0.9, 0.3])
    assert image_auroc(y, s) == 1.0  # every positive above every negative
    assert image_auroc(y, -s) == 0.0  # every positive below every negative
    assert image_auroc(y.astype(bool), s.astype(np.float32)) == 1.0  # bool labels, float32


@pytest.mark.parametrize("labels", [[0, 0, 0], [1, 1, 1]])
def test_image_auroc_one_class_raises(labels):
    with pytest.raises(ValueError, match="only one class"):
        image_auroc(labels, [0.1, 0.2, 0.3])


def test_image_inputs_are_validated():
    with pytest.raises(ValueError, match="labels has 3 entries but scores has 2"):
        image_auroc([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="0 \\(good\\) or 1"):
        image_auroc([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="NaN"):
        image_auroc([0, 1, 1], [0.1, np.nan, 0.3])
    with pytest.raises(ValueError, match="1-D"):
        image_auroc([[0, 1]], [[0.1, 0.2]])


# ------------------------------------------------------------------------------------------
# average_precision


def test_average_precision_from_ranked_list():
    # Ranked list 1 0 1 0 0 1: precision at each positive's rank = 1/1, 2/3, 3/6.
    # AP = (1 + 2/3 + 1/2) / 3 = (13/6) / 3 = 13/18.
    assert average_precision(LABELS, SCORES) == pytest.approx(13 / 18, abs=1e-12)


def test_average_precision_with_tied_scores_is_not_interpolated():
    # scores 0.5 (pos), 0.5 (neg), 0.1 (pos). Thresholds: 0.5 -> P = 1/2, R = 1/2;
    # 0.1 -> P = 2/3, R = 1. AP = (1/2 - 0) * 1/2 + (1 - 1/2) * 2/3 = 1/4 + 1/3 = 7/12.
    assert average_precision([1, 0, 1], [0.5, 0.5, 0.1]) == pytest.approx(7 / 12, abs=1e-12)


def test_average_precision_perfect_and_one_class():
    assert average_precision([0, 1, 1, 0], [0.1, 0.8, 0.9, 0.2]) == 1.0
    with pytest.raises(ValueError, match="only one class"):
        average_precision([0, 0], [0.1, 0.2])


# ------------------------------------------------------------------------------------------
# f1_max / precision_recall_f1_at


def test_f1_max_by_enumerating_thresholds():
    # F1 = 2TP / (2TP + FP + FN), verdict score >= t, 3 positives:
    #   t=0.9: TP1 FP0 FN2 -> 2/4 = 1/2
    #   t=0.8: TP1 FP1 FN2 -> 2/5
    #   t=0.7: TP2 FP1 FN1 -> 4/6 = 2/3
    #   t=0.6: TP2 FP2 FN1 -> 4/7
    #   t=0.5: TP2 FP3 FN1 -> 4/8 = 1/2
    #   t=0.4: TP3 FP3 FN0 -> 6/9 = 2/3
    # Max 2/3, attained at 0.7 and 0.4; the documented tie rule picks the lowest: 0.4.
    f1, thr = f1_max(LABELS, SCORES)
    assert f1 == pytest.approx(2 / 3, abs=1e-12)
    assert thr == 0.4


def test_f1_max_unique_maximum_and_ge_convention():
    # scores 0.2(0) 0.5(1) 0.5(0) 0.7(1) 0.9(0); 2 positives.
    #   t=0.9: TP0 FP1 FN2 -> 0
    #   t=0.7: TP1 FP1 FN1 -> 2/4 = 1/2
    #   t=0.5: TP2 FP2 FN0 -> 4/6 = 2/3   (both 0.5 images count as defective: >=)
    #   t=0.2: TP2 FP3 FN0 -> 4/7
    # With ">" instead of ">=" at 0.5 we would get TP1 -> the value would differ.
    y = [0, 1, 0, 1, 0]
    s = [0.2, 0.5, 0.5, 0.7, 0.9]
    f1, thr = f1_max(y, s)
    assert (f1, thr) == (pytest.approx(2 / 3, abs=1e-12), 0.5)
    assert precision_recall_f1_at(y, s, thr)["f1"] == pytest.approx(f1, abs=1e-12)


def test_f1_max_perfect_separation():
    # negatives 0.1, 0.2; positives 0.8, 0.9: t = 0.8 gives TP2 FP0 FN0 -> F1 = 1.
    assert f1_max([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == (1.0, 0.8)


def test_f1_max_matches_brute_force_on_random_data_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(5, 40))
        y = rng.integers(0, 2, n)
        y[0], y[1] = 0, 1
        s = np.round(rng.random(n) + 0.3 * y, 1).astype(np.float32)  # coarse -> many ties
        f1, thr = f1_max(y, s)
        brute = {float(t): precision_recall_f1_at(y, s, t)["f1"] for t in np.unique(s)}
        best = max(brute.values())
        assert f1 == pytest.approx(best, abs=1e-12)
        best_ts = [t for t, v in brute.items() if v >= best - 1e-12]
        assert thr == min(best_ts)
        # The returned threshold applied to the float32 scores with >= reproduces F1-max.
        assert precision_recall_f1_at(y, s, thr)["f1"] == pytest.approx(f1, abs=1e-12)


def test_precision_recall_f1_at_counts():
    # t = 0.85: only 0.9 (pos) flagged -> TP1 FP0 FN2 TN3, P = 1, R = 1/3, F1 = 2/(2+0+2) = 1/2.
    r = precision_recall_f1_at(LABELS, SCORES, 0.85)
    assert r == {
        "precision": 1.0,
        "recall": pytest.approx(1 / 3),
        "f1": 0.5,
        "tp": 1,
        "fp": 0,
        "fn": 2,
        "tn": 3,
    }
    # t = 0.8 exactly: 0.9 and 0.8 flagged (>=) -> TP1 FP1 FN2 TN2, P = 1/2, R = 1/3, F1 = 2/5.
    r = precision_recall_f1_at(LABELS, SCORES, 0.8)
    assert (r["tp"], r["fp"], r["fn"], r["tn"]) == (1, 1, 2, 2)
    assert (r["precision"], r["f1"]) == (0.5, pytest.approx(0.4))


def test_precision_recall_f1_at_nothing_flagged_and_one_class():
    # t above every score: nothing predicted defective -> precision 0.0 by convention.
    r = precision_recall_f1_at(LABELS, SCORES, 1.0)
    assert r == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "fp": 0, "fn": 3, "tn": 3}
    # Only good images: allowed; 2 of 3 flagged -> FP2 TN1, recall 0.0 (no positive).
    r = precision_recall_f1_at([0, 0, 0], [0.1, 0.5, 0.6], 0.5)
    assert (r["fp"], r["tn"], r["precision"], r["recall"], r["f1"]) == (2, 1, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="finite"):
        precision_recall_f1_at(LABELS, SCORES, float("nan"))


# ------------------------------------------------------------------------------------------
# pixel_auroc


def test_pixel_auroc_flattens_across_images():
    # Image 1 (1x2): mask [1, 0], map [0.3, 0.1]; image 2: mask [0, 0], map [0.5, 0.2].
    # One positive pixel (0.3) vs negatives 0.1, 0.5, 0.2: beats 2 of 3 -> 2/3.
    # (Per-image AUROC would give 1.0 for image 1; flattening compares across images.)
    masks = np.array([[[True, False]], [[False, False]]])
    maps = np.array([[[0.3, 0.1]], [[0.5, 0.2]]], dtype=np.float32)
    assert pixel_auroc(masks, maps) == pytest.approx(2 / 3, abs=1e-12)


def test_pixel_auroc_equals_sklearn_roc_auc_on_random_tied_data():
    # Pixel AUROC uses the Mann-Whitney rank form; it must equal sklearn's ROC AUC of the
    # flattened arrays, ties included (coarse maps -> many ties).
    rng = np.random.default_rng(7)
    for decimals in (1, 2, None):
        masks = rng.random((3, 9, 11)) > 0.8
        maps = rng.random((3, 9, 11)) + 0.3 * masks
        if decimals is not None:
            maps = np.round(maps, decimals)
        expected = roc_auc_score(masks.ravel(), maps.ravel())
        assert pixel_auroc(masks, maps.astype(np.float32)) == pytest.approx(expected, abs=1e-6)
        assert pixel_auroc(masks, maps) == pytest.approx(expected, abs=1e-12)


def test_pixel_auroc_validation():
    with pytest.raises(ValueError, match="all 4 pixels are good"):
        pixel_auroc(np.zeros((1, 2, 2), bool), np.zeros((1, 2, 2), np.float32))
    with pytest.raises(ValueError, match="shape"):
        pixel_auroc(np.zeros((1, 2, 2), bool), np.zeros((1, 2, 3), np.float32))
    with pytest.raises(ValueError, match="binarise"):
        pixel_auroc(np.zeros((1, 2, 2), np.float32), np.zeros((1, 2, 2), np.float32))
    with pytest.raises(ValueError, match="2 masks but 1"):
        pixel_auroc(np.zeros((2, 2, 2), bool), np.zeros((1, 2, 2), np.float32))


# ------------------------------------------------------------------------------------------
# aupro: hand-computed 4x4 example
#
# mask (A = 1-pixel region, B = 3-pixel region)     anomaly map
#   A . . .                                          0.7 0.8 0.1 0.1
#   . . . .                                          0.1 0.5 0.4 0.1
#   . . B B                                          0.1 0.1 0.9 0.6
#   . . B .                                          0.4 0.1 0.4 0.1
#
# 12 defect-free pixels: 0.8, 0.5, 0.4, 0.4 and eight 0.1.  Regions: A = {0.7}, B = {0.9, 0.6, 0.4}.
# PRO = (fraction of A >= t + fraction of B >= t) / 2; FPR = (# negatives >= t) / 12.
#   start            FPR 0     PRO 0
#   t=0.9  (B1)      FPR 0     PRO (0 + 1/3)/2 = 1/6
#   t=0.8  (neg)     FPR 1/12  PRO 1/6
#   t=0.7  (A)       FPR 1/12  PRO (1 + 1/3)/2 = 2/3
#   t=0.6  (B2)      FPR 1/12  PRO (1 + 2/3)/2 = 5/6
#   t=0.5  (neg)     FPR 2/12  PRO 5/6
#   t=0.4  (B3 + 2 neg, tied, enter together)  FPR 4/12  PRO 1
#   t=0.1  (8 neg)   FPR 1     PRO 1
#
# fpr_limit = 0.25 = 3/12 lies inside the sloped tie segment (2/12, 5/6) -> (4/12, 1):
# PRO(3/12) = 5/6 + (1 - 5/6) * (3/12 - 2/12) / (4/12 - 2/12) = 5/6 + 1/12 = 11/12.
# Area: [0, 1/12] at 1/6 -> 1/72; [1/12, 2/12] at 5/6 -> 5/72;
#       [2/12, 3/12] trapezoid (5/6 + 11/12)/2 * 1/12 = 7/96.
# Total 6/72 + 7/96 = 1/12 + 7/96 = 15/96 = 5/32; / 0.25 -> AUPRO = 5/8.
# (Breaking the tie B3-first would give 2/3, negatives-first 11/18, so ties are tested too.)
# fpr_limit = 1: 1/72 + 5/72 + (5/6 + 1)/2 * 2/12 (= 11/72) + 1 * 8/12 (= 48/72) = 65/72.
# fpr_limit = 0.3 (also inside the tie segment, 2/12 < 0.3 < 4/12):
#   PRO(0.3) = 5/6 + (1/6) * (0.3 - 2/12) / (2/12) = 5/6 + 2/15 = 29/30;
#   area = 1/12 + (5/6 + 29/30)/2 * (0.3 - 1/6) = 1/12 + 9/10 * 2/15 = 1/12 + 3/25 = 61/300;
#   / 0.3 -> 61/90.

HAND_MASK = np.zeros((4, 4), bool)
HAND_MASK[0, 0] = True
HAND_MASK[2, 2] = HAND_MASK[2, 3] = HAND_MASK[3, 2] = True
HAND_MAP = np.array(
    [
        [0.7, 0.8, 0.1, 0.1],
        [0.1, 0.5, 0.4, 0.1],
        [0.1, 0.1, 0.9, 0.6],
        [0.4, 0.1, 0.4, 0.1],
    ],
    dtype=np.float32,
)


def test_aupro_hand_example_with_interpolation_at_limit():
    assert aupro(HAND_MASK[None], HAND_MAP[None], fpr_limit=0.25) == pytest.approx(5 / 8, abs=1e-9)
    assert aupro(HAND_MASK[None], HAND_MAP[None], fpr_limit=1.0) == pytest.approx(65 / 72, abs=1e-9)
    assert aupro(HAND_MASK[None], HAND_MAP[None]) == pytest.approx(61 / 90, abs=1e-9)


def test_aupro_good_image_only_adds_to_fpr():
    # Add a 4x4 good image with map all 0.0 (below everything): 28 negatives in total.
    # Points: (0,1/6) (1/28,1/6) (1/28,5/6) (2/28,5/6) (4/28,1) (12/28,1) (1,1).
    # fpr_limit 0.25 = 7/28: [0,1/28]*1/6 + [1/28,2/28]*5/6 + (5/6+1)/2*2/28 + 1*3/28
    #   = (1/6 + 5/6 + 11/6 + 3)/28 = (35/6)/28 = 5/24; / 0.25 -> 5/6.
    masks = np.stack([HAND_MASK, np.zeros((4, 4), bool)])
    maps = np.stack([HAND_MAP, np.zeros((4, 4), np.float32)])
    assert aupro(masks, maps, fpr_limit=0.25) == pytest.approx(5 / 6, abs=1e-9)
    # Also accepted as a list of 2-D arrays of different sizes.
    maps_l = [HAND_MAP, np.zeros((2, 8), np.float32)]
    masks_l = [HAND_MASK, np.zeros((2, 8), bool)]
    assert aupro(masks_l, maps_l, fpr_limit=0.25) == pytest.approx(5 / 6, abs=1e-9)


def test_pixel_auroc_hand_example():
    # Positives 0.9, 0.7, 0.6, 0.4 vs 12 negatives (0.8, 0.5, 0.4, 0.4, 8 x 0.1):
    # 0.9 beats 12; 0.7 beats 11; 0.6 beats 11; 0.4 beats 8 and ties 2 (-> 1) = 9.
    # (12 + 11 + 11 + 9) / 48 = 43/48.
    assert pixel_auroc(HAND_MASK[None], HAND_MAP[None]) == pytest.approx(43 / 48, abs=1e-12)


def test_aupro_perfect_and_inverted_detector():
    rng = np.random.default_rng(1)
    masks = rng.random((3, 16, 16)) > 0.8
    masks[2] = False  # a good image too
    perfect = masks.astype(np.float32) + 0.1 * rng.random(masks.shape).astype(np.float32)
    # Perfect: all defect pixels above all defect-free pixels -> PRO reaches 1 at FPR 0 -> 1.0.
    assert aupro(masks, perfect) == pytest.approx(1.0, abs=1e-12)
    # Inverted: every defect-free pixel first -> PRO stays 0 up to FPR 1 -> 0.0.
    assert aupro(masks, -perfect) == pytest.approx(0.0, abs=1e-12)


def test_aupro_one_pixel_region_counts_as_much_as_big_region():
    # 6x6, region S = 1 pixel at (0,0), region L = 3x3 block at rows/cols 3..5; 26 negatives.
    # Map hitting only S (score 1, all else 0): curve (0,0) -> (0, 1/2) -> (1, 1).
    # PRO(0.3) = 1/2 + 0.3 * 1/2 = 0.65; area = 0.3 * (0.5 + 0.65)/2 = 0.1725; / 0.3 = 0.575.
    # Map hitting only L: same curve (PRO = (0 + 1)/2), so the same 0.575,
    # although L has 9 times as many pixels (pixel AUROC tells them apart).
    mask = np.zeros((6, 6), bool)
    mask[0, 0] = True
    mask[3:, 3:] = True
    only_small = np.zeros((6, 6), np.float32)
    only_small[0, 0] = 1.0
    only_large = np.zeros((6, 6), np.float32)
    only_large[3:, 3:] = 1.0
    a_small = aupro(mask[None], only_small[None])
    a_large = aupro(mask[None], only_large[None])
    assert a_small == pytest.approx(0.575, abs=1e-12)
    assert a_large == pytest.approx(0.575, abs=1e-12)
    assert pixel_auroc(mask[None], only_small[None]) < pixel_auroc(mask[None], only_large[None])


def test_aupro_uses_8_connectivity():
    # 3x3 mask with pixels (0,0), (0,1), (1,2): (0,1) and (1,2) touch by a corner.
    # 8-connectivity: one region of 3 pixels. Map = 1 at (1,2), 0 elsewhere; 6 negatives.
    # Curve (0,0) -> (0, 1/3) -> (1, 1). PRO(0.3) = 1/3 + 0.3 * 2/3 = 8/15.
    # area = 0.3 * (1/3 + 8/15)/2 -> / 0.3 = 13/30.
    # (4-connectivity would give regions {(0,0),(0,1)}, {(1,2)}: PRO = 1/2 -> 0.575.)
    mask = np.zeros((3, 3), bool)
    mask[0, 0] = mask[0, 1] = mask[1, 2] = True
    amap = np.zeros((3, 3), np.float32)
    amap[1, 2] = 1.0
    assert aupro(mask[None], amap[None]) == pytest.approx(13 / 30, abs=1e-12)


def test_aupro_validation():
    with pytest.raises(ValueError, match="no mask contains a defect region"):
        aupro(np.zeros((2, 4, 4), bool), np.zeros((2, 4, 4), np.float32))
    with pytest.raises(ValueError, match="every pixel is a defect"):
        aupro(np.ones((1, 4, 4), bool), np.zeros((1, 4, 4), np.float32))
    with pytest.raises(ValueError, match="fpr_limit"):
        aupro(HAND_MASK[None], HAND_MAP[None], fpr_limit=0.0)
    with pytest.raises(ValueError, match="fpr_limit"):
        aupro(HAND_MASK[None], HAND_MAP[None], fpr_limit=1.5)
    with pytest.raises(ValueError, match="num_thresholds"):
        aupro(HAND_MASK[None], HAND_MAP[None], num_thresholds=1)
    with pytest.raises(ValueError, match="NaN"):
        aupro(HAND_MASK[None], np.full((1, 4, 4), np.nan, np.float32))


# ------------------------------------------------------------------------------------------
# aupro: randomized cross-check against a slow, direct reference


def slow_pro_curve(masks, maps, thresholds):
    """Direct definition: for each threshold t (map >= t = defect), PRO = mean over labelled
    regions (8-connectivity) of the covered fraction, FPR = covered fraction of defect-free
    pixels. Returns the curve points, starting at (0, 0), thresholds taken in decreasing order."""
    regions, negatives = [], []
    for m, a in zip(masks, maps):
        lab, n = ndimage.label(m, structure=np.ones((3, 3)))
        regions += [a[lab == r] for r in range(1, n + 1)]
        negatives.append(a[~m])
    negatives = np.concatenate(negatives)
    points = [(0.0, 0.0)]
    for t in sorted(thresholds, reverse=True):
        pro = np.mean([np.mean(v >= t) for v in regions])
        fpr = np.mean(negatives >= t)
        points.append((fpr, pro))
    return points


def slow_area(points, fpr_limit):
    """Trapezoid segment by segment up to fpr_limit, interpolating linearly there; / limit."""
    area = 0.0
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
        if x0 >= fpr_limit:
            break
        if x1 > fpr_limit:
            y1 = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
            x1 = fpr_limit
        area += (x1 - x0) * (y0 + y1) / 2
    return area / fpr_limit


def random_case(rng, n_images=4, size=20, decimals=None):
    masks, maps = [], []
    for i in range(n_images):
        blobs = ndimage.gaussian_filter(rng.standard_normal((size, size)), 2.0)
        m = blobs > np.quantile(blobs, 0.85)
        m |= rng.random((size, size)) > 0.995  # scattered 1-pixel regions
        if i == 0:
            m[:] = False  # one good image
        a = rng.standard_normal((size, size)) * 0.7 + 1.0 * m
        if decimals is not None:
            a = np.round(a, decimals)  # many ties
        masks.append(m)
        maps.append(a.astype(np.float32))
    return np.stack(masks), np.stack(maps)


@pytest.mark.parametrize("seed,decimals", [(0, None), (1, None), (2, 1), (3, 2)])
def test_aupro_matches_slow_reference(seed, decimals):
    rng = np.random.default_rng(seed)
    masks, maps = random_case(rng, decimals=decimals)  # decimals: coarse maps, many ties
    lo, hi = float(maps.min()), float(maps.max())
    grid = np.linspace(hi, lo, 1000)
    grid[0], grid[-1] = hi, lo
    grid_curve = slow_pro_curve(masks, maps, grid)
    exact_curve = slow_pro_curve(masks, maps, np.unique(maps))  # every distinct map value
    for limit in (0.3, 0.05, 1.0):
        exact = aupro(masks, maps, fpr_limit=limit)
        # Fine-grid reference vs exact implementation: agree within 1e-3.
        assert exact == pytest.approx(slow_area(grid_curve, limit), abs=1e-3)
        # Reference over every distinct map value is the exact curve: identical.
        assert exact == pytest.approx(slow_area(exact_curve, limit), abs=1e-9)
        # Grid mode of the implementation vs the reference on the same grid: identical.
        assert aupro(masks, maps, fpr_limit=limit, num_thresholds=1000) == pytest.approx(
            slow_area(grid_curve, limit), abs=1e-9
        )


def test_pixel_metrics_on_50_images_of_256_stay_small_in_memory():
    rng = np.random.default_rng(5)
    n, h, w = 50, 256, 256
    masks = np.zeros((n, h, w), bool)
    masks[25:, 100:140, 60:90] = True  # half the images defective
    masks[25:, 10, 10] = True
    maps = rng.random((n, h, w), dtype=np.float32)
    maps += masks  # perfect separation: defect pixels in [1, 2), others in [0, 1)
    tracemalloc.start()
    try:
        pa = pixel_auroc(masks, maps)
        ap = aupro(masks, maps)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert pa == 1.0
    assert ap == pytest.approx(1.0, abs=1e-12)
    # 3.3 M pixels: a float64 copy is 26 MB; stay well below what a dense (P x thresholds)
    # approach would need.
    assert peak < 350e6, f"peak traced memory {peak / 1e6:.0f} MB"


def test_precision_is_undefined_not_zero_when_nothing_is_flagged():
    # t = 1.0 is above every score: TP = FP = 0, so TP / (TP + FP) has no value.
    r = precision_recall_f1_at(LABELS, SCORES, 1.0, zero_division=None)
    assert r["precision"] is None and (r["tp"], r["fp"], r["recall"]) == (0, 0, 0.0)
    out = compute_all(LABELS, SCORES, threshold=1.0)
    assert out["precision"] is None and out["recall"] == 0.0 and out["f1"] == 0.0
    # one image flagged (0.9, defective) -> defined again: 1 / 1
    assert compute_all(LABELS, SCORES, threshold=0.9)["precision"] == 1.0


def test_threshold_candidates_hand_example():
    # goods 0.8 0.6 0.5, defects 0.9 0.7 0.4 (LABELS / SCORES above).
    f1, frr0, frr1, frr2 = threshold_candidates(LABELS, SCORES, max_frr=(0.01, 0.34, 0.7))
    # F1-max (2/3) is at 0.4, the lowest score: it flags every image, i.e. rejects all 3 goods.
    assert (f1["name"], f1["threshold"], f1["f1"]) == ("f1_max", 0.4, pytest.approx(2 / 3))
    assert f1["flags_all_good"] and f1["frr"] == 1.0 and f1["recall"] == 1.0 and f1["precision"] == 0.5
    # no good may be rejected: the threshold must lie above 0.8; the lowest score there is 0.9 (1 of 3 defects)
    assert (frr0["threshold"], frr0["n_good_rejected"], frr0["n_defective_flagged"]) == (0.9, 0, 1)
    assert frr0["precision"] == 1.0 and not frr0["flags_all_good"]
    # 1 of 3 goods may be rejected (1/3 <= 0.34): 0.7 rejects only 0.8 and flags 0.9, 0.7
    assert (frr1["threshold"], frr1["n_good_rejected"], frr1["recall"]) == (0.7, 1, pytest.approx(2 / 3))
    # 2 of 3 (0.667 <= 0.7): 0.6 rejects 0.8 and 0.6; 0.5 would reject all 3
    assert (frr2["threshold"], frr2["n_good_rejected"], frr2["frr"]) == (0.6, 2, pytest.approx(2 / 3))
    assert frr2["max_frr"] == 0.7 and frr2["name"] == "frr<=0.7"
    # the highest score is a good image's and no reject is allowed: no threshold flags anything
    none = threshold_candidates([0, 1], [0.9, 0.1], max_frr=(0.01,))[1]
    assert none["threshold"] is None and none["recall"] == 0.0 and none["precision"] is None
    with pytest.raises(ValueError, match="outside"):
        threshold_candidates(LABELS, SCORES, max_frr=(1.0,))


def test_threshold_candidates_match_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(20):
        y = np.r_[np.zeros(35, int), np.ones(60, int)]
        s = np.round(np.r_[rng.normal(0, 1, 35), rng.normal(1.5, 1, 60)], 1)  # rounding makes ties
        for c in threshold_candidates(y, s)[1:]:
            ok = [t for t in np.unique(s) if np.mean(s[y == 0] >= t) <= c["max_frr"]]
            want = min(ok) if ok else None
            assert c["threshold"] == want
            if want is not None:
                assert c["recall"] == np.mean(s[y == 1] >= want)
                assert c["n_good_rejected"] == int(np.sum(s[y == 0] >= want))


# ------------------------------------------------------------------------------------------
# compute_all


def test_compute_all_image_keys_and_threshold():
    # Values derived above: AUROC 5/9, AP 13/18, F1-max 2/3 at 0.4; at t = 0.85: P 1, R 1/3, F1 1/2.
    out = compute_all(LABELS, SCORES)
    assert set(out) == {"image_auroc", "aupr", "f1_max", "f1_max_threshold"}
    assert out["image_auroc"] == pytest.approx(5 / 9)
    assert out["aupr"] == pytest.approx(13 / 18)
    assert (out["f1_max"], out["f1_max_threshold"]) == (pytest.approx(2 / 3), 0.4)
    out = compute_all(LABELS, SCORES, threshold=0.85)
    assert (out["precision"], out["recall"], out["f1"]) == (1.0, pytest.approx(1 / 3), 0.5)
    assert all(type(v) is float for v in out.values())


def test_compute_all_pixel_metrics_use_only_images_with_masks():
    # Images: 0 = hand example (defective, mask), 1 = good (all-False mask, map all 0.0),
    # 2 = defective without mask (None) whose map would change the result if it were used.
    # Pixel AUROC over images 0 and 1: positives 0.9, 0.7, 0.6, 0.4 vs 28 negatives
    # (0.8, 0.5, 0.4, 0.4, 8 x 0.1, 16 x 0.0): 28 + 27 + 27 + (24 + 2 * 1/2) = 107 of 112.
    # AUPRO at fpr_limit 0.25: 5/6 (see test_aupro_good_image_only_adds_to_fpr).
    labels = [1, 0, 1]
    scores = [0.9, 0.1, 0.8]
    masks = [HAND_MASK, np.zeros((4, 4), bool), None]
    maps = [HAND_MAP, np.zeros((4, 4), np.float32), np.full((4, 4), 0.85, np.float32)]
    out = compute_all(labels, scores, masks=masks, maps=maps, fpr_limit=0.25)
    assert out["pixel_auroc"] == pytest.approx(107 / 112, abs=1e-12)
    assert out["aupro"] == pytest.approx(5 / 6, abs=1e-9)
    assert out["image_auroc"] == 1.0


def test_compute_all_without_pixel_ground_truth_and_errors():
    labels = [1, 0]
    scores = [0.9, 0.1]
    maps = [HAND_MAP, HAND_MAP]
    # No defective image has a mask: pixel keys are left out.
    for masks in ([None, None], [None, np.zeros((4, 4), bool)]):
        out = compute_all(labels, scores, masks=masks, maps=maps)
        assert "pixel_auroc" not in out and "aupro" not in out
    with pytest.raises(ValueError, match="labelled good"):
        compute_all(labels, scores, masks=[HAND_MASK, HAND_MASK], maps=maps)
    with pytest.raises(ValueError, match="without anomaly maps"):
        compute_all(labels, scores, masks=[HAND_MASK, None])
    with pytest.raises(ValueError, match="2 labels but 1 masks"):
        compute_all(labels, scores, masks=[HAND_MASK], maps=maps)
    with pytest.raises(ValueError, match="only one class"):
        compute_all([1, 1], scores)


def test_float32_maps_are_not_copied_to_float64_and_give_the_float64_result():
    from engine.metrics import _check_pixel_inputs

    rng = np.random.default_rng(1)
    ms = [rng.random((32, 48)) < 0.05 for _ in range(6)]
    ms[2][:] = False  # a good image
    mp = [(m * 0.5 + rng.random(m.shape)).astype(np.float32) for m in ms]
    _, kept = _check_pixel_inputs(ms, mp, "test")
    assert all(k is a for k, a in zip(kept, mp))  # passed through, no float64 copy
    mp64 = [a.astype(np.float64) for a in mp]
    assert pixel_auroc(ms, mp) == pixel_auroc(ms, mp64)
    assert aupro(ms, mp) == aupro(ms, mp64)
    assert aupro(ms, mp, num_thresholds=50) == aupro(ms, mp64, num_thresholds=50)
