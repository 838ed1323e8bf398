"""Audit at scale: 10,000 images with flat memory, killed with SIGKILL at ~40 % and resumed.

Not a test: it makes an archive of ``--n`` images in a temporary folder
(scripts/make_audit_archive.py: copies of mvtec_ad/bottle images, each with its own bytes, in a
line/day/lot tree), fits a small recipe with ``main.py fit`` on bottle's good images, then runs
``main.py audit`` as a child process:

1. run 1 is killed with SIGKILL once the store holds ``--kill-at`` of the images;
2. run 2 (the same command) resumes and finishes;
3. the store is checked: every archive file has exactly one row (none lost), the rows of run 1 kept
   their ``run_id`` and ``scored_at`` (none scored twice), run 2 counted them as unchanged and scored
   exactly the rest, ``PRAGMA integrity_check`` is ok after the kill.

RSS is sampled from ``/proc/<pid>/status`` (``VmRSS``) every 0.25 s with the store's row count, and
reported at 10 %, 50 % and 100 % of the archive done, plus each run's peak (``ru_maxrss`` from
``os.wait4``). Throughput: images/s of each run, over the whole run (model load included) and
steady (between 10 % and 40 % of the archive in run 1; over run 2's scoring).

Usage::

    nice -n 10 python benchmarks/audit_scale.py [--n 10000] [--backbone dinov2_vits14 --size 112] [--threads 1]

Results go to docs/audit_scale.json (with the commands, the machine and the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
BOTTLE = REPO.parent / "shared" / "data" / "mvtec_ad" / "bottle"


def rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def rows_in(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    except sqlite3.Error:
        return 0


def watch(cmd: list[str], env: dict, db: Path, kill_at: int | None, samples: list, t_origin: float,
          run: int) -> dict:
    """Run ``cmd``, sampling (time, rows, RSS); SIGKILL it once the store holds ``kill_at`` rows."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        rows, rss = rows_in(db), rss_mib(proc.pid)
        if rss is not None:
            samples.append({"t": round(time.monotonic() - t_origin, 2), "run": run, "rows": rows, "rss_mib": round(rss, 1)})
        if kill_at is not None and rows >= kill_at and not killed:
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
        time.sleep(0.25)
    out, err = proc.stdout.read(), proc.stderr.read()
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    return {"returncode": code, "killed": killed, "wall_s": round(time.monotonic() - t0, 1),
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1), "stdout": out[-2000:], "stderr_tail": err[-1500:]}


def rss_at(samples: list, rows: int) -> dict | None:
    """The first sample with at least ``rows`` rows in the store."""
    return next((s for s in samples if s["rows"] >= rows), None)


def main() -> int:
    from scripts.make_audit_archive import make_archive
    from engine.audit.scan import ArchiveScan

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--backbone", default="dinov2_vits14")
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the children (default %(default)s)")
    ap.add_argument("--kill-at", type=float, default=0.4)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "audit_scale.json")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()

    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="audit_scale_"))
    t = time.monotonic()
    sources = [Path(f.path) for f in ArchiveScan([BOTTLE])]
    files = make_archive(tmp / "archive", args.n, sources, progress=False)
    make_s = time.monotonic() - t
    print(f"archive: {len(files)} images from {len(sources)} bottle sources in {make_s:.0f} s", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "DINOINSPECT_CPU_BF16": "0"}
    recipe = tmp / "recipe.dimodel"
    fit_cmd = [sys.executable, "main.py", "fit", "--good", str(BOTTLE / "train" / "good"), "--backbone", args.backbone,
               "--size", str(args.size), "--out", str(recipe), "--quiet", "--device", "cpu"]
    t = time.monotonic()
    fit = subprocess.run(fit_cmd, cwd=REPO, env=env, capture_output=True, text=True)
    fit_s = time.monotonic() - t
    if fit.returncode:
        print(fit.stderr[-3000:])
        return 1
    print(f"fit: {fit_s:.0f} s", flush=True)
    out = tmp / "audit"
    db = out / "audit.sqlite"
    cmd = [sys.executable, "main.py", "audit", "--model", str(recipe), str(tmp / "archive"), "--out", str(out),
           "--quiet", "--no-report", "--device", "cpu"] + (["--batch-size", str(args.batch_size)] if args.batch_size else [])
    samples: list = []
    origin = time.monotonic()
    kill_rows = int(args.kill_at * args.n)
    r1 = watch(cmd, env, db, kill_rows, samples, origin, 1)
    con = sqlite3.connect(db)
    integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
    first = {p: (rid, at) for p, rid, at in con.execute("SELECT path, run_id, scored_at FROM images")}
    con.close()
    print(f"run 1: killed={r1['killed']} rc={r1['returncode']} rows={len(first)} integrity={integrity}", flush=True)
    r2 = watch(cmd, env, db, None, samples, origin, 2)
    print(f"run 2: rc={r2['returncode']} {r2['stdout'].strip()}", flush=True)
    con = sqlite3.connect(db)
    rows = con.execute("SELECT path, run_id, scored_at, status FROM images").fetchall()
    runs = [dict(zip(("id", "status", "n_scored", "n_errors", "n_unchanged", "started", "finished"), r)) for r in
            con.execute("SELECT id, status, n_scored, n_errors, n_unchanged, started, finished FROM runs ORDER BY id")]
    con.close()
    paths = [p for p, *_ in rows]
    checks = {
        "rows": len(rows), "archive_files": len(files),
        "one_row_per_file": len(paths) == len(set(paths)) == len(files) and set(paths) == {str(p) for p in files},
        "run1_rows_untouched": all(first[p] == (rid, at) for p, rid, at, _ in rows if p in first),
        "run1_rows": len(first),
        "run2_unchanged_is_run1_rows": runs[-1]["n_unchanged"] == len(first),
        "run2_scored_the_rest": runs[-1]["n_scored"] + runs[-1]["n_errors"] == len(files) - len(first),
        "errors": sum(s == "error" for *_, s in rows),
        "integrity_after_kill": integrity,
        "run_status": [r["status"] for r in runs],
    }
    checks["passed"] = bool(checks["one_row_per_file"] and checks["run1_rows_untouched"]
                            and checks["run2_unchanged_is_run1_rows"] and checks["run2_scored_the_rest"]
                            and integrity == "ok" and r1["killed"] and r2["returncode"] == 0)

    def rate(lo, hi, run):
        a = rss_at([s for s in samples if s["run"] == run], lo)
        b = rss_at([s for s in samples if s["run"] == run], hi)
        return None if not a or not b or b["t"] <= a["t"] else round((b["rows"] - a["rows"]) / (b["t"] - a["t"]), 2)

    run2_samples = [s for s in samples if s["run"] == 2]
    run2_first = next((s for s in run2_samples if s["rows"] > len(first)), None)
    n = args.n
    result = {
        "what": "main.py audit on an archive of copies of mvtec_ad/bottle images, SIGKILL at ~40 %, resumed",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "load_avg_before": [round(x, 2) for x in load_before], "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "n": n, "backbone": args.backbone, "size": args.size, "omp_threads": args.threads,
        "commands": {"archive": f"scripts/make_audit_archive.py DEST --n {n} --source {BOTTLE}",
                     "fit": " ".join(fit_cmd[1:]).replace(str(tmp), "$TMP"),
                     "audit": " ".join(cmd[1:]).replace(str(tmp), "$TMP")},
        "archive_s": round(make_s, 1), "fit_s": round(fit_s, 1),
        "run1": {k: v for k, v in r1.items() if k != "stdout"}, "run2": r2,
        "images_per_s": {
            "run1_steady_10_to_40pct": rate(int(0.1 * n), int(0.38 * n), 1),
            "run1_overall": round(len(first) / r1["wall_s"], 2),
            "run2_steady": None if not run2_first or run2_samples[-1]["t"] <= run2_first["t"] else
            round((run2_samples[-1]["rows"] - run2_first["rows"]) / (run2_samples[-1]["t"] - run2_first["t"]), 2),
            "run2_overall": round((n - len(first)) / r2["wall_s"], 2)},
        "rss_mib_at": {f"{int(f * 100)}%": rss_at(samples, int(f * n)) for f in (0.1, 0.5, 0.99)},
        "checks": checks, "runs": runs,
        "rss_samples_every_20th": samples[::20],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("images_per_s", "rss_mib_at", "checks")}, indent=1))
    print(f"peak RSS: run 1 {r1['peak_rss_mib']} MiB, run 2 {r2['peak_rss_mib']} MiB; written {args.out}")
    if not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"kept {tmp}")
    return 0 if checks["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
