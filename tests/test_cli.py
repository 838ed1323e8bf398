import re
"""The headless CLI, end to end on synthetic parts (fast) and the PyPI demo data."""

import csv
import json

import pytest

from main import main


def test_fit_then_predict_writes_csv_and_overlays(synthetic_mvtec, tmp_path, capsys):
    model = tmp_path / "toy.dimodel"
    rc = main(["fit", "--good", str(synthetic_mvtec / "train/good"), "--out", str(model), "--backbone",
               "efficientnet_lite0", "--size", "64", "--quiet"])
    assert rc == 0 and model.is_file()
    out = capsys.readouterr().out
    assert "efficientnet_lite0" in out
    # how it was chosen (the balanced rule: goods against synthetic defects), its FRR and synthetic catch
    assert re.search(r"threshold \S+ chosen by .*\(cross-fit, 5 folds\); expected false-reject rate", out)
    assert "of synthetic defects" in out
    assert re.search(r"synthetic defects caught at this threshold, by kind: .*cutpaste \d+%", out)
    first = model.read_bytes()
    rc = main(["fit", "--good", str(synthetic_mvtec / "train/good"), "--out", str(model), "--backbone",
               "efficientnet_lite0", "--size", "64", "--quiet", "--folds", "0", "--holdout", "0.2"])
    assert rc == 0 and (tmp_path / "toy.dimodel.bak").read_bytes() == first  # the replaced model is kept
    out = capsys.readouterr()
    assert "previous model is kept" in out.err and "hold-out" in out.out
    rc = main(["fit", "--good", str(synthetic_mvtec / "train/good"), "--out", str(tmp_path), "--quiet"])
    assert rc == 2 and "is a folder" in capsys.readouterr().err  # refused before any work
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "corrupt.png").write_bytes(b"nope")
    rc = main(["predict", "--model", str(model), str(synthetic_mvtec / "test/scratch"), str(tmp_path / "in"),
               "--out", str(tmp_path / "out"), "--quiet"])
    assert rc == 1  # one unreadable file -> non-zero exit, but every other row is written
    rows = list(csv.DictReader(open(tmp_path / "out" / "predictions.csv")))
    assert len(rows) == 5 and rows[0]["backbone"] == "efficientnet_lite0"
    bad = [r for r in rows if r["verdict"] == "error"]
    assert len(bad) == 1 and "corrupt.png" in bad[0]["error"]
    assert {r["verdict"] for r in rows} <= {"OK", "NOK", "error"}
    assert all(float(r["score"]) >= 0 for r in rows if r["verdict"] != "error")
    assert len(list((tmp_path / "out" / "overlays").glob("*.png"))) == 4


def test_evaluate_command_writes_report(synthetic_mvtec, tmp_path, capsys):
    rc = main(["evaluate", "--data", str(synthetic_mvtec), "--report", str(tmp_path / "rep"),
               "--backbone", "efficientnet_lite0", "--size", "64", "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "backbone: efficientnet_lite0" in out and "ms/image" in out
    m = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert set(m["metrics"]) >= {"image_auroc", "aupr", "f1_max", "pixel_auroc", "aupro"}
    assert f"toy: image AUROC={m['metrics']['image_auroc']:.4f}  AUPR={m['metrics']['aupr']:.4f}" in out


def test_errors_are_reported_once_with_exit_code_2(tmp_path, capsys):
    rc = main(["fit", "--good", str(tmp_path), "--out", str(tmp_path / "m.dimodel"), "--quiet"])
    assert rc == 2 and "no images found" in capsys.readouterr().err
    rc = main(["predict", "--model", str(tmp_path / "x.dimodel"), str(tmp_path), "--out", str(tmp_path / "o")])
    assert rc == 2 and "no images found" in capsys.readouterr().err  # inputs are checked before the model
    import numpy as np
    from PIL import Image

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "part.png")
    (tmp_path / "broken.dimodel").write_bytes(b"xx")
    rc = main(["predict", "--model", str(tmp_path / "broken.dimodel"), str(tmp_path), "--out", str(tmp_path / "o")])
    assert rc == 2 and "damaged" in capsys.readouterr().err
    rc = main(["predict", "--model", str(tmp_path / "broken.dimodel"), str(tmp_path), "--out", str(tmp_path / "part.png")])
    assert rc == 2 and "is a file" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse refuses out-of-range values before any work
        main(["fit", "--good", str(tmp_path), "--out", str(tmp_path / "m.dimodel"), "--coreset-ratio", "0"])


def test_demo_runs_on_pypi_solar_cells(tmp_path, capsys):
    pytest.importorskip("elpv_dataset")
    rc = main(["demo", "--report", str(tmp_path / "demo"), "--n-train", "40", "--n-test", "20", "--size", "128",
               "--quiet"])
    assert rc == 0
    res = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    from engine.backbones import resolve_backbone_name

    assert res["n_test"] == 40 and res["backbone"]["name"] == resolve_backbone_name("auto")
    # defective cells (expert probability >= 2/3) must rank above functional ones far better than chance
    assert res["metrics"]["image_auroc"] > 0.7


def test_device_errors_and_repeated_predict_keep_earlier_results(synthetic_mvtec, tmp_path, capsys):
    import torch

    good = str(synthetic_mvtec / "train/good")
    rc = main(["fit", "--good", good, "--out", str(tmp_path / "m.dimodel"), "--device", "gpu", "--quiet"])
    assert rc == 2 and "unknown device 'gpu'" in capsys.readouterr().err
    if not torch.cuda.is_available():
        rc = main(["fit", "--good", good, "--out", str(tmp_path / "m.dimodel"), "--device", "cuda", "--quiet"])
        assert rc == 2 and "no CUDA GPU" in capsys.readouterr().err
    (tmp_path / "report.txt").write_text("keep me")
    rc = main(["evaluate", "--data", str(synthetic_mvtec), "--report", str(tmp_path / "report.txt"), "--quiet"])
    assert rc == 2 and "is a file" in capsys.readouterr().err
    assert (tmp_path / "report.txt").read_text() == "keep me"

    model = tmp_path / "toy.dimodel"
    assert main(["fit", "--good", good, "--out", str(model), "--backbone", "efficientnet_lite0", "--size", "64",
                 "--quiet"]) == 0
    out = tmp_path / "pred"
    assert main(["predict", "--model", str(model), str(synthetic_mvtec / "test/scratch"), "--out", str(out),
                 "--quiet"]) == 0
    first = (out / "predictions.csv").read_text()
    one = sorted((synthetic_mvtec / "test/good").iterdir())[0]
    assert main(["predict", "--model", str(model), str(one), "--out", str(out), "--quiet"]) == 0
    assert "earlier run's results: moved to" in capsys.readouterr().err
    prev = [d for d in out.iterdir() if d.name.startswith("previous-")]
    assert len(prev) == 1 and (prev[0] / "predictions.csv").read_text() == first
    assert len(list((prev[0] / "overlays").glob("*.png"))) == len(first.splitlines()) - 1
    assert len((out / "predictions.csv").read_text().splitlines()) == 2  # header + the one new image
    assert len(list((out / "overlays").glob("*.png"))) == 1


def test_predict_keeps_one_overlay_per_row_and_evaluate_reports_what_the_threshold_catches(synthetic_mvtec, tmp_path,
                                                                                           capsys):
    import shutil

    model = tmp_path / "toy.dimodel"
    assert main(["fit", "--good", str(synthetic_mvtec / "train/good"), "--out", str(model), "--backbone",
                 "efficientnet_lite0", "--size", "64", "--quiet"]) == 0
    # two different files with the same folder and file name, plus one file given twice
    other = tmp_path / "other" / "good"
    other.mkdir(parents=True)
    shutil.copy(synthetic_mvtec / "test/scratch/000.png", other / "000.png")
    one = synthetic_mvtec / "test/good/000.png"
    out = tmp_path / "pred"
    assert main(["predict", "--model", str(model), str(one), str(other / "000.png"), str(synthetic_mvtec / "test/good"),
                 "--out", str(out), "--quiet"]) == 0
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    assert len(rows) == 5  # 4 test/good images (000 once) + the other 000
    overlays = [r["overlay"] for r in rows]
    assert len(set(overlays)) == 5 and all((out / o).is_file() for o in overlays)
    assert len(list((out / "overlays").glob("*.png"))) == 5

    rep = tmp_path / "rep"
    capsys.readouterr()
    assert main(["evaluate", "--data", str(synthetic_mvtec), "--report", str(rep), "--backbone", "efficientnet_lite0",
                 "--size", "64", "--quiet"]) == 0
    m = json.loads((rep / "metrics.json").read_text())
    a = m["at_threshold"]
    # counts derived independently from the per-image scores and the threshold
    per = m["per_image"]
    assert len(per) == 8 and a["threshold"] == m["threshold"]
    assert a["n_defective"] == 4 and a["n_good"] == 4
    assert a["n_defective_flagged"] == sum(r["score"] >= a["threshold"] for r in per if r["label"] == 1)
    assert a["n_good_rejected"] == sum(r["score"] >= a["threshold"] for r in per if r["label"] == 0)
    summary = (rep / "summary.md").read_text()
    assert f"{a['n_defective_flagged']} of 4 defective images flagged" in summary
    assert f"{a['n_defective_flagged']} of 4 defective flagged" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------
# What the commands say (issue 11)


def _subparsers():
    import argparse

    from main import build_parser

    p = build_parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_every_option_of_every_command_has_help_and_shows_its_default():
    import argparse
    import re

    commands = _subparsers()
    assert {"fit", "predict", "evaluate", "demo", "backbones", "calibrate", "pretrain"} <= set(commands)
    missing = []
    for name, parser in commands.items():
        for a in parser._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            text = (a.help or "").strip()
            words = re.sub(r"\(?default:? %\(default\)s\)?", "", text).split()
            where = f"{name} {'/'.join(a.option_strings) or a.dest}"
            if a.help == argparse.SUPPRESS or len(words) < 2:
                missing.append(f"{where}: no help beyond the default")
            if a.default not in (None, False, argparse.SUPPRESS) and "default" not in text:
                missing.append(f"{where}: default {a.default!r} not shown")
            if a.choices and a.default is not None and "%(default)s" not in text:
                missing.append(f"{where}: choices without %(default)s")
    assert not missing, missing


def test_help_of_each_command_lists_its_choices(capsys):
    for name, parser in _subparsers().items():
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        text = capsys.readouterr().out
        for a in parser._actions:
            for choice in a.choices or ():
                assert str(choice) in text, (name, a.dest, choice)


def test_fit_banner_and_counts_are_worded_for_people(synthetic_mvtec, tmp_path, capsys):
    one = tmp_path / "one"
    one.mkdir()
    (synthetic_mvtec / "train/good/000.png").rename(one / "000.png")
    rc = main(["fit", "--good", str(one), "--out", str(tmp_path / "m.dimodel"), "--backbone", "efficientnet_lite0",
               "--size", "64", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "need at least 2 good images" in err  # refused, but the banner came first:
    assert "fitting on 1 image from" in err and "threshold=none" not in err and "threshold: set after fit" in err


def test_progress_keeps_the_cross_fit_bar_while_each_fold_fits(monkeypatch):
    import io
    import sys

    from engine.progress import TqdmProgress

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    prog = TqdmProgress()
    prog(3, 3, "features")
    assert prog.stages == []  # a finished stage closes its bar
    prog(0, 2, "cross-fit")
    outer = prog._bars[0][1]
    prog(1000, 3000, "coreset")  # the fold's scorer fit reports below the cross-fit bar
    assert prog.stages == ["cross-fit", "coreset"]
    prog(1, 2, "cross-fit")
    assert prog.stages == ["cross-fit"] and prog._bars[0][1] is outer and outer.n == 1
    prog(1000, 3000, "coreset")
    prog(2000, 3000, "coreset")
    assert prog.stages == ["cross-fit", "coreset"]
    prog(2, 2, "cross-fit")
    assert prog.stages == [] and outer.n == 2  # completes, and its final count was drawn:
    assert "2/2" in sys.stderr.getvalue()
    prog(1, 4, "inspect")
    prog(1, 1, "padim: gaussians")  # a new stage at the same level replaces the unfinished one
    assert prog.stages == []
    prog.close()


def _flag_nothing(monkeypatch):
    """Make fit's threshold lie above every score (a threshold that flags nothing)."""
    import engine.calibration as cal

    real = cal.choose_threshold

    def above_everything(*a, **k):
        return real(*a, **k) | {"threshold": 1e12}

    monkeypatch.setattr(cal, "choose_threshold", above_everything)


def test_evaluate_says_precision_is_undefined_when_nothing_is_flagged(synthetic_mvtec, tmp_path, capsys,
                                                                      monkeypatch):
    _flag_nothing(monkeypatch)
    rep = tmp_path / "rep"
    assert main(["evaluate", "--data", str(synthetic_mvtec), "--report", str(rep), "--backbone", "efficientnet_lite0",
                 "--size", "64", "--quiet"]) == 0
    out = capsys.readouterr()
    m = json.loads((rep / "metrics.json").read_text())
    assert m["threshold"] == 1e12 and max(r["score"] for r in m["per_image"]) < 1e12  # nothing flagged
    assert m["metrics"]["precision"] is None and m["at_threshold"]["precision"] is None
    assert "undefined" in m["at_threshold"]["note"]
    assert "precision undefined (no image flagged)" in out.out and "precision=0.0000" not in out.out
    summary = (rep / "summary.md").read_text()
    assert "| precision at the model's threshold | undefined (no image flagged) |" in summary
    assert "precision 0.000" not in summary and "| precision | 0.0000 |" not in summary
    assert "0 of 4 defective flagged" in out.out and "warning: the threshold flags only 0 of 4" in out.err


def test_evaluate_writes_the_model_and_a_calibrate_command_that_runs_as_printed(synthetic_mvtec, tmp_path, capsys):
    import shlex

    rep = tmp_path / "rep"
    assert main(["evaluate", "--data", str(synthetic_mvtec), "--report", str(rep), "--backbone", "efficientnet_lite0",
                 "--size", "64", "--quiet", "--folds", "0", "--holdout", "0"]) == 0  # no threshold at all
    out = capsys.readouterr()
    model = rep / "model.dimodel"
    assert model.is_file() and f"model written to {model}" in out.out
    m = json.loads((rep / "metrics.json").read_text())
    assert m["model_file"] == str(model) and m["at_threshold"] is None
    cmd = m["calibrate_command"]
    assert cmd == (f"python main.py calibrate --model {model} --good {synthetic_mvtec / 'test/good'} "
                   f"--defective {synthetic_mvtec / 'test/scratch'}")
    assert cmd in out.err and cmd in (rep / "summary.md").read_text()
    argv = shlex.split(cmd)
    assert argv[:2] == ["python", "main.py"]
    assert main(argv[2:] + ["--quiet"]) == 0  # runnable as is: the model file gets a threshold
    from engine.model import InspectionModel

    assert InspectionModel.load(model).threshold is not None


def test_summary_shows_scorer_as_words_and_candidate_thresholds_with_their_consequences(synthetic_mvtec, tmp_path,
                                                                                        capsys):
    rep = tmp_path / "rep"
    assert main(["evaluate", "--data", str(synthetic_mvtec), "--report", str(rep), "--backbone", "efficientnet_lite0",
                 "--size", "64", "--quiet"]) == 0
    out = capsys.readouterr().out
    summary = (rep / "summary.md").read_text()
    assert "- scorer: knn (coreset ratio 0.1, k 1, metric l2" in summary
    import re

    assert re.search(r"\{'\w+': ", summary) is None  # no raw Python dict (it was "- scorer: {'coreset_ratio': 0.1...")
    m = json.loads((rep / "metrics.json").read_text())
    per = m["per_image"]
    good = sorted(r["score"] for r in per if r["label"] == 0)
    for c in m["threshold_candidates"][1:]:  # 4 goods: 1 %, 3 %, 5 % all allow no reject
        assert c["n_good_rejected"] == 0
        assert c["threshold"] == min(r["score"] for r in per if r["score"] > good[-1])
        assert f"| {c['threshold']:.4g} | 0 of 4 (0.0%) |" in summary
    assert "candidate thresholds on this labelled test set" in out and "F1-max (best F1 on this test set)" in out


def test_candidate_rows_say_when_a_threshold_rejects_all_good_parts():
    import numpy as np

    from engine.evaluate import candidate_rows
    from engine.metrics import threshold_candidates

    # goods 0.5 0.9; defects 0.1 0.2 0.3 0.95: flagging all (F1 8/10) beats any higher threshold (F1 <= 0.6)
    y, s = np.array([0, 0, 1, 1, 1, 1]), np.array([0.5, 0.9, 0.1, 0.2, 0.3, 0.95])
    rows = candidate_rows({"at_threshold": None, "threshold_candidates": threshold_candidates(y, s)})
    f1 = rows[0]
    assert f1[0].startswith("F1-max") and f1[1] == "0.1" and f1[2] == "2 of 2 (100.0%)"
    assert "rejects ALL good parts" in f1[5]
    assert all("ALL" not in r[5] for r in rows[1:])


def test_demo_report_goes_to_the_user_data_folder_not_the_current_one(tmp_path, capsys, monkeypatch):
    pytest.importorskip("elpv_dataset")
    monkeypatch.setenv("DINOINSPECT_DATA_DIR", str(tmp_path / "data"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    rc = main(["demo", "--n-train", "8", "--n-test", "4", "--backbone", "efficientnet_lite0", "--size", "64",
               "--quiet"])
    assert rc == 0 and list(cwd.iterdir()) == []
    report = tmp_path / "data" / "demo_report"
    out = capsys.readouterr()
    assert f"report and model go to {report}" in out.err and f"report with overlays: {report / 'summary.md'}" in out.out
    assert (report / "model.dimodel").is_file()
    assert (report / "summary.md").read_text().startswith("# Evaluation: ELPV solar cells (monocrystalline)\n")
    assert out.out.startswith("ELPV solar cells (monocrystalline): image AUROC=")
    # the demo's test images share one folder: no runnable calibrate command, the placeholder form instead
    assert json.loads((report / "metrics.json").read_text())["calibrate_command"] is None
    assert "--good GOOD_DIR --defective DEFECTIVE_DIR" in (report / "summary.md").read_text()


def test_weights_and_backbone_mistakes_get_plain_messages(synthetic_mvtec, tmp_path, capsys):
    good = str(synthetic_mvtec / "train/good")
    notes = tmp_path / "notes.pth"
    notes.write_text("not weights at all")
    rc = main(["fit", "--good", good, "--out", str(tmp_path / "m.dimodel"), "--backbone", "efficientnet_lite0",
               "--weights", str(notes), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and f"{notes} is not a weights file (expected a .pth/.pt/.safetensors state dict): " in err
    assert "weights_only" not in err
    import torch

    torch.save([1, 2], tmp_path / "list.pth")
    rc = main(["fit", "--good", good, "--out", str(tmp_path / "m.dimodel"), "--backbone", "efficientnet_lite0",
               "--weights", str(tmp_path / "list.pth"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and f"{tmp_path / 'list.pth'} is not a weights file" in err and "holds a list, not a dict" in err
    rc = main(["fit", "--good", good, "--out", str(tmp_path / "m.dimodel"), "--backbone", "part.dimodel", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "--backbone part.dimodel: that is a fitted model file" in err and "goes to --model" in err


def test_weights_variable_naming_a_file(tmp_path, capsys, monkeypatch):
    from engine.backbones import BACKBONES, find_local_weights
    from engine.backbones.registry import weights_env_problems

    official = tmp_path / "w" / BACKBONES["ibot_vits16"].weight_files[0]
    official.parent.mkdir()
    official.write_bytes(b"")
    monkeypatch.setenv("DINOINSPECT_WEIGHTS", str(official))  # a file, not a folder: accepted
    assert find_local_weights(BACKBONES["ibot_vits16"]) == official and weights_env_problems() == []
    own = tmp_path / "w" / "my_vit.pth"
    own.write_bytes(b"")
    monkeypatch.setenv("DINOINSPECT_WEIGHTS", str(own))  # a name no backbone looks for: said so
    assert main(["backbones"]) == 0
    err = capsys.readouterr().err
    assert f"warning: DINOINSPECT_WEIGHTS entry {own} is a file" in err and f"--weights {own}" in err


def test_fit_refuses_an_unwritable_out_before_any_work_and_nan_numbers(synthetic_mvtec, tmp_path, capsys):
    good = str(synthetic_mvtec / "train/good")
    a_file = tmp_path / "f.txt"
    a_file.write_text("x")
    for out, says in ((a_file / "m.dimodel", "is a file, not a folder"), (tmp_path / "no" / "m.dimodel", "does not exist")):
        assert main(["fit", "--good", good, "--out", str(out), "--backbone", "efficientnet_lite0", "--quiet"]) == 2
        err = capsys.readouterr().err
        assert says in err and "fitting on" not in err  # refused before the fit started
    with pytest.raises(SystemExit):
        main(["fit", "--good", good, "--out", str(tmp_path / "m.dimodel"), "--target-frr", "nan"])
    assert "nan is out of range (0, 0.5]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["calibrate", "--model", "m.dimodel", "--good", good, "--target-frr", "0.9"])
    assert "0.9 is out of range (0, 0.5]" in capsys.readouterr().err


def test_version_is_the_installed_distributions(capsys):
    import importlib.metadata

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"DINOInspect {importlib.metadata.version('dinoinspect')}"
