"""k-NN memory bank scorer (PatchCore, Roth et al., CVPR 2022; AnomalyDINO, Damm et al., WACV 2025).

Fit: all normal patch features form a memory bank, subsampled by greedy k-center coreset
(:mod:`engine.scorers.coreset`) to ``coreset_ratio`` of its size, at most ``max_bank`` patches.
Greedy selection costs O(N k); for large training sets (e.g. 900 images x 1024 patches) the
candidates are first thinned to ``max_candidates`` patches drawn uniformly at random, then the
greedy coreset is taken from them (documented trade-off: coverage of rare normal patterns
absent from the random draw is lost). Score: a patch's anomaly score is
its distance to the nearest bank entry (mean over the ``k`` nearest when ``k > 1``), searched with
faiss: exactly (``IndexFlatL2`` / ``IndexFlatIP``, ``index="flat"``) or with an inverted file
(``IndexIVFFlat``, ``index="ivf"``: the bank is split into ``nlist ~ 2 sqrt(M)`` k-means cells
and only the ``nprobe`` nearest cells are searched). ``index="auto"`` (default) uses IVF for
banks of 8,192 patches or more. On bottle features (200 train images, 20,480-patch coreset,
2 CPU cores) nprobe=4 (default) returned nearest-neighbour distances within 2.6e-4 mean relative
error of exact search (99th percentile 6e-3) in 9 ms per 1,024-patch image against 50 ms for exact
search; nprobe=8 gave 8e-5 in 12.6 ms. ``benchmarks/fit_speed.py`` measures it.

Metrics: ``"l2"`` = Euclidean distance (PatchCore); ``"cosine"`` = 1 - cosine similarity
(AnomalyDINO; features L2-normalised before search).

Usage::

    scorer = KnnScorer(coreset_ratio=0.1)
    scorer.fit(train_feats)            # (N, h, w, D) float32
    patch_scores = scorer.score(feats)  # (B, h, w) float32
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from .base import ProgressFn, Scorer
from .coreset import greedy_coreset

METRICS = ("l2", "cosine")


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class KnnScorer(Scorer):
    """Nearest-neighbour distance to a coreset-subsampled memory bank (module docstring).

    Args:
        coreset_ratio: fraction of the bank kept, in (0, 1]; 1 keeps every patch.
        k: neighbours averaged (1 = PatchCore / AnomalyDINO).
        metric: ``"l2"`` or ``"cosine"``.
        proj_dim: random-projection dimension used only to *select* the coreset.
        max_bank: cap on the coreset size (patches); None = no cap.
        max_candidates: cap on the patches the coreset is selected from (random thinning).
        seed: seed of the coreset's first centre and projection.
        index: ``"auto"``, ``"flat"`` (exact) or ``"ivf"`` (module docstring).
        nprobe: IVF cells searched per query.
        device: where :meth:`score` searches: ``"auto"`` (default) = exact brute-force search with torch
            on CUDA when a GPU is present (the bank is uploaded once; 1,024 queries against 30,000
            patches is ~0.02 TFLOP), else faiss on the CPU; ``"cpu"`` forces faiss. Not stored in
            model files (a runtime choice).
    """

    name = "knn"

    def __init__(self, coreset_ratio: float = 0.1, k: int = 1, metric: str = "l2", proj_dim: int = 64,
                 max_bank: int | None = 30000, max_candidates: int | None = 300000, seed: int = 0,
                 index: str = "auto", nprobe: int = 4, device: str | None = "auto"):
        super().__init__()
        if not 0 < coreset_ratio <= 1:
            raise ValueError(f"coreset_ratio must be in (0, 1], got {coreset_ratio}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.coreset_ratio, self.k, self.metric = float(coreset_ratio), int(k), metric
        if index not in ("auto", "flat", "ivf"):
            raise ValueError(f"index must be 'auto', 'flat' or 'ivf', got {index!r}")
        self.proj_dim, self.max_bank, self.seed = int(proj_dim), max_bank, int(seed)
        self.max_candidates = max_candidates
        self.index, self.nprobe = index, int(nprobe)
        self.memory_bank: np.ndarray | None = None
        self._index = None
        if device in (None, "auto"):
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self._bank_t: torch.Tensor | None = None  # the bank on self.device (torch search)
        self._bank_sq: torch.Tensor | None = None  # its squared norms

    def _flat(self, features: torch.Tensor, patch_mask: np.ndarray | None = None) -> np.ndarray:
        """``(N, h, w, D)`` features -> ``(M, D) float32`` bank rows (only where ``patch_mask`` is True)."""
        bank = features.reshape(-1, features.shape[-1]).numpy()
        if patch_mask is not None:
            bank = bank[np.asarray(patch_mask, bool).reshape(-1)]
        bank = np.ascontiguousarray(bank, dtype=np.float32)
        return _normalise(bank) if self.metric == "cosine" else bank

    def _coreset(self, bank: np.ndarray, share: float, rng: np.random.Generator,
                 progress: ProgressFn | None = None) -> np.ndarray:
        """The coreset of ``(M, D)`` patches: ``coreset_ratio`` of them, with ``share`` (in (0, 1]) of
        the ``max_bank`` / ``max_candidates`` caps (a fold's part of the whole bank)."""
        n_keep = max(1, int(round(len(bank) * self.coreset_ratio)))
        if self.max_bank:
            n_keep = min(n_keep, max(1, int(self.max_bank * share)))
        cand = None if not self.max_candidates else max(int(self.max_candidates * share), n_keep)
        if n_keep < len(bank) and cand and len(bank) > cand:
            keep = np.sort(rng.choice(len(bank), size=cand, replace=False))
            bank = np.ascontiguousarray(bank[keep])
        if n_keep < len(bank):
            start = int(rng.integers(len(bank)))
            idx = greedy_coreset(bank, n_keep, start=start, proj_dim=self.proj_dim, seed=self.seed,
                                 progress=progress)
            bank = np.ascontiguousarray(bank[np.sort(idx)])
        return bank

    def fit(self, features: torch.Tensor, progress: ProgressFn | None = None,
            patch_mask: np.ndarray | None = None) -> None:
        bank = self._flat(features, patch_mask)
        if not len(bank):
            raise ValueError("no patch to learn: the patch mask selects none")
        self._set_bank(self._coreset(bank, 1.0, np.random.default_rng(self.seed), progress))

    def fold_coresets(self, features: torch.Tensor, folds: list[np.ndarray], progress: ProgressFn | None = None,
                      patch_mask: np.ndarray | None = None) -> list[np.ndarray]:
        """One coreset per fold, as :meth:`cross_fit` selects them: ``[(M_f, D) float32, ...]``;
        only the patches where ``patch_mask`` ``(N, h, w) bool`` is True (None: all).

        Raises:
            ValueError: folds that do not partition the images.
        """
        from .base import _check_folds

        n = len(features)
        _check_folds(folds, n)
        rng = np.random.default_rng(self.seed)
        parts = []
        if progress is not None:
            progress(0, len(folds), "fold coresets")
        for f, hold in enumerate(folds):
            hold = np.sort(hold)
            mask = None if patch_mask is None else np.asarray(patch_mask)[hold]
            parts.append(self._coreset(self._flat(features[torch.from_numpy(hold)], mask), len(hold) / n, rng))
            if progress is not None:
                progress(f + 1, len(folds), "fold coresets")
        return parts

    def cross_fit(self, features: torch.Tensor, folds: list[np.ndarray], progress: ProgressFn | None = None,
                  patch_mask: np.ndarray | None = None) -> Iterator[tuple[int, "KnnScorer"]]:
        """K-fold cross-fitting with one coreset selection per fold (composable coresets).

        Each fold's patches get their own greedy coreset (``coreset_ratio`` of them, the caps split
        by the fold's share of the images); the scorer of fold ``f`` searches the union of the
        *other* folds' coresets and the final bank is the union of all K. Greedy selection costs
        about ``N^2 ratio D`` for N patches, so K selections on N/K patches each cost 1/K of one
        selection on all of them -- instead of K + 1 full selections. A union of per-part k-center
        coresets covers the whole bank within the largest per-part covering radius (composable
        core-sets, Indyk et al., PODS 2014); ``docs/CROSS_FIT_CORESET.md`` compares its accuracy with the
        single coreset of :meth:`fit`. The fold scorers' banks are the final bank minus one fold's
        part, so cross-fitted scores differ from the final model's only by what that fold adds.

        Yields / raises: as :meth:`Scorer.cross_fit`.
        """
        parts = self.fold_coresets(features, folds, progress, patch_mask)
        for f in range(len(folds)):
            sc = KnnScorer(**self.get_state()[0])
            sc.device = self.device
            sc._set_bank(np.ascontiguousarray(np.concatenate([p for g, p in enumerate(parts) if g != f])))
            yield f, sc
        self._set_bank(np.ascontiguousarray(np.concatenate(parts)))

    def _set_bank(self, bank: np.ndarray) -> None:
        import faiss

        self.memory_bank = bank
        m, d = bank.shape
        metric = faiss.METRIC_INNER_PRODUCT if self.metric == "cosine" else faiss.METRIC_L2
        use_ivf = self.index == "ivf" or (self.index == "auto" and m >= 8192)
        nlist = int(min(m // 39, round(2 * np.sqrt(m))))
        if use_ivf and nlist >= 2:
            quantizer = faiss.IndexFlat(d, metric)
            index = faiss.IndexIVFFlat(quantizer, d, nlist, metric)
            index.cp.seed = self.seed
            index.train(bank)
            index.nprobe = min(self.nprobe, nlist)
        else:
            index = faiss.IndexFlat(d, metric)
        index.add(bank)
        self._index = index
        self._bank_t = None
        self.fitted = True

    def _score(self, features: torch.Tensor) -> torch.Tensor:
        b, h, w, d = features.shape
        if d != self.memory_bank.shape[1]:
            raise ValueError(f"features have D={d}, the memory bank D={self.memory_bank.shape[1]}")
        k = min(self.k, len(self.memory_bank))
        if self.device.type != "cpu":
            return self.search_torch(features.reshape(-1, d), k).reshape(b, h, w).cpu()
        q = np.ascontiguousarray(features.reshape(-1, d).numpy(), dtype=np.float32)
        if self.metric == "cosine":
            sim, _ = self._index.search(_normalise(q), k)
            dist = 1.0 - sim
        else:
            sq, _ = self._index.search(q, k)
            dist = np.sqrt(np.maximum(sq, 0.0))
        return torch.from_numpy(dist.mean(axis=1).astype(np.float32).reshape(b, h, w))

    @torch.inference_mode()
    def search_torch(self, queries: torch.Tensor, k: int, chunk: int = 8192) -> torch.Tensor:
        """Exact k-NN distances by brute force with torch on :attr:`device` (the GPU path).

        Args:
            queries: ``(N, D) float32`` patch features (any device).
            k: neighbours averaged.
        Returns:
            ``(N,) float32`` on :attr:`device`: mean L2 distance (or ``1 - cosine``) to the ``k`` nearest
            bank patches, the same quantity the faiss path returns (its flat index exactly).
        """
        if self._bank_t is None or self._bank_t.device != self.device:  # uploaded once per bank
            self._bank_t = torch.from_numpy(self.memory_bank).to(self.device)
            self._bank_sq = (self._bank_t * self._bank_t).sum(1)
        bank, bank_sq = self._bank_t, self._bank_sq
        q = queries.to(self.device, torch.float32)
        out = []
        for s in range(0, len(q), chunk):
            x = q[s : s + chunk]
            if self.metric == "cosine":
                x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
                sim = torch.topk(x @ bank.T, k, dim=1).values
                out.append((1.0 - sim).mean(1))
            else:
                d2 = (x * x).sum(1, keepdim=True) - 2.0 * (x @ bank.T) + bank_sq
                nearest = torch.topk(d2, k, dim=1, largest=False).values
                out.append(nearest.clamp_min(0).sqrt().mean(1))
        return torch.cat(out)

    def get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        cfg = {"coreset_ratio": self.coreset_ratio, "k": self.k, "metric": self.metric,
               "proj_dim": self.proj_dim, "max_bank": self.max_bank, "max_candidates": self.max_candidates,
               "seed": self.seed, "index": self.index,
               "nprobe": self.nprobe}
        return cfg, {"memory_bank": self.memory_bank}

    @classmethod
    def from_state(cls, config: dict, arrays: dict[str, np.ndarray]) -> "KnnScorer":
        s = cls(**config)
        s._set_bank(np.ascontiguousarray(arrays["memory_bank"], dtype=np.float32))
        return s
