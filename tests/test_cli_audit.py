"""``main.py audit``: the command's messages and files, and an audit killed with SIGKILL resumed with
every image scored exactly once."""

from __future__ import annotations

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from main import main
from tests.audit_support import shared_tiny_model, write_archive

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return shared_tiny_model(tmp_path_factory)


def test_audit_writes_store_and_csv_and_a_rerun_says_what_changed(model, tmp_path, capsys):
    arc, out = tmp_path / "arc", tmp_path / "out"
    paths = write_archive(arc, 6)
    (arc / "line1" / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    rc = main(["audit", "--model", str(model), str(arc), "--out", str(out), "--quiet", "--no-report"])
    cap = capsys.readouterr()
    assert rc == 1  # one unreadable file: recorded, the audit went on
    assert "0 unchanged, 7 new, 0 changed; this run: 6 scored" in cap.out and "1 error" in cap.out
    assert "cut.png" in cap.err and "Traceback" not in cap.err
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["path"] for r in rows) == sorted([str(p) for p in paths] + [str(arc / "line1/cut.png")])
    assert {r["grp"] for r in rows} == {"line0/lot0", "line0/lot1", "line0/lot2", "line1/lot0", "line1/lot1",
                                        "line1/lot2", "line1"}
    write_archive(arc / "more", 2, seed=5)
    # exit status 0: no error in this run (the earlier error row stays, unchanged)
    assert main(["audit", "--model", str(model), str(arc), "--out", str(out), "--quiet", "--no-report"]) == 0
    assert "7 unchanged, 2 new, 0 changed; this run: 2 scored" in capsys.readouterr().out
    other = tmp_path / "export.csv"
    assert main(["audit", "--export-csv", str(out), "--csv", str(other)]) == 0
    assert "9 rows written" in capsys.readouterr().out
    with open(other, newline="") as f:
        assert len(list(csv.DictReader(f))) == 9


def test_mistakes_get_one_line_errors(model, tmp_path, capsys):
    write_archive(tmp_path / "arc", 1)
    assert main(["audit", "--model", str(model), str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "nope: no such file or folder" in capsys.readouterr().err
    # the folders are checked before the model is read: a broken model is not what gets reported
    (tmp_path / "broken.dimodel").write_bytes(b"garbage")
    assert main(["audit", "--model", str(tmp_path / "broken.dimodel"), str(tmp_path / "nope"), "--out",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "nope: no such file or folder" in err and "auditing" not in err
    assert main(["audit", "--model", str(model), str(tmp_path / "arc")]) == 2
    assert "give --out DIR" in capsys.readouterr().err
    assert main(["audit", "--export-csv", str(tmp_path / "o2")]) == 2
    assert "no audit results there" in capsys.readouterr().err
    (tmp_path / "bad.dimodel").write_bytes(b"garbage")
    assert main(["audit", "--model", str(tmp_path / "bad.dimodel"), str(tmp_path / "arc"), "--out",
                 str(tmp_path / "o3")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.dimodel" in err


def test_an_audit_killed_with_sigkill_resumes_with_every_image_scored_exactly_once(model, tmp_path, capsys):
    arc, out = tmp_path / "arc", tmp_path / "out"
    paths = write_archive(arc, 60)
    cmd = [sys.executable, os.path.join(REPO, "main.py"), "audit", "--model", str(model), str(arc), "--out", str(out),
           "--batch-size", "2", "--quiet", "--no-report", "--device", "cpu"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = out / "audit.sqlite"
    before = 0
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if db.exists():
                try:
                    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
                        before = con.execute("SELECT COUNT(*) FROM images").fetchone()[0]
                except sqlite3.OperationalError:
                    before = 0  # the schema is being created
                if before >= 4:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the audit finished or failed before it could be killed"
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    killed = {p: (rid, at) for p, rid, at in con.execute("SELECT path, run_id, scored_at FROM images")}
    con.close()
    assert 4 <= len(killed) < 60

    assert main(["audit", "--model", str(model), str(arc), "--out", str(out), "--batch-size", "2", "--quiet",
                 "--no-report", "--device", "cpu"]) == 0
    assert f"{len(killed)} unchanged, {60 - len(killed)} new, 0 changed" in capsys.readouterr().out
    con = sqlite3.connect(db)
    rows = con.execute("SELECT path, run_id, scored_at FROM images").fetchall()
    assert sorted(p for p, _, _ in rows) == sorted(str(p) for p in paths)  # none lost, one row per file
    assert all(killed[p] == (rid, at) for p, rid, at in rows if p in killed)  # none scored twice
    runs = con.execute("SELECT id, status, n_scored, n_unchanged FROM runs ORDER BY id").fetchall()
    assert runs == [(1, "running", 0, 0), (2, "finished", 60 - len(killed), len(killed))]


def test_make_audit_archive_copies_decode_as_their_sources_with_their_own_bytes(tmp_path):
    import numpy as np
    from PIL import Image

    from engine.audit.records import fast_hash
    from engine.images import read_image
    from scripts.make_audit_archive import make_archive
    from tests.conftest import texture

    rng = np.random.default_rng(3)
    src = []
    for name in ("a.png", "b.jpg"):
        Image.fromarray(texture(rng)).save(tmp_path / name)
        src.append(tmp_path / name)
    files = make_archive(tmp_path / "arc", 7, src, per_lot=2, progress=False)
    rels = [p.relative_to(tmp_path / "arc").as_posix() for p in files]
    assert rels[:3] == ["line1/2026-11-01/lot000/img_00000.png", "line1/2026-11-01/lot000/img_00001.jpg",
                        "line2/2026-11-01/lot001/img_00002.png"]
    assert rels[6] == "line1/2026-11-02/lot003/img_00006.png"
    for k, p in enumerate(files):
        np.testing.assert_array_equal(read_image(p), read_image(src[k % 2]))
    assert len({fast_hash(str(p)) for p in files}) == 7
    again = make_archive(tmp_path / "arc2", 7, src, per_lot=2, progress=False)
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in files]
