"""Patch scorers: fit on normal patch features, score new ones into patch anomaly maps.

``SCORERS`` maps a name to its class; ``create_scorer(name, **params)`` builds one.
See also: :mod:`engine.scorers.base` (the interface), :mod:`engine.scorers.coreset`.
"""

from __future__ import annotations

from ..errors import InspectError
from .base import ProgressFn, Scorer
from .knn import KnnScorer
from .mahalanobis import MahalanobisScorer
from .padim import PadimScorer

SCORERS: dict[str, type[Scorer]] = {c.name: c for c in (KnnScorer, MahalanobisScorer, PadimScorer)}


def register(cls: type[Scorer]) -> type[Scorer]:
    """Add a scorer class to :data:`SCORERS` (usable as a decorator)."""
    SCORERS[cls.name] = cls
    return cls


def create_scorer(name: str, **params) -> Scorer:
    """Build a scorer by name. Raises :class:`InspectError` for an unknown name."""
    if name not in SCORERS:
        raise InspectError(f"unknown scorer {name!r}; choose one of {sorted(SCORERS)}")
    return SCORERS[name](**params)


__all__ = ["SCORERS", "KnnScorer", "MahalanobisScorer", "PadimScorer", "ProgressFn", "Scorer", "create_scorer",
           "register"]
