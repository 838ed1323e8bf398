"""The inspection model: backbone + scorer + anomaly-map rule + threshold, in one saveable object.

This is what the CLI and the GUI's worker drive::

    model = InspectionModel.create(backbone="auto", scorer="knn")
    report = model.fit(good_paths)                 # learns normal, calibrates a threshold
    preds = model.predict([image])                 # Prediction(score, anomaly_map, is_defective, ...)
    model.save("bottle.dimodel"); model = InspectionModel.load("bottle.dimodel")

Images flow as ``(H, W, 3) uint8`` RGB (:mod:`engine.images`); anomaly maps come back as
``(H, W) float32`` in the image's own pixels.
"""

from __future__ import annotations

import copy
import datetime as _dt
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch

from . import __version__
from .anomaly_map import anomaly_map, image_score, shrink_map
from .backbones import Backbone, create_backbone, file_sha256
from .calibration import describe_calibration
from .errors import DatasetError, ImageReadError, ModelFileError
from .images import read_image
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


@dataclass
class FitReport:
    """What :meth:`InspectionModel.fit` did: counts, skipped files, timings (seconds).

    ``n_holdout`` counts images kept out of the final scorer (hold-out calibration);
    ``n_calibration`` counts calibration scores (all images with cross-fitting).
    ``scorer_seconds`` covers everything after feature extraction (coresets, cross-fit scoring,
    synthetic defects, threshold); ``synthetic_seconds`` is the synthetic defects' share of it.
    """

    n_images: int
    n_fit: int
    n_holdout: int
    skipped: list[str] = field(default_factory=list)
    feature_seconds: float = 0.0
    scorer_seconds: float = 0.0
    calibration: dict | None = None
    n_calibration: int = 0
    synthetic_seconds: float = 0.0

    @property
    def total_seconds(self) -> float:
        return self.feature_seconds + self.scorer_seconds


def cross_fit_folds(n: int, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``k`` disjoint, sorted ``int64`` index arrays of near-equal size covering ``range(n)`` at random."""
    fold_of = np.empty(n, np.int64)
    fold_of[rng.permutation(n)] = np.arange(n) % k
    return [np.flatnonzero(fold_of == f) for f in range(k)]


def iter_images(paths: Iterable[str | Path], prefetch: int = 8) -> Iterator[tuple[Path, np.ndarray | ImageReadError]]:
    """Decode images in a background thread, in order: yields ``(path, image or ImageReadError)``."""
    paths = [Path(p) for p in paths]

    def load(p: Path):
        try:
            return read_image(p)
        except ImageReadError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(load, p) for p in paths[:prefetch]]
        for i, p in enumerate(paths):
            if i + prefetch < len(paths):
                futures.append(pool.submit(load, paths[i + prefetch]))
            yield p, futures[i].result()
            futures[i] = None


class InspectionModel:
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
        return (f"backbone={self.backbone.name} [{self.backbone.weights_source}] layers={list(self.backbone.layers)} "
                f"{self.backbone.precision} "
                f"scorer={self.scorer.name} input={self.pre.size}px ({self.pre.mode}) threshold={t}")

    # ------------------------------------------------------------------ features
    def extract(self, images: list[np.ndarray]) -> torch.Tensor:
        """``B`` images ``(H, W, 3) uint8`` -> ``(B, h, w, D) float32`` patch features."""
        return self.backbone.extract(self.pre.batch(images))

    def extract_paths(self, paths: list[Path], progress: ProgressFn | None = None,
                      stage: str = "features") -> tuple[torch.Tensor, list[Path], list[str]]:
        """Features of image files, skipping unreadable ones.

        Returns:
            ``(features (N, h, w, D) float32, paths used, messages of skipped files)``.
        """
        feats, used, skipped, batch, batch_paths = [], [], [], [], []
        total = len(paths)
        for i, (p, img) in enumerate(iter_images(paths), start=1):
            if isinstance(img, ImageReadError):
                skipped.append(str(img))
            else:
                batch.append(img)
                batch_paths.append(p)
            if len(batch) == self.batch_size or (i == total and batch):
                feats.append(self.extract(batch))
                used.extend(batch_paths)
                batch, batch_paths = [], []
            if progress is not None:
                progress(i, total, stage)
        if not feats:
            raise DatasetError(f"none of the {total} images could be read: " + "; ".join(skipped[:3]))
        return torch.cat(feats), used, skipped

    # ------------------------------------------------------------------ fit
    def fit(self, paths: list[str | Path], progress: ProgressFn | None = None, holdout_fraction: float = 0.1,
            target_frr: float = 0.01, seed: int = 0, folds: int = 5, method: str = "auto",
            synthetic: int = 16, rule: str = "balanced") -> FitReport:
        """Learn normal from good images and calibrate a good-only threshold.

        Calibration scores come from good images the scorer did not learn from
        (:mod:`engine.calibration`):

        * ``folds >= 2`` (default 5, at most one fold per image): K-fold cross-fitting. Features are
          extracted once; for each fold a fresh copy of the scorer learns the other folds and
          scores the fold, so every image gives one calibration score; the final scorer then
          learns from *all* images. Costs ``folds`` extra scorer fits on ``(K-1)/K`` of the data.
          ``holdout_fraction`` is then unused, except that ``holdout_fraction <= 0`` turns
          calibration off.
        * ``folds < 2``: a random ``holdout_fraction`` of the images (at least 1 when there are
          >= 5 images, else 0) is kept out of the scorer and scored by it.

        Up to ``synthetic`` calibration images also get one synthetic defect of each kind
        (:mod:`engine.synthetic_defects`), scored by the scorer that did not learn them. The
        threshold is :func:`engine.calibration.choose_threshold` by ``rule``: ``"balanced"``
        (default) separates the calibration scores from the synthetic-defect scores best, within
        the false-reject limits of :func:`~engine.calibration.balanced_threshold`; ``"tail"`` uses
        the good scores alone (:func:`~engine.calibration.good_only_threshold`, ``method`` at
        ``target_frr``, also the balanced rule's upper bound). The synthetic detection rate at the
        threshold is stored (``synthetic=0`` turns synthetic defects off: then the tail rule).

        Raises:
            DatasetError: fewer than 2 readable images.
        """
        paths = [Path(p) for p in paths]
        if len(paths) < 2:
            raise DatasetError(f"need at least 2 good images to fit, got {len(paths)}.")
        t0 = time.perf_counter()
        feats, used, skipped = self.extract_paths(paths, progress)
        rep = self.fit_features(feats, used, progress, holdout_fraction, target_frr, seed, folds, method, synthetic,
                                rule)
        rep.n_images, rep.skipped = len(paths), skipped
        rep.feature_seconds = time.perf_counter() - t0 - rep.scorer_seconds
        self.provenance.update(skipped=skipped, fit_seconds=round(rep.total_seconds, 3))
        return rep

    def fit_features(self, feats: torch.Tensor, used: list[Path], progress: ProgressFn | None = None,
                     holdout_fraction: float = 0.1, target_frr: float = 0.01, seed: int = 0, folds: int = 5,
                     method: str = "auto", synthetic: int = 16, rule: str = "balanced") -> FitReport:
        """:meth:`fit` from features already extracted: ``feats (N, h, w, D) float32`` of the image
        files ``used`` (read again only for synthetic defects). Arguments and result as :meth:`fit`."""
        n = len(used)
        if n < 2:
            raise DatasetError(f"need at least 2 readable good images to fit, got {n}.")
        rng = np.random.default_rng(seed)
        t1 = time.perf_counter()
        held = None
        if folds >= 2 and holdout_fraction > 0:
            k = min(int(folds), n)
            fold_idx = cross_fit_folds(n, k, rng)
            # the scorer learns all images once the fold scorers are exhausted (Scorer.cross_fit)
            fold_scorers = ((fold_idx[f], sc) for f, sc in self.scorer.cross_fit(feats, fold_idx, progress))
            held = self._score_held_out(feats, used, fold_scorers, k, np.arange(n), progress, synthetic, seed)
            fit_idx, hold = np.arange(n), np.array([], np.int64)
            source = f"cross-fit, {k} folds"
        else:
            n_hold = int(round(n * holdout_fraction)) if n >= 5 else 0
            n_hold = max(n_hold, 1) if n >= 5 and holdout_fraction > 0 else n_hold
            perm = rng.permutation(n)
            hold, fit_idx = np.sort(perm[:n_hold]), np.sort(perm[n_hold:])
            self.scorer.fit(feats[torch.from_numpy(fit_idx)], progress=progress)
            if n_hold:
                held = self._score_held_out(feats, used, [(hold, self.scorer)], 1, hold, progress, synthetic, seed)
            source = f"hold-out, {n_hold} images"
        t_score = time.perf_counter() - t1
        calib = None
        if held is not None:
            calib = self._good_only_calibration(held, target_frr, method, source, rule)
            self.threshold = calib["threshold"]
            self.calibration = calib
        self.provenance = {
            "fitted_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "program_version": __version__, "n_images": n, "n_fit": len(fit_idx), "n_holdout": len(hold),
            "images": [str(used[i]) for i in fit_idx], "holdout_images": [str(used[i]) for i in hold],
            "skipped": [], "fit_seconds": round(t_score, 3),
        }
        return FitReport(n_images=n, n_fit=len(fit_idx), n_holdout=len(hold), skipped=[],
                         feature_seconds=0.0, scorer_seconds=t_score, calibration=calib,
                         n_calibration=0 if held is None else len(held["scores"]),
                         synthetic_seconds=0.0 if held is None else held["syn_seconds"])

    # ------------------------------------------------------------------ calibration
    def _score_held_out(self, feats: torch.Tensor, used: list[Path], fold_scorers: Iterable[tuple[np.ndarray, Scorer]],
                        n_folds: int, held_idx: np.ndarray, progress: ProgressFn | None, synthetic: int,
                        seed: int) -> dict:
        """Score every held-out image with a scorer that did not learn it.

        ``fold_scorers`` yields ``(held-out indices, scorer that did not learn them)``, ``n_folds`` of
        them, the held-out sets disjoint, together ``held_idx``. Returns lists aligned with the concatenated held-out
        indices: ``scores``, ``pixels`` (every 4th row and column of each anomaly map at the network
        input size), the median patch score ``floor``, and synthetic-defect ``syn_scores`` /
        ``syn_kinds`` (up to ``synthetic`` held-out images, one defect of each kind).
        """
        from .synthetic_defects import KINDS, make_defect

        rng = np.random.default_rng(seed + 1)
        syn_pick = set(rng.permutation(held_idx)[:max(0, synthetic)].tolist())
        scores, pixels, medians, syn_scores, syn_kinds, index = [], [], [], [], [], []
        n_hold, t_syn = 0, 0.0
        for f, (hold, sc) in enumerate(fold_scorers):
            if progress is not None:
                progress(f, n_folds, "cross-fit")
            n_hold += len(hold)
            patch = sc.score(feats[torch.from_numpy(hold)]).numpy()
            for i, ps in zip(hold, patch):
                scores.append(self._image_score(ps))
                amap = anomaly_map(ps, self.pre, (self.pre.size, self.pre.size), self.sigma)
                pixels.append(amap[::4, ::4].ravel())
                medians.append(ps.ravel())
                index.append(int(i))
            t0 = time.perf_counter()
            chosen = [i for i in hold if int(i) in syn_pick]
            imgs, kinds = [], []
            for i in chosen:
                img = read_image(used[i])
                donor = read_image(used[(int(i) + 1 + int(rng.integers(len(used) - 1))) % len(used)])  # another image
                for kind in KINDS:
                    imgs.append(make_defect(img, kind, rng, donor)[0])
                    kinds.append(kind)
            for b in range(0, len(imgs), self.batch_size):
                ps = sc.score(self.extract(imgs[b:b + self.batch_size])).numpy()
                syn_scores.extend(self._image_score(p) for p in ps)
            syn_kinds.extend(kinds)
            t_syn += time.perf_counter() - t0
        if progress is not None:
            progress(n_folds, n_folds, "cross-fit")
        assert len(scores) == n_hold
        return {"scores": scores, "pixels": pixels, "floor": float(np.median(np.concatenate(medians))),
                "syn_scores": syn_scores, "syn_kinds": syn_kinds, "index": index, "syn_seconds": t_syn}

    def _good_only_calibration(self, held: dict, target_frr: float, method: str, source: str,
                               rule: str = "balanced") -> dict:
        from .calibration import choose_threshold, pixel_threshold_from_good
        from .synthetic_defects import detection_rate

        calib = choose_threshold(np.asarray(held["scores"]), held["syn_scores"], rule, target_frr, method)
        calib.update(chosen_by="good-only", score_source=source,
                     holdout_scores=[float(s) for s in held["scores"]],
                     floor=held["floor"],
                     calibrated_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        calib.update(pixel_threshold_from_good(held["pixels"]))
        if held["syn_scores"]:
            calib["synthetic"] = detection_rate(held["syn_scores"], calib["threshold"], held["syn_kinds"])
        calib["description"] = describe_calibration(calib)
        return calib

    def frr_at(self, threshold: float | None = None) -> dict | None:
        """Expected false-reject rate at ``threshold`` (default: the model's), for the GUI slider.

        Returns :func:`engine.calibration.frr_at`'s dict (``estimate``, ``ci95``, ``n``...), or None
        when the model holds no calibration scores.
        """
        from .calibration import frr_at

        good = self.calibration.get("holdout_scores")
        t = self.threshold if threshold is None else threshold
        if not good or t is None:
            return None
        return frr_at(good, float(t), self.calibration.get("tail"))

    def contour_level(self, threshold: float | None = None) -> float:
        """Where to draw the defect contour on the :func:`engine.overlay.normalise` scale [0, 1].

        :func:`engine.overlay.contour_level` of the pixel threshold with the image threshold
        ``threshold`` (default: the model's) -> 0.5 rule; 0.5 when there is none.
        """
        from .overlay import contour_level

        rng = self.color_range(threshold)
        if rng is None:
            return 0.5
        return contour_level(self.calibration.get("pixel_threshold"), rng[1], rng[0])

    def apply_threshold(self, value: float, by: str = "operator") -> dict:
        """Set the image threshold by hand (an operator's choice), keeping the previous one.

        The previous threshold goes to ``calibration["history"]`` (with how it had been chosen, the
        time of the change in UTC, ISO 8601, who changed it and the new value), the calibration's
        own results (``calibration["threshold"]``, scores, tail) stay as they were, and
        ``calibration["threshold_chosen_by"]`` / ``["threshold_changed_at"]`` record the change.
        Nothing is written: call :meth:`save` to keep it.

        Args:
            value: the new threshold, in image-score units (finite).
            by: who or what chose it, e.g. ``"operator"``.
        Returns:
            the history entry added.
        Raises:
            ValueError: ``value`` is not a finite number.
        """
        value = float(value)
        if not np.isfinite(value):
            raise ValueError(f"threshold must be a finite number, got {value}")
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        calib = dict(self.calibration)
        entry = {"threshold": self.threshold,
                 "chosen_by": calib.get("threshold_chosen_by", calib.get("chosen_by")),
                 "replaced_at": now, "replaced_by": by, "new_threshold": value}
        calib["history"] = list(calib.get("history") or []) + [entry]
        calib.update(threshold_chosen_by=by, threshold_changed_at=now)
        self.calibration = calib
        self.threshold = value
        return entry

    def recalibrate(self, good_paths: Iterable[str | Path] = (), defective_paths: Iterable[str | Path] = (),
                    target_frr: float | None = None, objective: str = "f1", target: float | None = None,
                    masks: dict | None = None, method: str = "auto", synthetic: int = 16,
                    progress: ProgressFn | None = None, rule: str | None = None) -> dict:
        """Choose a new threshold for a fitted model, from good and (optionally) defective images.

        Good images the model learned from (or already held out, or scored by an earlier
        recalibration) are not scored again -- their scores would be self-matches or duplicates --
        their stored scores stand in for them. The others are scored by the final model and join the
        stored good scores for good (their paths go to ``calibration["extra_good_images"]``); the
        final model learned from all training images, so its scores run a little lower than the
        cross-fitted ones.

        * no defective image: the labelling-free threshold by ``rule`` (default: the stored rule,
          else "balanced"; :func:`engine.calibration.choose_threshold`) at ``target_frr`` (default:
          the stored target), against the synthetic defects of the new good images (else the
          stored synthetic scores);
        * defective images: :func:`engine.calibration.few_label_threshold` with ``objective``
          ("f1", "precision", "recall") and ``target``; the new good images are the labelled goods,
          the stored scores the extra goods, and for F1 the good-only threshold is the prior (kept
          when it already reaches the labels' F1-max). The curve is stored in ``calibration["curve"]``.

        ``masks`` maps a defective image path to its mask file; with masks the contour threshold is
        the pixel F1-max, otherwise the stored one is kept (computed from the new good images' maps
        when the model has none). ``synthetic`` new good images also get
        synthetic defects scored by this model (they are not in its memory).

        Returns:
            the new ``model.calibration`` (also set, with ``model.threshold``).
        Raises:
            NotFittedError: model not fitted. DatasetError: no usable good score at all.
            ValueError: bad objective / target.
        """
        from .calibration import choose_threshold, few_label_threshold, frr_at, pixel_threshold_from_good, \
            pixel_threshold_from_masks
        from .errors import NotFittedError
        from .images import read_mask
        from .synthetic_defects import KINDS, detection_rate, make_defect

        if not self.is_fitted:
            raise NotFittedError("recalibrate needs a fitted model; run fit first.")
        old = dict(self.calibration)
        known = {str(Path(p).resolve()) for p in self.provenance.get("images", []) + self.provenance.get("holdout_images", [])
                 + list(old.get("extra_good_images") or [])}
        good_paths = [Path(p) for p in good_paths]
        new_good = [p for p in good_paths if str(p.resolve()) not in known]
        reused = len(good_paths) - len(new_good)
        defective_paths = [Path(p) for p in defective_paths]
        masks = {str(Path(k).resolve()): Path(v) for k, v in (masks or {}).items()}
        g_scores, g_used, g_pix, g_imgs, d_scores, px_maps, px_masks, skipped = [], [], [], [], [], [], [], []
        rng = np.random.default_rng(0)
        for label, plist in ((0, new_good), (1, defective_paths)):
            for path, pred, img, err in self.predict_paths(plist, progress=progress):
                if err:
                    skipped.append(err)
                    continue
                if label == 0:
                    g_scores.append(pred.score)
                    g_used.append(str(path.resolve()))
                    g_pix.append(shrink_map(pred.anomaly_map)[::2, ::2].ravel())
                    if len(g_imgs) < max(0, synthetic):
                        g_imgs.append(img)
                    if masks:
                        px_maps.append(shrink_map(pred.anomaly_map))
                        px_masks.append(np.zeros(px_maps[-1].shape, bool))
                else:
                    d_scores.append(pred.score)
                    mp = masks.get(str(path.resolve()))
                    if mp is not None:
                        px_maps.append(shrink_map(pred.anomaly_map))
                        px_masks.append(shrink_map(read_mask(mp, img.shape[:2]), nearest=True))
        stored = list(old.get("holdout_scores") or [])
        pool = stored + g_scores
        if not pool:
            raise DatasetError("no good image score to calibrate with: the model holds none and no new good "
                               "image (one it did not learn from) was given.")
        frr_target = float(target_frr if target_frr is not None else old.get("target_frr", 0.01))
        syn, syn_kinds = [], []
        for i, img in enumerate(g_imgs):
            for kind in KINDS:
                syn.append(make_defect(img, kind, rng, g_imgs[(i + 1) % len(g_imgs)])[0])
                syn_kinds.append(kind)
        syn_scores = [p.score for b in range(0, len(syn), self.batch_size) for p in self.predict(syn[b:b + self.batch_size])]
        rule = rule or old.get("rule") or "balanced"
        # synthetic defects scored by this model, else the stored ones (scored by the fold scorers)
        ref_syn = syn_scores or (old.get("synthetic") or {}).get("scores")
        good_only = choose_threshold(np.asarray(pool), ref_syn, rule, frr_target, method)
        if d_scores:
            calib = few_label_threshold(d_scores, g_scores, stored, objective, target, prior=good_only["threshold"])
            calib["chosen_by"] = "labels"
            calib["good_only"] = {k: good_only[k] for k in ("threshold", "method", "expected_frr", "frr_ci95")}
            calib["tail"] = good_only["tail"]
        else:
            calib = dict(good_only, chosen_by="good-only")
        f = frr_at(pool, calib["threshold"], calib.get("tail"))
        calib.update(target_frr=frr_target, n_good=len(pool), n_good_new=len(g_scores), n_good_reused=reused,
                     n_defective=len(d_scores), holdout_scores=[float(s) for s in pool],
                     extra_good_images=list(old.get("extra_good_images") or []) + g_used,
                     floor=old.get("floor"),
                     score_source=old.get("score_source", "stored") + (f" + {len(g_scores)} new good" if g_scores else ""),
                     calibrated_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), skipped=skipped)
        if d_scores:
            calib.update(expected_frr=f["estimate"], frr_ci95=f["ci95"])
        if calib["floor"] is None:
            del calib["floor"]  # a model without one keeps the fixed colour range
        if px_masks and any(m.any() for m in px_masks):
            calib.update(pixel_threshold_from_masks(px_maps, px_masks))
        elif old.get("pixel_threshold") is not None:
            calib.update({k: old[k] for k in ("pixel_threshold", "pixel_method", "pixel_area_fraction") if k in old})
        elif g_pix:
            calib.update(pixel_threshold_from_good(g_pix))
        if syn_scores:
            calib["synthetic"] = detection_rate(syn_scores, calib["threshold"], syn_kinds)
        elif old.get("synthetic"):
            calib["synthetic"] = detection_rate(old["synthetic"]["scores"], calib["threshold"],
                                                old["synthetic"].get("kinds"))
        previous = {k: old.get(k) for k in ("threshold", "chosen_by", "method", "calibrated_at")}
        if old and self.threshold is not None and self.threshold != old.get("threshold"):
            previous["applied_threshold"] = self.threshold  # set by hand after that calibration
        calib["history"] = list(old.get("history") or []) + ([previous] if old else [])
        calib["description"] = describe_calibration(calib)
        self.threshold = float(calib["threshold"])
        self.calibration = calib
        return calib

    def color_range(self, threshold: float | None = None) -> tuple[float, float] | None:
        """``(floor, threshold)`` for :func:`engine.overlay.normalise`, or None when uncalibrated.

        ``threshold``: the image threshold to anchor at 0.5 (default: the model's), e.g. one being
        previewed.
        """
        t = self.threshold if threshold is None else threshold
        if t is None or "floor" not in self.calibration:
            return None
        return float(self.calibration["floor"]), float(t)

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

        for i, (p, img) in enumerate(iter_images(paths), start=1):
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
                "batch_size": self.batch_size}

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
        return m
