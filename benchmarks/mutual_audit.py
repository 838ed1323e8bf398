"""Labelling-free (mutual) audit on the shared categories, against their labels.

For each category (MVTec AD layout under ``--data``), the mixed set ``train/good + test/*`` is linked
into ONE folder under ``--work`` (symlinks named ``img_00000.<ext>`` in the order of the original
paths, so names carry no label) and audited as ``main.py audit FOLDER --out DIR`` without
``--model`` does: :class:`engine.audit.mutual.MutualScorer` scores every image against the others
of that folder. Only then are the labels read, to compute:

* image AUROC over all mixed images (train/good counts as good) and over the test images only;
* pixel AUROC and AUPRO (FPR <= 0.3) on anomaly maps and masks shrunk to at most 256 px
  (missing mask = all good, as ``benchmarks/accuracy.py`` does);
* the suggested cut (median + 3.5 robust sd of the reference scores): NOK rate, recall on the
  defects, false-reject rate on the goods.

Next to them, the recipe-based rows (DINOv2 ViT-S/14, k-NN, 448 px, test split only) are read from
docs/BENCHMARKS.md. Writes ``docs/mutual_audit.json`` and the table between ``<!-- BEGIN table -->``
and ``<!-- END table -->`` in docs/MUTUAL_AUDIT.md.

    nice -n 10 python benchmarks/mutual_audit.py --size 224 --references 200
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.anomaly_map import anomaly_map, shrink_map  # noqa: E402
from engine.audit.mutual import MutualScorer  # noqa: E402
from engine.audit.records import ArchiveFile  # noqa: E402
from engine.datasets import load_category  # noqa: E402
from engine.images import read_mask  # noqa: E402
from engine.metrics import aupro, image_auroc, pixel_auroc  # noqa: E402

CATEGORIES = ("mvtec_ad/bottle", "mvtec_ad/grid_fragment", "visa/macaroni1", "magnetic_tile/magnetic_tile",
              "battery_weld/welding")


def load_avg() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def mixed_folder(root: Path, work: Path) -> tuple[Path, list]:
    """Link train/good + test/* of ``root`` into one folder; returns it and the samples in link order."""
    cat = load_category(root)
    samples = sorted(cat.train + cat.test, key=lambda s: str(s.path))
    folder = work / (root.parent.name + "__" + root.name)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    for i, s in enumerate(samples):
        os.symlink(s.path.resolve(), folder / f"img_{i:05d}{s.path.suffix.lower()}")
    return folder, samples


def archive_files(folder: Path, n: int, suffixes: list[str]) -> list[ArchiveFile]:
    out = []
    for i in range(n):
        p = folder / f"img_{i:05d}{suffixes[i]}"
        st = os.stat(p)
        out.append(ArchiveFile(os.path.abspath(p), str(folder), p.name, "", st.st_size, st.st_mtime_ns))
    return out


def recipe_rows(bench_md: Path) -> dict:
    """``category -> {image_auroc, pixel_auroc, aupro}`` of the dinov2_vits14 + knn rows."""
    rows = {}
    for line in bench_md.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 9 and cells[0] == "dinov2_vits14" and cells[2] == "knn":
            rows[cells[1]] = {"image_auroc": float(cells[3]), "pixel_auroc": float(cells[6]), "aupro": float(cells[7])}
    return rows


def run_category(rel: str, args, scorer: MutualScorer) -> dict:
    root = args.data / rel
    folder, samples = mixed_folder(root, args.work)
    files = archive_files(folder, len(samples), [s.path.suffix.lower() for s in samples])
    load0 = load_avg()
    t0 = time.perf_counter()
    records = []
    from tqdm import tqdm

    with tqdm(total=len(files), desc=rel, unit="img", file=sys.stderr) as bar:
        for batch in scorer.score_group(files):
            records.extend(batch)
            bar.update(len(batch))
    seconds = time.perf_counter() - t0
    errors = [r.error for r in records if r.status != "scored"]
    if errors:
        raise SystemExit(f"{rel}: {len(errors)} images not scored: {errors[:2]}")
    scores = np.array([r.score for r in records])
    labels = np.array([s.label for s in samples])
    is_test = np.array([s.path.parent.parent.name == "test" for s in samples])
    maps, masks = [], []
    for r, s in zip(records, samples):
        amap = anomaly_map(r.anomaly_grid.astype(np.float32), scorer.pre, (r.height, r.width))
        if s.mask_path is not None:
            mask = read_mask(s.mask_path, (r.height, r.width))
        else:
            mask = np.zeros((r.height, r.width), bool)
        maps.append(shrink_map(amap, 256))
        masks.append(shrink_map(mask, 256, nearest=True))
    test_maps = [m for m, t in zip(maps, is_test) if t]
    test_masks = [m for m, t in zip(masks, is_test) if t]
    verdict = np.array([r.verdict == "NOK" for r in records])
    good, bad = labels == 0, labels == 1
    out = {
        "category": rel, "n_images": len(records), "n_defective": int(bad.sum()), "n_test": int(is_test.sum()),
        "seconds": round(seconds, 1), "ms_per_image": round(1000 * seconds / len(records), 1),
        "load_start": load0, "load_end": load_avg(),
        "image_auroc_all": image_auroc(labels, scores),
        "image_auroc_test": image_auroc(labels[is_test], scores[is_test]),
        "pixel_auroc_all": pixel_auroc(masks, maps), "pixel_auroc_test": pixel_auroc(test_masks, test_maps),
        "suggested_cut": scorer.cuts.get(""), "nok_rate": float(verdict.mean()),
        "cut_recall": float(verdict[bad].mean()), "cut_false_reject": float(verdict[good].mean()),
    }
    if not args.no_aupro:
        out["aupro_all"] = aupro(masks, maps)
        out["aupro_test"] = aupro(test_masks, test_maps)
    return out


def fmt(x, nd=3) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def write_table(results: list[dict], recipe: dict, recipe_commit: str, doc: Path) -> None:
    lines = ["| category | images (defective) | img AUROC all | img AUROC test | recipe img AUROC test | "
             "px AUROC all | px AUROC test | recipe px AUROC test | AUPRO test | recipe AUPRO test | "
             "cut: NOK rate / recall / false-reject | s | ms/img |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        rec = recipe.get(r["category"], {})
        lines.append(
            f"| {r['category']} | {r['n_images']} ({r['n_defective']}) | {fmt(r['image_auroc_all'])} | "
            f"{fmt(r['image_auroc_test'])} | {fmt(rec.get('image_auroc'))} | {fmt(r['pixel_auroc_all'])} | "
            f"{fmt(r['pixel_auroc_test'])} | {fmt(rec.get('pixel_auroc'))} | {fmt(r.get('aupro_test'))} | "
            f"{fmt(rec.get('aupro'))} | {r['nok_rate']:.2f} / {r['cut_recall']:.2f} / {r['cut_false_reject']:.2f} | "
            f"{r['seconds']:.0f} | {r['ms_per_image']:.0f} |")
    table = "\n".join(lines) + f"\n\nRecipe columns: docs/BENCHMARKS.md at commit `{recipe_commit}` (448 px, test split)."
    text = doc.read_text() if doc.is_file() else "<!-- BEGIN table -->\n<!-- END table -->\n"
    text = re.sub(r"<!-- BEGIN table -->.*<!-- END table -->", lambda _: f"<!-- BEGIN table -->\n{table}\n<!-- END table -->",
                  text, flags=re.S)
    doc.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--work", type=Path, default=Path("/tmp/mutual_audit"))
    ap.add_argument("--categories", nargs="*", default=list(CATEGORIES))
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--references", type=int, default=200)
    ap.add_argument("--fraction", type=float, default=0.3)
    ap.add_argument("--backbone", default="auto")
    ap.add_argument("--no-aupro", action="store_true")
    ap.add_argument("--json", type=Path, default=REPO / "docs" / "mutual_audit.json")
    ap.add_argument("--doc", type=Path, default=REPO / "docs" / "MUTUAL_AUDIT.md")
    ap.add_argument("--table-only", action="store_true",
                    help="write the table of --doc from the results already in --json (no scoring)")
    args = ap.parse_args()
    if args.table_only:
        saved = json.loads(args.json.read_text())
        write_table(saved["results"], recipe_rows(REPO / "docs" / "BENCHMARKS.md"), saved["recipe_commit"], args.doc)
        return
    import torch

    scorer = MutualScorer(args.backbone, size=args.size, references=args.references, fraction=args.fraction)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    recipe_commit = subprocess.run(["git", "log", "-1", "--format=%h", "--", "docs/BENCHMARKS.md"], cwd=REPO,
                                   capture_output=True, text=True).stdout.strip()
    header = {"command": "python " + " ".join([os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:]),
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": commit,
              "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
              "torch_threads": torch.get_num_threads(), "load_start": load_avg(), "settings": scorer.settings()}
    results = []
    for rel in args.categories:
        results.append(run_category(rel, args, scorer))
        print(json.dumps(results[-1]), flush=True)
        header["load_end"] = load_avg()
        args.json.write_text(json.dumps({**header, "recipe_commit": recipe_commit, "results": results}, indent=1))
    write_table(results, recipe_rows(REPO / "docs" / "BENCHMARKS.md"), recipe_commit, args.doc)


if __name__ == "__main__":
    main()
