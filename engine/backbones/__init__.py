"""Backbones: a registry of named feature extractors and their weight sources.

Usage::

    from engine.backbones import create_backbone
    bb = create_backbone("auto")                # DINOv2 ViT-S/14 if weights are local, else EfficientNet-Lite0
    pre = bb.preprocess(size=224)
    feats = bb.extract(pre.batch([image]))      # (1, h, w, D) float32

Names are imported on first use (PEP 562 ``__getattr__``): ``from engine.backbones import BACKBONES``
reads the registry without importing torch, so ``main.py COMMAND -h`` stays fast; the network code
(``backbone``, ``preprocess``) is imported when one of its names is asked for.

See also: ``registry`` (names, weight lookup), ``checkpoints`` (official key formats).
"""

from __future__ import annotations

from ..lazy_exports import lazy_exports

_WHERE = {
    "BACKBONE_FILE_KEY": "backbone", "Backbone": "backbone", "create_backbone": "backbone", "file_sha256": "backbone",
    "pick_device": "backbone", "read_backbone_file": "backbone", "resolve_backbone_name": "backbone",
    "Preprocess": "preprocess", "round_size": "preprocess",
    "BACKBONES": "registry", "OFFLINE_DEFAULT": "registry", "BackboneSpec": "registry",
    "find_local_weights": "registry", "resolve_weights": "registry",
}

__all__ = sorted(_WHERE)


__getattr__, __dir__ = lazy_exports(__name__, _WHERE)
