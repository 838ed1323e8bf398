"""`main.py -h`, `main.py COMMAND -h` and `--version` answer without importing torch or Qt.

Each is run in a fresh interpreter that runs ``main.py`` as the program (``runpy``, ``__main__``)
with the given arguments and then prints the names in ``sys.modules``: torch and PySide6 must not
be among them. (``-X importtime`` would miss modules loaded through ``importlib.import_module``,
which is how ``main.py`` loads the ``cli`` modules; ``sys.modules`` misses nothing.)
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

HEAVY = ("torch", "PySide6", "torchvision", "timm", "faiss", "cv2")

_PROBE = """
import json, runpy, sys
sys.argv = ["main.py"] + json.loads(sys.argv[1])
out = sys.stdout
sys.stdout = open("/dev/null" if sys.platform != "win32" else "nul", "w")
try:
    runpy.run_path("main.py", run_name="__main__")
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=out)
"""


def imported_modules(*args: str) -> tuple[set[str], int]:
    """The modules ``main.py ARGS`` imported (run as the program, in a fresh interpreter) and its exit status."""
    out = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(list(args))], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return set(res["modules"]), res["code"]


def test_the_probe_sees_what_a_run_imports():
    """The probe lists the modules a run does import, the cli modules included (else the test
    below would pass vacuously), and torch when a command does need it."""
    names, code = imported_modules("fit", "-h")
    assert code == 0
    assert {"argparse", "cli.fit", "cli.pretrain", "engine.backbones.registry"} <= names
    names, _ = imported_modules("backbones")
    assert "torch" in names


@pytest.mark.parametrize("args", [["-h"], ["--version"], ["fit", "-h"], ["predict", "-h"], ["evaluate", "-h"],
                                  ["demo", "-h"], ["backbones", "-h"], ["calibrate", "-h"], ["pretrain", "-h"],
                                  ["selftest", "-h"]], ids=" ".join)
def test_help_and_version_import_no_torch_or_qt(args):
    names, code = imported_modules(*args)
    assert code in (0, None)
    heavy = sorted(names & set(HEAVY))
    assert not heavy, f"`main.py {' '.join(args)}` imported {heavy}"


def test_fit_help_still_lists_every_backbone_and_scorer():
    """The torch-free names the help shows are the registry's and the scorers' own."""
    from engine.backbones.registry import BACKBONES
    from engine.scorers import SCORERS

    out = subprocess.run([sys.executable, str(REPO / "main.py"), "fit", "-h"], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    text = " ".join(out.stdout.split())
    for name in BACKBONES:
        assert name in text
    assert "{" + ",".join(sorted(SCORERS)) + "}" in text


def test_names_repeated_for_fast_help_agree_with_the_engine():
    import cli.evaluate
    import engine.evaluate
    from engine.scorers import SCORER_NAMES, SCORERS

    assert cli.evaluate.MODEL_FILE == engine.evaluate.MODEL_FILE
    assert sorted(SCORER_NAMES) == sorted(SCORERS)
    assert all(cls.name == name for name, cls in SCORERS.items())
