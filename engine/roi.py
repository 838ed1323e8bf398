"""Region of interest (ROI) of a recipe: where on the image a part is judged.

At a station the part sits in a fixture, so the same pixels hold the part in every image; the rest
(fixture, conveyor, clamps, labels) must neither raise a verdict nor teach the model "normal". A
:class:`RegionOfInterest` is drawn once by the operator on a reference image:

* ``include``: one or more polygons; a pixel is in the region when it lies in any of them. No
  include polygon means "the whole image".
* ``exclude``: optional ignore regions cut out of it (a label, a screw head that varies).

Polygons are stored in the reference image's pixel coordinates (``x`` = column, ``y`` = row, as
OpenCV) together with that image's size. They are filled as OpenCV's ``fillPoly`` fills: the
pixels on the outline belong to the polygon (a square with corners ``(0, 0)`` and ``(10, 10)``
holds 11 x 11 pixels); an exclude polygon removes its outline too.
An image of another size gets the polygons scaled (the fixture fills the frame the same way at
another resolution) by :meth:`RegionOfInterest.scaled`, pixel centre to pixel centre: the centres of
the reference's first and last column land on those of the image's (``x' = x * (W - 1) / (ref_w - 1)``,
rows alike), so a region drawn to an edge of the image keeps that edge at any size (a whole-image
rectangle stays the whole image); :meth:`RegionOfInterest.aspect_warning` says when the aspect
ratio differs by more than 1 %, since the region may then miss the part.

On the backbone's patch grid (:func:`patch_mask`) a patch is *inside* when at least half of its
area is inside: the pixel mask goes through the model's preprocessing (resize or letterbox, as the
image does: :meth:`engine.backbones.preprocess.Preprocess.mask_to_input`), is area-averaged over
each patch's cell of the network input, and the cells whose share is ``>= 0.5`` are kept
(:data:`PATCH_INSIDE`). Letterbox padding is outside.

The region is JSON (``to_json`` / ``from_json``): it lives in the model file's header and in a
``.roi.json`` file the CLI reads (``fit --roi``). Loading never executes code. Qt-free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .errors import DatasetError

Polygon = list[tuple[float, float]]
"""Vertices ``(x, y)`` in reference-image pixels; at least 3."""

ROI_FORMAT = "dinoinspect-roi/1"


@dataclass
class RegionOfInterest:
    """Include polygons minus exclude polygons, drawn on a ``ref_width x ref_height`` image.

    Attributes:
        include: polygons whose union is the region; empty = the whole image.
        exclude: polygons removed from the region (ignore regions).
        ref_width, ref_height: size in pixels of the image the polygons were drawn on (> 0).
    """

    include: list[Polygon] = field(default_factory=list)
    exclude: list[Polygon] = field(default_factory=list)
    ref_width: int = 0
    ref_height: int = 0

    def __post_init__(self) -> None:
        if int(self.ref_width) <= 0 or int(self.ref_height) <= 0:
            raise DatasetError(f"region of interest: reference size {self.ref_width}x{self.ref_height} must be "
                               f"positive. Draw the region on an image again.")
        self.ref_width, self.ref_height = int(self.ref_width), int(self.ref_height)
        self.include = [_polygon(p, "include", i) for i, p in enumerate(self.include)]
        self.exclude = [_polygon(p, "exclude", i) for i, p in enumerate(self.exclude)]

    @property
    def is_whole_image(self) -> bool:
        """True when the region keeps every pixel (no include and no exclude polygon)."""
        return not self.include and not self.exclude

    def pixel_mask(self, height: int, width: int) -> np.ndarray:
        """``(height, width) bool`` mask, True inside the region, for an image of that size.

        Polygons are scaled from the reference size (:meth:`scaled`) and filled with OpenCV's
        ``fillPoly`` (outline included; vertices rounded to 1/16 px).
        """
        region = self.scaled(width, height)
        shift = 4  # sub-pixel bits of fillPoly
        def fixed(poly: Polygon) -> np.ndarray:
            return np.round(np.asarray(poly, np.float64) * (1 << shift)).astype(np.int32).reshape(-1, 1, 2)
        if region.include:
            mask = np.zeros((height, width), np.uint8)
            cv2.fillPoly(mask, [fixed(p) for p in region.include], 1, lineType=cv2.LINE_8, shift=shift)
        else:
            mask = np.ones((height, width), np.uint8)
        if region.exclude:
            cv2.fillPoly(mask, [fixed(p) for p in region.exclude], 0, lineType=cv2.LINE_8, shift=shift)
        return mask.astype(bool)

    def scaled(self, width: int, height: int) -> "RegionOfInterest":
        """The same region on a ``width x height`` image (module docstring: pixel centre to pixel
        centre, edge pixels kept); ``self`` when that is the reference size.

        Args:
            width, height: image size in pixels (> 0).
        Returns:
            a region whose ``ref_width, ref_height`` are ``width, height``.
        Raises:
            DatasetError: a size that is not positive.
        """
        if (width, height) == (self.ref_width, self.ref_height):
            return self
        def factor(new: int, ref: int) -> tuple[float, float]:  # x' = x * a + b
            if ref == 1:  # one pixel: its centre to the image's centre
                return float(new), (new - 1) / 2.0
            return (new - 1) / (ref - 1), 0.0
        (ax, bx), (ay, by) = factor(int(width), self.ref_width), factor(int(height), self.ref_height)
        def move(polys: list[Polygon]) -> list[Polygon]:
            return [[(x * ax + bx, y * ay + by) for x, y in p] for p in polys]
        return RegionOfInterest(include=move(self.include), exclude=move(self.exclude),
                                ref_width=width, ref_height=height)

    def describe(self) -> str:
        """A few words: ``"roi=2 include, 1 exclude"`` (``"roi=whole image"`` without polygons)."""
        if self.is_whole_image:
            return "roi=whole image"
        inc = f"{len(self.include)} include" if self.include else "whole image"
        return f"roi={inc}, {len(self.exclude)} exclude"

    def aspect_warning(self, height: int, width: int) -> str | None:
        """A sentence when an image's aspect ratio differs from the reference's by > 1 %, else None."""
        ref, got = self.ref_width / self.ref_height, width / height
        if abs(got / ref - 1.0) <= 0.01:
            return None
        return (f"image is {width}x{height} but the region of interest was drawn on a "
                f"{self.ref_width}x{self.ref_height} image: the region is stretched to fit and may miss the part. "
                f"Draw the region again on an image from this camera.")

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict:
        return {"format": ROI_FORMAT, "reference_size": [self.ref_width, self.ref_height],
                "include": [[list(map(float, v)) for v in p] for p in self.include],
                "exclude": [[list(map(float, v)) for v in p] for p in self.exclude]}

    @classmethod
    def from_json(cls, data: dict | None, where: str = "region of interest") -> "RegionOfInterest | None":
        """The region stored in ``data`` (None for None: no region).

        Raises:
            DatasetError: not a region of this format, naming ``where``.
        """
        if data is None:
            return None
        if not isinstance(data, dict) or data.get("format") != ROI_FORMAT:
            raise DatasetError(f"{where}: not a DINOInspect region of interest (expected \"format\": "
                               f"\"{ROI_FORMAT}\"). Draw the region in the app and save it again.")
        size = data.get("reference_size")
        if not isinstance(size, list) or len(size) != 2:
            raise DatasetError(f"{where}: \"reference_size\" must be [width, height] of the image the region was "
                               f"drawn on, got {size!r}.")
        try:
            w, h = size
            return cls(include=data.get("include", []), exclude=data.get("exclude", []), ref_width=w, ref_height=h)
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{where}: damaged region of interest ({exc}). Draw the region again.") from None
        except DatasetError as exc:  # a bad polygon or size: say which file holds it
            raise DatasetError(f"{where}: {str(exc).removeprefix('region of interest: ')}") from None

    def save(self, path: str | Path) -> None:
        """Write the region as JSON to ``path``."""
        Path(path).write_text(json.dumps(self.to_json(), indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "RegionOfInterest":
        """Read a region written by :meth:`save` (or by the app's ROI editor).

        Raises:
            DatasetError: missing, unreadable or damaged file, naming it.
        """
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except OSError as exc:
            raise DatasetError(f"{p}: cannot read the region of interest ({exc.strerror or exc}). "
                               f"Check the path.") from None
        except ValueError as exc:
            raise DatasetError(f"{p}: not JSON ({exc}). Save the region again from the app.") from None
        roi = cls.from_json(data, str(p))
        assert roi is not None
        return roi


def _polygon(points, kind: str, index: int) -> Polygon:
    try:
        poly = [(float(x), float(y)) for x, y in points]
    except (TypeError, ValueError):
        raise DatasetError(f"region of interest: {kind} polygon {index + 1} is not a list of [x, y] points. "
                           f"Draw it again.") from None
    if len(poly) < 3:
        raise DatasetError(f"region of interest: {kind} polygon {index + 1} has {len(poly)} points; a polygon "
                           f"needs at least 3. Draw it again.")
    if not np.all(np.isfinite(poly)):
        raise DatasetError(f"region of interest: {kind} polygon {index + 1} has a non-finite point. Draw it again.")
    return poly


PATCH_INSIDE = 0.5
"""Share of a patch's area that must lie in the region for the patch to count as inside."""


def patch_coverage(pixel_mask: np.ndarray, pre, grid_hw: tuple[int, int]) -> np.ndarray:
    """Share of each patch's area inside the region: ``(h, w) float32`` in [0, 1].

    Args:
        pixel_mask: ``(H, W) bool``, the region on the image (:meth:`RegionOfInterest.pixel_mask`).
        pre: the model's :class:`~engine.backbones.preprocess.Preprocess` (size, resize or letterbox).
        grid_hw: ``(h, w)``, the backbone's patch grid for that input size.
    """
    on_input = pre.mask_to_input(pixel_mask)
    gh, gw = grid_hw
    return cv2.resize(on_input, (int(gw), int(gh)), interpolation=cv2.INTER_AREA)


def patch_mask(pixel_mask: np.ndarray, pre, grid_hw: tuple[int, int]) -> np.ndarray:
    """``(h, w) bool``: the patches at least :data:`PATCH_INSIDE` inside the region (module docstring)."""
    return patch_coverage(pixel_mask, pre, grid_hw) >= PATCH_INSIDE - 1e-6
