"""Display data for the anomaly-map overlay: colour table, reduced maps and defect contours.

Colours are anchored to the threshold, as in :mod:`engine.overlay`: the anomaly map is normalised
with :func:`engine.overlay.normalise` (typical good patch score -> 0, threshold -> 0.5), then
coloured with the same JET table as the engine's PNG overlays. The alpha ramp keeps clearly normal
regions transparent (below ``ALPHA_START``) and is opaque from the threshold up, so the part stays
visible where nothing is wrong. Defect contours are drawn where the map crosses the recipe's
calibrated pixel threshold, placed on the normalised scale of the threshold in use (applied or
previewed) by :func:`engine.overlay.contour_level`, the engine's own rule (:mod:`gui.verdict`),
or at the image threshold (0.5) when the recipe has none.
Plain numpy + OpenCV (no Qt).
"""

from __future__ import annotations

import cv2
import numpy as np

MAP_SIDE = 256
"""Longer side (px) of the anomaly maps kept per result."""

ALPHA_START = 0.15
"""Normalised value under which the overlay is fully transparent; it is opaque from 0.5 up."""

CONTOUR_LEVEL = 0.5
"""Default normalised level of defect contours: the image threshold."""

MAX_CONTOURS = 100
"""Most outlines drawn (the largest regions)."""


def heatmap_lut() -> np.ndarray:
    """``(256, 4) uint8`` RGBA colour table for normalised values 0..1 (module docstring)."""
    ramp = np.arange(256, dtype=np.uint8).reshape(-1, 1)
    rgb = cv2.cvtColor(cv2.applyColorMap(ramp, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB).reshape(256, 3)
    u = np.linspace(0.0, 1.0, 256)
    alpha = np.clip((u - ALPHA_START) / (CONTOUR_LEVEL - ALPHA_START), 0.0, 1.0) * 255
    return np.ascontiguousarray(np.column_stack([rgb, np.rint(alpha)]).astype(np.uint8))


def shrink_map(amap: np.ndarray, max_side: int = MAP_SIDE) -> np.ndarray:
    """``(H, W) float32`` anomaly map -> ``(h, w) float32`` with ``max(h, w) <= max_side`` (area average)."""
    amap = np.asarray(amap, np.float32)
    h, w = amap.shape
    scale = max_side / max(h, w)
    if scale >= 1:
        return np.ascontiguousarray(amap)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.ascontiguousarray(cv2.resize(amap, size, interpolation=cv2.INTER_AREA))


def contour_polyline(unit_map: np.ndarray, image_hw: tuple[int, int], level: float = CONTOUR_LEVEL,
                     max_side: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Outlines of the regions where ``unit_map >= level``, in image pixel coordinates.

    Args:
        unit_map: ``(h, w)`` normalised map covering the whole image.
        image_hw: ``(H, W)`` of the image the map covers.
        max_side: the map is upsampled (bilinear) towards the image size, up to this side, before
            thresholding, so the outlines are smooth.
    Returns:
        ``(x, y) float64`` arrays, each closed outline followed by a NaN (for one
        ``connect="finite"`` curve); empty when nothing crosses the level.
    """
    H, W = image_hw
    h, w = unit_map.shape
    scale = min(max_side / max(H, W), 1.0)
    th, tw = max(1, round(H * scale)), max(1, round(W * scale))
    fine = cv2.resize(np.asarray(unit_map, np.float32), (tw, th), interpolation=cv2.INTER_LINEAR)
    mask = (fine >= level).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return np.empty(0), np.empty(0)
    if len(contours) > MAX_CONTOURS:  # keep the largest regions of a speckled map
        contours = sorted(contours, key=cv2.contourArea, reverse=True)[:MAX_CONTOURS]
    gap = np.full((1, 2), np.nan)
    parts = []
    for c in contours:
        pts = c.reshape(-1, 2)
        parts += [pts, pts[:1], gap]
    xy = np.concatenate(parts).astype(np.float64)
    return (xy[:, 0] + 0.5) * (W / tw), (xy[:, 1] + 0.5) * (H / th)
