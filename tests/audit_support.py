"""Shared set-up of the audit tests: a small fitted recipe (efficientnet_lite0 at 64 px on synthetic
textures) and archives of synthetic images in a line/lot tree."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import texture, write_textures


def fit_tiny_model(folder: Path, roi=None) -> Path:
    """Fit and save a small knn model on 10 synthetic textures; returns the .dimodel path."""
    from engine.model import InspectionModel

    good = write_textures(folder / "good", 10, np.random.default_rng(0))
    model = InspectionModel.create(backbone="efficientnet_lite0", scorer="knn", size=64, device="cpu")
    model.roi = roi
    model.fit(good, folds=2, synthetic=0)
    path = folder / ("roi.dimodel" if roi is not None else "tiny.dimodel")
    model.save(path)
    return path


def write_archive(root: Path, n: int, seed: int = 1, defect_every: int = 5) -> list[Path]:
    """``n`` 64x64 PNGs in ``root/line{i%2}/lot{i%3}/``; every ``defect_every``-th has a dark square."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        img = texture(rng)
        if defect_every and i % defect_every == 0:
            img[20:34, 24:38] = 10
        p = root / f"line{i % 2}" / f"lot{i % 3}" / f"{i:04d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(p)
        paths.append(p)
    return paths


_MODELS: dict = {}


def shared_tiny_model(tmp_path_factory) -> Path:
    """:func:`fit_tiny_model` once per test session (the fit is the slow part of the audit tests)."""
    if "tiny" not in _MODELS or not _MODELS["tiny"].is_file():
        _MODELS["tiny"] = fit_tiny_model(tmp_path_factory.mktemp("audit_model"))
    return _MODELS["tiny"]
