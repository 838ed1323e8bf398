"""``main.py calibrate``: choose a new threshold for an existing model file.

    python main.py calibrate --model part.dimodel --good new_good/                      # good-only
    python main.py calibrate --model part.dimodel --good good/ --defective bad/         # F1-max
    python main.py calibrate --model part.dimodel --good good/ --defective bad/ --target-precision 0.95
    python main.py calibrate --model part.dimodel --good train/good --defective test --recursive --masks ground_truth

Good images the model learned from are recognised by path and not scored again (their
cross-fitted scores are in the model file already). With ``--recursive``, a sub-folder named
``good`` under a ``--defective`` folder is skipped, so an MVTec-layout ``test`` folder can be given
whole; masks are looked up under ``--masks`` at the same relative path (``<stem>_mask.png`` or
``<stem>.png``), also below a folder named like the ``--defective`` folder. The model is written back to ``--model``
unless ``--out`` names another file. The method is in :mod:`engine.calibration`; the engine call is
:meth:`engine.model.InspectionModel.recalibrate`.

Wiring (main.py): ``add_calibrate_parser(subparsers)`` adds the command; ``run_calibrate(args)``
runs it and returns the exit code; it raises :class:`engine.errors.InspectError` subclasses for the
caller to print.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.argtypes import in_range

USAGE = """Choose a new OK/NOK threshold for an existing model file.

examples:
  python main.py calibrate --model part.dimodel --good new_good/                  # good images only
  python main.py calibrate --model part.dimodel --good good/ --defective bad/     # max F1 from labels
  python main.py calibrate --model part.dimodel --good good/ --defective bad/ --target-precision 0.95
  python main.py calibrate --model part.dimodel --good train/good --defective test --recursive --masks ground_truth

Good images the model learned from are recognised by path; their stored scores are used. With
--recursive, a sub-folder named 'good' under a --defective folder is skipped, so an MVTec-layout
'test' folder can be given whole. Masks (<stem>_mask.png or <stem>.png) are looked up under --masks
at the same relative path and set the pixel threshold (pixel F1; overlays outline at the image threshold). The model is written back to --model
unless --out names another file (the previous file is kept as <name>.bak)."""

MASK_SUFFIXES = ("_mask.png", ".png", "_mask.bmp", ".bmp")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``calibrate`` command to an ``argparse`` sub-parser set; returns its parser."""
    from engine.app_info import cli_command

    p = subparsers.add_parser("calibrate", help="choose a new OK/NOK threshold for a model file",
                              description=USAGE.replace("python main.py", cli_command()), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model file (.dimodel) to recalibrate")
    p.add_argument("--good", required=True, help="folder of good images")
    p.add_argument("--defective", nargs="+", metavar="DIR",
                   help="folder(s) of labelled defective images (enables few-label calibration)")
    p.add_argument("--masks", help="folder of defect masks (<stem>_mask.png or <stem>.png, same sub-folders "
                                   "as --defective): sets the pixel threshold by pixel F1")
    p.add_argument("--target-frr", type=in_range(0, 0.5, lo_open=True), default=None,
                   help="good-only: target false-reject rate, a fraction in (0, 0.5] (default: the model's, "
                        "usually 0.01)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--target-precision", type=in_range(0, 1, lo_open=True),
                   help="with --defective: lowest threshold reaching this precision, in (0, 1]")
    g.add_argument("--target-recall", type=in_range(0, 1, lo_open=True),
                   help="with --defective: highest threshold keeping this recall, in (0, 1]")
    p.add_argument("--method", choices=("auto", "conformal", "exptail", "lognormal"), default="auto",
                   help="good-only threshold: auto (conformal quantile when there are enough scores for the "
                        "target, i.e. n >= 99 for 1%%, else an exponential tail fit), conformal, exptail, lognormal "
                        "(default: %(default)s)")
    p.add_argument("--synthetic", type=in_range(0, 10000, int), default=16,
                   help="how many of the new good images get one synthetic defect of each kind; they join the "
                        "synthetic defects stored at fit time, against which the balanced rule places the "
                        "threshold (default 16; 0 = no new ones)")
    p.add_argument("--out", help="model file to write (default: overwrite --model)")
    p.add_argument("--recursive", action="store_true", help="also read sub-folders")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument("--weights", metavar="FILE", help="backbone weight file, if not where it was at fit time")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def list_defective(folders: list[str], recursive: bool) -> list[tuple[Path, Path]]:
    """``(image, its --defective folder)`` for every image; sub-folders named ``good`` are skipped."""
    from engine.images import list_images

    out = []
    for folder in folders:
        root = Path(folder)
        listing = list_images(root, recursive=recursive, recursive_option="--recursive")
        _report_skipped(listing, root, recursive)
        for p in listing:
            if any(part.lower() == "good" for part in p.relative_to(root).parts[:-1]):
                continue
            out.append((p, root))
    return out


def _report_skipped(listing, where, recursive: bool) -> None:
    from cli.common import report_skipped

    report_skipped(listing, where, hint=None if recursive else "add --recursive")


def find_masks(defective: list[tuple[Path, Path]], mask_root: Path) -> dict[Path, Path]:
    """Mask file of each ``(image, its folder)``: same relative folder under ``mask_root`` (or under
    ``mask_root / folder name``), name in :data:`MASK_SUFFIXES`. Images without a mask are left out."""
    out = {}
    for p, root in defective:
        rel = p.relative_to(root).parent
        for base in (mask_root / rel, mask_root / root.name / rel):
            hit = next((base / f"{p.stem}{suf}" for suf in MASK_SUFFIXES if (base / f"{p.stem}{suf}").is_file()), None)
            if hit is not None:
                out[p] = hit
                break
    return out


def run(args) -> int:
    """Run ``calibrate`` (module docstring); prints a summary on stdout, returns 0."""
    from engine.errors import DatasetError
    from engine.images import list_images
    from engine.model import InspectionModel
    from engine.modelfile import keep_backup
    from engine.progress import TqdmProgress

    if args.target_precision is not None or args.target_recall is not None:
        if not args.defective:
            raise DatasetError("--target-precision / --target-recall need labelled defects: add --defective DIR.")
    objective, target = "f1", None
    if args.target_precision is not None:
        objective, target = "precision", args.target_precision
    elif args.target_recall is not None:
        objective, target = "recall", args.target_recall
    for name in ("target_precision", "target_recall", "target_frr"):
        v = getattr(args, name)
        if v is not None and not 0 < v <= 1:
            raise DatasetError(f"--{name.replace('_', '-')} must be in (0, 1], got {v}.")
    good = list_images(args.good, recursive=args.recursive, recursive_option="--recursive")  # inputs before the model
    _report_skipped(good, args.good, args.recursive)
    labelled = list_defective(args.defective, args.recursive) if args.defective else []
    model = InspectionModel.load(args.model, device=args.device, weights=args.weights)
    bad = [p for p, _ in labelled]
    if args.defective and not bad:
        raise DatasetError(f"{', '.join(args.defective)}: no defective image outside 'good' sub-folders.")
    masks = find_masks(labelled, Path(args.masks)) if args.masks and bad else {}
    if args.masks and bad and not masks:
        raise DatasetError(f"{args.masks}: no mask found for the images of {', '.join(args.defective)} "
                           f"(looked for <stem>{'|'.join(MASK_SUFFIXES)} in the same sub-folders).")
    old = model.threshold
    prog = TqdmProgress(not args.quiet)
    c = model.recalibrate(good, bad, target_frr=args.target_frr, objective=objective, target=target,
                          masks=masks, method=args.method, synthetic=args.synthetic, progress=prog)
    prog.close()
    out = Path(args.out or args.model)
    backup = keep_backup(out)
    model.save(out)
    for s in c.get("skipped", []):
        print(f"skipped: {s}", file=sys.stderr)
    print(f"good images: {c['n_good_new']} new, {c['n_good_reused']} learned by the model (stored scores used); "
          f"{c['n_good']} good scores in all; {c['n_defective']} defective")
    if masks:
        print(f"masks found for {len(masks)} of {len(bad)} defective images")
    print(c["description"])
    print(f"threshold: {old if old is None else f'{old:.4g}'} -> {c['threshold']:.4g}")
    if c["chosen_by"] == "labels":
        print(f"good-only threshold would be {c['good_only']['threshold']:.4g} ({c['good_only']['method']})")
        if not c["target_met"]:
            print(f"warning: no threshold reaches precision {target}; the most precise one is used", file=sys.stderr)
    if "synthetic" in c:
        s = c["synthetic"]
        kinds = ", ".join(f"{k} {v:.0%}" for k, v in s["by_kind"].items())
        print(f"synthetic defects detected at this threshold: {s['detection_rate']:.0%} of {s['n']} ({kinds})")
    if c.get("pixel_threshold") is not None:
        print(f"pixel threshold {c['pixel_threshold']:.4g} ({c['pixel_method']}; overlays outline where the "
              f"map reaches the image threshold)")
    from engine.calibration import weak_threshold_warning

    warn = weak_threshold_warning(c, str(out))
    if warn:
        print(f"warning: {warn}", file=sys.stderr)
    frr = c.get("expected_frr")
    if c["chosen_by"] == "labels" and frr is not None and frr > 0.05:
        print(f"warning: at this threshold about {frr:.0%} of good parts are expected to be rejected (estimated from "
              f"the good calibration scores). If that is too many, use --target-precision, or add good images of "
              f"the kind that score high.", file=sys.stderr)
    print(f"backbone: {model.backbone.name} [{model.backbone.weights_source}]")
    print(f"model written to {out}" + (f" (previous version kept as {backup.name})" if backup else ""))
    return 0
