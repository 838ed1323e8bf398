"""Does the union of per-fold coresets (what ``fit`` now builds) score like one coreset of all patches?

``fit`` cross-fits with :meth:`engine.scorers.knn.KnnScorer.cross_fit`: one greedy coreset per fold,
the final memory bank their union. This compares, per category, the final model's test scores and
image AUROC with that bank against a bank from :meth:`KnnScorer.fit` (one coreset of all patches),
on the same features (default backbone, at most ``--max-train`` training images), and the time of
the selections.

    python benchmarks/cross_fit_coreset.py            # writes docs/CROSS_FIT_CORESET.md
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.datasets import load_category  # noqa: E402
from engine.metrics import image_auroc  # noqa: E402
from engine.model import InspectionModel, cross_fit_folds  # noqa: E402
from label_efficiency import train_subset  # noqa: E402  (a sibling script)
from threshold_study import CATEGORIES  # noqa: E402


def compare(root: Path, max_train: int) -> dict:
    cat = load_category(root)
    m = InspectionModel.create()
    feats, used, _ = m.extract_paths(train_subset(cat, max_train))
    test, _, _ = m.extract_paths([s.path for s in cat.test])
    labels = np.array([s.label for s in cat.test])

    def scores(scorer) -> np.ndarray:
        ps = torch.cat([scorer.score(test[i:i + 16]) for i in range(0, len(test), 16)]).numpy()
        return np.array([m._image_score(p) for p in ps])

    t = time.perf_counter()
    m.scorer.fit(feats)
    t_single = time.perf_counter() - t
    single = scores(m.scorer)
    other = InspectionModel.create(scorer_params={"seed": 1})  # the same selection from another start
    other.scorer.fit(feats)
    reseeded = scores(other.scorer)
    union_model = InspectionModel.create()
    t = time.perf_counter()
    for _ in union_model.scorer.cross_fit(feats, cross_fit_folds(len(used), 5, np.random.default_rng(0))):
        pass
    t_union = time.perf_counter() - t
    union = scores(union_model.scorer)
    return {"name": f"{root.parent.name}/{root.name}", "n_train": len(used), "n_test": len(test),
            "bank": (len(m.scorer.memory_bank), len(union_model.scorer.memory_bank)),
            "auroc": (image_auroc(labels, single), image_auroc(labels, union), image_auroc(labels, reseeded)),
            "median_rel_diff": float(np.median(np.abs(union - single) / np.abs(single))),
            "max_rel_diff": float(np.max(np.abs(union - single) / np.abs(single))),
            "seconds": (t_single, t_union), "backbone": m.backbone.name}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="folder of the datasets")
    ap.add_argument("--categories", nargs="*", default=list(CATEGORIES), help="dataset/category names")
    ap.add_argument("--max-train", type=int, default=200, help="training images per category (random subset)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "CROSS_FIT_CORESET.md", help="report file")
    args = ap.parse_args(argv)
    load0 = os.getloadavg()[0]
    rows = [compare(args.data / c, args.max_train) for c in args.categories if (args.data / c).is_dir()]
    if not rows:
        raise SystemExit(f"no category found under {args.data}")
    lines = ["# One coreset of all patches vs the union of per-fold coresets", "",
             f"Command: `python benchmarks/cross_fit_coreset.py`; backbone {rows[0]['backbone']} (the default), "
             f"k-NN scorer with a 10 % coreset, at most {args.max_train} training images per category; "
             f"2-core CPU, load average {load0:.1f} at start, {os.getloadavg()[0]:.1f} at the end.", "",
             "`fit` builds the final memory bank as the union of the 5 folds' coresets (each fold's patches "
             "get their own greedy coreset, `KnnScorer.cross_fit`); before, it selected one coreset of all "
             "patches after 5 more selections for the fold scorers. Same features, same test images; a single coreset started from another random seed shows how much "
             "the selection alone moves the figures:", "",
             "| category | train / test images | bank size: one coreset / union | image AUROC: one coreset / union "
             "/ one coreset, seed 1 | test scores union vs one: median / max relative difference "
             "| selection seconds: one coreset / all 5 folds |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['n_train']} / {r['n_test']} | {r['bank'][0]:,} / {r['bank'][1]:,} "
                     f"| {r['auroc'][0]:.4f} / {r['auroc'][1]:.4f} / {r['auroc'][2]:.4f} | {r['median_rel_diff']:.2%} / "
                     f"{r['max_rel_diff']:.2%} | {r['seconds'][0]:.1f} / {r['seconds'][1]:.1f} |")
    d_union = [r["auroc"][1] - r["auroc"][0] for r in rows]
    d_seed = [r["auroc"][2] - r["auroc"][0] for r in rows]
    worst = int(np.argmin(d_union))
    lines += ["", f"Union minus one coreset, image AUROC: {min(d_union):+.4f} to {max(d_union):+.4f} (lowest on "
              f"{rows[worst]['name']}); another seed of one coreset minus the first: {min(d_seed):+.4f} to "
              f"{max(d_seed):+.4f}. Selection time, all categories: {sum(r['seconds'][0] for r in rows):.1f} s for "
              f"one coreset each against {sum(r['seconds'][1] for r in rows):.1f} s for the five per-fold ones, "
              f"which also give the cross-fit scorers (before: five more selections on 80 % of the patches)."]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
