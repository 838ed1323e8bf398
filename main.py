"""DINOInspect: the one entry point.

    python main.py                 open the operator GUI
    python main.py fit ...         learn normal from a folder of good images -> model file
    python main.py predict ...     inspect images with a model file -> CSV + overlays
    python main.py evaluate ...    fit + measure on a category in MVTec AD layout -> report
    python main.py demo            the whole job on real solar-cell images shipped by PyPI
    python main.py backbones       list backbones and whether their weights are available
    python main.py calibrate ...   re-choose the threshold from good (and a few defective) images
    python main.py pretrain ...    DINO + iBOT self-supervised training on good images -> backbone file
    python main.py audit ...       score whole image archives -> resumable results store, CSV, report

Run ``python main.py <command> -h`` for the options of each command.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command: each ``cli.<command>`` module adds its own sub-parser."""
    import importlib

    from cli import COMMANDS

    from engine import __version__

    p = argparse.ArgumentParser(prog="main.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"DINOInspect {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND",
                           help="one of the commands below; `main.py COMMAND -h` lists its options. No command "
                                "opens the GUI.")
    for name in COMMANDS:
        importlib.import_module(f"cli.{name}").add_parser(sub)
    for sp in sub.choices.values():
        if not any("--quiet" in a.option_strings for a in sp._actions):
            sp.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        from gui.app import run_gui

        return run_gui()
    import importlib

    args = build_parser().parse_args(argv)
    from engine.backbones.registry import weights_env_problems
    from engine.errors import InspectError

    for problem in weights_env_problems():  # every command finds backbone weights through that variable
        print(f"warning: {problem}", file=sys.stderr)
    from cli.common import route_engine_warnings

    route_engine_warnings()

    try:
        return importlib.import_module(f"cli.{args.command}").run(args)
    except (InspectError, ValueError, FileExistsError, NotADirectoryError, PermissionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
