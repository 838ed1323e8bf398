"""Writing results safely: output file names, files written whole or not at all, append-only CSV rows.

* :func:`short_stem`: one rule for every file name the program derives from an input name (predict's
  overlays, the app's saved NOK images): characters that some file system refuses are replaced, and a
  long name is cut to a byte budget with a short hash of the whole text appended, so the name stays
  under the 255-byte file-name limit and leaves room for the folder under Windows' 260-character
  ``MAX_PATH``, and two long names that differ only after the cut still get different names.
* :func:`write_bytes` / :func:`replace_atomically`: a file is written whole or removed again (a full
  disk never leaves half a PNG), or written beside its target and renamed over it (a model file being
  written when the process dies never replaces the old one).
* :class:`AppendOnlyCsv`: a CSV whose rows are appended one ``os.write`` each, so a row is on disk
  complete or not at all (a failed or short write is cut off again), that survives the process being
  killed at any point (the kernel has every row that was written, no user-space buffer), and that
  can be reopened to continue (``resume``), dropping a torn last row if one is found.

fsync policy of :class:`AppendOnlyCsv`: rows reach the kernel at once (a killed or crashed process
loses nothing it wrote); they are forced to the disk at most once a second and when the file is
closed, so a power cut loses at most about a second of rows, which ``--resume`` inspects again,
without paying a disk flush (milliseconds on a hard disk or a network share) for every image.
"""

from __future__ import annotations

import csv
import errno
import glob
import hashlib
import io
import os
import re
import tempfile
import time
from pathlib import Path

from .errors import InspectError

DISK_FULL_ERRNOS = frozenset(e for e in (getattr(errno, n, None) for n in ("ENOSPC", "EDQUOT", "EFBIG"))
                             if e is not None)
"""errno values meaning "no more bytes fit": disk full, quota exceeded, file-size limit."""

_UNSAFE = re.compile(r"[^\w.\- ]+")  # not a (Unicode) letter/digit/underscore, dot, dash or space
MAX_STEM_BYTES = 100
"""Default byte budget of :func:`short_stem` (UTF-8): far below the 255-byte file-name limit, and a
``<stem>.png`` name leaves about 150 characters for its folder under Windows' ``MAX_PATH``."""


class OutputWriteError(InspectError):
    """Results cannot be written (disk full, read-only or unwritable folder); the message says what
    is already saved and how to continue."""


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` is an OSError meaning no more bytes fit (:data:`DISK_FULL_ERRNOS`)."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


def os_reason(exc: BaseException) -> str:
    """The system's own words for an error: ``"File name too long"``, ``"No space left on device"``;
    the exception's text when it carries no ``strerror``."""
    return (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).strip()


def short_stem(text: str, max_bytes: int = MAX_STEM_BYTES) -> str:
    """A file-name stem made from ``text`` (module docstring): deterministic, at most ``max_bytes``
    bytes in UTF-8.

    Characters other than letters, digits, ``_ . - `` and space (path separators, ``:*?"<>|``,
    control characters, undecodable bytes kept as surrogates) become ``_``; leading and trailing
    dots and spaces are dropped (Windows refuses them). When the result is longer than
    ``max_bytes``, its middle is cut out at character boundaries and replaced by ``~`` + the first 8
    hex digits of the SHA-1 of ``text`` + ``~``: the beginning (e.g. the folder) and the end (the
    file's own name) stay readable, and different long texts stay different.

    Args:
        text: any string, e.g. ``f"{folder}_{stem}"`` of an input file.
        max_bytes: byte budget (>= 16).

    Returns:
        A non-empty stem (``"image"`` when nothing usable is left), without suffix.
    """
    if max_bytes < 16:
        raise ValueError(f"max_bytes must be >= 16, got {max_bytes}")
    stem = _UNSAFE.sub("_", text).strip(". ") or "image"
    if len(stem.encode("utf-8")) <= max_bytes:
        return stem
    tag = "~" + hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:8] + "~"
    raw = stem.encode("utf-8")
    room = max_bytes - len(tag)
    head = raw[:room - room // 2].decode("utf-8", "ignore").rstrip(". ")
    tail = raw[len(raw) - room // 2:].decode("utf-8", "ignore").lstrip(". ")
    return head + tag + tail


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` (creating its folder); on any failure the partly written file is
    removed and the OSError raised as it came (``errno``/``strerror`` tell why: ENAMETOOLONG,
    ENOSPC, EACCES...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "wb") as fh:
            fh.write(data)
    except BaseException:
        try:
            path.unlink()
        except OSError:
            pass
        raise


def fsync_folder(folder: str | Path) -> None:
    """Make a rename or a new file in ``folder`` durable (no-op where folders cannot be opened)."""
    try:
        fd = os.open(str(folder), os.O_RDONLY)
    except OSError:  # Windows: folders cannot be opened; NTFS journals renames itself
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_atomically(path: str | Path, write) -> None:
    """Create ``path`` through ``write(tmp_path)`` without ever leaving it half-written.

    ``write`` writes the whole content to a temporary file in the same folder (a hidden
    ``.<name>.<random>.tmp``); it is flushed to the disk (fsync), given the permissions of a new
    file (umask), renamed over ``path`` in one step (``os.replace``), and the folder is synced so
    the rename survives a power cut. If anything fails -- or the process is killed -- before the
    rename, ``path`` keeps its old content and the temporary file is removed (after a kill it stays
    behind, hidden, never read as a model, until a later save of ``path`` removes it once it is
    older than :data:`STALE_TEMPORARY_S`: :func:`remove_stale_temporaries`).

    Raises:
        OSError (or whatever ``write`` raises): nothing was replaced.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_folder(path.parent)
    remove_stale_temporaries(path)


STALE_TEMPORARY_S = 3600.0
"""Age (s) after which a temporary file of :func:`replace_atomically` is taken as left by a killed writer."""


def remove_stale_temporaries(path: str | Path, older_than_s: float = STALE_TEMPORARY_S) -> list[Path]:
    """Delete the hidden ``.<name>.*.tmp`` files that killed writers of ``path`` left behind.

    Only files older than ``older_than_s`` seconds are removed, so a writer still at work in
    another process keeps its file. Errors are ignored (the files are never read anyway).

    Returns:
        the files removed.
    """
    path = Path(path)
    now, gone = time.time(), []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if now - tmp.stat().st_mtime > older_than_s:
                tmp.unlink()
                gone.append(tmp)
        except OSError:
            pass
    return gone


def _csv_bytes(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return buf.getvalue().encode("utf-8", "surrogateescape")


class AppendOnlyCsv:
    """A CSV file written one whole row at a time (module docstring).

    Text is UTF-8; file names that are not valid UTF-8 on disk keep their original bytes
    (``surrogateescape``), so a resumed run recognises them again.

    Use :meth:`create` (a new file with ``header``) or :meth:`resume` (continue an existing one).
    ``rows`` holds the rows already in the file when it was opened (dicts by header name).
    """

    def __init__(self, path: Path, fd: int, header: list[str], rows: list[dict[str, str]]):
        self.path, self._fd, self.header, self.rows = path, fd, header, rows
        self.written = 0
        self.torn_row_dropped = False  # set by resume: a row cut off by the interruption was removed
        self._synced = time.monotonic()

    @classmethod
    def create(cls, path: str | Path, header: list[str]) -> "AppendOnlyCsv":
        """Create (or empty) ``path`` and write ``header``.

        Raises:
            OSError: the file cannot be created or the header not written.
        """
        path = Path(path)
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | getattr(os, "O_BINARY", 0),
                     0o666)
        self = cls(path, fd, list(header), [])
        try:
            self._write(_csv_bytes([list(header)]))
        except BaseException:
            self.close()
            raise
        return self

    @classmethod
    def resume(cls, path: str | Path, header: list[str]) -> "AppendOnlyCsv":
        """Open an existing CSV written by :meth:`create` to append to it; a torn last row (a row
        cut off by a crash in the middle of writing) is removed first, and a file stopped before its
        header was whole (empty or part of the header) is started again.

        Raises:
            OutputWriteError: the file's header differs from ``header``, or it was changed in a way
                that is not a torn last row (edited by hand, another program's file).
            OSError: the file cannot be read or written.
        """
        path = Path(path)
        data = path.read_bytes()
        if _csv_bytes([list(header)]).startswith(data):  # stopped before its header was whole: start it again
            return cls.create(path, header)
        parsed = list(csv.reader(io.StringIO(data.decode("utf-8", "surrogateescape"), newline="")))
        if not parsed or parsed[0] != list(header):
            raise OutputWriteError(f"{path}: not a results file of this version (its first line is not the "
                                   f"expected header). Run without --resume to start a new one (the old "
                                   f"file is moved aside), or choose another --out.")
        keep = len(parsed)
        if not data.endswith(b"\n") or len(parsed[-1]) != len(header):
            keep -= 1  # the last row was being written when the process stopped
        good = _csv_bytes(parsed[:keep])
        if keep < 1 or not data.startswith(good) or any(len(r) != len(header) for r in parsed[1:keep]):
            raise OutputWriteError(f"{path}: changed since it was written (rows with {len(header)} columns "
                                   f"expected), so it cannot be continued safely. Run without --resume to start "
                                   f"a new one (the old file is moved aside).")
        fd = os.open(str(path), os.O_WRONLY | os.O_APPEND | getattr(os, "O_BINARY", 0))
        if len(good) < len(data):
            os.ftruncate(fd, len(good))
        rows = [dict(zip(header, r)) for r in parsed[1:keep]]
        self = cls(path, fd, list(header), rows)
        self.torn_row_dropped = len(good) < len(data)
        return self

    def append(self, row: list) -> None:
        """Append one row (values as text; None -> empty), whole or not at all.

        Raises:
            OSError: not written (``is_disk_full`` tells a full disk); the file holds exactly the
                rows before it.
        """
        self._write(_csv_bytes([["" if v is None else str(v) for v in row]]))
        self.written += 1
        if time.monotonic() - self._synced >= 1.0:
            self.sync()

    def _write(self, data: bytes) -> None:
        start = os.lseek(self._fd, 0, os.SEEK_END)
        done = 0
        try:
            while done < len(data):
                n = os.write(self._fd, data[done:])
                if n <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
                done += n
        except BaseException:
            try:
                os.ftruncate(self._fd, start)  # a short or failed write: cut the partial row off
            except OSError:
                pass
            raise

    def sync(self) -> None:
        """Force the rows written so far to the disk (fsync).

        Raises:
            OSError: the disk refused them (some file systems report a full disk only here).
        """
        self._synced = time.monotonic()
        os.fsync(self._fd)

    def close(self) -> None:
        """Sync and close (idempotent).

        Raises:
            OSError: from the final sync; the file is closed all the same.
        """
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def __enter__(self) -> "AppendOnlyCsv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
