"""Labelling-free threshold rules on the shared categories: which default catches real defects.

For each category (MVTec AD layout under ``--data``):

1. *Scores* (slow, cached as JSON under ``--cache``): the default model (``InspectionModel.create()``:
   DINOv2 ViT-S/14 block 6 at 448 px when its weights are found, k-NN scorer) learns ``train/good``
   (at most ``--max-train`` images, random subset) exactly as ``main.py fit`` does (5-fold
   cross-fitting), with ``--synthetic`` cross-fitted images each given one synthetic defect of
   every kind (``engine/synthetic_defects.py``). Kept: the cross-fitted good scores, the synthetic
   scores and kinds, the scores the fold scorers give when they search only ``j`` of the other
   folds' coresets (``j = 1 .. K-1``: how scores fall as the bank grows), and the final model's
   score of every test image.
2. *Rules*: every threshold rule in :data:`engine.calibration.THRESHOLD_RULES` is applied to the
   cross-fitted and synthetic scores alone (no test image is used to place it); per category the
   table gives its recall on the real defects and its false-reject rate on the test goods, next to
   the F1-max oracle (the threshold that maximises F1 on the test set itself) and the share of
   the oracle's detections the rule keeps.
3. *Synthetic as a proxy*: how the synthetic defect scores of each kind compare with the real
   defects' (medians, and the real recall at the threshold catching half of each kind).

Writes ``docs/threshold_study.json`` and the tables between ``<!-- BEGIN name -->`` / ``<!-- END
name -->`` markers of ``docs/THRESHOLD.md``.

    nice -n 10 python benchmarks/threshold_study.py              # all shared categories
    python benchmarks/threshold_study.py --analysis-only         # tables again from the cache (seconds)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine import calibration as cal  # noqa: E402
from engine.datasets import load_category  # noqa: E402
from engine.metrics import f1_max, image_auroc  # noqa: E402
from label_efficiency import train_subset, write_doc  # noqa: E402  (a sibling script)

CATEGORIES = ("battery_weld/welding", "mvtec_ad/bottle", "mvtec_ad/grid_fragment", "visa/macaroni1",
              "magnetic_tile/magnetic_tile")


# ------------------------------------------------------------------ 1. scores (cached)
def compute_scores(root: Path, cache: Path, max_train: int, synthetic: int, seed: int = 0) -> dict:
    """Fit the default model on ``root``'s train/good as ``fit`` does and score its test split."""
    import torch

    from engine.model import InspectionModel, cross_fit_folds

    key = root.parent.name + "__" + root.name
    jpath = cache / f"{key}.json"
    if jpath.is_file():
        return json.loads(jpath.read_text())
    cat = load_category(root)
    train = train_subset(cat, max_train, seed)
    t0 = time.perf_counter()
    model = InspectionModel.create()
    feats, used, _ = model.extract_paths(train)
    t_feat = time.perf_counter() - t0
    rep = model.fit_features(feats, used, seed=seed, synthetic=synthetic)
    t_fit = time.perf_counter() - t0
    calib = model.calibration
    # scores when fold f is searched against j of the other folds' coresets (bank growth)
    k = 5
    folds = cross_fit_folds(len(used), k, np.random.default_rng(seed))
    sc = model.scorer
    parts = sc.fold_coresets(feats, folds)
    by_bank = {}
    for j in range(1, k):
        s_j = np.zeros(len(used))
        for f, hold in enumerate(folds):
            others = [parts[(f + 1 + i) % k] for i in range(j)]
            sub = type(sc)(**sc.get_state()[0])
            sub._set_bank(np.ascontiguousarray(np.concatenate(others)))
            ps = sub.score(feats[torch.from_numpy(hold)]).numpy()
            s_j[hold] = [model._image_score(p) for p in ps]
        by_bank[str(j)] = s_j.tolist()
    print(f"  {key}: fitted {rep.n_images} images in {t_fit:.0f} s (features {t_feat:.0f} s); scoring "
          f"{len(cat.test)} test images", flush=True)
    test = []
    for path, pred, _, err in model.predict_paths([s.path for s in cat.test]):
        if pred is not None:
            test.append(pred.score)
        else:
            test.append(float("nan"))
            print("   ", err)
    out = {"category": f"{root.parent.name}/{root.name}", "backbone": model.describe(),
           "n_train": len(used), "fit_seconds": t_fit, "feature_seconds": t_feat,
           "crossfit": calib["holdout_scores"], "crossfit_by_bank_folds": by_bank,
           "synthetic": calib["synthetic"]["scores"], "synthetic_kinds": calib["synthetic"]["kinds"],
           "test_scores": test, "test_labels": [s.label for s in cat.test],
           "test_types": [s.defect_type for s in cat.test], "fitted_threshold": model.threshold,
           "fitted_rule": calib.get("rule", calib.get("method"))}
    cache.mkdir(parents=True, exist_ok=True)
    jpath.write_text(json.dumps(out))
    return out


# ------------------------------------------------------------------ 2. rules
def oracle_f1(d: np.ndarray, g: np.ndarray) -> float:
    """F1-max threshold on the test set itself (lowest on a tie), via :func:`engine.metrics.f1_max`."""
    y = np.r_[np.ones(d.size), np.zeros(g.size)]
    return float(f1_max(y, np.r_[d, g])[1])


def evaluate_rules(data: dict) -> dict:
    """Every rule's threshold from cross-fitted + synthetic scores, and its effect on the test set."""
    lab = np.asarray(data["test_labels"])
    s = np.asarray(data["test_scores"], np.float64)
    ok = np.isfinite(s)
    d, g = s[(lab == 1) & ok], s[(lab == 0) & ok]
    t_or = oracle_f1(d, g)
    caught_or = d >= t_or
    rows = {}

    def row(t: float, extra: dict | None = None) -> dict:
        caught = d >= t
        return {"threshold": float(t), "recall": float(caught.mean()), "frr_test": float((g >= t).mean()),
                "n_frr": int((g >= t).sum()),
                "of_oracle": float((caught & caught_or).sum() / max(1, caught_or.sum())), **(extra or {})}

    cf, syn = np.asarray(data["crossfit"]), np.asarray(data["synthetic"])
    shift = data.get("score_shift")
    if shift is None:  # scores cached raw: the correction as fit makes it (engine.model), from all images
        bb = _by_bank(data)
        shift = cal.bank_growth_shift(bb[max(bb) - 1], bb[max(bb)], max(bb) + 1)["shift"] if len(bb) >= 2 else 0.0
    for name, rule, sh in (("tail (previous default)", "tail", 0.0), ("balanced (default)", "balanced", 0.0),
                           ("balanced + bank-growth shift", "balanced", shift)):
        res = cal.choose_threshold(cf, syn, rule=rule, shift=sh)
        rows[name] = row(res["threshold"], {"expected_frr": res.get("expected_frr"),
                                            "synthetic_caught": res.get("synthetic_caught"),
                                            "placement": res.get("placement"), "shift": sh})
    rows["F1-max oracle (test labels)"] = row(t_or)
    return {"auroc": float(image_auroc(np.r_[np.ones(d.size), np.zeros(g.size)], np.r_[d, g])),
            "n_defective": int(d.size), "n_good_test": int(g.size), "rows": rows,
            "real": {"median": float(np.median(d)), "min": float(d.min()), "max": float(d.max())},
            "good_test": {"median": float(np.median(g)), "max": float(g.max())},
            "crossfit": {"median": float(np.median(cf)), "max": float(cf.max())}}


def _by_bank(data: dict) -> dict[int, np.ndarray]:
    return {int(j): np.asarray(v) for j, v in data.get("crossfit_by_bank_folds", {}).items()}


def proxy(data: dict) -> dict:
    """Per synthetic kind: median score, and real recall at the threshold catching half of the kind."""
    lab = np.asarray(data["test_labels"])
    s = np.asarray(data["test_scores"], np.float64)
    d = s[(lab == 1) & np.isfinite(s)]
    syn, kinds = np.asarray(data["synthetic"]), np.asarray(data["synthetic_kinds"])
    out = {}
    for k in list(dict.fromkeys(kinds.tolist())) + ["all"]:
        v = syn if k == "all" else syn[kinds == k]
        out[k] = {"median": float(np.median(v)), "real_recall_at_median": float(np.mean(d >= np.median(v))),
                  "q25": float(np.quantile(v, 0.25))}
    out["real_median"] = float(np.median(d))
    return out


# ------------------------------------------------------------------ 3. report
def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.0f} %"


def tables(results: dict) -> dict[str, str]:
    rules = list(next(iter(results.values()))["rules"]["rows"])
    lines = ["| category | image AUROC | rule | threshold | recall (real defects) | false rejects (test goods) "
             "| share of the oracle's detections | synthetic caught | expected FRR (rule's own) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for cat, r in results.items():
        ev = r["rules"]
        for i, name in enumerate(rules):
            x = ev["rows"][name]
            first = f"{cat} ({ev['n_defective']} def. / {ev['n_good_test']} good)" if i == 0 else ""
            lines.append(f"| {first} | {ev['auroc']:.3f} | {name} | {x['threshold']:.4g} | {_pct(x['recall'])} "
                         f"| {_pct(x['frr_test'])} ({x['n_frr']}) | {_pct(x['of_oracle'])} "
                         f"| {_pct(x.get('synthetic_caught'))} | {_pct(x.get('expected_frr'))} |")
    kinds = None
    plines = []
    for cat, r in results.items():
        p = r["proxy"]
        if kinds is None:
            kinds = [k for k in p if k != "real_median"]
            plines = ["| category | real defects: median score | " + " | ".join(
                f"{k}: median (real recall there)" for k in kinds) + " |", "|---|---|" + "---|" * len(kinds)]
        plines.append(f"| {cat} | {p['real_median']:.3g} | " + " | ".join(
            f"{p[k]['median']:.3g} ({_pct(p[k]['real_recall_at_median'])})" for k in kinds) + " |")
    spread = ["| category | cross-fitted goods: median / max | test goods: median / max | real defects: "
              "min / median / max | bank growth: median score with 1 / 2 / 3 / 4 other folds |",
              "|---|---|---|---|---|"]
    for cat, r in results.items():
        ev, bb = r["rules"], r["by_bank_medians"]
        spread.append(f"| {cat} | {ev['crossfit']['median']:.3g} / {ev['crossfit']['max']:.3g} "
                      f"| {ev['good_test']['median']:.3g} / {ev['good_test']['max']:.3g} "
                      f"| {ev['real']['min']:.3g} / {ev['real']['median']:.3g} / {ev['real']['max']:.3g} "
                      f"| {' / '.join(f'{v:.3g}' for v in bb)} |")
    return {"rules": "\n".join(lines), "proxy": "\n".join(plines), "spread": "\n".join(spread)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="folder of the datasets")
    ap.add_argument("--categories", nargs="*", default=list(CATEGORIES), help="dataset/category names")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/dinoinspect_threshold"), help="score cache folder")
    ap.add_argument("--max-train", type=int, default=200, help="training images per category (random subset)")
    ap.add_argument("--synthetic", type=int, default=16, help="cross-fitted images given synthetic defects (default 16, as fit)")
    ap.add_argument("--analysis-only", action="store_true", help="only re-analyse cached scores")
    ap.add_argument("--doc", type=Path, default=REPO / "docs" / "THRESHOLD.md", help="page whose tables are rewritten")
    args = ap.parse_args(argv)
    results = {}
    for name in args.categories:
        root = args.data / name
        key = root.parent.name + "__" + root.name
        if args.analysis_only and not (args.cache / f"{key}.json").is_file():
            print(f"skip {name}: not in the cache")
            continue
        if not root.is_dir():
            print(f"skip {name}: {root} not found")
            continue
        print(name, flush=True)
        data = compute_scores(root, args.cache, args.max_train, args.synthetic)
        bb = _by_bank(data)
        results[name] = {"rules": evaluate_rules(data), "proxy": proxy(data), "backbone": data["backbone"],
                         "n_train": data["n_train"], "fit_seconds": data["fit_seconds"],
                         "by_bank_medians": [float(np.median(bb[j])) for j in sorted(bb)]}
    if not results:
        raise SystemExit("no category analysed")
    (REPO / "docs" / "threshold_study.json").write_text(json.dumps(results, indent=1))
    blocks = tables(results)
    for b in blocks.values():
        print(b, "\n")
    if args.doc.is_file():
        write_doc(args.doc, blocks)


if __name__ == "__main__":
    main()
