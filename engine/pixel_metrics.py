"""Pixel-level anomaly-detection metrics: pixel AUROC and AUPRO (MVTec AD protocol).

One anomaly map per image against a boolean ground-truth mask; ``valid`` (optional, one bool mask
per image) restricts both to a region (a recipe's region of interest: ground truth outside it is not
counted). A higher map value means "more anomalous". Bad input raises ``ValueError`` saying what is
wrong. The image-level metrics and ``compute_all`` are in :mod:`engine.metrics`, which re-exports
these two.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.stats import rankdata

__all__ = ["pixel_auroc", "aupro"]

# 8-connectivity, as in the MVTec AD reference evaluation code (scipy.ndimage.label with a 3x3
# structuring element of ones): pixels touching only by a corner belong to the same region.
_STRUCTURE_8 = np.ones((3, 3), dtype=int)


def _as_image_list(arrays, what: str) -> list[np.ndarray]:
    """(N,H,W) array, (H,W) array, or a sequence of (H,W) arrays -> list of 2-D arrays."""
    if isinstance(arrays, np.ndarray):
        if arrays.ndim == 2:
            return [arrays]
        if arrays.ndim != 3:
            raise ValueError(f"{what} must have shape (N, H, W) or (H, W), got {arrays.shape}")
        return list(arrays)
    out = [np.asarray(a) for a in arrays]
    for i, a in enumerate(out):
        if a.ndim != 2:
            raise ValueError(f"{what}[{i}] must be a 2-D (H, W) array, got shape {a.shape}")
    return out


def _check_pixel_inputs(
    masks, anomaly_maps, what: str
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Return (list of bool (H,W) masks, list of float32/float64 (H,W) maps) or raise ValueError.

    float32 and float64 maps are passed through without a copy (a float32 -> float64 conversion is
    exact, so sorting and ranking give the same result on either; other dtypes become float64)."""
    ms = _as_image_list(masks, "masks")
    mp = _as_image_list(anomaly_maps, "anomaly_maps")
    if len(ms) != len(mp):
        raise ValueError(f"{what}: {len(ms)} masks but {len(mp)} anomaly maps")
    if not ms:
        raise ValueError(f"{what}: no images (masks and anomaly maps are empty)")
    out_m, out_a = [], []
    for i, (m, a) in enumerate(zip(ms, mp)):
        if m.shape != a.shape:
            raise ValueError(
                f"{what}: image {i}: mask shape {m.shape} != anomaly map shape {a.shape}"
            )
        if m.dtype != bool and not np.issubdtype(m.dtype, np.integer):
            raise ValueError(
                f"{what}: image {i}: mask dtype must be bool or integer (nonzero = defect), "
                f"got {m.dtype}; binarise it first, e.g. mask > 0.5"
            )
        if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
            raise ValueError(f"{what}: image {i}: anomaly map must be real, got dtype {a.dtype}")
        if a.dtype not in (np.float32, np.float64):
            a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise ValueError(f"{what}: image {i}: anomaly map contains NaN/inf values")
        out_m.append(m.astype(bool, copy=False))
        out_a.append(a)
    return out_m, out_a


# --------------------------------------------------------------------------------------------
# Image level


# --------------------------------------------------------------------------------------------
# Pixel level
def pixel_auroc(masks, anomaly_maps, valid=None) -> float:
    """ROC AUC over all pixels of all images, flattened together.

    Every pixel is one sample (label = mask, score = anomaly map value). Same value as
    ``sklearn.metrics.roc_auc_score`` on the flattened arrays, computed with the equivalent
    Mann-Whitney form (one sort instead of several, which matters at millions of pixels):
    ``AUC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)``, R_pos = sum of the ranks of the
    defect pixels among all pixels, tied scores sharing their average rank (a tie counts 1/2).
    ~50 maps of 256x256 (3.3 M pixels) take about 100 MB.

    Args:
        masks: (N, H, W) bool (or integer, nonzero = defect), or a sequence of N (H_i, W_i)
            arrays; a single (H, W) array is one image.
        anomaly_maps: same shape(s), real (e.g. float32); higher = more anomalous.
        valid: None, or per image a bool array of the same shape (or None = all pixels): only the
            True pixels are counted (a region of interest; pixels outside are not judged).
    Returns:
        pixel AUROC in [0, 1] as a Python float.
    Raises:
        ValueError: count/shape mismatch, float masks, NaN/inf in maps, or all pixels of one
            class (no defect pixel at all, or no good pixel).
    """
    ms, mp = _check_pixel_inputs(masks, anomaly_maps, "pixel AUROC")
    vs = _valid_list(valid, ms, "pixel AUROC")
    y = np.concatenate([m[v] if v is not None else m.ravel() for m, v in zip(ms, vs)])
    s = np.concatenate([a[v] if v is not None else a.ravel() for a, v in zip(mp, vs)])
    del mp
    n_pos = int(np.count_nonzero(y))
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        kind = "defective" if n_neg == 0 else "good"
        raise ValueError(
            f"pixel AUROC is undefined: all {y.size} pixels are {kind}; the masks need both "
            "defect and defect-free pixels"
        )
    ranks = rankdata(s)  # 1-based, average rank for ties; float64 (exact for these sizes)
    del s
    u = float(ranks[y].sum()) - n_pos * (n_pos + 1) / 2.0
    return float(u / (float(n_pos) * float(n_neg)))


def _valid_list(valid, masks: list[np.ndarray], what: str) -> list[np.ndarray | None]:
    """``valid`` as a list aligned with ``masks``: bool arrays of their shapes, or None (all valid)."""
    if valid is None:
        return [None] * len(masks)
    vs = list(valid)
    if len(vs) != len(masks):
        raise ValueError(f"{what}: {len(masks)} masks but {len(vs)} valid-pixel masks")
    out = []
    for i, (v, m) in enumerate(zip(vs, masks)):
        if v is not None and np.shape(v) != m.shape:
            raise ValueError(f"{what}: image {i}: valid-pixel mask shape {np.shape(v)} != mask shape {m.shape}")
        out.append(None if v is None else np.asarray(v, bool))
    return out


def _trapezoid_to(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Area under the piecewise-linear curve (x, y) (x non-decreasing, x[0] <= x_max <= x[-1])
    from x[0] to x_max; the curve is interpolated linearly at exactly x_max."""
    n = int(np.searchsorted(x, x_max, side="right"))  # x[:n] <= x_max < x[n:]
    xs, ys = x[:n], y[:n]
    if xs[-1] < x_max:  # then n < len(x) because x[-1] >= x_max
        x0, y0, x1, y1 = x[n - 1], y[n - 1], x[n], y[n]
        y_at = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
        xs = np.append(xs, x_max)
        ys = np.append(ys, y_at)
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) * 0.5))


def aupro(masks, anomaly_maps, fpr_limit: float = 0.3, num_thresholds: int | None = None, valid=None) -> float:
    """Normalised area under the PRO curve up to ``fpr_limit`` (MVTec AD protocol).

    Source: Bergmann, Batzner, Fauser, Sattlegger, Steger, "The MVTec Anomaly Detection
    Dataset: A Comprehensive Real-World Dataset for Unsupervised Anomaly Detection", IJCV 2021,
    and its reference evaluation code. Definition, for a threshold t (``map >= t`` = defect):

    * regions: connected components of every ground-truth mask, 8-connectivity
      (``scipy.ndimage.label`` with a 3x3 structuring element of ones, as the reference code);
    * PRO(t) = mean over all regions of all images of (region pixels with map >= t) / (region
      size) -- each region weighs the same, a 1-pixel defect as much as a large one;
    * FPR(t) = (defect-free pixels, over all images, with map >= t) / (all defect-free pixels);
      images without any defect region contribute only here;
    * the curve is (0, 0) followed by (FPR(t), PRO(t)) for t running down through every distinct
      map value (exact; ties enter together, giving a sloped segment), and reaches (1, 1);
    * AUPRO = (trapezoid area under PRO over FPR in [0, fpr_limit], the curve linearly
      interpolated at exactly fpr_limit) / fpr_limit, so a perfect detector scores 1.0 and one
      that ranks every defect pixel below every defect-free pixel scores 0.0.

    Exact mode sorts all pixels once (O(P log P), P = total pixels): each defect pixel carries
    weight 1 / (region size * number of regions), each defect-free pixel 1 / (defect-free count);
    cumulative sums in descending score order give PRO and FPR, and the last position of each run
    of equal scores is a curve point. With ``num_thresholds=K`` the curve is instead sampled at K
    thresholds evenly spaced from max to min map value (an approximation, kept for comparison
    with grid-based implementations).

    Args:
        masks: (N, H, W) bool (or integer, nonzero = defect), or a sequence of N (H_i, W_i)
            arrays; good images are all-False masks.
        anomaly_maps: same shape(s), real (e.g. float32); higher = more anomalous.
        fpr_limit: upper integration limit, in (0, 1]; 0.3 is the MVTec AD standard.
        num_thresholds: None (default) for the exact curve, or an int >= 2 for a grid.
        valid: as :func:`pixel_auroc`: regions are those of ``mask & valid`` and only valid
            defect-free pixels enter the FPR (the others weigh nothing on either axis).
    Returns:
        AUPRO in [0, 1] as a Python float.
    Raises:
        ValueError: count/shape mismatch, float masks, NaN/inf in maps, fpr_limit outside
            (0, 1], num_thresholds < 2, no defect region in any mask, or no defect-free pixel.
    """
    if not 0.0 < float(fpr_limit) <= 1.0:
        raise ValueError(f"AUPRO: fpr_limit must be in (0, 1], got {fpr_limit!r}")
    if num_thresholds is not None and int(num_thresholds) < 2:
        raise ValueError(
            f"AUPRO: num_thresholds must be None (exact) or >= 2, got {num_thresholds!r}"
        )
    ms, mp = _check_pixel_inputs(masks, anomaly_maps, "AUPRO")
    vs = _valid_list(valid, ms, "AUPRO")

    # Per-pixel weights: region pixels get 1/size (divided by the region count below),
    # defect-free pixels get 1 (divided by their count below).
    pro_w_parts, neg_parts = [], []
    n_regions = 0
    for m, v in zip(ms, vs):
        lab, n = ndimage.label(m if v is None else m & v, structure=_STRUCTURE_8)
        n_regions += n
        sizes = np.bincount(lab.ravel(), minlength=n + 1).astype(np.float64)
        inv = np.zeros(n + 1)
        inv[1:] = 1.0 / sizes[1:]
        pro_w_parts.append(inv[lab.ravel()])
        neg_parts.append(lab.ravel() == 0 if v is None else (lab.ravel() == 0) & v.ravel())
    if n_regions == 0:
        raise ValueError(
            "AUPRO is undefined: no mask contains a defect region; pass the ground-truth masks of "
            "the defective images (good images as all-False masks)"
        )
    neg = np.concatenate(neg_parts)
    n_neg = int(np.count_nonzero(neg))
    if n_neg == 0:
        raise ValueError(
            "AUPRO is undefined: every pixel is a defect pixel, so FPR has no denominator"
        )
    pro_w = np.concatenate(pro_w_parts)
    del pro_w_parts, neg_parts
    scores = np.concatenate([a.ravel() for a in mp])

    order = np.argsort(-scores, kind="stable")  # descending score
    s_desc = scores[order]
    fpr = np.cumsum(neg[order], dtype=np.float64) / n_neg
    pro = np.cumsum(pro_w[order]) / n_regions
    del order, pro_w, neg

    if num_thresholds is None:
        # Last index of each run of equal scores: all pixels with score >= that score included.
        keep = np.empty(s_desc.size, dtype=bool)
        np.not_equal(s_desc[1:], s_desc[:-1], out=keep[:-1])
        keep[-1] = True
        fpr, pro = fpr[keep], pro[keep]
    else:
        s64 = s_desc.astype(np.float64, copy=False)
        thr = np.linspace(s64[0], s64[-1], int(num_thresholds))
        thr[0], thr[-1] = s64[0], s64[-1]  # exact endpoints
        # number of pixels with score >= t; the descending array is ascending in -score.
        k = np.searchsorted(-s64, -thr, side="right")  # >= 1 since thr <= max
        fpr, pro = fpr[k - 1], pro[k - 1]

    x = np.concatenate(([0.0], np.minimum(fpr, 1.0)))
    y = np.concatenate(([0.0], np.minimum(pro, 1.0)))
    x[-1], y[-1] = 1.0, 1.0  # lowest threshold includes every pixel; remove rounding residue
    return _trapezoid_to(x, y, float(fpr_limit)) / float(fpr_limit)


# --------------------------------------------------------------------------------------------
# All at once
