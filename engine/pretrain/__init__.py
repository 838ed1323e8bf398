"""Self-supervised pretraining of a ViT backbone on good images (DINO + iBOT self-distillation).

``python main.py pretrain --good DIR --backbone scratch-vit-tiny --out FILE.safetensors`` learns
patch features from the good images of one product, and writes a backbone file that the rest of the
engine loads by path like any registered backbone::

    from engine.pretrain import PretrainConfig, Pretrainer, load_images
    trainer = Pretrainer(load_images("bottle/train/good", max_side=192), PretrainConfig(epochs=10))
    trainer.train(checkpoint_path="run/checkpoint.pt")
    trainer.export("run/vit.safetensors")
    # later: engine.backbones.create_backbone("run/vit.safetensors")

Pieces: ``heads`` (DINO / iBOT projection heads), ``augment`` (multi-crop), ``masking`` (iBOT
block masks), ``losses`` (DINO and iBOT losses, centring, sharpening), ``schedules`` (cosine /
warm-up), ``network`` (ViT + mask token, EMA, backbone-file export), ``data`` (images -> views and
masks), ``trainer`` (the run, checkpoints, loss curve), ``cli`` (the ``pretrain`` command).

Papers: Caron et al., "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021
(DINO); Zhou et al., "iBOT: Image BERT Pre-Training with Online Tokenizer", ICLR 2022.

Names are imported on first use (PEP 562 ``__getattr__``), so the torch-free settings
(:mod:`engine.pretrain.config`) are read without importing torch (``main.py pretrain -h``).
"""

from __future__ import annotations

from ..lazy_exports import lazy_exports

_WHERE = {
    "AugmentConfig": "config", "PretrainConfig": "config", "SCRATCH_ARCHITECTURES": "config",
    "MultiCropAugment": "augment", "MultiCropDataset": "data", "load_images": "data",
    "DINOHead": "heads", "IBOTHead": "heads", "DINOLoss": "losses", "IBOTPatchLoss": "losses",
    "BlockMasking": "masking", "DistillNet": "network", "ViTInfo": "network", "build_vit": "network",
    "ema_update": "network", "write_backbone_file": "network", "Pretrainer": "trainer",
    "plot_loss_curve": "trainer", "read_checkpoint": "trainer",
}

__all__ = sorted(_WHERE)


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
