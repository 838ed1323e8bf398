"""PaDiM: per-position Gaussian statistics, the distance, the grid check and the saved state."""

import numpy as np
import pytest
import torch

from engine.scorers import PadimScorer, create_scorer


def _feats(rng, n=12, h=3, w=4, d=6) -> torch.Tensor:
    return torch.from_numpy(rng.normal(size=(n, h, w, d)).astype(np.float32))


def test_per_position_mean_and_covariance_match_numpy():
    rng = np.random.default_rng(0)
    x = _feats(rng)
    s = PadimScorer(n_channels=4, eps=0.01, seed=3)
    s.fit(x)
    idx = s.arrays["channels"]
    assert len(idx) == 4 and (np.diff(idx) > 0).all() and idx.max() < 6
    sub = x.numpy()[..., idx]
    for i in range(3):
        for j in range(4):
            np.testing.assert_allclose(s.arrays["mean"][i, j], sub[:, i, j].mean(0), atol=1e-5)
            want = np.cov(sub[:, i, j], rowvar=False) + 0.01 * np.eye(4)
            np.testing.assert_allclose(s.arrays["covariances"][i, j], want, atol=1e-5)


def test_score_is_the_mahalanobis_distance_to_the_own_position():
    rng = np.random.default_rng(1)
    x = _feats(rng)
    s = PadimScorer(n_channels=100)  # more than D: every channel is kept
    s.fit(x)
    q = _feats(rng, n=2)
    got = s.score(q).numpy()
    for b in range(2):
        for i in range(3):
            for j in range(4):
                diff = q.numpy()[b, i, j] - s.arrays["mean"][i, j]
                want = np.sqrt(diff @ np.linalg.inv(s.arrays["covariances"][i, j].astype(np.float64)) @ diff)
                assert got[b, i, j] == pytest.approx(want, rel=1e-4)


def test_a_feature_normal_elsewhere_is_anomalous_at_the_wrong_position():
    rng = np.random.default_rng(2)
    x = rng.normal(scale=0.1, size=(20, 1, 2, 3)).astype(np.float32)
    x[:, 0, 0] += 5.0
    x[:, 0, 1] -= 5.0
    s = PadimScorer()
    s.fit(torch.from_numpy(x))
    swapped = torch.from_numpy(x[:1, :, ::-1].copy())
    normal = torch.from_numpy(x[:1])
    assert s.score(swapped).min() > 10 * s.score(normal).max()


def test_grid_mismatch_is_refused_and_state_round_trips():
    rng = np.random.default_rng(3)
    s = create_scorer("padim", n_channels=5)
    s.fit(_feats(rng))
    with pytest.raises(ValueError, match="3x4 patch grid"):
        s.score(_feats(rng, n=1, h=4, w=4))
    q = _feats(rng, n=2)
    cfg, arrays = s.get_state()
    torch.testing.assert_close(PadimScorer.from_state(cfg, arrays).score(q), s.score(q))
