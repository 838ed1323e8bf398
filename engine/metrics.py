"""Evaluation metrics for anomaly detection: image-level and pixel-level.

Image level (one score per image, label 0 = good, 1 = defective):
    ``image_auroc``, ``average_precision`` (AUPR), ``f1_max``, ``precision_recall_f1_at``,
    ``threshold_candidates`` (thresholds with their false-reject rate and recall).
Pixel level (one anomaly map per image, boolean ground-truth mask):
    ``pixel_auroc``, ``aupro`` (MVTec AD per-region-overlap protocol), defined in
    :mod:`engine.pixel_metrics` and re-exported here.
``compute_all`` bundles them into one ``dict[str, float]``.

Convention everywhere: a higher score means "more anomalous", and a verdict at threshold ``t`` is
``score >= t  =>  defective``.

Inputs are numpy arrays (or anything ``np.asarray`` accepts); outputs are Python floats/ints.
Bad input (shape mismatch, NaN/inf, labels outside {0, 1}, a metric undefined on the data such as
AUROC with one class only) raises ``ValueError`` with a message saying what is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from .pixel_metrics import _check_pixel_inputs, aupro, pixel_auroc  # noqa: F401  (public here too)

__all__ = [
    "image_auroc",
    "average_precision",
    "f1_max",
    "precision_recall_f1_at",
    "threshold_candidates",
    "pixel_auroc",
    "aupro",
    "compute_all",
]


# --------------------------------------------------------------------------------------------
# Input checks


def _check_image_inputs(
    labels, scores, *, need_both: bool, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Return (labels as bool (N,), scores as float64 (N,)) or raise ValueError."""
    y = np.asarray(labels)
    s = np.asarray(scores)
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(
            f"{what}: labels and scores must be 1-D arrays of shape (N,), "
            f"got shapes {y.shape} and {s.shape}"
        )
    if y.shape != s.shape:
        raise ValueError(f"{what}: labels has {y.shape[0]} entries but scores has {s.shape[0]}")
    if y.size == 0:
        raise ValueError(f"{what}: no images (labels and scores are empty)")
    if y.dtype != bool:
        if not np.issubdtype(y.dtype, np.number) or not np.isin(y, (0, 1)).all():
            bad = sorted(set(np.unique(y).tolist()) - {0, 1})[:5]
            raise ValueError(f"{what}: labels must be 0 (good) or 1 (defective), found {bad}")
    if not np.issubdtype(s.dtype, np.number) or np.issubdtype(s.dtype, np.complexfloating):
        raise ValueError(f"{what}: scores must be real numbers, got dtype {s.dtype}")
    s = s.astype(np.float64)
    if not np.isfinite(s).all():
        raise ValueError(f"{what}: scores contain {int((~np.isfinite(s)).sum())} NaN/inf value(s)")
    y = y.astype(bool)
    if need_both and (y.all() or not y.any()):
        present = "defective (1)" if y.all() else "good (0)"
        raise ValueError(
            f"{what} is undefined when only one class is present: all {y.size} images are "
            f"{present}; evaluate on a set with both good and defective images"
        )
    return y, s


def image_auroc(labels, scores) -> float:
    """Area under the ROC curve of image scores.

    Definition: probability that a random defective image scores higher than a random good one,
    ties counting 1/2 (Mann-Whitney U / (n_pos * n_neg)); computed with
    ``sklearn.metrics.roc_auc_score``.

    Args:
        labels: (N,) bool or int in {0, 1}; 1 = defective.
        scores: (N,) real; higher = more anomalous.
    Returns:
        AUROC in [0, 1] as a Python float.
    Raises:
        ValueError: shapes differ, empty input, labels outside {0, 1}, NaN/inf scores, or only
            one class present (AUROC undefined).
    """
    y, s = _check_image_inputs(labels, scores, need_both=True, what="image AUROC")
    return float(roc_auc_score(y, s))


def average_precision(labels, scores) -> float:
    """AUPR (average precision) of image scores.

    Definition (``sklearn.metrics.average_precision_score``, no interpolation):
    ``AP = sum_k (R_k - R_{k-1}) * P_k`` over the distinct score values taken as thresholds in
    decreasing order, where P_k, R_k are precision and recall of ``score >= threshold_k``
    and R_0 = 0. For distinct scores this is the mean of the precision at the rank of each
    defective image.

    Args:
        labels: (N,) bool or int in {0, 1}; 1 = defective (the positive class).
        scores: (N,) real; higher = more anomalous.
    Returns:
        AP in [0, 1] as a Python float.
    Raises:
        ValueError: as ``image_auroc`` (one class only included: AP is undefined without
            defective images and trivially 1 without good ones).
    """
    y, s = _check_image_inputs(labels, scores, need_both=True, what="average precision")
    return float(average_precision_score(y, s))


def _confusion(y: np.ndarray, s: np.ndarray, threshold: float) -> tuple[int, int, int, int]:
    pred = s >= threshold
    tp = int(np.count_nonzero(pred & y))
    fp = int(np.count_nonzero(pred & ~y))
    fn = int(np.count_nonzero(~pred & y))
    tn = int(np.count_nonzero(~pred & ~y))
    return tp, fp, fn, tn


def f1_max(labels, scores) -> tuple[float, float]:
    """Best F1 over all thresholds of the precision-recall curve, and that threshold.

    Candidate thresholds are those of ``sklearn.metrics.precision_recall_curve`` (the distinct
    score values). Verdict convention: ``score >= threshold  =>  defective``; so the returned
    threshold is itself a score value and applying it with ``>=`` reproduces the returned F1
    exactly (see ``precision_recall_f1_at``). F1 = 2 TP / (2 TP + FP + FN) is computed from
    integer counts, so equal F1 values compare equal; on a tie the *lowest* threshold wins
    (more recall for the same F1).

    Args:
        labels: (N,) bool or int in {0, 1}; 1 = defective.
        scores: (N,) real; higher = more anomalous.
    Returns:
        (best F1, threshold) as Python floats.
    Raises:
        ValueError: as ``image_auroc`` (one class only included).
    """
    y, s = _check_image_inputs(labels, scores, need_both=True, what="F1-max")
    _, _, thresholds = precision_recall_curve(y, s)  # ascending distinct score values
    thresholds = np.asarray(thresholds, dtype=np.float64)
    # Exact counts at each threshold: #(score >= t) = N - #(score < t).
    pos = np.sort(s[y])
    neg = np.sort(s[~y])
    tp = pos.size - np.searchsorted(pos, thresholds, side="left")
    fp = neg.size - np.searchsorted(neg, thresholds, side="left")
    fn = pos.size - tp
    f1 = 2.0 * tp / (2.0 * tp + fp + fn)  # denominator >= n_pos > 0
    best = int(np.argmax(f1))  # first maximum = lowest threshold
    return float(f1[best]), float(thresholds[best])


def precision_recall_f1_at(
    labels, scores, threshold: float, zero_division: float | None = 0.0
) -> dict[str, float | int | None]:
    """Precision, recall, F1 and confusion counts of the verdict ``score >= threshold``.

    Definitions: precision = TP / (TP + FP), recall = TP / (TP + FN),
    F1 = 2 TP / (2 TP + FP + FN). Empty denominators: precision is undefined when nothing is
    predicted defective (TP + FP = 0) and takes the value ``zero_division`` then (0.0 by
    default, as ``sklearn.metrics.precision_score``; pass None to get None, "undefined", for
    display); recall is 0.0 when there is no defective image, F1 is 0.0 when TP = 0. One class
    only is allowed here.

    Args:
        labels: (N,) bool or int in {0, 1}; 1 = defective.
        scores: (N,) real.
        threshold: finite real; ``score >= threshold`` is predicted defective.
        zero_division: precision reported when no image is flagged (0.0, 1.0 or None).
    Returns:
        dict with keys ``precision`` (float, or ``zero_division`` when nothing is flagged),
        float ``recall``, ``f1`` and int ``tp``, ``fp``, ``fn``, ``tn``.
    Raises:
        ValueError: bad labels/scores (as ``image_auroc``, except one class is fine) or a
            non-finite threshold.
    """
    y, s = _check_image_inputs(labels, scores, need_both=False, what="precision/recall")
    t = float(threshold)
    if not np.isfinite(t):
        raise ValueError(f"precision/recall: threshold must be finite, got {threshold!r}")
    tp, fp, fn, tn = _confusion(y, s, t)
    precision = float(tp / (tp + fp)) if tp + fp else zero_division
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return {
        "precision": precision,
        "recall": float(recall),
        "f1": float(f1),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def threshold_candidates(
    labels, scores, max_frr: Sequence[float] = (0.01, 0.03, 0.05)
) -> list[dict[str, float | int | str | None]]:
    """Candidate decision thresholds on a labelled set, each with what it does on that set.

    Candidates: the F1-max threshold (:func:`f1_max`), then for each ``p`` in ``max_frr`` the
    lowest threshold that rejects at most a fraction ``p`` of the good images (the most recall
    for that false-reject budget), read off ``sklearn.metrics.roc_curve`` (its thresholds are
    the distinct scores, ``score >= threshold`` = defective, as everywhere here).

    Args:
        labels: (N,) bool or int in {0, 1}; 1 = defective; both classes needed.
        scores: (N,) real; higher = more anomalous.
        max_frr: false-reject budgets, fractions in [0, 1).
    Returns:
        one dict per candidate, in the order above: ``name`` (``"f1_max"`` or ``"frr<=0.01"``...),
        ``max_frr`` (None for F1-max), ``threshold`` (a score value; None when no threshold
        within the budget flags any image, i.e. the highest score is a good image's and the
        budget allows no reject), ``frr`` (fraction of good images with score >= threshold),
        ``recall`` (fraction of defective images flagged), ``precision`` (None when nothing is
        flagged), ``f1``, counts ``n_good``, ``n_good_rejected``, ``n_defective``,
        ``n_defective_flagged``, and ``flags_all_good`` (True when every good image is rejected).
    Raises:
        ValueError: as ``image_auroc`` (one class only included), or a budget outside [0, 1).
    """
    y, s = _check_image_inputs(labels, scores, need_both=True, what="threshold candidates")
    for p in max_frr:
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"threshold candidates: false-reject budget {p!r} is outside [0, 1)")

    def row(name: str, budget: float | None, t: float | None) -> dict:
        n_good, n_def = int(np.count_nonzero(~y)), int(np.count_nonzero(y))
        if t is None:
            return {"name": name, "max_frr": budget, "threshold": None, "frr": 0.0, "recall": 0.0,
                    "precision": None, "f1": 0.0, "n_good": n_good, "n_good_rejected": 0, "n_defective": n_def,
                    "n_defective_flagged": 0, "flags_all_good": False}
        r = precision_recall_f1_at(y, s, t, zero_division=None)
        return {"name": name, "max_frr": budget, "threshold": float(t), "frr": r["fp"] / n_good,
                "recall": r["recall"], "precision": r["precision"], "f1": r["f1"], "n_good": n_good,
                "n_good_rejected": r["fp"], "n_defective": n_def, "n_defective_flagged": r["tp"],
                "flags_all_good": r["fp"] == n_good}

    out = [row("f1_max", None, f1_max(y, s)[1])]
    fpr, _, thresholds = roc_curve(y, s, drop_intermediate=False)  # thresholds decreasing, fpr rising
    for p in max_frr:
        i = int(np.flatnonzero(fpr <= float(p))[-1])  # fpr[0] = 0 (threshold above every score)
        out.append(row(f"frr<={float(p):g}", float(p), float(thresholds[i]) if i > 0 else None))
    return out
def compute_all(
    labels,
    scores,
    masks: Sequence[np.ndarray | None] | np.ndarray | None = None,
    maps: Sequence[np.ndarray] | np.ndarray | None = None,
    threshold: float | None = None,
    *,
    fpr_limit: float = 0.3,
    valid: Sequence[np.ndarray | None] | None = None,
) -> dict[str, float | None]:
    """All metrics of one evaluation, as a flat ``dict[str, float]``.

    Keys: always ``image_auroc``, ``aupr``, ``f1_max``, ``f1_max_threshold``; with
    ``threshold``: ``precision``, ``recall``, ``f1`` at ``score >= threshold`` (``precision`` is
    None, undefined, when no image scores at or above the threshold); with pixel ground truth:
    ``pixel_auroc``, ``aupro`` (at ``fpr_limit``).

    Pixel metrics use only the images whose mask is not None. The caller passes good images as
    all-False masks (a good part has no defect pixel by definition) and None for defective
    images whose mask is missing. Pixel metrics are computed when at least one defective image
    has a mask; if none does (e.g. a dataset without ground truth) the pixel keys are left out.

    Args:
        labels: (N,) bool or int in {0, 1}.
        scores: (N,) real image scores.
        masks: None, an (N, H, W) bool/int array, or a length-N sequence of (H, W) arrays or None.
        maps: (N, H, W) real array or length-N sequence of (H, W) arrays; required with masks.
        threshold: optional decision threshold for precision/recall/F1.
        fpr_limit: AUPRO integration limit.
        valid: None, or a length-N sequence of bool arrays (or None) of the masks' shapes: the
            pixels the pixel metrics count (a region of interest), :func:`pixel_auroc`.
    Returns:
        dict of metric name -> Python float (None for an undefined precision).
    Raises:
        ValueError: anything the individual metrics raise; masks without maps; masks or maps
            not of length N; a good image (label 0) whose mask marks defect pixels.
    """
    y, _ = _check_image_inputs(labels, scores, need_both=True, what="compute_all")
    out: dict[str, float | None] = {
        "image_auroc": image_auroc(labels, scores),
        "aupr": average_precision(labels, scores),
    }
    out["f1_max"], out["f1_max_threshold"] = f1_max(labels, scores)
    if threshold is not None:
        r = precision_recall_f1_at(labels, scores, threshold, zero_division=None)
        out.update(precision=r["precision"], recall=r["recall"], f1=r["f1"])

    if masks is None:
        return out
    if maps is None:
        raise ValueError("compute_all: masks were given without anomaly maps (maps=None)")
    mask_list = list(masks)
    map_list = list(maps)
    if len(mask_list) != y.size or len(map_list) != y.size:
        raise ValueError(
            f"compute_all: {y.size} labels but {len(mask_list)} masks and {len(map_list)} maps"
        )
    used = [i for i, m in enumerate(mask_list) if m is not None]
    for i in used:
        if not y[i] and np.any(mask_list[i]):
            raise ValueError(
                f"compute_all: image {i} is labelled good (0) but its mask marks "
                f"{int(np.count_nonzero(mask_list[i]))} defect pixel(s)"
            )
    if not any(y[i] for i in used):
        return out  # no pixel ground truth for any defective image
    if valid is not None and not any(np.any(np.asarray(mask_list[i], bool) & np.asarray(valid[i], bool))
                                     for i in used if y[i] and valid[i] is not None):
        if all(valid[i] is not None for i in used if y[i]):
            return out  # every defect pixel lies outside the valid pixels: nothing to judge
    sel_masks = [mask_list[i] for i in used]
    sel_maps = [map_list[i] for i in used]
    sel_valid = None if valid is None else [list(valid)[i] for i in used]
    out["pixel_auroc"] = pixel_auroc(sel_masks, sel_maps, valid=sel_valid)
    out["aupro"] = aupro(sel_masks, sel_maps, fpr_limit=fpr_limit, valid=sel_valid)
    return out
