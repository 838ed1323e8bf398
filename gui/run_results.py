"""The results of the current run, kept so a previewed threshold re-judges them without the model.

An :class:`InspectionResult` holds what the model said about one image (the image score and a
reduced anomaly map) and the verdict given at inspection time with the threshold then in force
(:func:`judge`, the engine's rule: NOK when ``score >= threshold``); that verdict is what the
defect log holds and is never changed. A previewed threshold judges the stored scores again
(:meth:`RunResults.counts`) without touching them (:mod:`gui.verdict`).

Memory stays bounded on a station that runs for a whole shift: anomaly maps are reduced to at
most :data:`gui.heatmap.MAP_SIDE` px and stored as float16, and only the latest ``KEEP_MAPS`` keep
them; images read from files are read again when browsed; camera and video frames keep their pixels
only within ``IMAGE_BUDGET_BYTES`` (newest first). Scores are kept for every result, so counters,
trend and histogram always cover the whole run. Plain Python + numpy (no Qt).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

KEEP_MAPS = 1000
"""Latest results that keep their anomaly map (about 128 KB each)."""

IMAGE_BUDGET_BYTES = 256 * 2**20
"""Memory for the pixels of results without a file on disk (camera, video), newest first."""


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
    """What the model said about one image, and the verdict given then.

    Attributes:
        source: ``"folder"``, ``"image"``, ``"camera"``, ``"video"`` or ``"basler"``.
        name: the image file path, or a frame name such as ``"camera 0 #15"``.
        score: image anomaly score; None when the image could not be read.
        anomaly_map: ``(h, w)`` anomaly map covering the whole image, reduced so that
            ``max(h, w) <= gui.heatmap.MAP_SIDE`` (scorer units, like ``score``; float16 once
            added to a run); None when unreadable or dropped (module docstring).
        image_hw: ``(H, W)`` of the original image in pixels.
        latency_ms: model time per image.
        image_path: file to read the image from again, or None.
        image: ``(H, W, 3) uint8`` RGB, or None (not kept / evicted).
        error: why the image could not be inspected.
        threshold: the threshold in force when it was judged (the model's), or None.
        verdict: the verdict given then, :func:`judge` of ``score`` and ``threshold`` unless given.
        value_range: the model's :class:`engine.value_range.ValueRange`, to read ``image_path`` again
            the way it was inspected (images deeper than 8 bits); None = the standalone rule.
        trigger_id: the trigger this picture answers (triggered live sources), else None.
        triggered_at: ``time.monotonic()`` seconds at that trigger (hardware: when its picture
            arrived), else None; latency trigger -> verdict = a later ``time.monotonic()`` minus it.
        origin: who triggered (``"button"``, ``"key"``, ``"mqtt"``, ``"hardware"``); ``""`` untriggered.
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
    threshold: float | None = None
    verdict: str | None = None
    value_range: object = None
    trigger_id: str | None = None
    triggered_at: float | None = None
    origin: str = ""

    def __post_init__(self) -> None:
        if self.verdict is None:
            self.verdict = judge(self.score, self.threshold)


@dataclass
class Counts:
    """Counters of a run: the verdicts given, or its scores judged at one threshold."""

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
        self._scores: list[float] = []  # NaN for unreadable images
        self._verdicts: list[str] = []  # given at inspection time
        self._with_map: list[int] = []  # indices still holding a map, oldest first
        self._with_image: list[int] = []  # indices still holding pixels, oldest first
        self._image_bytes = 0

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, i: int) -> InspectionResult:
        return self.results[i]

    def add(self, result: InspectionResult) -> int:
        """Append a result, dropping maps and pixels of older ones beyond the limits; returns its index."""
        index = len(self.results)
        if result.image_path is not None:
            result.image = None  # read again from disk when browsed
        if result.anomaly_map is not None:
            result.anomaly_map = result.anomaly_map.astype(np.float16)
            self._with_map.append(index)
        if result.image is not None:
            self._with_image.append(index)
            self._image_bytes += result.image.nbytes
        self.results.append(result)
        self._scores.append(np.nan if result.score is None else float(result.score))
        self._verdicts.append(result.verdict)
        while len(self._with_map) > KEEP_MAPS:
            self.results[self._with_map.pop(0)].anomaly_map = None
        while self._image_bytes > IMAGE_BUDGET_BYTES and len(self._with_image) > 1:
            old = self.results[self._with_image.pop(0)]
            self._image_bytes -= old.image.nbytes
            old.image = None
        return index

    def clear(self) -> None:
        self.__init__()

    def score_array(self) -> np.ndarray:
        """``(n,) float64`` image scores in order, NaN for unreadable images."""
        return np.asarray(self._scores, np.float64)

    def scores(self) -> np.ndarray:
        """``(m,) float64`` image scores of the readable images, in order."""
        a = self.score_array()
        return a[~np.isnan(a)]

    def verdicts(self) -> list[str]:
        """The verdicts given at inspection time, in order (``"OK"``, ``"NOK"``, ``"n/a"``, ``"error"``)."""
        return list(self._verdicts)

    def logged_counts(self) -> Counts:
        """Counters of the verdicts given at inspection time (what the defect log holds)."""
        v = self._verdicts
        return Counts(inspected=len(v), ok=v.count("OK"), nok=v.count("NOK"), errors=v.count("error"))

    def counts(self, threshold: float | None) -> Counts:
        """Counters of the whole run judged again at ``threshold`` (a preview; vectorised)."""
        a = self.score_array()
        valid = ~np.isnan(a)
        c = Counts(inspected=int(a.size), errors=int((~valid).sum()))
        if threshold is not None:
            c.nok = int((a[valid] >= threshold).sum())
            c.ok = int(valid.sum()) - c.nok
        return c


def short_name(name: str) -> str:
    """``folder/file`` of an image path (enough to tell test/good/000.png from test/broken/000.png);
    a frame name such as ``"camera 0 #15"`` stays as it is."""
    p = Path(name)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name
