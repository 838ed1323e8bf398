"""Offline audits of image archives: stream every image of folders through a model (or mutual
scoring), keep the results in a resumable SQLite store, and report.

* :mod:`engine.audit.records` -- :class:`ArchiveFile`, :class:`AuditRecord`, :func:`fast_hash`;
* :mod:`engine.audit.store` -- :class:`AuditStore`, ``DIR/audit.sqlite``;
* :mod:`engine.audit.scoring` -- the :class:`BatchScorer` protocol (and the recipe scorer).

See docs/AUDIT.md.
"""

from .records import ArchiveFile, AuditRecord, fast_hash
from .scoring import BatchScorer
from .store import AuditStore, AuditStoreError

__all__ = ["ArchiveFile", "AuditRecord", "AuditStore", "AuditStoreError", "BatchScorer", "fast_hash"]
