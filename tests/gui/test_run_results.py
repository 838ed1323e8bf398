"""Run results: verdicts re-judged from stored scores at any threshold; memory kept bounded."""

from __future__ import annotations

import numpy as np

from gui import run_results
from gui.run_results import InspectionResult, RunResults, judge


def test_judge_follows_the_engine_rule_score_at_or_above_threshold_is_nok():
    assert judge(2.0, 2.0) == "NOK" and judge(1.99, 2.0) == "OK"
    assert judge(1.0, None) == "n/a" and judge(None, 2.0) == "error"


def test_counts_and_yield_change_with_the_threshold_only():
    run = RunResults()
    for s in (1.0, 2.0, 3.0, None):
        run.add(InspectionResult(source="folder", name="x", score=s))
    c = run.counts(2.5)
    assert (c.inspected, c.ok, c.nok, c.errors) == (4, 2, 1, 1) and c.yield_percent == 200 / 3
    c = run.counts(0.5)
    assert (c.ok, c.nok) == (0, 3) and c.yield_percent == 0.0
    assert np.array_equal(run.scores(), [1.0, 2.0, 3.0])


def test_logged_counts_keep_the_verdicts_given_at_inspection_time():
    run = RunResults()
    for s, t in ((1.0, 2.0), (2.5, 2.0), (2.5, 3.0), (None, 3.0)):  # the threshold changed mid-run (applied)
        run.add(InspectionResult(source="folder", name="x", score=s, threshold=t))
    assert run.verdicts() == ["OK", "NOK", "OK", "error"]
    c = run.logged_counts()
    assert (c.inspected, c.ok, c.nok, c.errors) == (4, 2, 1, 1)
    c = run.counts(2.0)  # the same scores judged again at one threshold (a preview)
    assert (c.ok, c.nok) == (1, 2)
    given = InspectionResult(source="camera", name="y", score=5.0, threshold=9.0, verdict="NOK")
    assert given.verdict == "NOK"  # a verdict given by the model is kept as given


def test_maps_and_in_memory_pixels_are_bounded_while_scores_are_kept(monkeypatch):
    monkeypatch.setattr(run_results, "KEEP_MAPS", 3)
    img = np.zeros((4, 4, 3), np.uint8)
    monkeypatch.setattr(run_results, "IMAGE_BUDGET_BYTES", 2 * img.nbytes)
    run = RunResults()
    run.add(InspectionResult(source="folder", name="a.png", score=1.0, image_path="a.png", image=img,
                             anomaly_map=np.ones((2, 2), np.float32)))
    assert run[0].image is None and run[0].anomaly_map.dtype == np.float16
    for i in range(4):
        run.add(InspectionResult(source="camera", name=f"camera 0 #{i}", score=2.0 + i, image=img.copy(),
                                 anomaly_map=np.ones((2, 2), np.float32)))
    assert [r.image is not None for r in run.results] == [False, False, False, True, True]
    assert [r.anomaly_map is not None for r in run.results] == [False, False, True, True, True]
    assert len(run) == 5 and np.array_equal(run.scores(), [1.0, 2.0, 3.0, 4.0, 5.0])
    run.clear()
    assert len(run) == 0 and run.scores().size == 0
