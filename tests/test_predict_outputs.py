"""What predict writes when a single image's result cannot be written: names too long, a path that is not
writable, names that are not valid UTF-8; the output-name rule shared with the app's NOK saver; the
append-only CSV (rows whole or absent, a torn last row repaired on --resume)."""

from __future__ import annotations

import csv
import os
import re
import sys
from pathlib import Path

import pytest

from engine.outputs import AppendOnlyCsv, OutputWriteError, short_stem
from main import main
from tests.output_helpers import tiny_model_file, write_png

HEADER = ["file", "score", "verdict"]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return tiny_model_file(tmp_path_factory)


def _rows(csv_path: Path) -> list[dict]:
    with open(csv_path, newline="", encoding="utf-8", errors="surrogateescape") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------------------------ name rule
def test_short_stem_is_safe_bounded_deterministic_and_unique():
    assert short_stem("bottle_000") == "bottle_000"  # short, safe names are kept as they are
    assert short_stem('a/b\\c:d*e?f"g<h>i|j\x01k') == "a_b_c_d_e_f_g_h_i_j_k"  # refused by some file system
    assert short_stem("  ..  ") == "image" and short_stem("") == "image"
    assert short_stem("Prüfteil Nr 5") == "Prüfteil Nr 5"  # letters of any script and spaces are kept
    assert short_stem("bad\udcffbyte") == "bad_byte"  # an undecodable byte of a file name (surrogate)
    long_a, long_b = "station_" + "x" * 300 + "_a", "station_" + "x" * 300 + "_b"
    a, b = short_stem(long_a), short_stem(long_b)
    assert len(a.encode()) <= 100 and len(b.encode()) <= 100
    assert a != b and a == short_stem(long_a)  # differ after the cut -> still differ; same text -> same name
    assert a.startswith("station_xxx") and "~" in a
    assert a.endswith("x_a") and b.endswith("x_b")  # the end (the file's own name) stays readable
    # multi-byte characters are never cut in half, the budget counts bytes (255-byte file-name limit)
    c = short_stem("ü" * 300, 40)
    assert len(c.encode()) <= 40 and c.startswith("ü" * 7) and c.endswith("ü" * 7)
    with pytest.raises(ValueError):
        short_stem("x", 8)


def test_nok_saver_and_predict_share_the_rule():
    import datetime as dt

    from gui.nok_saver import NOK_STEM_BYTES, nok_paths

    when = dt.datetime(2026, 1, 2, 3, 4, 5, 678000)
    name = "camera_" + "7" * 400 + ".png"
    img, ovl = nok_paths("/data/nok", name, when)
    assert img.parent == Path("/data/nok/2026-01-02")
    assert img.name == f"030405_678_{short_stem(Path(name).stem, NOK_STEM_BYTES)}.png"
    assert len(ovl.name.encode()) <= 11 + NOK_STEM_BYTES + len("_overlay.png")
    other, _ = nok_paths("/data/nok", "camera_" + "7" * 399 + "8.png", when)
    assert other != img


# ------------------------------------------------------------------------------------ the CSV
def test_csv_rows_are_whole_and_a_torn_last_row_is_dropped_on_resume(tmp_path):
    path = tmp_path / "r.csv"
    with AppendOnlyCsv.create(path, HEADER) as out:
        out.append(["a, with comma.png", 1.5, "OK"])
        out.append(['b "quoted"\nnewline.png', 2.5, "NOK"])
    whole = path.read_bytes()
    with open(path, "ab") as fh:  # the process died in the middle of the third row
        fh.write(b"c.png,3.")
    with AppendOnlyCsv.resume(path, HEADER) as out:
        assert [r["file"] for r in out.rows] == ["a, with comma.png", 'b "quoted"\nnewline.png']
        assert path.read_bytes() == whole  # the torn row is cut off before anything is appended
        assert out.torn_row_dropped
        out.append(["c.png", 3.5, "OK"])
    assert [r["score"] for r in _rows(path)] == ["1.5", "2.5", "3.5"]
    with AppendOnlyCsv.resume(path, HEADER) as out:  # a whole file: nothing removed, nothing said
        assert not out.torn_row_dropped and len(out.rows) == 3
    for stopped_at in (b"", b"file,sco"):  # killed before the header was whole: the file starts again
        path.write_bytes(stopped_at)
        with AppendOnlyCsv.resume(path, HEADER) as out:
            assert out.rows == []
        assert path.read_bytes() == b"file,score,verdict\r\n"


def test_csv_resume_refuses_another_header_and_an_edited_file(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("name;score\nx;1\n")
    with pytest.raises(OutputWriteError, match="not a results file of this version"):
        AppendOnlyCsv.resume(path, HEADER)
    with AppendOnlyCsv.create(path, HEADER) as out:
        out.append(["a.png", 1, "OK"])
    path.write_bytes(path.read_bytes() + b"b.png,2\r\nc.png,3,OK\r\n")  # a short row in the middle: edited
    with pytest.raises(OutputWriteError, match="changed since it was written"):
        AppendOnlyCsv.resume(path, HEADER)


# ------------------------------------------------------------------------------------ predict, per image
def test_predict_long_names_are_shortened_and_every_image_gets_its_row(tiny_model, tmp_path, capsys):
    """Case predict-long-name-crash: folder and file names of 200 characters each (legal) made an overlay
    name over the 255-byte limit; the batch stopped, the CSV kept only its header."""
    folder = tmp_path / "in" / ("station_camera_" + "x" * 185)
    long_a = write_png(folder / ("part_serial_" + "7" * 188 + ".png"), 1)
    long_b = write_png(folder / ("part_serial_" + "7" * 187 + "8.png"), 2)  # differs only after the cut
    short = write_png(folder / "short.png", 3)
    out = tmp_path / "pred"
    assert main(["predict", "--model", str(tiny_model), str(folder), "--out", str(out), "--quiet"]) == 0
    rows = _rows(out / "predictions.csv")
    assert sorted(r["file"] for r in rows) == sorted(map(str, (long_a, long_b, short)))
    assert all(r["error"] == "" and r["verdict"] in ("OK", "NOK") for r in rows)
    names = [Path(r["overlay"]).name for r in rows]
    assert len(set(names)) == 3 and all(len(n.encode()) <= 104 for n in names)
    assert all((out / r["overlay"]).is_file() for r in rows)
    # the middle is cut out: the folder's start, the hash of the whole name and the file's own end remain
    assert all(re.fullmatch(r"station_camera_x+~[0-9a-f]{8}~[x7_]*[0-9a-z_]+\.png", n) for n in names), names
    by_file = {r["file"]: Path(r["overlay"]).name for r in rows}
    assert by_file[str(short)].endswith("_short.png") and by_file[str(long_b)].endswith("78.png")
    capsys.readouterr()
    out2 = tmp_path / "pred2"  # the same inputs get the same names (a resumed run finds them again)
    assert main(["predict", "--model", str(tiny_model), str(folder), "--out", str(out2), "--quiet"]) == 0
    assert {r["file"]: r["overlay"] for r in _rows(out2 / "predictions.csv")} == {r["file"]: r["overlay"] for r in rows}


def test_an_overlay_that_cannot_be_written_costs_that_overlay_only(tiny_model, tmp_path, capsys):
    folder = tmp_path / "in" / "cam"
    paths = [write_png(folder / f"{i:03d}.png", i) for i in range(4)]
    out = tmp_path / "pred"
    (out / "overlays" / "cam_001.png").mkdir(parents=True)  # something else holds that name: not writable
    rc = main(["predict", "--model", str(tiny_model), str(folder), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1  # the run is not clean, but it finished
    rows = {r["file"]: r for r in _rows(out / "predictions.csv")}
    assert set(rows) == set(map(str, paths))  # every image inspected and in the CSV
    bad = rows[str(paths[1])]
    assert bad["verdict"] in ("OK", "NOK") and bad["score"] != "" and bad["overlay"] == ""
    assert bad["error"] == "overlay not written (Is a directory: overlays/cam_001.png)"  # the reason itself
    assert "disk full" not in err.lower() and "Traceback" not in err
    assert f"warning: {paths[1]}: overlay not written (Is a directory" in err
    assert "1 overlay could not be written" in err
    for p in (paths[0], paths[2], paths[3]):
        assert rows[str(p)]["error"] == "" and (out / rows[str(p)]["overlay"]).is_file()


@pytest.mark.skipif(sys.platform != "linux", reason="file names of raw bytes are a POSIX feature")
def test_a_file_name_that_is_not_utf8_is_inspected_and_found_again_by_resume(tiny_model, tmp_path, capsys):
    folder = tmp_path / "in"
    odd = folder / os.fsdecode(b"part_\xe9t\xe9.png")  # Latin-1 bytes, invalid UTF-8
    try:
        write_png(odd, 5)
    except (OSError, UnicodeError) as exc:
        pytest.skip(f"this file system refuses non-UTF-8 names ({exc})")
    plain = write_png(folder / "plain.png", 6)
    out = tmp_path / "pred"
    assert main(["predict", "--model", str(tiny_model), str(folder), "--out", str(out), "--quiet"]) == 0
    rows = {r["file"]: r for r in _rows(out / "predictions.csv")}
    assert set(rows) == {str(odd), str(plain)}  # the original bytes, kept in the CSV
    assert rows[str(odd)]["overlay"] == "overlays/in_part__t_.png" and (out / "overlays/in_part__t_.png").is_file()
    capsys.readouterr()
    assert main(["predict", "--model", str(tiny_model), str(folder), "--out", str(out), "--quiet", "--resume"]) == 0
    assert "2 images of these paths done" in capsys.readouterr().err and len(_rows(out / "predictions.csv")) == 2


def test_resume_continues_the_csv_and_refuses_another_models_rows(tiny_model, tmp_path, capsys):
    folder = tmp_path / "in"
    paths = [write_png(folder / f"{i:03d}.png", 10 + i) for i in range(5)]
    out = tmp_path / "pred"
    assert main(["predict", "--model", str(tiny_model), *map(str, paths[:2]), "--out", str(out), "--quiet"]) == 0
    first = (out / "predictions.csv").read_bytes()
    overlay_0 = (out / "overlays" / "in_000.png").stat().st_mtime_ns
    assert main(["predict", "--model", str(tiny_model), str(folder), "--out", str(out), "--quiet", "--resume"]) == 0
    said = capsys.readouterr()
    assert "2 images of these paths done" in said.err
    assert "(this run; 5 rows in the file in all)" in said.out
    assert (out / "predictions.csv").read_bytes().startswith(first)  # continued, not rewritten
    rows = _rows(out / "predictions.csv")
    assert [r["file"] for r in rows] == list(map(str, paths))  # each once, in order
    assert (out / "overlays" / "in_000.png").stat().st_mtime_ns == overlay_0  # kept, not redrawn
    assert not [d for d in out.iterdir() if d.name.startswith("previous-")]
    # a model with another threshold: its scores would not be comparable with the rows already there
    from engine.model import InspectionModel

    other = tmp_path / "other.dimodel"
    m = InspectionModel.load(tiny_model, device="cpu")
    m.threshold = (m.threshold or 1.0) * 2
    m.save(other)
    rc = main(["predict", "--model", str(other), str(folder), "--out", str(out), "--quiet", "--resume"])
    assert rc == 2 and "its rows were made with another model" in capsys.readouterr().err
    assert len(_rows(out / "predictions.csv")) == 5
    # without --resume the earlier results are moved aside whole, as before
    assert main(["predict", "--model", str(tiny_model), str(paths[0]), "--out", str(out), "--quiet"]) == 0
    prev = [d for d in out.iterdir() if d.name.startswith("previous-")]
    assert len(prev) == 1 and len(_rows(prev[0] / "predictions.csv")) == 5


def test_a_temporary_left_by_a_killed_writer_is_removed_by_a_later_save_once_stale(tmp_path):
    """replace_atomically removes hidden .<name>.*.tmp files older than STALE_TEMPORARY_S (a kill
    leaves them behind) and keeps younger ones (another writer may be at work) and other names'."""
    import os
    import time

    from engine.outputs import STALE_TEMPORARY_S, replace_atomically

    target = tmp_path / "m.dimodel"
    old = tmp_path / ".m.dimodel.abc123.tmp"
    young = tmp_path / ".m.dimodel.def456.tmp"
    other = tmp_path / ".n.dimodel.abc123.tmp"
    for f in (old, young, other):
        f.write_bytes(b"partial")
    past = time.time() - STALE_TEMPORARY_S - 60
    os.utime(old, (past, past))
    os.utime(other, (past, past))
    replace_atomically(target, lambda tmp: open(tmp, "wb").write(b"new"))
    assert target.read_bytes() == b"new"
    assert not old.exists() and young.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == [young.name, other.name]


def test_resume_with_other_paths_warns_and_an_overlays_file_is_refused_before_work(tiny_model, tmp_path, capsys):
    """--resume given paths none of whose images is in the CSV says so (rows of two runs would mix in
    one file silently); an ``overlays`` that is a file is refused before any image is inspected."""
    from main import main

    model_file = tiny_model
    first, second = tmp_path / "first", tmp_path / "second"
    for i in range(4):
        write_png((first if i < 2 else second) / f"{i}.png", i)
    out = tmp_path / "out"
    assert main(["predict", "--model", str(model_file), str(first), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["predict", "--model", str(model_file), str(second), "--out", str(out), "--resume", "--quiet"]) == 0
    assert "none of the 2 rows already in" in capsys.readouterr().err
    assert main(["predict", "--model", str(model_file), str(first), "--out", str(out), "--resume", "--quiet"]) == 0
    assert "none of the" not in capsys.readouterr().err  # the same paths again: nothing to say
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "overlays").write_text("not a folder")
    assert main(["predict", "--model", str(model_file), str(first), "--out", str(bad), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "overlays: exists and is not a folder" in err and not (bad / "predictions.csv").exists()
