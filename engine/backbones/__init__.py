"""Backbones: a registry of named feature extractors and their weight sources.

Usage::

    from engine.backbones import create_backbone
    bb = create_backbone("auto")                # DINOv2 ViT-S/14 if weights are local, else EfficientNet-Lite0
    pre = bb.preprocess(size=224)
    feats = bb.extract(pre.batch([image]))      # (1, h, w, D) float32

See also: ``registry`` (names, weight lookup), ``checkpoints`` (official key formats).
"""

from .backbone import (BACKBONE_FILE_KEY, Backbone, create_backbone, file_sha256, pick_device,
                       read_backbone_file, resolve_backbone_name)
from .preprocess import Preprocess, round_size
from .registry import BACKBONES, OFFLINE_DEFAULT, BackboneSpec, find_local_weights, resolve_weights

__all__ = ["BACKBONES", "BACKBONE_FILE_KEY", "OFFLINE_DEFAULT", "Backbone", "BackboneSpec", "Preprocess",
           "create_backbone", "file_sha256", "find_local_weights", "pick_device", "read_backbone_file",
           "resolve_backbone_name", "resolve_weights", "round_size"]
