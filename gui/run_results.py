"""The results of the current run, kept so a new threshold re-judges them without the model.

An :class:`InspectionResult` holds what the model said about one image (the image score and a
reduced anomaly map); the verdict is *not* stored but computed from the threshold in force
(:func:`judge`, the engine's rule: NOK when ``score >= threshold``). Moving the threshold slider
therefore re-judges the current image and every result of the run at once.

Memory: anomaly maps are kept at most :data:`gui.heatmap.MAP_SIDE` px on their longer side; images read from files
are read again when browsed; camera / video / dropped images keep their pixels only for the latest
``KEEP_IMAGES`` results. Plain Python + numpy (no Qt).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

KEEP_IMAGES = 200
"""Results without a file on disk whose pixels stay in memory (latest first)."""


def judge(score: float | None, threshold: float | None) -> str:
    """Verdict of an image score: ``"NOK"`` if ``score >= threshold``, ``"OK"``, ``"n/a"`` without
    a threshold, ``"error"`` without a score."""
    if score is None:
        return "error"
    if threshold is None:
        return "n/a"
    return "NOK" if score >= threshold else "OK"


@dataclass
class InspectionResult:
    """What the model said about one image (verdict excluded: see :func:`judge`).

    Attributes:
        source: ``"folder"``, ``"image"``, ``"camera"`` or ``"video"``.
        name: the image file path, or a frame name such as ``"camera 0 #15"``.
        score: image anomaly score; None when the image could not be read.
        anomaly_map: ``(h, w) float32`` anomaly map covering the whole image, reduced so that
            ``max(h, w) <= gui.heatmap.MAP_SIDE`` (scorer units, like ``score``).
        image_hw: ``(H, W)`` of the original image in pixels.
        latency_ms: model time per image.
        image_path: file to read the image from again, or None.
        image: ``(H, W, 3) uint8`` RGB, or None (not kept / evicted).
        error: why the image could not be inspected.
    """

    source: str
    name: str
    score: float | None
    anomaly_map: np.ndarray | None = None
    image_hw: tuple[int, int] = (0, 0)
    latency_ms: float = 0.0
    image_path: str | None = None
    image: np.ndarray | None = None
    error: str | None = None
    time: dt.datetime = field(default_factory=dt.datetime.now)
    log_id: int | None = None


@dataclass
class Counts:
    """Counters of a run judged at one threshold."""

    inspected: int = 0
    ok: int = 0
    nok: int = 0
    errors: int = 0

    @property
    def yield_percent(self) -> float | None:
        """OK share of the judged parts, in percent; None when none was judged."""
        judged = self.ok + self.nok
        return None if judged == 0 else 100.0 * self.ok / judged


class RunResults:
    """Ordered results of the current run (module docstring)."""

    def __init__(self) -> None:
        self.results: list[InspectionResult] = []

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i: int) -> InspectionResult:
        return self.results[i]

    def add(self, result: InspectionResult) -> int:
        """Append a result; drop pixels of old in-memory images; returns its index."""
        if result.image_path is not None:
            result.image = None  # read again from disk when browsed
        self.results.append(result)
        in_memory = [r for r in self.results if r.image is not None]
        for old in in_memory[:-KEEP_IMAGES]:
            old.image = None
        return len(self.results) - 1

    def clear(self) -> None:
        self.results.clear()

    def scores(self) -> np.ndarray:
        """``(n,) float64`` image scores of the readable images, in order."""
        return np.array([r.score for r in self.results if r.score is not None], np.float64)

    def verdicts(self, threshold: float | None) -> list[str]:
        return [judge(r.score, threshold) for r in self.results]

    def counts(self, threshold: float | None) -> Counts:
        """Counters of the whole run at ``threshold``."""
        c = Counts(inspected=len(self.results))
        for v in self.verdicts(threshold):
            if v == "OK":
                c.ok += 1
            elif v == "NOK":
                c.nok += 1
            elif v == "error":
                c.errors += 1
        return c
