"""Fitting an :class:`~engine.model.InspectionModel`: features once, K-fold cross-fitted calibration
scores, synthetic defects, and the labelling-free threshold (:mod:`engine.calibration`).

:class:`FitMixin` holds :meth:`~FitMixin.fit` / :meth:`~FitMixin.fit_features`; the model class
inherits it (the split keeps ``model.py`` to construction, prediction and files).
"""

from __future__ import annotations

import copy
import datetime as _dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from . import __version__
from .calibration import describe_calibration
from .errors import DatasetError
from .images import read_image
from .overlay import display_range_from_patches
from .scorers import ProgressFn, Scorer


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


DISPLAY_LEARN, DISPLAY_SCORED = 32, 16
"""Most images learned / scored for the display range of a model fitted without calibration."""


def cross_fit_folds(n: int, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``k`` disjoint, sorted ``int64`` index arrays of near-equal size covering ``range(n)`` at random."""
    fold_of = np.empty(n, np.int64)
    fold_of[rng.permutation(n)] = np.arange(n) % k
    return [np.flatnonzero(fold_of == f) for f in range(k)]


class FitMixin:
    def fit(self, paths: list[str | Path], progress: ProgressFn | None = None, holdout_fraction: float = 0.1,
            target_frr: float = 0.01, seed: int = 0, folds: int = 5, method: str = "auto",
            synthetic: int = 16, rule: str = "balanced") -> FitReport:
        """Learn normal from good images and calibrate a threshold without labelled defects.

        Calibration scores come from good images the scorer did not learn from
        (:mod:`engine.calibration`):

        * ``folds >= 2`` (default 5, at most one fold per image): K-fold cross-fitting. Features are
          extracted once; for each fold a scorer that learned the other folds scores the fold, so
          every image gives one calibration score; the final scorer then learns from *all* images
          (:meth:`engine.scorers.base.Scorer.cross_fit`: the k-NN scorer selects one coreset per
          fold and unites them, so this costs less than one full coreset selection).
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

        With a region of interest (``model.roi``, :mod:`engine.roi`) only its patches are learned
        (``patch_mask`` of the scorers), scored and shown (:meth:`~engine.model.InspectionModel.region_result`),
        and the synthetic defects are made inside it (:func:`engine.synthetic_defects.defects_of_every_kind`,
        ``within``): a defect outside would be invisible to the model and spoil the threshold.

        Images deeper than 8 bits: the model's :class:`~engine.value_range.ValueRange` is measured
        from ``paths`` first (:func:`engine.value_range.measure_value_range`), unless it was set
        with source ``"option"`` (``--bit-depth``), whose depth is kept.

        Raises:
            DatasetError: fewer than 2 readable images.
        """
        from .value_range import measure_value_range

        paths = [Path(p) for p in paths]
        if len(paths) < 2:
            raise DatasetError(f"need at least 2 good images to fit, got {len(paths)}.")
        t0 = time.perf_counter()
        forced = self.value_range.bit_depth if self.value_range.source == "option" else None
        self.value_range = measure_value_range(paths, bit_depth=forced)
        sizes: list[tuple[int, int]] = []
        feats, used, skipped = self.extract_paths(paths, progress, sizes=sizes)
        if len(used) < 2:
            raise DatasetError(f"need at least 2 readable good images to fit, got {len(used)} of {len(paths)}; "
                               f"unreadable: " + "; ".join(skipped[:3]))
        rep = self.fit_features(feats, used, progress, holdout_fraction, target_frr, seed, folds, method, synthetic,
                                rule, image_sizes=sizes)
        rep.n_images, rep.skipped = len(paths), skipped
        rep.feature_seconds = time.perf_counter() - t0 - rep.scorer_seconds
        self.provenance.update(skipped=skipped, fit_seconds=round(rep.total_seconds, 3))
        return rep

    def fit_features(self, feats: torch.Tensor, used: list[Path], progress: ProgressFn | None = None,
                     holdout_fraction: float = 0.1, target_frr: float = 0.01, seed: int = 0, folds: int = 5,
                     method: str = "auto", synthetic: int = 16, rule: str = "balanced",
                     image_sizes: list[tuple[int, int]] | None = None) -> FitReport:
        """:meth:`fit` from features already extracted: ``feats (N, h, w, D) float32`` of the image
        files ``used`` (read again only for synthetic defects). Arguments and result as :meth:`fit`;
        ``image_sizes``: each image's ``(H, W)``, needed with a region of interest (read from the
        files when not given)."""
        n = len(used)
        if n < 2:
            raise DatasetError(f"need at least 2 readable good images to fit, got {n}.")
        if self.roi is not None and image_sizes is None:
            image_sizes = [tuple(read_image(p, self.value_range).shape[:2]) for p in used]
        grid = tuple(feats.shape[1:3])
        pmask = None if self.roi is None else np.stack([self.region_patches(hw, grid) for hw in image_sizes])
        rng = np.random.default_rng(seed)
        t1 = time.perf_counter()
        held, probe = None, None
        if folds >= 2 and holdout_fraction > 0:
            k = min(int(folds), n)
            fold_idx = cross_fit_folds(n, k, rng)
            # the scorer learns all images once the fold scorers are exhausted (Scorer.cross_fit)
            fold_scorers = ((fold_idx[f], sc) for f, sc in self.scorer.cross_fit(feats, fold_idx, progress, pmask))
            held = self._score_held_out(feats, used, fold_scorers, k, np.arange(n), progress, synthetic, seed,
                                        image_sizes)
            fit_idx, hold = np.arange(n), np.array([], np.int64)
            source = f"cross-fit, {k} folds"
        else:
            n_hold = int(round(n * holdout_fraction)) if n >= 5 else 0
            n_hold = max(n_hold, 1) if n >= 5 and holdout_fraction > 0 else n_hold
            perm = rng.permutation(n)
            hold, fit_idx = np.sort(perm[:n_hold]), np.sort(perm[n_hold:])
            probe = copy.deepcopy(self.scorer) if n_hold == 0 else None  # for the display range, below
            self.scorer.fit_images(feats, fit_idx, progress=progress, patch_mask=pmask)
            if n_hold:
                held = self._score_held_out(feats, used, [(hold, self.scorer)], 1, hold, progress, synthetic, seed,
                                            image_sizes)
            source = f"hold-out, {n_hold} images"
        # the colour scale's range (engine.overlay): from the held-out patches, else from a split
        self.display_range = held["display_range"] if held is not None else \
            self._display_range_by_split(feats, probe, seed, progress, pmask)
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

    def _score_held_out(self, feats: torch.Tensor, used: list[Path], fold_scorers: Iterable[tuple[np.ndarray, Scorer]],
                        n_folds: int, held_idx: np.ndarray, progress: ProgressFn | None, synthetic: int,
                        seed: int, sizes: list[tuple[int, int]] | None = None) -> dict:
        """Score every held-out image with a scorer that did not learn it.

        ``fold_scorers`` yields ``(held-out indices, scorer that did not learn them)``, ``n_folds`` of
        them, the held-out sets disjoint, together ``held_idx``. Returns lists aligned with the concatenated held-out
        indices: ``scores``, ``pixels`` (every 4th row and column of each anomaly map at the network
        input size), the median patch score ``floor``, and synthetic-defect ``syn_scores`` /
        ``syn_kinds`` (up to ``synthetic`` held-out images, one defect of each kind). With a region of
        interest only its patches and pixels enter these (``sizes``: each image's ``(H, W)``).
        """
        from .synthetic_defects import defects_of_every_kind

        rng = np.random.default_rng(seed + 1)
        syn_pick = set(rng.permutation(held_idx)[:max(0, synthetic)].tolist())
        scores, pixels, medians, syn_scores, syn_kinds = [], [], [], [], []
        n_hold, t_syn = 0, 0.0
        input_hw = (self.pre.size, self.pre.size)
        if progress is not None:  # before the first fold's scorer is fitted: its stages report inside this one
            progress(0, n_folds, "cross-fit")
        for f, (hold, sc) in enumerate(fold_scorers):
            n_hold += len(hold)
            for b in range(0, len(hold), self.batch_size):  # a batch at a time: no copy of the fold's features
                rows = hold[b:b + self.batch_size]
                patch = sc.score(feats[torch.from_numpy(rows)]).numpy()
                for i, ps in zip(rows, patch):
                    # with a region only its patches and pixels count (the image's size places it)
                    hw = input_hw if self.roi is None else sizes[int(i)]
                    s, _, amap = self.region_result(ps, hw, input_hw)
                    scores.append(s)
                    region, inside = self._map_region(hw, input_hw), self.region_patches(hw, ps.shape)
                    pixels.append(amap[::4, ::4].ravel() if region is None else amap[::4, ::4][region[::4, ::4]])
                    medians.append(ps.ravel() if inside is None else ps[inside])
            t0 = time.perf_counter()
            chosen = [i for i in hold if int(i) in syn_pick]
            imgs, kinds = [], []
            for i in chosen:
                img = read_image(used[i], self.value_range)
                donor = read_image(used[(int(i) + 1 + int(rng.integers(len(used) - 1))) % len(used)],
                                   self.value_range)  # another image
                made, made_kinds = defects_of_every_kind(img, rng, donor, within=self.region_pixels(img.shape[:2]))
                imgs += made
                kinds += made_kinds
            for b in range(0, len(imgs), self.batch_size):
                part = imgs[b:b + self.batch_size]
                ps = sc.score(self.extract(part)).numpy()
                syn_scores.extend(self.region_score(p, im.shape[:2]) for p, im in zip(ps, part))
            syn_kinds.extend(kinds)
            t_syn += time.perf_counter() - t0
            if progress is not None:
                progress(f + 1, n_folds, "cross-fit")
        assert len(scores) == n_hold
        shown = display_range_from_patches(np.concatenate(medians))  # its floor: the median patch score
        return {"scores": scores, "pixels": pixels, "floor": shown["floor"],
                "display_range": dict(shown, source="held-out"),
                "syn_scores": syn_scores, "syn_kinds": syn_kinds, "syn_seconds": t_syn}

    def _display_range_by_split(self, feats: torch.Tensor, probe: Scorer, seed: int,
                                progress: ProgressFn | None, patch_mask: np.ndarray | None = None) -> dict:
        """Display range of a model fitted without calibration (``holdout_fraction <= 0``).

        ``probe`` (an unfitted copy of the scorer) learns a random half of the images (at most
        :data:`DISPLAY_LEARN` of them) and scores up to :data:`DISPLAY_SCORED` of the others; their
        patch scores give :func:`engine.overlay.display_range_from_patches`. A smaller bank than the
        final one, so the range sits a little high (good parts look a little cooler): a bounded
        cost of one small fit, against none but a per-image stretch.
        """
        n = len(feats)
        perm = np.random.default_rng(seed + 2).permutation(n)
        half = max(1, n // 2)
        learn, scored = np.sort(perm[:half][:DISPLAY_LEARN]), np.sort(perm[half:][:DISPLAY_SCORED])
        probe.fit(feats[torch.from_numpy(learn)], progress=progress,
                  patch_mask=None if patch_mask is None else patch_mask[learn])
        patch = probe.score(feats[torch.from_numpy(scored)]).numpy()
        if patch_mask is not None:  # the region's patches only
            patch = patch[patch_mask[scored]]
        return dict(display_range_from_patches(patch), source=f"split: {len(learn)} images learned, "
                                                             f"{len(scored)} scored")

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
