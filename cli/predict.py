"""``main.py predict``: inspect images with a model file -> predictions.csv + overlay PNGs."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from cli.common import DEVICE_HELP, add_bit_depth_option, plural, report_skipped

from engine.app_info import cli_command

COLUMNS = ["file", "score", "score_normalised", "verdict", "threshold", "latency_ms", "backbone", "overlay", "error"]
"""Columns of predictions.csv."""


def add_parser(sub) -> argparse.ArgumentParser:
    pr = sub.add_parser("predict", help="inspect images with a model file")
    pr.add_argument("--model", required=True, metavar="FILE", help="model file (.dimodel) written by fit or evaluate")
    pr.add_argument("paths", nargs="+", help="image files and/or folders")
    pr.add_argument("--out", required=True, metavar="DIR", help="folder for predictions.csv and overlays/")
    pr.add_argument("--no-overlays", action="store_true", help="write predictions.csv only, no overlay images")
    pr.add_argument("--resume", action="store_true",
                    help="continue the predictions.csv in --out (after a stop, a full disk or a crash): images "
                         "that already have a row are not inspected again, overlays already written are kept. "
                         "Give the same model and paths. Without it an earlier run's results are moved aside")
    pr.add_argument("--recursive", action="store_true", help="also read sub-folders of the given folders")
    pr.add_argument("--device", default="auto", help=DEVICE_HELP)
    pr.add_argument("--weights", metavar="FILE", help="backbone weight file, if not where it was at fit time")
    add_bit_depth_option(pr)
    return pr


def run(args) -> int:
    from engine.images import expand_paths
    from engine.model import InspectionModel
    import numpy as np

    from engine.overlay import DisplayScale, normalise, render_overlay
    from engine.progress import TqdmProgress

    from engine.errors import DatasetError

    out = Path(args.out)
    # a file given twice (directly and through its folder) is inspected once; every skip is counted
    paths = expand_paths(args.paths, recursive=args.recursive, exclude=out, recursive_option="--recursive")
    where = args.paths[0] + (f" (+{len(args.paths) - 1} more)" if len(args.paths) > 1 else "")
    report_skipped(paths, where, hint=None if args.recursive else "add --recursive")
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: exists and is a file; --out needs a folder (new or existing).")
    prepare_out(out)  # before the model loads: a read-only --out is said at once
    model = InspectionModel.load(args.model, device=args.device, weights=args.weights)
    if args.bit_depth:
        from engine.value_range import ValueRange

        model.value_range = ValueRange(bit_depth=args.bit_depth, float_range=model.value_range.float_range,
                                       source="option", detail=f"--bit-depth {args.bit_depth}")
    thr = "" if model.threshold is None else f"{model.threshold:.6g}"
    results = open_results(out, args.resume, thr, model.backbone.name)
    done = {r["file"] for r in results.rows}
    if args.resume:
        total = len(paths)
        paths = [p for p in paths if str(p) not in done]
        print(f"resuming {results.path}: {plural(len(results.rows), 'row')} already there, "
              f"{plural(total - len(paths), 'image')} of these paths done", file=sys.stderr)
        if results.torn_row_dropped:
            print("note: its last row had been cut off by the interruption and was removed; that image is "
                  "inspected again", file=sys.stderr)
        if results.rows and total == len(paths):
            print(f"warning: none of the {plural(len(results.rows), 'row')} already in {results.path} is for an "
                  f"image given now: the new rows are added to the same file. --resume expects the paths of the "
                  f"interrupted run (as given then); for other images, use another --out.", file=sys.stderr)
    rng, scale = model.color_range(), model.display_scale()  # one colour / outline rule (engine.overlay)
    print(f"inspecting {plural(len(paths), 'image')}\n  {model.describe()}", file=sys.stderr)
    if scale is None and not args.no_overlays:
        print(f"note: overlay {DisplayScale.per_image(np.zeros(1)).describe()}", file=sys.stderr)
    n = {"OK": 0, "NOK": 0, "n/a": 0, "error": 0, "overlay": 0}
    prog = TqdmProgress(not args.quiet)
    used_names = {Path(r["overlay"]).name for r in results.rows if r["overlay"]}
    try:
        for path, pred, img, err in model.predict_paths(paths, progress=prog):
            if err:
                append_row(results, [str(path), "", "", "error", thr, "", model.backbone.name, "", err], len(paths))
                n["error"] += 1
                print(f"{'' if args.quiet else chr(10)}error: {err}", file=sys.stderr)
                continue
            norm = "" if rng is None else f"{float(normalise(pred.score, rng[1], rng[0])):.4f}"
            name, problem = "", ""
            if not args.no_overlays:
                name = overlay_name(path, used_names)
                name, problem = write_overlay(out, name, lambda: render_overlay(img, pred.anomaly_map, scale, pred.score),
                                              results, len(paths))
                if problem:
                    n["overlay"] += 1
                    print(f"{'' if args.quiet else chr(10)}warning: {path}: {problem}", file=sys.stderr)
            append_row(results, [str(path), f"{pred.score:.6g}", norm, pred.verdict, thr, f"{pred.latency_ms:.1f}",
                                 model.backbone.name, name, problem], len(paths))
            n[pred.verdict] += 1
    finally:
        prog.close()
        close_results(results)
    earlier = f" (this run; {plural(len(results.rows) + results.written, 'row')} in the file in all)" \
        if results.rows else ""
    print(f"{n['OK']} OK, {n['NOK']} NOK, {n['error']} unreadable{earlier}; results in {results.path}")
    if n["overlay"]:
        print(f"{plural(n['overlay'], 'overlay')} could not be written (reason in the error column of "
              f"{results.path}); those images are inspected and have their rows", file=sys.stderr)
    from engine.calibration import weak_threshold_warning

    warn = weak_threshold_warning(model.calibration, args.model)
    if warn:
        print(f"warning: {warn}", file=sys.stderr)
    if n["n/a"]:
        print(f"{n['n/a']} scored without a verdict: the model has no threshold; set one with "
              f"`{cli_command()} calibrate --model {args.model} --good DIR [--defective DIR]`.")
    return 0 if n["error"] == 0 and n["overlay"] == 0 else 1


# ---------------------------------------------------------------------------------------------- writing
def prepare_out(out: Path) -> None:
    """Create ``out`` and check a file can be written in it.

    Raises:
        DatasetError: one line with the system's reason (read-only file system, no permission).
    """
    from cli.common import check_writable
    from engine.errors import DatasetError
    from engine.outputs import os_reason

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"{out}: cannot create the folder ({os_reason(exc)}). Choose --out in a folder you "
                           f"can write to.") from None
    check_writable(out / "predictions.csv")
    overlays = out / "overlays"
    if overlays.exists() and not overlays.is_dir():
        raise DatasetError(f"{overlays}: exists and is not a folder, so no overlay can be written there. Move it "
                           f"away or choose another --out.")


def open_results(out: Path, resume: bool, thr: str, backbone: str):
    """The :class:`engine.outputs.AppendOnlyCsv` of ``out/predictions.csv``: continued with ``resume``
    (when it exists; its rows must come from the same threshold and backbone), else new, an earlier
    run's CSV and overlays moved aside to ``previous-<time>/`` first (never overwritten).

    Raises:
        OutputWriteError: the earlier CSV cannot be continued, or the new one not written.
    """
    from engine.outputs import AppendOnlyCsv, OutputWriteError, os_reason

    csv_path = out / "predictions.csv"
    try:
        if resume and csv_path.exists():
            results = AppendOnlyCsv.resume(csv_path, COLUMNS)
            other = {(r["threshold"], r["backbone"]) for r in results.rows} - {(thr, backbone)}
            if other:
                results.close()
                t, b = sorted(other)[0]
                raise OutputWriteError(
                    f"{csv_path}: its rows were made with another model (threshold {t or 'none'}, backbone {b}; "
                    f"this model: threshold {thr or 'none'}, backbone {backbone}). Resume with the same --model, "
                    f"or run without --resume to start new results (the old ones are moved aside).")
            return results
        if resume:
            print(f"--resume: {csv_path} does not exist yet; starting it", file=sys.stderr)
        elif csv_path.exists():  # an earlier run's results: move them aside together, never overwrite
            prev = out / f"previous-{time.strftime('%Y%m%d-%H%M%S', time.localtime(csv_path.stat().st_mtime))}"
            prev.mkdir(exist_ok=True)
            for item in (csv_path, out / "overlays"):
                if item.exists():
                    shutil.move(str(item), str(prev / item.name))
            print(f"{out} held an earlier run's results: moved to {prev}", file=sys.stderr)
        return AppendOnlyCsv.create(csv_path, COLUMNS)
    except OSError as exc:
        raise OutputWriteError(f"{csv_path}: cannot write the results ({os_reason(exc)}). Choose --out in a "
                               f"folder you can write to.") from None


def _stopped(results, exc: OSError, todo: int) -> Exception:
    """The one-line error that ends a run whose results can no longer be written."""
    from engine.outputs import OutputWriteError, is_disk_full, os_reason

    saved = len(results.rows) + results.written
    left = todo - results.written
    fix = "Free some space" if is_disk_full(exc) else "Fix the folder's permissions"
    where = exc.filename or results.path
    return OutputWriteError(
        f"{where}: cannot write ({os_reason(exc)}); stopped with {plural(saved, 'complete row')} saved in "
        f"{results.path} (a row is written whole or not at all). {fix}, then run the same command with --resume "
        f"to inspect the other {plural(left, 'image')}.")


def append_row(results, row: list, todo: int) -> None:
    """Append one row to predictions.csv, or stop the run with :func:`_stopped`'s message."""
    try:
        results.append(row)
    except OSError as exc:
        raise _stopped(results, exc, todo) from None


def close_results(results) -> None:
    from engine.outputs import os_reason

    try:
        results.close()
    except OSError as exc:
        print(f"warning: {results.path}: the last rows may not have reached the disk ({os_reason(exc)})",
              file=sys.stderr)


def overlay_name(path: Path, used: set[str]) -> str:
    """``<folder>_<stem>.png`` for an input image, made safe and short (:func:`engine.outputs.short_stem`),
    with ``_2``, ``_3``... when ``used`` already holds it (same names from two places); added to ``used``."""
    from engine.outputs import short_stem

    stem = short_stem(f"{path.parent.name}_{path.stem}")
    name, k = f"{stem}.png", 1
    while name in used:
        k += 1
        name = f"{stem}_{k}.png"
    used.add(name)
    return name


def write_overlay(out: Path, name: str, render, results, todo: int) -> tuple[str, str]:
    """Render (``render()`` -> RGB) and write ``out/overlays/<name>``.

    Returns:
        ``("overlays/<name>", "")`` when written, ``("", reason)`` when this image's overlay could not be
        written (name refused, no permission, not encodable): the run goes on.

    Raises:
        OutputWriteError: the disk is full (nothing more can be written: the run stops, the CSV keeps every
            complete row).
    """
    import cv2

    from engine.outputs import is_disk_full, os_reason
    from engine.overlay import save_png

    try:
        save_png(out / "overlays" / name, render())
    except OSError as exc:
        if is_disk_full(exc):
            raise _stopped(results, exc, todo) from None
        return "", f"overlay not written ({os_reason(exc)}: overlays/{name})"
    except (ValueError, cv2.error) as exc:
        return "", f"overlay not written ({str(exc).strip().splitlines()[-1]}: overlays/{name})"
    return f"overlays/{name}", ""
