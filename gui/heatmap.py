"""Display data for the anomaly-map overlay: colour table, reduced maps and defect contours.

The rule itself -- colour scale, outline level, map size, colour table -- is the engine's
(:mod:`engine.overlay`), shared with ``predict``'s PNGs, ``evaluate``'s report panels and the saved
NOK overlays; this module only turns it into what pyqtgraph draws: the RGBA table and the outlines
as one NaN-separated polyline in image pixels. Plain numpy + OpenCV (no Qt).
"""

from __future__ import annotations

import cv2
import numpy as np

from engine.overlay import CONTOUR_LEVEL, MAP_SIDE, heatmap_lut, outline_mask  # noqa: F401 (MAP_SIDE, heatmap_lut re-exported)
from engine.overlay import display_map as shrink_map  # noqa: F401 (the app's maps: the engine's display size)

MAX_CONTOURS = 100
"""Most outlines drawn (the largest regions)."""


def contour_polyline(unit_map: np.ndarray, image_hw: tuple[int, int], level: float = CONTOUR_LEVEL,
                     max_side: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Outlines of the regions where ``unit_map`` reaches ``level``, in image pixel coordinates.

    Args:
        unit_map: ``(h, w)`` map on the colour scale covering the whole image.
        image_hw: ``(H, W)`` of the image the map covers.
        level: outline level (:func:`engine.overlay.outline_level`).
        max_side: the mask is :func:`engine.overlay.outline_mask` at the image size, or at a size
            scaled down to this longer side for large images (then the same up to that resampling).
    Returns:
        ``(x, y) float64`` arrays, each closed outline followed by a NaN (for one
        ``connect="finite"`` curve); empty when nothing reaches the level.
    """
    H, W = image_hw
    scale = min(max_side / max(H, W), 1.0)
    th, tw = max(1, round(H * scale)), max(1, round(W * scale))
    mask = outline_mask(unit_map, (th, tw), level).astype(np.uint8)
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
