"""Labelling-free (mutual) audit scoring: the algorithm against brute force, and on synthetic folders."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.audit.mutual import MutualScorer, pick_references
from engine.audit.mutual_scoring import interval_average, mutual_patch_scores, nearest_patch_distances, robust_cut
from engine.audit.records import ArchiveFile
from tests.conftest import texture


# ------------------------------------------------------------------ algorithm vs brute force
def _brute_nearest(q: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """(P, D), (R, Q, D) -> (P, R) by explicit loops over every patch pair."""
    out = np.empty((q.shape[0], refs.shape[0]))
    for p in range(q.shape[0]):
        for j in range(refs.shape[0]):
            out[p, j] = min(np.sqrt(((q[p] - refs[j, k]) ** 2).sum()) for k in range(refs.shape[1]))
    return out


def test_nearest_patch_distances_match_brute_force_for_every_chunking():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(6, 5)).astype(np.float32)
    refs = rng.normal(size=(7, 4, 5)).astype(np.float32)
    want = _brute_nearest(q.astype(np.float64), refs.astype(np.float64))
    for chunk in (1, 3, 16):
        got = nearest_patch_distances(torch.from_numpy(q), torch.from_numpy(refs), chunk=chunk).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_interval_average_is_the_mean_of_the_smallest_share():
    rng = np.random.default_rng(1)
    d = rng.uniform(size=(5, 10)).astype(np.float32)
    for frac in (0.1, 0.3, 0.35, 1.0):
        k = max(1, math.ceil(frac * 10))
        want = np.sort(d, axis=1)[:, :k].mean(axis=1)
        np.testing.assert_allclose(interval_average(torch.from_numpy(d), frac).numpy(), want, rtol=1e-6)
    valid = torch.tensor([True] * 9 + [False])
    want = np.sort(d[:, :9], axis=1)[:, :3].mean(axis=1)  # ceil(0.3 * 9) = 3 of the 9 valid columns
    np.testing.assert_allclose(interval_average(torch.from_numpy(d), 0.3, valid).numpy(), want, rtol=1e-6)
    with pytest.raises(ValueError, match="fraction"):
        interval_average(torch.from_numpy(d), 0.0)


def test_mutual_patch_scores_leave_the_image_itself_out():
    rng = np.random.default_rng(2)
    refs = rng.normal(size=(5, 2, 3, 4)).astype(np.float32)
    q = refs[2]  # the query is reference 2: without exclusion its nearest distance to itself is 0
    d = _brute_nearest(q.reshape(6, 4).astype(np.float64), refs.reshape(5, 6, 4).astype(np.float64))
    others = np.delete(d, 2, axis=1)  # 4 other references, ceil(0.5 * 4) = 2 smallest averaged
    want = np.sort(others, axis=1)[:, :2].mean(axis=1).reshape(2, 3)
    got = mutual_patch_scores(torch.from_numpy(q), torch.from_numpy(refs), exclude=2, fraction=0.5)
    assert got.shape == (2, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert (got > 0.1).all()  # with itself compared, ceil(0.5*5)=3 smallest would include a 0


def test_interval_average_ignores_a_minority_of_outlying_references():
    # 7 references agree (distance ~1), 3 are defective (distance 50): the 30 % interval sees only the agreeing ones
    d = torch.tensor([[1.0, 1.1, 0.9, 50, 1.0, 50, 1.2, 0.95, 50, 1.05]])
    assert interval_average(d, 0.3).item() == pytest.approx((0.9 + 0.95 + 1.0) / 3)


def test_robust_cut_is_median_plus_k_scaled_mad():
    s = [1.0, 2.0, 3.0, 4.0, 100.0]  # median 3, |s - 3| = 2,1,0,1,97 -> MAD 1
    assert robust_cut(s, k=2.0) == pytest.approx(3 + 2 * 1.4826)
    with pytest.raises(ValueError):
        robust_cut([])


def test_reference_sample_is_deterministic_and_stable_when_the_folder_grows():
    names = [f"img_{i:04d}.png" for i in range(300)]
    a = pick_references(names, 50, seed=0)
    assert a == pick_references(list(names), 50, seed=0) and len(a) == 50 and a == sorted(a)
    assert pick_references(names, 50, seed=1) != a
    grown = names + [f"new_{i:04d}.png" for i in range(30)]  # 10 % more files
    kept = {names[i] for i in a} & {grown[i] for i in pick_references(grown, 50, seed=0)}
    assert len(kept) >= 35  # most of the old references survive (expected ~45 of 50)
    assert pick_references(names[:5], 50) == [0, 1, 2, 3, 4]


# ------------------------------------------------------------------ on image folders (real DINOv2)
def _files(folder: Path) -> list[ArchiveFile]:
    out = []
    for p in sorted(folder.iterdir()):
        st = p.stat()
        out.append(ArchiveFile(os.path.abspath(p), str(folder.parent), f"{folder.name}/{p.name}", folder.name,
                               st.st_size, st.st_mtime_ns))
    return out


def _folder(root: Path, n: int, defective: set[int], seed: int) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    for i in range(n):
        img = texture(rng, 112)
        if i in defective:  # a dark scratch with a bright core, at a different place in each image
            y, x = 20 + 7 * (i % 5), 15 + 9 * (i % 4)
            img[y:y + 30, x:x + 9] = 20
            img[y + 10:y + 20, x + 3:x + 6] = 240
        Image.fromarray(img).save(root / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def scorer() -> MutualScorer:
    return MutualScorer("auto", size=112, references=200, device="cpu", precision="fp32")


def _score(scorer, files, **kw):
    return [r for batch in scorer.score_group(files, **kw) for r in batch]


def test_defective_minority_ranks_on_top_and_a_clean_folder_has_no_outlier(tmp_path, scorer):
    bad = {3, 11}
    recs = _score(scorer, _files(_folder(tmp_path / "lot1", 16, bad, seed=0)))
    assert [r.status for r in recs] == ["scored"] * 16
    top = {int(Path(r.path).stem) for r in sorted(recs, key=lambda r: -r.score)[:2]}
    assert top == bad
    assert {int(Path(r.path).stem) for r in recs if r.verdict == "NOK"} == bad
    r = recs[3]
    assert r.anomaly_grid.shape == (8, 8) and r.anomaly_grid.dtype == np.float16 and (r.height, r.width) == (112, 112)
    # the grid is highest where the scratch is (rows 3..7 of 14 px patches at 112 px), not elsewhere
    g = r.anomaly_grid.astype(np.float32)
    assert g[2:5, 2:4].max() == g.max()

    clean = _score(scorer, _files(_folder(tmp_path / "lot2", 16, set(), seed=1)))
    assert all(r.verdict == "OK" for r in clean)
    assert scorer.cuts["lot2"] is not None and max(r.score for r in clean) < scorer.cuts["lot2"]


def test_records_do_not_depend_on_batching_and_a_resume_scores_only_the_rest_identically(tmp_path, scorer):
    files = _files(_folder(tmp_path / "g", 10, {4}, seed=2))
    full = _score(scorer, files)
    small = MutualScorer(scorer.backbone, size=112, batch_size=1, references=6)
    full_small = _score(small, files)
    done = {f.path for f in files[:7]}
    rest = _score(small, files, is_done=lambda f: f.path in done)
    assert [r.path for r in rest] == [f.path for f in files[7:]]
    for a, b in zip(full_small[7:], rest):
        assert a.score == b.score and np.array_equal(a.anomaly_grid, b.anomaly_grid)
    scorer.batch_size, keep = 3, scorer.batch_size
    try:
        again = _score(scorer, files)
    finally:
        scorer.batch_size = keep
    assert [a.score for a in full] == [b.score for b in again]


def test_bad_files_become_error_records_and_a_lone_image_says_it_needs_company(tmp_path, scorer):
    folder = _folder(tmp_path / "g", 4, set(), seed=3)
    (folder / "99_corrupt.png").write_bytes(b"\x89PNG not really")
    recs = _score(scorer, _files(folder))
    assert [r.status for r in recs] == ["scored"] * 4 + ["error"]
    assert "99_corrupt.png" in recs[-1].error and recs[-1].fast_hash
    lone = _folder(tmp_path / "lone", 1, set(), seed=4)
    (rec,) = _score(scorer, _files(lone))
    assert rec.status == "error" and "at least 2 images" in rec.error and "00.png" in rec.error


def test_score_batch_over_mixed_groups_gives_the_same_bits_as_whole_groups(tmp_path, scorer):
    a = _files(_folder(tmp_path / "a", 9, {2}, seed=5))
    b = _files(_folder(tmp_path / "b", 9, {6}, seed=6))
    whole = {r.path: r for r in _score(scorer, a) + _score(scorer, b)}
    fresh = MutualScorer(scorer.backbone, size=112)
    mixed = a[:4] + b[:5] + a[4:] + b[5:]  # groups interleaved: each prepared at most twice, records unchanged
    recs = []
    for s in range(0, len(mixed), 3):
        recs += fresh.score_batch(mixed[s:s + 3])
    assert [r.path for r in recs] == [f.path for f in mixed]
    for r in recs:
        w = whole[r.path]
        assert (r.score, r.verdict, r.fast_hash) == (w.score, w.verdict, w.fast_hash)
        assert np.array_equal(r.anomaly_grid, w.anomaly_grid)


def test_audit_without_model_writes_a_mutual_store_and_a_rerun_scores_nothing(tmp_path, capsys):
    import sqlite3

    from main import main

    arch = tmp_path / "arch"
    _folder(arch / "line1" / "lot1", 10, {7}, seed=7)
    _folder(arch / "line1" / "lot2", 9, set(), seed=8)
    out = tmp_path / "audit"
    argv = ["audit", str(arch), "--out", str(out), "--size", "112", "--references", "50", "--device", "cpu",
            "--no-report", "--quiet"]
    assert main(argv) == 0
    db = sqlite3.connect(out / "audit.sqlite")
    meta = dict(db.execute("select key, value from meta"))
    assert meta["mode"] == '"mutual"' and meta["threshold"] == "null"
    rows = db.execute("select rel, grp, status, verdict, run_id from images order by score desc").fetchall()
    assert len(rows) == 19 and {r[2] for r in rows} == {"scored"}
    assert rows[0][:2] == ("line1/lot1/07.png", "line1/lot1") and rows[0][3] == "NOK"
    assert [r[0] for r in rows if r[3] == "NOK"] == ["line1/lot1/07.png"]
    db.close()
    capsys.readouterr()
    assert main(argv) == 0
    assert "19 unchanged, 0 new, 0 changed; this run: 0 scored" in capsys.readouterr().out
    # another reference count would score differently: the store refuses to mix them, naming the fix
    assert main(argv[:-5] + ["5", "--device", "cpu", "--no-report", "--quiet"]) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error:") and "--restart" in last and "Traceback" not in err
