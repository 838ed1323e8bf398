"""Synthetic defects: they change only what their mask says, at the documented size, reproducibly."""

import cv2
import numpy as np
import pytest

from engine.synthetic_defects import KINDS, cutpaste, detection_rate, make_defect, perlin_noise, perlin_texture


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


def test_detection_rate_counts_scores_at_or_above_the_threshold():
    r = detection_rate([1.0, 2.0, 3.0, 4.0], 2.0, ["cutpaste", "perlin", "cutpaste", "perlin"])
    assert r["detection_rate"] == 0.75 and r["by_kind"] == {"cutpaste": 0.5, "perlin": 1.0} and r["n"] == 4


def test_bad_input_is_refused(part):
    with pytest.raises(ValueError, match="kind"):
        make_defect(part, "scratch", np.random.default_rng(0))
    with pytest.raises(ValueError, match="uint8"):
        make_defect(part.astype(np.float32), "cutpaste", np.random.default_rng(0))
