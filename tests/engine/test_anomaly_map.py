import numpy as np
import pytest

from engine.anomaly_map import anomaly_map, gaussian_blur, image_score
from engine.backbones.preprocess import Preprocess


def test_image_score_is_mean_of_top_one_percent():
    s = np.arange(1000, dtype=np.float32).reshape(25, 40)  # top 1% = 10 values 990..999
    assert image_score(s) == pytest.approx(994.5)
    assert image_score(s, "max") == 999.0
    assert image_score(np.array([[3.0, 1.0]])) == 3.0  # at least one patch


def test_gaussian_blur_preserves_mass_and_constant():
    a = np.zeros((41, 41), np.float32)
    a[20, 20] = 1.0
    b = gaussian_blur(a, 4.0)
    assert b.sum() == pytest.approx(1.0, abs=1e-3) and b.argmax() == a.argmax()
    c = gaussian_blur(np.full((10, 10), 2.0, np.float32), 4.0)
    np.testing.assert_allclose(c, 2.0, atol=1e-5)


def test_anomaly_map_is_in_image_pixels_and_lines_up():
    pre = Preprocess(size=64, mean=(0, 0, 0), std=(1, 1, 1), mode="resize")
    patch = np.zeros((8, 8), np.float32)
    patch[0, 7] = 10.0  # top-right patch
    amap = anomaly_map(patch, pre, (120, 200), sigma=0)
    assert amap.shape == (120, 200)
    y, x = np.unravel_index(amap.argmax(), amap.shape)
    assert y < 120 / 8 and x > 200 * 7 / 8 - 1
