"""Heatmap overlays and comparison panels (PNG), with colours anchored to the threshold.

Normalisation (also used by the GUI): ``n(v) = clip(0.5 * (v - floor) / (threshold - floor), 0, 1)``,
so the typical normal score ``floor`` maps to 0, the threshold to 0.5 and ``2 * threshold - floor``
to 1. The same colour therefore means the same thing on every part. Without a threshold, a fixed
``(lo, hi)`` range is used instead.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def normalise(values: np.ndarray, threshold: float, floor: float) -> np.ndarray:
    """Scores -> [0, 1] with ``floor -> 0`` and ``threshold -> 0.5`` (module docstring)."""
    span = max(threshold - floor, 1e-12)
    return np.clip(0.5 * (np.asarray(values, np.float32) - floor) / span, 0.0, 1.0)


def contour_level(pixel_threshold: float | None, threshold: float, floor: float) -> float:
    """Where the defect contour lies on the :func:`normalise` scale of image threshold ``threshold``.

    The contour is drawn where the anomaly map reaches the calibrated pixel threshold (raw score
    units, ``model.calibration["pixel_threshold"]``); mapped with ``floor -> 0, threshold -> 0.5``
    it becomes a level in [0, 1]. Without a pixel threshold the contour is the image threshold
    itself (0.5).
    """
    if pixel_threshold is None:
        return 0.5
    return float(normalise(np.float32(pixel_threshold), threshold, floor))


def outline_level(score: float, threshold: float, floor: float, pixel_threshold: float | None) -> float | None:
    """Contour level for one inspected part at image threshold ``threshold``, or None: no outline.

    A part judged OK at ``threshold`` (``score < threshold``) has no defect to outline, whatever
    its map does; a NOK part is outlined at :func:`contour_level`. The app and ``predict``'s PNGs
    both use this, so screen and files show the same outlines for the threshold in use.
    """
    if score < threshold:
        return None
    return contour_level(pixel_threshold, threshold, floor)


def colorize(unit_map: np.ndarray) -> np.ndarray:
    """``(H, W)`` values in [0, 1] -> ``(H, W, 3) uint8`` RGB (OpenCV JET)."""
    u8 = np.clip(np.rint(unit_map * 255), 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(u8, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)


def overlay(image: np.ndarray, unit_map: np.ndarray, alpha: float = 0.5, contour_level: float | None = 0.5) -> np.ndarray:
    """Blend a heatmap over ``(H, W, 3) uint8`` RGB; optional white contour at ``contour_level``."""
    out = cv2.addWeighted(image, 1 - alpha, colorize(unit_map), alpha, 0)
    if contour_level is not None:
        mask = (unit_map >= contour_level).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, (255, 255, 255), 1)
    return out


def _label(img: np.ndarray, text: str) -> np.ndarray:
    bar = np.full((22, img.shape[1], 3), 255, np.uint8)
    cv2.putText(bar, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, img])


def panel(image: np.ndarray, unit_map: np.ndarray, mask: np.ndarray | None = None, title: str = "") -> np.ndarray:
    """``image | heatmap overlay | ground-truth mask`` side by side, ``(H + 22, k*W, 3) uint8``."""
    tiles = [_label(image, title or "image"), _label(overlay(image, unit_map), "anomaly map")]
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
