"""Defect log: WAL mode, one committed row per inspection, CSV export with header (all / NOK only)."""

from __future__ import annotations

import csv
import sqlite3

import pytest

from gui.defect_log import COLUMNS, EXPORT_COLUMNS, DefectLog, DefectLogError, LogEntry, Preview, threshold_event


def entry(i: int, verdict: str) -> LogEntry:
    return LogEntry(source="folder", file=f"/parts/{i:03d}.png", verdict=verdict, score=1.0 + i,
                    score_normalised=0.1 * i, threshold=2.5, station="line 1", recipe="bottle",
                    backbone="efficientnet_lite0", latency_ms=12.5)


def test_log_uses_wal_and_rows_are_visible_to_another_connection_at_once(tmp_path):
    log = DefectLog(tmp_path / "log.sqlite")
    assert log.journal_mode == "wal"
    row_id = log.add(entry(1, "NOK"))
    other = sqlite3.connect(tmp_path / "log.sqlite")
    assert other.execute("SELECT id, verdict, file FROM inspections").fetchall() == [(row_id, "NOK", "/parts/001.png")]
    other.close()
    log.close()


def test_rows_newest_first_and_nok_filter(tmp_path):
    log = DefectLog(tmp_path / "log.sqlite")
    for i, v in enumerate(["OK", "NOK", "OK", "NOK", "error"]):
        log.add(entry(i, v))
    assert [r[0] for r in log.rows()] == [5, 4, 3, 2, 1]
    assert [r[COLUMNS.index("verdict")] for r in log.rows(nok_only=True)] == ["NOK", "NOK"]
    assert log.count() == 5 and log.count(nok_only=True) == 2
    assert entry(9, "OK").row(7)[0] == 7 and len(entry(9, "OK").row(7)) == len(COLUMNS)


def test_csv_export_has_header_and_all_or_only_nok_rows(tmp_path):
    log = DefectLog(tmp_path / "log.sqlite")
    for i, v in enumerate(["OK", "NOK", "OK"]):
        log.add(entry(i, v))
    assert log.export_csv(tmp_path / "all.csv") == 3
    with open(tmp_path / "all.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    assert [r[EXPORT_COLUMNS.index("file")] for r in rows[1:]] == ["/parts/000.png", "/parts/001.png", "/parts/002.png"]
    assert rows[1][EXPORT_COLUMNS.index("nok_image")] == ""  # NULL -> empty cell
    assert {r[EXPORT_COLUMNS.index("preview_verdict")] for r in rows[1:]} == {""}  # no preview
    assert log.export_csv(tmp_path / "nok.csv", nok_only=True) == 1
    with open(tmp_path / "nok.csv", newline="") as fh:
        nok = list(csv.DictReader(fh))
    assert [r["verdict"] for r in nok] == ["NOK"] and float(nok[0]["threshold"]) == 2.5


def test_threshold_change_is_an_event_row_and_preview_columns_judge_only_this_recipes_rows(tmp_path):
    log = DefectLog(tmp_path / "log.sqlite")
    for i, v in enumerate(["OK", "NOK", "OK"]):  # scores 1, 2, 3; verdicts as logged, whatever they were
        log.add(entry(i, v))
    log.add(LogEntry(source="folder", file="/other.png", verdict="OK", score=2.2, threshold=9.0, recipe="gear"))
    log.add(threshold_event(2.5, 1.5, recipe="bottle", station="line 1"))
    log.add(LogEntry(source="folder", file="/bad.png", verdict="error", recipe="bottle", message="unreadable"))
    assert log.count() == 5 and log.count(nok_only=True) == 1 and log.count(after_id=4) == 1
    event = log.rows()[1]
    assert event[COLUMNS.index("verdict")] == "event" and event[COLUMNS.index("threshold")] == 1.5
    assert event[COLUMNS.index("message")] == "threshold changed 2.5 -> 1.5 by operator"
    assert [r[COLUMNS.index("verdict")] for r in log.rows(nok_only=True)] == ["event", "NOK"]

    n = log.export_csv(tmp_path / "preview.csv", preview=Preview("bottle", 1.5))
    with open(tmp_path / "preview.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert n == 6 and list(rows[0]) == list(EXPORT_COLUMNS)
    # logged verdicts unchanged; preview verdicts = score >= 1.5 for this recipe's scored rows only
    assert [r["verdict"] for r in rows] == ["OK", "NOK", "OK", "OK", "event", "error"]
    assert [r["preview_verdict"] for r in rows] == ["OK", "NOK", "NOK", "", "", ""]
    assert [r["preview_threshold"] for r in rows] == ["1.5", "1.5", "1.5", "", "", ""]
    assert EXPORT_COLUMNS.index("preview_verdict") == EXPORT_COLUMNS.index("verdict") + 1


def test_unwritable_log_location_raises_with_the_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DefectLogError, match="DINOINSPECT_DATA_DIR"):
        DefectLog(blocker / "log.sqlite")
