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

import logging
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
from .roi import RegionOfInterest, patch_mask
from .value_range import STANDALONE, ValueRange
from .modelfile import load_model_file, save_model_file
from .scorers import SCORERS, ProgressFn, Scorer, create_scorer

log = logging.getLogger(__name__)


@dataclass
class Prediction:
    """Result of inspecting one image.

    Attributes:
        score: image anomaly score (scorer units; higher = more anomalous).
        anomaly_map: ``(H, W) float32`` in the image's pixels.
        patch_scores: ``(h, w) float32`` on the backbone's patch grid (with a region of interest, the
            patches outside it hold the median of those inside: :meth:`InspectionModel.region_result`).
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
        self._roi: RegionOfInterest | None = None
        self._region_cache: dict = {}

    # ------------------------------------------------------------------ region of interest
    @property
    def roi(self) -> RegionOfInterest | None:
        """The region of interest (:mod:`engine.roi`), None = the whole image. Set it before
        :meth:`fit`: fitting, calibration, image scores and anomaly maps then use only the region
        (:meth:`region_result`); it is stored in the model file."""
        return self._roi

    @roi.setter
    def roi(self, value: RegionOfInterest | None) -> None:
        self._roi = value
        self._region_cache = {}

    def region_pixels(self, image_hw: tuple[int, int]) -> np.ndarray | None:
        """``(H, W) bool`` region of an image of that size (None without a region), cached per
        size; an aspect ratio other than the region's reference is warned about once per size
        (logger ``engine.model``) and the image is still inspected."""
        if self._roi is None:
            return None
        key = ("pixels", *image_hw)
        if key not in self._region_cache:
            warning = self._roi.aspect_warning(*image_hw)
            if warning:
                log.warning(warning)
            self._region_cache[key] = _read_only(self._roi.pixel_mask(*image_hw))
        return self._region_cache[key]

    def region_patches(self, image_hw: tuple[int, int], grid_hw: tuple[int, int]) -> np.ndarray | None:
        """``(h, w) bool`` patches inside the region for an image of size ``image_hw`` (None
        without a region; rule: :func:`engine.roi.patch_mask`), cached per size.

        Raises:
            DatasetError: the region covers no patch at this size (too small for the input size).
        """
        if self._roi is None:
            return None
        key = ("patches", *image_hw, *grid_hw)
        if key not in self._region_cache:
            m = patch_mask(self.region_pixels(image_hw), self.pre, grid_hw)
            if not m.any():
                raise DatasetError(f"the region of interest covers no patch of the {grid_hw[1]}x{grid_hw[0]} patch "
                                   f"grid on a {image_hw[1]}x{image_hw[0]} image: a patch counts when half of it is "
                                   f"inside. Draw a larger region or use a larger input size.")
            self._region_cache[key] = _read_only(m)
        return self._region_cache[key]

    def region_score(self, patch_scores: np.ndarray, image_hw: tuple[int, int]) -> float:
        """Image score of ``(h, w) float32`` patch scores of an ``image_hw`` image, over the region's
        patches only (all of them without a region); as :meth:`region_result`, without the map."""
        inside = self.region_patches(image_hw, patch_scores.shape)
        return self._image_score(patch_scores if inside is None else patch_scores[inside])

    def region_result(self, patch_scores: np.ndarray, image_hw: tuple[int, int],
                      map_hw: tuple[int, int] | None = None) -> tuple[float, np.ndarray, np.ndarray]:
        """Image score, shown patch scores and anomaly map of one image, honouring the region.

        Without a region: the score of all patches and :func:`engine.anomaly_map.anomaly_map`.
        With one: the image score is taken over the patches inside only; the patches outside are
        set to the median of those inside before the map is made (so nothing outside bleeds into
        the map), and the map's pixels outside the region are set to ``min(lowest value inside,
        the model's floor)``, which the display rule (:mod:`engine.overlay`) shows as 0: no colour,
        no outline there.

        Args:
            patch_scores: ``(h, w) float32`` of an image of size ``image_hw`` ``(H, W)``.
            map_hw: size of the map returned (default ``image_hw``; the fit uses the network input).
        Returns:
            ``(score, (h, w) float32 patch scores, map_hw float32 anomaly map)``.
        """
        map_hw = tuple(image_hw if map_hw is None else map_hw)
        inside = self.region_patches(image_hw, patch_scores.shape)
        if inside is None:
            return self._image_score(patch_scores), patch_scores, anomaly_map(patch_scores, self.pre, map_hw, self.sigma)
        score = self._image_score(patch_scores[inside])
        shown = np.where(inside, patch_scores, np.median(patch_scores[inside])).astype(np.float32)
        amap = anomaly_map(shown, self.pre, map_hw, self.sigma)
        pixels = self._map_region(image_hw, map_hw)
        floor = (self.calibration or {}).get("floor", (self.display_range or {}).get("floor"))
        fill = float(amap[pixels].min()) if pixels.any() else float(amap.min())
        amap[~pixels] = fill if floor is None else min(fill, float(floor))
        return score, shown, amap

    def _map_region(self, image_hw: tuple[int, int], map_hw: tuple[int, int]) -> np.ndarray | None:
        """``map_hw bool``: the region on a map of an ``image_hw`` image (the image itself, or the
        network input with ``map_hw == (size, size)`` as at fit); None without a region."""
        if self._roi is None:
            return None
        if tuple(map_hw) == tuple(image_hw):
            return self.region_pixels(image_hw)
        key = ("map", *image_hw, *map_hw)
        if key not in self._region_cache:
            if tuple(map_hw) != (self.pre.size, self.pre.size):
                raise ValueError(f"anomaly map size {map_hw}: the image's {image_hw} or the network input's only")
            self._region_cache[key] = _read_only(self.pre.mask_to_input(self.region_pixels(image_hw)) >= 0.5)
        return self._region_cache[key]

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
        """One line: backbone (+ weights source), scorer, input size, region of interest, threshold."""
        t = "none" if self.threshold is None else f"{self.threshold:.4g}"
        depth = self.value_range.describe()
        roi = "" if self._roi is None else f" {self._roi.describe()}"
        return (f"backbone={self.backbone.name} [{self.backbone.weights_source}] layers={list(self.backbone.layers)} "
                f"{self.backbone.precision} "
                f"scorer={self.scorer.name} input={self.pre.size}px ({self.pre.mode}){f' {depth}' if depth else ''}"
                f"{roi} threshold={t}")

    # ------------------------------------------------------------------ features
    def extract(self, images: list[np.ndarray]) -> torch.Tensor:
        """``B`` images ``(H, W, 3) uint8`` -> ``(B, h, w, D) float32`` patch features."""
        return self.backbone.extract(self.pre.batch(images))

    def extract_paths(self, paths: list[Path], progress: ProgressFn | None = None, stage: str = "features",
                      sizes: list[tuple[int, int]] | None = None) -> tuple[torch.Tensor, list[Path], list[str]]:
        """Features of image files, skipping unreadable ones; ``sizes``, when given, gets each used
        image's ``(H, W)`` appended (what a region of interest needs).

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
                if sizes is not None:
                    sizes.append(tuple(img.shape[:2]))
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
            s, shown, amap = self.region_result(patch[i], img.shape[:2])
            out.append(Prediction(score=s, anomaly_map=amap, patch_scores=shown,
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
                "batch_size": self.batch_size, "input": self.value_range.to_json(),
                "roi": None if self._roi is None else self._roi.to_json()}

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
        try:  # None in files from before regions of interest
            m.roi = RegionOfInterest.from_json(cfg.get("roi"), f"{path}: region of interest")
        except DatasetError as exc:
            raise ModelFileError(str(exc)) from None
        return m


def _read_only(mask: np.ndarray) -> np.ndarray:
    """``mask`` made read-only: the cached region masks are shared by every later prediction."""
    mask.setflags(write=False)
    return mask
