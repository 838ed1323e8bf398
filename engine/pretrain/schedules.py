"""Per-iteration and per-epoch schedules of the DINO / iBOT training recipe.

DINO (Caron et al., ICCV 2021) and iBOT (Zhou et al., ICLR 2022) drive four quantities by schedule:

* learning rate: linear warm-up from 0 to the base value, then cosine decay to ``min_lr``;
* weight decay: cosine from ``weight_decay`` to ``weight_decay_end`` (it *grows*, 0.04 -> 0.4);
* teacher EMA momentum: cosine from ``momentum_teacher`` (0.996) to 1;
* teacher temperature: linear warm-up per epoch (0.04 -> 0.07), then constant.

The first three are arrays with one value per iteration (``epochs * steps_per_epoch``); the last one
has one value per epoch.

Usage::

    lr = cosine_schedule(5e-4, 1e-6, epochs=100, steps_per_epoch=50, warmup_epochs=10)
    lr[it]        # learning rate at iteration it
"""

from __future__ import annotations

import numpy as np


def cosine_schedule(base: float, final: float, epochs: int, steps_per_epoch: int,
                    warmup_epochs: float = 0, warmup_start: float = 0.0) -> np.ndarray:
    """Linear warm-up then half-cosine from ``base`` to ``final``.

    Value at iteration ``i`` after the warm-up (``n`` iterations of cosine in all):
    ``final + (base - final) * (1 + cos(pi * i / n)) / 2``. During the ``warmup_epochs *
    steps_per_epoch`` first iterations the value rises linearly from ``warmup_start`` towards ``base``
    (``base`` itself is reached at the first cosine iteration).

    Returns:
        ``(epochs * steps_per_epoch,) float64``.
    Raises:
        ValueError: ``epochs`` or ``steps_per_epoch`` is below 1, or ``warmup_epochs`` is negative.
    """
    if epochs < 1 or steps_per_epoch < 1:
        raise ValueError(f"need epochs >= 1 and steps_per_epoch >= 1, got {epochs}, {steps_per_epoch}")
    if warmup_epochs < 0:
        raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
    total = epochs * steps_per_epoch
    n_warm = min(total, int(round(warmup_epochs * steps_per_epoch)))
    warm = np.linspace(warmup_start, base, n_warm, endpoint=False)
    n_cos = total - n_warm
    cos = final + (base - final) * (1.0 + np.cos(np.pi * np.arange(n_cos) / max(n_cos, 1))) / 2.0
    return np.concatenate([warm, cos]).astype(np.float64)


def warmup_constant_schedule(start: float, final: float, warmup_epochs: int, epochs: int) -> np.ndarray:
    """Per-epoch linear warm-up from ``start`` to ``final`` over ``warmup_epochs``, then ``final``.

    This is the teacher-temperature schedule of DINO (``linspace(start, final, warmup)`` followed by
    ``final``).

    Returns:
        ``(epochs,) float64``.
    """
    warmup_epochs = max(0, min(int(warmup_epochs), epochs))
    warm = np.linspace(start, final, warmup_epochs)
    return np.concatenate([warm, np.full(epochs - warmup_epochs, final)]).astype(np.float64)
