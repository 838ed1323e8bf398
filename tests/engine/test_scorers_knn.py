import numpy as np
import pytest
import torch

from engine.errors import NotFittedError
from engine.scorers import KnnScorer, create_scorer
from engine.scorers.coreset import greedy_coreset, greedy_coreset_naive


def test_pruned_coreset_selects_exactly_what_naive_greedy_selects():
    rng = np.random.default_rng(0)
    # clustered data, like patch features of a part: pruning must not change the selection
    centres = rng.normal(0, 5, (30, 16))
    x = (centres[rng.integers(0, 30, 4000)] + rng.normal(0, 1, (4000, 16))).astype(np.float32)
    for k in (1, 50, 400):
        assert (greedy_coreset(x, k, start=7) == greedy_coreset_naive(x, k, start=7)).all()


def test_naive_greedy_matches_hand_example():
    # points on a line 0, 1, 2, 10: start at 0 -> farthest 10 -> then 2 (distance 2 > 1)
    x = np.array([[0.0], [1.0], [2.0], [10.0]], np.float32)
    assert greedy_coreset_naive(x, 3, start=0).tolist() == [0, 3, 2]
    assert greedy_coreset(x, 3, start=0).tolist() == [0, 3, 2]


def test_coreset_covers_the_bank():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 8)).astype(np.float32)
    idx = greedy_coreset(x, 200)
    assert len(set(idx.tolist())) == 200
    d = np.sqrt(((x[:, None, :] - x[idx][None]) ** 2).sum(-1)).min(1)
    # greedy k-center is a 2-approximation: no point is farther than the radius at which the
    # last centre was chosen (its own distance before selection)
    last = np.sqrt(((x[idx[-1]] - x[idx[:-1]]) ** 2).sum(-1)).min()
    assert d.max() <= last + 1e-5


def test_knn_distance_is_euclidean_to_nearest_bank_patch():
    bank = torch.tensor([[[[0.0, 0.0], [3.0, 4.0]]]])  # (1, 1, 2, 2): two patches
    s = KnnScorer(coreset_ratio=1.0)
    s.fit(bank)
    q = torch.tensor([[[[0.0, 1.0], [6.0, 8.0], [3.0, 4.0]]]])
    np.testing.assert_allclose(s.score(q).numpy(), [[[1.0, 5.0, 0.0]]], atol=1e-5)


def test_knn_cosine_and_k_average():
    bank = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    s = KnnScorer(coreset_ratio=1.0, metric="cosine", k=2)
    s.fit(bank)
    q = torch.tensor([[[[2.0, 0.0]]]])  # cos sim 1 and 0 -> distances 0 and 1 -> mean 0.5
    np.testing.assert_allclose(s.score(q).numpy(), [[[0.5]]], atol=1e-6)


def test_knn_state_round_trips_and_flags_anomalies():
    rng = np.random.default_rng(0)
    normal = torch.from_numpy(rng.normal(size=(6, 8, 8, 16)).astype(np.float32))
    s = create_scorer("knn", coreset_ratio=0.25)
    with pytest.raises(NotFittedError):
        s.score(normal)
    s.fit(normal)
    assert len(s.memory_bank) == round(6 * 64 * 0.25)
    test = torch.from_numpy(rng.normal(size=(1, 8, 8, 16)).astype(np.float32))
    test[0, 2, 3] += 8.0
    sc = s.score(test)[0]
    assert sc.argmax().item() == 2 * 8 + 3
    cfg, arrays = s.get_state()
    s2 = KnnScorer.from_state(cfg, arrays)
    torch.testing.assert_close(s2.score(test), s.score(test))
    with pytest.raises(ValueError, match="D=4"):
        s.score(torch.zeros(1, 2, 2, 4))


def test_ivf_search_matches_exact_search_on_clustered_bank():
    rng = np.random.default_rng(3)
    centres = rng.normal(0, 4, (50, 12))
    bank = (centres[rng.integers(0, 50, 9000)] + rng.normal(0, 1, (9000, 12))).astype(np.float32)
    q = (centres[rng.integers(0, 50, 500)] + rng.normal(0, 1, (500, 12))).astype(np.float32)
    feats = torch.from_numpy(bank.reshape(1, 90, 100, 12))
    exact, ivf = KnnScorer(coreset_ratio=1.0, index="flat"), KnnScorer(coreset_ratio=1.0, index="ivf", nprobe=8)
    exact.fit(feats)
    ivf.fit(feats)
    qt = torch.from_numpy(q.reshape(1, 20, 25, 12))
    a, b = exact.score(qt).numpy(), ivf.score(qt).numpy()
    assert (b >= a - 1e-4).all()  # an approximate search can only miss the nearest, never beat it
    assert np.mean(b - a < 1e-4) > 0.95


def test_bank_caps_bound_the_coreset_and_its_candidates():
    rng = np.random.default_rng(5)
    feats = torch.from_numpy(rng.normal(size=(10, 10, 10, 4)).astype(np.float32))  # 1000 patches
    s = KnnScorer(coreset_ratio=0.5, max_bank=40, max_candidates=200)
    s.fit(feats)
    assert len(s.memory_bank) == 40
    flat = feats.reshape(-1, 4).numpy()
    # every bank entry is one of the original patches
    assert all(np.isclose(flat, row).all(1).any() for row in s.memory_bank)


@pytest.mark.parametrize("metric,k", [("l2", 1), ("l2", 3), ("cosine", 1), ("cosine", 2)])
def test_torch_search_equals_exact_nearest_neighbours(metric, k):
    """The brute-force torch search (the GPU path, run here on the CPU) against distances computed
    independently with numpy over the whole bank."""
    rng = np.random.default_rng(3)
    feats = torch.from_numpy(rng.normal(size=(3, 6, 6, 16)).astype(np.float32))
    s = KnnScorer(coreset_ratio=1.0, k=k, metric=metric, index="flat", device="cpu")
    s.fit(feats)
    q = rng.normal(size=(50, 16)).astype(np.float32)
    bank = s.memory_bank  # normalised already for cosine
    if metric == "l2":
        d = np.sqrt(((q[:, None, :] - bank[None]) ** 2).sum(-1))
    else:
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        d = 1.0 - qn @ bank.T
    want = np.sort(d, axis=1)[:, :k].mean(1)
    got = s.search_torch(torch.from_numpy(q), k).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # and the faiss path (the CPU default) agrees with it
    np.testing.assert_allclose(s.score(torch.from_numpy(q).reshape(1, 5, 10, 16)).numpy().ravel(), want,
                               rtol=1e-4, atol=1e-4)


def test_knn_device_defaults_to_cuda_only_when_present():
    s = KnnScorer(coreset_ratio=1.0)
    assert s.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    s.fit(torch.zeros(1, 2, 2, 4))
    assert "device" not in s.get_state()[0]  # a runtime choice, not part of the model file


def _rows(a: np.ndarray) -> set:
    return {r.tobytes() for r in np.ascontiguousarray(a, np.float32)}


def test_cross_fit_fold_scorers_never_hold_their_fold_and_final_bank_is_the_union():
    rng = np.random.default_rng(3)
    feats = torch.from_numpy(rng.normal(size=(10, 4, 4, 8)).astype(np.float32))
    folds = [np.array([0, 3, 6]), np.array([1, 4, 7]), np.array([2, 5, 8, 9])]
    s = KnnScorer(coreset_ratio=0.25, index="flat")
    banks = {}
    for f, sc in s.cross_fit(feats, folds):
        banks[f] = _rows(sc.memory_bank)
        held = _rows(feats[torch.from_numpy(folds[f])].reshape(-1, 8).numpy())
        others = _rows(feats[torch.from_numpy(np.setdiff1d(np.arange(10), folds[f]))].reshape(-1, 8).numpy())
        assert not banks[f] & held and banks[f] <= others
        # 25 % of each other fold's 16-patch images
        assert len(banks[f]) == sum(round(16 * len(folds[g]) * 0.25) for g in range(3) if g != f)
    assert s.fitted and _rows(s.memory_bank) == banks[0] | banks[1] | banks[2]


def test_cross_fit_without_coreset_scores_like_a_scorer_fitted_on_the_other_folds():
    rng = np.random.default_rng(4)
    feats = torch.from_numpy(rng.normal(size=(6, 3, 3, 5)).astype(np.float32))
    folds = [np.array([0, 1]), np.array([2, 3]), np.array([4, 5])]
    for f, sc in KnnScorer(coreset_ratio=1.0, index="flat").cross_fit(feats, folds):
        ref = KnnScorer(coreset_ratio=1.0, index="flat")
        ref.fit(feats[torch.from_numpy(np.setdiff1d(np.arange(6), folds[f]))])
        q = feats[torch.from_numpy(folds[f])]
        assert torch.allclose(sc.score(q), ref.score(q))


def test_cross_fit_refuses_folds_that_do_not_cover_the_images():
    feats = torch.zeros(4, 2, 2, 3)
    with pytest.raises(ValueError, match="covering all 4"):
        list(KnnScorer().cross_fit(feats, [np.array([0, 1]), np.array([2])]))
