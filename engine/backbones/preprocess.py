"""Image -> network input, and anomaly map -> image coordinates.

Two documented ways to handle aspect ratio (``mode``):

* ``"resize"`` (default, the MVTec AD / PatchCore convention): the image is stretched to
  ``size x size``; the anomaly map is stretched back to the image's ``(H, W)``.
* ``"letterbox"``: the longer side is scaled to ``size``, the shorter side is padded
  symmetrically with the normalisation mean (i.e. zeros after normalisation); the map is cropped
  to the image region and scaled back. Use it when stretching would distort defects (long parts).

``size`` must be a multiple of the backbone's patch size (ViT) or of 32 (CNN); it is rounded to
the nearest multiple by :func:`round_size`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

RESIZE_MODES = ("resize", "letterbox")


def round_size(size: int, multiple: int) -> int:
    """Nearest multiple of ``multiple`` to ``size`` (at least one multiple)."""
    return max(multiple, int(round(size / multiple)) * multiple)


@dataclass(frozen=True)
class Preprocess:
    """Resize + normalise images for a backbone.

    Attributes:
        size: network input side in pixels (square input).
        mean, std: per-channel normalisation of RGB values scaled to [0, 1].
        mode: ``"resize"`` or ``"letterbox"`` (module docstring).
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    mode: str = "resize"

    def __post_init__(self) -> None:
        if self.mode not in RESIZE_MODES:
            raise ValueError(f"resize mode {self.mode!r} unknown; use one of {RESIZE_MODES}")

    def _geometry(self, h: int, w: int) -> tuple[int, int, int, int]:
        """(new_h, new_w, top, left) of the image inside the ``size x size`` input."""
        if self.mode == "resize":
            return self.size, self.size, 0, 0
        scale = self.size / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        return nh, nw, (self.size - nh) // 2, (self.size - nw) // 2

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        """``(H, W, 3) uint8`` RGB -> ``(3, size, size) float32`` normalised tensor."""
        h, w = image.shape[:2]
        nh, nw, top, left = self._geometry(h, w)
        interp = cv2.INTER_AREA if nh * nw < h * w else cv2.INTER_LINEAR
        resized = cv2.resize(image, (nw, nh), interpolation=interp).astype(np.float32) / 255.0
        mean = np.asarray(self.mean, np.float32)
        std = np.asarray(self.std, np.float32)
        out = np.zeros((self.size, self.size, 3), np.float32)
        out[top : top + nh, left : left + nw] = (resized - mean) / std
        return torch.from_numpy(out.transpose(2, 0, 1).copy())

    def mask_to_input(self, mask: np.ndarray) -> np.ndarray:
        """A pixel mask of an image through the image's own geometry: ``(H, W) bool`` ->
        ``(size, size) float32`` in [0, 1], the share of each input pixel the mask covers.

        The mask is resized exactly as :meth:`__call__` resizes the image (area averaging when
        shrinking, bilinear when enlarging); letterbox padding is 0 (outside).
        """
        h, w = mask.shape[:2]
        nh, nw, top, left = self._geometry(h, w)
        interp = cv2.INTER_AREA if nh * nw < h * w else cv2.INTER_LINEAR
        out = np.zeros((self.size, self.size), np.float32)
        out[top : top + nh, left : left + nw] = cv2.resize(np.asarray(mask, np.float32), (nw, nh), interpolation=interp)
        return out

    def batch(self, images: list[np.ndarray]) -> torch.Tensor:
        """List of ``(H, W, 3) uint8`` -> ``(B, 3, size, size) float32``."""
        return torch.stack([self(im) for im in images])

    def to_image(self, amap: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
        """Map ``(size, size) float32`` in input coordinates -> ``(H, W) float32`` in image pixels."""
        h, w = image_hw
        nh, nw, top, left = self._geometry(h, w)
        crop = np.ascontiguousarray(amap[top : top + nh, left : left + nw], dtype=np.float32)
        return cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)
