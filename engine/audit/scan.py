"""Streaming walk of the folders of an archive: :class:`ArchiveScan` yields :class:`ArchiveFile` lazily.

An audit is always recursive and reads archives of any size, so unlike :func:`engine.listing.list_images`
(which builds a sorted list) the walk never holds more than one folder's entries:

* folders are walked depth-first, each folder's entries sorted by name (files and sub-folders in
  one order, as :mod:`engine.listing` does); the order is the same on every run, so a resumed
  audit meets the files in the same order;
* linked sub-folders are followed, each real folder once (a link back to a folder being walked is a
  *link loop*, a second path to a folder already walked is skipped), as :mod:`engine.listing`;
  a file reached twice (hard links or file links) is taken once -- only files with more than
  one name are remembered, so memory stays flat for ordinary archives;
* mask folders (:data:`engine.listing.MASK_FOLDERS`) and the audit's own output folder are not
  searched; image types are :data:`engine.listing.IMAGE_SUFFIXES` (any case);
* every entry not taken is counted by reason (:attr:`ArchiveScan.skipped`, with a few examples).

:func:`count_images` is the cheap first pass for a progress bar's total: the same walk with
``os.scandir`` type information only (no ``stat`` per file on Linux file systems that report it).
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from pathlib import Path
from typing import Iterator

from ..errors import DatasetError
from ..listing import (BROKEN_LINK, EXCLUDED, IMAGE_SUFFIXES, LOOP, MASK_FOLDERS, MASKS, NOT_IMAGE, NOT_REGULAR,
                       SAME_FILE, SAME_FOLDER, UNREADABLE, UNSUPPORTED, UNSUPPORTED_IMAGE_SUFFIXES)
from .records import ArchiveFile

EXAMPLES = 3
"""Example paths kept per skip reason."""


class ArchiveScan:
    """The image files under ``roots``, yielded lazily in a stable order (module docstring).

    Args:
        roots: folders (or single image files) as given on the command line.
        exclude: a folder not to search (the audit's ``--out`` when it lies inside a root).
    Raises:
        DatasetError: (at construction) a root that does not exist or is neither a folder nor a file.
    Attributes:
        skipped: ``Counter`` reason -> entries skipped; ``examples``: reason -> first paths.
        found: files yielded so far.
    """

    def __init__(self, roots: list[str | Path], exclude: str | Path | None = None):
        self.roots: list[str] = []
        for r in roots:
            p = os.path.abspath(os.fspath(r))
            if not os.path.exists(p):
                raise DatasetError(f"{r}: no such file or folder. Give folders of images to audit.")
            if not (os.path.isdir(p) or os.path.isfile(p)):
                raise DatasetError(f"{r}: {NOT_REGULAR}. Give folders of images to audit.")
            self.roots.append(p)
        self.exclude = None if exclude is None else os.path.realpath(os.fspath(exclude))
        self.skipped: Counter = Counter()
        self.examples: dict[str, list[str]] = {}
        self.found = 0

    def _skip(self, path: str, reason: str) -> None:
        self.skipped[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < EXAMPLES:
            ex.append(path)

    def skipped_summary(self) -> str:
        """One line: ``"skipped 3 entries: 2 not an image type (a.txt, b.csv); 1 mask folder (...)"``, or ``""``."""
        n = sum(self.skipped.values())
        if not n:
            return ""
        parts = [f"{k} {why} ({', '.join(self.examples[why])}{', ...' if k > len(self.examples[why]) else ''})"
                 for why, k in self.skipped.most_common()]
        return f"skipped {n} entr{'y' if n == 1 else 'ies'}: " + "; ".join(parts)

    def __iter__(self) -> Iterator[ArchiveFile]:
        seen_dirs: set[tuple[int, int]] = set()
        seen_files: set[tuple[int, int]] = set()  # only files with several names (st_nlink > 1 or links)
        for root in self.roots:
            if os.path.isfile(root):
                st = os.stat(root)
                key = (st.st_dev, st.st_ino)
                if key not in seen_files:
                    seen_files.add(key)
                    self.found += 1
                    name = os.path.basename(root)
                    yield ArchiveFile(root, os.path.dirname(root), name, "", st.st_size, st.st_mtime_ns)
                continue
            st = os.stat(root)
            key = (st.st_dev, st.st_ino)
            if key in seen_dirs:
                self._skip(root, SAME_FOLDER)
                continue
            seen_dirs.add(key)
            yield from self._walk(root, root, "", (key,), seen_dirs, seen_files)

    def _walk(self, root: str, folder: str, rel: str, chain: tuple, seen_dirs: set, seen_files: set
              ) -> Iterator[ArchiveFile]:
        try:
            with os.scandir(folder) as it:
                entries = sorted(((e.name, e.path, e.is_symlink()) for e in it), key=lambda t: t[0])
        except OSError as exc:
            self._skip(folder, f"{UNREADABLE} ({exc.strerror or exc})")
            return
        for name, path, is_link in entries:
            try:
                st = os.stat(path)  # follows links
            except OSError:
                self._skip(path, BROKEN_LINK if is_link else UNREADABLE)
                continue
            key = (st.st_dev, st.st_ino)
            sub = f"{rel}/{name}" if rel else name
            if stat.S_ISDIR(st.st_mode):
                if self.exclude is not None and os.path.realpath(path) == self.exclude:
                    self._skip(path, EXCLUDED)
                elif name.lower() in MASK_FOLDERS:
                    self._skip(path, MASKS)
                elif key in chain:
                    self._skip(path, LOOP)
                elif key in seen_dirs:
                    self._skip(path, SAME_FOLDER)
                else:
                    seen_dirs.add(key)
                    yield from self._walk(root, path, sub, chain + (key,), seen_dirs, seen_files)
                continue
            suffix = os.path.splitext(name)[1].lower()
            if not stat.S_ISREG(st.st_mode):
                self._skip(path, NOT_REGULAR)
            elif suffix not in IMAGE_SUFFIXES:
                self._skip(path, UNSUPPORTED if suffix in UNSUPPORTED_IMAGE_SUFFIXES else NOT_IMAGE)
            else:
                if st.st_nlink > 1 or is_link:
                    if key in seen_files:
                        self._skip(path, SAME_FILE)
                        continue
                    seen_files.add(key)
                self.found += 1
                yield ArchiveFile(path, root, sub, rel, st.st_size, st.st_mtime_ns)


def count_images(roots: list[str | Path], exclude: str | Path | None = None) -> int:
    """How many image files :class:`ArchiveScan` will yield, counted cheaply: the same walk without
    ``stat`` per file (``os.scandir``'s type information; linked folders followed, each real
    folder once). A file reached through two names is counted twice, so the count can exceed
    the files scored by those (a progress bar's total, not a result)."""
    exclude = None if exclude is None else os.path.realpath(os.fspath(exclude))
    seen: set[tuple[int, int]] = set()
    n = 0
    stack = []
    for r in roots:
        p = os.path.abspath(os.fspath(r))
        if os.path.isfile(p):
            n += 1
        elif os.path.isdir(p):
            stack.append(p)
    while stack:
        d = stack.pop()
        try:
            st = os.stat(d)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            with os.scandir(d) as it:
                for e in it:
                    try:
                        if e.is_dir():
                            if e.name.lower() not in MASK_FOLDERS and (
                                    exclude is None or os.path.realpath(e.path) != exclude):
                                stack.append(e.path)
                        elif os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES:
                            n += 1
                    except OSError:
                        continue
        except OSError:
            continue
    return n
