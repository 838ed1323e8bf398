"""The inspection model: backbone + scorer + anomaly-map rule + threshold, in one saveable object.

This is what the CLI and the GUI's worker drive::

    model = InspectionModel.create(backbone="auto", scorer="knn")
    report = model.fit(good_paths)                 # learns normal, calibrates a threshold
    preds = model.predict([image])                 # Prediction(score, anomaly_map, is_defective, ...)
    model.save("bottle.dimodel"); model = InspectionModel.load("bottle.dimodel")

Images flow as ``(H, W, 3) uint8`` RGB (:mod:`engine.images`); anomaly maps come back as
``(H, W) float32`` in the image's own pixels.

The class is split along its seams: fitting and the threshold at fit time in
:mod:`engine.fitting`, later threshold changes (recalibration, an operator's threshold, display
scale) in :mod:`engine.recalibration`, construction / features / prediction / files here.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from .anomaly_map import anomaly_map, image_score
from .backbones import Backbone, create_backbone, file_sha256
from .errors import DatasetError, ImageReadError, ModelFileError
from .fitting import FitMixin, FitReport, cross_fit_folds  # noqa: F401  (FitReport, cross_fit_folds: public here too)
from .recalibration import CalibrationMixin
from .images import read_image
from .value_range import STANDALONE, ValueRange
from .modelfile import load_model_file, save_model_file
from .scorers import SCORERS, ProgressFn, Scorer, create_scorer


@dataclass
class Prediction:
    """Result of inspecting one image.

    Attributes:
        score: image anomaly score (scorer units; higher = more anomalous).
        anomaly_map: ``(H, W) float32`` in the image's pixels.
        patch_scores: ``(h, w) float32`` on the backbone's patch grid.
        is_defective: ``score >= threshold``; None when the model has no threshold.
        latency_ms: wall time per image of preprocess + backbone + scoring + map (batch share).
        path: source file, when read from disk.
    """

    score: float
    anomaly_map: np.ndarray
    patch_scores: np.ndarray
    is_defective: bool | None
    latency_ms: float
    path: str | None = None

    @property
    def verdict(self) -> str:
        return "n/a" if self.is_defective is None else ("NOK" if self.is_defective else "OK")


def iter_images(paths: Iterable[str | Path], prefetch: int = 8, value_range: ValueRange = STANDALONE
                ) -> Iterator[tuple[Path, np.ndarray | ImageReadError]]:
    """Decode images in a background thread, in order: yields ``(path, image or ImageReadError)``;
    images deeper than 8 bits are mapped by ``value_range`` (:mod:`engine.value_range`)."""
    paths = [Path(p) for p in paths]

    def load(p: Path):
        try:
            return read_image(p, value_range)
        except ImageReadError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(load, p) for p in paths[:prefetch]]
        for i, p in enumerate(paths):
            if i + prefetch < len(paths):
                futures.append(pool.submit(load, paths[i + prefetch]))
            yield p, futures[i].result()
            futures[i] = None


class InspectionModel(FitMixin, CalibrationMixin):
    """Backbone + scorer + map/score rules + threshold (module docstring).

    Args:
        backbone: a :class:`Backbone`.
        scorer: an unfitted or fitted :class:`Scorer`.
        size: network input side (px), rounded to the backbone's multiple.
        resize_mode: ``"resize"`` or ``"letterbox"`` (:mod:`engine.backbones.preprocess`).
        score_mode, top_fraction: image-score rule (:func:`engine.anomaly_map.image_score`).
        sigma: Gaussian smoothing of the anomaly map in input pixels.
        batch_size: images per backbone forward pass; None = 4 on the CPU, 32 on CUDA (measured best
            or near-best on each: docs/BENCHMARKS.md speed section, docs/GPU_SPEED.md).
    """

    def __init__(self, backbone: Backbone, scorer: Scorer, size: int | None = None, resize_mode: str = "resize",
                 score_mode: str = "top_mean", top_fraction: float = 0.01, sigma: float = 4.0,
                 batch_size: int | None = None):
        self.backbone = backbone
        self.scorer = scorer
        self.pre = backbone.preprocess(size, resize_mode)
        self.score_mode, self.top_fraction, self.sigma = score_mode, float(top_fraction), float(sigma)
        self.batch_size = int(batch_size or (32 if backbone.device.type == "cuda" else 4))
        self.threshold: float | None = None
        self.calibration: dict = {}
        self.provenance: dict = {}
        self.display_range: dict | None = None  # colour scale without a threshold (engine.overlay)
        # how images deeper than 8 bits map to 0..255: measured from the good images by fit unless
        # set beforehand with source "option" (--bit-depth); stored in the model file
        self.value_range: ValueRange = STANDALONE

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, backbone: str = "auto", scorer: str = "knn", size: int | None = None,
               resize_mode: str = "resize", layers: tuple[int, ...] | None = None, weights: str | None = None,
               device: str | None = None, allow_download: bool = False, scorer_params: dict | None = None,
               precision: str = "auto", **kwargs) -> "InspectionModel":
        """Build an unfitted model from names (see :func:`engine.backbones.create_backbone`)."""
        bb = create_backbone(backbone, weights=weights, layers=layers, device=device, allow_download=allow_download,
                             precision=precision)
        return cls(bb, create_scorer(scorer, **(scorer_params or {})), size=size, resize_mode=resize_mode, **kwargs)

    @property
    def is_fitted(self) -> bool:
        return self.scorer.fitted

    def describe(self) -> str:
        """One line: backbone (+ weights source), scorer, input size, threshold."""
        t = "none" if self.threshold is None else f"{self.threshold:.4g}"
        depth = self.value_range.describe()
        return (f"backbone={self.backbone.name} [{self.backbone.weights_source}] layers={list(self.backbone.layers)} "
                f"{self.backbone.precision} "
                f"scorer={self.scorer.name} input={self.pre.size}px ({self.pre.mode}){f' {depth}' if depth else ''} "
                f"threshold={t}")

    # ------------------------------------------------------------------ features
    def extract(self, images: list[np.ndarray]) -> torch.Tensor:
        """``B`` images ``(H, W, 3) uint8`` -> ``(B, h, w, D) float32`` patch features."""
        return self.backbone.extract(self.pre.batch(images))

    def extract_paths(self, paths: list[Path], progress: ProgressFn | None = None,
                      stage: str = "features") -> tuple[torch.Tensor, list[Path], list[str]]:
        """Features of image files, skipping unreadable ones.

        Returns:
            ``(features (N, h, w, D) float32, paths used, messages of skipped files)``; the features
            are written into one array allocated for every path (skipped files leave its tail unused).
        """
        used, skipped, batch, batch_paths = [], [], [], []
        feats: torch.Tensor | None = None  # (total, h, w, D), filled in place: no second copy at the end
        total = len(paths)
        for i, (p, img) in enumerate(iter_images(paths, value_range=self.value_range), start=1):
            if isinstance(img, ImageReadError):
                skipped.append(str(img))
            else:
                batch.append(img)
                batch_paths.append(p)
            if len(batch) == self.batch_size or (i == total and batch):
                f = self.extract(batch)
                if feats is None:
                    feats = torch.empty((total, *f.shape[1:]), dtype=f.dtype)
                feats[len(used):len(used) + len(f)] = f
                used.extend(batch_paths)
                batch, batch_paths = [], []
            if progress is not None:
                progress(i, total, stage)
        if feats is None:
            raise DatasetError(f"none of the {total} images could be read: " + "; ".join(skipped[:3]))
        return feats[:len(used)], used, skipped

    def _image_score(self, patch_scores: np.ndarray) -> float:
        return image_score(patch_scores, self.score_mode, self.top_fraction)

    # ------------------------------------------------------------------ predict
    def predict(self, images: list[np.ndarray], paths: list[str | Path] | None = None) -> list[Prediction]:
        """Inspect a batch of ``(H, W, 3) uint8`` images (one backbone pass)."""
        t0 = time.perf_counter()
        patch = self.scorer.score(self.extract(images)).numpy()
        out = []
        for i, img in enumerate(images):
            amap = anomaly_map(patch[i], self.pre, img.shape[:2], self.sigma)
            s = self._image_score(patch[i])
            out.append(Prediction(score=s, anomaly_map=amap, patch_scores=patch[i],
                                  is_defective=None if self.threshold is None else bool(s >= self.threshold),
                                  latency_ms=0.0, path=None if paths is None else str(paths[i])))
        per_image = (time.perf_counter() - t0) * 1000 / max(1, len(images))
        for p in out:
            p.latency_ms = per_image
        return out

    def predict_paths(self, paths: list[str | Path], progress: ProgressFn | None = None
                      ) -> Iterator[tuple[Path, Prediction | None, np.ndarray | None, str | None]]:
        """Inspect image files in batches: yields ``(path, prediction, image, error)`` in order.

        Unreadable files yield ``(path, None, None, message)`` and do not stop the run.
        """
        paths = [Path(p) for p in paths]
        batch: list[tuple[Path, np.ndarray]] = []
        total = len(paths)

        def flush():
            if not batch:
                return
            preds = self.predict([im for _, im in batch], [p for p, _ in batch])
            for (p, im), pr in zip(batch, preds):
                yield p, pr, im, None
            batch.clear()

        for i, (p, img) in enumerate(iter_images(paths, value_range=self.value_range), start=1):
            if isinstance(img, ImageReadError):
                yield from flush()
                yield p, None, None, str(img)
            else:
                batch.append((p, img))
                if len(batch) == self.batch_size:
                    yield from flush()
            if progress is not None:
                progress(i, total, "inspect")
        yield from flush()

    # ------------------------------------------------------------------ files
    def config(self) -> dict:
        """JSON-able description of everything needed to rebuild the model (no arrays)."""
        scfg, _ = self.scorer.get_state()
        return {"backbone": self.backbone.describe(), "scorer": {"name": self.scorer.name, "params": scfg},
                "preprocess": {"size": self.pre.size, "mode": self.pre.mode, "mean": list(self.pre.mean),
                               "std": list(self.pre.std)},
                "anomaly_map": {"sigma": self.sigma, "score_mode": self.score_mode, "top_fraction": self.top_fraction},
                "threshold": self.threshold, "calibration": self.calibration, "provenance": self.provenance,
                "display_range": self.display_range,
                "batch_size": self.batch_size, "input": self.value_range.to_json()}

    def save(self, path: str | Path) -> None:
        """Write the fitted model to one file (:mod:`engine.modelfile`)."""
        if not self.is_fitted:
            raise ModelFileError("cannot save a model that has not been fitted.")
        _, arrays = self.scorer.get_state()
        save_model_file(path, self.config(), {f"scorer/{k}": v for k, v in arrays.items()})

    @classmethod
    def load(cls, path: str | Path, device: str | None = None, weights: str | None = None) -> "InspectionModel":
        """Read a model file and rebuild backbone + scorer.

        The backbone's weights are found again (:func:`engine.backbones.resolve_weights`, or
        ``weights``) and their SHA-256 is checked against the file's record.

        Raises:
            ModelFileError: damaged/newer file, unknown scorer, or backbone weights that differ.
        """
        cfg, arrays = load_model_file(path)
        try:
            bcfg, scfg, pcfg, mcfg = cfg["backbone"], cfg["scorer"], cfg["preprocess"], cfg["anomaly_map"]
        except KeyError as exc:
            raise ModelFileError(f"{path}: model header lacks {exc}. Re-fit the model.") from None
        if scfg["name"] not in SCORERS:
            raise ModelFileError(f"{path}: scorer {scfg['name']!r} unknown to this version; update DINOInspect.")
        src = bcfg.get("weights_source", "")
        w = weights or ("random" if src == "random" else None)
        name = src if src.endswith(".safetensors") and Path(src).is_file() else bcfg["name"]
        # the very weight file the model was fitted with, when it is still there (an official
        # checkpoint added later must not displace it): "<path>" or "package:... converted to <path>"
        recorded = src.rsplit("converted to ", 1)[-1] if src not in ("", "random") else ""
        if (w is None and name == bcfg["name"] and recorded and Path(recorded).is_file()
                and bcfg.get("weights_sha256") and file_sha256(recorded) == bcfg["weights_sha256"]):
            w = recorded
        # the precision the model was fitted with ("auto" for files written before it was recorded)
        bb = create_backbone(name, weights=w, layers=tuple(bcfg["layers"]), device=device,
                             precision=bcfg.get("precision", "auto"))
        if bcfg.get("weights_sha256") and bb.weights_sha256 and bb.weights_sha256 != bcfg["weights_sha256"]:
            raise ModelFileError(
                f"{path}: backbone weights differ from those the model was fitted with "
                f"(found {bb.weights_source}, sha256 {bb.weights_sha256[:12]}..., expected "
                f"{bcfg['weights_sha256'][:12]}... from {recorded or src}). Use the original weight file "
                f"(--weights FILE) or re-fit.")
        scorer_arrays = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("scorer/")}
        scorer = SCORERS[scfg["name"]].from_state(scfg["params"], scorer_arrays)
        m = cls(bb, scorer, size=pcfg["size"], resize_mode=pcfg["mode"], score_mode=mcfg["score_mode"],
                top_fraction=mcfg["top_fraction"], sigma=mcfg["sigma"], batch_size=None)  # chosen for the machine it runs on
        m.threshold = cfg.get("threshold")
        m.calibration = cfg.get("calibration") or {}
        m.provenance = cfg.get("provenance") or {}
        m.display_range = cfg.get("display_range")  # None in files from before it was stored
        m.value_range = ValueRange.from_json(cfg.get("input"))
        return m
