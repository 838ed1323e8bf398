"""Student / teacher networks of ``pretrain``: a timm ViT, a mask token and an iBOT head.

* :func:`build_vit` makes the ViT to train: from scratch (``"scratch-vit-tiny"`` /
  ``"scratch-vit-small"``: timm ``vit_tiny_patch16_224`` / ``vit_small_patch16_224`` at the
  training resolution), or from a pretrained backbone -- a registry name whose weights are local
  (``dino_vits16``, ``dinov2_vits14``...) or a backbone file written by ``pretrain`` -- loaded with
  :func:`engine.backbones.create_backbone`. Always ``dynamic_img_size=True`` so global and local
  crops of different sizes share the position embeddings (interpolated).
* :class:`DistillNet` runs the ViT itself so that masked patch embeddings can be replaced by a
  learnable mask token before the position embeddings are added (iBOT, Zhou et al., ICLR 2022);
  timm's ViT has no mask token. The token lives here, not in the exported backbone.
* :func:`ema_update`: the teacher is an exponential moving average of the student (DINO, Caron et
  al., ICCV 2021): ``theta_t <- m theta_t + (1 - m) theta_s``.
* :func:`write_backbone_file`: the teacher's ViT as a backbone file that
  ``engine.backbones.create_backbone(path)`` loads (safetensors, configuration in the metadata key
  ``dinoinspect_backbone``).

See also: ``engine.backbones.backbone.read_backbone_file`` (the reader of that file).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..backbones import BACKBONE_FILE_KEY, create_backbone
from ..backbones.registry import IMAGENET_MEAN, IMAGENET_STD
from ..errors import InspectError
from .config import SCRATCH_ARCHITECTURES
from .heads import IBOTHead



@dataclass
class ViTInfo:
    """What is needed to rebuild (and describe) the trained ViT.

    Attributes:
        timm_name: timm architecture.
        model_kwargs: timm ``create_model`` kwargs of the exported backbone (``dynamic_img_size``,
            ``img_size`` of the position-embedding grid, overrides such as ``depth``).
        patch_size: pixels per patch.
        mean, std: input normalisation.
        source: where the initial weights came from (``"random init"``, a weight file...).
    """

    timm_name: str
    model_kwargs: dict
    patch_size: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    source: str = "random init"

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict) -> "ViTInfo":
        return cls(**{**d, "mean": tuple(d["mean"]), "std": tuple(d["std"])})


def create_vit(info: ViTInfo, drop_path: float = 0.0) -> nn.Module:
    """An untrained, headless timm ViT for ``info`` (``drop_path``: stochastic depth rate, training only)."""
    import timm

    vit = timm.create_model(info.timm_name, pretrained=False, num_classes=0, drop_path_rate=drop_path,
                            **info.model_kwargs)
    if "dinov2" in info.timm_name:  # resample position embeddings as DINOv2 does, as the backbone will
        from ..backbones.backbone import use_reference_pos_embed

        use_reference_pos_embed(vit)
    return vit


def build_vit(backbone: str, img_size: int, weights: str | None = None, model_kwargs: dict | None = None,
              drop_path: float = 0.0) -> tuple[nn.Module, ViTInfo]:
    """The ViT to train and its :class:`ViTInfo`.

    Args:
        backbone: ``"scratch-vit-tiny"``, ``"scratch-vit-small"``, a registry name or a backbone file.
        img_size: training (global crop) side in pixels; sets the position-embedding grid of a
            scratch model.
        weights: explicit weight file for a registry name.
        model_kwargs: timm overrides for a scratch model (e.g. ``{"depth": 6}``).
        drop_path: stochastic depth rate of the student.
    Raises:
        InspectError: unknown name, a CNN backbone, a ViT without class token;
        WeightsNotFoundError / CheckpointError: from ``create_backbone``.
    """
    if backbone in SCRATCH_ARCHITECTURES:
        kwargs = {"img_size": int(img_size), **(model_kwargs or {}), "dynamic_img_size": True}
        info = ViTInfo(SCRATCH_ARCHITECTURES[backbone], kwargs, patch_size=0)
        vit = create_vit(info, drop_path)
        info.patch_size = int(vit.patch_embed.patch_size[0])
    else:
        if model_kwargs:
            raise InspectError(f"model overrides {model_kwargs} only apply to scratch models, not to {backbone!r}.")
        bb = create_backbone(backbone, weights=weights, device="cpu")
        if bb.spec.family != "vit":
            raise InspectError(f"backbone {backbone!r} is a CNN; pretrain trains ViTs. Choose a ViT "
                               f"(dino_vits16, dinov2_vits14...) or scratch-vit-tiny / scratch-vit-small.")
        info = ViTInfo(bb.spec.timm_name, {**bb.spec.model_kwargs, "dynamic_img_size": True}, bb.spec.patch_size,
                       tuple(bb.spec.mean), tuple(bb.spec.std), source=f"{backbone} ({bb.weights_source})")
        vit = create_vit(info, drop_path)
        vit.load_state_dict(bb.model.state_dict(), strict=True)
    if getattr(vit, "cls_token", None) is None:
        raise InspectError(f"{info.timm_name}: the ViT has no class token, which the DINO loss needs.")
    return vit, info


class DistillNet(nn.Module):
    """ViT + mask token + iBOT head; used for both the student and the teacher.

    Args:
        vit: timm VisionTransformer with ``dynamic_img_size=True`` and a class token.
        head: :class:`~engine.pretrain.heads.IBOTHead` on the ViT's embedding size.
    """

    def __init__(self, vit: nn.Module, head: IBOTHead):
        super().__init__()
        self.backbone = vit
        self.head = head
        self.mask_token = nn.Parameter(torch.zeros(vit.embed_dim))

    def tokens(self, images: torch.Tensor, masks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Final-norm class and patch tokens.

        Args:
            images: ``(B, 3, H, W)`` normalised, ``H`` and ``W`` multiples of the patch size.
            masks: ``(B, h, w)`` or ``(B, h * w)`` bool, True = replace the patch embedding by the
                mask token; None: no masking.
        Returns:
            ``(B, D)`` class tokens and ``(B, h * w, D)`` patch tokens (prefix tokens removed).
        """
        vit = self.backbone
        x = vit.patch_embed(images)  # (B, h, w, D) with dynamic_img_size, else (B, N, D)
        if masks is not None:
            m = masks.reshape(x.shape[:-1]).unsqueeze(-1)
            x = torch.where(m, self.mask_token.to(x.dtype), x)
        x = vit._pos_embed(x)
        x = vit.patch_drop(x)
        x = vit.norm_pre(x)
        x = vit.blocks(x)
        x = vit.norm(x)
        return x[:, 0], x[:, vit.num_prefix_tokens:]


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """``theta_t <- momentum * theta_t + (1 - momentum) * theta_s`` for every parameter (same order)."""
    t_params = list(teacher.parameters())
    s_params = [p.detach() for p in student.parameters()]
    if len(t_params) != len(s_params):
        raise ValueError("teacher and student differ in structure")
    torch._foreach_mul_(t_params, momentum)
    torch._foreach_add_(t_params, s_params, alpha=1.0 - momentum)


def write_backbone_file(vit: nn.Module, info: ViTInfo, path: str | Path, name: str, img_size: int,
                        description: str, extra: dict | None = None) -> Path:
    """Save a ViT as a pretrained backbone file (atomic write).

    The tensors are the ViT's timm state dict (no heads, no mask token); the metadata key
    ``dinoinspect_backbone`` holds JSON with ``name``, ``family="vit"``, ``timm_name``,
    ``patch_size``, ``size_multiple``, ``mean``, ``std``, ``img_size``, ``layers`` (the last block),
    ``model_kwargs``, ``description`` and ``extra`` (training provenance).

    Returns:
        the path written (``.safetensors``).
    Raises:
        InspectError: ``path`` does not end in ``.safetensors``.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise InspectError(f"{path}: a backbone file must end in .safetensors.")
    cfg = {"name": name, "family": "vit", "timm_name": info.timm_name, "patch_size": info.patch_size,
           "size_multiple": info.patch_size, "mean": list(info.mean), "std": list(info.std),
           "img_size": int(img_size), "layers": [len(vit.blocks) - 1], "model_kwargs": info.model_kwargs,
           "description": description, **({"training": extra} if extra else {})}
    tensors = {k: (v.float() if v.is_floating_point() else v).detach().cpu().contiguous().clone()
               for k, v in vit.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={BACKBONE_FILE_KEY: json.dumps(cfg)})
    os.replace(tmp, path)
    return path
