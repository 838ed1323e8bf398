"""``main.py predict``: inspect images with a model file -> predictions.csv + overlay PNGs."""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import time
from pathlib import Path

from cli.common import DEVICE_HELP, add_bit_depth_option, report_skipped


def add_parser(sub) -> argparse.ArgumentParser:
    pr = sub.add_parser("predict", help="inspect images with a model file")
    pr.add_argument("--model", required=True, metavar="FILE", help="model file (.dimodel) written by fit or evaluate")
    pr.add_argument("paths", nargs="+", help="image files and/or folders")
    pr.add_argument("--out", required=True, metavar="DIR", help="folder for predictions.csv and overlays/")
    pr.add_argument("--no-overlays", action="store_true", help="write predictions.csv only, no overlay images")
    pr.add_argument("--recursive", action="store_true", help="also read sub-folders of the given folders")
    pr.add_argument("--device", default="auto", help=DEVICE_HELP)
    pr.add_argument("--weights", metavar="FILE", help="backbone weight file, if not where it was at fit time")
    add_bit_depth_option(pr)
    return pr


def run(args) -> int:
    from engine.images import expand_paths
    from engine.model import InspectionModel
    from engine.overlay import normalise, outline_level, overlay, save_png
    from engine.progress import TqdmProgress

    from engine.errors import DatasetError

    out = Path(args.out)
    # a file given twice (directly and through its folder) is inspected once; every skip is counted
    paths = expand_paths(args.paths, recursive=args.recursive, exclude=out, recursive_option="--recursive")
    where = args.paths[0] + (f" (+{len(args.paths) - 1} more)" if len(args.paths) > 1 else "")
    report_skipped(paths, where, hint=None if args.recursive else "add --recursive")
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: exists and is a file; --out needs a folder (new or existing).")
    model = InspectionModel.load(args.model, device=args.device, weights=args.weights)
    if args.bit_depth:
        from engine.value_range import ValueRange

        model.value_range = ValueRange(bit_depth=args.bit_depth, float_range=model.value_range.float_range,
                                       source="option", detail=f"--bit-depth {args.bit_depth}")
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "predictions.csv"
    if csv_path.exists():  # an earlier run's results: move them aside together, never overwrite
        prev = out / f"previous-{time.strftime('%Y%m%d-%H%M%S', time.localtime(csv_path.stat().st_mtime))}"
        prev.mkdir(exist_ok=True)
        for item in (csv_path, out / "overlays"):
            if item.exists():
                shutil.move(str(item), str(prev / item.name))
        print(f"{out} held an earlier run's results: moved to {prev}", file=sys.stderr)
    rng = model.color_range()
    print(f"inspecting {len(paths)} image{'s' if len(paths) != 1 else ''}\n  {model.describe()}", file=sys.stderr)
    n = {"OK": 0, "NOK": 0, "n/a": 0, "error": 0}
    thr = "" if model.threshold is None else f"{model.threshold:.6g}"
    prog = TqdmProgress(not args.quiet)
    with open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "score", "score_normalised", "verdict", "threshold", "latency_ms", "backbone", "overlay",
                    "error"])
        used_names: set[str] = set()
        for path, pred, img, err in model.predict_paths(paths, progress=prog):
            if err:
                w.writerow([str(path), "", "", "error", thr, "", model.backbone.name, "", err])
                n["error"] += 1
                print(f"{'' if args.quiet else chr(10)}error: {err}", file=sys.stderr)
                continue
            norm = "" if rng is None else f"{float(normalise(pred.score, rng[1], rng[0])):.4f}"
            name = ""
            if not args.no_overlays:
                name = f"{path.parent.name}_{path.stem}.png"
                k = 1
                while name in used_names:  # same folder and file name from two places: keep both
                    k += 1
                    name = f"{path.parent.name}_{path.stem}_{k}.png"
                used_names.add(name)
                if rng is None:
                    lo, hi = float(pred.anomaly_map.min()), float(pred.anomaly_map.max())
                    rng_i, level = (lo, (lo + hi) / 2), 0.5
                else:  # outlined only when NOK, where the app outlines it (engine.overlay.outline_level)
                    rng_i = rng
                    level = outline_level(pred.score, rng[1], rng[0], model.calibration.get("pixel_threshold"))
                save_png(out / "overlays" / name, overlay(img, normalise(pred.anomaly_map, rng_i[1], rng_i[0]),
                                                          contour_level=level))
                name = f"overlays/{name}"
            w.writerow([str(path), f"{pred.score:.6g}", norm, pred.verdict, thr,
                        f"{pred.latency_ms:.1f}", model.backbone.name, name, ""])
            fh.flush()
            n[pred.verdict] += 1
    prog.close()
    print(f"{n['OK']} OK, {n['NOK']} NOK, {n['error']} unreadable; results in {csv_path}")
    from engine.calibration import weak_threshold_warning

    warn = weak_threshold_warning(model.calibration, args.model)
    if warn:
        print(f"warning: {warn}", file=sys.stderr)
    if n["n/a"]:
        print(f"{n['n/a']} scored without a verdict: the model has no threshold; set one with "
              f"`python main.py calibrate --model {args.model} --good DIR [--defective DIR]`.")
    return 0 if n["error"] == 0 else 1
