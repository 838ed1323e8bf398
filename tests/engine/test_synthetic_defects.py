"""Synthetic defects: they change only what their mask says, at the documented size, reproducibly."""

import cv2
import numpy as np
import pytest

from engine.synthetic_defects import KINDS, cutpaste, detection_rate, make_defect, part_region, perlin_noise, perlin_texture


@pytest.fixture
def part():
    from tests.conftest import texture

    return texture(np.random.default_rng(0), size=96)


def test_cutpaste_changes_only_the_pasted_rectangle(part):
    for seed in range(5):
        out, mask = cutpaste(part, np.random.default_rng(seed))
        assert out.shape == part.shape and out.dtype == np.uint8 and mask.dtype == bool
        assert np.array_equal(out[~mask], part[~mask]) and (out[mask] != part[mask]).any()
        ys, xs = np.nonzero(mask)
        assert mask.sum() == (np.ptp(ys) + 1) * (np.ptp(xs) + 1)  # one rectangle
        assert 0.01 <= mask.mean() <= 0.16


def test_perlin_texture_changes_only_near_its_blob(part):
    for seed in range(5):
        out, mask = perlin_texture(part, np.random.default_rng(seed))
        assert 0.015 <= mask.mean() <= 0.16
        near = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        assert np.array_equal(out[~near], part[~near])
        assert np.abs(out[mask].astype(int) - part[mask]).mean() > 10


def test_defects_are_reproducible_from_the_seed(part):
    for kind in KINDS:
        a, ma = make_defect(part, kind, np.random.default_rng(3))
        b, mb = make_defect(part, kind, np.random.default_rng(3))
        assert np.array_equal(a, b) and np.array_equal(ma, mb)


def test_perlin_noise_is_smooth_and_bounded():
    n = perlin_noise((64, 80), (4, 5), np.random.default_rng(0))
    assert n.shape == (64, 80) and np.abs(n).max() <= 1.0 and n.std() > 0.05
    assert np.abs(np.diff(n, axis=1)).max() < 0.1  # no jumps between neighbouring pixels
    # large images: computed on a <= 128 px grid and resized, still smooth, bounded, full size
    big = perlin_noise((512, 384), (8, 6), np.random.default_rng(0))
    assert big.shape == (512, 384) and np.abs(big).max() <= 1.0 and big.std() > 0.05
    assert np.abs(np.diff(big, axis=0)).max() < 0.05 and np.abs(np.diff(big, axis=1)).max() < 0.05


def test_detection_rate_counts_scores_at_or_above_the_threshold():
    r = detection_rate([1.0, 2.0, 3.0, 4.0], 2.0, ["cutpaste", "perlin", "cutpaste", "perlin"])
    assert r["detection_rate"] == 0.75 and r["by_kind"] == {"cutpaste": 0.5, "perlin": 1.0} and r["n"] == 4


def test_bad_input_is_refused(part):
    with pytest.raises(ValueError, match="kind"):
        make_defect(part, "dent", np.random.default_rng(0))
    with pytest.raises(ValueError, match="uint8"):
        make_defect(part.astype(np.float32), "cutpaste", np.random.default_rng(0))


def _on_plain_background(size=96):
    """A bright textured disc (the part) on a black background."""
    from tests.conftest import texture

    img = texture(np.random.default_rng(1), size=size)
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size * 0.35) ** 2
    img[~disc] = 0
    img[disc] = np.maximum(img[disc], 60)
    return img, disc


def test_part_region_finds_a_part_on_a_plain_background_and_whole_textures():
    img, disc = _on_plain_background()
    region = part_region(img)
    assert (region == disc).mean() > 0.97
    from tests.conftest import texture

    assert part_region(texture(np.random.default_rng(2), size=96)).all()  # a texture: all of it


@pytest.mark.parametrize("kind", ["nsa", "scratch", "spot", "colour"])
def test_new_kinds_alter_the_part_only_and_stay_small(kind):
    img, disc = _on_plain_background()
    donor = np.roll(img, 7, axis=1)
    for seed in range(4):
        out, mask = make_defect(img, kind, np.random.default_rng(seed), donor)
        assert out.shape == img.shape and out.dtype == np.uint8
        assert np.array_equal(out[~mask], img[~mask]) and mask.any()
        assert mask.mean() <= 0.12
        # on the part: the defect's centre of mass lies inside the disc (dilated by a few px)
        ys, xs = np.nonzero(mask)
        near = cv2.dilate(disc.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
        assert near[int(ys.mean()), int(xs.mean())]


@pytest.mark.parametrize("kind", KINDS)
def test_grey_parts_stay_grey(kind):
    img, _ = _on_plain_background()
    grey = np.repeat(img[..., :1], 3, axis=2)
    out, _ = make_defect(grey, kind, np.random.default_rng(5), np.roll(grey, 5, axis=0))
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


@pytest.mark.parametrize("side", [1, 3, 8, 16, 31, 48, 64])
def test_every_kind_is_made_on_small_images(side):
    """Small inputs (fit on 48 px images crashed in the Poisson blend): each kind gives an image whose
    shorter side is at least MIN_SIDE, the aspect ratio kept, and NSA changes some pixels."""
    from engine.synthetic_defects import MIN_SIDE, defects_of_every_kind, nsa_patch

    rng = np.random.default_rng(side)
    img = rng.integers(0, 256, (side, 2 * side, 3), dtype=np.uint8)
    donor = rng.integers(0, 256, (side, 2 * side, 3), dtype=np.uint8)
    made, kinds = defects_of_every_kind(img, rng, donor)
    short = max(side, MIN_SIDE)
    assert len(made) == len(kinds) and all(m.shape == (short, 2 * short, 3) for m in made)
    if side >= 8:
        for seed in range(20):
            _, changed = nsa_patch(img, np.random.default_rng(seed), donor=donor)
            assert changed.any()
