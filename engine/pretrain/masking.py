"""Block-wise random masking of patch tokens, as in iBOT (Zhou et al., ICLR 2022).

iBOT hides part of the student's global-crop patch tokens behind a learnable mask token and asks
the student to predict, at those positions, what the teacher sees in the unmasked image. Masks are
made of rectangular blocks (BEiT-style "block-wise" masking, Bao et al., ICLR 2022), not of
scattered patches, so that the prediction cannot be solved by interpolating a neighbour:

* each image is masked with probability ``prob`` (iBOT: 0.5); otherwise its mask is empty;
* a masked image gets a ratio ``r`` drawn uniformly from ``ratio`` (iBOT: 0.3 +- 0.2, i.e.
  ``(0.1, 0.5)``) and exactly ``round(r * N)`` of its ``N`` patches are masked;
* the masked patches are the union of rectangles: each has an area drawn uniformly from
  ``[min_block_patches, max_block_patches]`` (clipped to what is still to be masked) and an aspect
  ratio ``height / width`` drawn log-uniformly from ``aspect`` (iBOT: ``(0.3, 1 / 0.3)``); a block
  is accepted if it fits in the grid and adds at most the patches still missing (10 tries). When no
  block fits (rare: a nearly full grid), the last missing patches are chosen one by one at random,
  so the count is always exact.

All randomness comes from the ``torch.Generator`` passed in, so masks are reproducible.

Usage::

    masking = BlockMasking(ratio=(0.1, 0.5), prob=0.5)
    masks = masking(batch=64, grid=(6, 6), generator=torch.Generator().manual_seed(0))  # (64, 6, 6) bool
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def _uniform(lo: float, hi: float, g: torch.Generator) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


def _randint(lo: int, hi: int, g: torch.Generator) -> int:
    """Integer uniform in ``[lo, hi]`` (both included)."""
    return int(torch.randint(lo, hi + 1, (), generator=g))


@dataclass(frozen=True)
class BlockMasking:
    """iBOT block-wise masking (module docstring).

    Attributes:
        ratio: ``(low, high)`` range of the fraction of patches masked in a masked image.
        prob: probability that an image is masked at all.
        min_block_patches: smallest block area in patches (iBOT: 4).
        max_block_patches: largest block area in patches; None: no limit but the number to mask.
        aspect: ``(low, high)`` range of block height / width, sampled log-uniformly.

    Raises:
        ValueError: on construction, for ranges outside ``[0, 1]`` / not positive / reversed.
    """

    ratio: tuple[float, float] = (0.1, 0.5)
    prob: float = 0.5
    min_block_patches: int = 4
    max_block_patches: int | None = None
    aspect: tuple[float, float] = (0.3, 1 / 0.3)

    def __post_init__(self) -> None:
        lo, hi = self.ratio
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"mask ratio range must satisfy 0 <= low <= high <= 1, got {self.ratio}")
        if not 0.0 <= self.prob <= 1.0:
            raise ValueError(f"mask probability must be in [0, 1], got {self.prob}")
        if self.min_block_patches < 1 or (self.max_block_patches is not None
                                          and self.max_block_patches < self.min_block_patches):
            raise ValueError(f"need 1 <= min_block_patches <= max_block_patches, got "
                             f"{self.min_block_patches}, {self.max_block_patches}")
        if not 0.0 < self.aspect[0] <= self.aspect[1]:
            raise ValueError(f"aspect range must satisfy 0 < low <= high, got {self.aspect}")

    def __call__(self, batch: int, grid: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
        """Masks of a batch.

        Args:
            batch: number of images ``B``.
            grid: patch grid ``(h, w)`` of the (global) crops.
            generator: CPU random generator (all randomness).
        Returns:
            ``(B, h, w) bool``, True = patch replaced by the mask token.
        """
        h, w = grid
        out = torch.zeros(batch, h, w, dtype=torch.bool)
        for b in range(batch):
            if float(torch.rand((), generator=generator)) >= self.prob:
                continue
            r = _uniform(self.ratio[0], self.ratio[1], generator)
            out[b] = self.block_mask(h, w, int(round(r * h * w)), generator)
        return out

    def block_mask(self, h: int, w: int, num_masked: int, generator: torch.Generator) -> torch.Tensor:
        """One ``(h, w) bool`` mask with exactly ``num_masked`` True cells, made of blocks."""
        mask = torch.zeros(h, w, dtype=torch.bool)
        num_masked = min(num_masked, h * w)
        count = 0
        while count < num_masked:
            added = self._add_block(mask, num_masked - count, generator)
            if added == 0:
                free = (~mask).flatten().nonzero().squeeze(1)
                pick = free[torch.randperm(free.numel(), generator=generator)[: num_masked - count]]
                mask.view(-1)[pick] = True
                break
            count += added
        return mask

    def _add_block(self, mask: torch.Tensor, remaining: int, g: torch.Generator) -> int:
        """Try to mask one block adding between 1 and ``remaining`` new patches; return how many."""
        h, w = mask.shape
        max_area = remaining if self.max_block_patches is None else min(self.max_block_patches, remaining)
        min_area = min(self.min_block_patches, max_area)
        log_lo, log_hi = math.log(self.aspect[0]), math.log(self.aspect[1])
        for _ in range(10):
            area = _uniform(min_area, max_area, g)
            aspect = math.exp(_uniform(log_lo, log_hi, g))
            bh = max(1, int(round(math.sqrt(area * aspect))))
            bw = max(1, int(round(math.sqrt(area / aspect))))
            if bh > h or bw > w:
                continue
            top, left = _randint(0, h - bh, g), _randint(0, w - bw, g)
            block = mask[top : top + bh, left : left + bw]
            new = int((~block).sum())
            if 0 < new <= remaining:
                block.fill_(True)
                return new
        return 0
