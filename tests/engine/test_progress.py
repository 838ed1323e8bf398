"""Progress reports of a real fit with each scorer: every stage starts, advances without going back
and ends at its total, in a unit of its own; and the terminal bars that show them."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

from engine.model import InspectionModel
from engine.progress import UNITS, TqdmProgress, stage_base
from engine.scorers.coreset import greedy_coreset
from tests.conftest import write_textures

IMAGE_STAGES = {"features", "inspect"}  # counted in images (TqdmProgress's default unit)


def stage_runs(calls: list[tuple[int, int, str]]) -> list[tuple[str, list[tuple[int, int]]]]:
    """Split progress calls into runs of one stage each (a run ends when it reaches its total), checking
    that within a run the total is fixed and the count never goes back; fails on a run left unfinished."""
    open_runs: dict[str, list[tuple[int, int]]] = {}
    done_runs = []
    for done, total, stage in calls:
        base = stage_base(stage)
        assert 0 <= done <= total, (stage, done, total)
        run = open_runs.setdefault(base, [])
        if run:
            assert total == run[-1][1], f"{base}: total changed from {run[-1][1]} to {total}"
            assert done >= run[-1][0], f"{base}: went back from {run[-1][0]} to {done}"
        run.append((done, total))
        if done == total:
            done_runs.append((base, open_runs.pop(base)))
    assert not open_runs, f"stages that never reached their total: {open_runs}"
    return done_runs


@pytest.fixture(scope="module")
def good_images(tmp_path_factory):
    return write_textures(tmp_path_factory.mktemp("good"), 12, np.random.default_rng(0))


@pytest.mark.parametrize("scorer, folds, inner", [
    ("knn", 5, ["fold coresets"]),
    ("mahalanobis", 5, ["mahalanobis"] * 5),
    ("padim", 5, ["padim"] * 5),
    ("knn", 0, ["coreset"]),  # hold-out: one coreset selection on the fit images
])
def test_every_fit_stage_advances_to_its_total_in_its_unit(good_images, scorer, folds, inner):
    calls = []
    model = InspectionModel.create("efficientnet_lite0", scorer, size=64, device="cpu",
                                   scorer_params={"coreset_ratio": 0.5} if scorer == "knn" else {})
    model.fit(good_images, progress=lambda d, t, s: calls.append((d, t, s)), folds=folds, synthetic=0)
    runs = stage_runs(calls)
    bases = [b for b, _ in runs]
    assert bases[0] == "features" and runs[0][1][-1] == (12, 12)
    k = 5 if folds else 1
    assert bases.count("cross-fit") == 1
    cross = dict(runs)["cross-fit"]
    assert [d for d, _ in cross] == list(range(k + 1)) and cross[0][1] == k  # one step per fold, from 0
    final = ["mahalanobis"] if scorer == "mahalanobis" else ["padim"] if scorer == "padim" else []
    if folds:  # fold scorers report inside cross-fit, then the final scorer learns every image
        assert [b for b in bases if b not in ("features", "cross-fit")] == inner + final
    else:  # hold-out: the scorer learns first, then the held-out images are scored
        assert bases == ["features", *inner, "cross-fit"]
    for b in set(bases) - IMAGE_STAGES:
        assert b in UNITS, f"stage {b!r} would be counted in images"
    for b, run in runs:  # each run shows its start (0) unless it counts finished images
        assert b in IMAGE_STAGES or run[0][0] == 0, (b, run)


def test_coreset_reports_start_every_thousand_and_its_exact_end():
    calls = []
    x = np.random.default_rng(0).standard_normal((3000, 8)).astype(np.float32)
    greedy_coreset(x, 2500, progress=lambda d, t, s: calls.append((d, t, s)))
    assert calls == [(0, 2500, "coreset"), (1000, 2500, "coreset"), (2000, 2500, "coreset"),
                     (2500, 2500, "coreset")]


def test_steps_of_one_stage_share_one_bar_in_their_unit(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    prog = TqdmProgress()
    prog(0, 2, "cross-fit")
    prog(0, 4, "mahalanobis: pca")
    bar = prog._bars[-1][1]
    assert prog.stages == ["cross-fit", "mahalanobis"] and bar.unit == "step"
    prog(1, 4, "mahalanobis: k-means")
    assert prog._bars[-1][1] is bar and bar.n == 1 and bar.desc == "mahalanobis: k-means"
    prog(4, 4, "mahalanobis: done")
    assert prog.stages == ["cross-fit"]
    prog(1, 2, "cross-fit")
    prog(0, 100, "padim: gaussians")
    assert prog._bars[-1][1].unit == "position"
    prog(100, 100, "padim: gaussians")
    prog(2, 2, "cross-fit")
    assert prog.stages == []
    text = sys.stderr.getvalue()
    assert "4/4" in text and "2/2" in text and "100/100" in text
    prog.close()
