"""``main.py audit``: score every image of archive folders -> DIR/audit.sqlite, results.csv and a report.

Resumable: results are written batch by batch into the store; the same command run again (after a
stop, a crash or ``kill -9``, or over a grown archive) scores only files that are new or changed.
See docs/AUDIT.md.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from cli.argtypes import in_range
from cli.common import DEVICE_HELP, plural
from engine.app_info import cli_command


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("audit", help="score whole image archives into a resumable results store + report")
    p.add_argument("paths", nargs="*", metavar="FOLDER",
                   help="folders to audit (searched recursively; their sub-folders, e.g. line/day/lot, become the "
                        "groups of the report)")
    p.add_argument("--model", metavar="RECIPE", help="model file (.dimodel) written by fit or evaluate")
    p.add_argument("--out", metavar="DIR",
                   help="folder of the results: audit.sqlite (the store), results.csv, report/. An audit already "
                        "there is continued: unchanged files are not scored again")
    p.add_argument("--batch-size", type=in_range(1, 1024, int), default=None,
                   help="images per backbone pass (default: the model's, 4 on the CPU, 32 on CUDA)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--weights", metavar="FILE", help="backbone weight file, if not where it was at fit time")
    p.add_argument("--restart", action="store_true",
                   help="move the store in --out aside (audit.sqlite.<time>) and score everything again")
    p.add_argument("--retry-errors", action="store_true",
                   help="score again the files recorded as errors (fixed permissions, a remounted share)")
    p.add_argument("--csv", metavar="FILE", help="where to write the CSV export (default: DIR/results.csv)")
    p.add_argument("--export-csv", metavar="DIR",
                   help="only write the CSV of the audit in DIR (to --csv, default DIR/results.csv) and exit")
    p.add_argument("--no-report", action="store_true", help="do not write the HTML report")
    p.add_argument("--top-n", type=in_range(1, 10000, int), default=50,
                   help="most anomalous images shown in the report (default: %(default)s)")
    # --- options of the other audit parts go below (mutual, ray): one marked block each
    # --- report (owner: report)
    p.add_argument("--report-only", metavar="DIR",
                   help="only (re)write the HTML report of the audit in DIR (DIR/report/index.html) and exit")
    p.add_argument("--band", type=in_range(0, 1e12, float, lo_open=True), default=None, metavar="WIDTH",
                   help="width (score units) of the report's review band just under the threshold (default: the "
                        "standard deviation of the good-calibration scores, else 10%% of the threshold)")
    # --- labelling-free mode (owner: mutual)
    g = p.add_argument_group("without --model: labelling-free audit (each image against the other images of its "
                             "folder, MuSc-style; docs/MUTUAL_AUDIT.md)")
    g.add_argument("--references", type=in_range(1, 100000, int), default=200, metavar="N",
                   help="compare each image with at most N images of its folder, a fixed sample (default: "
                        "%(default)s; cost grows with N)")
    g.add_argument("--size", type=in_range(28, 2048, int), default=224, metavar="PX",
                   help="network input side in px (default: %(default)s; 448 finds smaller defects, ~5x slower)")
    g.add_argument("--backbone", default="auto", help="backbone (default: DINOv2 ViT-S/14)")
    # --- end labelling-free mode
    # --- ray (owner: ray): the Ray Data engine, engine/audit/ray_engine.py
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="where images are scored: this process (local) or a Ray cluster (ray; needs "
                        'pip install -e ".[distributed]" and the archive and model at the same paths on every node; default: %(default)s)')
    p.add_argument("--ray-address", metavar="ADDR", default=None,
                   help="Ray cluster to use ('auto', ray://HEAD:10001); default: a local Ray on this machine")
    p.add_argument("--actors", type=in_range(1, 4096, int), default=2,
                   help="Ray actors scoring at once, each holding the model (default: %(default)s)")
    p.add_argument("--actor-gpus", type=in_range(0.0, 64.0, float), default=0.0, metavar="F",
                   help="GPUs per Ray actor (0.5: two actors per GPU; default 0: CPU actors)")
    # --- end ray
    return p


def _export(store_dir: Path, csv_path: Path) -> int:
    from engine.audit.store import AuditStore, AuditStoreError

    with AuditStore.open(store_dir) as store:
        try:
            return store.export_csv(csv_path)
        except OSError as exc:
            raise AuditStoreError(f"{csv_path}: cannot write the CSV ({exc.strerror or exc}). Give --csv in a "
                                  f"folder you can write to; the results stay in {store.path}.") from None


def _report(store_dir: Path, args) -> Path:
    """Write the HTML report of the audit in ``store_dir`` (owner: report); returns its folder."""
    from engine.audit.report import write_report
    from engine.progress import TqdmProgress

    prog = TqdmProgress(not args.quiet)
    try:
        return write_report(store_dir, top_n=args.top_n, band=args.band, progress=prog)
    finally:
        prog.close()


def _scorer(args):
    """The BatchScorer of the command line: a recipe (--model), else the labelling-free scorer."""
    if args.model:
        from engine.audit.scoring import RecipeScorer

        return RecipeScorer(args.model, device=args.device, batch_size=args.batch_size, weights=args.weights)
    # --- labelling-free mode (owner: mutual) is wired here
    from engine.audit.mutual import MutualScorer

    return MutualScorer(args.backbone, size=args.size, references=args.references, batch_size=args.batch_size,
                        device=args.device, weights=args.weights)


def _run_ray(args, scorer, out: Path, stop: threading.Event):  # --- ray (owner: ray)
    """``--engine ray``: the same audit on Ray actors, each loading the recipe from its path."""
    import functools

    from engine.audit.ray_engine import run_audit_ray
    from engine.audit.scoring import RecipeScorer
    from engine.errors import DatasetError

    if not isinstance(scorer, RecipeScorer):
        raise DatasetError("--engine ray scores with a recipe: give --model RECIPE (the labelling-free audit runs "
                           "with --engine local).")
    size = int(args.batch_size or scorer.batch_size)
    factory = functools.partial(RecipeScorer, scorer.model_path, device=args.device, batch_size=size,
                                weights=None if args.weights is None else str(Path(args.weights).resolve()))
    return run_audit_ray(factory, scorer.meta(), args.paths, out, batch_size=size, restart=args.restart,
                         retry_errors=args.retry_errors, argv=sys.argv[1:], progress=not args.quiet, stop=stop,
                         address=args.ray_address, actors=args.actors, actor_gpus=args.actor_gpus)


def _stop_on_signals(stop: threading.Event) -> dict:
    """Ctrl-C / SIGTERM: the first sets ``stop`` (the batch in flight is finished and written), a second
    Ctrl-C interrupts at once. Returns the previous handlers."""

    def handler(signum, frame):
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        print("\nstopping after the batch in flight (Ctrl-C again to stop at once)...", file=sys.stderr)

    old = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, handler)
    return old


def run(args) -> int:
    from engine.errors import DatasetError

    if args.report_only:  # --- report (owner: report)
        print(f"report: {_report(Path(args.report_only), args) / 'index.html'}")
        return 0
    if args.export_csv:
        d = Path(args.export_csv)
        csv_path = Path(args.csv) if args.csv else d / "results.csv"
        n = _export(d, csv_path)
        print(f"{plural(n, 'row')} written to {csv_path}")
        return 0
    if not args.paths:
        raise DatasetError(f"give the folders to audit, e.g. `{cli_command()} audit --model part.dimodel /archive --out "
                           "audits/part`.")
    if not args.out:
        raise DatasetError("give --out DIR: the folder of the results store, CSV and report.")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: exists and is a file; --out needs a folder (new or existing).")
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:  # said before the model loads (seconds), not after
        raise DatasetError(f"{missing[0]}: no such file or folder" + (f" (and {len(missing) - 1} more)" if len(missing) > 1
                           else "") + "; give existing folders of images to audit.")
    from engine.audit.runner import run_audit

    scorer = _scorer(args)
    where = args.paths[0] + (f" (+{len(args.paths) - 1} more)" if len(args.paths) > 1 else "")
    describe = scorer.meta().get("describe", "")
    print(f"auditing {where} into {out}" + (f"\n  {describe}" if describe else ""), file=sys.stderr)
    stop = threading.Event()
    old = _stop_on_signals(stop)
    try:
        if getattr(args, "engine", "local") == "ray":  # --- ray (owner: ray)
            s = _run_ray(args, scorer, out, stop)
        else:
            s = run_audit(scorer, args.paths, out, batch_size=args.batch_size, restart=args.restart,
                          retry_errors=args.retry_errors, argv=sys.argv[1:], engine="local", progress=not args.quiet,
                          stop=stop)
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
    if s.skipped:
        print(f"note: {where}: {s.skipped}", file=sys.stderr)
    print(f"{s.n_unchanged} unchanged, {s.n_new} new, {s.n_changed} changed; this run: {s.n_scored} scored "
          f"({s.n_ok} OK, {s.n_nok} NOK), {plural(s.n_errors, 'error')}, {s.images_per_s:.2f} images/s")
    c = s.store_counts
    rate = f", NOK rate {c['nok'] / c['scored']:.1%}" if c.get("scored") else ""
    print(f"store {s.store_path}: {plural(c.get('images', 0), 'image')}, {c.get('ok', 0)} OK, {c.get('nok', 0)} NOK"
          f"{rate}, {plural(c.get('errors', 0), 'error')}")
    if s.error_examples:
        print("errors (all of them: rows with status 'error' in the CSV):\n  " + "\n  ".join(s.error_examples),
              file=sys.stderr)
    csv_path = Path(args.csv) if args.csv else out / "results.csv"
    n = _export(out, csv_path)
    print(f"CSV: {csv_path} ({plural(n, 'row')})")
    # --- report (owner: report): the HTML report is written here when its module is present
    if not args.no_report:
        print(f"report: {_report(out, args) / 'index.html'}")
    if s.status == "stopped":
        print(f"stopped: {s.n_scored + s.n_errors} files done in this run are saved. Run the same command again to "
              f"continue (files already done are skipped).", file=sys.stderr)
        return 130
    if c.get("no_verdict") and args.model:
        print(f"{plural(c['no_verdict'], 'image')} scored without a verdict: the model has no threshold; set one with "
              f"`{cli_command()} calibrate --model {args.model} --good DIR`.")
    return 0 if s.n_errors == 0 else 1
