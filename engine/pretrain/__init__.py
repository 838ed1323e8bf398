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
"""

from .augment import AugmentConfig, MultiCropAugment
from .data import MultiCropDataset, load_images
from .heads import DINOHead, IBOTHead
from .losses import DINOLoss, IBOTPatchLoss
from .masking import BlockMasking
from .network import SCRATCH_ARCHITECTURES, DistillNet, ViTInfo, build_vit, ema_update, write_backbone_file
from .trainer import PretrainConfig, Pretrainer, plot_loss_curve, read_checkpoint

__all__ = ["SCRATCH_ARCHITECTURES", "AugmentConfig", "BlockMasking", "DINOHead", "DINOLoss", "DistillNet",
           "IBOTHead", "IBOTPatchLoss", "MultiCropAugment", "MultiCropDataset", "PretrainConfig", "Pretrainer",
           "ViTInfo", "build_vit", "ema_update", "load_images", "plot_loss_curve", "read_checkpoint",
           "write_backbone_file"]
