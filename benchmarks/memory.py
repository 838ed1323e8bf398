"""Peak memory (RSS) of ``predict`` on many images and of ``fit`` on 200 / 800 images.

Not a test: it runs the real commands (``python main.py predict|fit``) as child processes and
samples their resident set size from ``/proc/<pid>/status`` (``VmRSS`` every 0.25 s; the peak is the
kernel's ``ru_maxrss`` of the child from ``os.wait4``), so nothing here depends on psutil.

* ``predict``: the script fits a small model on a few real good images, then makes a folder of
  ``--n`` images in a temporary directory -- hard links (copies where links fail) of ``--distinct``
  real test images, shrunk to ``--image-side`` px first so 10,000 overlays fit on the disk -- and
  runs ``predict`` on it. Progress is read from ``predictions.csv``, which ``predict`` flushes per
  row, so RSS is reported at 1k, 2k, 5k and 10k images done; flat RSS = memory bounded in the
  number of images. A fast backbone and input size are the default (``efficientnet_lite0``, 128 px):
  RSS flatness, not speed, is the point.
* ``fit``: ``fit`` on the first 200 and 800 good images of a category (hard links in a temporary
  folder), per scorer; peak RSS and wall time. The backbone's features for N images are held once
  (``N x h x w x D float32``); cross-fitting must not add a copy per fold.
* ``fit-features``: the cross-fit part alone (``fit_features``) on a feature array of a backbone's
  shape, per scorer, optionally against another source tree (``--code``, e.g. an export of main):
  the scorer's working memory above the features, without the time of a backbone on a shared CPU.

Usage::

    python benchmarks/memory.py predict [--n 10000] [--backbone efficientnet_lite0 --size 128]
    python benchmarks/memory.py fit [--fit-n 200 800] [--scorers knn mahalanobis] [--backbone dinov2_vits14 --size 224]
    python benchmarks/memory.py fit-features [--fit-n 200 800] [--grid 16 --dim 384] [--code /path/to/main-export]
    python benchmarks/memory.py report          # docs/MEMORY.md from docs/memory.json

Results are merged into ``docs/memory.json`` (one entry per measurement, with command, machine and
load average before/after) and ``docs/MEMORY.md`` is rewritten from it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("DINOINSPECT_DATA", REPO.parent / "shared" / "data"))
JSON_OUT = REPO / "docs" / "memory.json"
MD_OUT = REPO / "docs" / "MEMORY.md"


def _status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def run_sampled(cmd: list[str], progress_file: Path | None = None, every: float = 0.25,
                max_seconds: float | None = None) -> dict:
    """Run ``cmd``; sample its RSS (MiB) and, with ``progress_file``, its line count over time.

    Returns ``{"rc", "wall_s", "peak_rss_mb" (the child's ``ru_maxrss`` from ``wait4``),
    "samples": [(t, rss_mb, lines)]}``.
    """
    t0 = time.time()
    p = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    samples: list[tuple[float, float, int]] = []
    hwm = [0]
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.extend(p.stdout), daemon=True)
    reader.start()
    rc, stopped = None, False
    while rc is None:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            rc = os.waitstatus_to_exitcode(status)
            hwm[0] = max(hwm[0], usage.ru_maxrss)  # the kernel's peak RSS of the child, KiB
            p.returncode = rc
            break
        if max_seconds and time.time() - t0 > max_seconds and not stopped:
            p.terminate()  # out of time: keep what was measured, say so
            stopped = True
        rss = _status_kb(p.pid, "VmRSS")
        peak = _status_kb(p.pid, "VmHWM")
        if peak:
            hwm[0] = max(hwm[0], peak)
        lines = 0
        if progress_file is not None and progress_file.exists():
            with open(progress_file, "rb") as fh:
                lines = max(0, sum(1 for _ in fh) - 1)  # minus the header
        if rss:
            samples.append((round(time.time() - t0, 2), round(rss / 1024, 1), lines))
        time.sleep(every)
    reader.join(timeout=5)
    return {"rc": rc, "stopped_after_max_seconds": stopped, "wall_s": round(time.time() - t0, 1), "peak_rss_mb": round(hwm[0] / 1024, 1),
            "samples": samples, "output_tail": "".join(out)[-1500:]}


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _machine() -> dict:
    return {"platform": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "python": platform.python_version()}


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _save(entry: dict) -> None:
    data = json.loads(JSON_OUT.read_text()) if JSON_OUT.exists() else {"runs": []}
    data["runs"] = [r for r in data["runs"] if r["key"] != entry["key"]] + [entry]
    JSON_OUT.write_text(json.dumps(data, indent=1) + "\n")
    write_md(data)


def bench_predict(a) -> None:
    import cv2

    cat = DATA / a.category
    train = sorted((cat / "train" / "good").iterdir())[: a.fit_images]
    tests = sorted(p for d in sorted((cat / "test").iterdir()) for p in sorted(d.iterdir()))
    step = max(1, len(tests) // a.distinct)
    picks = tests[::step][: a.distinct]
    with tempfile.TemporaryDirectory(prefix="dinoinspect-mem-") as tmp:
        tmp = Path(tmp)
        (tmp / "good").mkdir()
        for p in train:
            _link_or_copy(p, tmp / "good" / p.name)
        model = tmp / "model.dimodel"
        fit = subprocess.run([sys.executable, "main.py", "fit", "--good", str(tmp / "good"), "--out", str(model),
                              "--backbone", a.backbone, "--size", str(a.size), "--quiet"], cwd=REPO,
                             capture_output=True, text=True)
        if fit.returncode:
            raise SystemExit(f"fit failed:\n{fit.stdout}\n{fit.stderr}")
        src = tmp / "distinct"
        src.mkdir()
        for i, p in enumerate(picks):
            img = cv2.imread(str(p), cv2.IMREAD_COLOR)
            s = a.image_side / max(img.shape[:2])
            img = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(src / f"d{i:02d}.png"), img)
        many = tmp / "many"
        many.mkdir()
        distinct = sorted(src.iterdir())
        for i in range(a.n):
            _link_or_copy(distinct[i % len(distinct)], many / f"img_{i:05d}.png")
        out = tmp / "out"
        cmd = [sys.executable, "main.py", "predict", "--model", str(model), str(many), "--out", str(out), "--quiet"]
        if a.no_overlays:
            cmd.append("--no-overlays")
        load0 = _load()
        res = run_sampled(cmd, out / "predictions.csv", max_seconds=a.max_seconds)
        load1 = _load()
    marks = {}
    for m in (100, 1000, 2000, 5000, 10000, a.n):
        if m > a.n:
            continue
        hit = next((s for s in res["samples"] if s[2] >= m), None)
        if hit is not None:
            marks[str(m)] = {"t_s": hit[0], "rss_mb": hit[1]}
    shown = " ".join(Path(c).name if "/" in c else c for c in cmd[1:])
    entry = {"key": f"predict-{a.n}-{a.backbone}-{a.size}", "kind": "predict", "n": a.n, "backbone": a.backbone,
             "size": a.size, "image_side": a.image_side, "distinct": len(picks), "overlays": not a.no_overlays,
             "command": f"python benchmarks/memory.py predict --n {a.n} --backbone {a.backbone} --size {a.size} "
                        f"--image-side {a.image_side}" + (" --no-overlays" if a.no_overlays else ""),
             "child": shown, "rc": res["rc"], "stopped_after_max_seconds": res["stopped_after_max_seconds"],
             "images_done": max((x[2] for x in res["samples"]), default=0),
             "trace_t_rss_images": res["samples"][:: max(1, len(res["samples"]) // 60)] + res["samples"][-1:], "wall_s": res["wall_s"], "peak_rss_mb": res["peak_rss_mb"],
             "rss_at_images": marks, "load_before": load0, "load_after": load1, "machine": _machine(),
             "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "output_tail": res["output_tail"][-400:]}
    _save(entry)
    print(json.dumps({k: entry[k] for k in ("rc", "wall_s", "peak_rss_mb", "rss_at_images")}, indent=1))


def bench_fit(a) -> None:
    cat = DATA / a.category
    goods = sorted((cat / "train" / "good").iterdir())
    for n in a.fit_n:
        if n > len(goods):
            raise SystemExit(f"{cat}: only {len(goods)} train images, asked for {n}")
        for scorer in a.scorers:
            with tempfile.TemporaryDirectory(prefix="dinoinspect-memfit-") as tmp:
                tmp = Path(tmp)
                (tmp / "good").mkdir()
                for p in goods[:n]:
                    _link_or_copy(p, tmp / "good" / p.name)
                cmd = [sys.executable, "main.py", "fit", "--good", str(tmp / "good"), "--out", str(tmp / "m.dimodel"),
                       "--backbone", a.backbone, "--size", str(a.size), "--scorer", scorer, "--quiet"]
                load0 = _load()
                res = run_sampled(cmd, None, every=0.5)
                load1 = _load()
            entry = {"key": f"fit-{a.category}-{n}-{scorer}-{a.backbone}-{a.size}-{a.label}", "kind": "fit",
                     "n": n, "scorer": scorer, "backbone": a.backbone, "size": a.size, "category": a.category,
                     "label": a.label,
                     "command": f"python benchmarks/memory.py fit --fit-n {n} --scorers {scorer} --backbone "
                                f"{a.backbone} --size {a.size} --category {a.category}",
                     "rc": res["rc"], "wall_s": res["wall_s"], "peak_rss_mb": res["peak_rss_mb"],
                     "load_before": load0, "load_after": load1, "machine": _machine(),
                     "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     "output_tail": res["output_tail"][-400:]}
            _save(entry)
            print(n, scorer, a.label, res["rc"], res["wall_s"], "s", res["peak_rss_mb"], "MiB peak", flush=True)


FEATURES_CHILD = r"""
import os, sys, resource
sys.path.insert(0, sys.argv[1])
from pathlib import Path
import numpy as np, torch
from engine.model import InspectionModel
n, h, d, scorer = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
torch.manual_seed(0)
m = InspectionModel.create("efficientnet_lite0", scorer, size=64, device="cpu")
feats = torch.randn(n, h, h, d)
def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024
base = rss()
m.fit_features(feats, [Path(f"img{i}.png") for i in range(n)], synthetic=0)
print("features_mb", round(feats.numel() * 4 / 2**20, 1), "rss_with_features_mb", base,
      "peak_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, flush=True)
"""


def bench_fit_features(a) -> None:
    """``fit_features`` (cross-fit, 5 folds, no synthetic defects) on a feature array of the shape a
    backbone gives, filled with N(0, 1) values (memory, not accuracy, is measured), for each scorer,
    with this tree's engine and with ``--code`` (e.g. an export of main) for comparison."""
    codes = ([] if a.skip_this else [("this branch", str(REPO))]) + ([(a.code_label, a.code)] if a.code else [])
    for label, code in codes:
        for n in a.fit_n:
            for scorer in a.scorers:
                load0 = _load()
                t0 = time.time()
                p = subprocess.run([sys.executable, "-c", FEATURES_CHILD, code, str(n), str(a.grid), str(a.dim), scorer],
                                   capture_output=True, text=True, cwd=code)
                line = (p.stdout.strip().splitlines() or [""])[-1].split()
                vals = dict(zip(line[::2], line[1::2])) if p.returncode == 0 else {}
                entry = {"key": f"fitfeat-{n}-{scorer}-{a.grid}-{a.dim}-{label}", "kind": "fit_features", "n": n,
                         "scorer": scorer, "grid": a.grid, "dim": a.dim, "label": label, "rc": p.returncode,
                         "features_mb": float(vals.get("features_mb", "nan")),
                         "rss_with_features_mb": float(vals.get("rss_with_features_mb", "nan")),
                         "peak_rss_mb": float(vals.get("peak_mb", "nan")), "wall_s": round(time.time() - t0, 1),
                         "command": f"python benchmarks/memory.py fit-features --fit-n {n} --scorers {scorer} "
                                    f"--grid {a.grid} --dim {a.dim}" + (f" --code {a.code}" if a.code else ""),
                         "load_before": load0, "load_after": _load(), "machine": _machine(),
                         "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                         "output_tail": (p.stdout + p.stderr)[-400:]}
                _save(entry)
                print(label, n, scorer, p.returncode, entry["features_mb"], entry["rss_with_features_mb"],
                      entry["peak_rss_mb"], entry["wall_s"], "s", flush=True)


def write_md(data: dict) -> None:
    runs = data["runs"]
    md = ["# Memory (peak RSS)", "",
          "Measured with `benchmarks/memory.py` (real `main.py` child processes; RSS sampled from "
          "`/proc/<pid>/status` every 0.25-0.5 s, peak = the kernel's `ru_maxrss` of the child). The machine is shared: "
          "load averages (1/5/15 min) before and after each run are given; they affect time, not memory.", ""]
    preds = [r for r in runs if r["kind"] == "predict"]
    if preds:
        md += ["## predict: RSS along the run", "",
               "| images | backbone, size | overlays | RSS at 100 / 1k / 2k / 5k / 10k images (MiB) | peak (MiB) | "
               "wall (s) | load before -> after |", "|---|---|---|---|---|---|---|"]
        for r in preds:
            at = " / ".join(str(r["rss_at_images"].get(k, {}).get("rss_mb", "-")) for k in
                            ("100", "1000", "2000", "5000", "10000"))
            done = "" if not r.get("stopped_after_max_seconds") else f", stopped by time after {r['images_done']}"
            md.append(f"| {r['n']}{done} ({r['distinct']} distinct {r['image_side']} px images, hard links) | "
                      f"{r['backbone']}, {r['size']} px | {'yes' if r['overlays'] else 'no'} | {at} | "
                      f"{r['peak_rss_mb']} | {r['wall_s']} | {r['load_before']} -> {r['load_after']} |")
        md += ["", "Command: " + "; ".join(f"`{r['command']}`" for r in preds), ""]
        for r in preds:
            tr = r.get("trace_t_rss_images") or []
            if tr:
                pts = tr[:: max(1, len(tr) // 12)] + tr[-1:]
                md += [f"RSS trace of the {r['n']}-image run (images done: RSS MiB): "
                       + ", ".join(f"{int(x[2])}: {x[1]}" for x in pts), ""]
    fits = [r for r in runs if r["kind"] == "fit"]
    if fits:
        md += ["## fit: peak RSS by number of good images", "",
               "| category | images | scorer | backbone, size | code | peak RSS (MiB) | wall (s) | load before -> after |",
               "|---|---|---|---|---|---|---|---|"]
        for r in sorted(fits, key=lambda r: (r["label"], r["scorer"], r["n"])):
            md.append(f"| {r['category']} | {r['n']} | {r['scorer']} | {r['backbone']}, {r['size']} px | {r['label']} | "
                      f"{r['peak_rss_mb']} | {r['wall_s']} | {r['load_before']} -> {r['load_after']} |")
        md += ["", "Commands: " + "; ".join(sorted({f"`{r['command']}`" for r in fits})), ""]
    ff = [r for r in runs if r["kind"] == "fit_features"]
    if ff:
        md += ["## fit_features: cross-fit (5 folds) on a feature array held once", "",
               "Features of the shape a backbone gives (N x grid x grid x D float32, N(0, 1) values: memory, not "
               "accuracy), `fit_features(..., synthetic=0)` in a child process; 'above features' = peak RSS minus "
               "the RSS once the features exist (the scorer's working memory).", "",
               "| images | grid x D | features (MiB) | scorer | code | peak RSS (MiB) | above features (MiB) | "
               "wall (s) | load before -> after |", "|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(ff, key=lambda r: (r["scorer"], r["n"], r["label"])):
            md.append(f"| {r['n']} | {r['grid']}x{r['grid']} x {r['dim']} | {r['features_mb']} | {r['scorer']} | "
                      f"{r['label']} | {r['peak_rss_mb']} | {round(r['peak_rss_mb'] - r['rss_with_features_mb'], 1)} | "
                      f"{r['wall_s']} | {r['load_before']} -> {r['load_after']} |")
        md += ["", "Commands: " + "; ".join(sorted({f"`{r['command']}`" for r in ff})), ""]
    notes = data.get("notes") or []
    if notes:
        md += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    m = (runs[0]["machine"] if runs else _machine())
    md += [f"Machine: {m['platform']}, {m['cpus']} CPUs, Python {m['python']}.", ""]
    MD_OUT.write_text("\n".join(md))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("predict", "fit", "fit-features", "report"))
    ap.add_argument("--grid", type=int, default=16, help="fit-features: patch grid side (ViT-S/14 at 224 px: 16)")
    ap.add_argument("--dim", type=int, default=384, help="fit-features: feature dimension (ViT-S: 384)")
    ap.add_argument("--code", default=None, help="fit-features: another source tree to compare (e.g. main)")
    ap.add_argument("--code-label", default="main", help="fit-features: its label in the table")
    ap.add_argument("--skip-this", action="store_true", help="fit-features: measure only --code")
    ap.add_argument("--n", type=int, default=10000, help="predict: number of images (default %(default)s)")
    ap.add_argument("--distinct", type=int, default=8, help="predict: distinct real images linked (default %(default)s)")
    ap.add_argument("--image-side", type=int, default=160, help="predict: longer side of those images, px")
    ap.add_argument("--fit-images", type=int, default=20, help="predict: good images of the model fitted first")
    ap.add_argument("--no-overlays", action="store_true", help="predict: CSV only")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="predict: stop the run after this long and report the images reached")
    ap.add_argument("--fit-n", type=int, nargs="+", default=[200, 800], help="fit: image counts")
    ap.add_argument("--scorers", nargs="+", default=["knn", "mahalanobis"], help="fit: scorers")
    ap.add_argument("--label", default="this branch", help="fit: what code is measured (for the table)")
    ap.add_argument("--category", default=None,
                    help="category under the data folder (predict: mvtec_ad/bottle, fit: visa/macaroni1)")
    ap.add_argument("--backbone", default=None)
    ap.add_argument("--size", type=int, default=None)
    a = ap.parse_args()
    if a.what == "report":
        write_md(json.loads(JSON_OUT.read_text()))
        return 0
    if a.what == "fit-features":
        a.scorers = a.scorers if a.scorers != ["knn", "mahalanobis"] else ["knn", "mahalanobis", "padim"]
        bench_fit_features(a)
        return 0
    if a.what == "predict":
        a.category = a.category or "mvtec_ad/bottle"
        a.backbone, a.size = a.backbone or "efficientnet_lite0", a.size or 128
        bench_predict(a)
    else:
        a.category = a.category or "visa/macaroni1"
        a.backbone, a.size = a.backbone or "dinov2_vits14", a.size or 224
        bench_fit(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
