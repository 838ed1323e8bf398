"""Speed benchmark: latency and throughput against batch size and input size, stage by stage.

For each input size, every scorer is fitted on the backbone features of ``--n-train`` good images
of one category; then ``--n-images`` test images are inspected in batches of each batch size and
the wall time is split into the stages an inspection goes through:

``decode`` (file -> RGB array, :func:`engine.images.read_image`), ``preprocess`` (resize +
normalise, :class:`engine.backbones.Preprocess`), ``backbone`` (patch features, to the device and
back), ``scoring`` (the scorer's patch scores) and ``map`` (anomaly map in image pixels + image
score). Reported: ms per image of each stage, batch latency, throughput, and peak memory (CPU:
peak resident set size above the level before the loop, sampled every 2 ms; CUDA: peak allocated
device memory). The first batch of each configuration is a warm-up and is not timed.

Usage::

    python benchmarks/speed.py                 # bottle, sizes 224/256/320, batches 1/4/8/16
    python benchmarks/speed.py --quick         # one size, batches 1 and 8, fewer images
    python benchmarks/speed.py --device cuda   # on a GPU machine

Results replace the speed section of docs/BENCHMARKS.md (between its speed markers) and the
``speed`` entry of docs/benchmarks.json; run benchmarks/accuracy.py first, it writes the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import threading
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.anomaly_map import anomaly_map, image_score  # noqa: E402
from engine.backbones import OFFLINE_DEFAULT, create_backbone  # noqa: E402
from engine.datasets import load_category  # noqa: E402
from engine.images import read_image  # noqa: E402
from engine.scorers import create_scorer  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from accuracy import SPEED_BEGIN, SPEED_END, machine_facts, parse_scorer, replace_marked_block  # noqa: E402

STAGES = ("decode", "preprocess", "backbone", "scoring", "map")


class PeakRss:
    """Samples this process's resident set size in a thread; ``peak_mb`` above the start level."""

    def __init__(self, interval_s: float = 0.002):
        self.interval_s, self.page = interval_s, os.sysconf("SC_PAGE_SIZE")
        self.start = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        try:
            return int(Path("/proc/self/statm").read_text().split()[1]) * self.page
        except OSError:
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(self.interval_s)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def peak_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_pipeline(paths: list[Path], bb, pre, scorer, batch_size: int, sigma: float = 4.0) -> dict:
    """Inspect ``paths`` in batches; per-stage ms per image, latency, throughput, peak memory."""
    totals = dict.fromkeys(STAGES, 0.0)
    batches = [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]
    dev = bb.device

    def one(batch: list[Path], record: bool) -> None:
        t = [time.perf_counter()]
        imgs = [read_image(p) for p in batch]
        t.append(time.perf_counter())
        x = pre.batch(imgs)
        t.append(time.perf_counter())
        feats = bb.extract(x)
        _sync(dev)
        t.append(time.perf_counter())
        patch = scorer.score(feats).numpy()
        _sync(dev)
        t.append(time.perf_counter())
        for i, img in enumerate(imgs):
            anomaly_map(patch[i], pre, img.shape[:2], sigma)
            image_score(patch[i])
        t.append(time.perf_counter())
        if record:
            for s, a, b in zip(STAGES, t[:-1], t[1:]):
                totals[s] += b - a

    one(batches[0], record=False)  # warm-up
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    n = sum(len(b) for b in batches)
    with PeakRss() as mem:
        t0 = time.perf_counter()
        for b in batches:
            one(b, record=True)
        wall = time.perf_counter() - t0
    out = {f"{s}_ms": round(totals[s] * 1000 / n, 2) for s in STAGES}
    out.update({"total_ms_per_image": round(wall * 1000 / n, 2),
                "batch_latency_ms": round(wall * 1000 / len(batches), 1),
                "throughput_img_s": round(n / wall, 2), "peak_rss_mb": round(mem.peak_mb, 1),
                "n_images": n})
    if dev.type == "cuda":
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
    return out


def matmul_gflops(dtype: torch.dtype, device: torch.device, m: int = 4096, k: int = 384, n: int = 1536) -> float:
    """GFLOP/s torch reaches on a ViT-S-shaped matrix product (tokens x width @ width x 4 width)."""
    a = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(k, n, device=device).to(dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    reps, t0 = 0, time.perf_counter()
    while reps < 10 or time.perf_counter() - t0 < 1.0:
        a @ b
        reps += 1
    _sync(device)
    return 2 * m * k * n * reps / (time.perf_counter() - t0) / 1e9


def vit_gflop(bb, size: int) -> float | None:
    """Multiply-add FLOPs (x2) of a ViT forward up to its last used block at ``size`` px: patch
    embedding, and per block qkv / proj / MLP products and the two attention products."""
    if bb.spec.family != "vit":
        return None
    m = bb.model
    n_patch = (size // bb.spec.patch_size) ** 2
    n = n_patch + m.num_prefix_tokens
    d = m.embed_dim
    hidden = m.blocks[0].mlp.fc1.out_features
    per_block = 2 * n * d * (3 * d + d + 2 * hidden) + 2 * 2 * n * n * d
    embed = 2 * n_patch * (3 * bb.spec.patch_size ** 2) * d
    return (embed + per_block * (max(bb.layers) + 1)) / 1e9


def features_of(paths: list[Path], bb, pre, batch_size: int = 8) -> torch.Tensor:
    out = []
    for i in range(0, len(paths), batch_size):
        out.append(bb.extract(pre.batch([read_image(p) for p in paths[i : i + batch_size]])))
    return torch.cat(out)


def markdown(rows: list[dict], facts: dict, command: str, extra: dict) -> list[str]:
    cuda = any("peak_cuda_mb" in r for r in rows)
    head = ("| scorer | precision | size px | batch | decode | preprocess | backbone | scoring | map | total ms/img | "
            "batch latency ms | img/s | peak RSS MB | backbone GFLOP | floor ms |" + (" peak CUDA MB |" if cuda else ""))
    out = [SPEED_BEGIN, "", "## Speed: latency and throughput by stage", "",
           f"Command: `{command}`  ",
           f"Machine: {facts['cpu']} ({facts['cpu_count']} cores, torch threads {facts['torch_threads']}), GPU: "
           f"{facts['gpu'] or 'none'}, device used: {facts['device']}; {facts['date']}, commit "
           f"`{facts['git_commit']}`; load average at start {', '.join(f'{x:.1f}' for x in facts['load_average_start'])}"
           " (a shared machine: timings are upper bounds).  ",
           f"Backbone {extra['backbone']}; scorers fitted on {extra['n_train']} good images of `{extra['category']}`, "
           f"timed on {extra['n_images']} of its test images (first batch not timed). Stage columns are ms per "
           "image; peak RSS is the rise of resident memory during the timed loop. `floor ms` = the backbone's "
           f"FLOPs (up to its last used block) / the matrix-product rate torch reached here "
           f"(GFLOP/s by precision: {extra.get('matmul_gflops')}).", "",
           head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        out.append(f"| {r['scorer']} | {r.get('precision', '-')} | {r['size']} | {r['batch_size']} | {r['decode_ms']} | {r['preprocess_ms']} | "
                   f"{r['backbone_ms']} | {r['scoring_ms']} | {r['map_ms']} | {r['total_ms_per_image']} | "
                   f"{r['batch_latency_ms']} | {r['throughput_img_s']} | {r['peak_rss_mb']} | "
                   f"{r.get('backbone_gflop') or '-'} | {r.get('backbone_floor_ms') or '-'} |"
                   + (f" {r.get('peak_cuda_mb', '-')} |" if cuda else ""))
    return out + ["", SPEED_END]


def write_outputs(md_path: Path, json_path: Path, block: list[str], payload: dict) -> None:
    text = md_path.read_text() if md_path.is_file() else "# Benchmarks\n"
    text = replace_marked_block(text, SPEED_BEGIN, SPEED_END, block)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(text)
    data = json.loads(json_path.read_text()) if json_path.is_file() else {}
    data["speed"] = payload
    json_path.write_text(json.dumps(data, indent=2) + "\n")


def time_sizes(args, bb, rate: float, train: list[Path], test: list[Path]) -> list[dict]:
    """Rows of :func:`time_pipeline` for every size x scorer x batch size on backbone ``bb``."""
    rows = []
    for size in args.sizes:
        pre = bb.preprocess(size)
        train_feats = features_of(train, bb, pre)
        gf = vit_gflop(bb, pre.size)
        for spec in args.scorers:
            name, params, label = parse_scorer(spec)
            scorer = create_scorer(name, **params)
            scorer.fit(train_feats)
            for b in args.batch_sizes:
                r = time_pipeline(test, bb, pre, scorer, b)
                r.update({"scorer": label, "size": pre.size, "batch_size": b, "precision": bb.precision,
                          "model_mb": round(scorer.state_nbytes() / 2**20, 2),
                          "backbone_gflop": round(gf, 2) if gf else None,
                          "backbone_floor_ms": round(gf / rate * 1000, 2) if gf else None})
                rows.append(r)
                print(f"[speed] {label} {bb.precision} {pre.size}px batch {b}: "
                      + ", ".join(f"{s} {r[s + '_ms']}" for s in STAGES)
                      + f" | {r['total_ms_per_image']} ms/img, {r['throughput_img_s']} img/s, "
                        f"peak +{r['peak_rss_mb']} MB", flush=True)
        del train_feats
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--category", type=Path, default=REPO.parent / "shared" / "data" / "mvtec_ad" / "bottle")
    ap.add_argument("--backbone", default=OFFLINE_DEFAULT)
    ap.add_argument("--weights", help="explicit weight file for the backbone")
    ap.add_argument("--layers", type=int, nargs="*", help="ViT blocks / CNN stages (default: the backbone's)")
    ap.add_argument("--precision", nargs="+", default=["auto"], choices=["auto", "fp32", "bf16"],
                    help="backbone precision(s) to time (default: auto)")
    ap.add_argument("--scorers", nargs="*", default=["knn", "mahalanobis", "padim"])
    ap.add_argument("--sizes", nargs="*", type=int, default=[224, 256, 320])
    ap.add_argument("--batch-sizes", nargs="*", type=int, default=[1, 4, 8, 16])
    ap.add_argument("--n-train", type=int, default=200, help="good images the scorers are fitted on")
    ap.add_argument("--n-images", type=int, default=48, help="test images timed per configuration")
    ap.add_argument("--device", help="cpu / cuda (default: CUDA when available)")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 is much faster on an "
                                                 "oversubscribed machine, where threads spin-wait for each other)")
    ap.add_argument("--quick", action="store_true", help="size 256, batches 1 and 8, 40 train / 16 test images")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "BENCHMARKS.md")
    ap.add_argument("--json", type=Path, default=REPO / "docs" / "benchmarks.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.batch_sizes, args.n_train, args.n_images = [256], [1, 8], 40, 16
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python benchmarks/speed.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    cat = load_category(args.category)
    if not cat.train:
        print(f"{args.category}: no train images", file=sys.stderr)
        return 2
    train = [s.path for s in cat.train][: args.n_train]
    test = [s.path for s in cat.test][:: max(1, len(cat.test) // args.n_images)][: args.n_images]
    facts = machine_facts(args.device)
    rows = []
    rates: dict[str, float] = {}
    for precision in args.precision:
        bb = create_backbone(args.backbone, weights=args.weights, device=args.device,
                             layers=tuple(args.layers) if args.layers else None, precision=precision)
        rate = rates[bb.precision] = matmul_gflops(bb.autocast_dtype or torch.float32, bb.device)
        print(f"[floor] {bb.device} {bb.precision} matrix product: {rate:.0f} GFLOP/s", flush=True)
        rows += time_sizes(args, bb, rate, train, test)
    facts["load_average_end"] = list(os.getloadavg())
    extra = {"backbone": f"{bb.name} [{bb.weights_source}] layers {list(bb.layers)}", "n_train": len(train),
             "matmul_gflops": {k: round(v, 1) for k, v in rates.items()},
             "n_images": len(test), "category": str(args.category.name)}
    write_outputs(args.out, args.json, markdown(rows, facts, command, extra),
                  {"command": command, "machine": facts, "setup": extra, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
