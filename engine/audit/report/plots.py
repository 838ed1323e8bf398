"""The report's two plots, drawn with matplotlib (Agg, no display) into PNG files.

* :func:`score_histogram`: histogram of the audited image scores (counts per bin, computed by the
  caller from streamed chunks: :func:`histogram_counts`), the threshold as a vertical line, the review
  band shaded, and the good-calibration scores the threshold came from as a second histogram on its own
  axis (right), so the audit can be compared with what "good" looked like at calibration time.
  The count axis turns logarithmic when the tallest bin holds more than :data:`LOG_Y_RATIO` times the
  median non-empty bin (a large OK peak would otherwise flatten the NOK tail to nothing).
* :func:`group_bars`: one horizontal bar per sub-folder (NOK rate, or mean score without verdicts).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

LOG_Y_RATIO = 50.0
"""Tallest bin / median non-empty bin above which the histogram's count axis is logarithmic."""

BINS = 60
"""Histogram bins between the lowest and highest score shown."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def histogram_edges(lo: float, hi: float, extra: Iterable[float] = (), bins: int = BINS) -> np.ndarray:
    """``(bins + 1,) float64`` equal-width edges covering ``[lo, hi]`` and every finite value of ``extra``
    (threshold, calibration scores); a degenerate range is widened by 1 % (or 1 when it is 0)."""
    vals = [v for v in (lo, hi, *extra) if v is not None and np.isfinite(v)]
    a, b = (min(vals), max(vals)) if vals else (0.0, 1.0)
    if b <= a:
        pad = abs(a) * 0.01 or 1.0
        a, b = a - pad, b + pad
    return np.linspace(a, b, bins + 1)


def histogram_counts(chunks: Iterable[np.ndarray], edges: np.ndarray) -> np.ndarray:
    """``(len(edges) - 1,) int64`` counts of the scores in ``chunks`` (arrays of any length, streamed:
    memory stays at one chunk); values outside the edges are clipped into the end bins."""
    counts = np.zeros(len(edges) - 1, np.int64)
    for c in chunks:
        c = np.asarray(c, np.float64)
        c = np.clip(c[np.isfinite(c)], edges[0], edges[-1])
        counts += np.histogram(c, bins=edges)[0]
    return counts


def wants_log_y(counts: np.ndarray) -> bool:
    """True when the tallest bin holds more than :data:`LOG_Y_RATIO` x the median non-empty bin."""
    nz = counts[counts > 0]
    return bool(nz.size) and float(nz.max()) > LOG_Y_RATIO * float(np.median(nz))


def score_histogram(path: Path, edges: np.ndarray, counts: np.ndarray, threshold: float | None,
                    calibration: np.ndarray | None = None, band: tuple[float, float] | None = None,
                    title: str = "") -> bool:
    """Write the score histogram PNG (module docstring).

    Args:
        path: the PNG to write.
        edges: ``(B + 1,)`` bin edges (:func:`histogram_edges`); counts: ``(B,)`` int counts of the audit.
        threshold: drawn as a vertical line when not None (score units).
        calibration: good-calibration scores (any length, score units), or None / empty.
        band: ``(lo, hi)`` of the review band, shaded; None: no band.
    Returns:
        whether the count axis is logarithmic.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=100)
    log_y = wants_log_y(counts)
    ax.stairs(counts, edges, fill=True, color="#4a78b5", alpha=0.85, label=f"audited images ({int(counts.sum())})")
    if log_y:
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.8)
    ax.set_xlabel("image score")
    ax.set_ylabel("images" + (" (log scale)" if log_y else ""))
    handles, labels = ax.get_legend_handles_labels()
    if calibration is not None and len(calibration):
        ax2 = ax.twinx()
        cal = np.clip(np.asarray(calibration, np.float64), edges[0], edges[-1])
        ax2.stairs(np.histogram(cal, bins=edges)[0], edges, color="#2a9d4a", linewidth=1.8,
                   label=f"good calibration ({len(cal)})")
        ax2.set_ylabel("good calibration images", color="#2a9d4a")
        ax2.tick_params(axis="y", colors="#2a9d4a")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    if band is not None:
        span = ax.axvspan(band[0], band[1], color="#f2b134", alpha=0.3, label="review band")
        handles.append(span)
        labels.append("review band")
    if threshold is not None:
        line = ax.axvline(threshold, color="#c0392b", linestyle="--", linewidth=1.8)
        handles.append(line)
        labels.append(f"threshold {threshold:.4g}")
    ax.legend(handles, labels, loc="upper right", fontsize=8, framealpha=0.9)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return log_y


def group_bars(path: Path, names: list[str], values: list[float], xlabel: str, title: str = "") -> None:
    """Write a horizontal bar plot PNG: one bar per name (first name at the top), values on the x axis.

    Args:
        names, values: same length (at least 1); values as plotted (e.g. NOK rate in %).
    """
    plt = _pyplot()
    n = len(names)
    fig, ax = plt.subplots(figsize=(9, max(1.6, 0.28 * n + 1.0)), dpi=100)
    y = np.arange(n)
    ax.barh(y, values, color="#c0392b" if "NOK" in xlabel else "#4a78b5")
    ax.set_yticks(y, [s if len(s) <= 48 else "..." + s[-45:] for s in names], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
