"""Choosing the OK/NOK threshold.

Good-only (no labelled defects): split conformal quantile (Vovk et al. 2005; Angelopoulos & Bates,
"A Gentle Introduction to Conformal Prediction", 2021). With ``n`` held-out good scores that were
*not* used to fit the scorer, the threshold is the ``ceil((n + 1)(1 - alpha))``-th smallest of
them; a new good part (exchangeable with the held-out ones) then scores above it with probability
at most ``alpha`` (the target false-reject rate). When ``n`` is too small for ``alpha``
(``ceil((n+1)(1-alpha)) > n``) the maximum is used and the guarantee is reported as not met.
"""

from __future__ import annotations

import math

import numpy as np


def conformal_threshold(good_scores: np.ndarray, target_frr: float = 0.01) -> dict:
    """Threshold from held-out good image scores (module docstring).

    Args:
        good_scores: ``(n,)`` image scores of good images not used in fitting.
        target_frr: target false-reject rate alpha in (0, 1).
    Returns:
        dict with ``threshold``, ``method``, ``target_frr``, ``n_good``, ``rank`` (1-based order
        statistic used) and ``guarantee_met`` (False when n is too small for the target).
    Raises:
        ValueError: no scores, or target_frr outside (0, 1).
    """
    s = np.sort(np.asarray(good_scores, np.float64).ravel())
    if s.size == 0:
        raise ValueError("need at least one held-out good score to calibrate")
    if not 0 < target_frr < 1:
        raise ValueError(f"target_frr must be in (0, 1), got {target_frr}")
    n = s.size
    rank = math.ceil((n + 1) * (1 - target_frr))
    met = rank <= n
    rank = min(rank, n)
    return {"threshold": float(s[rank - 1]), "method": "conformal", "target_frr": float(target_frr),
            "n_good": int(n), "rank": int(rank), "guarantee_met": bool(met)}
