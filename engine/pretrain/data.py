"""Training data of ``pretrain``: good images in memory, turned into multi-crop views and masks.

* :func:`load_images` reads a folder of good images once (``engine.images.read_image``) and shrinks
  each so its longer side is at most ``max_side`` px (area interpolation): crops of a 512 px image
  that end up at 96 px lose nothing, and augmentation gets cheaper.
* :class:`MultiCropDataset` returns, for a key ``(epoch, index)``, the views of image ``index``
  (:class:`~engine.pretrain.augment.MultiCropAugment`) and the iBOT masks of its two global views
  (:class:`~engine.pretrain.masking.BlockMasking`). Every sample draws from its own generator seeded
  by ``(seed, epoch, index)``, so the data of an epoch is the same whether it is made in the main
  process or in DataLoader workers, and a resumed run sees exactly the crops of an uninterrupted one.
* :func:`epoch_order` is the shuffled order of an epoch, also seeded by ``(seed, epoch)``.

The augmentation ops work on small tensors, where torch's intra-op threads only cost (measured 15x
slower with 2 threads than with 1 on a busy 2-core machine); samples are made with one thread.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DatasetError
from ..images import list_images, read_image
from .augment import MultiCropAugment
from .masking import BlockMasking


def load_images(folder: str | Path, max_side: int | None = None, recursive: bool = False) -> list[np.ndarray]:
    """Good images of a folder as ``(H, W, 3) uint8`` RGB, longer side shrunk to ``max_side`` px.

    Raises:
        DatasetError: the folder is missing or holds no image.
        ImageReadError: an image cannot be decoded (names the file).
    """
    out = []
    for path in list_images(folder, recursive=recursive):
        img = read_image(path)
        h, w = img.shape[:2]
        if max_side is not None and max(h, w) > max_side:
            s = max_side / max(h, w)
            img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        out.append(np.ascontiguousarray(img))
    return out


def sample_seed(seed: int, epoch: int, index: int = -1) -> int:
    """A 63-bit generator seed for ``(seed, epoch, index)`` (``index=-1``: the epoch's shuffle)."""
    return ((int(seed) * 1_000_003 + int(epoch)) * 1_000_033 + int(index) + 1) % (2**63 - 1)


def epoch_order(num_images: int, seed: int, epoch: int) -> list[int]:
    """Shuffled image indices of an epoch (a permutation of ``range(num_images)``)."""
    g = torch.Generator().manual_seed(sample_seed(seed, epoch))
    return torch.randperm(num_images, generator=g).tolist()


@contextmanager
def single_thread() -> Iterator[None]:
    """Run the body with one torch intra-op thread, then restore the previous count."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


class MultiCropDataset(Dataset):
    """Views and masks of good images, keyed by ``(epoch, index)`` (module docstring).

    Args:
        images: ``(H, W, 3) uint8`` RGB arrays (any sizes).
        augment: the multi-crop augmentation.
        masking: iBOT masking of the two global views.
        grid: patch grid ``(h, w)`` of a global crop.
        seed: run seed.

    ``dataset[(epoch, i)]`` -> ``(views, masks)``: ``views`` as returned by ``augment`` (list of
    ``(3, S, S) float32``), ``masks`` ``(2, h, w) bool``. The DataLoader's default collation turns a
    batch into a list of ``(B, 3, S, S)`` tensors and ``(B, 2, h, w)`` masks.

    Raises:
        DatasetError: ``images`` is empty.
    """

    def __init__(self, images: Sequence[np.ndarray], augment: MultiCropAugment, masking: BlockMasking,
                 grid: tuple[int, int], seed: int = 0):
        if len(images) == 0:
            raise DatasetError("no training images given; pretraining needs at least one good image.")
        self.images = [torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1))) for im in images]
        self.augment = augment
        self.masking = masking
        self.grid = grid
        self.seed = seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]) -> tuple[list[torch.Tensor], torch.Tensor]:
        epoch, index = key
        g = torch.Generator().manual_seed(sample_seed(self.seed, epoch, index))
        with single_thread():
            views = self.augment(self.images[index], g)
            masks = self.masking(2, self.grid, g)
        return views, masks
