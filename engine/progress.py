"""Terminal progress bars (tqdm) behind the engine's ``progress(done, total, stage)`` callback."""

from __future__ import annotations

import sys

from tqdm import tqdm


UNITS = {"coreset": "centre", "cross-fit": "fold", "fold coresets": "fold"}
"""Unit shown per stage (default: images)."""

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
        names = [name for name, _ in self._bars]
        if stage in names:
            self._close_from(names.index(stage) + 1)  # the outer stage moved on: its inner bars are done
        else:
            keep = len(self._bars)
            while keep and self._bars[keep - 1][0] not in OUTER_STAGES:
                keep -= 1  # a new stage replaces the unfinished bars at its level
            self._close_from(keep)
            base = stage.split(":")[0].strip()
            self._bars.append((stage, tqdm(total=total, desc=stage, unit=UNITS.get(base, "img"), file=sys.stderr,
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
        """The stages whose bars are open, outer first."""
        return [name for name, _ in self._bars]

    def _close_from(self, i: int) -> None:
        while len(self._bars) > i:
            self._bars.pop()[1].close()

    def close(self) -> None:
        """Close every open bar."""
        self._close_from(0)
