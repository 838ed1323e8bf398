"""What the audit report says, read from the results store: counts, runs, sub-folder roll-ups, review band.

Everything here is an aggregate over the store (SQL ``GROUP BY`` / ``COUNT``, or scores streamed in
chunks), so the cost is flat in memory whatever the number of rows; only the top-N and the review
band are read row by row (:mod:`engine.audit.report`).

Review band (:func:`review_band`): the scored images just under the threshold, ``[threshold - width,
threshold)``, the ones a person should look at first among the OK ones. Default width:
the standard deviation of the good-calibration scores (meta ``calibration_scores``, the held-out
good images the threshold came from) when there are at least :data:`MIN_CALIBRATION` of them
and they are not all equal -- how far a good part's score wanders -- else :data:`BAND_FRACTION`
of the threshold. The report states the rule it used. No threshold (mutual audit): no band.

Sub-folders (:func:`rollups`): a row's ``grp`` is its sub-folder under the audited root
(``line2/2026-11-30/lot7``). Besides the full sub-folders, the report rolls them up to their first
and second levels (``line2``, ``line2/2026-11-30``), each level shown only when some sub-folder is
deeper than it. NOK rate = NOK / scored images (errors excluded).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BAND_FRACTION = 0.10
"""Review band width as a share of the threshold when the calibration scores cannot give one."""

MIN_CALIBRATION = 5
"""Calibration scores needed before their spread sets the review band's width."""

ROOT_GROUP = "(root)"
"""How images directly in an audited folder (``grp == ''``) are named in the tables."""


@dataclass
class GroupRow:
    """One sub-folder (or roll-up) of the audit: counts and scores.

    Attributes:
        name: the sub-folder (``/`` separators) or :data:`ROOT_GROUP`.
        n: images (scored + errors); errors: unreadable ones; nok: judged NOK.
        score_sum: sum of the scored images' scores; score_max: their highest (None: none scored).
    """

    name: str
    n: int = 0
    errors: int = 0
    nok: int = 0
    score_sum: float = 0.0
    score_max: float | None = None

    @property
    def scored(self) -> int:
        return self.n - self.errors

    @property
    def nok_rate(self) -> float | None:
        """NOK / scored, in [0, 1]; None when nothing was scored."""
        return self.nok / self.scored if self.scored else None

    @property
    def mean_score(self) -> float | None:
        return self.score_sum / self.scored if self.scored else None

    def merge(self, other: "GroupRow") -> None:
        self.n += other.n
        self.errors += other.errors
        self.nok += other.nok
        self.score_sum += other.score_sum
        if other.score_max is not None:
            self.score_max = other.score_max if self.score_max is None else max(self.score_max, other.score_max)


@dataclass
class Level:
    """One table of the sub-folder section: a depth (1, 2, or 0 = the full sub-folders) and its rows."""

    depth: int
    title: str
    rows: list[GroupRow] = field(default_factory=list)


def group_rows(store_path: Path) -> list[GroupRow]:
    """Per ``grp`` counts and score sums by one SQL ``GROUP BY`` over the store (read-only connection).

    Raises:
        sqlite3.Error: the store cannot be read.
    """
    con = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True)
    try:
        con.execute("PRAGMA busy_timeout=10000")
        cur = con.execute(
            "SELECT grp, COUNT(*), SUM(status='error'), SUM(verdict='NOK'), "
            "SUM(CASE WHEN status='scored' THEN score END), MAX(CASE WHEN status='scored' THEN score END) "
            "FROM images GROUP BY grp ORDER BY grp")
        return [GroupRow(g or ROOT_GROUP, int(n), int(e or 0), int(k or 0), float(s or 0.0),
                         None if m is None else float(m)) for g, n, e, k, s, m in cur]
    finally:
        con.close()


def rollups(rows: list[GroupRow]) -> list[Level]:
    """The levels the report shows (module docstring): depth 1 and 2 where some sub-folder is deeper,
    then the full sub-folders (depth 0). Rows keep the input's name order."""
    depth_max = max((0 if r.name == ROOT_GROUP else r.name.count("/") + 1) for r in rows) if rows else 0
    levels = []
    for depth, what in ((1, "first-level folder"), (2, "second-level folder")):
        if depth_max > depth:
            merged: dict[str, GroupRow] = {}
            for r in rows:
                key = r.name if r.name == ROOT_GROUP else "/".join(r.name.split("/")[:depth])
                merged.setdefault(key, GroupRow(key)).merge(r)
            levels.append(Level(depth, f"per {what}", list(merged.values())))
    levels.append(Level(0, "per sub-folder", list(rows)))
    return levels


def rank_rows(rows: list[GroupRow], by_nok: bool) -> list[GroupRow]:
    """Rows in the table's order: highest NOK rate first (``by_nok``) or highest mean score first;
    ties and empty groups by name."""
    def key(r: GroupRow):
        v = r.nok_rate if by_nok else r.mean_score
        return (v is None, -(v or 0.0), r.name)

    return sorted(rows, key=key)


def review_band(threshold: float | None, calibration: list[float] | np.ndarray | None,
                width: float | None = None) -> tuple[float, float, str] | None:
    """The review band ``(lo, hi, rule)``: ``[lo, hi)`` with ``hi`` the threshold (module docstring).

    Args:
        threshold: the audit's threshold (None: no band).
        calibration: the good-calibration scores (meta ``calibration_scores``), any length.
        width: a width set by the user (score units, > 0); None: the default rule.
    Returns:
        ``(lo, hi, rule)`` with ``rule`` a short sentence saying how the width was chosen; None
        without a threshold.
    Raises:
        ValueError: ``width`` not > 0.
    """
    if threshold is None:
        return None
    t = float(threshold)
    if width is not None:
        if not width > 0:
            raise ValueError(f"review band width must be > 0 (score units), got {width}")
        return t - float(width), t, f"width {width:.4g} (set with --band)"
    cal = np.asarray(calibration if calibration is not None else [], np.float64)
    cal = cal[np.isfinite(cal)]
    if cal.size >= MIN_CALIBRATION and float(cal.std()) > 0:
        w = float(cal.std())
        return t - w, t, f"width {w:.4g} = standard deviation of the {cal.size} good-calibration scores"
    w = BAND_FRACTION * abs(t) or 1e-12
    why = (f"only {cal.size} good-calibration scores" if cal.size < MIN_CALIBRATION
           else "the good-calibration scores are all equal")
    return t - w, t, f"width {w:.4g} = {BAND_FRACTION:.0%} of the threshold ({why})"
