"""Crash safety and output-side write failures, with real processes and real file systems:

* ``kill -9`` (SIGKILL) at seeded random points of ``main.py predict`` on 200 images: the CSV on disk
  is always readable and keeps every row written before the kill; ``--resume`` finishes the rest
  without repeating any;
* ``kill -9`` of the operator app during a folder run: no committed defect-log row is lost and
  ``pragma integrity_check`` is ok;
* ``kill -9`` while a model file is being written: the file on disk always loads and is the old or the
  new model, never a mix;
* a full disk (a per-process file-size limit, ``RLIMIT_FSIZE``, and a real 256 KiB tmpfs) and a
  read-only folder: one-line errors, no traceback, no half-written row, model or PNG left behind.

The tmpfs and read-only cases mount a file system in a new user + mount namespace (``unshare -rm``,
no privileges needed); they are skipped, with the reason, where the system does not allow that.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.output_helpers import tiny_model_file, write_png

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["file", "score", "score_normalised", "verdict", "threshold", "latency_ms", "backbone", "overlay", "error"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return tiny_model_file(tmp_path_factory)


@pytest.fixture(scope="module")
def images_200(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("parts") / "line1"
    for i in range(200):
        write_png(folder / f"{i:03d}.png", 1000 + i)
    return folder


def _env(**extra) -> dict:
    # no bytecode caches: under a file-size limit CPython leaves truncated .pyc files behind (seen here:
    # "EOFError: marshal data too short" in the next run), and no test should write into the checkout
    return dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1",
                **extra)


def _main(*args: str) -> list[str]:
    return [sys.executable, str(REPO / "main.py"), *args]


def _read_rows(csv_path: Path) -> list[list[str]]:
    """Every row of a predictions.csv, checking it is whole: the header, then rows of 9 fields, and the
    file ends with the end of a row (nothing torn)."""
    if not csv_path.exists():
        return []
    data = csv_path.read_bytes()
    rows = list(csv.reader(data.decode("utf-8").splitlines()))
    assert rows[0] == COLUMNS
    assert data.endswith(b"\r\n"), data[-80:]
    assert all(len(r) == len(COLUMNS) for r in rows[1:]), [r for r in rows if len(r) != len(COLUMNS)]
    return rows[1:]


def _kill_after_rows(cmd: list[str], csv_path: Path, target: int, rng: np.random.Generator) -> tuple[list, int]:
    """Start ``cmd``; once ``csv_path`` holds ``target`` rows, wait a random 0-40 ms and SIGKILL it.
    Returns (the rows read last before the kill, the exit status)."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: list = []
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            seen = _read_rows(csv_path)
        except (AssertionError, IndexError, UnicodeDecodeError):  # read while a row was being appended
            pass
        if len(seen) >= target:
            time.sleep(float(rng.uniform(0, 0.04)))
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    return seen, proc.wait()


def test_predict_killed_at_random_points_keeps_every_row_and_resume_finishes_without_repeats(
        tiny_model, images_200, tmp_path):
    rng = np.random.default_rng(20261201)
    targets = sorted(int(t) for t in rng.choice(np.arange(5, 195), size=3, replace=False))
    out = tmp_path / "pred"
    csv_path = out / "predictions.csv"
    args = ["predict", "--model", str(tiny_model), str(images_200), "--out", str(out), "--device", "cpu", "--quiet"]
    record = []
    for i, target in enumerate(targets):
        before, rc = _kill_after_rows(_main(*args, *(["--resume"] if i else [])), csv_path, target, rng)
        after = _read_rows(csv_path)  # readable, every row whole
        assert rc == -signal.SIGKILL
        assert after[:len(before)] == before  # nothing the file held before the kill is lost
        assert len({r[0] for r in after}) == len(after)  # no image twice
        record.append((target, len(before), len(after)))
    done = subprocess.run(_main(*args, "--resume"), cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    final = _read_rows(csv_path)
    files = [r[0] for r in final]
    assert sorted(files) == sorted(str(p) for p in images_200.glob("*.png"))  # all 200, each once
    assert final[:record[-1][2]] == _read_rows(csv_path)[:record[-1][2]]
    assert all(r[3] in ("OK", "NOK") and r[8] == "" for r in final)
    overlays = {p.name for p in (out / "overlays").iterdir()}
    assert overlays == {Path(r[7]).name for r in final}  # one overlay per row, none orphaned or missing
    print(f"\npredict kill -9 (target rows, rows seen before kill, rows after kill): {record}; "
          f"after --resume: {len(final)} rows, duplicates {len(files) - len(set(files))}")


def test_app_killed_during_a_folder_run_loses_no_committed_row(tiny_model, images_200, tmp_path):
    rng = np.random.default_rng(7)
    record = []
    for k, target in enumerate(sorted(int(t) for t in rng.choice(np.arange(3, 80), size=2, replace=False))):
        data = tmp_path / f"appdata{k}"
        proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "crash_app_driver.py"), str(tiny_model),
                                 str(images_200)], cwd=REPO, env=_env(DINOINSPECT_DATA_DIR=str(data)),
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        committed: list[tuple[int, str]] = []
        lines: list[str] = []
        reached = threading.Event()

        def read():
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("committed "):
                    _, row_id, name = line.rstrip("\n").split(" ", 2)
                    committed.append((int(row_id), name))
                    if len(committed) >= target:
                        reached.set()
            reached.set()

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        assert reached.wait(300), lines
        time.sleep(float(rng.uniform(0, 0.03)))
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL
        reader.join(10)
        assert "journal_mode wal\n" in lines
        db = sqlite3.connect(str(data / "defect_log.sqlite"))
        assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
        stored = dict(db.execute("SELECT id, file FROM inspections").fetchall())
        db.close()
        assert all(stored.get(i) == name for i, name in committed), "a committed row is missing"
        assert len(committed) >= target and len(stored) >= len(committed)
        record.append((target, len(committed), len(stored)))
    print(f"\napp kill -9 (target, rows reported committed, rows in the log after the kill): {record}; "
          f"integrity_check ok")


_SAVER = """
import sys, numpy as np
sys.path.insert(0, sys.argv[2])
from engine.modelfile import save_model_file
path, k = sys.argv[1], 0
while True:
    v = 1 + k % 2
    save_model_file(path, {"version": v}, {"scorer/bank": np.full(3_000_000, v, np.float32)})
    print(v, flush=True)
    k += 1
"""


def _model_version(path: Path) -> int:
    from engine.modelfile import load_model_file

    config, arrays = load_model_file(path)  # checks the content checksum
    bank = arrays["scorer/bank"]
    assert bank.shape == (3_000_000,) and (bank == config["version"]).all()
    return config["version"]


def test_a_model_file_being_written_when_killed_never_replaces_the_old_one(tmp_path):
    from engine.modelfile import save_model_file

    path = tmp_path / "m.dimodel"
    save_model_file(path, {"version": 0}, {"scorer/bank": np.zeros(3_000_000, np.float32)})
    rng = np.random.default_rng(11)
    seen = []
    for _ in range(6):
        before = _model_version(path)
        proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(path), str(REPO)], stdout=subprocess.PIPE,
                                text=True)
        proc.stdout.readline()  # one save done: the next ones run while the kill comes
        time.sleep(float(rng.uniform(0, 0.3)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        after = _model_version(path)  # loads, whole, one version or the other
        assert after in (1, 2)
        seen.append((before, after))
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "m.dimodel"]
    assert all(n.startswith(".m.dimodel.") and n.endswith(".tmp") for n in leftovers)  # hidden, never loaded
    print(f"\nmodel kill -9 (version before, version on disk after): {seen}; temporary files left: {len(leftovers)}")


def _limited(limit_bytes: int):
    """preexec_fn: a file-size limit of ``limit_bytes``; writes past it fail with EFBIG, as on a full
    disk (SIGXFSZ ignored, so the process gets the error instead of being killed)."""
    import resource

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return apply


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_predict_stops_cleanly_at_a_file_size_limit_and_resume_finishes(tiny_model, images_200, tmp_path):
    out = tmp_path / "pred"
    files = sorted(images_200.glob("*.png"))[:40]
    args = ["predict", "--model", str(tiny_model), *map(str, files), "--out", str(out), "--no-overlays",
            "--device", "cpu"]
    limit = 2000
    r = subprocess.run(_main(*args, "--quiet"), cwd=REPO, env=_env(), capture_output=True, text=True,
                       preexec_fn=_limited(limit), timeout=600)
    rows = _read_rows(out / "predictions.csv")  # whole rows only, although the limit fell inside one
    assert r.returncode == 2 and "Traceback" not in r.stderr
    err = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "File too large" in err[0], r.stderr
    assert f"stopped with {len(rows)} complete rows saved" in err[0] and "--resume" in err[0]
    assert f"inspect the other {40 - len(rows)} images" in err[0]
    assert 0 < len(rows) < 40 and (out / "predictions.csv").stat().st_size <= limit
    r = subprocess.run(_main(*args, "--quiet", "--resume"), cwd=REPO, env=_env(), capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    final = _read_rows(out / "predictions.csv")
    assert final[:len(rows)] == rows and sorted(f[0] for f in final) == sorted(map(str, files))


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_fit_on_a_full_disk_keeps_the_previous_model(tiny_model, images_200, tmp_path):
    out = tmp_path / "m.dimodel"
    shutil.copy(tiny_model, out)
    old = out.read_bytes()
    good = tmp_path / "good"
    good.mkdir()
    for p in sorted(images_200.glob("*.png"))[:6]:
        shutil.copy(p, good / p.name)
    r = subprocess.run(_main("fit", "--good", str(good), "--out", str(out), "--backbone", "efficientnet_lite0",
                             "--size", "64", "--folds", "0", "--holdout", "0.3", "--threshold-rule", "tail",
                             "--device", "cpu", "--quiet"),
                       cwd=REPO, env=_env(), capture_output=True, text=True, preexec_fn=_limited(4096),  # a model is tens of KiB
                       timeout=600)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    err = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "cannot write the model file (File too large)" in err[0]
    assert f"the previous model in {out} is unchanged" in err[0]
    assert out.read_bytes() == old  # not a byte changed
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def _unshare_ok() -> str | None:
    if not shutil.which("unshare"):
        return "unshare not found"
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k none /tmp"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else f"cannot mount a tmpfs in a user namespace here: {probe.stderr.strip()}"


def _in_small_fs(tmp_path: Path, script: str, size: str = "256k", read_only: bool = False):
    """Run ``script`` (sh) with a fresh ``size`` tmpfs mounted at ``$MNT`` (``tmp_path/mnt``), read-only
    after ``$MNT/out`` is made when ``read_only``; ``$KEEP`` (``tmp_path/keep``) survives it."""
    reason = _unshare_ok()
    if reason:
        pytest.skip(reason)
    mnt, keep = tmp_path / "mnt", tmp_path / "keep"
    mnt.mkdir()
    keep.mkdir()
    ro = 'mount -o remount,ro "$MNT"; ' if read_only else ""
    full = f'mount -t tmpfs -o size={size} none "$MNT" && mkdir "$MNT/out" && {ro}{script}'
    return subprocess.run(["unshare", "-rm", "sh", "-c", full], cwd=REPO, capture_output=True, text=True,
                          env=_env(MNT=str(mnt), KEEP=str(keep), PY=sys.executable), timeout=600)


def test_predict_on_a_full_file_system_keeps_whole_rows_and_pngs(tiny_model, images_200, tmp_path):
    r = _in_small_fs(tmp_path, '"$PY" main.py predict --model "$MODEL" "$IMAGES" --out "$MNT/out" --device cpu '
                               '--quiet; echo "rc=$?"; cp -a "$MNT/out" "$KEEP/"'.replace(
                                   "$MODEL", str(tiny_model)).replace("$IMAGES", str(images_200)))
    assert "rc=2" in r.stdout and "Traceback" not in r.stderr, r.stderr
    err = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "No space left on device" in err[0], r.stderr
    out = tmp_path / "keep" / "out"
    rows = _read_rows(out / "predictions.csv")
    assert f"stopped with {len(rows)} complete rows saved" in err[0] and 0 < len(rows) < 200
    import cv2

    pngs = sorted(p.name for p in (out / "overlays").iterdir())
    assert pngs == sorted(Path(r[7]).name for r in rows)  # the image being written when space ran out: removed
    assert all(cv2.imread(str(out / "overlays" / n)) is not None for n in pngs)  # every PNG whole


def test_read_only_output_folder_is_one_line_before_any_work(tiny_model, images_200, tmp_path):
    one = str(sorted(images_200.glob("*.png"))[0])
    script = (f'"$PY" main.py predict --model {tiny_model} {one} --out "$MNT/out/pred" --device cpu --quiet; '
              f'echo "rc=$?"; "$PY" main.py fit --good {images_200} --out "$MNT/out/m.dimodel" --quiet; echo "rc=$?"')
    r = _in_small_fs(tmp_path, script, read_only=True)
    assert r.stdout.split() == ["rc=2", "rc=2"] and "Traceback" not in r.stderr, r.stderr
    err = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 2 and all("Read-only file system" in e for e in err), r.stderr
    assert "fitting on" not in r.stderr  # refused before the work


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0,
                    reason="chmod does not stop root (or Windows) from writing; the read-only file system test "
                           "covers this")
def test_unwritable_output_folder_by_permissions(tiny_model, images_200, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        r = subprocess.run(_main("predict", "--model", str(tiny_model), str(sorted(images_200.glob("*.png"))[0]),
                                 "--out", str(locked / "pred"), "--quiet"), cwd=REPO, env=_env(),
                           capture_output=True, text=True, timeout=600)
    finally:
        locked.chmod(0o755)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "Permission denied" in r.stderr and "Choose --out in a folder you can write to" in r.stderr
