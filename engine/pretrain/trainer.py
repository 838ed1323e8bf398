"""Self-supervised pretraining of a ViT on good images: DINO + iBOT self-distillation.

Recipe (DINO, Caron et al., ICCV 2021; iBOT, Zhou et al., ICLR 2022):

* a *student* and a *teacher* network of the same architecture (:class:`~engine.pretrain.network.DistillNet`:
  timm ViT + iBOT head); the teacher starts as a copy of the student and is then the EMA of the
  student, momentum rising from ``momentum_teacher`` to 1 along a cosine;
* each image gives two global and ``local_crops`` local crops (:mod:`~engine.pretrain.augment`);
  the teacher sees the global crops, the student all crops, its global crops block-masked
  (:mod:`~engine.pretrain.masking`);
* loss = ``lambda_cls`` * DINO class-token loss + ``lambda_patch`` * iBOT masked-patch loss
  (:mod:`~engine.pretrain.losses`), teacher outputs centred and sharpened;
* AdamW; learning rate ``lr * batch / 256`` (linear scaling rule) with linear warm-up and cosine
  decay to ``min_lr``; weight decay cosine from ``weight_decay`` to ``weight_decay_end`` (not on
  biases, norms, tokens of one dimension); gradient clipping by global norm; the heads' last layers
  frozen during the first ``freeze_last_layer_epochs``; bf16 autocast on CUDA;
* a checkpoint after every epoch with everything needed to continue bit for bit (student, teacher,
  optimizer, centres, epoch, torch RNG; data randomness is reseeded per epoch and sample);
* output: the teacher's ViT as a backbone file (:func:`~engine.pretrain.network.write_backbone_file`)
  that ``engine.backbones.create_backbone(path)`` loads; a loss-curve PNG.

Usage::

    from engine.pretrain import PretrainConfig, Pretrainer, load_images
    images = load_images("bottle/train/good", max_side=192)
    trainer = Pretrainer(images, PretrainConfig(backbone="scratch-vit-tiny", img_size=96, epochs=10))
    trainer.train(checkpoint_path="run/checkpoint.pt")
    trainer.export("run/bottle_vit_tiny.safetensors")
    trainer.plot_losses("run/loss.png")

    # after an interruption
    trainer = Pretrainer.resume("run/checkpoint.pt", images)
    trainer.train(checkpoint_path="run/checkpoint.pt")
"""

from __future__ import annotations

import copy
import json
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..backbones import pick_device, round_size
from ..errors import CheckpointError, InspectError
from .augment import MultiCropAugment
from .config import AugmentConfig, PretrainConfig  # noqa: F401 - defined there (torch-free)
from .data import MultiCropDataset, epoch_order
from .heads import IBOTHead
from .losses import DINOLoss, IBOTPatchLoss
from .masking import BlockMasking
from .network import DistillNet, ViTInfo, build_vit, create_vit, ema_update, write_backbone_file
from .schedules import cosine_schedule

CHECKPOINT_FORMAT = "dinoinspect-pretrain-checkpoint"
CHECKPOINT_VERSION = 1


class Pretrainer:
    """A DINO + iBOT pretraining run (module docstring).

    Args:
        images: good images, ``(H, W, 3) uint8`` RGB (see :func:`engine.pretrain.load_images`).
        config: :class:`PretrainConfig`.
        device: ``"auto"`` (CUDA if present), ``"cpu"``, ``"cuda"``...
        num_workers: DataLoader worker processes making the crops (0: in the main process). The
            crops do not depend on it.
        vit_info: rebuild this architecture with random weights instead of building from
            ``config.backbone`` (used by :meth:`resume`, whose checkpoint then sets the weights).

    Construction seeds torch's global RNG with ``config.seed``.

    Attributes:
        student, teacher: :class:`~engine.pretrain.network.DistillNet`.
        epoch: number of finished epochs.
        steps_per_epoch, batch_size, global_size, local_size: derived sizes.
        history: per-step ``loss``, ``cls``, ``patch`` (float lists) and ``lr``.

    Raises:
        DatasetError: no images; InspectError / WeightsNotFoundError / CheckpointError: backbone.
    """

    def __init__(self, images: Sequence[np.ndarray], config: PretrainConfig, device: str | None = "auto",
                 num_workers: int = 0, vit_info: ViTInfo | None = None):
        self.config = c = config
        self.device = pick_device(device)
        self.num_workers = int(num_workers)
        torch.manual_seed(c.seed)
        if vit_info is None:
            vit, self.vit_info = build_vit(c.backbone, c.img_size, c.weights, c.model_kwargs, c.drop_path)
        else:
            vit, self.vit_info = create_vit(vit_info, c.drop_path), vit_info
        p = self.vit_info.patch_size
        self.global_size = round_size(c.img_size, p)
        self.local_size = round_size(c.local_size or self.global_size * 3 / 7, p)

        head = IBOTHead(vit.embed_dim, c.out_dim, c.patch_out_dim, c.shared_head, c.hidden_dim, c.bottleneck_dim,
                        c.head_layers, c.norm_last_layer)
        self.student = DistillNet(vit, head).to(self.device)
        self.teacher = copy.deepcopy(self.student)
        self.teacher.requires_grad_(False)
        self.teacher.eval()
        self.student.train()

        augment = MultiCropAugment(self.global_size, self.local_size, c.local_crops, c.augment,
                                   self.vit_info.mean, self.vit_info.std)
        masking = BlockMasking(c.mask_ratio, c.mask_prob, c.mask_min_patches, None, c.mask_aspect)
        grid = self.global_size // p
        self.dataset = MultiCropDataset(images, augment, masking, (grid, grid), c.seed)
        self.batch_size = min(c.batch_size, len(self.dataset))
        self.steps_per_epoch = len(self.dataset) // self.batch_size

        n_it = (c.epochs, self.steps_per_epoch)
        self.lr_schedule = cosine_schedule(c.lr * self.batch_size / 256.0, c.min_lr, *n_it, c.lr_warmup_epochs())
        self.wd_schedule = cosine_schedule(c.weight_decay, c.weight_decay_end, *n_it)
        self.momentum_schedule = cosine_schedule(c.momentum_teacher, 1.0, *n_it)
        temp_warm = c.teacher_temp_warmup_epochs()
        self.dino_loss = DINOLoss(c.out_dim, c.warmup_teacher_temp, c.teacher_temp, temp_warm, c.epochs,
                                  c.student_temp, c.center_momentum).to(self.device)
        self.patch_loss = IBOTPatchLoss(head.patch_out_dim, c.warmup_teacher_patch_temp, c.teacher_patch_temp,
                                        temp_warm, c.epochs, c.student_temp, c.center_momentum).to(self.device)

        decay, no_decay = [], []
        for name, prm in self.student.named_parameters():
            (no_decay if prm.ndim <= 1 or name.endswith(".bias") else decay).append(prm)
        self.optimizer = torch.optim.AdamW([{"params": decay, "apply_wd": True},
                                            {"params": no_decay, "apply_wd": False, "weight_decay": 0.0}])
        self.epoch = 0
        self.history: dict[str, list[float]] = {"loss": [], "cls": [], "patch": [], "lr": []}

    # ------------------------------------------------------------------ training
    @property
    def total_steps(self) -> int:
        return self.config.epochs * self.steps_per_epoch

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def step(self, views: Sequence[torch.Tensor], masks: torch.Tensor, it: int) -> dict[str, float]:
        """One optimisation step at global iteration ``it``.

        Args:
            views: ``[global 1, global 2, local 1, ...]``, each ``(B, 3, S, S) float32`` normalised.
            masks: ``(B, 2, h, w) bool`` iBOT masks of the two global views.
            it: iteration index (selects lr, weight decay, momentum; epoch = ``it // steps_per_epoch``).
        Returns:
            ``{"loss", "cls", "patch", "lr"}`` floats.
        Raises:
            InspectError: the loss is not finite (the message suggests a lower learning rate).
        """
        c = self.config
        epoch = it // self.steps_per_epoch
        for group in self.optimizer.param_groups:
            group["lr"] = float(self.lr_schedule[it])
            if group["apply_wd"]:
                group["weight_decay"] = float(self.wd_schedule[it])
        dev = self.device
        views = [v.to(dev, non_blocking=True) for v in views]
        n_views = len(views)
        glob = torch.cat(views[:2])
        gmask = torch.cat([masks[:, 0], masks[:, 1]]).flatten(1).to(dev)  # (2B, N)

        with self._autocast():
            with torch.no_grad():
                t_cls, t_patch = self.teacher.tokens(glob)
                t_cls = self.teacher.head(t_cls)
                t_patch = self.teacher.head.forward_patch(t_patch[gmask])  # (M, K) at masked positions
            s_cls, s_patch = self.student.tokens(glob, gmask)
            if n_views > 2:
                s_cls_local, _ = self.student.tokens(torch.cat(views[2:]))
                s_cls = torch.cat([s_cls, s_cls_local])
            s_cls = self.student.head(s_cls)
            s_patch = self.student.head.forward_patch(s_patch[gmask])
        loss_cls = self.dino_loss(s_cls.chunk(n_views), t_cls.chunk(2), epoch)
        loss_patch = self.patch_loss(s_patch, t_patch, gmask, epoch)
        loss = c.lambda_cls * loss_cls + c.lambda_patch * loss_patch
        if not torch.isfinite(loss):
            raise InspectError(f"pretrain: loss became {loss.item()} at iteration {it}; lower the learning "
                               f"rate (--lr) or the gradient clip (--clip-grad).")

        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if c.clip_grad > 0:
            torch.nn.utils.clip_grad_norm_(self.student.parameters(), c.clip_grad)
        if epoch < c.freeze_last_layer_epochs:
            for prm in self.student.head.last_layer_parameters():
                prm.grad = None
        self.optimizer.step()
        ema_update(self.teacher, self.student, float(self.momentum_schedule[it]))
        self.dino_loss.update_center(t_cls)
        if t_patch.shape[0] > 0:
            self.patch_loss.update_center(t_patch)
        return {"loss": loss.item(), "cls": loss_cls.item(), "patch": loss_patch.item(),
                "lr": float(self.lr_schedule[it])}

    def epoch_batches(self, epoch: int) -> DataLoader:
        """The ``steps_per_epoch`` batches of ``epoch``: ``(views, masks)`` as :meth:`step` takes them."""
        order = epoch_order(len(self.dataset), self.config.seed, epoch)[: self.steps_per_epoch * self.batch_size]
        return DataLoader(self.dataset, batch_size=self.batch_size, sampler=[(epoch, i) for i in order],
                          num_workers=self.num_workers, pin_memory=self.device.type == "cuda",
                          generator=torch.Generator())

    def train(self, until_epoch: int | None = None, checkpoint_path: str | Path | None = None,
              progress: bool = True) -> dict[str, list[float]]:
        """Train from :attr:`epoch` to ``until_epoch`` (default: ``config.epochs``).

        A checkpoint is written to ``checkpoint_path`` (if given) after every epoch. The progress
        bar (tqdm, stderr) shows the loss of the last step and the epoch.

        Returns:
            :attr:`history`.
        """
        from tqdm import tqdm

        stop = self.config.epochs if until_epoch is None else min(int(until_epoch), self.config.epochs)
        bar = tqdm(total=max(0, stop - self.epoch) * self.steps_per_epoch, disable=not progress,
                   desc="pretrain", unit="step", dynamic_ncols=True)
        try:
            while self.epoch < stop:
                for s, (views, masks) in enumerate(self.epoch_batches(self.epoch)):
                    out = self.step(views, masks, self.epoch * self.steps_per_epoch + s)
                    for k, v in out.items():
                        self.history[k].append(v)
                    bar.set_postfix(epoch=f"{self.epoch + 1}/{self.config.epochs}", loss=f"{out['loss']:.4f}")
                    bar.update(1)
                self.epoch += 1
                if checkpoint_path is not None:
                    self.save_checkpoint(checkpoint_path)
        finally:
            bar.close()
        return self.history

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """Everything to continue the run: tensors, plain numbers, strings (loadable with
        ``torch.load(weights_only=True)``)."""
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
        return {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "config": json.dumps(self.config.to_dict()), "vit_info": json.dumps(self.vit_info.to_dict()),
            "epoch": self.epoch,
            "student": self.student.state_dict(), "teacher": self.teacher.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "dino_center": self.dino_loss.center.detach().cpu(),
            "patch_center": self.patch_loss.center.detach().cpu(),
            "rng_torch": torch.get_rng_state(), "rng_cuda": cuda_rng,
            "history": {k: list(v) for k, v in self.history.items()},
        }

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write :meth:`state_dict` to ``path`` (atomic: a temporary file then a rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore a checkpoint of a run with the same configuration.

        Raises:
            CheckpointError: unreadable file, not a pretrain checkpoint, or another configuration.
        """
        ckpt = read_checkpoint(path)
        if json.loads(ckpt["config"]) != self.config.to_dict():
            raise CheckpointError(f"{path}: checkpoint of a run with other settings; resume with "
                                  f"Pretrainer.resume(path, images) to use the checkpoint's settings.")
        try:
            self.student.load_state_dict(ckpt["student"])
            self.teacher.load_state_dict(ckpt["teacher"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{path}: checkpoint does not match the network ({exc}).") from exc
        self.dino_loss.center.copy_(ckpt["dino_center"])
        self.patch_loss.center.copy_(ckpt["patch_center"])
        torch.set_rng_state(ckpt["rng_torch"])
        if ckpt["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng_cuda"])
        self.epoch = int(ckpt["epoch"])
        self.history = {k: list(v) for k, v in ckpt["history"].items()}

    @classmethod
    def resume(cls, path: str | Path, images: Sequence[np.ndarray], device: str | None = "auto",
               num_workers: int = 0) -> "Pretrainer":
        """A trainer rebuilt from a checkpoint (its own settings and architecture), ready to :meth:`train`.

        Raises:
            CheckpointError: as :meth:`load_checkpoint`.
        """
        ckpt = read_checkpoint(path)
        try:
            config = PretrainConfig.from_dict(json.loads(ckpt["config"]))
            info = ViTInfo.from_dict(json.loads(ckpt["vit_info"]))
        except (ValueError, TypeError, KeyError) as exc:
            raise CheckpointError(f"{path}: checkpoint settings cannot be read ({exc}).") from exc
        trainer = cls(images, config, device=device, num_workers=num_workers, vit_info=info)
        trainer.load_checkpoint(path)
        return trainer

    # ------------------------------------------------------------------ outputs
    def export(self, path: str | Path, name: str | None = None) -> Path:
        """Write the teacher's ViT as a backbone file ``path`` (``.safetensors``) and return it.

        ``engine.backbones.create_backbone(path)`` loads it; its patch features are the teacher's
        final-norm patch tokens.
        """
        path = Path(path)
        c = self.config
        extra = {"method": "DINO+iBOT", "init": self.vit_info.source, "epochs_done": self.epoch,
                 "epochs": c.epochs, "images": len(self.dataset), "seed": c.seed,
                 "final_loss": self.history["loss"][-1] if self.history["loss"] else None}
        desc = (f"{self.vit_info.timm_name} self-supervised (DINO + iBOT) on {len(self.dataset)} good images, "
                f"{self.epoch} epochs at {self.global_size} px, from {self.vit_info.source}")
        return write_backbone_file(self.teacher.backbone, self.vit_info, path, name or path.stem,
                                   self.global_size, desc, extra)

    def plot_losses(self, path: str | Path) -> Path:
        """Save the loss curve (:func:`plot_loss_curve`) to ``path`` (PNG)."""
        return plot_loss_curve(self.history, path, self.steps_per_epoch)


def read_checkpoint(path: str | Path) -> dict:
    """Load a pretrain checkpoint with ``torch.load(weights_only=True)`` (no code execution).

    Raises:
        CheckpointError: unreadable, or not a pretrain checkpoint of a known version.
    """
    path = Path(path)
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any decoding failure is a bad checkpoint
        raise CheckpointError(f"{path}: cannot read pretrain checkpoint ({type(exc).__name__}: {exc}).") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a DINOInspect pretrain checkpoint.")
    if ckpt.get("version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {ckpt.get('version')} is newer than this program "
                              f"({CHECKPOINT_VERSION}); update DINOInspect.")
    return ckpt


def plot_loss_curve(history: dict[str, list[float]], path: str | Path, steps_per_epoch: int = 1) -> Path:
    """Plot total, class-token (DINO) and patch (iBOT) loss per step, with the per-epoch mean of
    the total, to a PNG (matplotlib Agg canvas; no global backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    steps = np.arange(1, len(history.get("loss", [])) + 1)
    for key, label, style in (("loss", "total", "-"), ("cls", "DINO [CLS]", "--"), ("patch", "iBOT patch", ":")):
        if history.get(key):
            ax.plot(steps, history[key], style, lw=1, label=label)
    loss = np.asarray(history.get("loss", []), dtype=float)
    n_ep = len(loss) // max(1, steps_per_epoch)
    if n_ep > 0:
        means = loss[: n_ep * steps_per_epoch].reshape(n_ep, -1).mean(1)
        ax.plot((np.arange(n_ep) + 1) * steps_per_epoch, means, "o-", lw=2, ms=3, label="total, epoch mean")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("pretrain loss")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(str(path))
    return path
