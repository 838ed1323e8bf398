"""Choosing the OK/NOK threshold: from good images alone, or from a few labelled images.

All functions here are plain numpy/scipy on score arrays; :class:`engine.model.InspectionModel`
collects the scores (:meth:`~engine.model.InspectionModel.fit`,
:meth:`~engine.model.InspectionModel.recalibrate`) and stores the returned dicts in
``model.calibration``. Verdict convention everywhere: ``score >= threshold`` => NOK.

Good-only (day one: good parts, no labelled defect)
    The scores must come from good images that the scorer did *not* learn from (a k-NN memory bank
    scores its own training images near zero). ``fit`` gets them by K-fold cross-fitting: every good
    image is scored once by a scorer fitted on the other folds, so all ``n`` good images become
    calibration scores and the final scorer still learns from all of them.

    * ``conformal_threshold``: split-conformal quantile (Vovk et al. 2005; Angelopoulos & Bates,
      "A Gentle Introduction to Conformal Prediction", 2021): the ``r = ceil((n + 1)(1 - alpha))``-th
      smallest score. Distribution-free: a new good part scores above it with probability
      ``(n + 1 - r) / (n + 1) <= alpha``. It needs ``n >= 1/alpha - 1`` scores (99 for 1 %); with
      fewer, ``r > n``, the best it can do is the maximum, whose false-reject rate is
      ``1 / (n + 1)`` (3.8 % for 25 images) -- far above a 1 % target.
    * ``exptail_threshold``: a fitted tail for small ``n`` (peaks over threshold, Pickands 1975,
      with the exponential excess law, i.e. a generalised Pareto tail of shape 0). The ``k = n // 2``
      largest scores are excesses over ``u``, the score just below them; with ``m`` their mean
      excess, the threshold solves ``p (1 + (t - u)/(k m))^(-k) = alpha``, ``p = (k + 1)/(n + 1)``.
      That is the exact *predictive* tail (it pays for estimating ``m`` from k values, as a Student-t
      factor does for a Gaussian): for exponentially tailed scores a new good part exceeds ``t``
      with probability alpha on average, for any n >= 5. It is never set below the largest score
      seen. Unlike the conformal quantile it can extrapolate beyond the data.
    * ``lognormal_threshold``: the Gaussian-on-log-scores prediction bound
      ``exp(mean + t_{n-1, 1-alpha} sd sqrt(1 + 1/n))``; kept for comparison -- on the shared data
      its tail is too light (2-4 % measured for a 1 % target with 10-30 images, against 0.8-1.5 %
      for the exponential tail; ``docs/LABEL_EFFICIENCY.md``).
    * ``good_only_threshold(method="auto")`` uses the conformal quantile when ``n`` is large enough
      for its guarantee, else the exponential tail (the maximum when n < 5).

    Expected false-reject rate and its uncertainty (``frr_at``): the rate estimate is the method's
    own (``(n + 1 - r)/(n + 1)`` for conformal, the fitted tail probability otherwise); the
    interval is the exact Clopper-Pearson 95 % interval of ``j / n``, ``j`` = calibration scores at or
    above the threshold, which holds whatever the score distribution.

Balanced (the default at fit time: good scores *and* synthetic defects)
    ``balanced_threshold``: the threshold that best separates the cross-fitted good scores from
    the scores of synthetic defects made on held-out good images (Youden's index), raised while it
    still catches 95 % of them, never above the good-only tail threshold, rejecting at most 30 % of
    the good scores, and used only when the synthetic defects score significantly higher (one-sided
    Kolmogorov-Smirnov test). ``choose_threshold`` picks a rule by name (:data:`THRESHOLD_RULES`);
    ``docs/THRESHOLD.md`` measures both rules against the F1-max oracle on the shared data.

Few labels (some labelled good and defective images)
    ``few_label_threshold`` builds the precision-recall (and ROC) curve over every distinct score and
    picks F1-max (default), the lowest threshold reaching a target precision, or the highest
    threshold keeping a target recall. Extra known-good scores (the cross-fitted ones) sharpen the
    false-reject side of the curve; they are re-weighted so the labelled defect fraction is kept.
    With labels only and no prior, the threshold is exactly :func:`engine.metrics.f1_max`'s. Given
    the good-only threshold as ``prior`` (as ``recalibrate`` does), the F1-max is taken over the
    labelled images and, among the thresholds that reach it, the one nearest the prior is used:
    a handful of labels leaves a wide range of equally good thresholds, and the labelled defect's
    own score -- what a plain F1-max returns -- is the worst of them.

Pixel threshold (stored with the calibration; a segmentation threshold in anomaly-map units)
    From good images only: the 99.5 % quantile of all pixels of good anomaly maps, so about 0.5 % of
    a good part's area lies above it (``pixel_threshold_from_good``). With defect masks:
    pixel-level F1-max over all pixels (``pixel_threshold_from_masks``). The overlays do not use
    it: they outline where the map reaches the image threshold (:mod:`engine.overlay`), which a
    good part's map does not reach, while the 99.5 % quantile lies far below it.

Display scale: :mod:`engine.overlay` maps ``floor`` (median good patch score) to 0 and the
image threshold to 0.5, ``n(v) = clip(0.5 (v - floor) / (threshold - floor), 0, 1)``.

See also: :mod:`engine.metrics` (definitions of precision, recall, F1-max), :mod:`engine.synthetic_defects`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from .app_info import cli_command

GOOD_ONLY_METHODS = ("auto", "conformal", "exptail", "lognormal")
OBJECTIVES = ("f1", "precision", "recall")


# --------------------------------------------------------------------------------------------
# Uncertainty


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact two-sided binomial interval for a rate observed as ``k`` events in ``n`` trials.

    Raises:
        ValueError: ``n < 1`` or ``k`` outside ``[0, n]``.
    """
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def _check_scores(good_scores, target_frr: float) -> np.ndarray:
    s = np.sort(np.asarray(good_scores, np.float64).ravel())
    if s.size == 0:
        raise ValueError("need at least one good score (from images the scorer did not learn) to calibrate")
    if not np.isfinite(s).all():
        raise ValueError(f"good scores contain {int((~np.isfinite(s)).sum())} NaN/inf value(s)")
    if not 0 < target_frr < 1:
        raise ValueError(f"target_frr must be in (0, 1), got {target_frr}")
    return s


def fit_lognormal(good_scores) -> dict | None:
    """Gaussian fit of ``log(score)``: ``{"kind": "lognormal", "mu", "sigma", "n"}``, or None when undefined.

    Undefined when fewer than 3 scores, any score <= 0, or all log-scores equal.
    """
    s = np.asarray(good_scores, np.float64).ravel()
    if s.size < 3 or (s <= 0).any():
        return None
    ls = np.log(s)
    sd = float(ls.std(ddof=1))
    if not sd > 0:
        return None
    return {"kind": "lognormal", "mu": float(ls.mean()), "sigma": sd, "n": int(s.size)}


def fit_exptail(good_scores) -> dict | None:
    """Exponential excesses over the ``n - k``-th score, ``k = n // 2`` (module docstring).

    Returns:
        ``{"kind": "exp", "u", "k", "m" (mean excess), "p" ((k + 1)/(n + 1)), "n"}``, or None when
        n < 5 or the excesses are all zero.
    """
    s = np.sort(np.asarray(good_scores, np.float64).ravel())
    n = s.size
    if n < 5:
        return None
    k = n // 2
    u = float(s[n - k - 1])
    m = float(np.mean(s[n - k:] - u))
    if not m > 0:
        return None
    return {"kind": "exp", "u": u, "k": int(k), "m": m, "p": (k + 1) / (n + 1), "n": int(n)}


def tail_exceedance(tail: dict, threshold: float) -> float | None:
    """Predictive probability that a new good score is ``>= threshold`` under a fitted tail
    (``fit_exptail`` or ``fit_lognormal``); None below the exponential tail's start ``u``."""
    if tail.get("kind") == "exp":
        if threshold <= tail["u"]:
            return None
        return float(tail["p"] * (1 + (threshold - tail["u"]) / (tail["k"] * tail["m"])) ** (-tail["k"]))
    if threshold <= 0:
        return 1.0
    n = tail["n"]
    z = (math.log(threshold) - tail["mu"]) / (tail["sigma"] * math.sqrt(1 + 1 / n))
    return float(stats.t.sf(z, n - 1))


def frr_at(good_scores, threshold: float, tail: dict | None = None) -> dict:
    """False-reject rate of good parts at ``threshold`` (module docstring), for the GUI slider too.

    Args:
        good_scores: ``(n,)`` scores of good images the scorer did not learn from.
        threshold: the threshold in score units.
        tail: optional ``fit_exptail`` / ``fit_lognormal`` result; its smooth tail probability is
            used as the estimate when it lies inside the empirical interval (beyond the largest
            score the empirical rate alone would say 0).
    Returns:
        dict ``estimate``, ``ci95`` ([lo, hi], Clopper-Pearson), ``n``, ``exceed`` (j = scores >= threshold),
        ``empirical`` (j / n).
    """
    s = np.asarray(good_scores, np.float64).ravel()
    n = int(s.size)
    j = int(np.count_nonzero(s >= threshold))
    lo, hi = clopper_pearson(j, n)
    est = j / n
    if tail is not None:
        model = tail_exceedance(tail, threshold)
        if model is not None and lo <= model <= hi:
            est = model
    return {"estimate": float(est), "ci95": [lo, hi], "n": n, "exceed": j, "empirical": j / n}


# --------------------------------------------------------------------------------------------
# Good-only


def conformal_threshold(good_scores: np.ndarray, target_frr: float = 0.01) -> dict:
    """Split-conformal threshold from held-out good image scores (module docstring).

    Args:
        good_scores: ``(n,)`` image scores of good images not used in fitting.
        target_frr: target false-reject rate alpha in (0, 1).
    Returns:
        dict with ``threshold``, ``method`` ("conformal"), ``target_frr``, ``n_good``, ``rank``
        (1-based order statistic used), ``guarantee_met`` (False when n is too small for the
        target: the maximum is used), ``expected_frr`` ((n + 1 - rank) / (n + 1), the mean over
        calibration sets) and ``frr_ci95`` (Clopper-Pearson on the calibration scores).
    Raises:
        ValueError: no scores, NaN/inf scores, or target_frr outside (0, 1).
    """
    s = _check_scores(good_scores, target_frr)
    n = s.size
    rank = math.ceil((n + 1) * (1 - target_frr))
    met = rank <= n
    rank = min(rank, n)
    t = float(s[rank - 1])
    return {"threshold": t, "method": "conformal", "target_frr": float(target_frr), "n_good": int(n),
            "rank": int(rank), "guarantee_met": bool(met), "expected_frr": (n + 1 - rank) / (n + 1),
            "frr_ci95": frr_at(s, t)["ci95"]}


def lognormal_threshold(good_scores: np.ndarray, target_frr: float = 0.01) -> dict:
    """Log-normal prediction-bound threshold for small ``n`` (module docstring).

    Returns:
        dict as :func:`conformal_threshold` (``method`` "lognormal", ``expected_frr`` = target under
        the model, ``guarantee_met`` False: it rests on the log-normal model) plus ``tail``
        (``fit_lognormal``) and ``rank`` None.
    Raises:
        ValueError: as :func:`conformal_threshold`, or fewer than 3 positive, not all equal scores.
    """
    s = _check_scores(good_scores, target_frr)
    tail = fit_lognormal(s)
    if tail is None:
        raise ValueError(f"log-normal tail needs >= 3 positive, not all equal scores, got {s.size}")
    n = s.size
    q = float(stats.t.ppf(1 - target_frr, n - 1))
    t = math.exp(tail["mu"] + q * tail["sigma"] * math.sqrt(1 + 1 / n))
    return {"threshold": t, "method": "lognormal", "target_frr": float(target_frr), "n_good": int(n),
            "rank": None, "guarantee_met": False, "expected_frr": float(target_frr),
            "frr_ci95": frr_at(s, t)["ci95"], "tail": tail}


def exptail_threshold(good_scores: np.ndarray, target_frr: float = 0.01) -> dict:
    """Exponential-tail predictive threshold for small ``n`` (module docstring).

    Returns:
        dict as :func:`conformal_threshold` (``method`` "exptail", ``expected_frr`` = target under
        the model, ``guarantee_met`` False: it rests on the tail model, ``rank`` None) plus ``tail``
        (``fit_exptail``) and ``at_max`` (True when the largest score was used instead).
    Raises:
        ValueError: as :func:`conformal_threshold`, or fewer than 5 scores / no spread.
    """
    s = _check_scores(good_scores, target_frr)
    tail = fit_exptail(s)
    if tail is None:
        raise ValueError(f"exponential tail needs >= 5 scores that are not all equal, got {s.size}")
    if target_frr >= tail["p"]:
        t = float(np.quantile(s, 1 - target_frr))
    else:
        k, m = tail["k"], tail["m"]
        t = tail["u"] + k * m * ((tail["p"] / target_frr) ** (1 / k) - 1)
    at_max = t < s[-1]
    t = float(max(t, s[-1]))
    return {"threshold": t, "method": "exptail", "target_frr": float(target_frr), "n_good": int(s.size),
            "rank": None, "guarantee_met": False, "expected_frr": float(min(target_frr, tail_exceedance(tail, t) or 1)),
            "frr_ci95": frr_at(s, t)["ci95"], "tail": tail, "at_max": bool(at_max)}


def good_only_threshold(good_scores: np.ndarray, target_frr: float = 0.01, method: str = "auto") -> dict:
    """Good-only threshold by ``method`` in :data:`GOOD_ONLY_METHODS` (module docstring).

    ``"auto"``: conformal when ``ceil((n + 1)(1 - alpha)) <= n`` (its guarantee holds), else the
    exponential tail (conformal again when the tail is undefined, n < 5).
    The result always carries ``tail`` (a tail fit or None), used by :func:`frr_at`.
    """
    if method not in GOOD_ONLY_METHODS:
        raise ValueError(f"good-only method must be one of {GOOD_ONLY_METHODS}, got {method!r}")
    s = _check_scores(good_scores, target_frr)
    if method == "auto":
        enough = math.ceil((s.size + 1) * (1 - target_frr)) <= s.size
        method = "conformal" if enough or fit_exptail(s) is None else "exptail"
    fn = {"conformal": conformal_threshold, "exptail": exptail_threshold, "lognormal": lognormal_threshold}[method]
    out = fn(s, target_frr)
    out.setdefault("tail", fit_exptail(s))
    if out["threshold"] <= s[-1] and s[-1] == s[0]:
        # every good score is the same (identical images, or a scorer that gives them all 0): a
        # threshold equal to it would reject every such part (score >= threshold). Just above it,
        # such parts pass and anything scoring higher is flagged.
        above = float(np.nextafter(s[-1], np.inf))
        out.update(threshold=above, degenerate=True, expected_frr=0.0, frr_ci95=frr_at(s, above)["ci95"])
    return out


# --------------------------------------------------------------------------------------------
# Balanced: good scores against synthetic defects (the default at fit time)

THRESHOLD_RULES = ("balanced", "tail")
"""Labelling-free threshold rules: ``balanced`` (:func:`balanced_threshold`, the default) and
``tail`` (:func:`good_only_threshold` alone: only the false-reject side)."""

SEPARATION_P = 0.01
"""Synthetic defects are trusted when they score higher than the good images at this significance
(one-sided two-sample Kolmogorov-Smirnov test, whose statistic is the Youden index maximum)."""

MAX_FRR = 0.3
"""Highest share of the cross-fitted good scores at or above a threshold the balanced rule lowers to."""

SYNTHETIC_RECALL = 0.95
"""The balanced rule goes no lower than the threshold that catches this share of synthetic defects."""


def bank_growth_shift(small_bank_scores, fold_scores, k: int) -> dict:
    """How much lower the final model scores than the fold scorers, from how scores fall as the bank grows.

    A fold scorer searches ``(k-1)/k`` of the training images, the final model all of them. The
    same held-out images scored against ``(k-2)/k`` of them (``small_bank_scores``) and against
    ``(k-1)/k`` (``fold_scores``) give the fall per step; assuming scores fall linearly in the log
    of the bank size (nearest-neighbour distances shrink like a power of the sample size), the
    next step, ``(k-1)/k -> 1``, is ``step * log(k/(k-1)) / log((k-1)/(k-2))``.

    Args:
        small_bank_scores, fold_scores: ``(m,)`` image scores of the same m images.
        k: number of folds, >= 3.
    Returns:
        dict ``shift`` (<= 0, score units: add it to cross-fitted scores), ``step`` (median of
        ``fold - small``), ``n`` (m), ``k``.
    Raises:
        ValueError: k < 3, no score, or the two arrays differ in length.
    """
    a = np.asarray(small_bank_scores, np.float64).ravel()
    b = np.asarray(fold_scores, np.float64).ravel()
    if k < 3 or a.size == 0 or a.size != b.size:
        raise ValueError(f"need k >= 3 and two equal, non-empty score arrays, got k={k}, {a.size} and {b.size}")
    step = float(np.median(b - a))
    shift = min(0.0, step * math.log(k / (k - 1)) / math.log((k - 1) / (k - 2)))
    return {"shift": shift, "step": step, "n": int(a.size), "k": int(k)}


def separation_curve(good_scores, defect_scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(thresholds, share of good >= t, share of defects >= t)`` at every score and every midpoint
    between neighbouring scores, ascending."""
    g = np.sort(np.asarray(good_scores, np.float64).ravel())
    d = np.sort(np.asarray(defect_scores, np.float64).ravel())
    c = np.unique(np.concatenate([g, d]))
    t = np.unique(np.concatenate([c, (c[1:] + c[:-1]) / 2]))
    frr = (g.size - np.searchsorted(g, t, side="left")) / g.size
    det = (d.size - np.searchsorted(d, t, side="left")) / d.size
    return t, frr, det


def balanced_threshold(good_scores, synthetic_scores, target_frr: float = 0.01, method: str = "auto",
                       max_frr: float = MAX_FRR, separation_p: float = SEPARATION_P,
                       synthetic_recall: float = SYNTHETIC_RECALL, shift: float = 0.0) -> dict:
    """The threshold that best separates cross-fitted good scores from synthetic-defect scores.

    Rule (``docs/THRESHOLD.md`` measures it on the shared categories):

    1. Both score sets are moved by ``shift`` (:func:`bank_growth_shift`: fold scorers score higher
       than the final model, which learned more images).
    2. Youden's index ``J(t) = caught(t) - rejected(t)`` (Youden 1950) -- share of synthetic defects
       scoring ``>= t`` minus share of good scores ``>= t`` -- is maximised over every score and
       midpoint; the middle of the maximising thresholds is taken. Misses and false rejects weigh
       the same.
    3. It is raised to the highest threshold that still catches ``synthetic_recall`` (95 %) of the
       synthetic defects when that is higher (``synthetic-recall``): the last few, weakest synthetic
       defects are not worth false rejects. (Without this step, on mvtec_ad/bottle a few weak
       synthetic spots among 96 pulled the threshold below 5 % of the cross-fitted goods.)
    4. It is never above the tail threshold (:func:`good_only_threshold` at ``target_frr``): when the
       defects lie far above every good score there is no reason to go higher than the false-reject
       target needs.
    5. The share of good scores at or above it is capped at ``max_frr``: above that, the lowest
       threshold within the cap is used (``capped``), or the tail threshold when that is lower.
    6. When the synthetic defects do not score significantly higher than the goods -- ``J_max`` is
       the one-sided two-sample Kolmogorov-Smirnov statistic; its p-value must be below
       ``separation_p`` -- the scorer hardly reacts to them (or the good parts vary as much as they
       do): they are not trusted and the tail threshold is used (``fallback``).

    Args:
        good_scores: ``(n,)`` cross-fitted good image scores (n >= 1).
        synthetic_scores: ``(m,)`` scores of synthetic defects on held-out good images (m >= 1).
        target_frr, method: for the tail threshold (:func:`good_only_threshold`).
        max_frr: cap on the share of good scores at or above the threshold, in (0, 1).
        separation_p: significance the separation must reach to trust the synthetic defects.
        synthetic_recall: share of synthetic defects in (0, 1] step 3 keeps catching.
        shift: added to both score sets first (score units, usually <= 0).
    Returns:
        :func:`good_only_threshold`'s dict for the moved good scores, with ``threshold``,
        ``expected_frr`` and ``frr_ci95`` replaced and ``method`` "balanced", plus ``placement``
        ("youden", "synthetic-recall", "tail" when the tail threshold was lower, "capped", "fallback"),
        ``separation`` (J_max), ``separation_p`` (its KS p-value), ``synthetic_caught`` and
        ``synthetic_caught_at_tail`` (share of synthetic scores >= the threshold / the tail threshold),
        ``expected_frr_at_tail`` (the same estimate as ``expected_frr``, at the tail threshold),
        ``tail_threshold``, ``tail_method``, ``score_shift``, ``max_frr``.
    Raises:
        ValueError: no good or synthetic score, NaN/inf, bad target_frr / max_frr.
    """
    g = _check_scores(good_scores, target_frr) + float(shift)
    s = np.asarray(synthetic_scores, np.float64).ravel() + float(shift)
    if s.size == 0 or not np.isfinite(s).all():
        raise ValueError("balanced threshold needs at least one finite synthetic-defect score")
    if not 0 < max_frr < 1:
        raise ValueError(f"max_frr must be in (0, 1), got {max_frr}")
    if not 0 < synthetic_recall <= 1:
        raise ValueError(f"synthetic_recall must be in (0, 1], got {synthetic_recall}")
    tail = good_only_threshold(g, target_frr, method)
    t, frr, det = separation_curve(g, s)
    j = det - frr
    best = np.flatnonzero(j >= j.max() - 1e-12)
    t_bal = float(np.median(t[best]))
    # H1: good scores are stochastically smaller (their CDF lies above the synthetic one somewhere)
    p = float(stats.ks_2samp(g, s, alternative="greater").pvalue)
    s_sorted = np.sort(s)
    t_rec = float(s_sorted[int(math.floor(s.size * (1 - synthetic_recall) + 1e-9))])  # that share scores >= it
    cand, placement = (t_bal, "youden") if t_bal >= t_rec else (t_rec, "synthetic-recall")
    if p >= separation_p:
        thr, placement = tail["threshold"], "fallback"
    elif tail["threshold"] <= cand:
        thr, placement = tail["threshold"], "tail"
    else:
        thr = cand
    if placement in ("youden", "synthetic-recall") and float(np.mean(g >= thr)) > max_frr:
        within = np.flatnonzero(frr <= max_frr)  # empty when even the top score is a good one of few
        if within.size and float(t[within[0]]) < tail["threshold"]:
            thr, placement = float(t[within[0]]), "capped"
        else:  # the cap would lift it above the tail threshold: that is the tail threshold's job
            thr, placement = tail["threshold"], "tail"
    f = frr_at(g, thr, tail.get("tail"))
    out = dict(tail)
    out.update(threshold=float(thr), method="balanced", placement=placement, separation=float(j.max()),
               separation_p=p,
               synthetic_caught=float(np.mean(s >= thr)), tail_threshold=float(tail["threshold"]),
               synthetic_caught_at_tail=float(np.mean(s >= tail["threshold"])),
               expected_frr_at_tail=frr_at(g, tail["threshold"], tail.get("tail"))["estimate"],
               tail_method=tail["method"], score_shift=float(shift), max_frr=float(max_frr),
               synthetic_recall=float(synthetic_recall),
               expected_frr=f["estimate"], frr_ci95=f["ci95"], rank=None, guarantee_met=False)
    return out


def choose_threshold(good_scores, synthetic_scores=None, rule: str = "balanced", target_frr: float = 0.01,
                     method: str = "auto", shift: float = 0.0, **kwargs) -> dict:
    """A labelling-free threshold by ``rule`` in :data:`THRESHOLD_RULES` (``balanced`` needs synthetic
    scores; without them it is the ``tail`` rule). ``shift`` moves all scores first (see
    :func:`bank_growth_shift`). Returns the rule's dict with ``rule`` set."""
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"threshold rule must be one of {THRESHOLD_RULES}, got {rule!r}")
    if rule == "balanced" and synthetic_scores is not None and np.size(synthetic_scores):
        out = balanced_threshold(good_scores, synthetic_scores, target_frr, method, shift=shift, **kwargs)
    else:
        out = good_only_threshold(np.asarray(good_scores, np.float64) + float(shift), target_frr, method)
        out["score_shift"] = float(shift)
    out["rule"] = rule
    return out


# --------------------------------------------------------------------------------------------
# Few labels


def pr_curve(defect_scores, good_scores, extra_good_scores=None) -> dict:
    """Weighted precision / recall / FPR / F1 at every distinct score (see :func:`few_label_threshold`).

    Returns:
        dict of equal-length lists (ascending ``thresholds``): ``thresholds``, ``precision``,
        ``recall``, ``fpr``, ``f1``; and ``prevalence`` (the defect weight), ``n_defective``,
        ``n_good`` (labelled), ``n_extra_good``.
    """
    d = np.asarray(defect_scores, np.float64).ravel()
    g = np.asarray(good_scores if good_scores is not None else [], np.float64).ravel()
    e = np.asarray(extra_good_scores if extra_good_scores is not None else [], np.float64).ravel()
    if d.size == 0:
        raise ValueError("few-label calibration needs at least one defective image")
    pool = np.concatenate([g, e])
    if pool.size == 0:
        raise ValueError("few-label calibration needs at least one good score (labelled or from fit)")
    for name, a in (("defective", d), ("good", pool)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} scores contain NaN/inf values")
    # Defect fraction: the labelled one; with no labelled good, the pool stands in for labelled goods.
    prevalence = d.size / (d.size + (g.size if g.size else e.size))
    thresholds = np.unique(np.concatenate([d, pool]))
    ds, ps = np.sort(d), np.sort(pool)
    tpr = (d.size - np.searchsorted(ds, thresholds, side="left")) / d.size
    fpr = (ps.size - np.searchsorted(ps, thresholds, side="left")) / ps.size
    tp, fp = prevalence * tpr, (1 - prevalence) * fpr
    fn = prevalence - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        f1 = np.where(tp > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    return {"thresholds": thresholds.tolist(), "precision": precision.tolist(), "recall": tpr.tolist(),
            "fpr": fpr.tolist(), "f1": f1.tolist(), "prevalence": float(prevalence),
            "n_defective": int(d.size), "n_good": int(g.size), "n_extra_good": int(e.size)}


def f1_max_intervals(defect_scores, good_scores) -> tuple[float, list[tuple[float, float]]]:
    """Plain (unweighted) F1-max over labelled images, and every threshold range that reaches it.

    Returns:
        ``(best F1, [(lo, hi), ...])``: a threshold ``t`` reaches the best F1 iff ``lo < t <= hi``
        for one of the ranges (``lo`` may be ``-inf``), ascending. Verdict ``score >= t``.
    """
    d = np.sort(np.asarray(defect_scores, np.float64).ravel())
    g = np.sort(np.asarray(good_scores if good_scores is not None else [], np.float64).ravel())
    c = np.unique(np.concatenate([d, g]))
    tp = d.size - np.searchsorted(d, c, side="left")
    fp = g.size - np.searchsorted(g, c, side="left")
    f1 = 2 * tp / (2 * tp + fp + (d.size - tp))
    best = f1.max()
    ranges = [(float(c[j - 1]) if j else -math.inf, float(c[j])) for j in np.flatnonzero(f1 == best)]
    return float(best), ranges


def _nearest_in(ranges: list[tuple[float, float]], prior: float) -> float:
    """``prior`` when a range holds it, else the midpoint of the nearest range (its upper end when
    the range is unbounded below)."""
    for lo, hi in ranges:
        if lo < prior <= hi:
            return float(prior)
    lo, hi = min(ranges, key=lambda r: min(abs(prior - r[1]), abs(prior - r[0])))
    return float(hi if not math.isfinite(lo) else (lo + hi) / 2)


def few_label_threshold(defect_scores, good_scores=None, extra_good_scores=None, objective: str = "f1",
                        target: float | None = None, prior: float | None = None) -> dict:
    """Threshold from labelled scores on the precision-recall curve (module docstring).

    The curve (stored, and used for the precision / recall targets) weighs defective images with
    ``pi`` and good ones (labelled + extra) with ``1 - pi``, ``pi`` = labelled defects / labelled
    images (with no labelled good, the extra goods count as labelled). Without extra goods every
    image weighs the same: the plain curve of :func:`engine.metrics.f1_max`.

    F1 objective:

    * ``prior=None``: the F1-max of the weighted curve at a score value, lowest on a tie -- with
      labels only exactly :func:`engine.metrics.f1_max`'s threshold.
    * ``prior`` given (the good-only threshold; what :meth:`InspectionModel.recalibrate` does):
      F1-max over the labelled images (over the defects and the extra goods when no good is
      labelled), and among all thresholds that reach it the prior itself when it is one of them,
      else the middle of the nearest range that reaches it (:func:`f1_max_intervals`). A few labels rarely pin the threshold down: with one defect every
      threshold up to its score gives F1 = 1, and the score itself is the worst choice among them
      (it misses every later defect that scores lower). Labels move the good-only threshold only
      as far as they contradict it. ``docs/LABEL_EFFICIENCY.md`` measures the difference.

    Args:
        defect_scores: ``(k,)`` scores of labelled defective images, k >= 1.
        good_scores: ``(g,)`` scores of labelled good images the scorer did not learn (may be empty).
        extra_good_scores: ``(e,)`` other known-good scores (e.g. cross-fitted training images).
        objective: ``"f1"``, ``"precision"`` (lowest threshold with precision >= target: most recall
            at that precision) or ``"recall"`` (highest threshold with recall >= target: fewest
            false rejects at that recall).
        target: in (0, 1]; required for "precision" and "recall".
        prior: good-only threshold to stay close to (F1 objective only).
    Returns:
        dict ``threshold``, ``method`` ("f1-max" / "target-precision" / "target-recall"), ``objective``,
        ``target``, ``target_met`` (False when no threshold reaches the target precision: the
        most precise one is used), ``placement`` ("score" / "prior" / "nearest-range"),
        ``precision``, ``recall``, ``f1`` at the threshold (weighted curve), ``labelled_f1`` (plain F1 on
        the labelled images) and ``curve`` (:func:`pr_curve`).
    Raises:
        ValueError: no defective score, no good score, bad objective/target, NaN/inf.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if objective != "f1" and (target is None or not 0 < target <= 1):
        raise ValueError(f"objective {objective!r} needs a target in (0, 1], got {target!r}")
    c = pr_curve(defect_scores, good_scores, extra_good_scores)
    t = np.asarray(c["thresholds"])
    p, r, f = (np.asarray(c[k]) for k in ("precision", "recall", "f1"))
    met, placement = True, "score"
    if objective == "f1":
        i = int(np.flatnonzero(f >= f.max() - 1e-12)[0])
    elif objective == "precision":
        ok = np.flatnonzero(p >= target - 1e-12)
        met = ok.size > 0
        i = int(ok[0]) if met else int(np.flatnonzero(p >= p.max() - 1e-12)[0])
    else:
        i = int(np.flatnonzero(r >= target - 1e-12)[-1])  # recall at the lowest score is 1
    thr = float(t[i])
    labelled_goods = good_scores if good_scores is not None and np.size(good_scores) else None
    if objective == "f1" and prior is not None:
        # as in pr_curve: with no labelled good, the known goods stand in for labelled ones
        _, ranges = f1_max_intervals(defect_scores, labelled_goods if labelled_goods is not None else extra_good_scores)
        thr = _nearest_in(ranges, float(prior))
        placement = "prior" if thr == float(prior) else "nearest-range"
    at = _weighted_at(c, defect_scores, good_scores, extra_good_scores, thr)
    lab_f1 = _plain_f1(defect_scores, labelled_goods, thr)
    return {"threshold": thr, "method": {"f1": "f1-max", "precision": "target-precision",
                                         "recall": "target-recall"}[objective],
            "objective": objective, "target": None if target is None else float(target), "target_met": bool(met),
            "placement": placement, **at, "labelled_f1": float(lab_f1), "curve": c}


def _plain_f1(defect_scores, good_scores, threshold: float) -> float:
    d = np.asarray(defect_scores, np.float64).ravel()
    g = np.asarray(good_scores if good_scores is not None else [], np.float64).ravel()
    tp, fp = int(np.sum(d >= threshold)), int(np.sum(g >= threshold))
    return 2 * tp / (2 * tp + fp + (d.size - tp)) if tp else 0.0


def _weighted_at(curve: dict, defect_scores, good_scores, extra_good_scores, threshold: float) -> dict:
    """Weighted precision / recall / F1 of ``score >= threshold`` with the weights of ``curve``."""
    d = np.asarray(defect_scores, np.float64).ravel()
    pool = np.concatenate([np.asarray(x, np.float64).ravel() for x in (good_scores, extra_good_scores)
                           if x is not None and np.size(x)] or [np.zeros(0)])
    pi = curve["prevalence"]
    tp = pi * float(np.mean(d >= threshold))
    fp = (1 - pi) * (float(np.mean(pool >= threshold)) if pool.size else 0.0)
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    f1 = 2 * tp / (2 * tp + fp + (pi - tp)) if tp > 0 else 0.0
    return {"precision": float(precision), "recall": float(np.mean(d >= threshold)), "f1": float(f1)}


# --------------------------------------------------------------------------------------------
# Pixel threshold


def pixel_threshold_from_good(good_maps, area_fraction: float = 0.005, max_pixels: int = 2_000_000,
                              seed: int = 0) -> dict:
    """Contour threshold from good anomaly maps only: the ``1 - area_fraction`` quantile of their pixels.

    About ``area_fraction`` of a typical good part's area then lies above it.

    Args:
        good_maps: sequence of ``(H, W)`` score maps of good images the scorer did not learn.
        area_fraction: share of good pixels allowed above the threshold, in (0, 1).
        max_pixels: above this many pixels a fixed random subsample is used (memory).
    Returns:
        dict ``pixel_threshold``, ``pixel_method`` ("good-pixel-quantile"), ``pixel_area_fraction``.
    Raises:
        ValueError: no map, or area_fraction outside (0, 1).
    """
    if not 0 < area_fraction < 1:
        raise ValueError(f"area_fraction must be in (0, 1), got {area_fraction}")
    v = np.concatenate([np.asarray(m, np.float32).ravel() for m in good_maps] or [np.zeros(0, np.float32)])
    if v.size == 0:
        raise ValueError("need at least one good anomaly map for a pixel threshold")
    if v.size > max_pixels:
        v = v[np.random.default_rng(seed).choice(v.size, max_pixels, replace=False)]
    return {"pixel_threshold": float(np.quantile(v, 1 - area_fraction)), "pixel_method": "good-pixel-quantile",
            "pixel_area_fraction": float(area_fraction)}


def pixel_threshold_from_masks(maps, masks, max_pixels: int = 4_000_000, seed: int = 0) -> dict:
    """Contour threshold maximising pixel F1 over all pixels of all images (``map >= t`` = defect).

    Args:
        maps: sequence of ``(H, W)`` anomaly maps.
        masks: sequence of ``(H, W)`` bool masks (all False for good images).
        max_pixels: above this many pixels a fixed random subsample is used (memory).
    Returns:
        dict ``pixel_threshold``, ``pixel_method`` ("mask-f1"), ``pixel_f1`` (on these pixels).
    Raises:
        ValueError: shapes differ, or no defect pixel.
    """
    vals, labs = [], []
    for a, m in zip(maps, masks):
        if np.shape(a) != np.shape(m):
            raise ValueError(f"anomaly map shape {np.shape(a)} != mask shape {np.shape(m)}")
        vals.append(np.asarray(a, np.float64).ravel())
        labs.append(np.asarray(m, bool).ravel())
    v, y = np.concatenate(vals), np.concatenate(labs)
    if not y.any():
        raise ValueError("pixel F1 needs at least one defect pixel in the masks")
    if v.size > max_pixels:
        keep = np.random.default_rng(seed).choice(v.size, max_pixels, replace=False)
        v, y = v[keep], y[keep]
    order = np.argsort(-v, kind="stable")
    v, y = v[order], y[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    last = np.r_[v[1:] != v[:-1], True]  # end of each run of equal values: all of them are >= t
    tp, fp, thr = tp[last], fp[last], v[last]
    f1 = 2 * tp / (2 * tp + fp + (y.sum() - tp))
    i = int(np.flatnonzero(f1 >= f1.max() - 1e-12)[-1])  # lowest threshold on a tie
    return {"pixel_threshold": float(thr[i]), "pixel_method": "mask-f1", "pixel_f1": float(f1[i])}


# --------------------------------------------------------------------------------------------
# Record


def describe_calibration(calib: dict) -> str:
    """One sentence saying how a calibration dict's threshold was chosen (stored in the model file)."""
    t = calib.get("threshold")
    ci = calib.get("frr_ci95") or [float("nan")] * 2
    frr = (f"expected false-reject rate {calib.get('expected_frr', float('nan')):.2%} "
           f"(95% interval {ci[0]:.2%}-{ci[1]:.2%}, n={calib.get('n_good')} good scores)")
    if calib.get("chosen_by") == "labels":
        c = calib.get("curve", {})
        how = {"f1-max": "maximum F1", "target-precision": f"target precision {calib.get('target')}",
               "target-recall": f"target recall {calib.get('target')}"}.get(calib.get("method"), calib.get("method"))
        where = {"prior": ", the good-only threshold already reaches it",
                 "nearest-range": ", placed in the F1-max range nearest the good-only threshold"}.get(
            calib.get("placement"), "")
        return (f"threshold {t:.4g} from labels: {how} on {c.get('n_defective')} defective + {c.get('n_good')} good "
                f"labelled images (+{c.get('n_extra_good')} known-good scores){where}; weighted precision "
                f"{calib['precision']:.3f}, recall {calib['recall']:.3f}, F1 {calib['f1']:.3f}; {frr}")
    if calib.get("method") == "balanced":
        n_syn = (calib.get("synthetic") or {}).get("n", "")
        how = {"youden": f"best separation of the good scores from {n_syn} synthetic defects "
                         f"(Youden index {calib.get('separation', float('nan')):.2f})",
               "synthetic-recall": f"the highest threshold catching {calib.get('synthetic_recall', 0):.0%} of "
                                   f"{n_syn} synthetic defects (above their best separation from the good scores)",
               "tail": f"the good-score tail ({calib.get('tail_method')}, target {calib.get('target_frr', 0):.0%}), "
                       f"lower than the best separation from the synthetic defects",
               "capped": f"best separation from the synthetic defects, held at the {calib.get('max_frr', 0):.0%} "
                         f"false-reject cap",
               "fallback": f"the good-score tail ({calib.get('tail_method')}): the synthetic defects did not score "
                           f"clearly above the good images (p={calib.get('separation_p', float('nan')):.2g})",
               }.get(calib.get("placement"), calib.get("placement"))
        caught = calib.get("synthetic_caught")
        return (f"threshold {t:.4g} chosen by {how} ({calib.get('score_source', 'held-out scores')}); {frr}"
                + (f"; expected to catch {caught:.0%} of synthetic defects" if caught is not None else ""))
    if calib.get("method") == "conformal":
        how = (f"conformal quantile (order statistic {calib.get('rank')} of {calib.get('n_good')})"
               + ("" if calib.get("guarantee_met") else ", too few scores for the target: maximum used"))
    elif calib.get("method") == "exptail":
        how = (f"exponential tail fitted to the top {calib['tail']['k']} of {calib.get('n_good')} scores"
               + (", held at the largest score" if calib.get("at_max") else ""))
    else:
        how = f"log-normal tail prediction bound from {calib.get('n_good')} scores"
    return (f"threshold {t:.4g} from good images only ({calib.get('score_source', 'held-out scores')}): {how}, "
            f"target false-reject rate {calib.get('target_frr', float('nan')):.2%}; {frr}")


WEAK_SYNTHETIC_RATE = 0.5
"""Synthetic-defect detection rate under which a good-only threshold gets a warning."""


def weak_threshold_warning(calib: dict | None, model_path: str = "MODEL", remedy: str | None = None) -> str | None:
    """A warning when a good-only threshold detects less than :data:`WEAK_SYNTHETIC_RATE` of the
    synthetic defects (:mod:`engine.synthetic_defects`): the threshold then lies above most
    clear, pasted defects and will likely pass real ones. None otherwise (also after a
    calibration from labels, which measured recall directly). ``remedy`` replaces the default
    advice (the CLI commands) with the caller's own, e.g. the GUI's.
    """
    if not calib or calib.get("chosen_by") == "labels":
        return None
    syn = calib.get("synthetic")
    if not syn or syn.get("detection_rate", 1.0) >= WEAK_SYNTHETIC_RATE:
        return None
    if remedy is None:
        remedy = (f"Label a few defective images and run `{cli_command()} calibrate --model {model_path} --good DIR "
                  f"--defective DIR`, or accept more false rejects with a higher --target-frr"
                  + (" or the default --threshold-rule balanced." if calib.get("rule") == "tail" else "."))
    return (f"only {syn['detection_rate']:.0%} of {syn['n']} synthetic defects score at or above the threshold "
            f"{calib['threshold']:.4g}: it will likely pass real defects too (typical with few or varied good "
            f"images). {remedy}")
