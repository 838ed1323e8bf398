"""Tests of engine.pretrain: DINO + iBOT self-distillation (heads, crops, masks, losses, trainer, CLI).

Everything runs on tiny ViTs (2 blocks, 8 px patches, 32-48 px crops) and synthetic textures, on CPU
with one torch thread (small tensors are much slower with two threads on a busy 2-core machine).
"""

from __future__ import annotations

import argparse
import copy
import math

import numpy as np
import pytest
import torch
from PIL import Image

from engine.backbones import create_backbone
from engine.errors import CheckpointError
from engine.pretrain import (AugmentConfig, BlockMasking, DINOHead, DINOLoss, IBOTHead, IBOTPatchLoss,
                             MultiCropAugment, PretrainConfig, Pretrainer, load_images)
from cli.pretrain import add_parser as add_pretrain_parser, run as run_pretrain
from engine.pretrain.schedules import cosine_schedule, warmup_constant_schedule

TINY_VIT = {"depth": 2, "embed_dim": 64, "num_heads": 2, "patch_size": 8}
NO_COLOUR = AugmentConfig(jitter_p=0.0, grayscale_p=0.0, blur_p=(0.0, 0.0, 0.0), solarize_p=(0.0, 0.0, 0.0))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def textures(n: int, size: int = 64, seed: int = 0) -> list[np.ndarray]:
    """``n`` ``(size, size, 3) uint8`` textures of four kinds (vertical / horizontal stripes,
    checkerboard, noise; random frequency and phase), each with its own colour tint. The tint is a
    cue that survives cropping and flipping, so a run of a few dozen steps has something to learn."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = []
    for i in range(n):
        f, ph = rng.uniform(0.4, 0.6), rng.uniform(0, 2 * np.pi)
        kind = i % 4
        if kind == 0:
            base = np.sin(f * xx + ph)
        elif kind == 1:
            base = np.sin(f * yy + ph)
        elif kind == 2:
            base = np.sign(np.sin(f * xx + ph) * np.sin(f * yy + ph))
        else:
            base = rng.normal(0, 1, (size, size))
        tint = rng.uniform(0.25, 0.75, 3)
        img = tint + 0.2 * base[..., None] + rng.normal(0, 0.03, (size, size, 3))
        out.append((np.clip(img, 0, 1) * 255).astype(np.uint8))
    return out


def tiny_config(**overrides) -> PretrainConfig:
    kw = dict(backbone="scratch-vit-tiny", model_kwargs=dict(TINY_VIT), img_size=32, local_size=16, local_crops=2,
              epochs=2, batch_size=4, out_dim=64, patch_out_dim=64, hidden_dim=64, bottleneck_dim=32,
              lr=0.02, warmup_epochs=0, momentum_teacher=0.9, drop_path=0.0, warmup_teacher_temp_epochs=0,
              mask_prob=1.0, augment=NO_COLOUR)
    kw.update(overrides)
    return PretrainConfig(**kw)


def first_batch(trainer: Pretrainer):
    return next(iter(trainer.epoch_batches(0)))


# ---------------------------------------------------------------------------------------- schedules
def test_cosine_schedule_warms_up_linearly_then_follows_the_half_cosine():
    s = cosine_schedule(1.0, 0.1, epochs=4, steps_per_epoch=5, warmup_epochs=1)
    assert s.shape == (20,)
    np.testing.assert_allclose(s[:5], np.linspace(0, 1, 5, endpoint=False))
    i = np.arange(15)
    np.testing.assert_allclose(s[5:], 0.1 + 0.9 * (1 + np.cos(np.pi * i / 15)) / 2)


def test_teacher_temperature_warms_up_then_stays():
    np.testing.assert_allclose(warmup_constant_schedule(0.04, 0.07, 3, 5), [0.04, 0.055, 0.07, 0.07, 0.07])


# -------------------------------------------------------------------------------------------- heads
def test_dino_head_last_layer_has_unit_rows_and_gives_cosine_logits():
    head = DINOHead(16, out_dim=10, hidden_dim=32, bottleneck_dim=8, n_layers=3)
    w = head.last_layer.weight()
    np.testing.assert_allclose(w.norm(dim=1).detach().numpy(), np.ones(10), rtol=1e-5)
    out = head(torch.randn(5, 16))
    assert out.shape == (5, 10) and out.abs().max() <= 1.0 + 1e-5
    assert head.last_layer.weight_g is None  # norm_last_layer: gain fixed to 1


def test_ibot_head_shares_or_separates_the_patch_last_layer():
    shared = IBOTHead(16, out_dim=10, patch_out_dim=7, shared_head=True, hidden_dim=32, bottleneck_dim=8)
    separate = IBOTHead(16, out_dim=10, patch_out_dim=7, shared_head=False, hidden_dim=32, bottleneck_dim=8)
    x = torch.randn(2, 3, 16)
    assert shared.forward_patch(x).shape == (2, 3, 10)
    assert separate.forward_patch(x).shape == (2, 3, 7)
    assert len(shared.last_layer_parameters()) == 1 and len(separate.last_layer_parameters()) == 2


# ------------------------------------------------------------------------------------------ augment
def test_multicrop_gives_two_global_and_n_local_views_reproducibly():
    aug = MultiCropAugment(32, 16, n_local=3)
    img = torch.from_numpy(textures(1)[0].transpose(2, 0, 1).copy())
    a = aug(img, torch.Generator().manual_seed(3))
    b = aug(img, torch.Generator().manual_seed(3))
    assert [tuple(v.shape) for v in a] == [(3, 32, 32)] * 2 + [(3, 16, 16)] * 3
    assert all(v.dtype == torch.float32 for v in a)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    c = aug(img, torch.Generator().manual_seed(4))
    assert not torch.equal(a[0], c[0])


# ------------------------------------------------------------------------------------------ masking
def test_masking_ratio_and_probability_are_as_configured():
    masking = BlockMasking(ratio=(0.1, 0.5), prob=0.5)
    masks = masking(400, (8, 8), torch.Generator().manual_seed(0))
    assert masks.shape == (400, 8, 8) and masks.dtype == torch.bool
    counts = masks.flatten(1).sum(1)
    masked = counts > 0
    assert 0.4 < masked.float().mean() < 0.6
    lo, hi = round(0.1 * 64), round(0.5 * 64)
    assert counts[masked].min() >= lo and counts[masked].max() <= hi
    assert counts[masked].float().std() > 3  # the ratio is drawn per image across the range


def test_masking_blocks_have_the_configured_area_and_aspect():
    g = torch.Generator().manual_seed(1)
    square = BlockMasking(ratio=(9 / 64, 9 / 64), prob=1.0, min_block_patches=9, max_block_patches=9, aspect=(1, 1))
    tall = BlockMasking(ratio=(16 / 100, 16 / 100), prob=1.0, min_block_patches=16, max_block_patches=16,
                        aspect=(4, 4))
    for _ in range(20):
        m = square(1, (8, 8), g)[0]
        rows, cols = m.nonzero().unbind(1)
        assert m.sum() == 9 and rows.max() - rows.min() == 2 and cols.max() - cols.min() == 2
        m = tall(1, (10, 10), g)[0]
        rows, cols = m.nonzero().unbind(1)
        assert m.sum() == 16 and rows.max() - rows.min() == 7 and cols.max() - cols.min() == 1


# ------------------------------------------------------------------------------------------- losses
def test_dino_loss_is_the_cross_view_cross_entropy_of_centred_sharpened_targets():
    torch.manual_seed(0)
    loss_fn = DINOLoss(6, warmup_teacher_temp=0.04, teacher_temp=0.07, warmup_teacher_temp_epochs=3, epochs=5,
                       student_temp=0.1)
    loss_fn.center.copy_(torch.randn(1, 6))
    student = [torch.randn(3, 6) for _ in range(4)]
    teacher = [torch.randn(3, 6) for _ in range(2)]
    epoch, tau_t = 1, 0.055
    c = loss_fn.center[0].numpy().astype(np.float64)
    total, pairs = 0.0, 0
    for i, t in enumerate(teacher):
        for v, s in enumerate(student):
            if v == i:
                continue
            for b in range(3):
                q = np.exp((t[b].double().numpy() - c) / tau_t)
                q /= q.sum()
                z = s[b].double().numpy() / 0.1
                logp = z - np.log(np.exp(z).sum())
                total += -(q * logp).sum() / 3
            pairs += 1
    assert float(loss_fn(student, teacher, epoch)) == pytest.approx(total / pairs, rel=1e-5)


def test_ibot_patch_loss_averages_masked_positions_per_image_then_over_images():
    torch.manual_seed(0)
    loss_fn = IBOTPatchLoss(5, 0.04, 0.04, 0, 2, student_temp=0.1)
    masks = torch.tensor([[True, False, True, False], [False, False, False, False], [False, True, False, False]])
    m = int(masks.sum())
    s, t = torch.randn(m, 5), torch.randn(m, 5)
    ce = -(torch.softmax(t / 0.04, -1) * torch.log_softmax(s / 0.1, -1)).sum(-1)
    expected = ((ce[0] + ce[1]) / 2 + 0.0 + ce[2]) / 3
    assert float(loss_fn(s, t, masks, 0)) == pytest.approx(float(expected), rel=1e-5)


def test_centre_update_is_the_ema_of_the_batch_mean():
    torch.manual_seed(0)
    for loss_fn in (DINOLoss(6, 0.04, 0.07, 0, 3, center_momentum=0.9),
                    IBOTPatchLoss(6, 0.04, 0.07, 0, 3, center_momentum=0.9)):
        c0 = torch.randn(1, 6)
        loss_fn.center.copy_(c0)
        t = torch.randn(10, 6)
        loss_fn.update_center(t)
        expected = 0.9 * c0 + 0.1 * t.mean(0, keepdim=True)
        torch.testing.assert_close(loss_fn.center, expected)


# ------------------------------------------------------------------------------------------ trainer
def test_one_step_changes_the_student_and_moves_the_teacher_only_by_ema():
    trainer = Pretrainer(textures(4), tiny_config(), device="cpu")
    student0 = {k: v.clone() for k, v in trainer.student.state_dict().items()}
    teacher0 = copy.deepcopy(trainer.teacher)
    views, masks = first_batch(trainer)
    trainer.step(views, masks, 0)

    s1 = dict(trainer.student.named_parameters())
    changed = [k for k, p in s1.items() if not torch.equal(p, student0[k])]
    assert "backbone.patch_embed.proj.weight" in changed and "backbone.blocks.1.mlp.fc2.weight" in changed
    # last layer frozen during the first epoch
    assert "head.last_layer.weight_v" not in changed
    m = trainer.config.momentum_teacher  # cosine schedule at iteration 0
    for k, p in trainer.teacher.named_parameters():
        expected = m * dict(teacher0.named_parameters())[k] + (1 - m) * s1[k]
        torch.testing.assert_close(p, expected, rtol=1e-6, atol=1e-7)


def test_ema_momentum_and_centre_follow_their_formulas_during_training():
    trainer = Pretrainer(textures(8), tiny_config(epochs=3), device="cpu")
    batches = list(trainer.epoch_batches(0))
    trainer.step(*batches[0], 0)
    teacher0 = copy.deepcopy(trainer.teacher)
    centre0 = trainer.dino_loss.center.clone()
    views, masks = batches[1]
    with torch.no_grad():  # teacher class logits of this batch, computed before the step
        cls, _ = teacher0.tokens(torch.cat(views[:2]))
        t_cls = teacher0.head(cls)
    trainer.step(views, masks, 1)

    total = trainer.total_steps
    m0 = trainer.config.momentum_teacher
    m = 1 - (1 - m0) * (1 + math.cos(math.pi * 1 / total)) / 2
    s = dict(trainer.student.named_parameters())
    for k, p in trainer.teacher.named_parameters():
        torch.testing.assert_close(p, m * dict(teacher0.named_parameters())[k] + (1 - m) * s[k],
                                   rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(trainer.dino_loss.center, 0.9 * centre0 + 0.1 * t_cls.mean(0, keepdim=True),
                               rtol=1e-5, atol=1e-6)


def test_resumed_run_continues_with_identical_state(tmp_path):
    images = textures(4)
    cfg = tiny_config(epochs=2, drop_path=0.1)  # stochastic depth: the torch RNG must be restored too
    straight = Pretrainer(images, cfg, device="cpu")
    straight.train(progress=False)

    first = Pretrainer(images, cfg, device="cpu")
    first.train(until_epoch=1, checkpoint_path=tmp_path / "ckpt.pt", progress=False)
    assert first.epoch == 1
    resumed = Pretrainer.resume(tmp_path / "ckpt.pt", images, device="cpu")
    assert resumed.epoch == 1
    resumed.train(progress=False)

    assert straight.steps_per_epoch == 1 and len(resumed.history["loss"]) == 2
    for name in ("student", "teacher"):
        a, b = getattr(straight, name).state_dict(), getattr(resumed, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert torch.equal(straight.dino_loss.center, resumed.dino_loss.center)
    assert torch.equal(straight.patch_loss.center, resumed.patch_loss.center)
    assert straight.history == resumed.history
    sa, sb = straight.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)


def test_checkpoint_of_other_settings_is_refused(tmp_path):
    images = textures(4)
    trainer = Pretrainer(images, tiny_config(epochs=1), device="cpu")
    trainer.save_checkpoint(tmp_path / "ckpt.pt")
    other = Pretrainer(images, tiny_config(epochs=1, lr=0.5), device="cpu")
    with pytest.raises(CheckpointError, match="other settings"):
        other.load_checkpoint(tmp_path / "ckpt.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        Pretrainer.resume(tmp_path / "junk.pt", images)


def test_loss_falls_on_a_tiny_run():
    cfg = tiny_config(img_size=48, local_size=24, epochs=12, batch_size=8, warmup_epochs=2, teacher_temp=0.04,
                      teacher_patch_temp=0.04, mask_prob=0.5)
    trainer = Pretrainer(textures(16), cfg, device="cpu")
    loss = np.asarray(trainer.train(progress=False)["loss"])
    assert len(loss) == 24 and np.isfinite(loss).all()
    assert loss[-6:].mean() < 0.7 * loss[:4].mean()


def test_exported_backbone_file_loads_and_gives_the_teachers_patch_features(tmp_path):
    trainer = Pretrainer(textures(4), tiny_config(epochs=1), device="cpu")
    trainer.train(progress=False)
    path = trainer.export(tmp_path / "tiny.safetensors")

    bb = create_backbone(str(path), device="cpu")
    assert bb.spec.timm_name == "vit_tiny_patch16_224" and bb.spec.patch_size == 8
    assert bb.spec.default_size == 32 and bb.layers == (1,)
    x = torch.randn(2, 3, 48, 40)
    feats = bb.extract(x)
    with torch.no_grad():
        _, patches = trainer.teacher.tokens(x)
    assert feats.shape == (2, 6, 5, 64)
    torch.testing.assert_close(feats, patches.reshape(2, 6, 5, 64), rtol=1e-4, atol=1e-5)

    # ... and a new run can start from that file
    again = Pretrainer(textures(4), tiny_config(backbone=str(path), model_kwargs={}), device="cpu")
    sd = again.student.backbone.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in trainer.teacher.backbone.state_dict().items())


def test_loss_curve_png_is_written(tmp_path):
    trainer = Pretrainer(textures(4), tiny_config(epochs=1), device="cpu")
    trainer.train(progress=False)
    path = trainer.plot_losses(tmp_path / "loss.png")
    assert path.stat().st_size > 1000


# ---------------------------------------------------------------------------------------------- CLI
def _parse(*argv: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    add_pretrain_parser(ap.add_subparsers(dest="command"))
    return ap.parse_args(["pretrain", *argv])


def test_cli_trains_and_writes_backbone_checkpoint_and_plot(tmp_path, capsys):
    good = tmp_path / "good"
    good.mkdir()
    for i, img in enumerate(textures(2, size=40)):
        Image.fromarray(img).save(good / f"{i:03d}.png")
    assert len(load_images(good, max_side=32)) == 2
    out = tmp_path / "out" / "vit.safetensors"
    args = _parse("--good", str(good), "--out", str(out), "--epochs", "1", "--batch-size", "2", "--img-size", "32",
                  "--local-crops", "1", "--out-dim", "32", "--workers", "0", "--device", "cpu", "--no-progress")
    assert run_pretrain(args) == 0
    assert out.is_file()
    assert (tmp_path / "out" / "vit_pretrain" / "checkpoint.pt").is_file()
    assert (tmp_path / "out" / "vit_pretrain" / "loss.png").is_file()
    text = capsys.readouterr().out
    assert "vit_tiny_patch16_224" in text and str(out) in text
    assert create_backbone(str(out), device="cpu").spec.patch_size == 16


def test_cli_reports_an_empty_folder_once_and_fails(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    args = _parse("--good", str(tmp_path / "empty"), "--out", str(tmp_path / "x.safetensors"))
    assert run_pretrain(args) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "no images found" in err
