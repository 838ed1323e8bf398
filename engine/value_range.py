"""Images deeper than 8 bits: decoding their true values and mapping them to 0..255 once per model.

A 16-bit container often holds fewer significant bits (Mono10/12/14 cameras write 0..1023 /
0..4095 / 0..16383 into 16-bit PNG or TIFF), a float TIFF may hold 0..1 or any physical unit, and
signed TIFFs hold negative values. Dividing every 16-bit image by 257 makes 12-bit data an almost
black image of ~16 grey levels. A guess per image would be no better: a dark frame would be
stretched differently from a bright one and their scores would not compare. So the mapping is a
:class:`ValueRange` decided **once for a model**, from its good images at fit time
(:func:`measure_value_range`), stored in the model file and applied the same way by ``predict``,
``evaluate``, ``calibrate`` and the app:

* unsigned integers: ``0 .. 2**bit_depth - 1`` -> ``0 .. 255`` linearly. ``bit_depth`` is the
  smallest of :data:`STANDARD_DEPTHS` that holds the largest value of the good images, or the
  files' declared significant bits (PNG ``sBIT``) when every value fits in them;
* signed integers: offset by ``2**(bit_depth - 1)`` first (``-2048 .. 2047`` at 12 bits -> ``0 .. 4095``);
* floats: ``float_range = (lo, hi)`` -> ``0 .. 255``; ``(0, 1)`` when the good images lie in
  0..1, else their overall minimum and maximum;
* 8-bit images (JPEG, 8-bit PNG/BMP/TIFF) are never touched by it.

A value beyond the model's range is clipped (to black or white) and logged as a warning naming the
file (logger ``engine.value_range``), so over-exposed or deeper images are read, never refused.
``--bit-depth`` (fit / evaluate / predict) overrides the measured depth.

Without a model (:data:`STANDALONE`, e.g. viewing a file), the documented default is: unsigned
16-bit -> the declared ``sBIT`` bits when the values fit in them, else the full 0..65535; signed
16-bit -> offset 32768 then 0..65535; 32-bit integers -> the smallest standard depth that holds
the image; floats -> 0..1 when the image lies in it, else the image's own minimum..maximum.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

log = logging.getLogger(__name__)

STANDARD_DEPTHS = (8, 10, 12, 14, 16, 24, 32)
"""Bit depths a measured range is rounded up to (camera formats Mono8..Mono16, then 24 / 32)."""


@dataclass(frozen=True)
class ValueRange:
    """How values of images deeper than 8 bits map to ``0..255`` (module docstring).

    Attributes:
        bit_depth: integer data span ``0 .. 2**bit_depth - 1`` (signed: offset first); None = the
            standalone default.
        float_range: ``(lo, hi)`` of float data; None = the standalone default.
        source: how it was chosen: ``""`` (standalone default), ``"measured"`` (from the good
            images at fit time), ``"option"`` (``--bit-depth``).
        detail: one line saying what was measured (for the console and the model file).
    """

    bit_depth: int | None = None
    float_range: tuple[float, float] | None = None
    source: str = ""
    detail: str = ""

    def to_json(self) -> dict:
        """JSON-able form for the model file's config (``input`` key)."""
        return {"bit_depth": self.bit_depth,
                "float_range": None if self.float_range is None else [float(v) for v in self.float_range],
                "source": self.source, "detail": self.detail}

    @classmethod
    def from_json(cls, d: dict | None) -> "ValueRange":
        """Inverse of :meth:`to_json`; None or ``{}`` (files written before the key existed) = standalone."""
        if not d:
            return STANDALONE
        fr = d.get("float_range")
        bd = d.get("bit_depth")
        return cls(bit_depth=None if bd is None else int(bd),
                   float_range=None if fr is None else (float(fr[0]), float(fr[1])),
                   source=str(d.get("source", "")), detail=str(d.get("detail", "")))

    def describe(self) -> str:
        """``"12-bit"`` / ``"float 0..1"`` / ``""`` (standalone): for the model banner."""
        parts = []
        if self.bit_depth is not None:
            parts.append(f"{self.bit_depth}-bit")
        if self.float_range is not None:
            parts.append(f"float {self.float_range[0]:.6g}..{self.float_range[1]:.6g}")
        return ", ".join(parts)


STANDALONE = ValueRange()
"""The rule without a model (module docstring)."""

EIGHT_BIT = ValueRange(source="measured", detail="8-bit: every good image has 8 bits per sample")
"""A model whose good images were all 8-bit. A deeper image given to it is read by the standalone
rule, with a warning (:func:`to_uint8`): its brightness may differ from what the model learned."""


# ---------------------------------------------------------------------------------------- decoding
def png_info(path: str | Path) -> dict:
    """IHDR bit depth / colour type and the ``sBIT`` chunk of a PNG, read from its header only.

    Returns:
        ``{"bit_depth": int, "color_type": int, "sbit": int | None}`` (``sbit`` = the largest
        declared significant bits over the channels); ``{}`` when the file is not a PNG or its
        header is damaged (the decoder then reports the damage).
    """
    try:
        with open(path, "rb") as fh:
            if fh.read(8) != b"\x89PNG\r\n\x1a\n":
                return {}
            info: dict = {"sbit": None}
            for _ in range(64):  # sBIT must come before IDAT; a few ancillary chunks at most
                head = fh.read(8)
                if len(head) < 8:
                    break
                length, kind = struct.unpack(">I4s", head)
                if kind == b"IHDR":
                    data = fh.read(length)
                    info.update(bit_depth=data[8], color_type=data[9])
                elif kind == b"sBIT":
                    info["sbit"] = max(fh.read(min(length, 4)) or b"\0")
                    fh.seek(length - min(length, 4), 1)
                elif kind in (b"IDAT", b"IEND"):
                    break
                else:
                    fh.seek(length, 1)
                fh.seek(4, 1)  # CRC (the decoder checks it)
            return info if "bit_depth" in info else {}
    except (OSError, struct.error, IndexError):
        return {}


def is_deep(img, path: str | Path) -> bool:
    """Whether a Pillow-opened (not yet loaded) file holds more than 8 bits per sample, or floats,
    or signed integers, so it is decoded by :func:`decode_deep` instead of Pillow's 8-bit modes."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I;16S", "I", "F"):
        return True
    if img.format == "PNG":
        return png_info(path).get("bit_depth", 8) > 8
    if img.format == "TIFF":
        tags = getattr(img, "tag_v2", {})
        bits = tags.get(258, (8,))
        bits = bits if isinstance(bits, tuple) else (bits,)
        fmt = tags.get(339, (1,))
        fmt = fmt if isinstance(fmt, tuple) else (fmt,)
        return max(bits) > 8 or any(f in (2, 3) for f in fmt)
    return False


def decode_deep(path: str | Path) -> np.ndarray:
    """Decode a deep image with OpenCV, keeping its values: ``(H, W)`` or ``(H, W, 3)`` RGB, or
    ``(H, W, 4)`` RGBA, of the file's dtype (uint16, int16, int32, float32, float64...).

    Raises:
        ValueError: OpenCV cannot decode it (the caller names the file).
    """
    import cv2

    buf = np.fromfile(str(path), dtype=np.uint8)  # not cv2.imread: non-ASCII paths on Windows
    arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED) if buf.size else None
    if arr is None:
        raise ValueError("OpenCV cannot decode it either")
    if arr.ndim == 3:
        if arr.shape[2] == 1:
            arr = arr[:, :, 0]
        elif arr.shape[2] == 2:  # gray + alpha
            arr = np.dstack([arr[:, :, 0]] * 3 + [arr[:, :, 1]])
        elif arr.shape[2] == 3:
            arr = arr[:, :, ::-1]
        else:
            arr = arr[:, :, [2, 1, 0, 3]]
    return np.ascontiguousarray(arr)


# ---------------------------------------------------------------------------------------- mapping
def needed_depth(lo: float, hi: float, signed: bool) -> int:
    """Smallest of :data:`STANDARD_DEPTHS` that holds integer values ``lo..hi`` (signed: two's
    complement range ``-2**(b-1) .. 2**(b-1) - 1``)."""
    for b in STANDARD_DEPTHS:
        if signed and -(2 ** (b - 1)) <= lo and hi <= 2 ** (b - 1) - 1:
            return b
        if not signed and hi <= 2 ** b - 1:
            return b
    return STANDARD_DEPTHS[-1]


def _standalone_depth(arr: np.ndarray, sbit: int | None) -> int:
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 2:
        return sbit if sbit and int(arr.max()) <= 2 ** sbit - 1 else 16
    if arr.dtype.itemsize <= 2:
        return 8 * arr.dtype.itemsize
    return needed_depth(float(arr.min()), float(arr.max()), arr.dtype.kind == "i")


def to_uint8(arr: np.ndarray, vr: ValueRange = STANDALONE, path: str | Path = "", sbit: int | None = None
             ) -> np.ndarray:
    """Map the values of a deep image to ``uint8`` by ``vr`` (module docstring), same shape.

    Args:
        arr: ``(H, W[, C])`` of any integer or float dtype (``uint8`` is returned unchanged).
        path: named in the clipping warning.
        sbit: the file's declared significant bits (PNG ``sBIT``), for the standalone rule.
    Returns:
        ``uint8`` array of the same shape; values outside the range are clipped and logged.
    """
    if arr.dtype == np.uint8:
        return arr
    a = arr.astype(np.float64)
    if arr.dtype.kind == "f":
        finite = np.isfinite(a)
        if not finite.all():
            log.warning("%s: %d pixels are NaN or infinite; read as 0", path, int((~finite).sum()))
            a = np.where(finite, a, 0.0)
        if vr.float_range is not None:
            lo, hi = vr.float_range
        else:
            lo, hi = (0.0, 1.0) if a.min() >= 0 and a.max() <= 1 else (float(a.min()), float(a.max()))
        what = f"the range {lo:.6g}..{hi:.6g}"
    else:
        bits = vr.bit_depth or _standalone_depth(arr, sbit)
        if arr.dtype.kind == "i":
            a = a + 2 ** (bits - 1)
        lo, hi = 0.0, float(2 ** bits - 1)
        what = f"{bits}-bit range" + (" (signed, offset)" if arr.dtype.kind == "i" else "")
    if vr.source == "measured" and (vr.float_range if arr.dtype.kind == "f" else vr.bit_depth) is None:
        log.warning("%s: %s image (values %s..%s), but the model learned from 8-bit images; read as %s. If the "
                    "camera's bit depth changed, re-fit on images like this one (or fit with --bit-depth), else "
                    "verdicts may be wrong.", path, "float" if arr.dtype.kind == "f" else f"{arr.dtype.itemsize * 8}-bit",
                    f"{float(np.min(a)):.6g}" if a.size else "?", f"{float(np.max(a)):.6g}" if a.size else "?", what)
    elif vr.source and a.size and (a.min() < lo or a.max() > hi):
        n = int(((a < lo) | (a > hi)).sum())
        log.warning("%s: %d pixels lie outside the model's %s (%s); they are clipped. If such images are "
                    "normal, re-fit with their bit depth (--bit-depth).", path, n, what,
                    vr.detail or vr.source)
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.clip(np.rint((a - lo) * scale), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------- measuring
def measure_value_range(paths: Iterable[str | Path], bit_depth: int | None = None) -> ValueRange:
    """The :class:`ValueRange` of a model, from its good images (module docstring).

    Only deep files are decoded (8-bit files are recognised from their header); an unreadable
    file is left to the feature extraction, which reports it.

    Args:
        paths: the good images.
        bit_depth: an explicit depth (``--bit-depth``): used as given (source ``"option"``).
    Returns:
        :data:`EIGHT_BIT` when no good image is deeper than 8 bits and no depth is given.
    """
    from PIL import Image

    int_hi, int_lo, signed, sbits, n_int, n_sbit = 0.0, 0.0, False, [], 0, 0
    f_lo, f_hi, n_float = np.inf, -np.inf, 0
    for p in paths:
        try:
            with Image.open(p) as img:
                deep = is_deep(img, p)
            if not deep:
                continue
            arr = decode_deep(p)
        except Exception:  # noqa: BLE001 - reported when the image is read for its features
            continue
        if arr.ndim == 3 and arr.shape[2] == 4:
            arr = arr[:, :, :3]
        if arr.dtype.kind == "f":
            a = arr[np.isfinite(arr)]
            if a.size:
                f_lo, f_hi, n_float = min(f_lo, float(a.min())), max(f_hi, float(a.max())), n_float + 1
        elif arr.dtype != np.uint8:
            n_int += 1
            int_lo, int_hi = min(int_lo, float(arr.min())), max(int_hi, float(arr.max()))
            signed |= arr.dtype.kind == "i"
            s = png_info(p).get("sbit")
            if s:
                n_sbit += 1
                sbits.append(s)
    frange = None
    if n_float:
        frange = (0.0, 1.0) if f_lo >= 0 and f_hi <= 1 else (f_lo, f_hi)
    if bit_depth is not None:
        return ValueRange(bit_depth=int(bit_depth), float_range=frange, source="option",
                          detail=f"--bit-depth {bit_depth}")
    if not n_int and not n_float:
        return EIGHT_BIT
    depth, details = None, []
    if n_int:
        depth = needed_depth(int_lo, int_hi, signed)
        if n_sbit == n_int and not signed and int_hi <= 2 ** max(sbits) - 1:
            depth = max(sbits)
            why = f"declared {depth} significant bits (PNG sBIT), largest value {int_hi:.0f}"
        else:
            why = f"largest value {int_hi:.0f}" + (f", smallest {int_lo:.0f} (signed)" if signed else "")
        details.append(f"{depth}-bit from {n_int} good image{'s' if n_int != 1 else ''} ({why})")
    if n_float:
        details.append(f"float {frange[0]:.6g}..{frange[1]:.6g} from {n_float} good float image"
                       f"{'s' if n_float != 1 else ''}")
    return ValueRange(bit_depth=depth, float_range=frange, source="measured", detail="; ".join(details))
