"""The ``pretrain`` command: self-supervised DINO + iBOT pretraining of a ViT on good images.

``main.py`` registers it with :func:`add_pretrain_parser` and runs it with :func:`run_pretrain`::

    python main.py pretrain --good bottle/train/good --backbone scratch-vit-tiny \\
        --out runs/bottle_vit_tiny.safetensors --epochs 30 --img-size 96

Outputs (paths printed at the end):

* ``--out`` (``.safetensors``): the teacher's ViT as a backbone file; use it wherever a backbone
  name is accepted (``engine.backbones.create_backbone(path)``);
* ``<out stem>_pretrain/checkpoint.pt``: checkpoint after every epoch (``--resume`` it);
* ``<out stem>_pretrain/loss.png``: the loss curve.

Errors of the engine (:class:`engine.errors.InspectError`: empty folder, unreadable image, missing
weights, bad checkpoint...) are printed once here, as ``error: ...``, and give exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from engine.errors import InspectError
from engine.pretrain.config import SCRATCH_ARCHITECTURES, AugmentConfig, PretrainConfig  # torch-free: fast -h

_DEFAULTS = PretrainConfig()


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``pretrain`` sub-command to ``subparsers`` and return its parser."""
    p = subparsers.add_parser(
        "pretrain", help="self-supervised pretraining (DINO + iBOT) of a ViT on good images",
        description="Learn a ViT backbone from good images only (DINO + iBOT self-distillation, "
                    "Caron et al. 2021, Zhou et al. 2022). Writes a backbone file usable as --backbone.")
    p.add_argument("--good", required=True, help="folder of good images")
    p.add_argument("--backbone", default="scratch-vit-tiny",
                   help=f"start point: {' / '.join(SCRATCH_ARCHITECTURES)} (random init), a registry name "
                        f"whose weights are local (dino_vits16, dinov2_vits14...), or a backbone file "
                        f"(default: %(default)s)")
    p.add_argument("--weights", default=None, help="explicit weight file for a registry backbone")
    p.add_argument("--out", required=True, help="output backbone file (.safetensors)")
    p.add_argument("--epochs", type=int, default=_DEFAULTS.epochs, help="passes over the good images (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=_DEFAULTS.batch_size, help="images per training step (default: %(default)s)")
    p.add_argument("--img-size", type=int, default=_DEFAULTS.img_size,
                   help="global crop side in px, rounded to the patch size (default: %(default)s)")
    p.add_argument("--local-size", type=int, default=None, help="local crop side in px (default: 3/7 of --img-size)")
    p.add_argument("--local-crops", type=int, default=_DEFAULTS.local_crops,
                   help="local crops per image (default: %(default)s)")
    p.add_argument("--lr", type=float, default=_DEFAULTS.lr,
                   help="base learning rate at batch 256, scaled linearly with the batch (default: %(default)s)")
    p.add_argument("--min-lr", type=float, default=_DEFAULTS.min_lr,
                   help="learning rate at the end of the cosine schedule (default: %(default)s)")
    p.add_argument("--warmup-epochs", type=int, default=None, help="lr warm-up (default: min(10, epochs/10))")
    p.add_argument("--weight-decay", type=float, default=_DEFAULTS.weight_decay,
                   help="AdamW weight decay at the start, cosine to --weight-decay-end (default: %(default)s)")
    p.add_argument("--weight-decay-end", type=float, default=_DEFAULTS.weight_decay_end,
                   help="weight decay at the end of training (default: %(default)s)")
    p.add_argument("--clip-grad", type=float, default=_DEFAULTS.clip_grad, help="0 = off (default: %(default)s)")
    p.add_argument("--momentum-teacher", type=float, default=_DEFAULTS.momentum_teacher,
                   help="teacher EMA momentum at the start, cosine to 1 (default: %(default)s)")
    p.add_argument("--teacher-temp", type=float, default=_DEFAULTS.teacher_temp,
                   help="teacher temperature of the class-token targets (default: %(default)s)")
    p.add_argument("--out-dim", type=int, default=_DEFAULTS.out_dim, help="prototypes K (default: %(default)s)")
    p.add_argument("--separate-patch-head", action="store_true",
                   help="give patch tokens their own last layer (default: shared with the class token)")
    p.add_argument("--mask-ratio", type=float, nargs=2, default=_DEFAULTS.mask_ratio, metavar=("LOW", "HIGH"),
                   help="iBOT masked fraction range (default: %(default)s)")
    p.add_argument("--mask-prob", type=float, default=_DEFAULTS.mask_prob,
                   help="probability that an image is masked for iBOT (default: %(default)s)")
    p.add_argument("--no-color-aug", action="store_true",
                   help="no colour jitter, grayscale or solarisation (when colour is what defects change)")
    p.add_argument("--seed", type=int, default=_DEFAULTS.seed, help="random seed (default: %(default)s)")
    p.add_argument("--resume", default=None, metavar="CKPT",
                   help="continue the run of this checkpoint (its settings are used; training flags are ignored)")
    p.add_argument("--workers", type=int, default=1, help="DataLoader worker processes (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 is often faster on a busy machine)")
    p.add_argument("--no-progress", "--quiet", dest="no_progress", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> PretrainConfig:
    """The :class:`PretrainConfig` the command-line flags describe."""
    augment = AugmentConfig()
    if args.no_color_aug:
        augment = replace(augment, jitter_p=0.0, grayscale_p=0.0, solarize_p=(0.0, 0.0, 0.0))
    return PretrainConfig(
        backbone=args.backbone, weights=args.weights, img_size=args.img_size, local_size=args.local_size,
        local_crops=args.local_crops, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        min_lr=args.min_lr, warmup_epochs=args.warmup_epochs, weight_decay=args.weight_decay,
        weight_decay_end=args.weight_decay_end, clip_grad=args.clip_grad, momentum_teacher=args.momentum_teacher,
        teacher_temp=args.teacher_temp, out_dim=args.out_dim, patch_out_dim=args.out_dim,
        shared_head=not args.separate_patch_head,
        mask_ratio=tuple(args.mask_ratio), mask_prob=args.mask_prob, augment=augment, seed=args.seed)


def run(args: argparse.Namespace) -> int:
    """Run the ``pretrain`` command; return the exit status (0 ok, 2 error, 130 interrupted)."""
    try:
        return _run(args)
    except InspectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from engine.pretrain.data import load_images
    from engine.pretrain.trainer import Pretrainer

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out)
    if out.suffix != ".safetensors":
        raise InspectError(f"--out {out}: the backbone file must end in .safetensors.")
    if args.epochs < 1 or args.batch_size < 1:
        raise InspectError("--epochs and --batch-size must be at least 1.")
    run_dir = out.with_name(out.stem + "_pretrain")
    ckpt_path = run_dir / "checkpoint.pt"

    # Images are kept at up to twice the global crop side: enough detail for every crop.
    max_side = 2 * max(args.img_size, 32)
    from cli.common import report_skipped
    from engine.images import list_images

    report_skipped(list_images(args.good), args.good)  # what load_images leaves out, said (sub-folders...)
    images = load_images(args.good, max_side=max_side)
    print(f"pretrain: {len(images)} good images from {args.good}")

    if args.resume:
        trainer = Pretrainer.resume(args.resume, images, device=args.device, num_workers=args.workers)
        print(f"pretrain: resuming {args.resume} after epoch {trainer.epoch}/{trainer.config.epochs} "
              f"(settings from the checkpoint; training flags ignored)")
    else:
        trainer = Pretrainer(images, config_from_args(args), device=args.device, num_workers=args.workers)
    c, info = trainer.config, trainer.vit_info
    depth = len(trainer.student.backbone.blocks)
    print(f"pretrain: {info.timm_name} (depth {depth}, dim {trainer.student.backbone.embed_dim}, patch "
          f"{info.patch_size}) from {info.source}, on {trainer.device}")
    print(f"pretrain: {c.epochs} epochs x {trainer.steps_per_epoch} steps, batch {trainer.batch_size}, crops 2 x "
          f"{trainer.global_size} px + {c.local_crops} x {trainer.local_size} px, lr "
          f"{trainer.lr_schedule.max():.2e} (peak)")
    print(f"pretrain: checkpoint after every epoch -> {ckpt_path}")

    start = time.time()
    try:
        trainer.train(checkpoint_path=ckpt_path, progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"\npretrain: interrupted after epoch {trainer.epoch}; continue with --resume {ckpt_path}",
              file=sys.stderr)
        return 130
    minutes = (time.time() - start) / 60
    path = trainer.export(out)
    plot = trainer.plot_losses(run_dir / "loss.png")
    loss = trainer.history["loss"]
    print(f"pretrain: done in {minutes:.1f} min; loss {loss[0]:.3f} (first step) -> {loss[-1]:.3f} (last step)")
    print(f"pretrain: backbone file -> {path}  (use it as --backbone {path})")
    print(f"pretrain: loss curve    -> {plot}")
    return 0
