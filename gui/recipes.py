"""Recipes: one fitted model file per product, and the list of recently used ones.

A recipe *is* its model file (``<name>.dimodel``, :meth:`engine.model.InspectionModel.save`); its
name is the file's stem. :class:`RecipeSpec` says how to create one (the New-recipe dialog fills
it, the worker fits it); :class:`RecentRecipes` keeps the most recent files in the settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QSettings

MODEL_SUFFIX = ".dimodel"
MAX_RECENT = 8


def recipe_name(model_path: str | Path) -> str:
    """Name shown for a recipe: its model file's stem."""
    return Path(model_path).stem


@dataclass
class RecipeSpec:
    """How to create a recipe.

    Attributes:
        good_folder: folder of good images (PNG/JPEG/BMP/TIFF, not recursive).
        model_path: model file to write.
        backbone: registry name or ``"auto"``.
        scorer: a name in :data:`engine.scorers.SCORERS`.
        size: network input side in px; None = the backbone's default.
        scorer_params: keyword arguments of the scorer (e.g. ``coreset_ratio``).
        holdout_fraction: share of the good images held out to calibrate the threshold.
        target_frr: target false-reject rate of the threshold.
        max_images: use only the first N images of the folder (None = all).
        roi: region of interest (:meth:`engine.roi.RegionOfInterest.to_json`), None = whole image.
    """

    good_folder: str
    model_path: str
    backbone: str = "auto"
    scorer: str = "knn"
    size: int | None = None
    scorer_params: dict = field(default_factory=dict)
    holdout_fraction: float = 0.1
    target_frr: float = 0.01
    max_images: int | None = None
    batch_size: int = 8
    roi: dict | None = None

    @property
    def name(self) -> str:
        return recipe_name(self.model_path)


class RecentRecipes:
    """Most recently used recipe files, newest first, stored under ``recipes/recent``."""

    KEY = "recipes/recent"

    def __init__(self, settings: QSettings):
        self._settings = settings

    def paths(self) -> list[str]:
        """Recent model files that still exist, newest first."""
        raw = self._settings.value(self.KEY, [])
        if isinstance(raw, str):  # QSettings returns a lone string for one-element lists
            raw = [raw]
        return [p for p in (raw or []) if Path(p).is_file()]

    def add(self, path: str | Path) -> None:
        path = str(Path(path).resolve())
        items = [p for p in self.paths() if p != path]
        self._settings.setValue(self.KEY, [path] + items[: MAX_RECENT - 1])


def calibration_note(info: dict) -> str:
    """Warning about a recipe's threshold (``gui.worker.model_info`` dict), or "": it passes most
    synthetic defects, or too few good images were scored for the target false-reject rate."""
    if info.get("weak_warning"):
        return " Warning: " + info["weak_warning"][0].upper() + info["weak_warning"][1:]
    if info.get("guarantee_met") is not False or not info.get("target_frr") or info.get("method") != "conformal":
        return ""
    need = math.ceil(1 / info["target_frr"]) - 1
    return (f" Only {len(info['holdout_scores'])} calibration score(s), too few for a "
            f"{info['target_frr']:.0%} false-reject target (needs {need}): the threshold is their highest "
            f"score, so expect some good parts to be rejected; use more good images or adjust the threshold.")
