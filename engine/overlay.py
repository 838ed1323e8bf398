"""The one display rule for anomaly maps: colour scale, defect outline and overlay PNGs.

Every renderer -- the app's view (:mod:`gui.verdict`, :mod:`gui.heatmap`), ``predict``'s overlay
PNGs, ``evaluate``'s report panels, the app's saved NOK overlays -- calls this module, so the same
part gets the same colours and the same outline everywhere.

Colour scale (:class:`DisplayScale`, fixed per model, never per image)
    ``n(v) = clip(0.5 * (v - floor) / (anchor - floor), 0, 1)`` for a raw score ``v`` (scorer
    units): ``floor`` (the median patch score of good images the scorer did not learn) -> 0, the
    ``anchor`` -> 0.5, ``2 * anchor - floor`` -> 1. The anchor is the image threshold in use; a
    model without one uses the display range stored at fit time (:func:`display_range_from_patches`:
    a high quantile of cross-fitted good patch scores stands in for the threshold). The colour
    table (:func:`heatmap_lut`) is OpenCV's JET with an alpha ramp: transparent below
    :data:`ALPHA_START`, opaque from 0.5, so a part stays visible where nothing is wrong.

Defect outline
    Drawn where the map reaches the anchor, i.e. ``n >= 0.5`` (:data:`CONTOUR_LEVEL`): the image
    score is the mean of the top ``top_fraction`` of the patch scores and the map is those patch
    scores upsampled and blurred, so the map's peak sits close to the image score (measured on
    bottle: peak excess over the floor 0.86-1.21x the image score's). A part judged OK at the
    threshold is never outlined (:func:`outline_level`); a NOK part whose blurred peak stays below
    the anchor (a lone hot patch just over the threshold) is outlined around its top
    ``top_fraction`` of pixels, the area its image score came from. Without a threshold there is no
    verdict: the outline marks where the map reaches the stand-in anchor.

Maps are displayed at :data:`MAP_SIDE` px (area-averaged, :func:`display_map`, what the app keeps
per result) and upsampled bilinearly to the image for colours and outline, so the app and the
files agree pixel for pixel.

Fallback: a model file without threshold *and* without a display range (written by an older
version with ``fit --holdout 0``) has no model-derived scale; its overlays are stretched per image
(:meth:`DisplayScale.per_image`, min -> 0, max -> 1) and carry no outline, and
:meth:`DisplayScale.describe` says so. Refit (or ``calibrate``) the model to get a shared scale.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .anomaly_map import shrink_map

MAP_SIDE = 256
"""Longer side (px) of displayed anomaly maps (the app keeps maps at this size)."""

CONTOUR_LEVEL = 0.5
"""Outline level on the colour scale: the anchor (image threshold)."""

ALPHA_START = 0.15
"""Scale value under which the heatmap is fully transparent; it is opaque from :data:`CONTOUR_LEVEL` up."""

OPACITY = 0.6
"""Default heatmap opacity (the app's opacity slider starts here)."""

DISPLAY_QUANTILE = 0.999
"""Quantile of cross-fitted good patch scores that stands in for a missing threshold."""


@dataclass(frozen=True)
class DisplayScale:
    """A colour scale and outline rule for one model (module docstring).

    Attributes:
        floor: raw score (scorer units) shown at 0.
        anchor: raw score shown at 0.5 and outlined; ``> floor`` except for a degenerate model.
        threshold: the image threshold the verdicts use (None: the model has none, no verdicts).
        source: ``"threshold"``, ``"good-range"`` (stand-in from the fit's display range) or
            ``"per-image"`` (fallback, :meth:`per_image`).
        top_fraction: the model's image-score share of patches (outline of marginal NOK parts).
    """

    floor: float
    anchor: float
    threshold: float | None = None
    source: str = "threshold"
    top_fraction: float = 0.01

    @classmethod
    def per_image(cls, amap: np.ndarray) -> "DisplayScale":
        """The fallback scale of one map: its minimum -> 0, its maximum -> 1 (no outline)."""
        lo, hi = float(np.min(amap)), float(np.max(amap))
        return cls(floor=lo, anchor=(lo + hi) / 2, threshold=None, source="per-image")

    def normalise(self, values) -> np.ndarray:
        """Raw scores (any shape, scorer units) -> ``float32`` in [0, 1] on this scale."""
        return normalise(values, self.anchor, self.floor)

    def describe(self) -> str:
        """One line for a legend: what 0, 0.5 and the outline mean on this scale."""
        if self.source == "per-image":
            return ("colours stretched per image (this model file has no threshold and no display range: "
                    "refit or calibrate it to compare parts by colour); no outline")
        top = 2 * self.anchor - self.floor
        if self.source == "threshold":
            mid = f"threshold {self.anchor:.4g} (NOK parts outlined there)"
        else:
            mid = f"{DISPLAY_QUANTILE:.1%} of good patch scores {self.anchor:.4g} (no threshold; outlined there)"
        return f"colour scale: blue = typical good ({self.floor:.4g}), opaque from {mid}, dark red = {top:.4g} and above"


def normalise(values, threshold: float, floor: float) -> np.ndarray:
    """Scores -> ``float32`` [0, 1] with ``floor -> 0`` and ``threshold -> 0.5`` (module docstring)."""
    span = max(float(threshold) - float(floor), 1e-12)
    return np.clip(0.5 * (np.asarray(values, np.float32) - np.float32(floor)) / np.float32(span), 0.0, 1.0)


def display_range_from_patches(patch_scores: np.ndarray, quantile: float = DISPLAY_QUANTILE) -> dict:
    """The model's display range from good patch scores the scorer did not learn.

    Args:
        patch_scores: raw patch scores of held-out / cross-fitted good images, any shape, float.
        quantile: the quantile standing in for a threshold.
    Returns:
        ``{"floor": median, "anchor": quantile, "quantile": quantile, "n_patches": size}`` (JSON-able).
    Raises:
        ValueError: no finite score.
    """
    v = np.asarray(patch_scores, np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise ValueError("need at least one finite good patch score for a display range")
    return {"floor": float(np.median(v)), "anchor": float(np.quantile(v, quantile)), "quantile": quantile,
            "n_patches": int(v.size)}


def display_scale(threshold: float | None, calibration: dict | None, display_range: dict | None,
                  top_fraction: float = 0.01) -> DisplayScale | None:
    """The colour scale of a model (the one rule; module docstring), from its plain data.

    Args:
        threshold: the image threshold in use (applied or previewed), or None.
        calibration: ``model.calibration`` (its ``floor`` is used when present).
        display_range: ``model.display_range`` (:func:`display_range_from_patches`), or None.
        top_fraction: the model's image-score share of patches.
    Returns:
        the scale; None when the model has neither a threshold nor a display range (then
        renderers use :meth:`DisplayScale.per_image`). Floor: the calibration's, else the display
        range's, else 0 (every scorer's scores are distances >= 0).
    """
    calibration, display_range = calibration or {}, display_range or {}
    floor = calibration.get("floor", display_range.get("floor"))
    floor = 0.0 if floor is None else float(floor)
    if threshold is not None:
        return DisplayScale(floor, float(threshold), float(threshold), "threshold", float(top_fraction))
    if display_range.get("anchor") is not None:
        return DisplayScale(float(display_range.get("floor", floor)), float(display_range["anchor"]), None,
                            "good-range", float(top_fraction))
    return None


def display_map(amap: np.ndarray, max_side: int = MAP_SIDE) -> np.ndarray:
    """``(H, W) float32`` anomaly map -> ``(h, w) float32``, longer side at most ``max_side`` (area)."""
    return np.ascontiguousarray(shrink_map(np.asarray(amap, np.float32), max_side), dtype=np.float32)


def outline_level(scale: DisplayScale, score: float | None, unit_map: np.ndarray | None = None) -> float | None:
    """Outline level on ``scale`` for one part with image score ``score``, or None: no outline.

    None for the per-image fallback and for a part judged OK (``score < scale.threshold``). A NOK
    part (or any part when there is no threshold) is outlined at :data:`CONTOUR_LEVEL`; when
    ``unit_map`` (its map on ``scale``) is given and a NOK part's map never reaches that level, at
    the map's ``1 - top_fraction`` quantile instead, so every NOK part shows where it is worst.
    """
    if scale.source == "per-image":
        return None
    if scale.threshold is not None:
        if score is None or score < scale.threshold:
            return None
        if unit_map is not None and float(np.max(unit_map)) < CONTOUR_LEVEL:
            return float(np.quantile(unit_map, 1.0 - scale.top_fraction))
    return CONTOUR_LEVEL


def upsample(unit_map: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """``(h, w)`` map -> ``(H, W) float32`` by bilinear interpolation (the display's own)."""
    H, W = image_hw
    return cv2.resize(np.asarray(unit_map, np.float32), (W, H), interpolation=cv2.INTER_LINEAR)


def outline_mask(unit_map: np.ndarray, image_hw: tuple[int, int], level: float) -> np.ndarray:
    """``(H, W) bool``: where the map, upsampled to the image (:func:`upsample`), reaches ``level``."""
    return upsample(unit_map, image_hw) >= level


@functools.lru_cache(maxsize=1)
def heatmap_lut() -> np.ndarray:
    """``(256, 4) uint8`` RGBA colour table for scale values 0..1 (JET, alpha ramp; module docstring).

    Built once and shared: the array is read-only."""
    ramp = np.arange(256, dtype=np.uint8).reshape(-1, 1)
    rgb = cv2.cvtColor(cv2.applyColorMap(ramp, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB).reshape(256, 3)
    u = np.linspace(0.0, 1.0, 256)
    alpha = np.clip((u - ALPHA_START) / (CONTOUR_LEVEL - ALPHA_START), 0.0, 1.0) * 255
    lut = np.ascontiguousarray(np.column_stack([rgb, np.rint(alpha)]).astype(np.uint8))
    lut.setflags(write=False)
    return lut


def lut_index(unit_map: np.ndarray) -> np.ndarray:
    """Scale values in [0, 1] -> ``uint8`` rows of :func:`heatmap_lut`."""
    return np.clip(np.rint(np.asarray(unit_map, np.float32) * 255), 0, 255).astype(np.uint8)


def colorize(unit_map: np.ndarray) -> np.ndarray:
    """``(H, W)`` values in [0, 1] -> ``(H, W, 3) uint8`` RGB (JET, no transparency)."""
    return heatmap_lut()[lut_index(unit_map), :3]


def blend(image: np.ndarray, unit_map: np.ndarray, level: float | None, opacity: float = OPACITY) -> np.ndarray:
    """Draw a scale map over an image: the view the app shows, as an array.

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        unit_map: ``(h, w)`` map on the colour scale (values in [0, 1]) covering the whole image,
            any resolution (upsampled bilinearly).
        level: outline level (:func:`outline_level`), or None for no outline.
        opacity: heatmap opacity in [0, 1], times the colour table's alpha.
    Returns:
        ``(H, W, 3) uint8`` RGB, white 1-px outlines where the map crosses ``level``.
    """
    H, W = image.shape[:2]
    full = upsample(unit_map, (H, W))
    rgba = heatmap_lut()[lut_index(full)].astype(np.float32)
    a = rgba[..., 3:] / 255.0 * float(opacity)
    out = np.clip(np.rint(image.astype(np.float32) * (1 - a) + rgba[..., :3] * a), 0, 255).astype(np.uint8)
    if level is not None:
        mask = (full >= level).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, (255, 255, 255), 1)
    return out


def render_overlay(image: np.ndarray, amap: np.ndarray, scale: DisplayScale | None, score: float | None,
                   opacity: float = OPACITY) -> np.ndarray:
    """The overlay of one inspected part, as every writer draws it (module docstring).

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        amap: ``(H, W) float32`` anomaly map (raw scores) of that image.
        scale: the model's scale (:func:`display_scale`); None -> per-image fallback.
        score: the part's image score (decides the outline at the scale's threshold).
    Returns:
        ``(H, W, 3) uint8`` RGB.
    """
    small = display_map(amap)
    scale = scale or DisplayScale.per_image(small)
    unit = scale.normalise(small)
    return blend(image, unit, outline_level(scale, score, unit), opacity)


def _label(img: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((22, img.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, img])


def report_panel(image: np.ndarray, amap: np.ndarray, scale: DisplayScale | None, score: float | None,
                 mask: np.ndarray | None = None, title: str = "") -> np.ndarray:
    """``image | overlay (render_overlay) | ground-truth mask`` side by side, ``(H + 22, k*W, 3) uint8``.

    ``mask``: ``(H, W) bool`` or None (no third tile).
    """
    if scale is None:
        what = "anomaly map (per image)"
    else:
        what = f"anomaly map (0.5 = {'threshold' if scale.source == 'threshold' else 'good q99.9'} " \
               f"{scale.anchor:.3g})"
    tiles = [_label(image, title or "image"), _label(render_overlay(image, amap, scale, score), what)]
    if mask is not None:
        m = np.repeat((mask.astype(np.uint8) * 255)[:, :, None], 3, axis=2)
        tiles.append(_label(m, "ground truth"))
    return np.hstack(tiles)


def save_png(path: str | Path, rgb: np.ndarray) -> None:
    """Write ``(H, W, 3) uint8`` RGB to PNG (creates the folder), whole or not at all.

    Raises:
        OSError: as the system reported it (``strerror``: "File name too long", "No space left on
            device", "Permission denied"...); no partial file is left behind
            (:func:`engine.outputs.write_bytes`).
        ValueError: the array cannot be encoded as PNG.
    """
    from .outputs import write_bytes

    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"{path}: the image could not be encoded as PNG (shape {np.shape(rgb)})")
    write_bytes(path, buf.tobytes())
