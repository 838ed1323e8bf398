"""Label-efficiency study of threshold calibration, and the good-only false-reject check.

For each shared category (MVTec AD layout under ``--data``):

1. *Scores* (slow, cached under ``--cache``): an ``efficientnet_lite0`` + k-NN model is fitted on
   ``train/good`` (at most ``--max-train`` images, random subset) with the product's default
   calibration (5-fold cross-fitting, synthetic defects); every test image is scored by the final
   model. For comparison a second model is fitted the old way (10 % hold-out, conformal).
2. *Good-only*: the false-reject rate measured on ``test/good`` at the good-only threshold of each
   method, against its target (1 %), with Clopper-Pearson 95 % intervals; recall at that threshold
   and the synthetic-defect detection rate beside it. A small-n study re-draws n of the
   cross-fitted scores to show how conformal and log-normal thresholds behave for 10-100 images.
3. *Label efficiency*: the test split is halved (stratified) into a labelling pool and a held-out
   evaluation half. ``m`` labelled images are drawn from the pool (0 = good-only, then 1, 2, 5, 10,
   20, all of the pool) and the threshold is chosen as ``InspectionModel.recalibrate`` does
   (F1-max on the labels placed nearest the good-only threshold, the cross-fitted good scores as
   extra goods; good-only while no defect is drawn); the plain F1-max threshold is kept beside it. Precision, recall and F1 on the evaluation half are averaged over
   ``--draws`` random splits and draws.
4. *Pixel threshold*: pixel F1 on the evaluation half's masks at contour thresholds chosen on the
   pool half (from its good maps only, or from its masks).

Writes ``docs/label_efficiency.png``, ``docs/label_efficiency.json`` and the tables between the
``<!-- BEGIN name -->`` / ``<!-- END name -->`` markers of ``docs/LABEL_EFFICIENCY.md``.

    nice -n 10 python benchmarks/label_efficiency.py                 # all categories (~40 min on 2 cores)
    python benchmarks/label_efficiency.py --analysis-only            # re-run 2-4 from the cache (seconds)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine import calibration as cal  # noqa: E402
from engine.anomaly_map import image_score  # noqa: E402
from engine.datasets import load_category  # noqa: E402
from engine.images import read_image, read_mask  # noqa: E402
from engine.metrics import f1_max, precision_recall_f1_at  # noqa: E402

CATEGORIES = ("mvtec_ad/bottle", "mvtec_ad/grid_fragment", "visa/macaroni1", "magnetic_tile/magnetic_tile",
              "battery_weld/welding")
LABEL_COUNTS = (0, 1, 2, 5, 10, 20, "all")
MAP_SIDE = 128  # maps and masks are stored at this side for the pixel study


# ------------------------------------------------------------------ 1. scores (cached)
def _small(a: np.ndarray, nearest: bool) -> np.ndarray:
    interp = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
    return cv2.resize(a.astype(np.uint8 if nearest else np.float32), (MAP_SIDE, MAP_SIDE), interpolation=interp)


def train_subset(cat, max_train: int, seed: int = 0) -> list[Path]:
    """``cat``'s train/good paths, or a seeded random subset of ``max_train`` of them (sorted)."""
    train = [s.path for s in cat.train]
    if len(train) > max_train:
        train = sorted(np.random.default_rng(seed).choice(train, max_train, replace=False).tolist())
    return train


def compute_scores(root: Path, cache: Path, max_train: int, seed: int = 0) -> dict:
    """Fit both models on ``root``'s train/good and score its test split; cached as JSON + npz."""
    from engine.model import InspectionModel

    key = root.parent.name + "__" + root.name
    jpath, npath = cache / f"{key}.json", cache / f"{key}.npz"
    if jpath.is_file() and npath.is_file():
        out = json.loads(jpath.read_text())
        out.update({k: v for k, v in np.load(npath).items()})
        return out
    cat = load_category(root)
    train = train_subset(cat, max_train, seed)
    t0 = time.perf_counter()
    model = InspectionModel.create("efficientnet_lite0", "knn", device="cpu")
    rep = model.fit(train, seed=seed, synthetic=32)
    t_fit = time.perf_counter() - t0
    legacy = InspectionModel.create("efficientnet_lite0", "knn", device="cpu")
    legacy.fit(train, seed=seed, folds=0, holdout_fraction=0.1, method="conformal", synthetic=0)
    print(f"  fitted ({rep.n_fit} images, {t_fit:.0f} s incl. cross-fit); scoring {len(cat.test)} test images",
          flush=True)
    scores, legacy_scores, labels, types, maps, masks, has_mask = [], [], [], [], [], [], []
    bs = model.batch_size
    for b in range(0, len(cat.test), bs):
        samples = cat.test[b:b + bs]
        imgs = [read_image(s.path) for s in samples]
        feats = model.extract(imgs)
        patch = model.scorer.score(feats).numpy()
        lpatch = legacy.scorer.score(feats).numpy()
        for s, img, ps, lps in zip(samples, imgs, patch, lpatch):
            from engine.anomaly_map import anomaly_map

            scores.append(image_score(ps, model.score_mode, model.top_fraction))
            legacy_scores.append(image_score(lps, legacy.score_mode, legacy.top_fraction))
            labels.append(s.label)
            types.append(s.defect_type)
            maps.append(_small(anomaly_map(ps, model.pre, img.shape[:2], model.sigma), False).astype(np.float16))
            m = read_mask(s.mask_path, img.shape[:2]) if s.mask_path else np.zeros(img.shape[:2], bool)
            masks.append(_small(m, True).astype(bool))
            has_mask.append(bool(s.mask_path) or s.label == 0)
    c = model.calibration
    meta = {"category": str(root), "name": root.name, "n_train_total": len(cat.train), "n_train": len(train),
            "fit_seconds": round(t_fit, 1), "calibration": {k: v for k, v in c.items() if k != "description"},
            "description": c["description"], "legacy_calibration": legacy.calibration, "types": types}
    arrays = {"test_scores": np.asarray(scores), "legacy_scores": np.asarray(legacy_scores),
              "labels": np.asarray(labels, np.int8), "maps": np.stack(maps), "masks": np.stack(masks),
              "has_mask": np.asarray(has_mask)}
    cache.mkdir(parents=True, exist_ok=True)
    jpath.write_text(json.dumps(meta))
    np.savez_compressed(npath, **arrays)
    meta.update(arrays)
    return meta


# ------------------------------------------------------------------ 2. good-only
def _rate(k: int, n: int) -> dict:
    lo, hi = cal.clopper_pearson(k, n) if n else (float("nan"), float("nan"))
    return {"k": int(k), "n": int(n), "rate": k / n if n else float("nan"), "ci95": [lo, hi]}


def good_only_study(d: dict, target: float = 0.01) -> dict:
    """Measured test/good false-reject rate per good-only method, plus recall at that threshold."""
    y, s, ls = d["labels"].astype(bool), d["test_scores"], d["legacy_scores"]
    cf = np.asarray(d["calibration"]["holdout_scores"])
    hold = np.asarray(d["legacy_calibration"]["holdout_scores"])
    rows = {}
    variants = {"cross-fit auto (default)": (cf, "auto", s), "cross-fit conformal": (cf, "conformal", s),
                "cross-fit exp. tail": (cf, "exptail", s), "cross-fit log-normal": (cf, "lognormal", s),
                "10% hold-out conformal (old)": (hold, "conformal", ls),
                "10% hold-out auto": (hold, "auto", ls)}
    for name, (cs, method, sc) in variants.items():
        c = cal.good_only_threshold(cs, target, method)
        t = c["threshold"]
        rows[name] = {"method": c["method"], "n_cal": int(cs.size), "threshold": t, "expected_frr": c["expected_frr"],
                      "frr_ci95": c["frr_ci95"], "test_frr": _rate(int(np.sum(sc[~y] >= t)), int((~y).sum())),
                      "recall": float(np.mean(sc[y] >= t)) if y.any() else float("nan")}
    syn = d["calibration"].get("synthetic")
    if syn:
        t = rows["cross-fit auto (default)"]["threshold"]
        rows["cross-fit auto (default)"]["synthetic_detection"] = float(np.mean(np.asarray(syn["scores"]) >= t))
    return rows


def small_n_study(d: dict, ns=(10, 20, 30, 50, 100), target: float = 0.01, draws: int = 400, seed: int = 0) -> dict:
    """Re-draw n cross-fitted scores as the calibration set; FRR on the remaining cross-fitted
    scores (same distribution: the estimator alone) and on test/good (train->test shift included)."""
    rng = np.random.default_rng(seed)
    cf = np.asarray(d["calibration"]["holdout_scores"])
    y, s = d["labels"].astype(bool), d["test_scores"]
    tg = s[~y]
    out = {}
    for n in ns:
        if n >= cf.size - 10:
            continue
        res = {m: {"rest": [], "test": []} for m in ("conformal", "exptail", "lognormal")}
        for _ in range(draws):
            idx = rng.permutation(cf.size)
            cal_s, rest = cf[idx[:n]], cf[idx[n:]]
            for m in res:
                t = cal.good_only_threshold(cal_s, target, m)["threshold"]
                res[m]["rest"].append(np.mean(rest >= t))
                res[m]["test"].append(np.mean(tg >= t))
        out[n] = {m: {k: float(np.mean(v)) for k, v in r.items()} for m, r in res.items()}
    return out


def synthetic_by_kind(d: dict, target: float = 0.01) -> dict | None:
    """Synthetic-defect detection rate per kind at the default good-only threshold."""
    syn = d["calibration"].get("synthetic")
    if not syn:
        return None
    t = cal.good_only_threshold(d["calibration"]["holdout_scores"], target)["threshold"]
    s, k = np.asarray(syn["scores"]), np.asarray(syn["kinds"])
    return {str(kind): float(np.mean(s[k == kind] >= t)) for kind in np.unique(k)} | {"n": int(s.size)}


# ------------------------------------------------------------------ 3. label efficiency
def choose_threshold(cf: np.ndarray, lab_scores: np.ndarray, lab_y: np.ndarray, target_frr: float = 0.01,
                     use_prior: bool = True) -> float:
    """What ``recalibrate`` does with these labels (module docstring, step 3); ``use_prior=False``
    gives the plain F1-max threshold (a score value) for comparison."""
    good, bad = lab_scores[~lab_y], lab_scores[lab_y]
    prior = cal.good_only_threshold(np.r_[cf, good], target_frr)["threshold"]
    if bad.size == 0:
        return prior
    return cal.few_label_threshold(bad, good, cf, prior=prior if use_prior else None)["threshold"]


def label_study(d: dict, draws: int, seed: int = 0, counts=LABEL_COUNTS) -> dict:
    rng = np.random.default_rng(seed)
    y, s = d["labels"].astype(bool), d["test_scores"]
    cf = np.asarray(d["calibration"]["holdout_scores"])
    res = {str(m): {"precision": [], "recall": [], "f1": [], "f1_plain": [], "m": []} for m in counts}
    oracle = []
    for _ in range(draws):
        pool, ev = [], []
        for cls in (False, True):
            idx = rng.permutation(np.flatnonzero(y == cls))
            half = (idx.size + int(rng.integers(0, 2))) // 2
            pool.extend(idx[:half])
            ev.extend(idx[half:])
        pool, ev = np.asarray(pool), np.asarray(ev)
        if y[ev].all() or not y[ev].any():
            continue
        oracle.append(f1_max(y[ev], s[ev])[0])
        order = rng.permutation(pool)
        for m in counts:
            k = order.size if m == "all" else min(int(m), order.size)
            lab = order[:k]
            t = choose_threshold(cf, s[lab], y[lab])
            r = precision_recall_f1_at(y[ev], s[ev], t)
            t2 = choose_threshold(cf, s[lab], y[lab], use_prior=False)
            for key in ("precision", "recall", "f1"):
                res[str(m)][key].append(r[key])
            res[str(m)]["f1_plain"].append(precision_recall_f1_at(y[ev], s[ev], t2)["f1"])
            res[str(m)]["m"].append(k)
    summary = {}
    for m, r in res.items():
        summary[m] = {k: float(np.mean(v)) for k, v in r.items()}
        summary[m].update({f"{k}_std": float(np.std(v)) for k, v in r.items() if k in ("precision", "recall", "f1")})
    f_all = summary["all"]["f1"]
    need = next((m for m in map(str, counts) if summary[m]["f1"] >= 0.95 * f_all), "all")
    return {"by_count": summary, "oracle_f1": float(np.mean(oracle)), "labels_for_95pct": need,
            "n_draws": len(oracle), "pool_size": int(round(np.mean([v for v in res["all"]["m"]])))}


# ------------------------------------------------------------------ 4. pixel threshold
def pixel_study(d: dict, draws: int = 10, seed: int = 0) -> dict | None:
    """Pixel F1 on the evaluation half's masks at contour thresholds chosen on the pool half: from the
    pool's *good* maps only (the product rule, 99.5 % pixel quantile; and the per-image-maximum
    rule it replaced), from the pool's masks (pixel F1-max), and at the image threshold."""
    y, hm = d["labels"].astype(bool), d["has_mask"].astype(bool)
    if not (hm & y).any():
        return None
    maps, masks = d["maps"].astype(np.float32), d["masks"]
    rng = np.random.default_rng(seed)
    names = ("good pixels, 99.5% quantile (default)", "good map maxima, 99% quantile", "pool masks, pixel F1-max",
             "image threshold")
    got = {k: [] for k in names}
    idx_all = np.flatnonzero(hm)
    for _ in range(draws):
        idx = rng.permutation(idx_all)
        pool, ev = idx[: idx.size // 2], idx[idx.size // 2:]
        pool_good = pool[~y[pool]]
        if not masks[pool].any() or not masks[ev].any() or pool_good.size == 0:
            continue
        ts = [cal.pixel_threshold_from_good(maps[pool_good])["pixel_threshold"],
              cal.good_only_threshold(maps[pool_good].max(axis=(1, 2)), 0.01)["threshold"],
              cal.pixel_threshold_from_masks(maps[pool], masks[pool])["pixel_threshold"],
              d["calibration"]["threshold"]]
        v, lab = maps[ev].ravel(), masks[ev].ravel()
        for name, t in zip(names, ts):
            got[name].append(precision_recall_f1_at(lab, v, t)["f1"])
    v, lab = maps[idx_all].ravel(), masks[idx_all].ravel()
    step = max(1, v.size // 2_000_000)
    oracle = f1_max(lab[::step], v[::step])[0]
    return {"pixel_f1": {k: float(np.mean(x)) for k, x in got.items() if x}, "oracle_pixel_f1": float(oracle),
            "names": list(names)}


# ------------------------------------------------------------------ report
def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f}%"


def tables(results: dict) -> dict[str, str]:
    """Markdown tables keyed by marker name."""
    out = {}
    hdr = ["category", "n labels", *[str(m) for m in LABEL_COUNTS]]
    lines = ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    for name, r in results.items():
        bc = r["labels"]["by_count"]
        for key in ("precision", "recall", "f1"):
            cells = [f"{bc[str(m)][key]:.3f}" for m in LABEL_COUNTS]
            lines.append(f"| {name if key == 'precision' else ''} | {key} | " + " | ".join(cells) + " |")
    out["label_table"] = "\n".join(lines)
    lines = ["| category | pool (labels = all) | F1 with all labels | oracle F1-max on eval half | "
             "labels for 95% of all-label F1 | plain F1-max threshold (no prior): F1 at 1 / 2 / 5 / 20 / all |",
             "|---|---|---|---|---|---|"]
    for name, r in results.items():
        L = r["labels"]
        bc = L["by_count"]
        lines.append(f"| {name} | {L['pool_size']} | {bc['all']['f1']:.3f} | {L['oracle_f1']:.3f} | "
                     f"{L['labels_for_95pct']} | " + " / ".join(f"{bc[m]['f1_plain']:.3f}" for m in ("1", "2", "5", "20", "all"))
                     + " |")
    out["label_summary"] = "\n".join(lines)
    lines = ["| category | method | n cal | expected FRR (95% CI) | measured FRR on test/good (95% CI) | recall | "
             "synthetic detected |", "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        for i, (meth, g) in enumerate(r["good_only"].items()):
            tf = g["test_frr"]
            syn = _pct(g["synthetic_detection"]) if "synthetic_detection" in g else ""
            lines.append(f"| {name if i == 0 else ''} | {meth} ({g['method']}) | {g['n_cal']} | "
                         f"{_pct(g['expected_frr'])} ({_pct(g['frr_ci95'][0])}-{_pct(g['frr_ci95'][1])}) | "
                         f"{tf['k']}/{tf['n']} = {_pct(tf['rate'])} ({_pct(tf['ci95'][0])}-{_pct(tf['ci95'][1])}) | "
                         f"{_pct(g['recall'])} | {syn} |")
    out["good_only"] = "\n".join(lines)
    lines = ["| category | n | conformal: FRR on rest of train / on test/good | exp. tail: on rest / on test/good | "
             "log-normal: on rest / on test/good |", "|---|---|---|---|---|"]
    for name, r in results.items():
        for i, (n, v) in enumerate(r["small_n"].items()):
            lines.append(f"| {name if i == 0 else ''} | {n} | " + " | ".join(
                f"{_pct(v[m]['rest'])} / {_pct(v[m]['test'])}" for m in ("conformal", "exptail", "lognormal")) + " |")
    out["small_n"] = "\n".join(lines)
    lines, names = None, None
    for name, r in results.items():
        p = r.get("pixel")
        if not p:
            continue
        if lines is None:
            names = p["names"]
            lines = ["| category | " + " | ".join(names) + " | best possible (all masks) |",
                     "|---" * (len(names) + 2) + "|"]
        lines.append(f"| {name} | " + " | ".join(f"{p['pixel_f1'].get(k, float('nan')):.3f}" for k in names)
                     + f" | {p['oracle_pixel_f1']:.3f} |")
    lines = lines or ["(no category with masks)"]
    out["pixel"] = "\n".join(lines)
    return out


def write_doc(doc: Path, blocks: dict[str, str]) -> None:
    text = doc.read_text() if doc.is_file() else "# Label efficiency\n"
    for name, body in blocks.items():
        b, e = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
        if b in text and e in text:
            text = text[: text.index(b) + len(b)] + "\n" + body + "\n" + text[text.index(e):]
        else:
            text += f"\n{b}\n{body}\n{e}\n"
    doc.write_text(text)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results)
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.5 * rows), sharey=True, squeeze=False)
    flat = axes.ravel()
    x = np.arange(len(LABEL_COUNTS))
    for ax, (name, r) in zip(flat, results.items()):
        bc = r["labels"]["by_count"]
        for key, col in (("f1", "k"), ("precision", "tab:blue"), ("recall", "tab:orange")):
            mean = np.array([bc[str(m)][key] for m in LABEL_COUNTS])
            std = np.array([bc[str(m)][f"{key}_std"] for m in LABEL_COUNTS])
            ax.plot(x, mean, "o-", color=col, label=key, lw=2 if key == "f1" else 1)
            if key == "f1":
                ax.fill_between(x, mean - std, mean + std, color=col, alpha=0.12, label="F1 +- 1 sd over draws")
        ax.plot(x, [bc[str(m)]["f1_plain"] for m in LABEL_COUNTS], "s--", color="k", alpha=0.45, ms=3, lw=1,
                label="F1, plain F1-max threshold")
        ax.axhline(r["labels"]["oracle_f1"], color="grey", ls=":", lw=1, label="F1-max on eval half (oracle)")
        ax.set_xticks(x, [str(m) for m in LABEL_COUNTS])
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("labelled images (0 = good-only)")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("on held-out half of test")
    handles, labels = flat[0].get_legend_handles_labels()
    for ax in flat[n:]:
        ax.axis("off")
    if n < flat.size:
        flat[n].legend(handles, labels, loc="center", fontsize=9)
    else:
        flat[-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--categories", nargs="+", default=list(CATEGORIES))
    p.add_argument("--cache", default="/tmp/dinoinspect_calib")
    p.add_argument("--max-train", type=int, default=200)
    p.add_argument("--draws", type=int, default=50)
    p.add_argument("--out", default=str(REPO / "docs"))
    p.add_argument("--analysis-only", action="store_true", help="only use cached scores; skip missing categories")
    a = p.parse_args(argv)
    results = {}
    for rel in a.categories:
        root = Path(a.data) / rel
        if not (root / "train" / "good").is_dir():
            print(f"skip {rel}: not found under {a.data}", file=sys.stderr)
            continue
        key = root.parent.name + "__" + root.name
        if a.analysis_only and not (Path(a.cache) / f"{key}.npz").is_file():
            print(f"skip {rel}: no cached scores", file=sys.stderr)
            continue
        print(f"{rel}:", flush=True)
        d = compute_scores(root, Path(a.cache), a.max_train)
        r = {"n_train": d["n_train"], "n_train_total": d["n_train_total"], "n_test": int(d["labels"].size),
             "n_test_good": int((d["labels"] == 0).sum()), "synthetic": synthetic_by_kind(d),
             "good_only": good_only_study(d), "small_n": small_n_study(d), "labels": label_study(d, a.draws),
             "pixel": pixel_study(d)}
        results[root.name] = r
        g = r["good_only"]["cross-fit auto (default)"]
        print(f"  good-only: threshold {g['threshold']:.4g} ({g['method']}), test/good FRR "
              f"{g['test_frr']['k']}/{g['test_frr']['n']}, recall {g['recall']:.3f}; labels for 95% F1: "
              f"{r['labels']['labels_for_95pct']}", flush=True)
    if not results:
        print("no category processed", file=sys.stderr)
        return 1
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "label_efficiency.json").write_text(json.dumps(results, indent=1))
    plot(results, out / "label_efficiency.png")
    write_doc(out / "LABEL_EFFICIENCY.md", tables(results))
    print(f"wrote {out / 'label_efficiency.png'}, {out / 'label_efficiency.json'}, {out / 'LABEL_EFFICIENCY.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
