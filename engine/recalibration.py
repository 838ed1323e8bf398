"""Changing an :class:`~engine.model.InspectionModel`'s threshold after fit: recalibration from good
and labelled images, an operator's threshold (kept with its history), and the expected
false-reject rate and display scale at any threshold.

:class:`CalibrationMixin` is inherited by the model class (the split keeps ``model.py`` to
construction, prediction and files).
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Iterable

import numpy as np

from .anomaly_map import shrink_map
from .calibration import describe_calibration
from .errors import DatasetError
from .scorers import ProgressFn


class CalibrationMixin:
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

    def contour_level(self, threshold: float | None = None) -> float | None:
        """Where the defect outline lies on the colour scale [0, 1] of ``threshold`` (default: the model's).

        :data:`engine.overlay.CONTOUR_LEVEL` (0.5: the map reaches the image threshold, or the
        display range's stand-in without one), the level every renderer uses
        (:mod:`engine.overlay`); None when the model has no scale at all (per-image fallback,
        no outline).
        """
        from .overlay import CONTOUR_LEVEL

        return None if self.display_scale(threshold) is None else CONTOUR_LEVEL

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
          the stored target), against the stored synthetic defects together with those made on
          the new good images;
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
        from .synthetic_defects import defects_of_every_kind, detection_rate

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
                small = shrink_map(pred.anomaly_map)
                region = self.region_pixels(img.shape[:2])  # with a region of interest only its pixels count
                inside = np.ones(small.shape, bool) if region is None else shrink_map(region, nearest=True)
                if label == 0:
                    g_scores.append(pred.score)
                    g_used.append(str(path.resolve()))
                    g_pix.append(small[::2, ::2][inside[::2, ::2]])
                    if len(g_imgs) < max(0, synthetic):
                        g_imgs.append(img)
                    if masks:
                        px_maps.append(small[inside])
                        px_masks.append(np.zeros(int(inside.sum()), bool))
                else:
                    d_scores.append(pred.score)
                    mp = masks.get(str(path.resolve()))
                    if mp is not None:
                        px_maps.append(small[inside])
                        px_masks.append(shrink_map(read_mask(mp, img.shape[:2]), nearest=True)[inside])
        stored = list(old.get("holdout_scores") or [])
        pool = stored + g_scores
        if not pool:
            raise DatasetError("no good image score to calibrate with: the model holds none and no new good "
                               "image (one it did not learn from) was given.")
        frr_target = float(target_frr if target_frr is not None else old.get("target_frr", 0.01))
        syn, syn_kinds = [], []
        for i, img in enumerate(g_imgs):
            made, made_kinds = defects_of_every_kind(img, rng, g_imgs[(i + 1) % len(g_imgs)],
                                                     within=self.region_pixels(img.shape[:2]))
            syn += made
            syn_kinds += made_kinds
        syn_scores = [p.score for b in range(0, len(syn), self.batch_size) for p in self.predict(syn[b:b + self.batch_size])]
        rule = rule or old.get("rule") or "balanced"
        # every synthetic defect known: the stored ones (scored by the fold scorers) and the new ones
        stored_syn = old.get("synthetic") or {}
        all_syn = list(stored_syn.get("scores") or []) + syn_scores
        all_kinds = list(stored_syn.get("kinds") or []) + syn_kinds
        good_only = choose_threshold(np.asarray(pool), all_syn, rule, frr_target, method)
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
        if all_syn:
            calib["synthetic"] = detection_rate(all_syn, calib["threshold"],
                                                all_kinds if len(all_kinds) == len(all_syn) else None)
        previous = {k: old.get(k) for k in ("threshold", "chosen_by", "method", "calibrated_at")}
        if old and self.threshold is not None and self.threshold != old.get("threshold"):
            previous["applied_threshold"] = self.threshold  # set by hand after that calibration
        calib["history"] = list(old.get("history") or []) + ([previous] if old else [])
        calib["description"] = describe_calibration(calib)
        self.threshold = float(calib["threshold"])
        self.calibration = calib
        return calib

    def display_scale(self, threshold: float | None = None):
        """The model's colour scale and outline rule (:func:`engine.overlay.display_scale`).

        ``threshold``: the image threshold to anchor at 0.5 (default: the model's), e.g. one being
        previewed. Returns a :class:`engine.overlay.DisplayScale`, or None when the model has
        neither a threshold nor a display range (older files fitted with ``--holdout 0``).
        """
        from .overlay import display_scale

        t = self.threshold if threshold is None else threshold
        return display_scale(t, self.calibration, getattr(self, "display_range", None), self.top_fraction)

    def color_range(self, threshold: float | None = None) -> tuple[float, float] | None:
        """``(floor, anchor)`` of :meth:`display_scale` for :func:`engine.overlay.normalise`, or None.

        The anchor is ``threshold`` (default: the model's); without a threshold, the display
        range's stand-in. None when there is no scale.
        """
        scale = self.display_scale(threshold)
        return None if scale is None else (scale.floor, scale.anchor)
