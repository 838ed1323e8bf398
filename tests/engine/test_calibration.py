"""Threshold calibration: good-only quantiles on known distributions, few-label curves, pixel threshold,
and recalibration of a fitted model (engine API and CLI)."""

import argparse
import math

import numpy as np
import pytest
from scipy import stats

from engine import calibration as cal
from engine.metrics import f1_max, precision_recall_f1_at


# ------------------------------------------------------------------ good-only
def test_conformal_picks_the_known_order_statistic():
    s = np.arange(1, 1000, dtype=float)[::-1]  # 999 scores 1..999, unsorted
    c = cal.conformal_threshold(s, 0.01)
    assert c["rank"] == 990 and c["threshold"] == 990.0 and c["guarantee_met"]
    assert c["expected_frr"] == pytest.approx(10 / 1000)


def test_conformal_false_reject_rate_matches_its_expectation_on_exponential_scores():
    rng = np.random.default_rng(0)
    n, alpha, draws = 200, 0.05, 4000
    t = np.array([cal.conformal_threshold(rng.exponential(size=n), alpha)["threshold"] for _ in range(draws)])
    frr = np.exp(-t)  # P(new Exp(1) score > t), known exactly
    expected = cal.conformal_threshold(np.ones(n), alpha)["expected_frr"]
    assert expected <= alpha
    assert frr.mean() == pytest.approx(expected, abs=0.002)


def test_conformal_with_too_few_scores_uses_the_maximum_and_says_so():
    c = cal.conformal_threshold(np.linspace(1, 2, 25), 0.01)
    assert c["threshold"] == 2.0 and not c["guarantee_met"]
    assert c["expected_frr"] == pytest.approx(1 / 26)


def test_lognormal_bound_has_the_target_rate_on_lognormal_scores_with_25_images():
    rng = np.random.default_rng(1)
    mu, sigma, alpha = 0.3, 0.4, 0.01
    t = np.array([cal.lognormal_threshold(np.exp(rng.normal(mu, sigma, 25)), alpha)["threshold"]
                  for _ in range(4000)])
    frr = stats.norm.sf((np.log(t) - mu) / sigma)
    assert frr.mean() == pytest.approx(alpha, abs=0.0015)


def test_exponential_tail_has_the_target_rate_on_exponential_scores_with_25_images():
    rng = np.random.default_rng(5)
    alpha = 0.01
    t = np.array([cal.exptail_threshold(5 + rng.exponential(size=25), alpha)["threshold"] for _ in range(4000)])
    frr = np.exp(-(t - 5))
    assert frr.mean() == pytest.approx(alpha, abs=0.0015)


def test_exponential_tail_formula_and_its_exceedance_agree():
    s = np.arange(1.0, 12.0)  # n = 11: k = 5 excesses over u = 6: 1..5, mean 3
    c = cal.exptail_threshold(s, 0.01)
    tail = c["tail"]
    assert (tail["u"], tail["k"], tail["m"], tail["p"]) == (6.0, 5, 3.0, 0.5)
    assert c["threshold"] == pytest.approx(6 + 5 * 3 * (50 ** (1 / 5) - 1))
    assert cal.tail_exceedance(tail, c["threshold"]) == pytest.approx(0.01)


def test_auto_uses_conformal_when_n_allows_it_else_the_exponential_tail():
    rng = np.random.default_rng(2)
    assert cal.good_only_threshold(rng.lognormal(size=25), 0.01)["method"] == "exptail"
    assert cal.good_only_threshold(rng.lognormal(size=99), 0.01)["method"] == "conformal"
    assert cal.good_only_threshold(rng.lognormal(size=19), 0.05)["method"] == "conformal"
    assert cal.good_only_threshold([1.0, 2.0, 3.0], 0.01)["method"] == "conformal"  # too few for a tail
    assert cal.good_only_threshold(rng.lognormal(size=25), 0.01, "lognormal")["method"] == "lognormal"


def test_clopper_pearson_known_values():
    lo, hi = cal.clopper_pearson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 10))
    lo, hi = cal.clopper_pearson(5, 10)
    assert lo == pytest.approx(0.187086, abs=1e-5) and hi == pytest.approx(0.812914, abs=1e-5)


def test_frr_at_counts_scores_at_or_above_and_uses_the_tail_inside_the_interval():
    s = np.arange(1.0, 101.0)
    r = cal.frr_at(s, 91.0)
    assert r["exceed"] == 10 and r["estimate"] == pytest.approx(0.10) and r["ci95"][0] < 0.1 < r["ci95"][1]
    s = np.random.default_rng(0).lognormal(0, 0.3, 100)
    for tail in (cal.fit_lognormal(s), cal.fit_exptail(s)):
        r2 = cal.frr_at(s, s.max() * 1.05, tail)
        assert r2["exceed"] == 0 and 0 < r2["estimate"] <= r2["ci95"][1]  # the tail, not 0


def test_good_only_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one"):
        cal.conformal_threshold([], 0.01)
    with pytest.raises(ValueError, match="target_frr"):
        cal.conformal_threshold([1.0, 2.0], 1.5)
    with pytest.raises(ValueError, match="NaN"):
        cal.good_only_threshold([1.0, np.nan, 2.0], 0.01)
    with pytest.raises(ValueError, match="method"):
        cal.good_only_threshold([1.0, 2.0], 0.01, "gumbel")


# ------------------------------------------------------------------ few labels
@pytest.mark.parametrize("seed", range(6))
def test_few_label_threshold_equals_f1_max_of_the_labelled_images(seed):
    rng = np.random.default_rng(seed)
    good = np.round(rng.normal(0, 1, rng.integers(1, 30)), 1)  # rounding makes ties
    bad = np.round(rng.normal(1.5, 1, rng.integers(1, 30)), 1)
    r = cal.few_label_threshold(bad, good)
    labels = np.r_[np.zeros(good.size), np.ones(bad.size)]
    f1, thr = f1_max(labels, np.r_[good, bad])
    assert r["threshold"] == thr and r["f1"] == pytest.approx(f1)
    assert r["method"] == "f1-max" and len(r["curve"]["thresholds"]) == len(r["curve"]["precision"])


def test_extra_good_scores_are_weighted_to_keep_the_labelled_defect_fraction():
    rng = np.random.default_rng(7)
    bad, good, extra = rng.normal(2, 1, 6), rng.normal(0, 1, 4), rng.normal(0, 1, 50)
    r = cal.few_label_threshold(bad, good, extra)
    pool = np.r_[good, extra]
    pi = 6 / 10

    def weighted_f1(t):
        tp = pi * np.mean(bad >= t)
        fp = (1 - pi) * np.mean(pool >= t)
        return 2 * tp / (2 * tp + fp + (pi - tp)) if tp > 0 else 0.0

    cands = np.unique(np.r_[bad, pool])
    f = np.array([weighted_f1(t) for t in cands])
    assert r["threshold"] == cands[np.flatnonzero(f >= f.max() - 1e-12)[0]]
    assert r["curve"]["prevalence"] == pytest.approx(pi)


@pytest.mark.parametrize("seed", range(4))
def test_with_a_prior_the_threshold_still_reaches_the_labelled_f1_max(seed):
    rng = np.random.default_rng(seed)
    good, bad = np.round(rng.normal(0, 1, 8), 1), np.round(rng.normal(1.5, 1, 4), 1)
    labels, scores = np.r_[np.zeros(8), np.ones(4)], np.r_[good, bad]
    best, _ = f1_max(labels, scores)
    for prior in (-5.0, 0.7, 1.3, 9.0):
        r = cal.few_label_threshold(bad, good, prior=prior)
        assert precision_recall_f1_at(labels, scores, r["threshold"])["f1"] == pytest.approx(best)
        assert r["labelled_f1"] == pytest.approx(best)
        if r["placement"] == "prior":
            assert r["threshold"] == prior


def test_prior_is_kept_inside_the_f1_max_range_and_moved_to_the_middle_otherwise():
    # labelled good 30, defect 35: every threshold in (30, 35] has F1 = 1
    assert cal.few_label_threshold([35.0], [30.0], prior=32.0)["threshold"] == 32.0
    assert cal.few_label_threshold([35.0], [30.0], prior=24.0)["threshold"] == 32.5
    assert cal.few_label_threshold([35.0], [30.0], prior=40.0)["threshold"] == 32.5
    # defects only: the known goods stand in for labelled ones, (2, 20] reaches F1 = 1
    assert cal.few_label_threshold([20.0, 26.0], None, [1.0, 2.0], prior=24.0)["threshold"] == 11.0
    assert cal.few_label_threshold([20.0, 26.0], None, [1.0, 2.0], prior=12.0)["threshold"] == 12.0
    # a subtle labelled defect among the known goods does not drag the threshold down into them
    goods = np.linspace(0, 10, 50)
    r = cal.few_label_threshold([5.0, 30.0, 31.0], None, goods, prior=9.0)
    assert r["threshold"] > 10.0


def test_only_defects_labelled_uses_the_known_good_scores_as_the_good_side():
    r = cal.few_label_threshold([5.0, 6.0], [], [1.0, 2.0, 3.0])
    assert r["threshold"] == 5.0 and r["f1"] == 1.0 and r["curve"]["prevalence"] == pytest.approx(0.4)


def test_target_precision_and_recall_pick_the_documented_ends():
    rng = np.random.default_rng(3)
    good, bad = rng.normal(0, 1, 40), rng.normal(2.0, 1, 30)
    labels, scores = np.r_[np.zeros(40), np.ones(30)], np.r_[good, bad]
    cands = np.unique(scores)
    pr = [precision_recall_f1_at(labels, scores, t) for t in cands]
    rp = cal.few_label_threshold(bad, good, objective="precision", target=0.9)
    ok = [t for t, m in zip(cands, pr) if m["precision"] >= 0.9]
    assert rp["threshold"] == min(ok) and rp["target_met"]
    rr = cal.few_label_threshold(bad, good, objective="recall", target=0.8)
    assert rr["threshold"] == max(t for t, m in zip(cands, pr) if m["recall"] >= 0.8)
    top_good = cal.few_label_threshold([1.0, 2.0], [3.0, 0.0], objective="precision", target=1.0)
    assert not top_good["target_met"] and top_good["threshold"] == 1.0  # most precise (2/3), lowest such
    with pytest.raises(ValueError, match="target"):
        cal.few_label_threshold(bad, good, objective="recall")
    with pytest.raises(ValueError, match="defective"):
        cal.few_label_threshold([], good)


# ------------------------------------------------------------------ pixel threshold
def test_pixel_threshold_from_masks_is_the_brute_force_pixel_f1_max():
    rng = np.random.default_rng(4)
    maps = [rng.random((6, 7)) for _ in range(3)]
    masks = [m > 0.7 for m in maps]
    maps[0][0, 0] = 0.95  # a false positive
    masks[1][2, 3] = True  # a missed pixel
    r = cal.pixel_threshold_from_masks(maps, masks)
    v, y = np.concatenate([m.ravel() for m in maps]), np.concatenate([m.ravel() for m in masks])
    best = max(np.unique(v), key=lambda t: (precision_recall_f1_at(y, v, t)["f1"], -t))
    assert r["pixel_threshold"] == best
    assert r["pixel_f1"] == pytest.approx(precision_recall_f1_at(y, v, best)["f1"])


def test_pixel_threshold_from_good_is_the_quantile_of_all_good_pixels():
    maps = [np.arange(500.0).reshape(20, 25), np.arange(500.0, 1000.0).reshape(25, 20)]
    r = cal.pixel_threshold_from_good(maps)
    assert r["pixel_threshold"] == pytest.approx(np.quantile(np.arange(1000.0), 0.995))
    assert r["pixel_method"] == "good-pixel-quantile" and r["pixel_area_fraction"] == 0.005


# ------------------------------------------------------------------ model and CLI
@pytest.fixture(scope="module")
def toy_model(tmp_path_factory):
    """A model fitted on the 12 toy images (2 folds), saved; shared by the tests below."""
    from tests.conftest import texture
    from PIL import Image

    from engine.model import InspectionModel

    root = tmp_path_factory.mktemp("toy_cal")
    rng = np.random.default_rng(0)
    for sub in ("train", "good", "bad", "gt"):
        (root / sub).mkdir()
    for i in range(12):
        Image.fromarray(texture(rng)).save(root / "train" / f"{i:02d}.png")
    for i in range(3):
        Image.fromarray(texture(rng)).save(root / "good" / f"{i:02d}.png")
        img = texture(rng)
        img[10 + 8 * i:22 + 8 * i, 12:24] = [250, 20, 20]
        Image.fromarray(img).save(root / "bad" / f"{i:02d}.png")
        mask = np.zeros((64, 64), np.uint8)
        mask[10 + 8 * i:22 + 8 * i, 12:24] = 255
        Image.fromarray(mask).save(root / "gt" / f"{i:02d}_mask.png")
    m = InspectionModel.create("efficientnet_lite0", "knn", size=64, device="cpu", scorer_params={"coreset_ratio": 0.5})
    m.fit(sorted((root / "train").iterdir()), folds=2, synthetic=2)
    m.save(root / "toy.dimodel")
    return root, m


def test_fit_cross_fits_every_image_and_records_how(toy_model):
    _, m = toy_model
    c = m.calibration
    assert len(c["holdout_scores"]) == 12 and c["chosen_by"] == "good-only" and c["method"] == "balanced"
    assert c["rule"] == "balanced" and c["tail_method"] == "exptail"  # 12 scores: too few for 1 % conformal
    assert c["threshold"] == m.threshold and "cross-fit, 2 folds" in c["description"]
    assert 0 <= c["frr_ci95"][0] <= c["frr_ci95"][1] <= 1 and c["synthetic"]["n"] == 2 * 6  # 2 images x 6 kinds
    # the stored threshold is the balanced rule applied to the stored scores
    assert c["threshold"] == cal.balanced_threshold(c["holdout_scores"], c["synthetic"]["scores"])["threshold"]
    assert c["synthetic_caught"] == pytest.approx(np.mean(np.asarray(c["synthetic"]["scores"]) >= c["threshold"]))
    assert {"floor", "pixel_threshold", "expected_frr"} <= set(c) and m.color_range()[1] == m.threshold
    assert m.contour_level() == 0.5 and m.frr_at()["n"] == 12
    # the display range comes from the same cross-fitted patches as the floor
    assert m.display_range["floor"] == pytest.approx(c["floor"]) and m.display_range["anchor"] > c["floor"]


def test_apply_threshold_keeps_the_previous_one_in_history_and_survives_save_load(toy_model, tmp_path):
    from engine.model import InspectionModel
    from engine.overlay import normalise

    root, _ = toy_model
    m = InspectionModel.load(root / "toy.dimodel", device="cpu")
    calibrated = m.threshold
    new = calibrated * 0.8
    entry = m.apply_threshold(new, by="operator")
    assert m.threshold == new and m.calibration["threshold"] == calibrated  # the calibration itself stays
    assert entry["threshold"] == calibrated and entry["new_threshold"] == new and entry["chosen_by"] == "good-only"
    m.save(tmp_path / "applied.dimodel")
    m2 = InspectionModel.load(tmp_path / "applied.dimodel", device="cpu")
    assert m2.threshold == new and m2.calibration["history"] == [entry]
    pred = m2.predict([np.zeros((64, 64, 3), np.uint8)])[0]
    assert pred.is_defective == (pred.score >= new)  # the engine's verdict uses the applied threshold
    m2.apply_threshold(calibrated)
    assert [h["threshold"] for h in m2.calibration["history"]] == [calibrated, new]
    assert m2.calibration["history"][-1]["chosen_by"] == "operator"
    with pytest.raises(ValueError, match="finite"):
        m2.apply_threshold(float("nan"))
    # the colour scale of any image threshold: the floor at 0, that threshold at 0.5, outlined there
    floor = m2.calibration["floor"]
    assert m2.color_range(new) == (floor, new) and m2.contour_level(new) == 0.5
    assert float(m2.display_scale(new).normalise(new)) == pytest.approx(0.5)
    assert float(m2.display_scale().normalise(calibrated)) == pytest.approx(0.5)
    assert float(normalise(floor, new, floor)) == 0.0


def test_recalibrate_with_labels_uses_f1_max_and_survives_save_load(toy_model, tmp_path):
    from engine.model import InspectionModel

    root, _ = toy_model
    m = InspectionModel.load(root / "toy.dimodel", device="cpu")
    train = sorted((root / "train").iterdir())
    good, bad = sorted((root / "good").iterdir()), sorted((root / "bad").iterdir())
    masks = {p: root / "gt" / f"{p.stem}_mask.png" for p in bad}
    c = m.recalibrate(good + train[:2], bad, masks=masks, synthetic=0)
    assert c["pixel_method"] == "mask-f1" and 0 < c["pixel_f1"] <= 1
    assert c["chosen_by"] == "labels" and c["n_good_reused"] == 2 and c["n_good_new"] == 3
    bad_scores = [pr.score for _, pr, _, _ in m.predict_paths(bad)]
    good_scores = [pr.score for _, pr, _, _ in m.predict_paths(good)]
    prior = cal.balanced_threshold(c["holdout_scores"], c["synthetic"]["scores"], 0.01)["threshold"]
    ref = cal.few_label_threshold(bad_scores, good_scores, c["holdout_scores"][:12], prior=prior)
    assert c["threshold"] == pytest.approx(ref["threshold"]) and m.threshold == c["threshold"]
    assert c["history"][0]["chosen_by"] == "good-only" and "good_only" in c
    m.save(tmp_path / "m2.dimodel")
    m2 = InspectionModel.load(tmp_path / "m2.dimodel", device="cpu")
    assert m2.threshold == m.threshold and m2.calibration["curve"] == c["curve"]
    again = m2.recalibrate(good, synthetic=0)  # the same good images again: not counted twice
    assert again["n_good_new"] == 0 and again["n_good_reused"] == 3 and again["n_good"] == 15
    assert again["chosen_by"] == "good-only" and again["history"][-1]["chosen_by"] == "labels"


def test_calibrate_cli_recalibrates_and_writes_the_model(toy_model, tmp_path, capsys):
    from cli.calibrate import add_parser as add_calibrate_parser, run as run_calibrate
    from engine.model import InspectionModel

    root, _ = toy_model
    p = argparse.ArgumentParser()
    add_calibrate_parser(p.add_subparsers(dest="command"))
    out = tmp_path / "cli.dimodel"
    args = p.parse_args(["calibrate", "--model", str(root / "toy.dimodel"), "--good", str(root / "good"),
                         "--defective", str(root / "bad"), "--target-recall", "1.0", "--out", str(out),
                         "--masks", str(root / "gt"),
                         "--synthetic", "0", "--quiet", "--device", "cpu"])
    assert run_calibrate(args) == 0
    text = capsys.readouterr().out
    assert "target recall" in text and str(out) in text
    m = InspectionModel.load(out, device="cpu")
    assert m.calibration["method"] == "target-recall" and m.calibration["recall"] == 1.0
    assert m.calibration["pixel_method"] == "mask-f1"
    assert math.isfinite(m.threshold)


def test_calibrate_cli_skips_good_subfolders_and_finds_mvtec_masks(tmp_path):
    from cli.calibrate import find_masks, list_defective

    for rel in ("test/good/000.png", "test/crack/000.png", "test/crack/001.png", "gt/crack/000_mask.png",
                "gt/crack/001.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    found = list_defective([str(tmp_path / "test")], recursive=True)
    assert [p.name for p, _ in found] == ["000.png", "001.png"] and all(p.parent.name == "crack" for p, _ in found)
    masks = find_masks(found, tmp_path / "gt")
    assert sorted(m.name for m in masks.values()) == ["000_mask.png", "001.png"]
    one_folder = list_defective([str(tmp_path / "test" / "crack")], recursive=False)
    assert len(find_masks(one_folder, tmp_path / "gt")) == 2  # found under gt/<folder name>/


def test_weak_threshold_warning_only_when_few_synthetic_defects_pass():
    from engine.calibration import weak_threshold_warning

    base = {"threshold": 5.0, "chosen_by": "good-only"}
    assert weak_threshold_warning(None) is None
    assert weak_threshold_warning(base) is None  # no synthetic check stored
    assert weak_threshold_warning(base | {"synthetic": {"detection_rate": 0.5, "n": 32}}) is None
    w = weak_threshold_warning(base | {"synthetic": {"detection_rate": 0.25, "n": 32}}, "m.dimodel")
    assert w is not None and "25% of 32 synthetic defects" in w and "--model m.dimodel" in w
    # a threshold chosen from labelled defects measured its recall: no synthetic warning
    assert weak_threshold_warning(base | {"chosen_by": "labels", "synthetic": {"detection_rate": 0.0, "n": 32}}) is None


# ---------------------------------------------------------------- balanced rule (hand-computed cases)

def test_balanced_threshold_takes_the_middle_of_the_best_separating_range():
    goods, syn = np.arange(1.0, 11.0), np.r_[4.0, 5.0, np.arange(20.0, 38.0)]
    r = cal.balanced_threshold(goods, syn, 0.01)
    # J = 18/20 - 0 = 0.9 at every candidate in (10, 20]: the midpoint 15 and the score 20 -> median 17.5;
    # 95 % of 20 defects are caught up to the 2nd lowest (floor(20 * 0.05) = index 1 -> 5): lower, kept
    assert r["threshold"] == 17.5 and r["placement"] == "youden" and r["separation"] == pytest.approx(0.9)
    assert r["synthetic_caught"] == 0.9 and r["tail_threshold"] > 17.5 and r["separation_p"] < 0.01
    # expected FRR: the exponential tail's probability at 17.5 (u = 5, k = 5, m = 3, p = 6/11), and the
    # same estimate at the tail threshold, which the tail puts at the 1 % target
    assert r["expected_frr"] == pytest.approx(6 / 11 * (1 + 12.5 / 15) ** -5)
    assert r["expected_frr_at_tail"] == pytest.approx(0.01)


def test_balanced_threshold_is_raised_while_it_still_catches_95_percent_of_synthetic_defects():
    goods, syn = np.arange(1.0, 11.0), np.arange(20.0, 30.0)
    # Youden middle 17.5 as above, but all 10 defects are caught up to 20 (floor(10 * 0.05) = index 0)
    r = cal.balanced_threshold(goods, syn, 0.01)
    assert r["threshold"] == 20.0 and r["placement"] == "synthetic-recall" and r["synthetic_caught"] == 1.0
    assert r["expected_frr"] == pytest.approx(6 / 11 * (1 + 15 / 15) ** -5)
    # half of them up to 25 -- but the tail threshold (5 + 15 ((6/11) / 0.01)^(1/5) - 15 = 23.38) is lower
    r = cal.balanced_threshold(goods, syn, 0.01, synthetic_recall=0.5)
    assert r["placement"] == "tail" and r["threshold"] == pytest.approx(5 + 15 * ((6 / 11) / 0.01) ** 0.2 - 15)


def test_balanced_threshold_never_above_the_tail_threshold():
    goods, syn = np.arange(1.0, 101.0), np.arange(500.0, 600.0)  # defects far above every good score
    r = cal.balanced_threshold(goods, syn, 0.01)
    # conformal rank ceil(101 * 0.99) = 100 -> the score 100, far below the middle of (100, 500]
    assert r["threshold"] == 100.0 and r["placement"] == "tail"


def test_balanced_threshold_caps_the_false_reject_rate():
    goods, syn = np.arange(1.0, 101.0), np.arange(60.0, 160.0)
    # J = 0.59 from 60 to 101, middle ~80 rejects 21 % of goods; with a 10 % cap the lowest threshold
    # rejecting at most 10 goods is the midpoint 90.5
    r = cal.balanced_threshold(goods, syn, 0.01, max_frr=0.10)
    assert r["placement"] == "capped" and r["threshold"] == 90.5
    assert cal.balanced_threshold(goods, syn, 0.01)["placement"] == "youden"  # default cap 30 %


def test_balanced_threshold_falls_back_to_the_tail_when_synthetic_defects_do_not_separate():
    goods, syn = np.arange(1.0, 11.0), np.arange(6.0, 16.0)  # J = 0.5 with 10 + 10 scores: KS p > 0.01
    r = cal.balanced_threshold(goods, syn, 0.01)
    assert r["placement"] == "fallback" and r["separation_p"] > 0.01
    assert r["threshold"] == cal.good_only_threshold(goods, 0.01)["threshold"]


def test_bank_growth_shift_extrapolates_log_linearly_and_choose_threshold_applies_it():
    s = cal.bank_growth_shift([10.0, 10.0, 10.0], [8.0, 8.0, 8.0], 5)
    assert s["step"] == -2.0 and s["shift"] == pytest.approx(-2 * math.log(5 / 4) / math.log(4 / 3))
    assert cal.bank_growth_shift([8.0], [9.0], 5)["shift"] == 0.0  # a bigger bank never scores higher
    goods, syn = np.arange(1.0, 11.0), np.arange(20.0, 30.0)
    assert cal.choose_threshold(goods, syn, shift=-2.0)["threshold"] == 18.0  # 20 - 2: every score moved
    tail = cal.choose_threshold(goods, syn, rule="tail")
    assert tail["threshold"] == cal.good_only_threshold(goods, 0.01)["threshold"] and tail["rule"] == "tail"
    with pytest.raises(ValueError, match="rule"):
        cal.choose_threshold(goods, syn, rule="oracle")


def test_balanced_threshold_with_very_few_good_images():
    # 2 goods: no separation can be significant (exact one-sided KS p = 1/C(14, 2) > 0.01) -> the tail
    r = cal.balanced_threshold([1.0, 2.0], np.arange(10.0, 22.0), 0.01)
    assert r["placement"] == "fallback" and r["threshold"] == 2.0  # conformal with 2 scores: the maximum
    # 3 goods, one weak synthetic defect among 41: the Youden middle 3.5 and 95 % synthetic recall (5)
    # lie above the tail (with 3 scores the conformal maximum, 3): the tail, although it rejects 1 of
    # the 3 (the cap never lifts a threshold above the tail threshold)
    r = cal.balanced_threshold([1.0, 2.0, 3.0], np.r_[2.5, np.arange(4.0, 44.0)], 0.01, max_frr=0.1)
    assert r["placement"] == "tail" and r["threshold"] == 3.0
    # no candidate within the cap (the top score is a good one and 1/100 > 0.5 %): the tail threshold
    r = cal.balanced_threshold(np.arange(1.0, 101.0), np.arange(60.0, 100.0), 0.01, max_frr=0.005)
    assert r["placement"] == "tail" and r["threshold"] == 100.0


def test_recalibrate_judges_against_stored_and_new_synthetic_defects(toy_model):
    from engine.model import InspectionModel

    root, _ = toy_model
    m = InspectionModel.load(root / "toy.dimodel", device="cpu")
    stored = list(m.calibration["synthetic"]["scores"])
    c = m.recalibrate(sorted((root / "good").iterdir()), synthetic=1)  # 1 new good image -> 6 new defects
    assert c["synthetic"]["n"] == len(stored) + 6 and c["synthetic"]["scores"][: len(stored)] == stored
    ref = cal.balanced_threshold(c["holdout_scores"], c["synthetic"]["scores"], c["target_frr"])
    assert c["threshold"] == ref["threshold"] and c["chosen_by"] == "good-only"


def test_identical_good_scores_put_the_threshold_just_above_them():
    r = cal.good_only_threshold(np.zeros(20), 0.01)
    assert r["degenerate"] and r["threshold"] > 0.0 and r["threshold"] == np.nextafter(0.0, 1.0)
    assert r["expected_frr"] == 0.0  # the identical parts themselves pass (score < threshold)
    b = cal.balanced_threshold(np.full(20, 3.0), np.full(60, 9.0))
    assert b["threshold"] == np.nextafter(3.0, np.inf) and b["placement"] == "tail"
