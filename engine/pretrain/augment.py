"""Multi-crop data augmentation of DINO (Caron et al., ICCV 2021), also used by iBOT (Zhou et al., ICLR 2022).

Each training image yields ``2 + n_local`` views:

* two *global* crops, ``global_size`` px, covering ``global_scale`` of the image area (DINO: 40-100 %);
* ``n_local`` *local* crops, ``local_size`` px, covering ``local_scale`` (DINO: 5-40 %).

Each view: random resized crop (area fraction uniform in the scale range, aspect ratio log-uniform
in ``[3/4, 4/3]``, bicubic with antialias), horizontal flip, colour jitter (brightness, contrast,
saturation, hue in random order, with probability ``jitter_p``), grayscale, Gaussian blur and
solarisation, then normalisation with the backbone's mean/std. Blur and solarisation probabilities
differ per view as in DINO: blur 1.0 / 0.1 / 0.5 and solarisation 0 / 0.2 / 0 for global crop 1 /
global crop 2 / local crops. Blur sigma is given for a 224 px crop and scaled with the crop size, so
a 96 px crop is blurred as much, relatively, as DINO's 224 px crops.

Every random choice comes from the ``torch.Generator`` passed in (not the global RNG), so an epoch's
crops are reproducible from its seed. The image ops are ``torchvision.transforms.v2.functional``.

Usage::

    aug = MultiCropAugment(global_size=96, local_size=48, n_local=6)
    views = aug(image_uint8_chw, generator)   # list of 8 tensors: 2 x (3, 96, 96), 6 x (3, 48, 48)

For industrial parts where colour itself is the defect, set ``AugmentConfig(jitter_p=0, grayscale_p=0)``.
"""

from __future__ import annotations

import math

import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from ..backbones.registry import IMAGENET_MEAN, IMAGENET_STD
from .config import AugmentConfig  # noqa: F401 - defined there (torch-free), used here


def _rand(g: torch.Generator) -> float:
    return float(torch.rand((), generator=g))


def _uniform(lo: float, hi: float, g: torch.Generator) -> float:
    return lo + (hi - lo) * _rand(g)


def crop_box(height: int, width: int, scale: tuple[float, float], aspect: tuple[float, float],
             g: torch.Generator) -> tuple[int, int, int, int]:
    """Random resized crop box ``(top, left, h, w)`` in pixels (area fraction uniform in ``scale``,
    ``w / h`` log-uniform in ``aspect``; 10 tries, then the largest centred box of allowed aspect)."""
    area = height * width
    log_lo, log_hi = math.log(aspect[0]), math.log(aspect[1])
    for _ in range(10):
        target = area * _uniform(scale[0], scale[1], g)
        ratio = math.exp(_uniform(log_lo, log_hi, g))
        w = int(round(math.sqrt(target * ratio)))
        h = int(round(math.sqrt(target / ratio)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (), generator=g))
            left = int(torch.randint(0, width - w + 1, (), generator=g))
            return top, left, h, w
    ratio = width / height
    if ratio < aspect[0]:
        w, h = width, int(round(width / aspect[0]))
    elif ratio > aspect[1]:
        h, w = height, int(round(height * aspect[1]))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


class MultiCropAugment:
    """Image -> ``2 + n_local`` augmented, normalised views (module docstring).

    Args:
        global_size, local_size: output side of global / local crops in pixels.
        n_local: number of local crops (0 allowed).
        config: :class:`AugmentConfig`.
        mean, std: normalisation of RGB in ``[0, 1]`` (the backbone's).
    """

    def __init__(self, global_size: int, local_size: int, n_local: int, config: AugmentConfig | None = None,
                 mean: tuple[float, float, float] = IMAGENET_MEAN, std: tuple[float, float, float] = IMAGENET_STD):
        self.global_size = int(global_size)
        self.local_size = int(local_size)
        self.n_local = int(n_local)
        self.config = config or AugmentConfig()
        self.mean = list(mean)
        self.std = list(std)

    def __call__(self, image: torch.Tensor, g: torch.Generator) -> list[torch.Tensor]:
        """Views of one image.

        Args:
            image: ``(3, H, W) uint8`` RGB.
            g: CPU random generator.
        Returns:
            ``[global 1, global 2, local 1, ...]``: ``(3, global_size, global_size)`` and
            ``(3, local_size, local_size)`` float32, normalised.
        """
        c = self.config
        views = [self.view(image, self.global_size, c.global_scale, c.blur_p[0], c.solarize_p[0], g),
                 self.view(image, self.global_size, c.global_scale, c.blur_p[1], c.solarize_p[1], g)]
        views += [self.view(image, self.local_size, c.local_scale, c.blur_p[2], c.solarize_p[2], g)
                  for _ in range(self.n_local)]
        return views

    def view(self, image: torch.Tensor, size: int, scale: tuple[float, float], blur_p: float, solarize_p: float,
             g: torch.Generator) -> torch.Tensor:
        """One augmented view: ``(3, H, W) uint8 -> (3, size, size) float32`` normalised."""
        c = self.config
        top, left, h, w = crop_box(image.shape[-2], image.shape[-1], scale, c.crop_aspect, g)
        x = TF.resized_crop(image, top, left, h, w, [size, size], interpolation=InterpolationMode.BICUBIC,
                            antialias=True)
        x = x.float().div_(255.0)
        if _rand(g) < c.flip_p:
            x = TF.horizontal_flip(x)
        if _rand(g) < c.jitter_p:
            x = self._jitter(x, g)
        if _rand(g) < c.grayscale_p:
            x = TF.rgb_to_grayscale(x, num_output_channels=3)
        if _rand(g) < blur_p:
            sigma = _uniform(*c.blur_sigma, g) * size / 224.0
            k = min(2 * math.ceil(3 * sigma) + 1, size - 1 if size % 2 == 0 else size)
            if k >= 3:
                x = TF.gaussian_blur(x, kernel_size=[k, k], sigma=[sigma, sigma])
        if _rand(g) < solarize_p:
            x = TF.solarize(x, threshold=0.5)
        return TF.normalize(x, self.mean, self.std)

    def _jitter(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        c = self.config
        for op in torch.randperm(4, generator=g).tolist():
            if op == 0 and c.brightness > 0:
                x = TF.adjust_brightness(x, _uniform(1 - c.brightness, 1 + c.brightness, g))
            elif op == 1 and c.contrast > 0:
                x = TF.adjust_contrast(x, _uniform(1 - c.contrast, 1 + c.contrast, g))
            elif op == 2 and c.saturation > 0:
                x = TF.adjust_saturation(x, _uniform(1 - c.saturation, 1 + c.saturation, g))
            elif op == 3 and c.hue > 0:
                x = TF.adjust_hue(x, _uniform(-c.hue, c.hue, g))
        return x
