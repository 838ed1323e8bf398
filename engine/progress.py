"""Terminal progress bars (tqdm) behind the engine's ``progress(done, total, stage)`` callback.

A stage is named by the text before its first colon: ``"mahalanobis: pca"`` and
``"mahalanobis: k-means"`` are one stage, ``mahalanobis``, whose bar shows the step after the colon
(:func:`stage_base`). Every stage of the engine reports ``0`` at its start (or its first unit done)
and ends at ``done == total``; its count never goes back (tests/engine/test_progress.py).
"""

from __future__ import annotations

import sys

from tqdm import tqdm


UNITS = {"coreset": "centre", "cross-fit": "fold", "fold coresets": "fold", "mahalanobis": "step",
         "padim": "position"}
"""Unit shown per stage base (default: images)."""


def stage_base(stage: str) -> str:
    """The stage a progress call belongs to: its name up to the first colon, stripped."""
    return stage.split(":")[0].strip()

OUTER_STAGES = frozenset({"cross-fit"})
"""Stages that report around other stages (each cross-fit fold fits a scorer, which reports its
own stages): their bar stays on its line, the inner stages' bars go below it, and it counts up
to its total instead of being replaced by the inner bars."""


class TqdmProgress:
    """A :data:`engine.scorers.ProgressFn` that shows one tqdm bar per stage, on stderr.

    A bar closes when its stage reports ``done >= total`` or another stage at its level starts;
    an :data:`OUTER_STAGES` bar stays open (and keeps its line) while its inner stages report.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and sys.stderr is not None
        self._bars: list[tuple[str, tqdm]] = []  # open bars, outer first

    def __call__(self, done: int, total: int, stage: str) -> None:
        if not self.enabled:
            return
        base = stage_base(stage)
        names = [name for name, _ in self._bars]
        if base in names:
            self._close_from(names.index(base) + 1)  # the outer stage moved on: its inner bars are done
            if self._bars[-1][1].desc != stage:
                self._bars[-1][1].set_description_str(stage, refresh=False)  # the step running, same bar
        else:
            keep = len(self._bars)
            while keep and self._bars[keep - 1][0] not in OUTER_STAGES:
                keep -= 1  # a new stage replaces the unfinished bars at its level
            self._close_from(keep)
            self._bars.append((base, tqdm(total=total, desc=stage, unit=UNITS.get(base, "img"), file=sys.stderr,
                                           dynamic_ncols=True, position=len(self._bars),
                                           leave=base in OUTER_STAGES)))
        bar = self._bars[-1][1]
        if done > bar.n:
            bar.update(done - bar.n)  # update() (not n=) keeps tqdm's rate estimate right
        else:
            bar.n = done
            bar.refresh()
        if done >= total:
            bar.refresh()  # the final count is shown even when the last update fell inside tqdm's interval
            self._close_from(len(self._bars) - 1)

    @property
    def stages(self) -> list[str]:
        """The stages (:func:`stage_base`) whose bars are open, outer first."""
        return [name for name, _ in self._bars]

    def _close_from(self, i: int) -> None:
        while len(self._bars) > i:
            self._bars.pop()[1].close()

    def close(self) -> None:
        """Close every open bar."""
        self._close_from(0)
