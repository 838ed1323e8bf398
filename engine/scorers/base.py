"""The scorer interface: fit on normal patch features, score new ones into a patch anomaly map.

Every scorer (k-NN memory bank, Mahalanobis prototypes, PaDiM) implements:

* ``fit(features, patch_mask=None)``: ``(N, h, w, D) float32`` patch features of N good images;
  ``patch_mask`` ``(N, h, w) bool`` (True = learn this patch) leaves out the patches outside a
  region of interest (:mod:`engine.roi`): they never enter the memory bank, prototypes or statistics
  (PaDiM models every grid position and ignores it: its positions outside are never scored);
* ``score(features)``: ``(B, h, w, D) float32`` -> ``(B, h, w) float32`` patch anomaly scores
  (higher = more anomalous; units are the scorer's own distance);
* ``get_state()`` -> ``(config, arrays)``: a JSON-able dict and a dict of numpy arrays, and
  ``from_state(config, arrays)``, so a fitted scorer round-trips through a model file without pickle.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Callable, ClassVar, Iterator

import numpy as np
import torch

from ..errors import NotFittedError

ProgressFn = Callable[[int, int, str], None]
"""``progress(done, total, stage)``; may raise :class:`engine.errors.Cancelled` to stop work."""


class Scorer(ABC):
    """Base class of patch scorers (module docstring)."""

    name: ClassVar[str]

    def __init__(self) -> None:
        self.fitted = False

    @abstractmethod
    def fit(self, features: torch.Tensor, progress: ProgressFn | None = None,
            patch_mask: np.ndarray | None = None) -> None:
        """Learn normal from ``(N, h, w, D) float32`` patch features of good images; only the
        patches where ``patch_mask`` ``(N, h, w) bool`` is True when it is given (module docstring)."""

    def fit_images(self, features: torch.Tensor, images: np.ndarray, progress: ProgressFn | None = None,
                   patch_mask: np.ndarray | None = None) -> None:
        """:meth:`fit` on the images ``images`` (``int64`` indices into ``features``) only.

        ``patch_mask``: ``(N, h, w) bool`` for *all* N images of ``features`` (or None).
        The default copies those images' features (``features[images]``); scorers that can read
        the rows in place override it, so cross-fitting holds no per-fold copy of the feature array
        (:class:`~engine.scorers.mahalanobis.MahalanobisScorer`, :class:`~engine.scorers.padim.PadimScorer`).
        """
        images = np.asarray(images, np.int64)
        self.fit(features[torch.from_numpy(images)], progress=progress,
                 patch_mask=None if patch_mask is None else np.asarray(patch_mask)[images])

    def cross_fit(self, features: torch.Tensor, folds: list[np.ndarray], progress: ProgressFn | None = None,
                  patch_mask: np.ndarray | None = None) -> Iterator[tuple[int, "Scorer"]]:
        """K-fold cross-fitting: yields ``(f, scorer_f)`` where ``scorer_f`` learned every image
        except those of fold ``f``; when the generator is exhausted ``self`` has learned them all.

        Args:
            features: ``(N, h, w, D) float32`` patch features of N good images.
            folds: K disjoint ``int64`` index arrays that together cover ``range(N)``.
            patch_mask: ``(N, h, w) bool``, the patches learned (None: all; module docstring).
        The default fits a fresh copy of this (unfitted) scorer per fold with :meth:`fit_images`
        (no copy of the features where the scorer supports it), K + 1 fits in all;
        scorers with a cheaper way override it (:class:`engine.scorers.knn.KnnScorer`).
        Raises:
            ValueError: folds that do not partition ``range(N)``.
        """
        _check_folds(folds, len(features))
        for f, hold in enumerate(folds):
            learn = np.setdiff1d(np.arange(len(features)), hold)
            sc = copy.deepcopy(self)
            sc.fit_images(features, learn, progress=progress, patch_mask=patch_mask)
            yield f, sc
        self.fit(features, progress=progress, patch_mask=patch_mask)

    @abstractmethod
    def _score(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, h, w, D)`` -> ``(B, h, w) float32`` (called only when fitted)."""

    def score(self, features: torch.Tensor) -> torch.Tensor:
        """Patch anomaly scores ``(B, h, w) float32`` of ``(B, h, w, D) float32`` features.

        Raises:
            NotFittedError: before :meth:`fit`.
            ValueError: feature dimension differs from the fitted one.
        """
        if not self.fitted:
            raise NotFittedError(f"{self.name} scorer used before fit().")
        if features.ndim != 4:
            raise ValueError(f"features must be (B, h, w, D), got shape {tuple(features.shape)}")
        return self._score(features)

    @abstractmethod
    def get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """``(config, arrays)``: JSON-able hyper-parameters and fitted numpy arrays."""

    @classmethod
    @abstractmethod
    def from_state(cls, config: dict, arrays: dict[str, np.ndarray]) -> "Scorer":
        """Rebuild a fitted scorer from :meth:`get_state`'s output."""

    def state_nbytes(self) -> int:
        """Size of the fitted state in bytes (what a model file stores)."""
        return int(sum(a.nbytes for a in self.get_state()[1].values()))


def _check_folds(folds: list[np.ndarray], n: int) -> None:
    """Raise ValueError unless ``folds`` are >= 2 disjoint, non-empty index arrays covering ``range(n)``."""
    allidx = np.sort(np.concatenate([np.asarray(f, np.int64) for f in folds])) if folds else np.zeros(0, np.int64)
    if len(folds) < 2 or any(len(f) == 0 for f in folds) or not np.array_equal(allidx, np.arange(n)):
        raise ValueError(f"cross-fit folds must be >= 2 non-empty disjoint index sets covering all {n} images")
