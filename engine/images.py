"""Reading image files into one canonical array form.

Every image the engine sees is converted the same documented way:

* output: ``(H, W, 3) uint8`` RGB, C-contiguous, in the file's own pixel size (no resizing here);
* grayscale (``L``, ``I;16``, ``I``, ``F``) is replicated to three channels;
* 16-bit and float images are scaled linearly from their full dynamic range to 0..255
  (``I;16``: divided by 257; 32-bit int/float: min-max of the image itself);
* RGBA / LA / P with transparency: alpha is composited over black (the background of a lit part);
* palette (``P``) and CMYK are converted to RGB by Pillow;
* EXIF orientation is *not* applied (cameras at a station are fixed; a rotated tag would misalign
  masks).

Supported formats: PNG, JPEG, BMP, TIFF (and anything else Pillow decodes).
A file that cannot be decoded raises :class:`engine.errors.ImageReadError` naming the file;
it is never silently replaced by zeros.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DatasetError, ImageReadError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def to_rgb_uint8(img: Image.Image) -> np.ndarray:
    """Convert a decoded Pillow image to ``(H, W, 3) uint8`` RGB (rules in the module docstring)."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(img, dtype=np.uint16).astype(np.float32) / 257.0
        arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
    if mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        arr = np.clip(np.rint((arr - lo) * scale), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA"):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
        alpha = rgba[:, :, 3:4] / 255.0
        rgb = np.clip(np.rint(rgba[:, :, :3] * alpha), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(rgb)
    if mode in ("1", "L"):
        arr = np.asarray(img.convert("L"), dtype=np.uint8)
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def read_image(path: str | Path) -> np.ndarray:
    """Read one image file as ``(H, W, 3) uint8`` RGB.

    Raises:
        ImageReadError: the file is missing, empty, truncated or not an image; the message names
            the file and the fix.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            arr = to_rgb_uint8(img)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found. Check the path.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(
            f"{path}: cannot decode image ({exc}). The file is corrupt, truncated or not an "
            f"image; re-export it as PNG/JPEG/BMP/TIFF or remove it from the folder."
        ) from exc
    if arr.shape[0] < 8 or arr.shape[1] < 8:
        raise ImageReadError(f"{path}: image is only {arr.shape[1]}x{arr.shape[0]} px; need at least 8x8.")
    return arr


def read_mask(path: str | Path, shape: tuple[int, int] | None = None, notes: dict | None = None) -> np.ndarray:
    """Read a ground-truth mask as ``(H, W) bool`` (True = defect pixel).

    How pixel values become defect / defect-free (``docs/EVALUATION.md`` has the reasons):

    * grey masks (8-bit, 16-bit, 32-bit int, float): when the brightest value is above half of the
      container's range (127 of 255, 32767 of 65535, 0.5 for floats in [0, 1]), a pixel is defect
      when it is above that half: grey ringing left by JPEG compression or anti-aliased edges (values
      1..~20 around a 255 defect) is background, as the mask's author drew it. When every value is
      at most half the range (masks stored as 0/1, or label maps 0/1/2...), any non-zero pixel is
      defect -- a mid-grey cut would erase them;
    * colour masks (RGB, RGBA, palette): the brightest of the R, G, B channels is used as the grey
      value (a red or green annotation counts like a white one; alpha is ignored);
    * a mask is *non-binary* when it holds more than two distinct values, or two of which neither
      is 0; ``notes["non_binary"]`` says so, so a caller can warn once for all masks.

    Args:
        path: mask file (PNG, BMP, TIFF, JPEG... anything Pillow decodes).
        shape: expected ``(H, W)`` of the image the mask belongs to. A mask of another size with the
            same aspect ratio (within 1 %) is resized nearest-neighbour to ``shape`` after
            binarisation, and ``notes["resized_from"]`` is set to its ``(H, W)``.
        notes: optional dict filled with ``non_binary`` (bool), ``resized_from`` (``(H, W)`` or None)
            and ``n_defect`` (int, defect pixels after binarisation and resizing).
    Returns:
        ``(H, W) bool``, C-contiguous.
    Raises:
        ImageReadError: unreadable mask file, or a mask whose aspect ratio differs from ``shape``'s
            (the one-line message names the file, both sizes and the fix).
    """
    import cv2

    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("RGB", "RGBA", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "LA"):
                arr = np.asarray(img.convert("RGB"), dtype=np.uint8).max(axis=2)
            elif mode == "1":
                arr = np.asarray(img, dtype=np.uint8)
            else:
                arr = np.asarray(img)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: mask file not found. Check the ground_truth folder.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"{path}: cannot read mask ({exc}); re-export it as a PNG of 0 (good) and 255 "
                             f"(defect).") from exc
    if arr.ndim == 3:  # multi-channel modes Pillow returns as (H, W, C): the brightest channel
        arr = arr.max(axis=2)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.floating):
        top = float(np.nanmax(arr)) if arr.size else 0.0
        full = 1.0 if top <= 1.0 else 255.0 if top <= 255.0 else 65535.0
        arr = np.nan_to_num(arr, nan=0.0)
    else:
        top = int(arr.max()) if arr.size else 0
        full = 255 if arr.dtype.itemsize == 1 or top <= 255 else 65535 if top <= 65535 else float(np.iinfo(arr.dtype).max)
    half = full / 2
    values = np.flatnonzero(np.bincount(arr.ravel(), minlength=256)) if arr.dtype == np.uint8 else np.unique(arr)
    non_binary = len(values) > 2 or (len(values) == 2 and values[0] != 0)
    out = arr > half if top > half else arr > 0
    resized_from = None
    if shape is not None and out.shape != tuple(shape):
        (mh, mw), (h, w) = out.shape, tuple(shape)
        if abs(mh * w - mw * h) > 0.01 * max(mh * w, mw * h):
            raise ImageReadError(
                f"{path}: mask is {mw}x{mh} px but its image is {w}x{h} px (another aspect ratio, so it cannot "
                f"be scaled onto the image); re-export the mask at {w}x{h} px.")
        resized_from = (mh, mw)
        out = cv2.resize(out.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
    if notes is not None:
        notes.update(non_binary=bool(non_binary), resized_from=resized_from, n_defect=int(np.count_nonzero(out)))
    return np.ascontiguousarray(out)


MASK_FOLDERS = ("ground_truth",)
"""Sub-folders that hold defect masks (MVTec AD layout); a recursive listing skips them."""


def list_images(folder: str | Path, recursive: bool = False, exclude: Path | None = None) -> list[Path]:
    """Image files in ``folder`` sorted by name (suffixes in :data:`IMAGE_SUFFIXES`, any case).

    With ``recursive``, sub-folders are searched too, except mask folders (:data:`MASK_FOLDERS`,
    so a mask is never taken for a part) and ``exclude`` (e.g. a results folder inside the input).

    Raises:
        DatasetError: the folder does not exist or holds no image (the message suggests
            ``--recursive`` when only sub-folders hold images).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder. Give a folder of images (PNG/JPEG/BMP/TIFF).")
    skip = None if exclude is None else Path(exclude).resolve()

    def keep(p: Path) -> bool:
        if not (p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
            return False
        if recursive:
            rel = p.relative_to(folder).parts[:-1]
            if any(part.lower() in MASK_FOLDERS for part in rel):
                return False
            if skip is not None and p.resolve().is_relative_to(skip):
                return False
        return True

    it = folder.rglob("*") if recursive else folder.iterdir()
    files = sorted(p for p in it if keep(p))
    if not files:
        hint = "Point to the folder that holds the image files."
        if not recursive and any(q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES for q in folder.rglob("*")):
            hint = "Its sub-folders hold images: point to one of them, or add --recursive."
        raise DatasetError(f"{folder}: no images found (looked for {', '.join(IMAGE_SUFFIXES)}). {hint}")
    return files


def expand_paths(paths: list[str | Path]) -> list[Path]:
    """Files and folders given on a command line -> a flat, sorted list of image files.

    Raises:
        DatasetError: a path does not exist, or nothing at all was found.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(list_images(p))
        elif p.is_file():
            out.append(p)
        else:
            raise DatasetError(f"{p}: no such file or folder.")
    if not out:
        raise DatasetError("no images given.")
    return out
