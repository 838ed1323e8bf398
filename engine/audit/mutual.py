"""Labelling-free audit: score every image against the other images of its folder (MuSc-style).

``main.py audit FOLDER... --out DIR`` without ``--model`` needs no recipe, no labels and no curated
good set. The rule (:mod:`engine.audit.mutual_scoring` has the algorithm, after MuSc, Li et al.,
ICLR 2024):

* **Group**: an image is compared with the images of its *group*, the folder that directly holds it
  (``ArchiveFile.group``: ``line2/2026-11-30/lot7``). Images of other folders are never used, so a
  folder of another product, camera or lighting does not pollute the comparison. A group needs at
  least 2 readable images; a lone image is recorded as an error saying so.
* **References**: a group of N images is compared with a deterministic sample of at most
  ``references`` (default 200) of its images: the ones whose BLAKE2b hash of ``"<seed>:<rel>"`` is
  smallest (:func:`pick_references`). The choice depends only on the names, so a resumed audit picks
  the same references, and a grown folder keeps most of them. Cost is O(N R) comparisons and memory
  O(R P D) (R reference feature grids of P patches of D dims; 200 x 256 x 384 float32 = 79 MB at
  224 px). An image that is itself a reference is never compared with itself.
* **Scores**: the anomaly grid is the interval-average patch score (smallest 30 % of the
  per-reference nearest-patch distances); the image score is the mean of its top 1 % patch scores
  (:func:`engine.anomaly_map.image_score`, as the recipe models do); the anomaly map is made from
  the grid as for every model (:func:`engine.anomaly_map.anomaly_map`).
* **Verdicts** (a suggestion, not a calibrated threshold): the references are scored first, against
  each other; the group's cut is ``median + 3.5 * 1.4826 * MAD`` of their image scores
  (:func:`engine.audit.mutual_scoring.robust_cut`) and an image at or above it is ``"NOK"``. With
  fewer than ``MIN_REFS_FOR_CUT`` references no verdict is given (None). The store's threshold stays
  null (mode ``"mutual"``); the cuts are kept in :attr:`MutualScorer.cuts`.

Determinism: reference features are extracted in fixed batches (the reference order), query
features batch by batch; each image's scores are computed on their own (no stacking of queries).
On this project's CPU, DINOv2 features of an image were bit-identical in batches of 1 and 4
(float32), so a record does not depend on the batch it was read in.

Usage::

    scorer = MutualScorer(size=224, references=200)
    for records in scorer.score_group(files_of_one_folder, is_done=store.is_done):
        store.add(records)
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from ..anomaly_map import image_score
from ..backbones.backbone import Backbone, create_backbone
from ..errors import ImageReadError
from ..images import read_image
from ..listing import IMAGE_SUFFIXES
from ..scorers.base import ProgressFn
from .mutual_scoring import DEFAULT_FRACTION, mutual_patch_scores, robust_cut
from .records import ArchiveFile, AuditRecord, fast_hash

DEFAULT_REFERENCES = 200
DEFAULT_SIZE = 224
DEFAULT_CUT_K = 3.5
MIN_REFS_FOR_CUT = 8
GROUPS_KEPT = 2
SIGMA = 4.0  # anomaly-map smoothing, input px (as InspectionModel's default)


def pick_references(rels: Sequence[str], n: int, seed: int = 0) -> list[int]:
    """Deterministic reference sample of a group.

    Args:
        rels: the group's file names (``ArchiveFile.rel``), any order.
        n: how many to pick (all when ``n >= len(rels)``).
        seed: changes the sample.
    Returns:
        indices into ``rels`` of the ``n`` names with the smallest BLAKE2b(``"<seed>:<rel>"``)
        digest, in increasing index order.
    """
    if n >= len(rels):
        return list(range(len(rels)))
    keys = [hashlib.blake2b(f"{seed}:{r}".encode(), digest_size=8).digest() for r in rels]
    return sorted(sorted(range(len(rels)), key=lambda i: keys[i])[:n])


class MutualScorer:
    """Labelling-free scorer of folder groups (module docstring).

    Args:
        backbone: backbone name, ``"auto"`` (DINOv2 ViT-S/14) or a backbone file.
        size: network input side, px (rounded to the patch multiple).
        references: at most this many reference images per group.
        fraction: interval-average share (:func:`engine.audit.mutual_scoring.interval_average`).
        seed: seed of the reference sample.
        batch_size: images per backbone pass (None: 4 on the CPU, 32 on CUDA).
        device, precision, weights: as :func:`engine.backbones.backbone.create_backbone`.
        cut_k: width of the suggested cut in robust standard deviations.
        top_fraction: image score = mean of this share of the highest patch scores.
        progress: ``progress(done, total, stage)`` called while reference features are extracted.
    Raises:
        InspectError: unknown backbone or device; WeightsNotFoundError when weights are missing.
    """

    mode = "mutual"

    def __init__(self, backbone: str | Backbone = "auto", size: int = DEFAULT_SIZE,
                 references: int = DEFAULT_REFERENCES, fraction: float = DEFAULT_FRACTION, seed: int = 0,
                 batch_size: int | None = None, device: str | None = None, precision: str = "auto",
                 cut_k: float = DEFAULT_CUT_K, top_fraction: float = 0.01, progress: ProgressFn | None = None,
                 weights: str | None = None):
        if references < 1:
            raise ValueError(f"references must be at least 1, got {references}")
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        self.backbone = backbone if isinstance(backbone, Backbone) else create_backbone(
            backbone, weights=weights, device=device, precision=precision)
        self.pre = self.backbone.preprocess(size)
        self.references, self.fraction, self.seed = int(references), float(fraction), int(seed)
        self.batch_size = int(batch_size or (32 if self.backbone.device.type == "cuda" else 4))
        self.cut_k, self.top_fraction = float(cut_k), float(top_fraction)
        self.progress = progress
        self.cuts: dict[str, float | None] = {}
        self._groups: dict[tuple[str, str], GroupContext] = {}

    # ------------------------------------------------------------------ BatchScorer facts
    def settings(self) -> dict:
        """What decides the scores (JSON-able); its hash is the store's ``model_sha256``."""
        return {"method": "mutual (MuSc-style interval average)", "backbone": self.backbone.describe(),
                "image_size": self.pre.size, "resize_mode": self.pre.mode, "references": self.references,
                "fraction": self.fraction, "seed": self.seed, "cut_k": self.cut_k,
                "image_score": f"top_mean {self.top_fraction}"}

    def meta(self) -> dict:
        """JSON-able facts for the store's ``meta`` table (mode ``"mutual"``, no threshold)."""
        settings = self.settings()
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
        return {"mode": self.mode, "model_path": None, "model_sha256": digest, "backbone": self.backbone.name,
                "threshold": None, "calibration_scores": [], "display": None, "roots": [],
                "patch_size": int(self.backbone.spec.patch_size), "image_size": int(self.pre.size),
                "describe": self.describe(), "mutual": settings,
                "map": {"size": int(self.pre.size), "resize_mode": self.pre.mode, "mean": list(self.pre.mean),
                        "std": list(self.pre.std), "sigma": SIGMA, "score_mode": "top_mean",
                        "top_fraction": self.top_fraction, "floor": None, "roi": None}}

    def describe(self) -> str:
        """The scorer in one line (printed by ``main.py audit``)."""
        return (f"labelling-free (mutual) audit: backbone={self.backbone.name} {self.backbone.precision} "
                f"input={self.pre.size}px, each image against <= {self.references} other images of its folder "
                f"(interval average of the smallest {self.fraction:.0%}), suggested NOK cut = median + "
                f"{self.cut_k:g} robust sd of the folder's reference scores (no calibrated threshold)")

    # ------------------------------------------------------------------ features
    def _read(self, files: Sequence[ArchiveFile]) -> list[tuple[np.ndarray | None, str, str | None]]:
        """Decode files: per file ``(image or None, fast_hash or "", error message or None)``."""
        out = []
        for f in files:
            try:
                h = fast_hash(f.path, f.size)
            except OSError as exc:
                out.append((None, "", f"{f.path}: cannot be read ({exc.strerror or exc}); check the file and "
                                      f"its permissions, then run the audit again."))
                continue
            try:
                out.append((read_image(f.path), h, None))
            except ImageReadError as exc:
                out.append((None, h, str(exc)))
        return out

    def _extract(self, images: list[np.ndarray]) -> torch.Tensor:
        return self.backbone.extract(self.pre.batch(images))

    def _score(self, feats: torch.Tensor, refs: torch.Tensor, exclude: int | None) -> tuple[np.ndarray, float]:
        grid = mutual_patch_scores(feats, refs, exclude=exclude, fraction=self.fraction)
        return grid, image_score(grid, "top_mean", self.top_fraction)

    # ------------------------------------------------------------------ group scoring
    def prepare_group(self, files: Sequence[ArchiveFile]) -> "GroupContext":
        """Read and extract the references of one group, score them against each other, set the cut.

        Args:
            files: every image file of one group (the reference sample is drawn from all of them).
        Returns:
            the group's :class:`GroupContext` (holds ``(R, h, w, D) float32`` reference features).
        """
        files = list(files)
        group = files[0].group if files else ""
        ref_files = [files[i] for i in pick_references([f.rel for f in files], self.references, self.seed)]
        ctx = GroupContext(group)
        feats = []
        for s in range(0, len(ref_files), self.batch_size):
            chunk = ref_files[s:s + self.batch_size]
            got = self._read(chunk)
            ims = [im for im, _, _ in got if im is not None]
            f = self._extract(ims) if ims else None
            j = 0
            for file, (im, h, err) in zip(chunk, got):
                if im is None:
                    ctx.known[file.path] = (h, err, None, None)
                    continue
                feats.append(f[j])
                ctx.known[file.path] = (h, None, im.shape[:2], len(feats) - 1)
                j += 1
            if self.progress is not None:
                self.progress(min(s + self.batch_size, len(ref_files)), len(ref_files), f"references {group or '.'}")
        ctx.refs = torch.stack(feats) if feats else None
        n_refs = len(feats)
        if n_refs >= MIN_REFS_FOR_CUT:
            for k in range(n_refs):
                ctx.ref_scores[k] = self._score(ctx.refs[k], ctx.refs, k)
            ctx.cut = robust_cut([sc for _, sc in ctx.ref_scores.values()], self.cut_k)
        self.cuts[group] = ctx.cut
        return ctx

    def _record(self, ctx: "GroupContext", file: ArchiveFile, h: str, hw, feat: torch.Tensor | None,
                exclude: int | None) -> AuditRecord:
        n_refs = 0 if ctx.refs is None else ctx.refs.shape[0]
        if n_refs - (exclude is not None) < 1:
            return AuditRecord.failed(file, f"{file.path}: no other readable image in its folder "
                                            f"{ctx.group or '(root)'!r} to compare with; the audit without --model "
                                            f"needs at least 2 images per folder (or give --model RECIPE).", h)
        grid, score = ctx.ref_scores[exclude] if exclude in ctx.ref_scores else self._score(feat, ctx.refs, exclude)
        verdict = None if ctx.cut is None else ("NOK" if score >= ctx.cut else "OK")
        return AuditRecord(file.path, file.root, file.rel, file.group, file.size, file.mtime_ns, h, "scored",
                           score=score, verdict=verdict, height=int(hw[0]), width=int(hw[1]), anomaly_grid=grid)

    def score_files(self, ctx: "GroupContext", files: Sequence[ArchiveFile]) -> list[AuditRecord]:
        """Records of some files of the group ``ctx`` was prepared for, in order (one backbone pass
        for those that are not references; references reuse their features and scores)."""
        t0 = time.perf_counter()
        fresh = [f for f in files if f.path not in ctx.known]
        got = dict(zip((f.path for f in fresh), self._read(fresh)))
        ims = [got[f.path][0] for f in fresh if got[f.path][0] is not None]
        fe = self._extract(ims) if ims else None
        fresh_feat, j = {}, 0
        for f in fresh:
            if got[f.path][0] is not None:
                fresh_feat[f.path] = fe[j]
                j += 1
        out = []
        for f in files:
            if f.path in ctx.known:
                h, err, hw, k = ctx.known[f.path]
                out.append(AuditRecord.failed(f, err, h) if err else self._record(ctx, f, h, hw, ctx.refs[k], k))
            else:
                im, h, err = got[f.path]
                out.append(AuditRecord.failed(f, err, h) if err else
                           self._record(ctx, f, h, im.shape[:2], fresh_feat[f.path], None))
        per_image = (time.perf_counter() - t0) * 1000 / max(1, len(files))
        for r in out:
            if r.status == "scored":
                r.latency_ms = per_image
        return out

    def score_group(self, files: Sequence[ArchiveFile], is_done: Callable[[ArchiveFile], bool] | None = None
                    ) -> Iterator[list[AuditRecord]]:
        """Score the files of one group that are not done yet, against the group's references.

        Args:
            files: every file of one group (done ones included: the reference sample is drawn
                from all of them), in scan order.
            is_done: ``is_done(file) -> True`` skips a file (the store has it unchanged).
        Yields:
            lists of :class:`AuditRecord` (at most ``batch_size`` each; errors are records with
            status ``"error"``, never raised), in ``files`` order.
        """
        files = list(files)
        todo = [f for f in files if is_done is None or not is_done(f)]
        if not todo:
            return
        ctx = self.prepare_group(files)
        for s in range(0, len(todo), self.batch_size):
            yield self.score_files(ctx, todo[s:s + self.batch_size])

    # ------------------------------------------------------------------ BatchScorer
    def score_batch(self, files: list[ArchiveFile]) -> list[AuditRecord]:
        """:class:`engine.audit.scoring.BatchScorer`: records of ``files`` (any groups, any order).

        Each file's group (the folder ``root/group`` that directly holds it) is listed
        (:func:`group_files`) and prepared once (:meth:`prepare_group`); the last
        ``GROUPS_KEPT`` prepared groups are kept, so a scan that meets a folder's files on both
        sides of a sub-folder does not prepare it twice. A record depends only on its file and its
        group's references, never on its batch mates.
        """
        out: list[AuditRecord] = []
        s = 0
        while s < len(files):
            e = s
            key = (files[s].root, files[s].group)
            while e < len(files) and (files[e].root, files[e].group) == key:
                e += 1
            ctx = self._groups.pop(key, None)
            if ctx is None:
                ctx = self.prepare_group(group_files(*key))
            self._groups[key] = ctx  # most recently used last
            while len(self._groups) > GROUPS_KEPT:
                self._groups.pop(next(iter(self._groups)))
            out.extend(self.score_files(ctx, files[s:e]))
            s = e
        return out


class GroupContext:
    """A prepared group: reference features, what is known of the reference files, their scores, the cut.

    Attributes:
        group: the group's name (``ArchiveFile.group``).
        refs: ``(R, h, w, D) float32`` features of the readable references, or None (none readable).
        known: reference path -> ``(fast_hash, error or None, (H, W) or None, index into refs or None)``.
        ref_scores: index -> ``((h, w) float32 grid, image score)`` (when the cut was computed).
        cut: the suggested NOK cut, or None (fewer than ``MIN_REFS_FOR_CUT`` references).
    """

    def __init__(self, group: str):
        self.group = group
        self.refs: torch.Tensor | None = None
        self.known: dict[str, tuple] = {}
        self.ref_scores: dict[int, tuple[np.ndarray, float]] = {}
        self.cut: float | None = None


def group_files(root: str, group: str) -> list[ArchiveFile]:
    """The image files directly in ``root/group`` (as :class:`engine.audit.scan.ArchiveScan` would
    yield them: sorted by name, image suffixes only, regular files), without walking sub-folders.
    Unreadable entries are left out (the scan records them)."""
    folder = os.path.join(root, group) if group else root
    out = []
    try:
        with os.scandir(folder) as it:
            names = sorted(e.name for e in it)
    except OSError:
        return out
    for name in names:
        path = os.path.join(folder, name)
        if os.path.splitext(name)[1].lower() not in IMAGE_SUFFIXES:
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            out.append(ArchiveFile(path, root, f"{group}/{name}" if group else name, group, st.st_size,
                                   st.st_mtime_ns))
    return out
