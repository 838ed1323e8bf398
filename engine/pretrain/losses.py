"""Self-distillation losses: DINO's class-token loss and iBOT's masked patch-token loss.

Notation: ``K`` prototypes, student temperature ``tau_s`` (fixed, 0.1), teacher temperature
``tau_t(epoch)`` (warm-up 0.04 -> 0.07), running centre ``c`` of the teacher logits.

* Teacher targets are *centred and sharpened*: ``q = softmax((t - c) / tau_t)``; student
  predictions ``log p = log_softmax(s / tau_s)``. Centring keeps one prototype from dominating,
  sharpening keeps the targets from going uniform; together they avoid collapse (DINO, Caron et al.,
  ICCV 2021, sec. 3.1).
* Centre update after each step: ``c <- m * c + (1 - m) * mean(t)`` with ``m = center_momentum``
  (0.9), the mean over the teacher outputs of the batch (all global views). For patches, iBOT
  averages over all patch tokens; the trainer averages over the masked positions only, a random
  subset of them, which spares running the head on every teacher patch (about half the compute of
  a ViT-Tiny step on CPU).
* :class:`DINOLoss`: cross-entropy ``-sum_k q_k log p_k`` between the teacher's view ``i`` (a
  global crop) and every student view ``v != i`` (both global and local crops), averaged over the
  batch and then over the pairs.
* :class:`IBOTPatchLoss` (iBOT, Zhou et al., ICLR 2022): for each global view, the student sees the
  crop with masked patches and the teacher the full crop; the cross-entropy between them at the
  *masked* positions is averaged over the masked patches of each image, then over the images
  (images without a mask count as 0, as in iBOT's code) and views.

Logits are taken in float32 whatever the autocast dtype.

Usage::

    loss_fn = DINOLoss(out_dim=4096, warmup_teacher_temp=0.04, teacher_temp=0.07,
                       warmup_teacher_temp_epochs=30, epochs=100)
    loss = loss_fn(student_views, teacher_views, epoch)   # lists of (B, K) logits
    loss_fn.update_center(torch.cat(teacher_views))
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .schedules import warmup_constant_schedule


class _CenteredTeacherLoss(nn.Module):
    """Teacher temperature schedule, running centre and the centred-sharpened teacher softmax."""

    def __init__(self, out_dim: int, warmup_teacher_temp: float, teacher_temp: float,
                 warmup_teacher_temp_epochs: int, epochs: int, student_temp: float = 0.1,
                 center_momentum: float = 0.9):
        super().__init__()
        self.student_temp = float(student_temp)
        self.center_momentum = float(center_momentum)
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.teacher_temps = warmup_constant_schedule(warmup_teacher_temp, teacher_temp,
                                                      warmup_teacher_temp_epochs, epochs)

    def teacher_temp(self, epoch: int) -> float:
        """``tau_t`` at ``epoch`` (the final value past the schedule's end)."""
        return float(self.teacher_temps[min(int(epoch), len(self.teacher_temps) - 1)])

    def teacher_probs(self, teacher_logits: torch.Tensor, epoch: int) -> torch.Tensor:
        """``softmax((t - c) / tau_t)`` over the last axis, float32, no gradient."""
        t = teacher_logits.detach().float()
        return F.softmax((t - self.center) / self.teacher_temp(epoch), dim=-1)

    def student_log_probs(self, student_logits: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(student_logits.float() / self.student_temp, dim=-1)

    @torch.no_grad()
    def update_center(self, teacher_logits: torch.Tensor) -> None:
        """``c <- m c + (1 - m) mean(t)``, the mean over all but the last axis of ``(..., K)`` logits."""
        batch_center = teacher_logits.detach().float().reshape(-1, teacher_logits.shape[-1]).mean(0, keepdim=True)
        self.center.mul_(self.center_momentum).add_(batch_center, alpha=1.0 - self.center_momentum)


class DINOLoss(_CenteredTeacherLoss):
    """DINO class-token loss (module docstring).

    Args:
        out_dim: prototypes ``K``.
        warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs, epochs: ``tau_t`` rises
            linearly from the first to the second value over the warm-up epochs.
        student_temp: ``tau_s``.
        center_momentum: ``m`` of the centre update.
    """

    def forward(self, student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], epoch: int) -> torch.Tensor:
        """Cross-view loss.

        Args:
            student: per view ``(B, K)`` logits; views ``0..len(teacher)-1`` are the same crops as
                the teacher's.
            teacher: per global view ``(B, K)`` logits.
            epoch: current epoch (teacher temperature).
        Returns:
            scalar float32.
        Raises:
            ValueError: no pair of distinct views (fewer than two views in all).
        """
        log_p = [self.student_log_probs(s) for s in student]
        total, pairs = 0.0, 0
        for i, t in enumerate(teacher):
            q = self.teacher_probs(t, epoch)
            for v, lp in enumerate(log_p):
                if v == i:
                    continue
                total = total + (-(q * lp).sum(-1)).mean()
                pairs += 1
        if pairs == 0:
            raise ValueError("DINO loss needs at least two views (a teacher view and another student view).")
        return total / pairs


class IBOTPatchLoss(_CenteredTeacherLoss):
    """iBOT masked-patch loss (module docstring). Arguments as :class:`DINOLoss` (its own centre)."""

    def forward(self, student_masked: torch.Tensor, teacher_masked: torch.Tensor, masks: torch.Tensor,
                epoch: int) -> torch.Tensor:
        """Loss at masked positions.

        Args:
            student_masked: ``(M, K)`` student logits of the masked patches (the student saw the
                mask token there), in the order of ``masks.nonzero()``, i.e. ``student_logits[masks]``.
            teacher_masked: ``(M, K)`` teacher logits at the same positions of the unmasked crops.
            masks: ``(G, N) bool``, True where the student's patch was masked, for the ``G`` global
                crops (views stacked along the batch axis).
            epoch: current epoch (teacher temperature).
        Returns:
            scalar float32 (0 when nothing is masked).
        """
        if student_masked.shape[0] == 0:
            return student_masked.float().sum() * 0.0
        q = self.teacher_probs(teacher_masked, epoch)
        ce = -(q * self.student_log_probs(student_masked)).sum(-1)  # (M,)
        image = masks.nonzero()[:, 0]
        per_image = torch.zeros(masks.shape[0], device=ce.device, dtype=ce.dtype).index_add(0, image, ce)
        per_image = per_image / masks.sum(1).clamp(min=1)
        return per_image.mean()
