"""``main.py demo``: the whole job on real solar-cell images shipped by PyPI (elpv-dataset)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.common import add_model_options, build_model, fit_kwargs, in_range
from cli.evaluate import check_report_folder, print_eval


def add_parser(sub) -> argparse.ArgumentParser:
    d = sub.add_parser("demo", help="run the main job on real solar-cell images shipped by PyPI (elpv-dataset)")
    d.add_argument("--report", metavar="DIR",
                   help="folder for the demo's report and model (default: demo_report in the user data folder, "
                        "$DINOINSPECT_DATA_DIR or the platform's application-data folder; printed at the start)")
    d.add_argument("--n-train", type=in_range(2, 10000, int), default=150,
                   help="functional cells to learn from (default: %(default)s)")
    d.add_argument("--n-test", type=in_range(1, 10000, int), default=60,
                   help="functional and defective cells to inspect, each (default: %(default)s)")
    add_model_options(d)
    return d


def default_report_dir() -> Path:
    """``demo_report`` in the per-user data folder, the same as the GUI's
    (:func:`engine.app_info.user_data_dir`: ``$DINOINSPECT_DATA_DIR`` when set, else the platform's
    application-data folder, e.g. ``~/.local/share/DINOInspect/DINOInspect`` on Linux), never the
    program's folder or the current one. Not created.

    Raises:
        DatasetError: the data folder cannot be created (one line: the path, the fix).
    """
    from engine import app_info
    from engine.errors import DatasetError

    try:
        return app_info.user_data_dir() / "demo_report"
    except OSError as exc:
        raise DatasetError(f"{exc.filename or app_info.platform_data_dir()}: cannot create the data folder "
                           f"({exc.strerror or exc}); set {app_info.ENV_DATA_DIR} to a writable folder or pass "
                           f"--report DIR.") from None


def run(args) -> int:
    from engine.demo import elpv_category
    from engine.errors import DatasetError
    from engine.evaluate import evaluate_category
    from engine.progress import TqdmProgress

    report = Path(args.report) if args.report else default_report_dir()
    check_report_folder(report)
    cat = elpv_category(n_train=args.n_train, n_test_good=args.n_test, n_test_defective=args.n_test)
    print(f"demo: ELPV solar cells (PyPI elpv-dataset): learning from {len(cat.train)} functional cells, "
          f"inspecting {len(cat.test)} others; report and model go to {report}", file=sys.stderr)
    model = build_model(args)
    prog = TqdmProgress(not args.quiet)
    try:
        res = evaluate_category(cat, model, report_dir=report, progress=prog, fit_kwargs=fit_kwargs(args))
    except OSError as exc:  # the report cannot be written, or a demo file vanished: one line, not a traceback
        where = exc.filename or report
        raise DatasetError(f"{where}: {exc.strerror or exc}; free space or permissions for the report folder "
                           f"(--report DIR puts it elsewhere), or, if it is a demo file, reinstall elpv-dataset / "
                           f"rebuild the program with the demo data.") from None
    finally:
        prog.close()
    print_eval(res)
    print(f"report with overlays: {report / 'summary.md'}")
    return 0
