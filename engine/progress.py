"""Terminal progress bars (tqdm) behind the engine's ``progress(done, total, stage)`` callback."""

from __future__ import annotations

import sys

from tqdm import tqdm


UNITS = {"coreset": "centre", "cross-fit": "fold"}
"""Unit shown per stage (default: images)."""


class TqdmProgress:
    """A :data:`engine.scorers.ProgressFn` that shows one tqdm bar per stage, on stderr."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and sys.stderr is not None
        self._bar: tqdm | None = None
        self._stage: str | None = None

    def __call__(self, done: int, total: int, stage: str) -> None:
        if not self.enabled:
            return
        if stage != self._stage or self._bar is None:
            self.close()
            unit = UNITS.get(stage.split(":")[0].strip(), "img")
            self._bar = tqdm(total=total, desc=stage, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=False)
            self._stage = stage
        if done > self._bar.n:
            self._bar.update(done - self._bar.n)  # update() (not n=) keeps tqdm's rate estimate right
        else:
            self._bar.n = done
            self._bar.refresh()
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._stage = None
