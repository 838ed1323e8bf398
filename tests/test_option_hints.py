"""Every option a listing / layout message suggests exists in that command's parser.

Each command is run (in-process, through ``main.main``) on folders laid out the ways a new user
gets wrong -- empty, images one level deeper, only non-images, missing, a sub-folder beside the
images -- and every ``--option`` named on stderr must be one of that command's options."""

import re

import numpy as np
import pytest
from PIL import Image

from main import build_parser, main


def options_of(command: str) -> set[str]:
    import argparse

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {s for a in sub.choices[command]._actions for s in a.option_strings}


def img(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)


def layouts(tmp_path):
    """name -> folder: the listing situations that produce an error or a hint."""
    (tmp_path / "empty").mkdir()
    img(tmp_path / "deeper/line1/a.png")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs/readme.txt").write_text("x")
    img(tmp_path / "beside/a.png")
    img(tmp_path / "beside/sub/b.png")
    return {"empty": tmp_path / "empty", "deeper": tmp_path / "deeper", "docs": tmp_path / "docs",
            "missing": tmp_path / "missing", "beside": tmp_path / "beside"}


def argvs(command, folder, tmp_path):
    """Command lines that reach the listing of ``folder`` (an unwritable --out stops fit after it)."""
    model = str(tmp_path / "none.dimodel")
    if command == "fit":
        base = ["fit", "--good", str(folder), "--out", str(tmp_path / "no/such/dir/m.dimodel")]
    elif command == "predict":
        base = ["predict", "--model", model, str(folder), "--out", str(tmp_path / "pred")]
    elif command == "calibrate":
        base = ["calibrate", "--model", model, "--good", str(folder)]
    elif command == "pretrain":
        # a missing checkpoint to resume from stops it right after the listing
        base = ["pretrain", "--good", str(folder), "--out", str(tmp_path / "bb.safetensors"),
                "--resume", str(tmp_path / "none.pt")]
    yield base
    if "--recursive" in options_of(command):
        yield base + ["--recursive"]


@pytest.mark.parametrize("command", ["fit", "predict", "calibrate", "pretrain"])
def test_listing_messages_name_only_options_the_command_has(command, tmp_path, capsys):
    known = options_of(command)
    seen, texts = 0, ""
    for name, folder in layouts(tmp_path).items():
        for argv in argvs(command, folder, tmp_path):
            rc = main(argv + ["--quiet"])
            err = capsys.readouterr().err
            assert rc != 0 and "Traceback" not in err, (argv, err)
            named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", err))
            assert named <= known, (name, argv, named - known, err)
            seen += bool(named)
            texts += err
    if "--recursive" in known:
        assert seen >= 1 and "or add --recursive." in texts  # the 'images one level deeper' case suggests it
    else:
        assert "Its sub-folders hold images: point to one of them." in texts


def test_evaluate_layout_messages_name_only_evaluate_options(tmp_path, capsys):
    known = options_of("evaluate")
    cat = tmp_path / "cat"
    img(cat / "train/good/line1/a.png")  # images one level deeper than the layout has them
    img(cat / "test/good/b.png")
    (tmp_path / "nocat").mkdir()
    for data in (cat, tmp_path / "nocat", tmp_path / "missing"):
        rc = main(["evaluate", "--data", str(data), "--report", str(tmp_path / "rep"), "--quiet"])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1, err
        named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", err))
        assert named <= known, (data, named - known, err)
