"""Fixtures of the GUI tests: an isolated data folder, a window, and a tiny recipe fitted once on
synthetic textures (EfficientNet-Lite0 at 64 px, so it runs everywhere in seconds)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import texture
from tests.gui.window_helpers import SIZE, make_window


@pytest.fixture(scope="session")
def toy_images(tmp_path_factory) -> Path:
    """Eight synthetic good textures, 64x64 PNG."""
    rng = np.random.default_rng(1)
    dst = tmp_path_factory.mktemp("toy_good")
    for i in range(8):
        Image.fromarray(texture(rng)).save(dst / f"{i:03d}.png")
    return dst


@pytest.fixture(scope="session")
def toy_model(toy_images, tmp_path_factory) -> Path:
    """A recipe fitted on :func:`toy_images` (do not change it: use :func:`toy_copy`)."""
    from engine.model import InspectionModel

    model = InspectionModel.create(backbone="efficientnet_lite0", size=SIZE, device="cpu",
                                   scorer_params={"coreset_ratio": 0.5})
    model.fit(sorted(toy_images.iterdir()))
    path = tmp_path_factory.mktemp("toy_recipes") / "toy.dimodel"
    model.save(path)
    return path


@pytest.fixture
def toy_copy(toy_model, tmp_path) -> Path:
    """A copy of the toy recipe that a test may change (apply a threshold to)."""
    path = tmp_path / "recipes" / "toy.dimodel"
    path.parent.mkdir()
    shutil.copy2(toy_model, path)
    return path


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """Isolated data folder and settings for one test."""
    d = tmp_path / "appdata"
    monkeypatch.setenv("DINOINSPECT_DATA_DIR", str(d))
    return d


@pytest.fixture
def window(qtbot, data_dir):
    return make_window(qtbot, restore_recipe=False)
