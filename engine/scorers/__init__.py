"""Patch scorers: fit on normal patch features, score new ones into patch anomaly maps.

``SCORERS`` maps a name to its class; ``create_scorer(name, **params)`` builds one.
:data:`SCORER_NAMES` lists the built-in names without importing torch (``main.py fit -h``); the
scorer classes (and ``SCORERS``) are imported on first use (PEP 562 ``__getattr__``).
See also: :mod:`engine.scorers.base` (the interface), :mod:`engine.scorers.coreset`.
"""

from __future__ import annotations

from ..lazy_exports import lazy_exports

from ..errors import InspectError

SCORER_NAMES = ("knn", "mahalanobis", "padim")
"""Names of the built-in scorers (each class's ``name``; ``tests/engine`` checks they agree)."""

_WHERE = {"ProgressFn": "base", "Scorer": "base", "KnnScorer": "knn", "MahalanobisScorer": "mahalanobis",
          "PadimScorer": "padim"}


def _registry() -> dict:
    if "SCORERS" not in globals():
        classes = [__getattr__(n) for n in ("KnnScorer", "MahalanobisScorer", "PadimScorer")]
        globals()["SCORERS"] = {c.name: c for c in classes}
    return globals()["SCORERS"]


def register(cls):
    """Add a scorer class to :data:`SCORERS` (usable as a decorator)."""
    _registry()[cls.name] = cls
    return cls


def create_scorer(name: str, **params):
    """Build a scorer by name. Raises :class:`InspectError` for an unknown name."""
    scorers = _registry()
    if name not in scorers:
        raise InspectError(f"unknown scorer {name!r}; choose one of {sorted(scorers)}")
    return scorers[name](**params)


_lazy_getattr, __dir__ = lazy_exports(__name__, _WHERE, extra=("SCORERS",))


def __getattr__(name: str):
    if name == "SCORERS":
        return _registry()
    return _lazy_getattr(name)


__all__ = ["SCORERS", "SCORER_NAMES", "KnnScorer", "MahalanobisScorer", "PadimScorer", "ProgressFn", "Scorer",
           "create_scorer", "register"]
