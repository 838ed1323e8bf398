"""DINOInspect: the one entry point.

    python main.py                 open the operator GUI
    python main.py fit ...         learn normal from a folder of good images -> model file
    python main.py predict ...     inspect images with a model file -> CSV + overlays
    python main.py evaluate ...    fit + measure on a category in MVTec AD layout -> report
    python main.py demo            the whole job on real solar-cell images shipped by PyPI
    python main.py backbones       list backbones and whether their weights are available
    python main.py calibrate ...   re-choose the threshold from good (and a few defective) images
    python main.py pretrain ...    DINO + iBOT self-supervised training on good images -> backbone file

    python main.py selftest        check this installation (libraries, weights, Qt, data folder)

Run ``python main.py <command> -h`` for the options of each command. In the packaged program the
commands are ``dinoinspect-cli <command> ...`` and the GUI is ``DINOInspect``; the usage text below
says whichever applies (:func:`engine.app_info.cli_command`).

Start-up stays light: building the parser imports no torch, Qt or numpy (each ``cli`` module imports
the engine inside ``run``), so ``-h``, ``COMMAND -h`` and ``--version`` answer at once;
``tests/test_startup_imports.py`` checks it.
"""

from __future__ import annotations

import argparse
import sys


USAGE_ROWS = (
    ("{gui}", "open the operator GUI"),
    ("{cli} fit ...", "learn normal from a folder of good images -> model file"),
    ("{cli} predict ...", "inspect images with a model file -> CSV + overlays"),
    ("{cli} evaluate ...", "fit + measure on a category in MVTec AD layout -> report"),
    ("{cli} demo", "the whole job on real solar-cell images shipped by PyPI"),
    ("{cli} backbones", "list backbones and whether their weights are available"),
    ("{cli} calibrate ...", "re-choose the threshold from good (and a few defective) images"),
    ("{cli} pretrain ...", "DINO + iBOT self-supervised training on good images -> backbone file"),
    ("{cli} selftest", "check this installation (libraries, weights, Qt, data folder)"),
)


def usage_text(cli: str, gui: str) -> str:
    """The description ``-h`` shows, with the command names of this program (source or bundle)."""
    rows = [(cmd.format(cli=cli, gui=gui), what) for cmd, what in USAGE_ROWS]
    width = max(len(cmd) for cmd, _ in rows) + 3
    lines = "\n".join(f"    {cmd:<{width}s}{what}" for cmd, what in rows)
    return (f"DINOInspect: unsupervised visual inspection of industrial parts.\n\n{lines}\n\n"
            f"Run `{cli} COMMAND -h` for the options of each command.")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command: each ``cli.<command>`` module adds its own sub-parser."""
    import importlib

    from cli import COMMANDS

    from engine import __version__, app_info

    cli = app_info.cli_command()
    p = argparse.ArgumentParser(prog=app_info.prog_name(), description=usage_text(cli, app_info.gui_command()),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"DINOInspect {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND",
                           help=f"one of the commands below; `{cli} COMMAND -h` lists its options. No command "
                                "opens the GUI.")
    for name in COMMANDS:
        importlib.import_module(f"cli.{name}").add_parser(sub)
    for sp in sub.choices.values():
        if not any("--quiet" in a.option_strings for a in sp._actions):
            sp.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv in (["--version"], ["-V"]):  # also for the GUI program: print and exit, never open Qt
        from engine import __version__

        print(f"DINOInspect {__version__}")
        return 0
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
    import multiprocessing

    multiprocessing.freeze_support()  # a packaged program's worker processes (DataLoader) start here; no-op from source
    sys.exit(main())
