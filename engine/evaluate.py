"""Evaluate on a category in MVTec AD layout: fit on train/good, score the test split, report.

Writes into ``report_dir``: ``metrics.json`` (all figures + backbone + timings), ``summary.md``
(a readable table) and ``overlays/*.png`` (image | anomaly map | ground truth) for a few good and
defective test images.

Pixel metrics (pixel AUROC, AUPRO at FPR 0.3) are computed on anomaly maps and masks resized so
the longer side is at most ``metric_size`` px (default 256; nearest-neighbour for masks, area for
maps), which keeps memory and time bounded on 2 cores; use ``metric_size=0`` for full resolution.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from . import metrics
from .datasets import Category, load_category
from .anomaly_map import shrink_map
from .calibration import weak_threshold_warning
from .images import read_mask
from .model import InspectionModel
from .overlay import normalise, panel, save_png
from .scorers import ProgressFn


def evaluate_category(category: str | Path | Category, model: InspectionModel, report_dir: str | Path | None = None,
                      progress: ProgressFn | None = None, n_examples: int = 6, metric_size: int = 256,
                      fit_kwargs: dict | None = None) -> dict:
    """Fit ``model`` on ``train/good`` and measure it on ``test`` (module docstring).

    ``fit_kwargs`` go to :meth:`InspectionModel.fit` (``target_frr``, ``folds``, ``method``...).

    Returns:
        dict: ``category``, ``backbone`` (describe()), ``scorer``, ``n_train``, ``n_test``,
        ``metrics`` (image_auroc, aupr, f1_max, f1_max_threshold, precision/recall/f1 at the
        calibrated threshold, pixel_auroc, aupro when masks exist), ``fit_seconds``,
        ``ms_per_image`` (mean inspection latency, batch share), ``skipped`` files, ``per_image``
        (file, label, score of every test image) and ``at_threshold`` (defective flagged / good
        rejected counts at the model's threshold, None without one).
    """
    cat = category if isinstance(category, Category) else load_category(category)
    fit = model.fit([s.path for s in cat.train], progress=progress, **(fit_kwargs or {}))
    labels, scores, masks, maps, lat, names, skipped = [], [], [], [], [], [], list(fit.skipped)
    examples: list[tuple] = []
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
        if cat.has_masks and (s.label == 0 or s.mask_path is not None):
            m = read_mask(s.mask_path, img.shape[:2]) if s.mask_path else np.zeros(img.shape[:2], bool)
            masks.append(shrink_map(m, metric_size, nearest=True))
            maps.append(shrink_map(pred.anomaly_map, metric_size))
        else:
            masks.append(None)
            maps.append(None)
        examples.append((s, img, pred))
    wall = time.perf_counter() - t0
    res = metrics.compute_all(np.asarray(labels), np.asarray(scores),
                              masks=masks if cat.has_masks else None, maps=maps if cat.has_masks else None,
                              threshold=model.threshold)
    lab, sc = np.asarray(labels), np.asarray(scores, np.float64)
    at_thr = None
    if model.threshold is not None:
        flagged = sc >= model.threshold
        at_thr = {"threshold": float(model.threshold), "n_defective": int((lab == 1).sum()),
                  "n_defective_flagged": int((flagged & (lab == 1)).sum()), "n_good": int((lab == 0).sum()),
                  "n_good_rejected": int((flagged & (lab == 0)).sum())}
    out = {
        "at_threshold": at_thr,
        "per_image": [{"file": nm, "label": int(y), "score": float(v)} for nm, y, v in zip(names, labels, scores)],
        "category": str(cat.root), "backbone": model.backbone.describe(), "scorer": model.scorer.get_state()[0]
        | {"name": model.scorer.name}, "input_size": model.pre.size, "resize_mode": model.pre.mode,
        "n_train": fit.n_fit, "n_holdout": fit.n_holdout, "n_calibration": fit.n_calibration, "n_test": len(labels), "metrics": res,
        "threshold": model.threshold, "fit_seconds": round(fit.total_seconds, 2),
        "fit_feature_seconds": round(fit.feature_seconds, 2), "fit_scorer_seconds": round(fit.scorer_seconds, 2),
        "ms_per_image": round(float(np.mean(lat)), 2), "inspect_wall_seconds": round(wall, 2),
        "memory_bank_mb": round(model.scorer.state_nbytes() / 2**20, 2), "skipped": skipped,
        "device": str(model.backbone.device), "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(), "metric_size": metric_size,
    }
    if report_dir is not None:
        write_report(Path(report_dir), out, examples, cat, model, n_examples, scores)
    return out


def threshold_lines(result: dict, model: InspectionModel) -> list[str]:
    """Markdown bullet lines: what the model's threshold does on the test split (counts), the
    synthetic-defect check, and a warning when it flags fewer than half of the defective images."""
    a, m = result.get("at_threshold"), result["metrics"]
    if not a:
        return ["- no threshold: verdicts are not judged (set one with `python main.py calibrate`)"]
    out = []
    if a["n_defective"]:
        out.append(f"- at this threshold on the test split: {a['n_defective_flagged']} of {a['n_defective']} defective "
                   f"images flagged (recall {a['n_defective_flagged'] / a['n_defective']:.1%}), "
                   f"{a['n_good_rejected']} of {a['n_good']} good images rejected")
    syn = (model.calibration or {}).get("synthetic")
    if syn:
        out.append(f"- synthetic-defect check at fit time: {syn['detection_rate']:.0%} of {syn['n']} detected")
    if a["n_defective"] and a["n_defective_flagged"] < 0.5 * a["n_defective"] \
            and (model.calibration or {}).get("chosen_by") != "labels":
        out.append(f"- **warning**: the good-only threshold flags only {a['n_defective_flagged']} of "
                   f"{a['n_defective']} defective test images; on this test split the F1-max threshold is "
                   f"{m['f1_max_threshold']:.4g} (F1 {m['f1_max']:.3f}). Label a few defective images and run "
                   f"`python main.py calibrate --model MODEL --good DIR --defective DIR` (docs/LABEL_EFFICIENCY.md).")
    return out


def write_report(report_dir: Path, result: dict, examples: list, cat: Category, model: InspectionModel,
                 n_examples: int, scores: list[float]) -> None:
    """metrics.json, summary.md and example overlays (module docstring)."""
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    rng = model.color_range()
    if rng is None:
        allv = np.concatenate([e[2].anomaly_map.ravel()[::97] for e in examples])
        lo, hi = np.percentile(allv, [1, 99.5])
        rng = (float(lo), float(lo + (hi - lo) / 2))
    good = [e for e in examples if e[0].label == 0]
    bad = [e for e in examples if e[0].label == 1]
    pick = good[: max(1, n_examples // 3)] + bad[:: max(1, len(bad) // max(1, n_examples - n_examples // 3))][
        : n_examples - n_examples // 3]
    written = []
    for s, img, pred in pick:
        mask = read_mask(s.mask_path, img.shape[:2]) if s.mask_path else (np.zeros(img.shape[:2], bool) if s.label == 0 else None)
        title = f"{s.defect_type} score={pred.score:.3g} {pred.verdict}"
        name = f"overlays/{s.defect_type}_{s.path.stem}.png"
        save_png(report_dir / name, panel(img, normalise(pred.anomaly_map, rng[1], rng[0]), mask, title))
        written.append(name)
    m = result["metrics"]
    rows = [(k, m[k]) for k in ("image_auroc", "aupr", "f1_max", "f1_max_threshold", "precision", "recall", "f1",
                                "pixel_auroc", "aupro") if k in m]
    md = [f"# Evaluation: {cat.name}", "",
          f"- data: `{result['category']}` ({result['n_train']} train good used for the model, "
          f"{result['n_calibration']} good calibration scores "
          f"({'held out' if result['n_holdout'] else 'cross-fitted'}), {result['n_test']} test images)",
          f"- backbone: **{result['backbone']['name']}** ({result['backbone']['weights_source']}), layers "
          f"{result['backbone']['layers']}, input {result['input_size']} px ({result['resize_mode']})",
          f"- scorer: {result['scorer']}",
          f"- threshold: {(model.calibration or {}).get('description') or result['threshold']}",
          *([f"- **warning**: {w}"] if (w := weak_threshold_warning(model.calibration)) else []),
          *threshold_lines(result, model),
          f"- fit: {result['fit_seconds']} s; inspection: {result['ms_per_image']} ms/image "
          f"({result['device']}, {result['torch_threads']} threads)", "",
          "| metric | value |", "|---|---|"] + [f"| {k} | {v:.4f} |" for k, v in rows]
    if result["skipped"]:
        md += ["", "Skipped files:"] + [f"- {x}" for x in result["skipped"]]
    md += ["", "Examples:", ""] + [f"![{w}]({w})" for w in written]
    (report_dir / "summary.md").write_text("\n".join(md) + "\n")
