"""Synthetic defects on good images: a label-free sanity check of a threshold.

Two kinds, each returning the altered image and the mask of what was altered:

* ``"cutpaste"`` (after Li et al., "CutPaste: Self-Supervised Learning for Anomaly Detection and
  Localization", CVPR 2021): a rectangle of 2-15 % of the image area is cut from one place,
  colour-jittered, optionally rotated by 90/180/270 degrees, and pasted somewhere else.
* ``"perlin"`` (after Zavrtanik et al., "DRAEM", ICCV 2021): a blob shaped by thresholded Perlin
  noise is blended with a foreign texture -- here Perlin-modulated random colour plus fine grain,
  generated on the spot, so no texture data set is needed.

A threshold that passes fewer than about half of these "obvious" defects is suspicious (see
``docs/LABEL_EFFICIENCY.md``, which compares the synthetic detection rate with real recall). The
check says nothing about subtle real defects: it catches thresholds set far too high, and
scorers that do not react at all.

Usage::

    rng = np.random.default_rng(0)
    bad, mask = make_defect(good_rgb, "perlin", rng)     # (H, W, 3) uint8, (H, W) bool

See also: :meth:`engine.model.InspectionModel.fit` (runs the check on cross-fitted images).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

KINDS = ("cutpaste", "perlin")


def perlin_noise(shape: tuple[int, int], cells: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """2-D gradient (Perlin) noise, ``(H, W) float32`` roughly in [-0.7, 0.7].

    Args:
        shape: ``(H, W)`` output size in pixels.
        cells: lattice cells along ``(H, W)``; more cells = finer blobs.
    """
    h, w = shape
    ch, cw = max(1, int(cells[0])), max(1, int(cells[1]))
    angles = rng.uniform(0, 2 * np.pi, (ch + 1, cw + 1))
    grad = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    y = np.linspace(0, ch, h, endpoint=False)
    x = np.linspace(0, cw, w, endpoint=False)
    yi, xi = np.floor(y).astype(int), np.floor(x).astype(int)
    yf, xf = (y - yi)[:, None], (x - xi)[None, :]

    def corner(dy: int, dx: int) -> np.ndarray:
        g = grad[yi[:, None] + dy, xi[None, :] + dx]
        return g[..., 0] * (yf - dy) + g[..., 1] * (xf - dx)

    def fade(t: np.ndarray) -> np.ndarray:
        return t * t * t * (t * (t * 6 - 15) + 10)

    u, v = fade(xf), fade(yf)
    top = corner(0, 0) * (1 - u) + corner(0, 1) * u
    bottom = corner(1, 0) * (1 - u) + corner(1, 1) * u
    return (top * (1 - v) + bottom * v).astype(np.float32)


def _check_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {img.shape} {img.dtype}")
    if min(img.shape[:2]) < 8:
        raise ValueError(f"image too small for a synthetic defect: {img.shape[:2]}")
    return img


def cutpaste(image: np.ndarray, rng: np.random.Generator, area: tuple[float, float] = (0.02, 0.15),
             aspect: tuple[float, float] = (0.3, 3.3)) -> tuple[np.ndarray, np.ndarray]:
    """Cut a rectangle, jitter it, paste it elsewhere (module docstring).

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        area: range of the patch area as a fraction of the image area.
        aspect: range of the patch's width / height (log-uniform).
    Returns:
        ``(altered image (H, W, 3) uint8, mask (H, W) bool)``.
    """
    img = _check_image(image)
    h, w = img.shape[:2]
    a = rng.uniform(*area) * h * w
    r = math.exp(rng.uniform(math.log(aspect[0]), math.log(aspect[1])))
    ph = int(np.clip(round(math.sqrt(a / r)), 2, h - 1))
    pw = int(np.clip(round(math.sqrt(a * r)), 2, w - 1))
    y0, x0 = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    patch = img[y0:y0 + ph, x0:x0 + pw].astype(np.float32)
    gain = rng.uniform(0.7, 1.3, 3).astype(np.float32)
    patch = np.clip(patch * gain + rng.uniform(-25, 25, 3).astype(np.float32), 0, 255).astype(np.uint8)
    turns = int(rng.integers(0, 4))
    if turns and np.rot90(patch, turns).shape[0] < h and np.rot90(patch, turns).shape[1] < w:
        patch = np.ascontiguousarray(np.rot90(patch, turns))
    ph, pw = patch.shape[:2]
    y1, x1 = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    out = img.copy()
    out[y1:y1 + ph, x1:x1 + pw] = patch
    mask = np.zeros((h, w), bool)
    mask[y1:y1 + ph, x1:x1 + pw] = True
    return out, mask


def perlin_blob(shape: tuple[int, int], rng: np.random.Generator, area: tuple[float, float] = (0.02, 0.15),
                tries: int = 20) -> np.ndarray:
    """``(H, W) bool`` blob(s) from thresholded Perlin noise, covering a fraction of the image in ``area``.

    The threshold is the noise quantile giving a random area fraction in ``area``; the largest
    connected blob is kept when it is big enough, so the defect is one compact region.
    """
    h, w = shape
    for _ in range(tries):
        cells = int(rng.integers(2, 7))
        noise = perlin_noise((h, w), (cells, cells), rng)
        frac = rng.uniform(*area)
        mask = noise >= np.quantile(noise, 1 - frac)
        n, lab, st, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        if n > 1:
            big = 1 + int(np.argmax(st[1:, cv2.CC_STAT_AREA]))
            if st[big, cv2.CC_STAT_AREA] >= area[0] * h * w:
                return lab == big
        if mask.sum() >= area[0] * h * w:
            return mask
    return mask


def perlin_texture(image: np.ndarray, rng: np.random.Generator,
                   area: tuple[float, float] = (0.02, 0.15)) -> tuple[np.ndarray, np.ndarray]:
    """Blend a generated foreign texture into a Perlin blob (module docstring).

    Returns:
        ``(altered image (H, W, 3) uint8, mask (H, W) bool)``.
    """
    img = _check_image(image)
    h, w = img.shape[:2]
    mask = perlin_blob((h, w), rng, area)
    cells = int(rng.integers(8, 32))
    shade = perlin_noise((h, w), (cells, cells), rng)[..., None]
    colour = rng.uniform(0, 255, 3).astype(np.float32)
    tex = colour * (1 + 1.2 * shade) + rng.normal(0, 12, (h, w, 3)).astype(np.float32)
    beta = rng.uniform(0.5, 1.0)
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigmaX=1.0)[..., None] * beta
    out = img.astype(np.float32) * (1 - soft) + tex * soft
    return np.clip(out, 0, 255).astype(np.uint8), mask


def make_defect(image: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic defect of ``kind`` in :data:`KINDS`: ``(image (H, W, 3) uint8, mask (H, W) bool)``.

    Raises:
        ValueError: unknown kind, or not an ``(H, W, 3) uint8`` image.
    """
    if kind == "cutpaste":
        return cutpaste(image, rng)
    if kind == "perlin":
        return perlin_texture(image, rng)
    raise ValueError(f"synthetic defect kind must be one of {KINDS}, got {kind!r}")


def detection_rate(scores, threshold: float, kinds=None) -> dict:
    """Share of synthetic-defect image scores ``>= threshold``, overall and per kind.

    Returns:
        dict ``detection_rate``, ``n``, ``by_kind`` ({kind: rate}), ``scores`` (list).
    """
    s = np.asarray(scores, np.float64).ravel()
    if s.size == 0:
        raise ValueError("no synthetic-defect scores")
    out = {"detection_rate": float(np.mean(s >= threshold)), "n": int(s.size), "scores": s.tolist(), "by_kind": {}}
    if kinds is not None:
        k = np.asarray(kinds)
        out["kinds"] = k.tolist()
        out["by_kind"] = {str(kk): float(np.mean(s[k == kk] >= threshold)) for kk in np.unique(k)}
    return out
