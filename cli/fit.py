"""``main.py fit``: learn normal from a folder of good images and write a model file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.common import (add_model_options, add_roi_option, build_model, check_writable, describe_unfitted, fit_kwargs, plural,
                        report_skipped)

from engine.app_info import cli_command


def add_parser(sub) -> argparse.ArgumentParser:
    f = sub.add_parser("fit", help="learn normal from good images")
    f.add_argument("--good", required=True, metavar="DIR", help="folder of good images")
    f.add_argument("--out", required=True, metavar="FILE", help="model file to write (.dimodel)")
    f.add_argument("--recursive", action="store_true", help="also read sub-folders")
    add_model_options(f)
    add_roi_option(f)
    return f


def run(args) -> int:
    from engine.errors import DatasetError
    from engine.images import list_images
    from engine.progress import TqdmProgress

    paths = list_images(args.good, recursive=args.recursive, recursive_option="--recursive")
    report_skipped(paths, args.good, hint="add --recursive")
    out = Path(args.out)
    if out.is_dir():
        raise DatasetError(f"{out}: is a folder; --out needs a model file name, e.g. {out / 'model.dimodel'}")
    check_writable(out)  # before minutes of work, not after
    model = build_model(args)
    print(f"fitting on {plural(len(paths), 'image')} from {args.good}\n  {describe_unfitted(model)}",
          file=sys.stderr)
    prog = TqdmProgress(not args.quiet)
    rep = model.fit(paths, progress=prog, **fit_kwargs(args))
    prog.close()
    save_model(model, out)
    for s in rep.skipped:
        print(f"skipped: {s}", file=sys.stderr)
    c = rep.calibration or {}
    held = f"{rep.n_holdout} held out" if rep.n_holdout else f"{rep.n_calibration} scored by cross-fitting"
    print(f"fitted {plural(rep.n_fit, 'image')} ({held} for calibration) in {rep.total_seconds:.1f} s "
          f"(features {rep.feature_seconds:.1f} s, scorer + calibration {rep.scorer_seconds:.1f} s)")
    if c:
        print(c.get("description") or f"threshold {c['threshold']:.4g}")
        lowered = c.get("method") == "balanced" and c.get("placement") in ("youden", "synthetic-recall", "capped")
        frr, frr_tail = c.get("expected_frr", 0), c.get("expected_frr_at_tail", 0)
        if lowered and frr > 2 * max(c.get("target_frr", 1), frr_tail):
            print(f"note: the expected false-reject rate is above the {c['target_frr']:.0%} target because the "
                  f"balanced rule lowered the threshold from {c['tail_threshold']:.4g} (the good scores alone: "
                  f"expected false-reject rate {frr_tail:.1%}, catching {c['synthetic_caught_at_tail']:.0%} of the "
                  f"synthetic defects) to catch more defects. "
                  f"Cross-fitted scores can overstate it for parts close to the training images; label a few "
                  f"images and run `{cli_command()} calibrate --model {out} --good DIR --defective DIR` to settle "
                  f"it, or use --threshold-rule tail.")
        syn = c.get("synthetic")
        if syn and syn.get("by_kind"):
            kinds = ", ".join(f"{k} {r:.0%}" for k, r in syn["by_kind"].items())
            print(f"synthetic defects caught at this threshold, by kind: {kinds}")
        if c.get("degenerate"):
            print(f"warning: every good image scored the same ({c['holdout_scores'][0]:.4g}): identical images, or a "
                  f"scorer that cannot tell them apart. The threshold sits just above that score, so any part "
                  f"that differs at all is flagged; fit with good images that show the normal variation.",
                  file=sys.stderr)
        n_cal = c.get("n_good", rep.n_calibration)
        if n_cal < 10:
            lo, hi = c.get("frr_ci95", [0.0, 1.0])
            advice = ("Cross-fitting (the default --folds 5) calibrates with every good image." if rep.n_holdout
                      else "Fit with 20 or more good images for a threshold to rely on.")
            print(f"warning: only {plural(n_cal, 'good image')} to calibrate with: the false-reject rate could be "
                  f"anywhere from {lo:.0%} to {hi:.0%}. {advice}", file=sys.stderr)
        from engine.calibration import weak_threshold_warning

        warn = weak_threshold_warning(c, str(out))
        if warn:
            print(f"warning: {warn}", file=sys.stderr)
    else:
        print(f"no calibration (--holdout 0): the model has no threshold; set one with `{cli_command()} calibrate`.")
    if model.value_range.detail:
        print(f"image values: {model.value_range.detail} (mapped to 0..255 the same way at predict; "
              f"--bit-depth overrides)")
    print(f"backbone: {model.backbone.name} [{model.backbone.weights_source}]")
    print(f"model written to {args.out}")
    return 0


def save_model(model, out: Path) -> None:
    """Keep the previous model as ``<out>.bak`` and write the new one atomically
    (:func:`engine.modelfile.save_model_file`).

    Raises:
        OutputWriteError: one line with the system's reason (disk full, read-only, no permission), and
            what happened to the previous model file (unchanged) or that none was written.
    """
    from engine.modelfile import keep_backup
    from engine.outputs import OutputWriteError, is_disk_full, os_reason

    existed = out.is_file()
    try:
        backup = keep_backup(out)
        if backup:
            print(f"{out} existed: the previous model is kept as {backup}", file=sys.stderr)
        model.save(out)
    except OSError as exc:
        kept = f"the previous model in {out} is unchanged" if existed else "no model file was written"
        fix = "Free some space" if is_disk_full(exc) else "Choose --out in a folder you can write to"
        raise OutputWriteError(f"{out}: cannot write the model file ({os_reason(exc)}); {kept}. {fix} and fit "
                               f"again.") from None
