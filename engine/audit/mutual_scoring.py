"""Mutual scoring of unlabelled images: the pure algorithm (no files, no backbone).

MuSc (Li et al., "MuSc: Zero-Shot Industrial Anomaly Detection and Segmentation with Mutual Scoring
of the Unlabeled Images", ICLR 2024) scores each image of an unlabelled set against the *other*
images of the set. Normal patches find a close match in almost every other image; a defect patch
finds none, except in the few other images that happen to carry a similar defect. Our plain version
(own code, written from the paper's method):

1. For each patch ``p`` of query image ``i`` and each reference image ``j != i``: the Euclidean
   distance to the nearest patch of ``j``, ``d_ij(p) = min_q ||f_i(p) - f_j(q)||``
   (:func:`nearest_patch_distances`).
2. Interval average over the references (MuSc's robust aggregate): sort ``d_ij(p)`` over ``j``
   ascending and average the smallest ``ceil(fraction * n_refs)`` values
   (:func:`interval_average`). Defective references give large distances to normal patches, so they
   fall outside the averaged interval as long as they are fewer than ``(1 - fraction)`` of the
   references; a defect patch stays far from the normal majority and keeps a high score.
3. The ``(h, w)`` grid of these patch scores is the anomaly grid; the image score and the anomaly
   map are made from it as for every other model (:mod:`engine.anomaly_map`: mean of the top 1 %
   patch scores; bilinear upsampling + Gaussian smoothing). MuSc's multi-degree aggregation (LNAMD)
   and its re-scoring with constrained image-level neighbourhoods (RsCIN) are not implemented.

Cost: a query of ``P`` patches against ``R`` references of ``P`` patches each is one
``(P, D) x (D, R P)`` product, done in chunks of ``chunk`` references so memory stays
``O(P * chunk * P)`` beyond the reference features ``(R, P, D)`` themselves.

Determinism: each query image is compared on its own (never stacked with other queries), with the
same chunking, so its scores do not depend on which other images are scored alongside it.

Usage::

    grid = mutual_patch_scores(query, refs, exclude=None)  # (h, w, D), (R, h, w, D) -> (h, w)
"""

from __future__ import annotations

import math

import numpy as np
import torch

DEFAULT_FRACTION = 0.3


def nearest_patch_distances(query: torch.Tensor, refs: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """Distance of each query patch to its nearest patch in each reference image.

    Args:
        query: ``(P, D) float32`` patch features of one image.
        refs: ``(R, Q, D) float32`` patch features of ``R`` reference images (``Q`` patches each).
        chunk: references compared per matrix product (memory ``P * chunk * Q`` floats).
    Returns:
        ``(P, R) float32``: entry ``[p, j] = min_q ||query[p] - refs[j, q]||`` (Euclidean).
    Raises:
        ValueError: feature dimensions differ, or an input has the wrong rank.
    """
    if query.ndim != 2 or refs.ndim != 3:
        raise ValueError(f"query must be (P, D) and refs (R, Q, D), got {tuple(query.shape)} and {tuple(refs.shape)}")
    if query.shape[1] != refs.shape[2]:
        raise ValueError(f"feature dimensions differ: query D={query.shape[1]}, refs D={refs.shape[2]}")
    query = query.float()
    n_ref, n_q = refs.shape[0], refs.shape[1]
    qn = (query * query).sum(1, keepdim=True)  # (P, 1)
    out = torch.empty((query.shape[0], n_ref), dtype=torch.float32)
    for s in range(0, n_ref, chunk):
        block = refs[s:s + chunk].float()  # (c, Q, D)
        c = block.shape[0]
        flat = block.reshape(c * n_q, -1)
        rn = (flat * flat).sum(1)  # (c Q,)
        d2 = qn + rn[None, :] - 2.0 * (query @ flat.T)  # (P, c Q)
        out[:, s:s + c] = d2.view(-1, c, n_q).amin(dim=2).clamp_min_(0.0).sqrt_()
    return out


def interval_average(dist: torch.Tensor, fraction: float = DEFAULT_FRACTION,
                     valid: torch.Tensor | None = None) -> torch.Tensor:
    """MuSc's interval average: per row, the mean of the smallest ``ceil(fraction * n)`` entries.

    Args:
        dist: ``(P, R) float32`` per-reference nearest distances (:func:`nearest_patch_distances`).
        fraction: share of the references averaged, in (0, 1].
        valid: optional ``(R,) bool``; False columns (the query image itself) are left out and
            ``n`` counts the True ones only.
    Returns:
        ``(P,) float32`` patch scores.
    Raises:
        ValueError: ``fraction`` outside (0, 1], or no valid reference.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if valid is not None:
        dist = dist[:, valid]
    n = dist.shape[1]
    if n == 0:
        raise ValueError("no reference image to compare with: a folder needs at least 2 readable images")
    k = max(1, math.ceil(fraction * n))
    smallest = torch.topk(dist, k, dim=1, largest=False, sorted=False).values
    return smallest.mean(dim=1)


def mutual_patch_scores(query: torch.Tensor, refs: torch.Tensor, exclude: int | None = None,
                        fraction: float = DEFAULT_FRACTION, chunk: int = 16) -> np.ndarray:
    """Patch-score grid of one image against a reference set.

    Args:
        query: ``(h, w, D) float32`` patch features of the image.
        refs: ``(R, h', w', D) float32`` patch features of the references (any grid size).
        exclude: index into ``refs`` of the query image itself (left out), or None.
        fraction, chunk: see :func:`interval_average` and :func:`nearest_patch_distances`.
    Returns:
        ``(h, w) float32`` patch scores (feature-space Euclidean distances).
    """
    h, w, d = query.shape
    dist = nearest_patch_distances(query.reshape(h * w, d), refs.reshape(refs.shape[0], -1, d), chunk)
    valid = None
    if exclude is not None:
        valid = torch.ones(refs.shape[0], dtype=torch.bool)
        valid[exclude] = False
    return interval_average(dist, fraction, valid).reshape(h, w).numpy().astype(np.float32)


def robust_cut(scores, k: float = 3.5) -> float:
    """A suggested outlier cut on image scores: ``median + k * 1.4826 * MAD`` (Hampel's rule).

    Not a calibrated threshold: it flags images whose score is far above the bulk of the folder,
    assuming most images are good. ``1.4826 * MAD`` estimates the standard deviation of normal data.

    Args:
        scores: image scores, 1-D, at least one value.
        k: width of the cut in robust standard deviations.
    Returns:
        the cut, float; an image with ``score >= cut`` is suggested for review.
    Raises:
        ValueError: no score.
    """
    s = np.asarray(scores, np.float64).ravel()
    if s.size == 0:
        raise ValueError("robust_cut needs at least one score")
    med = float(np.median(s))
    mad = float(np.median(np.abs(s - med)))
    return med + k * 1.4826 * mad
