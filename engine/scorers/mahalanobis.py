"""Mahalanobis-prototype scorer with a PCA reconstruction residual.

Normal patch features are summarised by a few Gaussians instead of a memory bank:

1. **PCA** (fitted on the normal patches): centre with the mean ``m`` and keep the top ``p``
   principal directions ``V_p`` (``pca_dim``: a count, or a fraction of explained variance).
2. **Prototypes**: k-means (scikit-learn; ``MiniBatchKMeans`` above ``minibatch_above`` patches)
   groups the projected patches ``y = V_p^T (x - m)`` into ``K`` clusters.
3. **Per-prototype Gaussian**: mean ``mu_k`` and a shrinkage covariance ``Sigma_k`` (Ledoit-Wolf or
   OAS, scikit-learn), so clusters with few samples stay well-conditioned. A cluster with fewer than
   2 members borrows the pooled covariance of all patches.

Scores of a patch ``x`` (all are distances: higher = more anomalous):

* cluster: ``d_M(y) = sqrt(S_k(y))`` with ``S_k(y) = (y - mu_k)^T Sigma_k^-1 (y - mu_k)`` for the
  best-matching prototype ``k``. ``assign="mahalanobis"`` (default) picks ``k = argmin_k S_k(y)``;
  ``"euclidean"`` picks the nearest ``mu_k``; ``"likelihood"`` picks the most likely Gaussian,
  ``argmin_k S_k(y) + log det Sigma_k``. (docs/SWEEP.md records the measured comparison.)
* residual (DFM-style feature reconstruction, Ahuja et al. 2019): the distance of ``x`` from the
  normal subspace, ``r(x) = ||(x - m) - V_d V_d^T (x - m)||`` with ``V_d`` the top ``d`` components
  (``residual_dim``; default ``d = p``, so the cluster score sees what lies inside the subspace and
  the residual what lies outside it).
* combined (``combine="sum"`` or ``"max"``): each of the two is standardised on the normal fit
  patches, ``z = (s - mean) / std``, then summed or max'ed. ``combine="cluster"`` / ``"residual"``
  returns that score alone, unstandardised.

Scoring uses precomputed whitening matrices ``W_k = L_k^-1`` (Cholesky ``Sigma_k = L_k L_k^T``),
so ``S_k(y) = ||W_k y - W_k mu_k||^2`` for all ``K`` prototypes is one matrix product of all the
batch's patches with the stacked ``W_k`` (``(P, p) @ (p, K p)``), on the scorer's device (CUDA when
available). The saved state is small: the PCA mean and basis, ``K`` means and ``K`` covariances
(their lower triangles: ``K p (p + 1) / 2`` numbers).

Usage::

    scorer = MahalanobisScorer(n_prototypes=16, pca_dim=64)
    scorer.fit(train_feats)             # (N, h, w, D) float32
    patch_scores = scorer.score(feats)  # (B, h, w) float32

See also: :mod:`engine.scorers.knn` (memory bank), :mod:`engine.scorers.padim` (per-position
Gaussians, which reuse :func:`whitening_factors` and :func:`whitened_sq_dist`).
"""

from __future__ import annotations

import numpy as np
import torch

from .base import ProgressFn, Scorer

ASSIGN_RULES = ("mahalanobis", "euclidean", "likelihood")
COMBINE_RULES = ("sum", "max", "cluster", "residual")
SHRINKAGE = ("ledoit_wolf", "oas")
_CHUNK_BYTES = 64 * 2**20  # working memory of one scoring chunk
_FIT_ROWS = 65536  # patches per chunk while fitting
_STATS_PATCHES = 200_000  # normal patches used to standardise the two scores


def _chunks(x: "torch.Tensor | _PatchRows", device: torch.device):
    """``(N, D)`` rows in chunks of :data:`_FIT_ROWS`, as float32 on ``device``."""
    if isinstance(x, _PatchRows):
        yield from x.chunks()
        return
    for start in range(0, x.shape[0], _FIT_ROWS):
        yield x[start : start + _FIT_ROWS].to(device, torch.float32)


class _PatchRows:
    """The patch rows ``(n, D)`` of some images of ``(N, h, w, D)`` features, without copying them.

    ``images=None`` is every image: then chunks are exactly those of the flat array (same sums as
    before this class existed); otherwise each chunk gathers whole images, about :data:`_FIT_ROWS`
    rows at a time. ``patch_mask`` ``(N, h, w) bool`` keeps only the patches where it is True (a
    region of interest): the chunks then gather those rows, :data:`_FIT_ROWS` at a time.
    """

    def __init__(self, features: torch.Tensor, images: np.ndarray | None, device: torch.device,
                 patch_mask: np.ndarray | None = None):
        self.flat = features.reshape(-1, features.shape[-1])  # a view of contiguous features
        self.hw = int(np.prod(features.shape[1:-1]))
        self.images = None if images is None else np.asarray(images, np.int64)
        self.device = device
        self.d = int(features.shape[-1])
        self.n = self.flat.shape[0] if images is None else len(self.images) * self.hw
        self.selected: np.ndarray | None = None  # flat row indices kept by the patch mask
        if patch_mask is not None:
            imgs = np.arange(len(features)) if self.images is None else self.images
            keep = np.asarray(patch_mask, bool).reshape(len(features), self.hw)[imgs].ravel()
            self.selected = (imgs[:, None] * self.hw + np.arange(self.hw)[None, :]).ravel()[keep]
            self.n = len(self.selected)

    def chunks(self):
        if self.selected is not None:
            for s in range(0, self.n, _FIT_ROWS):
                yield self.flat[torch.from_numpy(self.selected[s : s + _FIT_ROWS])].to(self.device, torch.float32)
            return
        if self.images is None:
            yield from _chunks(self.flat, self.device)
            return
        per = max(1, _FIT_ROWS // max(1, self.hw))
        for s in range(0, len(self.images), per):
            yield self.rows_of_images(self.images[s : s + per])

    def rows_of_images(self, imgs: np.ndarray) -> torch.Tensor:
        idx = (imgs[:, None] * self.hw + np.arange(self.hw)[None, :]).ravel()
        return self.flat[torch.from_numpy(idx)].to(self.device, torch.float32)

    def rows(self, r: np.ndarray) -> torch.Tensor:
        """Rows ``r`` (indices into the ``n`` selected rows), gathered as ``(len(r), D)``."""
        r = np.asarray(r, np.int64)
        if self.selected is not None:
            r = self.selected[r]
        elif self.images is not None:
            r = self.images[r // self.hw] * self.hw + r % self.hw
        return self.flat[torch.from_numpy(r)]


def whitening_factors(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whitening matrices of covariances.

    Args:
        cov: ``(..., p, p)`` symmetric positive-definite covariances.
    Returns:
        ``(W, logdet)``: ``(..., p, p) float32`` lower-triangular ``W = L^-1`` with
        ``cov = L L^T`` (so ``x^T cov^-1 x = ||W x||^2``), and ``(...,) float64`` ``log det cov``.
    Raises:
        numpy.linalg.LinAlgError: a covariance is not positive-definite.
    """
    c = np.asarray(cov, np.float64)
    low = np.linalg.cholesky(c)
    eye = np.broadcast_to(np.eye(c.shape[-1]), c.shape)
    w = np.linalg.solve(low, eye)  # L^-1, lower-triangular
    logdet = 2.0 * np.log(np.diagonal(low, axis1=-2, axis2=-1)).sum(-1)
    return w.astype(np.float32), logdet


def whitened_sq_dist(y: torch.Tensor, w: torch.Tensor, wmu: torch.Tensor) -> torch.Tensor:
    """Squared Mahalanobis distances of points to each of ``K`` Gaussians.

    Args:
        y: ``(P, p) float32`` points.
        w: ``(K, p, p) float32`` whitening matrices ``W_k`` (:func:`whitening_factors`).
        wmu: ``(K, p) float32`` whitened means ``W_k mu_k``.
    Returns:
        ``(P, K) float32`` ``S_k(y) = ||W_k y - W_k mu_k||^2``, computed in chunks of rows.
    """
    k, p, _ = w.shape
    stacked = w.reshape(k * p, p).T  # (p, K p): column block k is W_k^T
    shift = -wmu.reshape(1, k * p)
    rows = max(1, _CHUNK_BYTES // (4 * k * p))
    out = []
    for start in range(0, y.shape[0], rows):
        z = torch.addmm(shift, y[start : start + rows], stacked)  # W_k y - W_k mu_k, all k at once
        out.append(z.square_().view(-1, k, p).sum(-1))
    return torch.cat(out) if out else y.new_zeros((0, k))


def _pick_dim(explained: np.ndarray, dim: int | float | None) -> int:
    """Number of principal components for ``dim`` (count, variance fraction in (0, 1), or None=all)."""
    n = len(explained)
    if dim is None:
        return n
    if isinstance(dim, float) and 0 < dim < 1:
        frac = np.cumsum(explained) / max(float(explained.sum()), 1e-30)
        return int(min(n, np.searchsorted(frac, dim) + 1))
    if int(dim) < 1:
        raise ValueError(f"PCA dimension must be >= 1 or a fraction in (0, 1), got {dim}")
    return int(min(n, int(dim)))


def _shrunk_cov(y: np.ndarray, method: str) -> np.ndarray:
    from sklearn.covariance import ledoit_wolf, oas

    fn = ledoit_wolf if method == "ledoit_wolf" else oas
    cov = fn(y.astype(np.float64))[0]
    # a tiny ridge keeps Cholesky safe when features are (numerically) rank-deficient
    return cov + np.eye(cov.shape[0]) * (1e-6 * max(np.trace(cov) / cov.shape[0], 1e-12))


class MahalanobisScorer(Scorer):
    """Gaussian prototypes in a PCA subspace + reconstruction residual (module docstring).

    Args:
        n_prototypes: ``K``, number of k-means prototypes (>= 1).
        pca_dim: components kept for clustering: an int, a float in (0, 1) = explained-variance
            fraction, or None = all ``D``.
        residual_dim: components of the normal subspace of the residual; None = same as ``pca_dim``.
        combine: ``"sum"`` | ``"max"`` of the standardised cluster and residual scores, or
            ``"cluster"`` | ``"residual"`` alone.
        assign: prototype choice, ``"mahalanobis"`` | ``"euclidean"`` | ``"likelihood"``.
        shrinkage: ``"ledoit_wolf"`` | ``"oas"``.
        minibatch_above: use ``MiniBatchKMeans`` when there are more fit patches than this.
        seed: k-means seed.
        device: where scoring runs; None = CUDA when available, else CPU (not saved in the state).
    """

    name = "mahalanobis"

    def __init__(self, n_prototypes: int = 16, pca_dim: int | float | None = 64, residual_dim: int | None = None,
                 combine: str = "sum", assign: str = "mahalanobis", shrinkage: str = "ledoit_wolf",
                 minibatch_above: int = 50_000, seed: int = 0, device: str | None = None):
        super().__init__()
        if int(n_prototypes) < 1:
            raise ValueError(f"n_prototypes must be >= 1, got {n_prototypes}")
        for val, allowed, what in ((combine, COMBINE_RULES, "combine"), (assign, ASSIGN_RULES, "assign"),
                                   (shrinkage, SHRINKAGE, "shrinkage")):
            if val not in allowed:
                raise ValueError(f"{what} must be one of {allowed}, got {val!r}")
        if pca_dim is not None and not (isinstance(pca_dim, float) and 0 < pca_dim < 1) and int(pca_dim) < 1:
            raise ValueError(f"pca_dim must be >= 1, a fraction in (0, 1) or None, got {pca_dim}")
        self.n_prototypes, self.pca_dim, self.residual_dim = int(n_prototypes), pca_dim, residual_dim
        self.combine, self.assign, self.shrinkage = combine, assign, shrinkage
        self.minibatch_above, self.seed = int(minibatch_above), int(seed)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.arrays: dict[str, np.ndarray] = {}
        self._t: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ fit
    def fit(self, features: torch.Tensor, progress: ProgressFn | None = None,
            patch_mask: np.ndarray | None = None) -> None:
        self.fit_images(features, None, progress, patch_mask)

    def fit_images(self, features: torch.Tensor, images: np.ndarray | None,
                   progress: ProgressFn | None = None, patch_mask: np.ndarray | None = None) -> None:
        """:meth:`fit` on the images ``images`` of ``(N, h, w, D) float32`` features (None: all),
        read in place a chunk of images at a time: no copy of the feature array (cross-fit folds).
        ``patch_mask`` ``(N, h, w) bool``: only those patches are learned (None: all).

        Reports ``progress(done, 4, "mahalanobis: <step running>")`` from 0 to 4 (:class:`_Steps`).
        """
        patches = _PatchRows(features, images, self.device, patch_mask)
        x = patches
        n, d_in = patches.n, patches.d
        if n < 2:
            raise ValueError(f"need at least 2 normal patches to fit, got {n}")
        step = _Steps(progress, ("pca", "k-means", "covariances", "standardise"))
        # mean and covariance in float64, a chunk of rows at a time (memory stays ~ D^2)
        total = torch.zeros(d_in, dtype=torch.float64, device=self.device)
        for c in _chunks(x, self.device):
            total += c.double().sum(0)
        del c  # a gathered chunk (fold fits) must not live on into the next pass
        mean = total / n
        cov = torch.zeros(d_in, d_in, dtype=torch.float64, device=self.device)
        for c in _chunks(x, self.device):
            cd = c.double() - mean
            cov += cd.T @ cd
        del c, cd
        cov /= n - 1
        evals, evecs = torch.linalg.eigh(cov)  # ascending
        evals, evecs = evals.flip(0).clamp_min(0).cpu().numpy(), evecs.flip(1).float()
        p = _pick_dim(evals, self.pca_dim)
        d = p if self.residual_dim is None else _pick_dim(evals, self.residual_dim)
        basis = evecs[:, : max(p, d)].contiguous()
        mean = mean.float()
        y = torch.cat([(c - mean) @ basis[:, :p] for c in _chunks(x, self.device)]).cpu().numpy()
        step("pca")

        k = min(self.n_prototypes, n)
        labels, centres = self._kmeans(y, k)
        step("k-means")

        pooled = _shrunk_cov(y, self.shrinkage)
        covs = np.empty((k, p, p))
        for j in range(k):
            members = y[labels == j]
            covs[j] = _shrunk_cov(members, self.shrinkage) if len(members) >= 2 else pooled
            if len(members) >= 2:
                centres[j] = members.mean(0)
        step("covariances")

        self.arrays = {"mean": mean.cpu().numpy(), "basis": basis.cpu().numpy(),
                       "explained_variance": evals[: max(p, d)].astype(np.float32),
                       "centres": centres.astype(np.float32), "covariances": covs.astype(np.float32),
                       "score_stats": np.zeros(4, np.float32)}
        self._prepare(p, d)
        # standardisation statistics on (at most _STATS_PATCHES of) the normal fit patches
        sub = x if n <= _STATS_PATCHES else \
            patches.rows(np.random.default_rng(self.seed).choice(n, _STATS_PATCHES, replace=False))
        parts = [self._raw_scores(c) for c in _chunks(sub, self.device)]
        cl, res = torch.cat([a for a, _ in parts]), torch.cat([b for _, b in parts])
        self.arrays["score_stats"] = np.array([cl.mean().item(), cl.std().item(), res.mean().item(),
                                               res.std().item()], np.float32)
        step("standardise")

    def _kmeans(self, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.cluster import KMeans, MiniBatchKMeans

        if k == 1:
            return np.zeros(len(y), np.int64), y.mean(0, keepdims=True).astype(np.float64)
        if len(y) > self.minibatch_above:
            km = MiniBatchKMeans(n_clusters=k, batch_size=4096, n_init=3, random_state=self.seed)
        else:
            km = KMeans(n_clusters=k, n_init=3, random_state=self.seed)
        labels = km.fit_predict(y)
        return labels, km.cluster_centers_.astype(np.float64)

    def _prepare(self, p: int, d: int) -> None:
        """Whitening factors and device tensors from :attr:`arrays` (after fit or load)."""
        a = self.arrays
        w, logdet = whitening_factors(a["covariances"])
        wmu = np.einsum("kij,kj->ki", w.astype(np.float64), a["centres"].astype(np.float64))
        dev = self.device
        self._t = {"mean": torch.from_numpy(a["mean"]).to(dev), "proj": torch.from_numpy(a["basis"][:, :p]).to(dev),
                   "res": torch.from_numpy(np.ascontiguousarray(a["basis"][:, :d])).to(dev),
                   "w": torch.from_numpy(w).to(dev), "wmu": torch.from_numpy(wmu.astype(np.float32)).to(dev),
                   "centres": torch.from_numpy(a["centres"]).to(dev),
                   "logdet": torch.from_numpy(logdet.astype(np.float32)).to(dev)}
        self.dims = (p, d)
        self.fitted = True

    # ------------------------------------------------------------------ score
    def cluster_sq_distances(self, x: torch.Tensor) -> torch.Tensor:
        """``(P, D) float32`` features -> ``(P, K)`` squared Mahalanobis distances ``S_k`` in PCA space."""
        y = (x.to(self.device, torch.float32) - self._t["mean"]) @ self._t["proj"]
        return whitened_sq_dist(y, self._t["w"], self._t["wmu"])

    def _raw_scores(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(P, D)`` -> cluster distance ``sqrt(S_k*)`` and residual ``r`` (module docstring), each ``(P,)``."""
        t = self._t
        xc = x.to(self.device, torch.float32) - t["mean"]
        sq = whitened_sq_dist(xc @ t["proj"], t["w"], t["wmu"])
        if self.assign == "mahalanobis":
            best = sq.min(1).values
        else:
            if self.assign == "likelihood":
                k = (sq + t["logdet"]).argmin(1)
            else:
                k = torch.cdist(xc @ t["proj"], t["centres"]).argmin(1)
            best = sq.gather(1, k[:, None])[:, 0]
        cl = best.clamp_min(0).sqrt()
        res = (xc - (xc @ t["res"]) @ t["res"].T).norm(dim=1) if t["res"].shape[1] < xc.shape[1] else \
            torch.zeros_like(cl)
        return cl, res

    def _score(self, features: torch.Tensor) -> torch.Tensor:
        b, h, w, d = features.shape
        if d != self.arrays["mean"].shape[0]:
            raise ValueError(f"features have D={d}, the scorer was fitted on D={self.arrays['mean'].shape[0]}")
        cl, res = self._raw_scores(features.reshape(-1, d))
        if self.combine == "cluster":
            s = cl
        elif self.combine == "residual":
            s = res
        else:
            m_c, s_c, m_r, s_r = (float(v) for v in self.arrays["score_stats"])
            z_c = (cl - m_c) / max(s_c, 1e-12)
            z_r = (res - m_r) / max(s_r, 1e-12)
            s = z_c + z_r if self.combine == "sum" else torch.maximum(z_c, z_r)
        return s.reshape(b, h, w).float().cpu()

    # ------------------------------------------------------------------ state
    def get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        cfg = {"n_prototypes": self.n_prototypes, "pca_dim": self.pca_dim, "residual_dim": self.residual_dim,
               "combine": self.combine, "assign": self.assign, "shrinkage": self.shrinkage,
               "minibatch_above": self.minibatch_above, "seed": self.seed}
        if not self.fitted:
            return cfg, {}
        cfg["fitted_dims"] = list(self.dims)
        arrays = {k: v for k, v in self.arrays.items() if k != "covariances"}
        # covariances are symmetric: the lower triangle, row by row, is all that is stored
        rows, cols = np.tril_indices(self.dims[0])
        arrays["covariances_tril"] = np.ascontiguousarray(self.arrays["covariances"][:, rows, cols])
        return cfg, arrays

    @classmethod
    def from_state(cls, config: dict, arrays: dict[str, np.ndarray]) -> "MahalanobisScorer":
        cfg = dict(config)
        p, d = cfg.pop("fitted_dims")
        s = cls(**cfg)
        s.arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items() if k != "covariances_tril"}
        tril = np.asarray(arrays["covariances_tril"], np.float32)
        rows, cols = np.tril_indices(int(p))
        cov = np.zeros((len(tril), int(p), int(p)), np.float32)
        cov[:, rows, cols] = tril
        cov[:, cols, rows] = tril
        s.arrays["covariances"] = cov
        s._prepare(int(p), int(d))
        return s


class _Steps:
    """Progress of the fit's steps as one stage, ``"mahalanobis"``: ``progress(0, n, "mahalanobis:
    <first step>")`` at the start, then after each step ``progress(i, n, "mahalanobis: <next step>")``
    and finally ``progress(n, n, "mahalanobis: done")`` (the text after the colon names the step
    running; the count never goes back)."""

    def __init__(self, progress: ProgressFn | None, names: tuple[str, ...]):
        self.progress, self.names, self.done = progress, names, 0
        if progress is not None:
            progress(0, len(names), f"mahalanobis: {names[0]}")

    def __call__(self, finished: str) -> None:
        assert finished == self.names[self.done], (finished, self.names[self.done])
        self.done += 1
        if self.progress is not None:
            nxt = self.names[self.done] if self.done < len(self.names) else "done"
            self.progress(self.done, len(self.names), f"mahalanobis: {nxt}")


__all__ = ["MahalanobisScorer", "whitened_sq_dist", "whitening_factors"]
