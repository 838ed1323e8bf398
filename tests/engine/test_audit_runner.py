"""The local audit engine (engine/audit/runner.py): only new and changed files are scored, a stop
finishes the batch in flight and the next run completes the audit, errors are rows."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from engine.audit.runner import run_audit
from engine.audit.scoring import RecipeScorer
from engine.audit.store import AuditStore
from tests.audit_support import shared_tiny_model, write_archive
from tests.conftest import texture


@pytest.fixture(scope="module")
def scorer(tmp_path_factory):
    return RecipeScorer(shared_tiny_model(tmp_path_factory), device="cpu", batch_size=3)


def _rows(out):
    with AuditStore.open(out) as store:
        return {r["path"]: r for r in store.iter_rows()}


def test_a_rerun_scores_only_new_and_changed_files(scorer, tmp_path):
    arc, out = tmp_path / "arc", tmp_path / "out"
    paths = write_archive(arc, 8)
    s1 = run_audit(scorer, [arc], out, progress=False)
    assert (s1.status, s1.n_new, s1.n_changed, s1.n_unchanged, s1.n_scored, s1.n_errors) == ("finished", 8, 0, 0, 8, 0)
    first = _rows(out)
    assert sorted(first) == sorted(str(p) for p in paths)
    assert s1.store_counts["images"] == 8 and s1.n_nok == sum(r["verdict"] == "NOK" for r in first.values()) > 0

    s2 = run_audit(scorer, [arc], out, progress=False)
    assert (s2.n_new, s2.n_changed, s2.n_unchanged, s2.n_scored) == (0, 0, 8, 0)

    # the archive grows by 3 files and one file is re-written with other content
    new = write_archive(arc / "line9", 3, seed=7)
    Image.fromarray(texture(np.random.default_rng(99))).save(paths[2])
    s3 = run_audit(scorer, [arc], out, progress=False)
    assert (s3.n_new, s3.n_changed, s3.n_unchanged, s3.n_scored) == (3, 1, 7, 4)
    rows = _rows(out)
    assert len(rows) == 11 and {str(p) for p in new} <= set(rows)
    for p, r in rows.items():
        rescored = p == str(paths[2]) or p in {str(q) for q in new}
        assert r["run_id"] == (s3.run_id if rescored else s1.run_id)
        if not rescored:
            assert r["scored_at"] == first[p]["scored_at"] and r["score"] == first[p]["score"]
    assert rows[str(paths[2])]["id"] == first[str(paths[2])]["id"]  # replaced in place, one row per path
    with AuditStore.open(out) as store:
        assert [r["status"] for r in store.runs()] == ["finished"] * 3
        assert [r["n_unchanged"] for r in store.runs()] == [0, 8, 7]


def test_a_stop_finishes_the_batch_in_flight_and_the_next_run_completes(scorer, tmp_path):
    arc, out = tmp_path / "arc", tmp_path / "out"
    paths = write_archive(arc, 10)
    stop = threading.Event()
    stop.set()  # as Ctrl-C before the first batch is done
    s1 = run_audit(scorer, [arc], out, progress=False, stop=stop)
    assert s1.status == "stopped" and s1.n_scored == 3  # the unit in flight (batch size 3), nothing more
    done = _rows(out)
    assert len(done) == 3
    s2 = run_audit(scorer, [arc], out, progress=False)
    assert (s2.status, s2.n_unchanged, s2.n_scored) == ("finished", 3, 7)
    rows = _rows(out)
    assert sorted(rows) == sorted(str(p) for p in paths)
    assert all(rows[p]["run_id"] == s1.run_id and rows[p]["scored_at"] == done[p]["scored_at"] for p in done)
    with AuditStore.open(out) as store:
        assert [(r["status"], r["n_scored"]) for r in store.runs()] == [("stopped", 3), ("finished", 7)]


def test_unreadable_files_are_error_rows_and_retried_on_request(scorer, tmp_path):
    arc, out = tmp_path / "arc", tmp_path / "out"
    write_archive(arc, 4)
    bad = arc / "line0" / "empty.png"
    bad.write_bytes(b"")
    s1 = run_audit(scorer, [arc], out, progress=False)
    assert (s1.status, s1.n_scored, s1.n_errors) == ("finished", 4, 1)
    row = _rows(out)[str(bad)]
    assert row["status"] == "error" and "empty file" in row["error"] and row["score"] is None
    assert s1.error_examples == [row["error"]]
    assert run_audit(scorer, [arc], out, progress=False).n_unchanged == 5  # an error is done until it changes
    s3 = run_audit(scorer, [arc], out, progress=False, retry_errors=True)
    assert (s3.n_changed, s3.n_errors, s3.n_unchanged) == (1, 1, 4)
