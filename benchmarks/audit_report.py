"""Audit report at scale: time and peak memory of :func:`engine.audit.report.write_report` on a big store.

A store of ``--rows`` synthetic rows (default 1,000,000) is filled through :class:`AuditStore.add`
(scores drawn from a gamma distribution, 2 % errors, ``--groups`` sub-folders three levels deep, an
``8 x 8`` patch grid per row); only the rows that reach the report's galleries (top-N and review band)
point at real image files (written once, 256 x 256). The report is then written in a fresh process,
which prints its wall time, its RSS once the libraries are imported (torch comes with
:mod:`engine.images`, matplotlib) and its peak RSS (``resource.getrusage``), so the figures are the
report's own and not the filling's.

Usage::

    python benchmarks/audit_report.py                     # 1M rows in a temporary folder
    python benchmarks/audit_report.py --rows 100000 --keep /tmp/big_audit

Report the machine load (``uptime``) with the figures: on a shared machine they move a lot.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def fill(out: Path, rows: int, groups: int, real: int, seed: int = 0) -> float:
    """Fill ``out/audit.sqlite``; the ``real`` highest scores get real image files. Returns seconds."""
    from PIL import Image

    from engine.audit.records import AuditRecord
    from engine.audit.store import AuditStore

    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    imgdir = out.parent / "images"
    imgdir.mkdir(parents=True, exist_ok=True)
    meta = {"mode": "recipe", "model_path": None, "model_sha256": "bench", "backbone": "synthetic", "threshold": 6.0,
            "calibration_scores": list(rng.gamma(2.0, 1.0, 50)), "roots": ["/archive"], "patch_size": 14,
            "image_size": 224, "display": {"floor": 1.0, "anchor": 6.0, "high": 11.0, "threshold": 6.0,
                                           "source": "threshold", "top_fraction": 0.01}}
    top_scores = 100.0 + np.arange(real, 0, -1)  # above every drawn score: these rows are the galleries'
    with AuditStore.open(out, meta=meta) as store:
        run = store.begin_run(["bench"])
        chunk = 20_000
        for start in range(0, rows, chunk):
            recs = []
            for i in range(start, min(rows, start + chunk)):
                grp = f"line{i % 4}/day{(i // 4) % 30:02d}/lot{i % groups}"
                path = f"/archive/{grp}/{i:07d}.png"
                if i < real:
                    p = imgdir / f"{i:04d}.png"
                    Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(p)
                    path, score = str(p), float(top_scores[i])
                    st = p.stat()
                    size, mtime = st.st_size, st.st_mtime_ns
                else:
                    score, size, mtime = float(rng.gamma(2.0, 1.0)), 1000, 0
                if i >= real and i % 50 == 0:
                    recs.append(AuditRecord(path, "/archive", path[9:], grp, size, mtime, "", "error",
                                            error=f"{path}: not an image"))
                    continue
                recs.append(AuditRecord(path, "/archive", path[9:], grp, size, mtime, "", "scored", score=score,
                                        verdict="NOK" if score >= 6.0 else "OK", height=256, width=256,
                                        anomaly_grid=(rng.random((8, 8)) * score).astype(np.float16), latency_ms=1.0))
            store.add(recs, run)
        store.finish_run(run, "finished", rows, 0, 0)
    return time.perf_counter() - t0


def measure(out: Path, top_n: int) -> dict:
    """Write the report in this process; wall time and peak RSS."""
    import resource

    from engine.audit.report import write_report
    from engine.audit.report.plots import _pyplot

    _pyplot()  # imports (torch comes with engine.images, matplotlib) counted apart from the work
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    write_report(out, top_n=top_n, band_n=top_n)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"report_s": round(wall, 2), "rss_after_imports_mb": round(base, 1), "peak_rss_mb": round(peak, 1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--groups", type=int, default=200, help="lots (third-level folders)")
    ap.add_argument("--top-n", type=int, default=50)
    ap.add_argument("--keep", metavar="DIR", help="build the store here and keep it (default: a temporary folder)")
    ap.add_argument("--measure", metavar="DIR", help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.top_n)))
        return 0
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="audit_report_bench_"))
    out = base / "out"
    if not (out / "audit.sqlite").exists():
        fill_s = fill(out, args.rows, args.groups, real=2 * args.top_n)
        print(f"filled {args.rows} rows in {fill_s:.1f} s ({(out / 'audit.sqlite').stat().st_size / 1e6:.0f} MB)")
    res = subprocess.run([sys.executable, __file__, "--measure", str(out), "--top-n", str(args.top_n)],
                         capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    figures = json.loads(res.stdout.strip().splitlines()[-1])
    load = os.getloadavg()
    print(json.dumps({"rows": args.rows, "top_n": args.top_n, **figures,
                      "load_avg_1_5_15": [round(x, 2) for x in load], "cpus": os.cpu_count()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
