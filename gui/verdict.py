"""One verdict everywhere: which threshold judges what in the window (plain Python, no Qt).

* **Applied threshold**: the recipe's own (its model file's ``threshold``). Every inspection is
  judged at it the moment it is made -- by the worker, at the model's threshold -- and that verdict
  and threshold go into the defect log and the run's results, never to be rewritten.
* **Preview threshold**: where the operator moved the slider, not applied yet. The screen shows it,
  marked as a preview (big verdict, heatmap colours, contours, a preview line under the counters,
  the log table's preview-verdict column); the logged verdicts stay as they were. "Apply" makes it
  the applied threshold (saved in the model file), "Revert" drops it.
* **Threshold in use**: the preview while there is one, else the applied threshold. It anchors the
  heatmap colours (``threshold -> 0.5``) and decides which parts are outlined, by the engine's one
  display rule (:func:`engine.overlay.display_scale`, :func:`engine.overlay.outline_level`), exactly
  as ``predict`` and ``evaluate`` draw them for that threshold. A recipe without a threshold uses
  the model's display range (the same scale for every part).

:class:`Thresholds` holds the three and turns an :class:`gui.run_results.InspectionResult` into
what the screen shows (:meth:`Thresholds.screen_verdict`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.overlay import DisplayScale, display_scale, outline_level

from .heatmap import contour_polyline
from .run_results import InspectionResult, judge


def fmt_threshold(value: float | None) -> str:
    """A threshold as shown to the operator (4 significant digits; "none" for None)."""
    return "none" if value is None else f"{value:.4g}"


@dataclass
class ScreenVerdict:
    """What the verdict panel shows for one result.

    Attributes:
        verdict: ``"OK"``, ``"NOK"``, ``"n/a"`` or ``"error"`` -- the preview verdict while
            previewing, else the verdict logged at inspection time.
        preview: True while the verdict is a preview (not applied, not logged).
        note: one line relating it to the logged verdict ("" when they are the same thing).
        normalised: the score on the colour scale of the threshold in use (0.5 = threshold), or None.
    """

    verdict: str
    preview: bool
    note: str
    normalised: float | None


@dataclass
class Thresholds:
    """The applied, calibrated and preview thresholds of the active recipe (module docstring).

    Attributes:
        applied: the recipe's threshold (image-score units), None without one.
        calibrated: the threshold its calibration chose (``model.calibration["threshold"]``).
        preview: the slider's value while it differs from ``applied``, else None.
        floor: the calibration's typical good patch score (colour 0), or None.
        display_range: the model's display range (``model.display_range``), or None.
        top_fraction: the model's image-score share of patches (:func:`engine.overlay.outline_level`).
        recipe: the recipe's name (the log's ``recipe`` column).
    """

    applied: float | None = None
    calibrated: float | None = None
    preview: float | None = None
    floor: float | None = None
    display_range: dict | None = None
    top_fraction: float = 0.01
    recipe: str = ""

    @classmethod
    def from_info(cls, info: dict | None) -> "Thresholds":
        """From :func:`gui.worker.model_info`'s dict (None: no recipe), without a preview."""
        if info is None:
            return cls()
        return cls(applied=info["threshold"], calibrated=info.get("calibrated_threshold", info["threshold"]),
                   floor=info.get("floor"), display_range=info.get("display_range"),
                   top_fraction=float(info.get("top_fraction", 0.01)), recipe=info["recipe"])

    @property
    def in_use(self) -> float | None:
        """The preview threshold while previewing, else the applied one."""
        return self.applied if self.preview is None else self.preview

    @property
    def previewing(self) -> bool:
        return self.preview is not None

    def set_preview(self, value: float | None) -> bool:
        """Preview ``value`` (None, or the applied value itself, ends the preview); True if it changed."""
        new = None if value is None or value == self.applied else float(value)
        changed = new != self.preview
        self.preview = new
        return changed

    def scale(self, threshold: float | None = None) -> DisplayScale | None:
        """The colour scale of ``threshold`` (default: the one in use): :func:`engine.overlay.display_scale`."""
        t = self.in_use if threshold is None else threshold
        return display_scale(t, None if self.floor is None else {"floor": self.floor}, self.display_range,
                             self.top_fraction)

    @property
    def scale_floor(self) -> float:
        """Raw score at colour 0 on the scale in use (0.0 when the recipe has no scale)."""
        scale = self.scale()
        return 0.0 if scale is None else scale.floor

    def scale_text(self, threshold: float | None = None) -> str:
        """The legend of the colour scale in use (:meth:`engine.overlay.DisplayScale.describe`)."""
        return (self.scale(threshold) or DisplayScale.per_image(np.zeros(1))).describe()

    def normalised(self, score: float | None, threshold: float | None = None) -> float | None:
        """``score`` on the colour scale of ``threshold`` (default: the one in use), or None without one."""
        t = self.in_use if threshold is None else threshold
        if score is None or t is None:
            return None
        return float(self.scale(t).normalise(score))

    def contour_level(self, threshold: float | None = None) -> float | None:
        """Outline level on the colour scale of ``threshold`` (default: the one in use), as
        ``model.contour_level``: 0.5, or None without any scale."""
        from engine.overlay import CONTOUR_LEVEL

        return None if self.scale(threshold) is None else CONTOUR_LEVEL

    def display(self, r: InspectionResult, threshold: float | None = None):
        """``(unit map, outline level or None)`` of a result on the colour scale of ``threshold``
        (default: the one in use), by the engine's rule; ``(None, None)`` without a map."""
        if r.anomaly_map is None:
            return None, None
        scale = self.scale(threshold) or DisplayScale.per_image(r.anomaly_map)
        unit = scale.normalise(r.anomaly_map)
        return unit, outline_level(scale, r.score, unit)

    def map_display(self, r: InspectionResult, threshold: float | None = None, contours: bool = True):
        """``(unit map, contour polyline)`` of a result on the colour scale of ``threshold``
        (default: the one in use); ``(None, None)`` without a map. Outlined only where
        :func:`engine.overlay.outline_level` says (a NOK part, or any part without a threshold)."""
        unit, level = self.display(r, threshold)
        if unit is None:
            return None, None
        return unit, (contour_polyline(unit, r.image_hw, level=level) if contours and level is not None else None)

    def screen_verdict(self, r: InspectionResult) -> ScreenVerdict:
        """The verdict the screen shows for ``r`` and how it relates to the logged one."""
        if r.score is None:
            return ScreenVerdict("error", False, "", None)
        logged = f"{r.verdict} at {fmt_threshold(r.threshold)}"
        if self.previewing:
            verdict = judge(r.score, self.preview)
            return ScreenVerdict(verdict, True, f"Preview: {verdict} at {fmt_threshold(self.preview)} — not applied. "
                                                f"Logged: {logged}.", self.normalised(r.score))
        note = ""
        if r.threshold != self.applied and self.applied is not None:
            now = judge(r.score, self.applied)
            note = (f"Logged: {logged} (the threshold then in force)"
                    + ("." if now == r.verdict else
                       f"; at the applied threshold {fmt_threshold(self.applied)} it would be {now}."))
        return ScreenVerdict(r.verdict, False, note, self.normalised(r.score))
