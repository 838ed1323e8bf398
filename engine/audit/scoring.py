"""Scoring archive files in batches: the :class:`BatchScorer` protocol both audit engines drive.

The local engine (:mod:`engine.audit.runner`) calls ``score_batch`` directly; the Ray engine
(:mod:`engine.audit.ray_engine`) holds one scorer per actor, built from the model path. A
``score_batch`` decodes its files (a file that cannot be read becomes an ``"error"`` record; it
never raises for one file), runs the model and returns one :class:`AuditRecord` per file, in
order.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .records import ArchiveFile, AuditRecord


@runtime_checkable
class BatchScorer(Protocol):
    """What an audit engine needs from a scorer.

    Attributes:
        mode: ``"recipe"`` (a fitted model file) or ``"mutual"`` (labelling-free, MuSc-style).
    """

    mode: str

    def meta(self) -> dict:
        """JSON-able facts for the store's meta (:data:`engine.audit.store.META_KEYS`)."""
        ...

    def score_batch(self, files: list[ArchiveFile]) -> list[AuditRecord]:
        """One :class:`AuditRecord` per file, in order; unreadable files give ``"error"`` records."""
        ...
