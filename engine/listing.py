"""Listing the image files of folders, with every skipped entry counted and its reason kept.

Nothing is dropped without a word: :func:`list_images` returns an :class:`ImageList` (a plain
``list[Path]``) whose ``skipped`` holds ``(path, reason)`` for every entry it did not take, and
:meth:`ImageList.skipped_summary` says them in one line for the console, reports and the app.

Rules of a recursive listing:

* linked sub-folders (symlinks, mounted shares, folder links) are followed;
* each real folder is visited once: a link back to a folder being listed is a *link loop*, a
  second path to a folder already listed is skipped as *folder already listed*; a file reached
  twice (two links to it) is listed once;
* mask folders (:data:`MASK_FOLDERS`) and an ``exclude`` folder (results written inside the input)
  are not searched, and say so.

Reasons are the constants below (``NOT_IMAGE``...); a non-recursive listing reports sub-folders
as :data:`SUBFOLDER`.
"""

from __future__ import annotations

import os
import stat
from collections import defaultdict
from pathlib import Path

from .errors import DatasetError
from .outputs import os_reason

def _avif() -> tuple[str, ...]:
    try:
        from PIL import features

        return (".avif",) if features.check("avif") else ()
    except Exception:  # noqa: BLE001 - an older Pillow without the feature check: not offered
        return ()


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp") + _avif()
"""File name endings taken as images (any case); ``.avif`` where this Pillow reads it."""

MASK_FOLDERS = ("ground_truth",)
"""Sub-folders that hold defect masks (MVTec AD layout); a recursive listing skips them."""

NOT_IMAGE = "not an image type"
UNSUPPORTED = "image type not supported (export as PNG/JPEG)"
SUBFOLDER = "sub-folder, not searched"
UNREADABLE = "unreadable folder"
BROKEN_LINK = "broken link"
LOOP = "link loop (to a folder that contains it)"
SAME_FOLDER = "folder already listed through another path"
SAME_FILE = "same file already listed through another path"
MASKS = "mask folder"
EXCLUDED = "output folder"
GIVEN_TWICE = "given twice"
NOT_REGULAR = "not a regular file (pipe, socket or device: reading it could block)"

UNSUPPORTED_IMAGE_SUFFIXES = tuple(s for s in (".heic", ".heif", ".avif", ".jxl", ".raw", ".dng", ".cr2", ".nef")
                                   if s not in IMAGE_SUFFIXES)
"""Image files recognised by name that are not read here: skipped as :data:`UNSUPPORTED`."""


class ImageList(list):
    """``list[Path]`` of image files, plus ``skipped``: ``(path, reason)`` of every entry not taken."""

    def __init__(self, files=(), skipped=()):
        super().__init__(files)
        self.skipped: list[tuple[Path, str]] = list(skipped)

    def extend_listing(self, other: "ImageList") -> None:
        """Append another listing's files and skipped entries."""
        self.extend(other)
        self.skipped.extend(getattr(other, "skipped", []))

    def skipped_summary(self, examples: int = 2, hint: str | None = None) -> str:
        """One line: ``"skipped 3 entries: 2 not an image type: a.txt, b.csv; 1 broken link: x"``;
        ``""`` when nothing was skipped. ``hint`` is appended after the sub-folder reason (e.g.
        ``"add --recursive"``, only where the command has that option)."""
        if not self.skipped:
            return ""
        by: dict[str, list[Path]] = defaultdict(list)
        for p, why in self.skipped:
            by[why].append(p)
        parts = []
        for why, ps in by.items():
            names = ", ".join(p.name or str(p) for p in ps[:examples]) + (", ..." if len(ps) > examples else "")
            extra = f" ({hint})" if hint and why == SUBFOLDER else ""
            parts.append(f"{len(ps)} {why}: {names}{extra}")
        n = len(self.skipped)
        return f"skipped {n} entr{'y' if n == 1 else 'ies'}: " + "; ".join(parts)


def _scan(folder: Path, recursive: bool, exclude: Path | None, out: ImageList) -> None:
    """Walk ``folder`` depth-first in sorted order into ``out`` (module docstring)."""
    seen_dirs: dict[tuple[int, int], Path] = {}
    seen_files: dict[tuple[int, int], Path] = {}

    def visit(d: Path, chain: tuple[tuple[int, int], ...]) -> None:
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            out.skipped.append((d, f"{UNREADABLE} ({os_reason(exc)})"))
            return
        for e in entries:
            p = Path(e.path)
            try:
                st = os.stat(e.path)  # follows links
            except OSError:
                out.skipped.append((p, BROKEN_LINK if e.is_symlink() else UNREADABLE))
                continue
            key = (st.st_dev, st.st_ino)
            if e.is_dir():
                if exclude is not None and p.resolve() == exclude:
                    out.skipped.append((p, EXCLUDED))
                elif not recursive:
                    out.skipped.append((p, SUBFOLDER))
                elif e.name.lower() in MASK_FOLDERS:
                    out.skipped.append((p, MASKS))
                elif key in chain:
                    out.skipped.append((p, LOOP))
                elif key in seen_dirs:
                    out.skipped.append((p, SAME_FOLDER))
                else:
                    seen_dirs[key] = p
                    visit(p, chain + (key,))
                continue
            suffix = p.suffix.lower()
            if not stat.S_ISREG(st.st_mode):
                out.skipped.append((p, NOT_REGULAR))
            elif suffix not in IMAGE_SUFFIXES:
                out.skipped.append((p, UNSUPPORTED if suffix in UNSUPPORTED_IMAGE_SUFFIXES else NOT_IMAGE))
            elif key in seen_files:
                out.skipped.append((p, SAME_FILE))
            else:
                seen_files[key] = p
                out.append(p)

    st = os.stat(folder)
    seen_dirs[(st.st_dev, st.st_ino)] = folder
    visit(folder, ((st.st_dev, st.st_ino),))
    out.sort()


def _subfolders_with_images(folder: Path, limit: int = 200) -> bool:
    """Whether a direct sub-folder of ``folder`` holds image files (one level, first ``limit``
    entries of each: fast on huge trees)."""
    try:
        subs = [e.path for e in os.scandir(folder) if e.is_dir()]
    except OSError:
        return False
    for d in subs[:limit]:
        try:
            with os.scandir(d) as it:
                for i, e in enumerate(it):
                    if i >= limit:
                        break
                    if Path(e.name).suffix.lower() in IMAGE_SUFFIXES:
                        return True
        except OSError:
            continue
    return False


def _check_name_length(p: Path) -> None:
    """DatasetError for a path with a name over 255 bytes (no file system holds one; ``Path.is_dir``
    would raise a bare OSError)."""
    long = next((part for part in p.parts if len(part.encode()) > 255), None)
    if long is not None:
        raise DatasetError(f"{p}: a name in it is too long ({len(long.encode())} bytes; file systems allow 255 "
                           f"per name), so no such file or folder can exist. Check the name.")


def list_images(folder: str | Path, recursive: bool = False, exclude: Path | None = None,
                recursive_option: str | None = None, allow_empty: bool = False) -> ImageList:
    """Image files in ``folder`` sorted by path (suffixes in :data:`IMAGE_SUFFIXES`, any case).

    With ``recursive``, sub-folders are searched too, linked ones included, each real folder once,
    except mask folders (:data:`MASK_FOLDERS`, so a mask is never taken for a part) and ``exclude``
    (e.g. a results folder inside the input). Every entry not taken is in the result's ``skipped``.

    Args:
        recursive_option: the calling command's option that searches sub-folders (``"--recursive"``),
            named in the hint when only sub-folders hold images; None (the app, or a command
            without it) = the hint only says to point to a sub-folder.
        allow_empty: return an empty list instead of raising when no image is found.
    Raises:
        DatasetError: the folder does not exist or is not a folder, or (unless ``allow_empty``)
            holds no image; the message says what it holds instead.
    """
    folder = Path(folder)
    _check_name_length(folder)
    if not folder.is_dir():
        what = "not a folder" if folder.exists() else "no such folder"
        raise DatasetError(f"{folder}: {what}. Give a folder of images ({'/'.join(IMAGE_SUFFIXES)}).")
    out = ImageList()
    _scan(folder, recursive, None if exclude is None else Path(exclude).resolve(), out)
    if out or allow_empty:
        return out
    hint = "Point to the folder that holds the image files."
    if not recursive and _subfolders_with_images(folder):
        hint = ("Its sub-folders hold images: point to one of them"
                + (f", or add {recursive_option}." if recursive_option else "."))
    elif out.skipped:
        hint = f"It holds no image file; {out.skipped_summary(examples=3)}. {hint}"
    else:
        hint = f"The folder is empty. {hint}"
    raise DatasetError(f"{folder}: no images found (looked for {', '.join(IMAGE_SUFFIXES)}). {hint}")


def expand_paths(paths: list[str | Path], recursive: bool = False, exclude: Path | None = None,
                 recursive_option: str | None = None) -> ImageList:
    """Files and folders given on a command line -> a flat list of image files, in the order given
    (each folder's files sorted), each real file once (a second mention is skipped as
    :data:`GIVEN_TWICE`). Folders are listed by :func:`list_images` (``recursive``, ``exclude``,
    ``recursive_option`` passed on); files are taken whatever their name (the reader judges them).

    Raises:
        DatasetError: a path does not exist, a folder holds no image, or nothing was given.
    """
    out = ImageList()
    for p in map(Path, paths):
        _check_name_length(p)
        if p.is_dir():
            out.extend_listing(list_images(p, recursive=recursive, exclude=exclude,
                                           recursive_option=recursive_option))
        elif p.is_file():
            out.append(p)
        elif p.exists():
            raise DatasetError(f"{p}: {NOT_REGULAR}. Give image files or folders of them.")
        else:
            raise DatasetError(f"{p}: no such file or folder.")
    if not out:
        raise DatasetError("no images given.")
    seen: set = set()
    files = []
    for p in out:
        try:
            st = p.stat()
            key = (st.st_dev, st.st_ino)
        except OSError:
            key = p
        if key in seen:
            out.skipped.append((p, GIVEN_TWICE))
        else:
            seen.add(key)
            files.append(p)
    out[:] = files
    return out
