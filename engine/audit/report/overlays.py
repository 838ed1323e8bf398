"""Overlays of audited images, drawn from the store's patch grids exactly as ``predict`` draws them.

The store keeps each image's ``(h, w) float16`` patch scores (``anomaly_grid``), not its pixel map.
:class:`MapRenderer` turns a grid back into the pixel anomaly map with the model's own settings --
:func:`engine.anomaly_map.anomaly_map` (bilinear upsampling to the network input, Gaussian of
``sigma`` input pixels, resize / letterbox undone), the region of interest's fill outside the
region and the median of the inside patches outside it (as
:meth:`engine.model.InspectionModel.region_result`) -- and draws it with
:func:`engine.overlay.render_overlay` on the model's :class:`engine.overlay.DisplayScale`, so an
overlay in the report is the one ``predict`` writes for that image, up to the float16 rounding of the
stored patch scores.

Where the settings come from (:func:`map_renderer`, first that applies):
1. the model file named in the store's meta (``model_path``), when it is still there: its header only
   (safetensors metadata, JSON; nothing executed, no array read);
2. otherwise the meta's own ``image_size`` / ``threshold`` / ``display``, with the defaults ``fit``
   uses (``resize``, sigma 4 px) -- :attr:`MapRenderer.note` says so in the report.
Mutual (recipe-free) audits have no model file: their grids are drawn the second way, and without a
threshold or display range each overlay is stretched per image (:meth:`DisplayScale.per_image`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.anomaly_map import anomaly_map
from engine.backbones.preprocess import Preprocess
from engine.overlay import DisplayScale, display_scale, render_overlay
from engine.roi import RegionOfInterest, patch_mask
from engine.value_range import STANDALONE, ValueRange

THUMB_SIDE = 224
"""Longer side (px) of the thumbnails in the report page."""

DEFAULT_SIGMA = 4.0
"""Map smoothing (input pixels) when the model file cannot be read: ``fit``'s default."""


@dataclass(frozen=True)
class MapRenderer:
    """How one audit's patch grids become overlays (module docstring).

    Attributes:
        pre: the model's preprocessing (only its size and resize mode are used here).
        sigma: Gaussian smoothing of the map, input pixels.
        scale: the colour scale (None: stretched per image).
        roi: the model's region of interest, or None.
        floor: the model's floor (fill outside the region), or None.
        value_range: how deep images map to 8 bits (the model's).
        note: one line on where the settings came from, for the report's header.
    """

    pre: Preprocess
    sigma: float
    scale: DisplayScale | None
    roi: RegionOfInterest | None = None
    floor: float | None = None
    value_range: ValueRange = STANDALONE
    note: str = ""

    def pixel_map(self, grid: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
        """``(h, w)`` patch scores (any float dtype) -> ``(H, W) float32`` anomaly map of an ``image_hw`` image."""
        grid = np.asarray(grid, np.float32)
        if self.roi is None:
            return anomaly_map(grid, self.pre, image_hw, self.sigma)
        # as InspectionModel.region_result: patches outside the region hold the median of those inside
        # (stored so, rounded to float16: taken again from the inside patches, as predict takes it)
        pixels = self.roi.pixel_mask(*image_hw)
        inside = patch_mask(pixels, self.pre, grid.shape)
        if inside.any():
            grid = np.where(inside, grid, np.median(grid[inside])).astype(np.float32)
        amap = anomaly_map(grid, self.pre, image_hw, self.sigma)
        fill = float(amap[pixels].min()) if pixels.any() else float(amap.min())
        amap[~pixels] = fill if self.floor is None else min(fill, float(self.floor))
        return amap

    def overlay(self, image: np.ndarray, grid: np.ndarray | None, score: float | None) -> np.ndarray:
        """``(H, W, 3) uint8`` RGB image + its patch grid -> ``(H, W, 3) uint8`` overlay (the image
        itself when there is no grid: an image that failed to score has none)."""
        if grid is None:
            return image
        return render_overlay(image, self.pixel_map(grid, image.shape[:2]), self.scale, score)


def _model_header(path: str) -> dict:
    """The JSON config in a model file's safetensors header (no array is read).

    Raises:
        OSError / ValueError: unreadable file or not a model file header.
    """
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata() or {}
    if meta.get("format") != "dinoinspect-model" or "config" not in meta:
        raise ValueError("not a DINOInspect model file")
    cfg = json.loads(meta["config"])
    if not isinstance(cfg, dict):
        raise ValueError("damaged model header")
    return cfg


def map_renderer(meta: dict) -> MapRenderer:
    """The :class:`MapRenderer` of an audit store's meta (module docstring says which source wins).

    Args:
        meta: the store's meta (``AuditStore.meta()``): ``threshold``, ``display``, ``image_size``,
            ``model_path``, ``mode``.
    Returns:
        the renderer; never raises for a missing / unreadable model file (its ``note`` says so).
    """
    threshold = meta.get("threshold")
    model_path = meta.get("model_path")
    cfg, why = None, ""
    if model_path:
        try:
            cfg = _model_header(model_path)
        except Exception as exc:  # noqa: BLE001 - any failure: fall back to the meta, and say so
            why = f"model file {model_path} not readable ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})"
    if cfg is not None:
        pcfg, mcfg = cfg.get("preprocess") or {}, cfg.get("anomaly_map") or {}
        pre = Preprocess(int(pcfg.get("size", meta.get("image_size") or 224)),
                         tuple(pcfg.get("mean", (0.0, 0.0, 0.0))), tuple(pcfg.get("std", (1.0, 1.0, 1.0))),
                         pcfg.get("mode", "resize"))
        calibration, display_range = cfg.get("calibration") or {}, cfg.get("display_range")
        # the threshold the audit used (meta) anchors the scale, as predict anchors at the model's
        scale = display_scale(threshold, calibration, display_range, float(mcfg.get("top_fraction", 0.01)))
        roi = RegionOfInterest.from_json(cfg.get("roi"), f"{model_path}: region of interest")
        floor = calibration.get("floor", (display_range or {}).get("floor"))
        return MapRenderer(pre, float(mcfg.get("sigma", DEFAULT_SIGMA)), scale, roi,
                           None if floor is None else float(floor), ValueRange.from_json(cfg.get("input")),
                           f"overlays drawn with the settings of {model_path}")
    display = meta.get("display") or {}
    floor = display.get("floor")
    if threshold is not None:
        scale = DisplayScale(float(floor or 0.0), float(threshold), float(threshold), "threshold")
    elif display.get("high") is not None or display.get("anchor") is not None:
        anchor = display.get("anchor", display.get("high"))
        scale = DisplayScale(float(floor or 0.0), float(anchor), None, "good-range")
    else:
        scale = None
    size = int(meta.get("image_size") or 224)
    where = why or ("no model file (mutual audit)" if meta.get("mode") == "mutual" else "no model file recorded")
    return MapRenderer(Preprocess(size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "resize"), DEFAULT_SIGMA, scale,
                       note=f"{where}: overlays drawn at input {size} px, resize, sigma {DEFAULT_SIGMA:g} px"
                            + ("" if scale else ", colours stretched per image"))


def thumbnail(rgb: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """``(H, W, 3) uint8`` -> the same image with its longer side at most ``side`` px (area averaging)."""
    h, w = rgb.shape[:2]
    if max(h, w) <= side:
        return rgb
    s = side / max(h, w)
    return cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def placeholder(text: str, side: int = THUMB_SIDE) -> np.ndarray:
    """A grey ``(side * 3/4, side, 3) uint8`` tile with ``text`` on it (an image that cannot be shown)."""
    tile = np.full((side * 3 // 4, side, 3), 200, np.uint8)
    y = 24
    for line in _wrap(text, 26):
        cv2.putText(tile, line, (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (40, 40, 40), 1, cv2.LINE_AA)
        y += 18
    return tile


def _wrap(text: str, width: int) -> list[str]:
    lines, cur = [], ""
    for word in text.split():
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}".strip()
    return (lines + [cur])[:8]


def encode(path: Path, rgb: np.ndarray, quality: int = 85) -> None:
    """Write ``(H, W, 3) uint8`` RGB to ``path`` as PNG or JPEG (by suffix)."""
    ext = path.suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f"{path}: could not encode the image ({rgb.shape})")
    path.write_bytes(buf.tobytes())
