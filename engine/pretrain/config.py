"""Settings of a pretraining run, torch-free: what ``main.py pretrain -h`` shows without importing torch.

:class:`AugmentConfig` (multi-crop augmentation, :mod:`engine.pretrain.augment`),
:class:`PretrainConfig` (the whole run, :mod:`engine.pretrain.trainer`, saved in its checkpoints) and
the names of the scratch architectures (:mod:`engine.pretrain.network`). Those modules re-export them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

SCRATCH_ARCHITECTURES = {
    "scratch-vit-tiny": "vit_tiny_patch16_224",
    "scratch-vit-small": "vit_small_patch16_224",
}


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation settings (defaults: DINO's).

    Attributes:
        global_scale, local_scale: ``(low, high)`` fraction of the image area a crop covers.
        crop_aspect: ``(low, high)`` crop width / height range (log-uniform).
        flip_p: horizontal flip probability.
        jitter_p: probability of colour jitter; ``brightness``, ``contrast``, ``saturation``: factor
            drawn in ``[1 - x, 1 + x]``; ``hue``: shift in ``[-x, x]`` (fraction of the hue circle).
        grayscale_p: probability of converting to gray (3 equal channels).
        blur_p: blur probability for (global 1, global 2, local).
        blur_sigma: ``(low, high)`` Gaussian sigma in pixels of a 224 px crop.
        solarize_p: solarisation probability for (global 1, global 2, local); threshold 0.5.
    """

    global_scale: tuple[float, float] = (0.4, 1.0)
    local_scale: tuple[float, float] = (0.05, 0.4)
    crop_aspect: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.2
    blur_p: tuple[float, float, float] = (1.0, 0.1, 0.5)
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: tuple[float, float, float] = (0.0, 0.2, 0.0)


@dataclass
class PretrainConfig:
    """Everything that determines a pretraining run (saved in its checkpoints).

    Attributes:
        backbone: ``"scratch-vit-tiny"``, ``"scratch-vit-small"``, a registry name with local
            weights (``dino_vits16``...) or a backbone file; ``weights``: explicit weight file.
        model_kwargs: timm overrides of a scratch model (``{"depth": 6}``...).
        img_size: global crop side in pixels; local_size: local crop side (None: ``3/7`` of it, as
            DINO's 96 / 224); both rounded to a multiple of the patch size. local_crops: how many.
        epochs, batch_size: run length; the batch is capped at the number of images, an epoch
            is ``num_images // batch`` steps.
        lr: base learning rate at batch 256; min_lr: end of the cosine.
        warmup_epochs: linear lr warm-up (None: ``min(10, epochs // 10)``).
        weight_decay, weight_decay_end: cosine weight-decay schedule.
        clip_grad: max global gradient norm (0: off).
        freeze_last_layer_epochs: epochs during which the heads' last layers get no update.
        momentum_teacher: EMA momentum at the start (cosine to 1).
        drop_path: stochastic depth of the student.
        out_dim, patch_out_dim, hidden_dim, bottleneck_dim, head_layers, norm_last_layer,
        shared_head: projection head (:class:`~engine.pretrain.heads.IBOTHead`).
        student_temp: tau_s. teacher_temp / warmup_teacher_temp, teacher_patch_temp /
        warmup_teacher_patch_temp: tau_t after / at the start of the warm-up of
        ``warmup_teacher_temp_epochs`` (None: ``min(30, epochs // 3)``). center_momentum: centre EMA.
        lambda_cls, lambda_patch: loss weights.
        mask_ratio, mask_prob, mask_min_patches, mask_aspect: iBOT masking
            (:class:`~engine.pretrain.masking.BlockMasking`).
        augment: :class:`~engine.pretrain.augment.AugmentConfig`.
        seed: all randomness (initialisation, data, masks, stochastic depth).
    """

    backbone: str = "scratch-vit-tiny"
    weights: str | None = None
    model_kwargs: dict = field(default_factory=dict)
    img_size: int = 96
    local_size: int | None = None
    local_crops: int = 6
    epochs: int = 20
    batch_size: int = 32
    lr: float = 5e-4
    min_lr: float = 1e-6
    warmup_epochs: int | None = None
    weight_decay: float = 0.04
    weight_decay_end: float = 0.4
    clip_grad: float = 3.0
    freeze_last_layer_epochs: int = 1
    momentum_teacher: float = 0.996
    drop_path: float = 0.1
    out_dim: int = 4096
    patch_out_dim: int = 4096
    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    head_layers: int = 3
    norm_last_layer: bool = True
    shared_head: bool = True
    student_temp: float = 0.1
    teacher_temp: float = 0.04
    warmup_teacher_temp: float = 0.04
    teacher_patch_temp: float = 0.07
    warmup_teacher_patch_temp: float = 0.04
    warmup_teacher_temp_epochs: int | None = None
    center_momentum: float = 0.9
    lambda_cls: float = 1.0
    lambda_patch: float = 1.0
    mask_ratio: tuple[float, float] = (0.1, 0.5)
    mask_prob: float = 0.5
    mask_min_patches: int = 4
    mask_aspect: tuple[float, float] = (0.3, 1 / 0.3)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0

    def to_dict(self) -> dict:
        """JSON-able dict (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict) -> "PretrainConfig":
        """Inverse of :meth:`to_dict`. Raises ValueError on unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown pretrain settings {sorted(unknown)}")
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        if isinstance(d.get("augment"), dict):
            d["augment"] = AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v
                                            for k, v in d["augment"].items()})
        return cls(**d)

    def lr_warmup_epochs(self) -> int:
        return min(10, self.epochs // 10) if self.warmup_epochs is None else int(self.warmup_epochs)

    def teacher_temp_warmup_epochs(self) -> int:
        if self.warmup_teacher_temp_epochs is None:
            return min(30, self.epochs // 3)
        return int(self.warmup_teacher_temp_epochs)
