"""What an audit reads and writes: one archive file (:class:`ArchiveFile`) and its result (:class:`AuditRecord`).

An archive file is known by its absolute path and its content key ``(size, mtime_ns, fast_hash)``:
a file whose key is unchanged since it was scored is not scored again (:mod:`engine.audit.store`).
:func:`fast_hash` reads at most 128 KiB per file, so keying a 10,000-image archive costs a fraction
of decoding it.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field

import numpy as np

HASH_CHUNK = 64 * 1024
"""Bytes hashed at the start and at the end of a file (:func:`fast_hash`)."""

STATUSES = ("scored", "error")
VERDICTS = ("OK", "NOK")


def fast_hash(path: str, size: int | None = None) -> str:
    """Hex BLAKE2b (16-byte digest, :mod:`hashlib`) over the file's size (8 bytes, little endian),
    its first 64 KiB and its last 64 KiB (the whole file once when it is shorter than 128 KiB).

    Not a cryptographic identity of the file: a cheap change detector that, with size and mtime,
    tells a re-written file from the one scored before.

    Args:
        path: the file.
        size: its size in bytes if already known (``os.stat``), else it is taken from the open file.
    Raises:
        OSError: the file cannot be opened or read.
    """
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        if size is None:
            size = f.seek(0, io.SEEK_END)
            f.seek(0)
        h.update(int(size).to_bytes(8, "little"))
        head = f.read(HASH_CHUNK)
        h.update(head)
        if size > 2 * HASH_CHUNK:
            f.seek(size - HASH_CHUNK)
            h.update(f.read(HASH_CHUNK))
        elif size > HASH_CHUNK:
            h.update(f.read())  # the rest, so every byte of a file under 128 KiB is hashed once
    return h.hexdigest()


@dataclass(frozen=True)
class ArchiveFile:
    """One image file found by :func:`engine.audit.scan.scan`.

    Attributes:
        path: absolute path (``os.path.abspath``: links are not resolved).
        root: the FOLDER given on the command line (absolute) the file was found under.
        rel: path relative to ``root`` with ``/`` separators.
        group: the sub-folder part of ``rel`` (``"line2/2026-11-30/lot7"``; ``""`` at the root):
            the line / day / lot a report breaks NOK rates down by.
        size: bytes.
        mtime_ns: modification time, ns since the epoch (``os.stat().st_mtime_ns``).
    """

    path: str
    root: str
    rel: str
    group: str
    size: int
    mtime_ns: int


@dataclass
class AuditRecord:
    """The result of auditing one :class:`ArchiveFile` (one row of the store's ``images`` table).

    Attributes:
        path, root, rel, group, size, mtime_ns: as the :class:`ArchiveFile`.
        fast_hash: :func:`fast_hash` of the file as it was read ("" when it could not be read).
        status: ``"scored"`` or ``"error"``.
        score: image anomaly score (scorer units, higher = more anomalous); None on error.
        verdict: ``"OK"`` / ``"NOK"`` against the threshold; None on error or without a threshold.
        error: one-line message naming the file and the fix; None when scored.
        height, width: the image's own size in px; None on error.
        anomaly_grid: ``(h, w) float16`` patch scores on the backbone's patch grid, exactly what the
            model's anomaly map is made from (:meth:`engine.model.InspectionModel.region_result`:
            with a region of interest, the patches outside hold the median of those inside); None
            on error.
        latency_ms: wall time of this image's share of its batch (decode excluded), ms; None on error.
    """

    path: str
    root: str
    rel: str
    group: str
    size: int
    mtime_ns: int
    fast_hash: str
    status: str
    score: float | None = None
    verdict: str | None = None
    error: str | None = None
    height: int | None = None
    width: int | None = None
    anomaly_grid: np.ndarray | None = field(default=None, repr=False)
    latency_ms: float | None = None

    @classmethod
    def failed(cls, file: ArchiveFile, message: str, fast_hash: str = "") -> "AuditRecord":
        """An ``"error"`` record of ``file`` with its one-line ``message``."""
        return cls(file.path, file.root, file.rel, file.group, file.size, file.mtime_ns, fast_hash, "error",
                   error=" ".join(str(message).split()))

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if self.verdict is not None and self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS} or None, got {self.verdict!r}")
        if self.anomaly_grid is not None:
            self.anomaly_grid = np.ascontiguousarray(self.anomaly_grid, dtype=np.float16)
