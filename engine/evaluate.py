"""Evaluate on a category in MVTec AD layout: fit on train/good, score the test split, report.

Writes into ``report_dir``: ``metrics.json`` (all figures + backbone + timings), ``summary.md``
(a readable table) and ``overlays/*.png`` (image | anomaly map | ground truth) for a few good and
defective test images.

Pixel metrics (pixel AUROC, AUPRO at FPR 0.3) are computed on anomaly maps and masks resized so
the longer side is at most ``metric_size`` px (default 256; nearest-neighbour for masks, area for
maps), which keeps memory and time bounded on 2 cores; use ``metric_size=0`` for full resolution.

Memory: the test images stream through inspection like ``predict``; per image only the score, the
label and the map + mask at ``metric_size`` are kept (float32 map, bool mask: the same values the
pixel metrics would get from full lists), plus the few example images chosen up front from the
labels (:func:`example_picks`), so peak memory no longer grows with full images x test-set size.

Ground truth (:func:`engine.images.read_mask` reads masks; :func:`ground_truth_lines` reports):

* non-binary masks (JPEG ringing, anti-aliasing) are binarised at mid-grey; their count is reported;
* a mask of another size with the same aspect ratio is resized nearest-neighbour and named; one
  with another aspect ratio stops the evaluation before the fit with a one-line error
  (:func:`engine.datasets.check_mask_sizes`);
* a defective image whose mask marks no pixel is *left out of both pixel metrics* and named. The
  MVTec AD reference code (and anomalib, which follows it) would keep such an image with every
  pixel counted as defect-free: then a detector that finds the real, unmarked defect is charged
  with false positives and AUPRO/pixel AUROC drop for a labelling gap, not for the detector. Left
  out, the figures describe only pixels whose truth is known; the count says how many were
  dropped (magnetic_tile has 4 such "uneven" masks);
* a defective image without any mask file is left out of the pixel metrics too, and counted.

Region of interest (``model.roi``): the model judges only the region, so the pixel metrics count
only its pixels (``valid`` of :func:`engine.metrics.compute_all`): ground truth outside the region is
neither a miss nor a true negative, and a defect region is the part of it inside. summary.md says so.
"""

from __future__ import annotations

import json
import platform
import shlex
import time
from pathlib import Path

import numpy as np
import torch

from . import metrics
from .app_info import cli_command
from .datasets import Category, Sample, check_mask_sizes, load_category
from .anomaly_map import shrink_map
from .calibration import weak_threshold_warning
from .images import read_mask
from .model import InspectionModel
from .overlay import report_panel, save_png
from .scorers import ProgressFn


MODEL_FILE = "model.dimodel"
"""Name of the fitted model file ``evaluate`` writes into its report folder."""

METRIC_NAMES = {"image_auroc": "image AUROC", "aupr": "AUPR", "f1_max": "F1-max",
                "f1_max_threshold": "F1-max threshold", "precision": "precision", "recall": "recall", "f1": "F1",
                "pixel_auroc": "pixel AUROC", "aupro": "AUPRO"}
"""Display names of the :func:`engine.metrics.compute_all` keys (AUPR = average precision)."""

PRECISION_UNDEFINED = "precision undefined (no image flagged)"
PRECISION_NOTE = ("precision is null: no test image scored at or above the threshold, so precision "
                  "(TP / (TP + FP)) is undefined")


def evaluate_category(category: str | Path | Category, model: InspectionModel, report_dir: str | Path | None = None,
                      progress: ProgressFn | None = None, n_examples: int = 6, metric_size: int = 256,
                      fit_kwargs: dict | None = None) -> dict:
    """Fit ``model`` on ``train/good`` and measure it on ``test`` (module docstring).

    ``fit_kwargs`` go to :meth:`InspectionModel.fit` (``target_frr``, ``folds``, ``method``...).
    With ``report_dir``, the fitted model is also written there as :data:`MODEL_FILE`.

    Returns:
        dict: ``category`` (folder), ``name`` (display name), ``backbone`` (describe()), ``scorer``,
        ``n_train``, ``n_test``, ``metrics`` (image_auroc, aupr, f1_max, f1_max_threshold,
        precision/recall/f1 at the calibrated threshold -- precision None when no test image is
        flagged --, pixel_auroc, aupro when masks exist), ``fit_seconds``, ``ms_per_image`` (mean
        inspection latency, batch share), ``skipped`` files, ``per_image`` (file, label, score of
        every test image), ``at_threshold`` (defective flagged / good rejected counts and
        precision at the model's threshold, None without one), ``threshold_candidates``
        (:func:`engine.metrics.threshold_candidates` on the test split), ``model_file`` (path or
        None) and ``calibrate_command`` (a runnable ``calibrate`` command line, or None when the
        test images are not sorted into good and defective folders), ``ground_truth``
        (``non_binary`` count of binarised masks, ``resized`` masks, ``empty`` masks of defective
        images, defective images with ``missing`` masks; module docstring).
    Raises:
        DatasetError: the category folder is not in MVTec AD layout, or a mask cannot be read or
            has another aspect ratio than its image (before the fit).
        ValueError: the test split lacks good or defective images (the metrics are undefined).
    """
    cat = category if isinstance(category, Category) else load_category(category)
    resized_masks = check_mask_sizes(cat) if cat.has_masks else []  # a mask that cannot fit stops us before the fit
    fit = model.fit([s.path for s in cat.train], progress=progress, **(fit_kwargs or {}))
    labels, scores, masks, maps, lat, names, skipped = [], [], [], [], [], [], list(fit.skipped)
    valid: list = []
    gt = {"non_binary": 0, "resized": resized_masks, "empty": [], "missing": []}
    pick = set(example_picks(cat.test, n_examples))
    examples: list[tuple] = []  # only the picked ones: memory stays bounded whatever the test set's size
    by_path = {s.path: s for s in cat.test}
    t0 = time.perf_counter()
    for path, pred, img, err in model.predict_paths([s.path for s in cat.test], progress=progress):
        if err:
            skipped.append(err)
            continue
        s = by_path[path]
        labels.append(s.label)
        scores.append(pred.score)
        lat.append(pred.latency_ms)
        names.append(f"{s.defect_type}/{path.name}")
        mask = shown = None
        if s.mask_path is not None:
            notes: dict = {}
            mask = shown = read_mask(s.mask_path, img.shape[:2], notes)
            gt["non_binary"] += notes["non_binary"]
            if s.label == 1 and not notes["n_defect"]:
                gt["empty"].append(str(s.mask_path))
                mask = None  # a defect with no marked pixel: left out of the pixel metrics (module docstring)
        elif s.label == 0:
            mask = shown = np.zeros(img.shape[:2], bool)
        elif cat.has_masks:
            gt["missing"].append(f"{s.defect_type}/{path.name}")
        region = model.region_pixels(img.shape[:2])  # with a region of interest only its pixels are judged
        if cat.has_masks and mask is not None:
            masks.append(shrink_map(mask, metric_size, nearest=True))
            maps.append(shrink_map(pred.anomaly_map, metric_size))
            valid.append(None if region is None else shrink_map(region, metric_size, nearest=True))
        else:
            masks.append(None)
            maps.append(None)
            valid.append(None)
        if s in pick:
            examples.append((s, img, pred, shown))
    wall = time.perf_counter() - t0
    res = metrics.compute_all(np.asarray(labels), np.asarray(scores),
                              masks=masks if cat.has_masks else None, maps=maps if cat.has_masks else None,
                              threshold=model.threshold, valid=valid if model.roi is not None else None)
    lab, sc = np.asarray(labels), np.asarray(scores, np.float64)
    at_thr = None
    if model.threshold is not None:
        flagged = sc >= model.threshold
        at_thr = {"threshold": float(model.threshold), "n_defective": int((lab == 1).sum()),
                  "n_defective_flagged": int((flagged & (lab == 1)).sum()), "n_good": int((lab == 0).sum()),
                  "n_good_rejected": int((flagged & (lab == 0)).sum()), "precision": res["precision"],
                  "chosen_by": (model.calibration or {}).get("chosen_by")}
        if res["precision"] is None:
            at_thr["note"] = PRECISION_NOTE
    model_file = None
    if report_dir is not None:
        model_file = Path(report_dir) / MODEL_FILE
        model_file.parent.mkdir(parents=True, exist_ok=True)
        model.save(model_file)
    out = {
        "name": cat.name, "model_file": None if model_file is None else str(model_file),
        "calibrate_command": None if model_file is None else calibrate_command(model_file, cat),
        "at_threshold": at_thr, "threshold_candidates": metrics.threshold_candidates(lab, sc),
        "per_image": [{"file": nm, "label": int(y), "score": float(v)} for nm, y, v in zip(names, labels, scores)],
        "category": str(cat.root), "backbone": model.backbone.describe(), "scorer": model.scorer.get_state()[0]
        | {"name": model.scorer.name}, "input_size": model.pre.size, "resize_mode": model.pre.mode,
        "n_train": fit.n_fit, "n_holdout": fit.n_holdout, "n_calibration": fit.n_calibration, "n_test": len(labels), "metrics": res,
        "threshold": model.threshold, "fit_seconds": round(fit.total_seconds, 2),
        "fit_feature_seconds": round(fit.feature_seconds, 2), "fit_scorer_seconds": round(fit.scorer_seconds, 2),
        "ms_per_image": round(float(np.mean(lat)), 2), "inspect_wall_seconds": round(wall, 2),
        "memory_bank_mb": round(model.scorer.state_nbytes() / 2**20, 2), "skipped": skipped,
        "device": str(model.backbone.device), "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(), "metric_size": metric_size, "ground_truth": gt,
        "roi": None if model.roi is None else model.roi.to_json(),
    }
    # entries of the category's folders not taken (not images, sub-folders...), with the reason
    out["inputs_skipped"] = [f"{p}: {why}" for p, why in cat.skipped]
    if report_dir is not None:
        write_report(Path(report_dir), out, examples, cat, model)
    return out


def calibrate_command(model_file: str | Path, cat: Category) -> str | None:
    """The ``calibrate`` command line that re-chooses ``model_file``'s threshold from the labelled
    test images of ``cat``; None when its good and defective test images share a folder (nothing
    to pass as ``--good`` / ``--defective``)."""
    good = sorted({str(s.path.parent) for s in cat.test if s.label == 0})
    bad = sorted({str(s.path.parent) for s in cat.test if s.label == 1})
    if len(good) != 1 or not bad or set(good) & set(bad):
        return None
    return (f"{cli_command()} calibrate --model {shlex.quote(str(model_file))} --good {shlex.quote(good[0])} "
            f"--defective {' '.join(map(shlex.quote, bad))}")


def format_metrics(m: dict) -> str:
    """``metrics`` as one line of ``name=value`` with the standard names (:data:`METRIC_NAMES`);
    an undefined precision reads :data:`PRECISION_UNDEFINED`."""
    parts = []
    for key, name in METRIC_NAMES.items():
        if key == "f1_max_threshold" or key not in m:
            continue
        parts.append(PRECISION_UNDEFINED if m[key] is None else f"{name}={m[key]:.4f}")
    return "  ".join(parts)


def _share(k: int, n: int) -> str:
    return f"{k} of {n} ({k / n:.1%})" if n else "0 of 0"


def candidate_rows(result: dict) -> list[tuple[str, str, str, str, str, str]]:
    """The threshold table of a result: ``(rule, threshold, good rejected, defective flagged,
    precision, note)`` per row, as text: the model's own threshold first (when it has one), then
    ``result["threshold_candidates"]``; budgets leading to the same threshold share one row."""
    rows, seen = [], {}
    a = result.get("at_threshold")
    if a:
        how = a.get("chosen_by") or ""
        rows.append([f"this model's threshold{f' ({how})' if how else ''}", f"{a['threshold']:.4g}",
                     _share(a["n_good_rejected"], a["n_good"]), _share(a["n_defective_flagged"], a["n_defective"]),
                     "undefined" if a["precision"] is None else f"{a['precision']:.3f}", ""])
    for c in result.get("threshold_candidates") or []:
        if c["max_frr"] is None:
            rule = "F1-max (best F1 on this test set)"
        else:
            rule = f"lowest threshold rejecting <= {c['max_frr']:.0%} of good"
            if c["threshold"] in seen:
                seen[c["threshold"]][0] += f", <= {c['max_frr']:.0%}"
                continue
        note = ""
        if c["threshold"] is None:
            note = "flags nothing: the highest test score is a good image's"
        elif c["flags_all_good"]:
            note = "rejects ALL good parts (flags every test image)" if c["recall"] == 1 else "rejects ALL good parts"
        row = [rule, "-" if c["threshold"] is None else f"{c['threshold']:.4g}",
               _share(c["n_good_rejected"], c["n_good"]), _share(c["n_defective_flagged"], c["n_defective"]),
               "undefined" if c["precision"] is None else f"{c['precision']:.3f}", note]
        rows.append(row)
        if c["max_frr"] is not None:
            seen[c["threshold"]] = row
    return [tuple(r) for r in rows]


CANDIDATES_CAVEAT = ("chosen on these test images themselves, so the figures are optimistic for new parts; "
                     "confirm on other labelled images")


def threshold_is_weak(result: dict) -> bool:
    """True when the model's good-only threshold flags fewer than half of the defective test images."""
    a = result.get("at_threshold")
    return bool(a and a["n_defective"] and a["n_defective_flagged"] < 0.5 * a["n_defective"]
                and a.get("chosen_by") != "labels")


def calibrate_how(result: dict) -> str:
    """How to set the threshold from labelled images: the runnable ``calibrate`` command of the
    result, or (test images not sorted into folders) the command with placeholders and what to do."""
    if result.get("calibrate_command"):
        return result["calibrate_command"]
    return (f"{cli_command()} calibrate --model {result.get('model_file') or 'MODEL'} --good GOOD_DIR "
            f"--defective DEFECTIVE_DIR  (after sorting a few good and defective images into two folders)")


def threshold_lines(result: dict, model: InspectionModel) -> list[str]:
    """Markdown lines for ``summary.md``: what the model's threshold does on the test split
    (counts, precision or why it is undefined), the synthetic-defect check, a warning when it
    flags fewer than half of the defective images, the candidate-threshold table
    (:func:`candidate_rows`) and the ``calibrate`` command that sets one."""
    a = result.get("at_threshold")
    how = f"`{calibrate_how(result)}`"
    out = []
    if not a:
        out.append(f"- no threshold (fitted without calibration, --holdout 0): verdicts are not judged; set one "
                   f"with {how}")
    else:
        if a["n_defective"]:
            prec = (PRECISION_UNDEFINED if a["precision"] is None else f"precision {a['precision']:.3f}")
            out.append(f"- at this threshold on the test split: {a['n_defective_flagged']} of {a['n_defective']} "
                       f"defective images flagged (recall {a['n_defective_flagged'] / a['n_defective']:.1%}), "
                       f"{a['n_good_rejected']} of {a['n_good']} good images rejected; {prec}")
        syn = (model.calibration or {}).get("synthetic")
        if syn:
            out.append(f"- synthetic-defect check at fit time: {syn['detection_rate']:.0%} of {syn['n']} detected")
        if threshold_is_weak(result):
            out.append(f"- **warning**: the good-only threshold flags only {a['n_defective_flagged']} of "
                       f"{a['n_defective']} defective test images; see the candidate thresholds below and how to "
                       f"set one (docs/LABEL_EFFICIENCY.md).")
    rows = candidate_rows(result)
    if rows:
        out += ["", f"Candidate thresholds on this labelled test set ({CANDIDATES_CAVEAT}):", "",
                "| threshold rule | threshold | good rejected | defective flagged (recall) | precision | note |",
                "|---|---|---|---|---|---|"] + ["| " + " | ".join(r) + " |" for r in rows]
        out += ["", f"To set a threshold from labelled images: {how}. It picks the F1-max threshold of the images "
                f"given; `--target-recall R` keeps recall R with the fewest false rejects, `--target-precision P` "
                f"gives the most recall at precision P. Re-check the result on images the threshold was not "
                f"chosen on."]
    return out


def describe_scorer(scorer: dict) -> str:
    """``{"name": "knn", "k": 1, ...}`` -> ``"knn (k 1, ...)"`` for the report."""
    params = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in scorer.items() if k != "name")
    return f"{scorer.get('name', '?')}" + (f" ({params})" if params else "")


def example_picks(test: list[Sample], n_examples: int) -> list[Sample]:
    """The test samples whose overlays the report shows, chosen from the labels alone (before any
    inspection, so only these images are kept in memory): the first ``max(1, n // 3)`` good images
    and the rest spread evenly over the defective ones, in test order."""
    good = [s for s in test if s.label == 0]
    bad = [s for s in test if s.label == 1]
    n_bad = n_examples - n_examples // 3
    return good[: max(1, n_examples // 3)] + bad[:: max(1, len(bad) // max(1, n_bad))][:n_bad]


def ground_truth_lines(result: dict) -> list[str]:
    """One line per ground-truth problem of an evaluation (``result["ground_truth"]``): masks that
    were not binary, masks resized to their image, defect images whose mask marks nothing or is
    missing; what each does to the pixel metrics. Empty when the masks were as the metrics assume."""
    gt = result.get("ground_truth") or {}
    out = []
    if gt.get("non_binary"):
        out.append(f"{gt['non_binary']} mask(s) were not binary (grey values such as JPEG ringing or anti-aliased "
                   f"edges): binarised at mid-grey (> 127 of 255; > half the range for 16-bit masks), so faint grey "
                   f"pixels count as good. Save masks as PNG with 0 and 255 only.")
    if gt.get("resized"):
        out.append(f"{len(gt['resized'])} mask(s) differ in size from their image (same aspect ratio): resized "
                   f"nearest-neighbour; first: {gt['resized'][0]}")
    if gt.get("empty"):
        out.append(f"{len(gt['empty'])} defective image(s) have a mask with no defect pixel: left out of pixel "
                   f"AUROC and AUPRO (their unmarked defect would count as good pixels); first: {gt['empty'][0]}")
    if gt.get("missing"):
        out.append(f"{len(gt['missing'])} defective image(s) have no mask in ground_truth/<defect>/: left out of "
                   f"the pixel metrics; first: {gt['missing'][0]}")
    return out


def write_report(report_dir: Path, result: dict, examples: list, cat: Category, model: InspectionModel) -> None:
    """metrics.json, summary.md and example overlays (module docstring).

    ``examples``: ``(sample, image, prediction, mask or None)`` of the images to draw, rendered with the
    model's display rule (:func:`engine.overlay.report_panel`)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    scale = model.display_scale()  # the colour / outline rule of the app and predict (engine.overlay)
    written = []
    for s, img, pred, mask in examples:
        title = f"{s.defect_type} score={pred.score:.3g} {pred.verdict}"
        name = f"overlays/{s.defect_type}_{s.path.stem}.png"
        save_png(report_dir / name, report_panel(img, pred.anomaly_map, scale, pred.score, mask, title))
        written.append(name)
    m = result["metrics"]
    rows = [(name + (" at the model's threshold" if k in ("precision", "recall", "f1") else ""),
             PRECISION_UNDEFINED.split(" ", 1)[1] if m[k] is None else
             f"{m[k]:.4g}" if k == "f1_max_threshold" else f"{m[k]:.4f}")
            for k, name in METRIC_NAMES.items() if k in m]
    remedy = ("Label a few defective images and set the threshold from them (the calibrate command below), or "
              "accept more false rejects with a higher --target-frr.")
    how_chosen = (model.calibration or {}).get("description")
    md = [f"# Evaluation: {cat.name}", "",
          f"- data: `{result['category']}` ({result['n_train']} train good used for the model, "
          f"{result['n_calibration']} good calibration scores "
          f"({'held out' if result['n_holdout'] else 'cross-fitted'}), {result['n_test']} test images)",
          f"- backbone: **{result['backbone']['name']}** ({result['backbone']['weights_source']}), layers "
          f"{result['backbone']['layers']}, input {result['input_size']} px ({result['resize_mode']})",
          f"- scorer: {describe_scorer(result['scorer'])}",
          *([f"- region of interest: {model.roi.describe()[4:]} polygon(s) drawn on a {model.roi.ref_width}x"
             f"{model.roi.ref_height} image; only its patches are learned and scored, and the pixel metrics count "
             f"only its pixels (ground truth outside the region is not judged)"] if model.roi is not None else []),
          *([f"- model file: `{result['model_file']}` (use it with `predict` and `calibrate`)"]
            if result.get("model_file") else []),
          f"- fit: {result['fit_seconds']} s; inspection: {result['ms_per_image']} ms/image "
          f"({result['device']}, {result['torch_threads']} threads)", "",
          "| metric | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows),
          "", "## Threshold", "",
          *([f"- {how_chosen}"] if how_chosen else []),
          *([f"- **warning**: {w}"] if (w := weak_threshold_warning(model.calibration, remedy=remedy)) else []),
          *threshold_lines(result, model)]
    if gt_lines := ground_truth_lines(result):
        md += ["", "## Ground truth", ""] + [f"- **warning**: {w}" for w in gt_lines]
    if result["skipped"]:
        md += ["", "Skipped files:"] + [f"- {x}" for x in result["skipped"]]
    if result.get("inputs_skipped"):
        md += ["", f"Not taken from the folders ({cat.skipped_summary()}):"] + [f"- {x}" for x in result["inputs_skipped"]]
    md += ["", "Examples:", ""] + [f"![{w}]({w})" for w in written]
    (report_dir / "summary.md").write_text("\n".join(md) + "\n")
