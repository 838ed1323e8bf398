"""The audit results store (engine/audit/store.py) and the file key (engine/audit/records.py)."""

from __future__ import annotations

import csv
import hashlib
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from engine.audit.records import ArchiveFile, AuditRecord, fast_hash
from engine.audit.store import CHANGED, NEW, UNCHANGED, AuditStore, AuditStoreError


def _meta(**kw) -> dict:
    m = {"mode": "recipe", "model_path": "/m/a.dimodel", "model_sha256": "aaa", "backbone": "dinov2_vits14",
         "threshold": 2.0, "calibration_scores": [1.0, 1.5], "display": None, "roots": ["/r"], "patch_size": 14,
         "image_size": 224}
    m.update(kw)
    return m


def _file(tmp: Path, name: str, data: bytes, root: Path | None = None) -> ArchiveFile:
    root = root or tmp
    p = root / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    st = p.stat()
    rel = p.relative_to(root).as_posix()
    return ArchiveFile(str(p), str(root), rel, rel.rpartition("/")[0], st.st_size, st.st_mtime_ns)


def _rec(f: ArchiveFile, score: float | None, verdict: str | None = None, grid=None) -> AuditRecord:
    if score is None:
        return AuditRecord.failed(f, f"{f.path}: cannot decode image.\nRe-export it.", fast_hash(f.path))
    return AuditRecord(f.path, f.root, f.rel, f.group, f.size, f.mtime_ns, fast_hash(f.path), "scored", score=score,
                       verdict=verdict, height=8, width=8, anomaly_grid=grid, latency_ms=1.5)


def test_fast_hash_is_blake2b_of_size_head_and_tail(tmp_path):
    big = bytes(np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8))
    (tmp_path / "big").write_bytes(big)
    ref = hashlib.blake2b(len(big).to_bytes(8, "little") + big[:65536] + big[-65536:], digest_size=16).hexdigest()
    assert fast_hash(str(tmp_path / "big")) == ref
    mid = big[:100_000] + b"X" + big[100_001:]  # a byte outside head and tail: not seen (by design)
    (tmp_path / "mid").write_bytes(mid)
    assert fast_hash(str(tmp_path / "mid")) == ref
    tail = big[:-10] + b"Y" + big[-9:]
    (tmp_path / "tail").write_bytes(tail)
    assert fast_hash(str(tmp_path / "tail")) != ref
    small = big[:100_000]  # under 128 KiB: every byte once
    (tmp_path / "small").write_bytes(small)
    ref_small = hashlib.blake2b(len(small).to_bytes(8, "little") + small, digest_size=16).hexdigest()
    assert fast_hash(str(tmp_path / "small"), size=len(small)) == ref_small


def test_new_unchanged_and_changed_files(tmp_path):
    a = _file(tmp_path / "arc", "a.png", b"a" * 100)
    b = _file(tmp_path / "arc", "l1/b.png", b"b" * 100)
    with AuditStore.open(tmp_path / "out", _meta()) as store:
        assert store.check(a) == NEW
        run = store.begin_run(["audit"], "local")
        store.add([_rec(a, 1.0, "OK")], run)
        assert store.check(a) == UNCHANGED and store.is_done(a)
        assert store.check(b) == NEW
        # same size and mtime, other content: only the hash tells
        st = os.stat(a.path)
        Path(a.path).write_bytes(b"z" * 100)
        os.utime(a.path, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert store.check(a) == CHANGED
        # an error row is done unless retried
        store.add([_rec(b, None)], run)
        assert store.check(b) == UNCHANGED and store.check(b, retry_errors=True) == CHANGED
        newer = ArchiveFile(b.path, b.root, b.rel, b.group, b.size, b.mtime_ns + 1)
        assert store.check(newer) == CHANGED


def test_rows_survive_reopen_and_replacing_keeps_one_row_per_path(tmp_path):
    a = _file(tmp_path / "arc", "a.png", b"a" * 100)
    with AuditStore.open(tmp_path / "out", _meta()) as store:
        r1 = store.begin_run(["audit"], "local")
        store.add([_rec(a, 1.0, "OK")], r1)
        first_id = store._con.execute("SELECT id FROM images").fetchone()[0]
    with AuditStore.open(tmp_path / "out", _meta(roots=["/other"])) as store:
        assert store.meta()["roots"] == ["/r", "/other"]
        r2 = store.begin_run(["audit"], "local")
        store.add([_rec(a, 3.0, "NOK")], r2)
        rows = list(store.iter_rows())
        assert len(rows) == 1 and rows[0]["id"] == first_id
        assert rows[0]["score"] == 3.0 and rows[0]["run_id"] == r2 == r1 + 1
    con = sqlite3.connect(tmp_path / "out" / "audit.sqlite")  # plain SQL sees the same (other tools can read it)
    assert con.execute("SELECT COUNT(*), MAX(verdict) FROM images").fetchone() == (1, "NOK")


def test_another_model_is_refused_naming_both_and_the_fix(tmp_path):
    AuditStore.open(tmp_path / "out", _meta()).close()
    with pytest.raises(AuditStoreError) as e:
        AuditStore.open(tmp_path / "out", _meta(model_sha256="bbb", model_path="/m/b.dimodel"))
    msg = str(e.value)
    assert "'aaa'" in msg and "'bbb'" in msg and "--restart" in msg and "--out" in msg
    with pytest.raises(AuditStoreError, match="mode 'recipe'"):
        AuditStore.open(tmp_path / "out", _meta(mode="mutual"))
    # --restart: the old store is moved aside, not deleted
    with AuditStore.open(tmp_path / "out", _meta(model_sha256="bbb"), restart=True) as store:
        assert store.meta()["model_sha256"] == "bbb"
    aside = [p for p in (tmp_path / "out").iterdir() if p.name.startswith("audit.sqlite.")
             and not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1
    assert sqlite3.connect(aside[0]).execute("SELECT value FROM meta WHERE key='model_sha256'").fetchone() == ('"aaa"',)


def test_a_file_that_is_not_a_store_is_refused_with_the_fix(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "audit.sqlite").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(AuditStoreError, match=r"not a DINOInspect audit store.*--restart"):
        AuditStore.open(tmp_path / "out", _meta())
    with pytest.raises(AuditStoreError, match="no audit results there"):
        AuditStore.open(tmp_path / "empty")


def test_queries_agree_with_the_records_written(tmp_path):
    rng = np.random.default_rng(1)
    files, recs = [], []
    for i in range(40):
        grp = f"line{i % 3}/lot{i % 2}"
        f = _file(tmp_path / "arc", f"{grp}/{i:03d}.png", bytes([i]) * 50, root=tmp_path / "arc")
        files.append(f)
        if i % 10 == 7:
            recs.append(_rec(f, None))
        else:
            s = float(rng.uniform(0, 4))
            grid = rng.uniform(0, 4, (3, 5)).astype(np.float32)
            recs.append(_rec(f, s, "NOK" if s >= 2.0 else "OK", grid))
    store = AuditStore.open(tmp_path / "out", _meta())
    run = store.begin_run(["audit"], "local")
    store.add(recs[:25], run)
    store.add(recs[25:], run)
    scored = [r for r in recs if r.status == "scored"]
    c = store.counts()
    assert c == {"images": 40, "scored": len(scored), "errors": 4, "ok": sum(r.verdict == "OK" for r in scored),
                 "nok": sum(r.verdict == "NOK" for r in scored), "no_verdict": 0}
    np.testing.assert_array_equal(store.scores(), [r.score for r in scored])
    by_score = sorted(scored, key=lambda r: (-r.score, r.path))
    top = store.top(5)
    assert [t["path"] for t in top] == [r.path for r in by_score[:5]]
    np.testing.assert_array_equal(top[0]["anomaly_grid"], by_score[0].anomaly_grid)
    assert top[0]["anomaly_grid"].dtype == np.float16 and top[0]["anomaly_grid"].shape == (3, 5)
    band = store.band(1.0, 2.0, 100)
    assert [b["path"] for b in band] == [r.path for r in by_score if 1.0 <= r.score < 2.0]
    expect = {}
    for r in recs:
        n, nok, err = expect.get(r.group, (0, 0, 0))
        expect[r.group] = (n + 1, nok + (r.verdict == "NOK"), err + (r.status == "error"))
    assert store.groups() == [(g, *expect[g]) for g in sorted(expect)]
    assert [r["path"] for r in store.iter_rows("score", status="scored")] == [r.path for r in by_score]
    with pytest.raises(ValueError):
        list(store.iter_rows("score; DROP TABLE images"))
    n = store.export_csv(tmp_path / "out" / "results.csv")
    with open(tmp_path / "out" / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert n == len(rows) == 40
    by_path = {r.path: r for r in recs}
    for row in rows:
        r = by_path[row["path"]]
        assert row["status"] == r.status and row["grp"] == r.group
        assert (float(row["score"]) == r.score) if r.score is not None else row["score"] == ""
        if r.status == "error":
            assert "\n" not in row["error"] and row["error"].startswith(r.path)
    store.close()


def test_grid_blob_is_plain_npy_never_pickle(tmp_path):
    f = _file(tmp_path, "a.png", b"x" * 20)
    with AuditStore.open(tmp_path / "out", _meta()) as store:
        store.add([_rec(f, 1.0, "OK", np.ones((2, 2), np.float32))], store.begin_run([], "local"))
        blob = store._con.execute("SELECT anomaly_grid FROM images").fetchone()[0]
    assert blob[:6] == b"\x93NUMPY" and b"<f2" in blob[:80]


def test_runs_record_status_and_counts(tmp_path):
    with AuditStore.open(tmp_path / "out", _meta()) as store:
        r = store.begin_run(["audit", "x"], "local")
        assert store.runs()[0]["status"] == "running"
        store.finish_run(r, "stopped", n_scored=3, n_errors=1, n_unchanged=2)
        run = store.runs()[0]
        assert (run["status"], run["n_scored"], run["n_errors"], run["n_unchanged"], run["engine"]) == \
            ("stopped", 3, 1, 2, "local")
        assert run["finished"] >= run["started"]
