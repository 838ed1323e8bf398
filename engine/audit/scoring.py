"""Scoring archive files in batches: the :class:`BatchScorer` protocol both audit engines drive.

The local engine (:mod:`engine.audit.runner`) calls ``score_batch`` directly; the Ray engine
(:mod:`engine.audit.ray_engine`) holds one scorer per actor, built from the model path. A
``score_batch`` decodes its files (a file that cannot be read becomes an ``"error"`` record; it
never raises for one file), runs the model and returns one :class:`AuditRecord` per file, in
order.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .records import ArchiveFile, AuditRecord, fast_hash


@runtime_checkable
class BatchScorer(Protocol):
    """What an audit engine needs from a scorer.

    Attributes:
        mode: ``"recipe"`` (a fitted model file) or ``"mutual"`` (labelling-free, MuSc-style).
    """

    mode: str

    def meta(self) -> dict:
        """JSON-able facts for the store's meta (:data:`engine.audit.store.META_KEYS`)."""
        ...

    def score_batch(self, files: list[ArchiveFile]) -> list[AuditRecord]:
        """One :class:`AuditRecord` per file, in order; unreadable files give ``"error"`` records."""
        ...


# ---------------------------------------------------------------------------------------------- recipe
@dataclass
class Decoded:
    """A file read for scoring: its image ``(H, W, 3) uint8`` RGB and :func:`fast_hash`, or the
    error record that replaces it."""

    file: ArchiveFile
    image: np.ndarray | None = None
    fast_hash: str = ""
    failed: AuditRecord | None = None


class RecipeScorer:
    """Scores archive files with a fitted model file (a *recipe*), exactly as ``main.py predict`` does.

    A batch is scored in one backbone + scorer pass. Whether an image's record is bit-identical
    whatever its batch mates depends on the backbone's and faiss's arithmetic (measured: DINOv2
    ViT-S/14 fp32 on the CPU gave identical features for batches of 1, 3, 4 and 8; efficientnet_lite0
    did not, scores differing in the 7th digit): the engines therefore score the same work units
    (:func:`engine.audit.runner.work_units`), and the same unit always gives the same bits
    (tests/engine/test_audit_scoring.py). The image score, verdict and patch grid are those of
    :meth:`engine.model.InspectionModel.predict` (region of interest included); the full-size
    anomaly map is not made here (the report re-renders it from the grid: :func:`render_anomaly_map`).

    Args:
        model_path: the ``.dimodel`` file.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        batch_size: images per backbone pass (default: the model's, 4 on CPU / 32 on CUDA).
        weights: backbone weight file, if not where it was at fit time.
    Raises:
        ModelFileError: the model file is damaged, not a model, or its backbone weights differ.
    """

    mode = "recipe"

    def __init__(self, model_path: str | Path, device: str | None = "auto", batch_size: int | None = None,
                 weights: str | None = None):
        from ..backbones import file_sha256
        from ..model import InspectionModel

        self.model_path = os.path.abspath(os.fspath(model_path))
        self.model = InspectionModel.load(self.model_path, device=device, weights=weights)
        if batch_size:
            self.model.batch_size = int(batch_size)
        self.batch_size = self.model.batch_size
        self.model_sha256 = file_sha256(self.model_path)

    def meta(self) -> dict:
        """The store's meta (:data:`engine.audit.store.META_KEYS`), plus ``describe`` (the model in one
        line) and ``map`` (what :func:`render_anomaly_map` needs). ``display`` is the model's colour
        scale (:meth:`engine.model.InspectionModel.display_scale`) as ``{"floor", "anchor", "high",
        "threshold", "source", "top_fraction"}``: ``floor`` is shown at 0, ``anchor`` at 0.5 (and
        outlined), ``high = 2 * anchor - floor`` at 1; null when the model has no scale."""
        m = self.model
        scale = m.display_scale()
        display = None if scale is None else {
            "floor": scale.floor, "anchor": scale.anchor, "high": 2 * scale.anchor - scale.floor,
            "threshold": scale.threshold, "source": scale.source, "top_fraction": scale.top_fraction}
        floor = (m.calibration or {}).get("floor", (m.display_range or {}).get("floor"))
        return {"mode": self.mode, "model_path": self.model_path, "model_sha256": self.model_sha256,
                "backbone": m.backbone.name, "threshold": m.threshold,
                "calibration_scores": [float(s) for s in (m.calibration or {}).get("holdout_scores") or []],
                "display": display, "roots": [], "patch_size": int(m.backbone.spec.patch_size),
                "image_size": int(m.pre.size), "describe": m.describe(),
                "map": {"size": int(m.pre.size), "resize_mode": m.pre.mode, "mean": list(m.pre.mean),
                        "std": list(m.pre.std), "sigma": m.sigma, "score_mode": m.score_mode,
                        "top_fraction": m.top_fraction, "floor": None if floor is None else float(floor),
                        "roi": None if m.roi is None else m.roi.to_json()}}

    def decode(self, files: list[ArchiveFile]) -> list[Decoded]:
        """Read each file (:func:`engine.images.read_image` with the model's value range) and its
        :func:`fast_hash`; a file that cannot be read gets its error record. Never raises for a file."""
        from ..errors import ImageReadError
        from ..images import read_image

        out = []
        for f in files:
            try:
                h = fast_hash(f.path)
            except OSError as exc:
                out.append(Decoded(f, failed=AuditRecord.failed(
                    f, f"{f.path}: cannot read ({exc.strerror or exc}). Check that the file is readable "
                       f"(permissions, the share is mounted) and audit again.")))
                continue
            try:
                out.append(Decoded(f, read_image(f.path, self.model.value_range), h))
            except ImageReadError as exc:
                out.append(Decoded(f, failed=AuditRecord.failed(f, str(exc), h)))
        return out

    def score_decoded(self, decoded: list[Decoded]) -> list[AuditRecord]:
        """Records of decoded files, in order: one backbone + scorer pass over the readable images
        (one at a time when that pass fails, so only the failing image gets an error record)."""
        ok = [d for d in decoded if d.failed is None]
        by_id: dict[int, AuditRecord] = {}
        if ok:
            try:
                by_id = self._score(ok)
            except Exception:  # noqa: BLE001 - the batch failed: score alone to find the culprit
                for d in ok:
                    try:
                        by_id.update(self._score([d]))
                    except Exception as exc:  # noqa: BLE001 - recorded for this file, the audit goes on
                        detail = " ".join(str(exc).split()) or type(exc).__name__
                        by_id[id(d)] = AuditRecord.failed(
                            d.file, f"{d.file.path}: scoring failed ({detail}). Audit again with "
                                    f"--retry-errors after fixing the cause.", d.fast_hash)
        return [d.failed if d.failed is not None else by_id[id(d)] for d in decoded]

    def _score(self, batch: list[Decoded]) -> dict[int, AuditRecord]:
        from ..errors import DatasetError

        m = self.model
        t0 = time.perf_counter()
        patch = m.scorer.score(m.extract([d.image for d in batch])).numpy()
        out = {}
        per_image = (time.perf_counter() - t0) * 1000 / len(batch)
        for d, grid in zip(batch, patch):
            f, hw = d.file, d.image.shape[:2]
            try:
                score, shown = patch_result(m, grid, hw)
            except DatasetError as exc:  # the region covers no patch at this image size
                out[id(d)] = AuditRecord.failed(f, f"{f.path}: {exc}", d.fast_hash)
                continue
            verdict = None if m.threshold is None else ("NOK" if score >= m.threshold else "OK")
            out[id(d)] = AuditRecord(f.path, f.root, f.rel, f.group, f.size, f.mtime_ns, d.fast_hash, "scored",
                                     score=score, verdict=verdict, height=int(hw[0]), width=int(hw[1]),
                                     anomaly_grid=shown, latency_ms=per_image)
        return out

    def score_batch(self, files: list[ArchiveFile]) -> list[AuditRecord]:
        """``score_decoded(decode(files))`` (:class:`BatchScorer`)."""
        return self.score_decoded(self.decode(files))


def patch_result(model, patch_scores: np.ndarray, image_hw: tuple[int, int]) -> tuple[float, np.ndarray]:
    """Image score and shown ``(h, w) float32`` patch scores of one image: the first two results of
    :meth:`engine.model.InspectionModel.region_result` without making the full-size map (with a
    region of interest: score over the patches inside, those outside set to the median inside).

    Raises:
        DatasetError: the region covers no patch at this image size.
    """
    inside = model.region_patches(image_hw, patch_scores.shape)
    if inside is None:
        return model._image_score(patch_scores), patch_scores
    score = model._image_score(patch_scores[inside])
    return score, np.where(inside, patch_scores, np.median(patch_scores[inside])).astype(np.float32)


def render_anomaly_map(meta: dict, grid: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """The ``(H, W) float32`` anomaly map of a stored patch grid, made as ``predict`` makes it
    (:func:`engine.anomaly_map.anomaly_map`, and with a region of interest the pixels outside it
    set to ``min(lowest value inside, floor)``: :meth:`engine.model.InspectionModel.region_result`),
    from the store's ``meta["map"]`` only (no model, no backbone).

    The grid is stored as float16, so the map matches ``predict``'s to float16 precision of the
    patch scores (relative 5e-4), not bit for bit.

    Args:
        meta: :meth:`engine.audit.store.AuditStore.meta` of a recipe audit.
        grid: ``(h, w)`` patch scores of the row.
        image_hw: the image's ``(height, width)`` (the row's).
    """
    from ..anomaly_map import anomaly_map
    from ..backbones.preprocess import Preprocess
    from ..roi import RegionOfInterest

    mp = meta["map"]
    pre = Preprocess(int(mp["size"]), tuple(mp["mean"]), tuple(mp["std"]), mp["resize_mode"])
    image_hw = (int(image_hw[0]), int(image_hw[1]))
    amap = anomaly_map(np.asarray(grid, np.float32), pre, image_hw, float(mp["sigma"]))
    roi = RegionOfInterest.from_json(mp.get("roi"))
    if roi is not None:
        pixels = roi.pixel_mask(*image_hw)
        fill = float(amap[pixels].min()) if pixels.any() else float(amap.min())
        amap[~pixels] = fill if mp.get("floor") is None else min(fill, float(mp["floor"]))
    return amap


def display_scale_from_meta(meta: dict):
    """The :class:`engine.overlay.DisplayScale` of a store's ``meta["display"]`` (None when null:
    renderers then stretch per image, as ``predict`` does)."""
    from ..overlay import DisplayScale

    d = meta.get("display")
    if not d:
        return None
    return DisplayScale(float(d["floor"]), float(d["anchor"]), d.get("threshold"), d.get("source", "threshold"),
                        float(d.get("top_fraction", 0.01)))
