"""Geometry of the region-of-interest editor and outline, without Qt: what is not drawing.

Two coordinate systems meet here:

* **view** coordinates, those of the pyqtgraph views (:mod:`gui.roi_editor`,
  :mod:`gui.image_view_widget`): the image item covers ``[0, W] x [0, H]``, pixel ``(c, r)``
  spans ``[c, c + 1) x [r, r + 1)``, so its centre is at ``(c + 0.5, r + 0.5)``;
* **region** coordinates, those of :class:`engine.roi.RegionOfInterest`: OpenCV's, pixel
  centres at integers (a vertex at ``(c, r)`` sits on the centre of pixel ``(c, r)``).

So a point clicked in the view becomes the pixel under it (its centre), clamped to the image
(``[0, W - 1] x [0, H - 1]``): a polygon clicked past the image's border ends on its outer pixels,
and a rectangle clicked past two opposite corners keeps the whole image.

Usage::

    include = [rectangle(view_to_image(10, 10, w, h), view_to_image(90, 60, w, h))]
    roi = build_region(include, [], w, h)          # None when nothing is drawn: whole image
    describe(roi, h, w)                            # "region: 1 polygon, 58 % of the image"

See also :mod:`engine.roi` (the region itself: mask, JSON, scaling to other image sizes).
"""

from __future__ import annotations

import numpy as np

from engine.roi import Polygon, RegionOfInterest

HALF_PIXEL = 0.5
"""Offset from region coordinates (pixel centres at integers) to view coordinates (pixel corners)."""
SHADE_RGBA = (10, 10, 20, 150)
"""Colour laid over the pixels outside the region in the editor (dark, 59 % opaque)."""


def view_to_image(x: float, y: float, width: int, height: int) -> tuple[float, float]:
    """The pixel under a point of the view, in region coordinates, clamped to the image.

    A corner sits on the centre of the pixel clicked (or the corner handle dragged onto), so the
    pixel under the mouse is the outline's and is kept (outline pixels belong to the polygon).

    Args:
        x, y: view coordinates in pixels (may lie outside the image).
        width, height: image size in pixels.
    Returns:
        ``(column, row)`` as floats, whole numbers in ``[0, width - 1] x [0, height - 1]``.
    """
    return (float(min(max(np.floor(x), 0), width - 1)), float(min(max(np.floor(y), 0), height - 1)))


def image_to_view(x: float, y: float) -> tuple[float, float]:
    """A point in region coordinates (pixel centres at integers) in view coordinates."""
    return float(x) + HALF_PIXEL, float(y) + HALF_PIXEL


def rectangle(a: tuple[float, float], b: tuple[float, float]) -> Polygon:
    """The axis-aligned rectangle with opposite corners ``a`` and ``b`` as a 4-vertex polygon
    (top-left, top-right, bottom-right, bottom-left; any coordinate system)."""
    x0, x1 = sorted((float(a[0]), float(b[0])))
    y0, y1 = sorted((float(a[1]), float(b[1])))
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def polygon_area(poly: Polygon) -> float:
    """Area enclosed by ``poly`` (shoelace formula; square pixels; 0 for fewer than 3 vertices)."""
    if len(poly) < 3:
        return 0.0
    p = np.asarray(poly, np.float64)
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def distinct_vertices(poly: Polygon, tolerance: float = 1e-6) -> Polygon:
    """``poly`` without repeated consecutive vertices (a double-click lands twice on the same
    point), the closing vertex included when it repeats the first."""
    out: Polygon = []
    for x, y in poly:
        if not out or abs(x - out[-1][0]) > tolerance or abs(y - out[-1][1]) > tolerance:
            out.append((float(x), float(y)))
    while len(out) > 1 and abs(out[0][0] - out[-1][0]) <= tolerance and abs(out[0][1] - out[-1][1]) <= tolerance:
        out.pop()
    return out


def polygon_problem(poly: Polygon) -> str | None:
    """Why ``poly`` cannot be a region polygon (fewer than 3 distinct vertices, no area), or None."""
    pts = distinct_vertices(poly)
    if len(pts) < 3:
        return f"a polygon needs at least 3 distinct corners (got {len(pts)}). Click at least 3 points."
    if polygon_area(pts) < 0.5:
        return "the polygon encloses no area (its corners lie on one line). Click corners around the part."
    return None


def build_region(include: list[Polygon], exclude: list[Polygon], width: int, height: int) -> RegionOfInterest | None:
    """The region drawn on a ``width x height`` image, or None when nothing is drawn (whole image).

    Args:
        include, exclude: polygons in region coordinates (:func:`view_to_image`); vertices are
            clamped to the image and repeated consecutive vertices dropped.
    Raises:
        engine.errors.DatasetError: a polygon with fewer than 3 vertices (from RegionOfInterest).
    """
    if not include and not exclude:
        return None
    def clean(poly: Polygon) -> Polygon:
        return distinct_vertices([(min(max(x, 0.0), width - 1.0), min(max(y, 0.0), height - 1.0)) for x, y in poly])
    return RegionOfInterest(include=[clean(p) for p in include], exclude=[clean(p) for p in exclude],
                            ref_width=width, ref_height=height)


def coverage(roi: RegionOfInterest | None, height: int, width: int) -> float:
    """Share (0..1) of the pixels of a ``height x width`` image inside the region (1.0 for None)."""
    if roi is None:
        return 1.0
    return float(roi.pixel_mask(height, width).mean())


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def percent(share: float) -> str:
    """``0.634`` -> ``"63 %"``; a share above 0 but under 0.5 % reads ``"< 1 %"`` (never "0 %" for some)."""
    if 0.0 < share < 0.005:
        return "< 1 %"
    if 0.995 <= share < 1.0:
        return "> 99 %"
    return f"{100 * share:.0f} %"


def describe(roi: RegionOfInterest | None, height: int, width: int) -> str:
    """One line for the operator, e.g. ``"region: 2 polygons, 1 ignore region, 63 % of the image"``.

    The share is measured on a ``height x width`` image (the mask the engine uses for it).
    """
    if roi is None or roi.is_whole_image:
        return "region: whole image (100 %)"
    parts = [_count(len(roi.include), "polygon") if roi.include else "whole image"]
    if roi.exclude:
        parts.append(_count(len(roi.exclude), "ignore region"))
    share = coverage(roi, height, width)
    text = f"region: {', '.join(parts)}, {percent(share)} of the image"
    if share == 0.0:
        text += " — nothing would be judged: draw the region around the part"
    return text


def scaled_polygons(roi: RegionOfInterest, width: int, height: int) -> tuple[list[Polygon], list[Polygon]]:
    """The region's ``(include, exclude)`` polygons on a ``width x height`` image (region
    coordinates): :meth:`engine.roi.RegionOfInterest.scaled`, as the mask the engine uses."""
    region = roi.scaled(width, height)
    return region.include, region.exclude


def outline_xy(polygons: list[Polygon]) -> tuple[np.ndarray, np.ndarray]:
    """Closed outlines of ``polygons`` (region coordinates) as one polyline in view coordinates:
    ``(x, y)`` float64 arrays, the polygons separated by NaN (pyqtgraph ``connect="finite"``)."""
    xs: list[float] = []
    ys: list[float] = []
    for p in polygons:
        for x, y in list(p) + [p[0]]:
            vx, vy = image_to_view(x, y)
            xs.append(vx)
            ys.append(vy)
        xs.append(np.nan)
        ys.append(np.nan)
    return np.asarray(xs, np.float64), np.asarray(ys, np.float64)


def display_size(height: int, width: int, max_side: int = 1024) -> tuple[int, int]:
    """``(h, w)`` of a mask drawn for display: the image's size, shrunk so the longer side is at
    most ``max_side`` (a 20 MP frame needs no 20 MP overlay to be seen)."""
    s = min(1.0, max_side / max(height, width))
    return max(1, round(height * s)), max(1, round(width * s))


def shade_rgba(mask: np.ndarray, rgba: tuple[int, int, int, int] = SHADE_RGBA) -> np.ndarray:
    """``(h, w, 4) uint8`` overlay: ``rgba`` where ``mask`` (``(h, w) bool``) is False, transparent where True."""
    out = np.zeros(mask.shape + (4,), np.uint8)
    out[~mask] = rgba
    return out
