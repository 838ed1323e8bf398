"""Reading image files into one canonical array form.

Every image the engine sees is converted the same documented way:

* output: ``(H, W, 3) uint8`` RGB, C-contiguous, in the file's own pixel size (no resizing here);
* grayscale (``1``, ``L``) is replicated to three channels;
* images deeper than 8 bits -- 16-bit gray or RGB(A) PNG/TIFF, signed integer and float TIFF --
  are decoded with their true values (OpenCV) and mapped to 0..255 by a
  :class:`~engine.value_range.ValueRange`: the model's (decided once from its good images, stored
  in the model file, see :mod:`engine.value_range`), or without a model the standalone default
  (16-bit: the PNG's declared ``sBIT`` bits when its values fit in them, else 0..65535 = divided
  by 257; float: 0..1 when the image lies in it, else its own min..max). 8-bit files are never
  rescaled;
* RGBA / LA / P with transparency: alpha is composited over black (the background of a lit part);
* palette (``P``) and CMYK are converted to RGB by Pillow; an animated GIF/WEBP gives its first frame;
* EXIF orientation is applied (the picture as every viewer, and so every mask-drawing tool, shows it).

Supported formats: PNG, JPEG, BMP, TIFF, WEBP (and anything else Pillow decodes); HEIC/HEIF are
refused with the advice to export PNG/JPEG (no reader here). Images are 8x8 px at least and
:data:`MAX_PIXELS` at most (a guard against decompression bombs: the size is read from the header
and a larger file is refused before it is decoded).
A file that cannot be decoded raises :class:`engine.errors.ImageReadError` naming the file;
it is never silently replaced by zeros.

Listing folders (:func:`list_images`, :func:`expand_paths`) lives in :mod:`engine.listing` and is
re-exported here.
"""

from __future__ import annotations

import errno
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DatasetError, ImageReadError  # noqa: F401  (DatasetError: re-exported for callers)
from .listing import IMAGE_SUFFIXES, MASK_FOLDERS, ImageList, expand_paths, list_images  # noqa: F401
from .value_range import STANDALONE, ValueRange, decode_deep, is_deep, png_info, to_uint8

MAX_PIXELS = 2 * 89_478_485
"""Largest image read, in pixels (~179 MP, e.g. 16000x11000): Pillow's own decompression-bomb error
limit, checked from the header before decoding. 12000x9000 (108 MP) is read; a larger image is refused
with a message that names it and says to downscale or crop it."""

# Pillow warns from half that size on; the limit above is ours, checked on every read: no warning
# (warnings.catch_warnings per call would not be thread-safe, and images are decoded in threads)
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

UNSUPPORTED_SUFFIXES = {".heic": "HEIC", ".heif": "HEIF"}
"""Image types recognised by name that no installed reader decodes."""


def _composite(rgba: np.ndarray, alpha_max: float) -> np.ndarray:
    """``(H, W, 4)`` float RGBA, alpha in ``0..alpha_max`` -> ``(H, W, 3)`` over black."""
    return rgba[:, :, :3] * (rgba[:, :, 3:4] / alpha_max)


def to_rgb_uint8(img: Image.Image) -> np.ndarray:
    """Convert a decoded 8-bit Pillow image to ``(H, W, 3) uint8`` RGB (rules in the module docstring).

    ``I;16`` / ``I`` / ``F`` images use the standalone :class:`~engine.value_range.ValueRange`."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        dtype = np.uint16 if mode.startswith("I;16") else (np.float32 if mode == "F" else np.int32)
        arr = to_uint8(np.asarray(img, dtype=dtype), STANDALONE)
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA"):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
        rgb = np.clip(np.rint(_composite(rgba, 255.0)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(rgb)
    if mode in ("1", "L"):
        arr = np.asarray(img.convert("L"), dtype=np.uint8)
        return np.ascontiguousarray(np.repeat(arr[:, :, None], 3, axis=2))
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def deep_to_rgb_uint8(arr: np.ndarray, value_range: ValueRange = STANDALONE, path: str | Path = "",
                      sbit: int | None = None) -> np.ndarray:
    """A deep image's true values (``(H, W)``, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA, any integer or
    float dtype) -> ``(H, W, 3) uint8`` RGB by ``value_range`` (:func:`engine.value_range.to_uint8`);
    alpha spans the dtype's full range (floats: 0..1) and is composited over black."""
    if arr.ndim == 3 and arr.shape[2] == 4:
        alpha_max = 1.0 if arr.dtype.kind == "f" else float(np.iinfo(arr.dtype).max)
        rgb8 = to_uint8(arr[:, :, :3], value_range, path, sbit).astype(np.float32)
        alpha = np.clip(arr[:, :, 3:4].astype(np.float32) / alpha_max, 0, 1)
        return np.ascontiguousarray(np.clip(np.rint(rgb8 * alpha), 0, 255).astype(np.uint8))
    out = to_uint8(arr, value_range, path, sbit)
    if out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)
    return np.ascontiguousarray(out)


def _decode_error(path: Path, exc: BaseException) -> ImageReadError:
    detail = str(exc).replace("\n", " ").strip() or type(exc).__name__
    if path.is_file() and path.stat().st_size == 0:
        return ImageReadError(f"{path}: empty file (0 bytes): it was not written completely. Copy it again "
                              f"from the camera or remove it from the folder.")
    return ImageReadError(
        f"{path}: cannot decode image ({detail}). The file is corrupt, truncated or not an "
        f"image; re-export it as PNG/JPEG/BMP/TIFF or remove it from the folder.")


def read_image(path: str | Path, value_range: ValueRange = STANDALONE) -> np.ndarray:
    """Read one image file as ``(H, W, 3) uint8`` RGB (rules in the module docstring).

    Args:
        path: the image file.
        value_range: how values deeper than 8 bits map to 0..255: a model's
            (``model.value_range``), or the standalone default. 8-bit files ignore it.
    Raises:
        ImageReadError: the file is missing, empty, truncated, not an image, of an unsupported
            type, smaller than 8x8 or larger than :data:`MAX_PIXELS`; the one-line message names
            the file and the fix.
    """
    path = Path(path)
    kind = UNSUPPORTED_SUFFIXES.get(path.suffix.lower())
    try:
        with Image.open(path) as img:
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise ImageReadError(
                    f"{path}: {w}x{h} px ({w * h / 1e6:.0f} MP) is larger than the {MAX_PIXELS / 1e6:.0f} MP "
                    f"limit on decoded images (a guard against decompression bombs). Downscale or crop it.")
            if is_deep(img, path):
                arr = deep_to_rgb_uint8(decode_deep(path), value_range, path, png_info(path).get("sbit"))
            else:
                img.load()
                img = ImageOps.exif_transpose(img) if img.getexif().get(0x0112, 1) != 1 else img
                arr = to_rgb_uint8(img)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found. Check the path.") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: is a folder, not an image file.") from None
    except PermissionError:
        raise ImageReadError(f"{path}: permission denied. Make the file readable (e.g. chmod a+r) or "
                             f"copy it.") from None
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow refuses it already when opening (> MAX_PIXELS)
        import re

        n = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(n.group(1)) / 1e6:.0f} MP" if n else "its size"
        raise ImageReadError(f"{path}: the image ({size}) is larger than the {MAX_PIXELS / 1e6:.0f} MP limit on "
                             f"decoded images (a guard against decompression bombs). Downscale or crop it.") from None
    except UnidentifiedImageError as exc:  # Pillow does not know it (e.g. float RGB TIFF): OpenCV may
        try:
            arr = deep_to_rgb_uint8(decode_deep(path), value_range, path)
        except Exception:  # noqa: BLE001 - neither reader decodes it: report Pillow's reason
            if kind:
                raise ImageReadError(f"{path}: {kind} images cannot be read here (no {kind} decoder installed). "
                                     f"Export the images as PNG or JPEG.") from None
            raise _decode_error(path, exc) from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
            raise ImageReadError(f"{path}: file name too long for the file system "
                                 f"({len(path.name.encode())} bytes, at most 255 per name). Rename the file.") from None
        if kind and not isinstance(exc, MemoryError):
            raise ImageReadError(f"{path}: {kind} images cannot be read here (no {kind} decoder installed). "
                                 f"Export the images as PNG or JPEG.") from None
        raise _decode_error(path, exc) from None
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
