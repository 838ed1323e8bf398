"""Overlays of audited images, drawn from the store's patch grids as ``predict`` draws them.

The store keeps each image's ``(h, w) float16`` patch scores (``anomaly_grid``), not its pixel map.
:class:`MapRenderer` turns a grid back into the pixel anomaly map with the settings the scorer wrote
into the store's meta (``meta["map"]``: input size, resize mode, sigma, region of interest, floor),
through :func:`engine.audit.scoring.render_anomaly_map` (:func:`engine.anomaly_map.anomaly_map` and the
region's fill, as :meth:`engine.model.InspectionModel.region_result`), and draws it with
:func:`engine.overlay.render_overlay` on the scale of ``meta["display"]``
(:func:`engine.audit.scoring.display_scale_from_meta`: the model's :class:`DisplayScale`). So an
overlay in the report is the one ``predict`` writes for that image, up to the float16 rounding of the
stored patch scores (tests/engine/test_audit_report.py measures the difference).

Images are decoded as the model decodes them: with its value range for images deeper than 8 bits,
read from the model file's header (JSON only, nothing executed, no array read) while the file is
there; otherwise with the standalone default, and :attr:`MapRenderer.note` says so. Without
``meta["map"]`` (a store of another writer) the defaults of ``fit`` are used (resize, sigma 4 px)
and the note says that too. Without a scale (mutual audits, old models) each overlay is stretched
per image (:meth:`DisplayScale.per_image`), as ``predict`` does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from engine.overlay import DisplayScale, render_overlay
from engine.value_range import STANDALONE, ValueRange

from ..scoring import display_scale_from_meta, render_anomaly_map

THUMB_SIDE = 224
"""Longer side (px) of the thumbnails in the report page."""

DEFAULT_SIGMA = 4.0
"""Map smoothing (input pixels) when the model file cannot be read: ``fit``'s default."""


DEFAULT_MAP = {"resize_mode": "resize", "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "sigma": DEFAULT_SIGMA,
               "floor": None, "roi": None}
"""Map settings used for a store whose meta has no ``map`` (size from ``image_size``)."""


@dataclass(frozen=True)
class MapRenderer:
    """How one audit's patch grids become overlays (module docstring).

    Attributes:
        meta: the store's meta with a complete ``map`` entry (:func:`engine.audit.scoring.render_anomaly_map`).
        scale: the colour scale (None: stretched per image).
        value_range: how deep images map to 8 bits (the model's when its file is readable).
        note: one line on where the settings came from, for the report's header.
    """

    meta: dict = field(repr=False)
    scale: DisplayScale | None
    value_range: ValueRange = STANDALONE
    note: str = ""

    def pixel_map(self, grid: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
        """``(h, w)`` patch scores (any float dtype) -> ``(H, W) float32`` anomaly map of an ``image_hw`` image."""
        return render_anomaly_map(self.meta, grid, image_hw)

    def overlay(self, image: np.ndarray, grid: np.ndarray | None, score: float | None) -> np.ndarray:
        """``(H, W, 3) uint8`` RGB image + its patch grid -> ``(H, W, 3) uint8`` overlay (the image
        itself when there is no grid)."""
        if grid is None:
            return image
        return render_overlay(image, self.pixel_map(grid, image.shape[:2]), self.scale, score)


def _model_input(path: str) -> dict | None:
    """The ``input`` entry (value range) of a model file's header; safetensors metadata only.

    Raises:
        OSError / ValueError / safetensors errors: unreadable file or not a model file.
    """
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata() or {}
    if meta.get("format") != "dinoinspect-model" or "config" not in meta:
        raise ValueError("not a DINOInspect model file")
    cfg = json.loads(meta["config"])
    return cfg.get("input") if isinstance(cfg, dict) else None


def map_renderer(meta: dict) -> MapRenderer:
    """The :class:`MapRenderer` of an audit store's meta (module docstring). Never raises for a missing
    or unreadable model file: its ``note`` says what was used instead."""
    notes = []
    mp = meta.get("map")
    if not mp:
        size = int(meta.get("image_size") or 224)
        mp = {**DEFAULT_MAP, "size": size}
        notes.append(f"no map settings in the store: drawn at input {size} px, resize, sigma {DEFAULT_SIGMA:g} px")
    meta = {**meta, "map": mp}
    value_range = STANDALONE
    model_path = meta.get("model_path")
    if model_path:
        try:
            value_range = ValueRange.from_json(_model_input(model_path))
            notes.append(f"drawn with the settings of {model_path}")
        except Exception as exc:  # noqa: BLE001 - any failure: 8-bit default, and say so
            notes.append(f"model file {model_path} not readable ({type(exc).__name__}), so images deeper than "
                         f"8 bits are shown with the standalone value range")
    else:
        notes.append(f"drawn with the {meta.get('mode', 'audit')} scorer's settings")
    scale = display_scale_from_meta(meta)
    if scale is None:
        notes.append("colours stretched per image (no colour scale)")
    return MapRenderer(meta, scale, value_range, "; ".join(notes))


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
