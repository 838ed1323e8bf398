"""Patch scores -> pixel anomaly map, and -> image score.

* Anomaly map (PatchCore, Roth et al. 2022): the ``(h, w)`` patch scores are upsampled bilinearly
  to the network input (``S x S``), smoothed with a Gaussian of ``sigma`` pixels (PatchCore uses 4),
  then mapped back to the image's own ``(H, W)`` pixel grid (undoing resize / letterbox), so an
  overlay lines up with the original image.
* Image score: mean of the top ``top_fraction`` of the patch scores (AnomalyDINO's "mean of the
  top 1%", at least one patch), or their maximum (``mode="max"``, PatchCore).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .backbones.preprocess import Preprocess

IMAGE_SCORE_MODES = ("top_mean", "max")


def image_score(patch_scores: np.ndarray, mode: str = "top_mean", top_fraction: float = 0.01) -> float:
    """``(h, w) float32`` patch scores -> one image score (module docstring)."""
    flat = np.asarray(patch_scores, np.float64).ravel()
    if mode == "max":
        return float(flat.max())
    if mode != "top_mean":
        raise ValueError(f"image score mode must be one of {IMAGE_SCORE_MODES}, got {mode!r}")
    k = max(1, math.ceil(top_fraction * flat.size))
    return float(np.partition(flat, flat.size - k)[flat.size - k:].mean())


def gaussian_blur(amap: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of a ``(H, W) float32`` map; kernel side ``2 * ceil(4 sigma) + 1``."""
    if sigma <= 0:
        return amap
    ksize = 2 * math.ceil(4 * sigma) + 1
    return cv2.GaussianBlur(amap, (ksize, ksize), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def anomaly_map(patch_scores: np.ndarray, pre: Preprocess, image_hw: tuple[int, int], sigma: float = 4.0) -> np.ndarray:
    """``(h, w) float32`` patch scores -> ``(H, W) float32`` anomaly map in image pixels."""
    up = cv2.resize(np.ascontiguousarray(patch_scores, np.float32), (pre.size, pre.size), interpolation=cv2.INTER_LINEAR)
    return pre.to_image(gaussian_blur(up, sigma), image_hw)


def shrink_map(a: np.ndarray, side: int = 256, nearest: bool = False) -> np.ndarray:
    """Downsize a ``(H, W)`` map (area) or bool mask (``nearest=True``) so its longer side is at
    most ``side`` px; ``side=0`` or a smaller image returns ``a`` unchanged. Used to bound the
    memory and time of pixel metrics and pixel thresholds."""
    h, w = a.shape[:2]
    if not side or max(h, w) <= side:
        return a
    s = side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    if nearest:
        return cv2.resize(a.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    return cv2.resize(np.asarray(a, np.float32), size, interpolation=cv2.INTER_AREA)
