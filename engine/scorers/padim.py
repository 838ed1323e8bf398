"""PaDiM baseline: one multivariate Gaussian per patch position (Defard et al., ICPR 2021).

Fit: a fixed random subset of ``n_channels`` feature channels is drawn once (the paper's random
dimensionality reduction); at every grid position ``(i, j)`` the ``N`` normal images give a mean
``mu_ij`` and the unbiased covariance ``Sigma_ij + eps I`` (the paper's regulariser, ``eps=0.01``).
Score: the Mahalanobis distance ``sqrt((x - mu_ij)^T Sigma_ij^-1 (x - mu_ij))`` of the patch at
``(i, j)`` to its own position's Gaussian, via precomputed whitening matrices (Cholesky).

Suited to **aligned parts only**: every position has its own model, so the part must sit at the
same place in every image, and the input size / resize mode must be the one used at fit (the grid
``(h, w)`` is checked). Unaligned parts, rotated textures or varying layouts belong to the k-NN or
Mahalanobis-prototype scorers. The state grows as ``h * w * n_channels^2`` (41 MB for a 32 x 32
grid and 100 channels).

Usage::

    scorer = PadimScorer(n_channels=100)
    scorer.fit(train_feats)             # (N, h, w, D) float32, N >= 2
    patch_scores = scorer.score(feats)  # (B, h, w) float32, same (h, w)

See also: :mod:`engine.scorers.mahalanobis` (position-free Gaussian prototypes).
"""

from __future__ import annotations

import numpy as np
import torch

from .base import ProgressFn, Scorer
from .mahalanobis import whitening_factors

_CHUNK_BYTES = 64 * 2**20


class PadimScorer(Scorer):
    """Per-position Gaussians over a random channel subset (module docstring).

    Args:
        n_channels: channels kept (all when the features have fewer).
        eps: ridge added to every covariance's diagonal.
        seed: seed of the channel subset.
        device: where scoring runs; None = CUDA when available, else CPU (not saved).
    """

    name = "padim"

    def __init__(self, n_channels: int = 100, eps: float = 0.01, seed: int = 0, device: str | None = None):
        super().__init__()
        if int(n_channels) < 1:
            raise ValueError(f"n_channels must be >= 1, got {n_channels}")
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        self.n_channels, self.eps, self.seed = int(n_channels), float(eps), int(seed)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.arrays: dict[str, np.ndarray] = {}

    def fit(self, features: torch.Tensor, progress: ProgressFn | None = None,
            patch_mask: np.ndarray | None = None) -> None:
        self.fit_images(features, None, progress, patch_mask)

    def fit_images(self, features: torch.Tensor, images: np.ndarray | None,
                   progress: ProgressFn | None = None, patch_mask: np.ndarray | None = None) -> None:
        """:meth:`fit` on the images ``images`` of ``(N, h, w, D) float32`` features (None: all).

        ``patch_mask`` is ignored: PaDiM keeps one Gaussian per grid position, so a position outside
        a region of interest is modelled like any other, and the model never scores it
        (:meth:`engine.model.InspectionModel.predict` leaves it out of the image score and the map).

        Only the ``n_channels`` kept channels of those images are copied, never the whole array.
        Reports ``progress(done, h * w, "padim: gaussians")`` in patch positions.
        """
        n_all, h, w, d = features.shape
        n = n_all if images is None else len(images)
        if n < 2:
            raise ValueError(f"PaDiM needs at least 2 normal images to estimate covariances, got {n}")
        rng = np.random.default_rng(self.seed)
        idx = np.sort(rng.permutation(d)[: min(self.n_channels, d)]).astype(np.int64)
        x = features if images is None else features[torch.from_numpy(np.asarray(images, np.int64))]
        x = x[..., torch.from_numpy(idx)].reshape(n, h * w, -1)  # images first: only the fold's are copied
        c = len(idx)
        mean = torch.empty(h * w, c, dtype=torch.float64, device=self.device)
        cov = torch.empty(h * w, c, c, dtype=torch.float64, device=self.device)
        step = max(1, _CHUNK_BYTES // (8 * n * c))  # positions per chunk: bounded float64 working memory
        if progress is not None:
            progress(0, h * w, "padim: gaussians")
        for s in range(0, h * w, step):
            xs = x[:, s : s + step].to(self.device, torch.float64).transpose(0, 1)  # (positions, n, c)
            m = xs.mean(1)
            xc = xs - m[:, None]
            mean[s : s + step] = m
            cov[s : s + step] = xc.transpose(1, 2) @ xc / (n - 1)
            if progress is not None:
                progress(min(s + step, h * w), h * w, "padim: gaussians")
        cov += self.eps * torch.eye(c, dtype=cov.dtype, device=cov.device)
        self.arrays = {"channels": idx, "mean": mean.reshape(h, w, c).float().cpu().numpy(),
                       "covariances": cov.reshape(h, w, c, c).float().cpu().numpy()}
        self._prepare()

    def _prepare(self) -> None:
        a = self.arrays
        h, w, c = a["mean"].shape
        wm, _ = whitening_factors(a["covariances"].reshape(h * w, c, c))
        self._w = torch.from_numpy(wm).to(self.device)  # (hw, c, c)
        self._mean = torch.from_numpy(a["mean"].reshape(h * w, c)).to(self.device)
        self._idx = torch.from_numpy(a["channels"].astype(np.int64))
        self.fitted = True

    def _score(self, features: torch.Tensor) -> torch.Tensor:
        b, h, w, d = features.shape
        gh, gw, c = self.arrays["mean"].shape
        if (h, w) != (gh, gw):
            raise ValueError(f"PaDiM was fitted on a {gh}x{gw} patch grid, got {h}x{w}: use the same input size "
                             f"and resize mode as at fit (PaDiM models each position; aligned parts only)")
        if d <= int(self._idx.max()):
            raise ValueError(f"features have D={d}, PaDiM uses channel {int(self._idx.max())}")
        x = features[..., self._idx].reshape(b, h * w, c).to(self.device, torch.float32) - self._mean
        rows = max(1, _CHUNK_BYTES // (4 * b * c))
        out = []
        for s in range(0, h * w, rows):
            z = torch.einsum("pij,bpj->bpi", self._w[s : s + rows], x[:, s : s + rows])
            out.append(z.square().sum(-1))
        return torch.cat(out, 1).clamp_min(0).sqrt().reshape(b, h, w).cpu()

    def get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        return {"n_channels": self.n_channels, "eps": self.eps, "seed": self.seed}, dict(self.arrays)

    @classmethod
    def from_state(cls, config: dict, arrays: dict[str, np.ndarray]) -> "PadimScorer":
        s = cls(**config)
        s.arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        s._prepare()
        return s


__all__ = ["PadimScorer"]
