"""Helpers of the output and crash-safety tests: one tiny model fitted once per test session, and
synthetic images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import texture

_MODEL: list[Path] = []


def tiny_model_file(tmp_path_factory) -> Path:
    """EfficientNet-Lite0 at 64 px fitted on 8 synthetic textures with the quick hold-out + tail
    threshold (seconds, no cross-fit or synthetic defects); fitted once, shared by the test modules.
    Do not change the file: copy it."""
    if not _MODEL:
        from engine.model import InspectionModel

        rng = np.random.default_rng(3)
        good = tmp_path_factory.mktemp("tiny_good")
        for i in range(8):
            Image.fromarray(texture(rng, 64)).save(good / f"{i:03d}.png")
        model = InspectionModel.create(backbone="efficientnet_lite0", size=64, device="cpu",
                                       scorer_params={"coreset_ratio": 0.5})
        model.fit(sorted(good.iterdir()), folds=0, holdout_fraction=0.25, rule="tail")
        assert model.threshold is not None
        path = tmp_path_factory.mktemp("tiny_model") / "tiny.dimodel"
        model.save(path)
        _MODEL.append(path)
    return _MODEL[0]


def write_png(path: Path, seed: int, size: int = 64) -> Path:
    """A synthetic good-part texture ``size`` x ``size`` at ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(texture(np.random.default_rng(seed), size)).save(path)
    return path
