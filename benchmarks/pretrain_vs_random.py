"""Does ``pretrain`` help? A ViT trained on train/good (DINO + iBOT) against the same ViT untrained.

On one category in MVTec AD layout, on this machine (CPU unless ``--device cuda``):

1. pretrains a ViT (default ViT-Tiny from scratch) on ``train/good`` with
   :class:`engine.pretrain.Pretrainer` -- the same code ``python main.py pretrain`` runs;
2. writes the *untrained* backbone file of the same run (same architecture, settings and seed:
   the teacher's weights before the first step, i.e. exactly the initialisation the trained file
   started from);
3. evaluates both files with :func:`engine.evaluate.evaluate_category` (what ``python main.py
   evaluate`` runs) with ``InspectionModel.create(backbone=<file>, scorer="knn", size=--eval-size)``,
   and optionally a registry backbone for reference (``--reference efficientnet_lite0``);
4. writes a Markdown table (image AUROC, AUPR, pixel AUROC, AUPRO, pretrain wall time, loss
   first/last) with the exact command and machine facts to ``--out`` and the raw figures to
   ``--out`` with ``.json``; run files (backbone files, loss curve, evaluation reports) go to
   ``--work-dir``.

``--render-only`` rewrites ``--out`` from its JSON. Text of ``--out`` below the line ``<!-- notes -->`` is kept when the file is rewritten.

Usage::

    nice -n 5 python benchmarks/pretrain_vs_random.py --data ../shared/data/mvtec_ad/bottle \\
        --epochs 20 --img-size 96 --local-crops 2 --out-dim 1024 --lr 0.008 --warmup-epochs 1 \\
        --momentum-teacher 0.99 --eval-size 224 --threads 1 --reference efficientnet_lite0
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.datasets import load_category  # noqa: E402
from engine.evaluate import evaluate_category  # noqa: E402
from engine.model import InspectionModel  # noqa: E402
from engine.pretrain import PretrainConfig, Pretrainer, load_images  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import cpu_name  # noqa: E402

NOTES_MARK = "<!-- notes -->"


def parse_args(argv=None) -> argparse.Namespace:
    d = PretrainConfig()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="category folder in MVTec AD layout (train/good, test/...)")
    ap.add_argument("--backbone", default="scratch-vit-tiny", help="pretrain start point (default: %(default)s)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--img-size", type=int, default=96, help="global crop side of the pretraining (px)")
    ap.add_argument("--local-crops", type=int, default=d.local_crops)
    ap.add_argument("--lr", type=float, default=d.lr, help="base lr at batch 256 (default: %(default)s)")
    ap.add_argument("--warmup-epochs", type=int, default=None)
    ap.add_argument("--momentum-teacher", type=float, default=d.momentum_teacher)
    ap.add_argument("--teacher-temp", type=float, default=d.teacher_temp)
    ap.add_argument("--out-dim", type=int, default=d.out_dim, help="prototypes K (class and patch heads)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-size", type=int, default=224, help="network input side of the evaluation (px)")
    ap.add_argument("--eval-layers", type=int, nargs="*", help="ViT blocks for the evaluation (default: the file's)")
    ap.add_argument("--eval-folds", type=int, default=5, help="calibration folds of the evaluation fit (0 = hold-out)")
    ap.add_argument("--metric-size", type=int, default=256, help="longer side for pixel metrics (as evaluate)")
    ap.add_argument("--reference", default=None,
                    help="also evaluate this registry backbone at --eval-size (e.g. efficientnet_lite0)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads for everything")
    ap.add_argument("--workers", type=int, default=1, help="DataLoader workers of the pretraining")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto (default: %(default)s)")
    ap.add_argument("--work-dir", default="/tmp/pretrain_vs_random", help="backbone files, loss curve, reports")
    ap.add_argument("--out", default="docs/PRETRAIN.md", help="Markdown result (JSON beside it)")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--render-only", action="store_true",
                    help="only rewrite --out from the JSON beside it (no training, no evaluation)")
    return ap.parse_args(argv)


def machine_facts() -> dict:
    cpu = cpu_name(platform.processor() or platform.machine())
    import timm

    return {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "python": platform.python_version(), "torch": torch.__version__, "timm": timm.__version__,
            "platform": platform.platform(), "load_average_start": [round(x, 2) for x in os.getloadavg()]}


def evaluate(cat, backbone: str, args) -> dict:
    t0 = time.perf_counter()
    layers = tuple(args.eval_layers) if args.eval_layers else None
    model = InspectionModel.create(backbone=backbone, scorer="knn", size=args.eval_size, device=args.device,
                                   layers=layers)
    name = Path(backbone).stem if backbone.endswith(".safetensors") else backbone
    res = evaluate_category(cat, model, report_dir=Path(args.work_dir) / f"eval_{name}", metric_size=args.metric_size,
                            fit_kwargs={"folds": args.eval_folds})
    res["eval_wall_seconds"] = round(time.perf_counter() - t0, 1)
    m = res["metrics"]
    print(f"evaluate {name}: image_auroc={m['image_auroc']:.4f} aupr={m['aupr']:.4f} "
          f"pixel_auroc={m.get('pixel_auroc', float('nan')):.4f} aupro={m.get('aupro', float('nan')):.4f} "
          f"({res['eval_wall_seconds']} s)", flush=True)
    return res


def loss_summary(history: dict, steps_per_epoch: int) -> dict:
    loss = np.asarray(history["loss"], dtype=float)
    n_ep = len(loss) // max(1, steps_per_epoch)
    ep = loss[: n_ep * steps_per_epoch].reshape(n_ep, -1).mean(1) if n_ep else np.zeros(0)
    out = {"steps": int(len(loss)), "first_step": float(loss[0]), "last_step": float(loss[-1]),
           "epoch_means": [round(float(x), 4) for x in ep]}
    for key in ("cls", "patch"):
        v = np.asarray(history[key], dtype=float)
        out[f"{key}_first_epoch_mean"] = float(v[:steps_per_epoch].mean())
        out[f"{key}_last_epoch_mean"] = float(v[-steps_per_epoch:].mean())
    return out


def fmt(x, nd=4) -> str:
    return "n/a" if x is None else f"{x:.{nd}f}"


def write_markdown(path: Path, r: dict) -> None:
    notes = ""
    if path.is_file():
        old = path.read_text()
        if NOTES_MARK in old:
            notes = old[old.index(NOTES_MARK):]
    p, mf, ls = r["pretrain"], r["machine"], r["pretrain"]["loss"]
    rows = []
    for key, label in (("pretrained", f"{p['arch']} pretrained ({p['epochs']} ep, {ls['steps']} steps)"),
                       ("random_init", f"{p['arch']} random init (same init, no training)"
                        if str(p.get("source", "")).startswith("random") else
                        f"{p['arch']} initial weights, no training ({p.get('source', '')})"),
                       ("reference", "reference")):
        e = r["evaluations"].get(key)
        if e is None:
            continue
        m = e["metrics"]
        if key == "reference":
            label = f"{e['backbone']['name']} (registry weights), reference"
        wall = f"{p['wall_minutes']:.1f} min" if key == "pretrained" else "-"
        loss = (f"{ls['first_step']:.3f} / {ls['last_step']:.3f} (epoch mean {ls['epoch_means'][0]:.3f} / "
                f"{ls['epoch_means'][-1]:.3f})" if key == "pretrained" and ls["epoch_means"] else "-")
        rows.append(f"| {label} | {fmt(m['image_auroc'])} | {fmt(m['aupr'])} | {fmt(m.get('pixel_auroc'))} | "
                    f"{fmt(m.get('aupro'))} | {wall} | {loss} | {e['eval_wall_seconds']:.0f} s |")
    ev = r["evaluations"]["pretrained"]
    cfg = p["config"]
    lines = [
        "# Pretraining vs random initialisation" if str(p.get("source", "")).startswith("random") else
        f"# Pretraining continued from {p['source']} vs the same weights untrained", "",
        f"Measured on **{Path(r['data']).name}** (`{r['data']}`: {ev['n_train']} train/good used for the "
        f"memory bank, {ev['n_holdout']} held out for the threshold, {ev['n_test']} test images) on "
        f"{mf['cpu']} ({mf['cpu_count']} cores shared with other jobs, {p['device']}, torch threads "
        f"{mf['torch_threads']}), {r['date']}.", "",
        "Both ViT rows are the same backbone file format, the same architecture and the same "
        "initial weights (the untrained file is written from the run's teacher before the first step); "
        "they differ only by the pretraining. Evaluation: `engine.evaluate.evaluate_category` with "
        f"`InspectionModel.create(backbone=FILE, scorer=\"knn\", size={r['eval_size']})` (k-NN, coreset 10 %, "
        f"image score = mean of the top 1 % patch scores; pixel metrics at {r['metric_size']} px).", "",
        "| backbone | image AUROC | AUPR | pixel AUROC | AUPRO | pretrain wall | loss first / last step | "
        "eval wall |",
        "|---|---|---|---|---|---|---|---|", *rows, "",
        "## Pretraining", "",
        f"- {p['arch']} ({p['timm_name']}, patch {p['patch_size']}) from {p['source']}, DINO + iBOT, "
        f"{p['epochs']} epochs x {p['steps_per_epoch']} steps (batch {p['batch_size']}), global crops "
        f"{p['global_size']} px x 2 + local crops {p['local_size']} px x {cfg['local_crops']}",
        f"- lr {cfg['lr']} at batch 256 (peak {p['peak_lr']:.2e}), warm-up {p['warmup_epochs']} epoch(s), "
        f"teacher momentum {cfg['momentum_teacher']} -> 1, teacher temp {cfg['teacher_temp']}, K = {cfg['out_dim']}, "
        f"seed {cfg['seed']}",
        f"- wall time {p['wall_minutes']:.1f} min ({p['seconds_per_step']:.1f} s/step); images loaded in "
        f"{p['load_seconds']:.1f} s",
        f"- loss (DINO [CLS] + iBOT patch): first step {ls['first_step']:.3f}, last step {ls['last_step']:.3f}; "
        f"epoch means {', '.join(f'{x:.3f}' for x in ls['epoch_means'])}",
        f"- [CLS] loss first/last epoch mean {ls['cls_first_epoch_mean']:.3f} / {ls['cls_last_epoch_mean']:.3f}; "
        f"patch loss {ls['patch_first_epoch_mean']:.3f} / {ls['patch_last_epoch_mean']:.3f} "
        f"(ln K = {np.log(cfg['out_dim']):.3f})",
        f"- loss curve: `{p['loss_png']}`; backbone files: `{p['trained_file']}`, `{p['random_file']}`", "",
        "## Command", "", "```", r["command"], "```", "",
        "The pretraining alone with the CLI (same settings):", "", "```", p["cli"], "```", "",
        "## Machine", "",
        f"- CPU: {mf['cpu']}, {mf['cpu_count']} logical cores (shared; load average at start "
        f"{mf['load_average_start']}, at end {mf.get('load_average_end')}); CUDA: {mf['cuda'] or 'none'}",
        f"- Python {mf['python']}, torch {mf['torch']}, timm {mf['timm']}; {mf['platform']}",
        f"- total wall time of the script: {r['total_minutes']:.1f} min", "",
        f"Raw figures: `{path.with_suffix('.json').name}`.", "",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + ("\n" + notes if notes else ""))


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.render_only:
        out = Path(args.out)
        write_markdown(out, json.loads(out.with_suffix(".json").read_text()))
        print(f"written: {out}")
        return 0
    t_start = time.time()
    if args.threads:
        torch.set_num_threads(args.threads)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    facts = machine_facts()
    cat = load_category(args.data)

    t0 = time.perf_counter()
    images = load_images(Path(args.data) / "train" / "good", max_side=2 * max(args.img_size, 32))
    load_s = time.perf_counter() - t0
    cfg = PretrainConfig(backbone=args.backbone, img_size=args.img_size, local_crops=args.local_crops,
                         epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         warmup_epochs=args.warmup_epochs, momentum_teacher=args.momentum_teacher,
                         teacher_temp=args.teacher_temp, out_dim=args.out_dim, patch_out_dim=args.out_dim,
                         seed=args.seed)
    trainer = Pretrainer(images, cfg, device=args.device, num_workers=args.workers)
    arch = args.backbone.replace("scratch-", "")
    random_file = trainer.export(work / f"{arch}_random_init.safetensors")
    print(f"pretrain: {len(images)} images, {cfg.epochs} epochs x {trainer.steps_per_epoch} steps, batch "
          f"{trainer.batch_size}, {trainer.global_size}/{trainer.local_size} px, peak lr "
          f"{trainer.lr_schedule.max():.2e}; random-init file -> {random_file}", flush=True)
    t0 = time.perf_counter()
    trainer.train(checkpoint_path=work / "checkpoint.pt", progress=not args.no_progress)
    wall = time.perf_counter() - t0
    trained_file = trainer.export(work / f"{arch}_pretrained.safetensors")
    loss_png = trainer.plot_losses(work / "loss.png")
    ls = loss_summary(trainer.history, trainer.steps_per_epoch)
    print(f"pretrain: {wall / 60:.1f} min; loss {ls['first_step']:.3f} -> {ls['last_step']:.3f}; "
          f"epoch means {ls['epoch_means']}", flush=True)

    cli = (f"python main.py pretrain --good {Path(args.data) / 'train' / 'good'} --backbone {args.backbone} "
           f"--out {trained_file} --epochs {args.epochs} --batch-size {args.batch_size} --img-size {args.img_size} "
           f"--local-crops {args.local_crops} --lr {args.lr} "
           + (f"--warmup-epochs {args.warmup_epochs} " if args.warmup_epochs is not None else "")
           + f"--momentum-teacher {args.momentum_teacher} --teacher-temp {args.teacher_temp} "
           f"--out-dim {args.out_dim} --seed {args.seed} --device {args.device}"
           + (f" --threads {args.threads}" if args.threads else ""))
    result = {
        "data": str(Path(args.data).resolve()), "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "command": "nice -n 5 python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])]),
        "eval_size": args.eval_size, "metric_size": args.metric_size, "machine": facts,
        "pretrain": {
            "arch": arch, "timm_name": trainer.vit_info.timm_name, "patch_size": trainer.vit_info.patch_size,
            "source": trainer.vit_info.source, "device": str(trainer.device), "config": cfg.to_dict(),
            "epochs": cfg.epochs, "steps_per_epoch": trainer.steps_per_epoch, "batch_size": trainer.batch_size,
            "global_size": trainer.global_size, "local_size": trainer.local_size,
            "peak_lr": float(trainer.lr_schedule.max()), "warmup_epochs": cfg.lr_warmup_epochs(),
            "wall_minutes": wall / 60, "seconds_per_step": wall / max(1, ls["steps"]), "load_seconds": load_s,
            "loss": ls, "history": trainer.history, "trained_file": str(trained_file),
            "random_file": str(random_file), "loss_png": str(loss_png), "cli": cli},
        "evaluations": {},
    }
    del trainer, images
    for key, bb in (("pretrained", str(trained_file)), ("random_init", str(random_file)),
                    ("reference", args.reference)):
        if bb:
            result["evaluations"][key] = evaluate(cat, bb, args)
    facts["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    result["total_minutes"] = (time.time() - t_start) / 60

    out = Path(args.out)
    write_markdown(out, result)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    print(f"written: {out}, {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
