"""Fit and scoring speed of the k-NN memory bank on real features (issue 2's targets).

Measures on one category (default: mvtec_ad/bottle, the first 200 train/good images, the default
backbone `auto` at its default size) on this machine's CPU (or CUDA when present):

* fit = feature extraction + greedy coreset (10%), and the coreset alone against the naive greedy
  loop (estimated from its first 2,000 selections when ``--full-naive`` is not given);
* scoring per image on top of the backbone (k-NN search + anomaly map + image score) for the
  coreset bank, against brute-force search over the full bank.

Usage::

    python benchmarks/fit_speed.py [--data ../shared/data/mvtec_ad/bottle] [--n 200] [--out docs/FIT_SPEED.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.anomaly_map import anomaly_map, image_score  # noqa: E402
from engine.images import list_images, read_image  # noqa: E402
from engine.model import InspectionModel  # noqa: E402
from engine.scorers import KnnScorer  # noqa: E402
from engine.scorers.coreset import greedy_coreset, greedy_coreset_naive  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/mvtec_ad/bottle"))
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--backbone", default="auto", help="registry name or auto (default: auto, as main.py fit)")
    ap.add_argument("--size", type=int, default=None, help="input size (default: the backbone's)")
    ap.add_argument("--ratio", type=float, default=0.1)
    ap.add_argument("--full-naive", action="store_true", help="run the naive greedy coreset to the end")
    ap.add_argument("--out", default="docs/FIT_SPEED.md")
    ap.add_argument("--fit-only", action="store_true", help="only time `fit` with its defaults (the target), print it")
    args = ap.parse_args()

    train = list_images(Path(args.data) / "train" / "good")[: args.n]
    if args.fit_only:
        m = InspectionModel.create(args.backbone, "knn", size=args.size)
        load0 = os.getloadavg()[0]
        t = time.perf_counter()
        rep = m.fit(train)
        wall = time.perf_counter() - t
        print(f"fit {len(train)} images: {wall:.1f} s (features {rep.feature_seconds:.1f} s, synthetic "
              f"{rep.synthetic_seconds:.1f} s, rest {rep.scorer_seconds - rep.synthetic_seconds:.1f} s); target "
              f"{1.5 * rep.feature_seconds + 10:.1f} s; load average {load0:.1f} -> {os.getloadavg()[0]:.1f}")
        return 0
    test = list_images(Path(args.data) / "test", recursive=True)[:40]
    model = InspectionModel.create(args.backbone, "knn", size=args.size,
                                   scorer_params={"coreset_ratio": args.ratio})
    args.size = model.pre.size
    t0 = time.perf_counter()
    feats, used, _ = model.extract_paths(train)
    t_feat = time.perf_counter() - t0
    t1 = time.perf_counter()
    model.scorer.fit(feats)
    t_core = time.perf_counter() - t1
    bank = feats.reshape(-1, feats.shape[-1]).numpy()
    k = len(model.scorer.memory_bank)

    # naive greedy on the same projected features
    rng = np.random.default_rng(model.scorer.seed)
    proj = rng.standard_normal((bank.shape[1], model.scorer.proj_dim)).astype(np.float32)
    proj /= np.sqrt(model.scorer.proj_dim)
    xp = np.ascontiguousarray(bank @ proj)
    n_naive = k if args.full_naive else min(k, 2000)
    t2 = time.perf_counter()
    greedy_coreset_naive(xp, n_naive)
    t_naive = (time.perf_counter() - t2) * k / n_naive
    t3 = time.perf_counter()
    greedy_coreset(xp, k)
    t_pruned_only = time.perf_counter() - t3

    # scoring on top of the backbone
    imgs = [read_image(p) for p in test]
    test_feats = [model.extract([im]) for im in imgs]
    full = KnnScorer(coreset_ratio=1.0, max_bank=None, index="flat")
    full.fit(feats)

    def per_image_ms(scorer) -> float:
        scorer.score(test_feats[0])
        t = time.perf_counter()
        for f, im in zip(test_feats, imgs):
            ps = scorer.score(f)[0].numpy()
            anomaly_map(ps, model.pre, im.shape[:2])
            image_score(ps)
        return (time.perf_counter() - t) * 1000 / len(imgs)

    core_flat = KnnScorer(coreset_ratio=1.0, max_bank=None, index="flat")
    core_flat.fit(torch.from_numpy(model.scorer.memory_bank))
    ms_core, ms_core_flat, ms_full = per_image_ms(model.scorer), per_image_ms(core_flat), per_image_ms(full)
    t = time.perf_counter()
    for im in imgs[:20]:
        model.extract([im])
    ms_backbone = (time.perf_counter() - t) * 1000 / 20

    # what `main.py fit` does with its defaults: features once, 5-fold cross-fitted calibration
    # (5 fold scorers + the final one), synthetic-defect check
    full_model = InspectionModel.create(args.backbone, "knn", size=args.size,
                                        scorer_params={"coreset_ratio": args.ratio})
    t = time.perf_counter()
    rep = full_model.fit(train)
    t_main_fit = time.perf_counter() - t
    target = 1.5 * rep.feature_seconds + 10

    lines = [
        "# Fit and scoring speed (k-NN memory bank)", "",
        f"Command: `python benchmarks/fit_speed.py --data {args.data} --n {args.n} --backbone {args.backbone} "
        f"--size {args.size} "
        f"--ratio {args.ratio}`", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), device {model.backbone.device}; backbone {model.backbone.name} "
        f"layers {list(model.backbone.layers)} ({model.backbone.precision}, {model.backbone.weights_source}) "
        f"at {args.size} px; load average at start {os.getloadavg()[0]:.1f}; {len(used)} images -> {len(bank):,} patches x {bank.shape[1]} dims; "
        f"coreset {k:,} ({args.ratio:.0%}).", "",
        "| step | seconds |", "|---|---|",
        f"| features ({len(used)} images: decode + preprocess + backbone) | {t_feat:.1f} |",
        f"| coreset, pruned greedy (as in fit, incl. projection + clustering) | {t_core:.1f} |",
        f"| **fit total** (features + coreset) | **{t_feat + t_core:.1f}** |",
        f"| `InspectionModel.fit` with `main.py fit`'s defaults, same images (5-fold cross-fitted threshold + synthetic defects) "
        f"| {t_main_fit:.1f} |",
        f"| - of which features | {rep.feature_seconds:.1f} |",
        f"| - of which per-fold coresets, cross-fit scoring and anomaly maps, threshold "
        f"| {rep.scorer_seconds - rep.synthetic_seconds:.1f} |",
        f"| - of which synthetic defects ({len(rep.calibration['synthetic']['scores'])} images made and scored) "
        f"| {rep.synthetic_seconds:.1f} |",
        f"| target: at most 1.5 x features + 10 s | {target:.1f}: "
        f"{'met' if t_main_fit <= target else 'missed'} |",
        f"| coreset, pruned greedy on projected features only | {t_pruned_only:.1f} |",
        f"| coreset, naive greedy ({'measured' if args.full_naive else f'extrapolated from {n_naive:,} steps'}) "
        f"| {t_naive:.1f} |", "",
        "| per image (batch 1) | ms |", "|---|---|",
        f"| backbone forward incl. preprocess | {ms_backbone:.1f} |",
        f"| scoring + anomaly map, coreset bank ({k:,}), default IVF search (nprobe "
        f"{model.scorer.nprobe}) | {ms_core:.1f} |",
        f"| scoring + anomaly map, coreset bank ({k:,}), exact brute-force search | {ms_core_flat:.1f} |",
        f"| scoring + anomaly map, exact brute-force search over the full bank ({len(bank):,}) | {ms_full:.1f} |",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
