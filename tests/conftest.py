"""Shared fixtures: synthetic images made by the tests, and the real-data folder when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Backbones run in float32 in the tests, whether or not this CPU has native bf16 (the "auto" default
# would pick bf16 on AMX / AVX512-BF16 machines): exactness tests compare to float32 references.
# tests/engine/test_backbones.py tests the bf16 path explicitly.
os.environ["DINOINSPECT_CPU_BF16"] = "0"

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DINOINSPECT_DATA", REPO.parent / "shared" / "data"))


def real_category(rel: str) -> Path:
    """Path of a real category under ../shared/data, or skip the test with the reason."""
    p = SHARED_DATA / rel
    if not (p / "train" / "good").is_dir():
        pytest.skip(f"real data not found at {p} (needs ../shared/data, present in CI, or DINOINSPECT_DATA=/path/to/data)")
    return p


def texture(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A smooth random 'good part' texture, (size, size, 3) uint8."""
    base = np.zeros((size, size, 3), np.float32)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for c in range(3):
        base[..., c] = 120 + 40 * np.sin(2 * np.pi * (3 * xx + 2 * yy) + c) + rng.normal(0, 4, (size, size))
    return np.clip(base, 0, 255).astype(np.uint8)


def write_textures(folder: Path, n: int, rng: np.random.Generator) -> list[Path]:
    """``n`` :func:`texture` PNGs ``00.png``, ``01.png``... in ``folder`` (created); their paths, sorted."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i:02d}.png" for i in range(n)]
    for p in paths:
        Image.fromarray(texture(rng)).save(p)
    return paths


@pytest.fixture
def synthetic_mvtec(tmp_path: Path) -> Path:
    """A tiny MVTec-layout category: 12 train good, 4 test good, 4 test 'scratch' with masks."""
    rng = np.random.default_rng(0)
    root = tmp_path / "toy"
    for sub in ("train/good", "test/good", "test/scratch", "ground_truth/scratch"):
        (root / sub).mkdir(parents=True)
    for i in range(12):
        Image.fromarray(texture(rng)).save(root / "train/good" / f"{i:03d}.png")
    for i in range(4):
        Image.fromarray(texture(rng)).save(root / "test/good" / f"{i:03d}.png")
        img = texture(rng)
        mask = np.zeros((64, 64), np.uint8)
        y, x = 10 + 8 * i, 12 + 6 * i
        img[y : y + 10, x : x + 10] = [250, 20, 20] if i % 2 else [10, 10, 10]
        mask[y : y + 10, x : x + 10] = 255
        Image.fromarray(img).save(root / "test/scratch" / f"{i:03d}.png")
        Image.fromarray(mask).save(root / "ground_truth/scratch" / f"{i:03d}_mask.png")
    return root
