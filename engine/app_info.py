"""Program identity: which program is running, from where, and what a user should type to run it.

The same code runs from a source checkout (``python main.py ...``) and as a packaged program
(a PyInstaller bundle: ``DINOInspect`` for the GUI, ``dinoinspect-cli ...`` for the commands).
Everything that depends on that difference is answered here, in one place:

* :func:`is_frozen` -- running inside a bundle (PyInstaller sets ``sys.frozen``);
* :func:`program_dir` -- the folder of the executable when frozen, the repository root otherwise
  (where a ``weights/`` folder beside the program is looked for);
* :func:`resource_dir` / :func:`resource_path` -- read-only files shipped with the program
  (``sys._MEIPASS`` in a bundle, the repository root otherwise);
* :func:`cli_command` / :func:`gui_command` -- what to type, for usage lines and hints
  (``dinoinspect-cli fit ...`` in a bundle, ``python main.py fit ...`` from source);
* :func:`self_command` -- the argv prefix that runs this same program again (for subprocess probes);
* :func:`user_data_dir` -- the per-user data folder (defect log, recipes, the demo's report): the
  only place the program writes by default, never the program folder or the current folder.

Qt-free: the data folder is the one Qt's ``QStandardPaths.AppDataLocation`` gives the GUI (organisation
and application ``DINOInspect``), computed here without Qt (``tests/test_app_info.py`` checks both agree).

Usage::

    from engine import app_info
    print(f"run `{app_info.cli_command()} fit --good DIR --out part.dimodel`")
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ORGANIZATION = "DINOInspect"
APPLICATION = "DINOInspect"
ENV_DATA_DIR = "DINOINSPECT_DATA_DIR"
"""Environment variable: the data folder to use instead of the platform's application-data folder."""

CLI_PROGRAM = "dinoinspect-cli"
"""Name of the packaged console program (the headless commands)."""
GUI_PROGRAM = "DINOInspect"
"""Name of the packaged GUI program."""
SOURCE_COMMAND = "python main.py"

_REPO_ROOT = Path(__file__).resolve().parents[1]


def is_frozen() -> bool:
    """True inside a packaged program (PyInstaller sets ``sys.frozen``)."""
    return bool(getattr(sys, "frozen", False))


def program_dir() -> Path:
    """The folder of the executable when frozen (``dist/DINOInspect``), else the repository root
    (the folder of ``main.py``). Read-only at a station: nothing is written here at run time."""
    if is_frozen():
        return Path(sys.executable).resolve().parent
    return _REPO_ROOT


def resource_dir() -> Path:
    """Root of the read-only files shipped with the program: ``sys._MEIPASS`` in a bundle (its
    ``_internal`` folder), the repository root from source."""
    return Path(getattr(sys, "_MEIPASS", _REPO_ROOT))


def resource_path(*parts: str) -> Path:
    """A shipped file, e.g. ``resource_path("resources", "dinoinspect.png")``; not checked to exist."""
    return resource_dir().joinpath(*parts)


def cli_command() -> str:
    """What a user types to run a command: ``"dinoinspect-cli"`` in a bundle, else ``"python main.py"``."""
    return CLI_PROGRAM if is_frozen() else SOURCE_COMMAND


def gui_command() -> str:
    """What a user types to open the GUI: ``"DINOInspect"`` in a bundle, else ``"python main.py"``."""
    return GUI_PROGRAM if is_frozen() else SOURCE_COMMAND


def prog_name() -> str:
    """argparse's ``prog`` for the usage lines: ``dinoinspect-cli`` in a bundle, ``main.py`` from source."""
    return CLI_PROGRAM if is_frozen() else "main.py"


def self_command() -> list[str]:
    """The argv prefix that runs this program again (add a command and its options): the executable
    itself in a bundle, ``[python, .../main.py]`` from source."""
    if is_frozen():
        return [sys.executable]
    return [sys.executable, str(_REPO_ROOT / "main.py")]


def platform_data_dir(system: str | None = None, env: dict | None = None, home: Path | None = None) -> Path:
    """The platform's per-user application-data folder for DINOInspect, as Qt's
    ``QStandardPaths.writableLocation(AppDataLocation)`` gives it with organisation and application
    both ``DINOInspect``: ``$XDG_DATA_HOME`` (when absolute) or ``~/.local/share``, then
    ``DINOInspect/DINOInspect`` on Linux; ``%APPDATA%\\DINOInspect\\DINOInspect`` on Windows;
    ``~/Library/Application Support/DINOInspect/DINOInspect`` on macOS. Not created.

    ``system`` (``sys.platform`` style), ``env`` and ``home`` default to this process's.
    """
    system = sys.platform if system is None else system
    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    if system.startswith("win"):
        base = Path(env["APPDATA"]) if env.get("APPDATA") else home / "AppData" / "Roaming"
    elif system == "darwin":
        base = home / "Library" / "Application Support"
    else:
        xdg = env.get("XDG_DATA_HOME", "")
        base = Path(xdg) if xdg and os.path.isabs(xdg) else home / ".local" / "share"
    return base / ORGANIZATION / APPLICATION


def user_data_dir(create: bool = True) -> Path:
    """The data folder: ``$DINOINSPECT_DATA_DIR`` when set, else :func:`platform_data_dir`.

    Raises:
        OSError: ``create`` is true and the folder cannot be created (e.g. permission denied).
    """
    env = os.environ.get(ENV_DATA_DIR)
    path = Path(env).expanduser() if env else platform_data_dir()
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
