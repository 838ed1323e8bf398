"""``main.py evaluate``: fit on train/good and measure on test (MVTec AD layout) -> report."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cli.common import add_model_options, add_roi_option, build_model, fit_kwargs, in_range, plural

from engine.app_info import cli_command


MODEL_FILE = "model.dimodel"
"""The fitted model's name in a report: :data:`engine.evaluate.MODEL_FILE`, repeated here so that
``evaluate -h`` does not import the engine (torch); tests/test_startup_imports.py checks they agree."""


def add_parser(sub) -> argparse.ArgumentParser:
    e = sub.add_parser("evaluate", help="fit on train/good and measure on test (MVTec AD layout)")
    e.add_argument("--data", required=True, metavar="DIR", help="a category folder, or a folder of categories")
    e.add_argument("--report", required=True, metavar="DIR",
                   help=f"folder for metrics.json, summary.md, overlays/ and the fitted model ({MODEL_FILE})")
    e.add_argument("--metric-size", type=in_range(0, 8192, int), default=256,
                   help="longer side (px) of maps and masks for the pixel metrics; 0 = full resolution "
                        "(default: %(default)s)")
    add_model_options(e)
    add_roi_option(e)
    return e


def print_eval(res: dict) -> None:
    from engine.evaluate import (CANDIDATES_CAVEAT, PRECISION_UNDEFINED, calibrate_how, candidate_rows,
                                 format_metrics, ground_truth_lines, threshold_is_weak)

    print(f"{res['name']}: {format_metrics(res['metrics'])}")
    for line in ground_truth_lines(res):
        print(f"warning: {line}", file=sys.stderr)
    print(f"backbone: {res['backbone']['name']} [{res['backbone']['weights_source']}]  input {res['input_size']} px  "
          f"scorer: {res['scorer']['name']}")
    print(f"fit {res['fit_seconds']} s ({plural(res['n_train'], 'image')})  inspection {res['ms_per_image']} "
          f"ms/image on {res['device']}")
    a = res.get("at_threshold")
    if a and a["n_defective"]:
        prec = PRECISION_UNDEFINED if a["precision"] is None else f"precision {a['precision']:.3f}"
        print(f"threshold {a['threshold']:.4g}: {a['n_defective_flagged']} of {a['n_defective']} defective flagged, "
              f"{a['n_good_rejected']} of {a['n_good']} good rejected; {prec}")
    elif not a:
        print("no threshold (fitted without calibration): verdicts are not judged")
    rows = candidate_rows(res)
    if rows:
        head = ("threshold rule", "threshold", "good rejected", "defective flagged", "precision", "note")
        widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
        print(f"candidate thresholds on this labelled test set ({CANDIDATES_CAVEAT}):")
        for r in (head, *rows):
            print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    if res.get("model_file"):
        print(f"model written to {res['model_file']}")
    if threshold_is_weak(res) or not a:
        what = (f"the threshold flags only {a['n_defective_flagged']} of {a['n_defective']} defective test images"
                if a else "the model has no threshold")
        extra = ("\n(it picks the F1-max threshold of those images; --target-recall R or --target-precision P "
                 f"choose by another rule, see `{cli_command()} calibrate -h`)" if res.get("calibrate_command") else "")
        print(f"warning: {what}. To choose a threshold from labelled images, run\n  {calibrate_how(res)}{extra}",
              file=sys.stderr)
    elif res.get("calibrate_command"):
        print(f"to choose the threshold from these labelled images instead: {res['calibrate_command']}")


def check_report_folder(report: Path) -> None:
    """Refuse a ``--report`` that is an existing file, before any work."""
    from engine.errors import DatasetError

    if report.exists() and not report.is_dir():
        raise DatasetError(f"{report}: exists and is a file; --report needs a folder (new or existing).")


def run(args) -> int:
    from engine.datasets import find_categories, load_category
    from engine.errors import DatasetError
    from engine.evaluate import evaluate_category
    from engine.progress import TqdmProgress

    check_report_folder(Path(args.report))
    cats = find_categories(args.data)
    if not cats:
        raise DatasetError(f"{args.data}: no category in MVTec AD layout (<category>/train/good) found.")
    if getattr(args, "roi", None) and len(cats) > 1:
        raise DatasetError(f"--roi {args.roi}: {args.data} holds {len(cats)} categories, and a region of interest is "
                           f"drawn for one part. Evaluate one category folder at a time with --roi.")
    summary = []
    for cat in cats:
        cat = load_category(cat)  # layout errors before the backbone is loaded
        if cat.skipped:
            print(f"note: {cat.root}: {cat.skipped_summary()}", file=sys.stderr)
        model = build_model(args)
        report = Path(args.report) / cat.name if len(cats) > 1 else Path(args.report)
        prog = TqdmProgress(not args.quiet)
        res = evaluate_category(cat, model, report_dir=report, progress=prog, metric_size=args.metric_size,
                                fit_kwargs=fit_kwargs(args))
        prog.close()
        print_eval(res)
        print(f"report: {report / 'summary.md'}")
        summary.append(res)
    if len(cats) > 1:
        (Path(args.report) / "all_metrics.json").write_text(json.dumps(summary, indent=2))
    return 0
