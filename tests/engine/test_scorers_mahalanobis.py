"""Mahalanobis-prototype scorer: the distance math on cases with known answers, and its state."""

import numpy as np
import pytest
import torch

from engine.errors import NotFittedError
from engine.modelfile import load_model_file, save_model_file
from engine.scorers import MahalanobisScorer, create_scorer
from engine.scorers.mahalanobis import whitened_sq_dist, whitening_factors


def _grid(x: np.ndarray) -> torch.Tensor:
    """(P, D) -> (1, 1, P, D) float32 features."""
    return torch.from_numpy(np.asarray(x, np.float32)[None, None])


def test_whitening_gives_the_quadratic_form_with_the_inverse_covariance():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(2, 4, 4))
    cov = a @ a.transpose(0, 2, 1) + 0.5 * np.eye(4)
    mu = rng.normal(size=(2, 4))
    y = rng.normal(size=(7, 4))
    w, logdet = whitening_factors(cov)
    wmu = np.einsum("kij,kj->ki", w, mu)
    got = whitened_sq_dist(torch.from_numpy(y).float(), torch.from_numpy(w), torch.from_numpy(wmu).float())
    want = np.stack([np.einsum("pi,ij,pj->p", y - mu[k], np.linalg.inv(cov[k]), y - mu[k]) for k in range(2)], 1)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4)
    np.testing.assert_allclose(logdet, np.linalg.slogdet(cov)[1], rtol=1e-8)


def test_distance_to_a_known_gaussian():
    # one prototype, no PCA cut: the score is the Mahalanobis distance to N(mu, diag(4, 1, 0.25))
    rng = np.random.default_rng(1)
    sd = np.array([2.0, 1.0, 0.5])
    mu = np.array([1.0, -2.0, 3.0])
    z = rng.normal(size=(10000, 3))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False, bias=True))).T  # exactly white
    normal = mu + z * sd  # sample mean mu, sample covariance diag(sd^2), exactly
    s = MahalanobisScorer(n_prototypes=1, pca_dim=None, combine="cluster")
    s.fit(_grid(normal))
    q = np.stack([mu, mu + [4.0, 0, 0], mu + [0, 0, 1.5], mu + [4.0, 3.0, 0]])
    want = np.array([0.0, 2.0, 3.0, np.sqrt(4 + 9)])
    np.testing.assert_allclose(s.score(_grid(q)).numpy().ravel(), want, atol=0.02)
    # squared distances of the normal sample average D = 3 (chi-square with 3 degrees of freedom)
    sq = s.cluster_sq_distances(torch.from_numpy(normal).float())[:, 0]
    assert abs(sq.mean().item() - 3.0) < 0.1


def test_prototype_is_chosen_by_mahalanobis_not_euclidean_distance():
    # a broad cluster at the origin (sd 3) and a tight one at (30, 0) (sd 0.1); the query (27, 0) is
    # Euclidean-nearest to the tight centre (3 away = 30 sd) but only 9 sd from the broad one
    rng = np.random.default_rng(2)
    broad = rng.normal(size=(3000, 2)) * 3.0
    tight = np.array([30.0, 0.0]) + rng.normal(size=(3000, 2)) * 0.1
    feats = _grid(np.concatenate([broad, tight]))
    q = _grid([[27.0, 0.0]])
    maha = MahalanobisScorer(n_prototypes=2, pca_dim=None, combine="cluster")
    maha.fit(feats)
    eucl = MahalanobisScorer(n_prototypes=2, pca_dim=None, combine="cluster", assign="euclidean")
    eucl.fit(feats)
    assert maha.score(q).item() == pytest.approx(9.0, rel=0.05)
    assert eucl.score(q).item() == pytest.approx(30.0, rel=0.05)


def test_residual_is_the_distance_from_the_normal_subspace():
    # normal patches lie in the plane spanned by the first two axes of a 5-D space
    rng = np.random.default_rng(3)
    normal = np.zeros((2000, 5))
    normal[:, :2] = rng.normal(size=(2000, 2)) * [5.0, 2.0]
    s = MahalanobisScorer(n_prototypes=2, pca_dim=2, combine="residual")
    s.fit(_grid(normal))
    assert s.dims == (2, 2)
    q = np.array([[1.0, 1.0, 0, 0, 0], [1.0, 1.0, 3.0, 0, 0], [-4.0, 0.0, 0, 0, 4.0]])
    np.testing.assert_allclose(s.score(_grid(q)).numpy().ravel(), [0.0, 3.0, 4.0], atol=1e-3)


def test_combined_score_sums_the_scores_standardised_on_normal_data():
    rng = np.random.default_rng(4)
    normal = _grid(rng.normal(size=(800, 6)) * [4, 3, 2, 1, 0.5, 0.2])
    q = _grid(rng.normal(size=(50, 6)) * 2)
    parts = {}
    for mode in ("cluster", "residual", "sum", "max"):
        s = MahalanobisScorer(n_prototypes=3, pca_dim=3, combine=mode)
        s.fit(normal)
        parts[mode] = s.score(q).numpy().ravel()
    m_c, s_c, m_r, s_r = s.arrays["score_stats"]
    z_c, z_r = (parts["cluster"] - m_c) / s_c, (parts["residual"] - m_r) / s_r
    np.testing.assert_allclose(parts["sum"], z_c + z_r, atol=1e-4)
    np.testing.assert_allclose(parts["max"], np.maximum(z_c, z_r), atol=1e-4)
    # standardised on the fit patches: the normal data's summed z-score averages 0
    s.combine = "sum"
    assert abs(s.score(normal).mean().item()) < 1e-3


def test_pca_dimension_from_explained_variance_fraction():
    rng = np.random.default_rng(5)
    normal = rng.normal(size=(4000, 4)) * np.sqrt([100.0, 10.0, 1.0, 0.01])
    s = MahalanobisScorer(n_prototypes=1, pca_dim=0.95)
    s.fit(_grid(normal))
    assert s.dims == (2, 2)  # 100 / 111 < 0.95 <= 110 / 111


def test_state_round_trips_through_a_model_file(tmp_path):
    rng = np.random.default_rng(6)
    normal = torch.from_numpy(rng.normal(size=(6, 8, 8, 16)).astype(np.float32))
    s = create_scorer("mahalanobis", n_prototypes=4, pca_dim=5, minibatch_above=100)  # MiniBatchKMeans path
    with pytest.raises(NotFittedError):
        s.score(normal)
    s.fit(normal)
    test = torch.from_numpy(rng.normal(size=(1, 8, 8, 16)).astype(np.float32))
    test[0, 2, 3] += 8.0
    assert s.score(test)[0].argmax().item() == 2 * 8 + 3
    cfg, arrays = s.get_state()
    save_model_file(tmp_path / "m.dimodel", {"scorer": cfg}, {f"scorer/{k}": v for k, v in arrays.items()})
    cfg2, arrays2 = load_model_file(tmp_path / "m.dimodel")
    s2 = MahalanobisScorer.from_state(cfg2["scorer"], {k.split("/", 1)[1]: v for k, v in arrays2.items()})
    torch.testing.assert_close(s2.score(test), s.score(test))
    assert arrays["centres"].shape == (4, 5) and arrays["covariances_tril"].shape == (4, 15)  # 5 * 6 / 2
    np.testing.assert_array_equal(s2.arrays["covariances"], s.arrays["covariances"])
    with pytest.raises(ValueError, match="D=4"):
        s.score(torch.zeros(1, 2, 2, 4))


def test_fitted_model_with_mahalanobis_scorer_saves_and_loads(synthetic_mvtec, tmp_path):
    from engine.datasets import load_category
    from engine.images import read_image
    from engine.model import InspectionModel

    cat = load_category(synthetic_mvtec)
    m = InspectionModel.create("efficientnet_lite0", "mahalanobis", size=64, device="cpu",
                               scorer_params={"n_prototypes": 4, "pca_dim": 16})
    m.fit([s.path for s in cat.train])
    imgs = [read_image(s.path) for s in cat.test[:3]]
    m.save(tmp_path / "toy.dimodel")
    m2 = InspectionModel.load(tmp_path / "toy.dimodel", device="cpu")
    np.testing.assert_allclose([p.score for p in m2.predict(imgs)], [p.score for p in m.predict(imgs)], rtol=1e-5)
    assert m2.scorer.dims == (16, 16)


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="combine"):
        MahalanobisScorer(combine="mean")
    with pytest.raises(ValueError, match="n_prototypes"):
        MahalanobisScorer(n_prototypes=0)
