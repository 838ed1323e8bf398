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
    assert "threshold" in out and "from good images only (cross-fit, 5 folds)" in out  # how it was chosen
    assert "synthetic defects detected" in out
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
    assert "image_auroc=" in out and "backbone: efficientnet_lite0" in out and "ms/image" in out
    m = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert set(m["metrics"]) >= {"image_auroc", "aupr", "f1_max", "pixel_auroc", "aupro"}


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
