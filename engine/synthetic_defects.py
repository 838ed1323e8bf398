"""Synthetic defects on good images: a label-free sanity check of a threshold.

Six kinds, each returning the altered image and the mask of what was altered:

* ``"cutpaste"`` (after Li et al., "CutPaste: Self-Supervised Learning for Anomaly Detection and
  Localization", CVPR 2021): a rectangle of 2-15 % of the image area is cut from one place,
  colour-jittered, optionally rotated by 90/180/270 degrees, and pasted somewhere else.
* ``"perlin"`` (after Zavrtanik et al., "DRAEM", ICCV 2021): a blob shaped by thresholded Perlin
  noise is blended with a foreign texture -- here Perlin-modulated random colour plus fine grain,
  generated on the spot, so no texture data set is needed.

* ``"nsa"`` (after Schlüter et al., "Natural Synthetic Anomalies", ECCV 2022): a patch of 1-8 % of
  the part's area from *another* good image (``donor``; the same image when there is none) is
  blended in with Poisson image editing (Pérez et al. 2003, ``cv2.seamlessClone``): no sharp edge,
  only a piece of texture that does not belong where it is.
* ``"scratch"``: a thin curved line (quadratic Bezier, 1-4 px, 15-50 % of the part's size),
  darker or lighter than the surface around it.
* ``"spot"``: one to three small round stains or pits (2-6 % of the part's size across), soft-edged,
  darker or lighter.
* ``"colour"``: a Perlin-shaped region of 2-8 % of the part where brightness (grey parts) or
  colour (colour parts) changes, texture kept -- discolouration, a burn mark, missing coating.

The new four are placed on the part and sized relative to it: ``part_region`` separates the part
from a plain background (pixels far from the border's colour); on textures and full-frame parts
the whole image is the part. Grey images stay grey.

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

KINDS = ("cutpaste", "perlin", "nsa", "scratch", "spot", "colour")


def perlin_noise(shape: tuple[int, int], cells: tuple[int, int], rng: np.random.Generator,
                 max_side: int = 128) -> np.ndarray:
    """2-D gradient (Perlin) noise, ``(H, W) float32`` roughly in [-0.7, 0.7].

    Args:
        shape: ``(H, W)`` output size in pixels.
        cells: lattice cells along ``(H, W)``; more cells = finer blobs.
        max_side: the noise is computed on a grid of at most this side and resized bilinearly
            (it is smooth within a lattice cell, so at 32 cells or fewer 128 px lose nothing visible
            and cost 1/16 of a 512 px grid).
    """
    h, w = shape
    scale = max(1.0, max(h, w) / max_side)
    gh, gw = max(2, round(h / scale)), max(2, round(w / scale))
    ch, cw = max(1, int(cells[0])), max(1, int(cells[1]))
    angles = rng.uniform(0, 2 * np.pi, (ch + 1, cw + 1))
    grad = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    y = np.linspace(0, ch, gh, endpoint=False)
    x = np.linspace(0, cw, gw, endpoint=False)
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
    noise = (top * (1 - v) + bottom * v).astype(np.float32)
    if (gh, gw) != (h, w):
        noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR)
    return noise


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
    shift = rng.uniform(-25, 25, 3).astype(np.float32)
    if _is_grey(img):  # a grey part stays grey
        gain, shift = np.full(3, gain[0], np.float32), np.full(3, shift[0], np.float32)
    patch = np.clip(patch * gain + shift, 0, 255).astype(np.uint8)
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
    grain = rng.normal(0, 12, (h, w, 3)).astype(np.float32)
    if _is_grey(img):  # a grey part stays grey
        colour, grain = np.full(3, colour[0], np.float32), np.repeat(grain[..., :1], 3, axis=2)
    tex = colour * (1 + 1.2 * shade) + grain
    beta = rng.uniform(0.5, 1.0)
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigmaX=1.0)[..., None] * beta
    out = img.astype(np.float32) * (1 - soft) + tex * soft
    return np.clip(out, 0, 255).astype(np.uint8), mask


def part_region(image: np.ndarray) -> np.ndarray:
    """``(H, W) bool``: where the part is, when it lies on a plain background; else all True.

    The background colour is the median of the image's one-pixel border; pixels farther from it
    than ``max(20, 4 x`` the border's median absolute deviation``)`` (Euclidean, RGB levels) are the part,
    cleaned by a morphological opening and closing. When that leaves under 5 % or over 90 % of
    the image (textures, full-frame parts) the whole image counts as the part.
    """
    img = _check_image(image).astype(np.float32)
    h, w = img.shape[:2]
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    bg = np.median(border, axis=0)
    spread = float(np.median(np.linalg.norm(border - bg, axis=1)))
    fg = np.linalg.norm(img - bg, axis=2) > max(20.0, 4 * spread)
    k = max(3, (min(h, w) // 64) | 1)
    fg = cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_OPEN, np.ones((k, k), np.uint8))
    fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8)).astype(bool)
    return fg if 0.05 <= fg.mean() <= 0.9 else np.ones((h, w), bool)


def _on_part(region: np.ndarray, rng: np.random.Generator, margin: int = 0) -> tuple[int, int]:
    """A random ``(y, x)`` inside ``region``, at least ``margin`` px from the image border when possible."""
    h, w = region.shape
    inner = np.zeros_like(region)
    inner[margin:h - margin, margin:w - margin] = region[margin:h - margin, margin:w - margin]
    ys, xs = np.nonzero(inner if inner.any() else region)
    i = int(rng.integers(len(ys)))
    return int(ys[i]), int(xs[i])


def _part(image: np.ndarray, region: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, float]:
    """``(checked image, part region, part size = sqrt(region area) in px)``."""
    img = _check_image(image)
    region = part_region(img) if region is None else region
    return img, region, math.sqrt(region.sum())


def _is_grey(img: np.ndarray) -> bool:
    return bool(np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2]))


def _shade(img: np.ndarray, alpha: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """``img + alpha * delta``: alpha ``(H, W)`` in [0, 1], delta ``(3,)`` or ``(H, W, 3)`` levels."""
    out = img.astype(np.float32) + alpha[..., None] * delta
    return np.clip(out, 0, 255).astype(np.uint8)


def _altered(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return (before != after).any(axis=2)


def nsa_patch(image: np.ndarray, rng: np.random.Generator, donor: np.ndarray | None = None,
              area: tuple[float, float] = (0.01, 0.08), region: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Poisson-blend a patch of ``donor`` (default: ``image``) onto the part (module docstring).

    Returns ``(altered image (H, W, 3) uint8, mask (H, W) bool of changed pixels)``.
    """
    img = _check_image(image)
    src = img if donor is None else _check_image(donor)
    if src.shape != img.shape:
        src = cv2.resize(src, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    region = part_region(img) if region is None else region
    a = rng.uniform(*area) * region.sum()
    r = math.exp(rng.uniform(math.log(0.5), math.log(2.0)))
    ph = int(np.clip(round(math.sqrt(a / r)), min(8, h // 2), max(1, h - 4)))  # fits with 2 px either side
    pw = int(np.clip(round(math.sqrt(a * r)), min(8, w // 2), max(1, w - 4)))
    y0, x0 = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    if donor is not None:  # from the donor's part, at a random place
        sy, sx = _on_part(part_region(src), rng)
        y0, x0 = int(np.clip(sy - ph // 2, 0, h - ph)), int(np.clip(sx - pw // 2, 0, w - pw))
    patch = src[y0:y0 + ph, x0:x0 + pw]
    cy, cx = _on_part(region, rng, margin=max(ph, pw) // 2 + 2)
    cy, cx = int(np.clip(cy, ph // 2 + 2, h - (ph - ph // 2) - 2)), int(np.clip(cx, pw // 2 + 2, w - (pw - pw // 2) - 2))
    pmask = np.full((ph, pw), 255, np.uint8)
    try:  # OpenCV wants BGR; the channel order does not matter to the blend
        out = cv2.seamlessClone(np.ascontiguousarray(patch), np.ascontiguousarray(img), pmask, (cx, cy),
                                cv2.NORMAL_CLONE)
    except cv2.error:  # a patch too small for the Poisson solver (tiny images): paste it as it is
        out = img.copy()
        out[cy - ph // 2:cy - ph // 2 + ph, cx - pw // 2:cx - pw // 2 + pw] = patch
    return out, _altered(img, out)


def scratch(image: np.ndarray, rng: np.random.Generator, region: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """A thin curved scratch on the part (module docstring): ``(image, mask)``."""
    img, region, size = _part(image, region)
    length = rng.uniform(0.15, 0.5) * size
    width = int(rng.integers(1, 5))
    y, x = _on_part(region, rng)
    ang = rng.uniform(0, math.pi)
    d = np.array([math.cos(ang), math.sin(ang)]) * length / 2
    p0, p2 = np.array([x, y]) - d, np.array([x, y]) + d
    p1 = (p0 + p2) / 2 + np.array([-d[1], d[0]]) * rng.uniform(-0.6, 0.6)
    t = np.linspace(0, 1, 64)[:, None]
    pts = ((1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t ** 2 * p2).round().astype(np.int32)
    line = np.zeros(img.shape[:2], np.uint8)
    cv2.polylines(line, [pts], False, 255, thickness=width, lineType=cv2.LINE_AA)
    alpha = line.astype(np.float32) / 255 * rng.uniform(0.6, 1.0)
    delta = rng.choice([-1, 1]) * rng.uniform(40, 110)
    out = _shade(img, alpha, np.full(3, delta, np.float32))
    return out, _altered(img, out)


def spot(image: np.ndarray, rng: np.random.Generator, region: np.ndarray | None = None
         ) -> tuple[np.ndarray, np.ndarray]:
    """One to three soft round stains or pits on the part (module docstring): ``(image, mask)``."""
    img, region, size = _part(image, region)
    alpha = np.zeros(img.shape[:2], np.float32)
    for _ in range(int(rng.integers(1, 4))):
        y, x = _on_part(region, rng)
        rad = max(1.5, rng.uniform(0.01, 0.03) * size)
        axes = (max(1, round(rad * rng.uniform(0.6, 1.4))), max(1, round(rad * rng.uniform(0.6, 1.4))))
        blob = np.zeros_like(alpha)
        cv2.ellipse(blob, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1, cv2.LINE_AA)
        alpha = np.maximum(alpha, cv2.GaussianBlur(blob, (0, 0), sigmaX=max(0.5, rad / 4)))
    if _is_grey(img):
        delta = np.full(3, rng.choice([-1, 1]) * rng.uniform(40, 120), np.float32)
    else:
        delta = rng.uniform(-120, 120, 3).astype(np.float32)
        delta *= rng.uniform(40, 120) / max(1.0, float(np.abs(delta).max()))
    out = _shade(img, alpha * rng.uniform(0.7, 1.0), delta)
    return out, _altered(img, out)


def colour_change(image: np.ndarray, rng: np.random.Generator, area: tuple[float, float] = (0.02, 0.08),
                  region: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Brightness (grey) or colour change in a Perlin-shaped region of the part: ``(image, mask)``."""
    img = _check_image(image)
    region = part_region(img) if region is None else region
    frac = float(region.mean())
    blob = perlin_blob(img.shape[:2], rng, (area[0] * frac, area[1] * frac)) & region
    if not blob.any():
        blob = region & perlin_blob(img.shape[:2], rng, area)
    alpha = cv2.GaussianBlur(blob.astype(np.float32), (0, 0), sigmaX=2.0)
    f = img.astype(np.float32)
    if _is_grey(img):
        gain = np.full(3, rng.choice([rng.uniform(0.55, 0.8), rng.uniform(1.25, 1.6)]), np.float32)
        shift = np.zeros(3, np.float32)
    else:
        gain = rng.uniform(0.6, 1.4, 3).astype(np.float32)
        shift = rng.uniform(-30, 30, 3).astype(np.float32)
    changed = np.clip(f * gain + shift, 0, 255)
    out = np.clip(f + alpha[..., None] * (changed - f), 0, 255).astype(np.uint8)
    return out, _altered(img, out)


def make_defect(image: np.ndarray, kind: str, rng: np.random.Generator, donor: np.ndarray | None = None,
                region: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic defect of ``kind`` in :data:`KINDS`: ``(image (H, W, 3) uint8, mask (H, W) bool)``.

    ``donor``: another good image for ``"nsa"`` (ignored by the other kinds); ``region``: the
    image's :func:`part_region`, when the caller has it already (several kinds on one image).

    Raises:
        ValueError: unknown kind, or not an ``(H, W, 3) uint8`` image.
    """
    makers = {"cutpaste": lambda: cutpaste(image, rng), "perlin": lambda: perlin_texture(image, rng),
              "nsa": lambda: nsa_patch(image, rng, donor, region=region),
              "scratch": lambda: scratch(image, rng, region), "spot": lambda: spot(image, rng, region),
              "colour": lambda: colour_change(image, rng, region=region)}
    if kind not in makers:
        raise ValueError(f"synthetic defect kind must be one of {KINDS}, got {kind!r}")
    return makers[kind]()


MIN_SIDE = 32
"""Shorter side (px) under which :func:`defects_of_every_kind` enlarges an image first."""


def _at_least(image: np.ndarray, side: int = MIN_SIDE) -> np.ndarray:
    h, w = image.shape[:2]
    if min(h, w) >= side:
        return image
    s = side / min(h, w)
    return cv2.resize(image, (max(side, round(w * s)), max(side, round(h * s))), interpolation=cv2.INTER_LINEAR)


def defects_of_every_kind(image: np.ndarray, rng: np.random.Generator, donor: np.ndarray | None = None,
                          within: np.ndarray | None = None) -> tuple[list[np.ndarray], list[str]]:
    """One synthetic defect of each of :data:`KINDS` on ``image`` (its :func:`part_region` found once):
    ``([altered (H, W, 3) uint8 image, ...], [kind, ...])``; ``donor`` as :func:`make_defect`.

    An image under :data:`MIN_SIDE` px on its shorter side (a tiny input the backbone resizes
    anyway) is first enlarged to that side (bilinear), so every kind has room; the altered images
    then have the enlarged size.

    ``within``: ``(H, W) bool``, a region of interest (:mod:`engine.roi`) the defects must lie in.
    The defects are then made on the region's bounding box (at least :data:`MIN_SIDE` px a side
    where the image allows), sized and placed relative to it, with the part found in the box and
    inside the region; pixels the defect would change outside the region are kept as they were.
    """
    if within is None:
        image = _at_least(image)
        donor = None if donor is None else _at_least(donor)
        region = part_region(image)
        return [make_defect(image, kind, rng, donor, region)[0] for kind in KINDS], list(KINDS)
    within = np.asarray(within, bool)
    if within.shape != image.shape[:2]:
        raise ValueError(f"region mask {within.shape} does not match the image {image.shape[:2]}")
    if min(image.shape[:2]) < MIN_SIDE:
        image = _at_least(image)
        within = cv2.resize(within.astype(np.uint8), (image.shape[1], image.shape[0]),
                            interpolation=cv2.INTER_NEAREST).astype(bool)
    if not within.any():
        raise ValueError("the region of interest holds no pixel of this image")
    h, w = image.shape[:2]
    ys, xs = np.nonzero(within)
    y0, y1 = _span(int(ys.min()), int(ys.max()) + 1, h)
    x0, x1 = _span(int(xs.min()), int(xs.max()) + 1, w)
    box, inside = image[y0:y1, x0:x1], within[y0:y1, x0:x1]
    if donor is not None:
        donor = cv2.resize(donor, (w, h), interpolation=cv2.INTER_AREA) if donor.shape[:2] != (h, w) else donor
        donor = donor[y0:y1, x0:x1]
    region = part_region(box) & inside
    if not region.any():
        region = inside
    out = []
    for kind in KINDS:
        made = make_defect(box, kind, rng, donor, region)[0]
        full = image.copy()
        full[y0:y1, x0:x1] = np.where(inside[..., None], made, box)
        out.append(full)
    return out, list(KINDS)


def _span(lo: int, hi: int, size: int, least: int = MIN_SIDE) -> tuple[int, int]:
    """``[lo, hi)`` widened around its centre to at least ``least`` px, kept within ``[0, size)``."""
    if hi - lo >= least or size <= least:
        return (lo, hi) if hi - lo >= least else (0, size)
    lo = max(0, min((lo + hi) // 2 - least // 2, size - least))
    return lo, lo + least


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
