"""The strip of the last verdicts (pytest-qt, offscreen): the widget alone, then in the real window
after a folder run on the toy recipe (tests/gui/conftest.py) with good and defective textures."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtGui import QHelpEvent
from PySide6.QtWidgets import QToolTip

from gui.defect_log import COLUMNS
from gui.locations import open_settings
from gui.run_results import InspectionResult
from gui.verdict_strip import VerdictStrip
from tests.conftest import texture
from tests.gui.test_station_status import colour_name
from tests.gui.window_helpers import make_window, open_recipe, wait_idle

VERDICT_COLOUR = {"OK": "green", "NOK": "red", "n/a": "grey"}
COLUMN = {name: i for i, name in enumerate(COLUMNS)}  # the defect log's stored columns


def result(i: int, score: float | None, threshold: float | None = 0.5) -> InspectionResult:
    return InspectionResult("folder", f"/parts/test/{'broken' if i % 3 == 0 else 'good'}/{i:03d}.png", score,
                            threshold=threshold, time=dt.datetime(2026, 3, 4, 10, 32, i % 60),
                            error=None if score is not None else "cannot read")


@pytest.fixture
def strip(qtbot) -> VerdictStrip:
    s = VerdictStrip(length=5)
    qtbot.addWidget(s)
    s.resize(400, 60)
    s.show()
    qtbot.waitExposed(s)
    return s


def test_keeps_exactly_the_newest_n_oldest_left_newest_right(strip):
    scores = [0.1, 0.7, 0.2, 0.9, 0.3, 0.8, 0.4, 0.95]
    for i, s in enumerate(scores):
        strip.add_result(i, result(i, s))
    assert [t.index for t in strip.tiles] == [3, 4, 5, 6, 7]
    expected = ["NOK" if s >= 0.5 else "OK" for s in scores[3:]]
    assert strip.verdicts() == expected
    assert [colour_name(t.colour) for t in strip.tiles] == [VERDICT_COLOUR[v] for v in expected]
    rects = strip.tile_rects()
    lefts = [r.left() for r in rects]
    assert lefts == sorted(lefts) and len(set(lefts)) == 5  # left to right, oldest to newest
    assert 0 <= rects[0].left() and rects[-1].right() <= strip.bar.width()
    assert strip.bar.width() - rects[-1].right() < 4  # the newest tile sits at the right edge


def test_tooltips_carry_time_name_score_and_threshold(strip):
    strip.add_result(0, result(12, 0.73125, 0.5))
    strip.add_result(1, result(13, 0.2, None))
    strip.add_result(2, result(14, None))
    assert strip.tiles[0].tooltip == "10:32:12 · broken/012.png\nscore 0.7312 · threshold 0.5 → NOK"
    assert strip.tiles[1].tooltip == "10:32:13 · good/013.png\nscore 0.2 · threshold none → no threshold"
    assert colour_name(strip.tiles[1].colour) == "grey"
    assert strip.tiles[2].tooltip == "10:32:14 · good/014.png\nunreadable: cannot read"
    assert strip.verdicts() == ["NOK", "n/a", "error"]


def test_hovering_a_tile_shows_its_tooltip(strip, qtbot):
    strip.add_result(0, result(1, 0.9))
    strip.add_result(1, result(2, 0.1))
    pos = strip.tile_rects()[1].center().toPoint()
    event = QHelpEvent(QEvent.Type.ToolTip, pos, strip.bar.mapToGlobal(pos))
    strip.bar.event(event)
    qtbot.waitUntil(QToolTip.isVisible, timeout=2000)
    assert QToolTip.text() == strip.tiles[1].tooltip


def test_a_run_of_noks_is_counted_at_a_glance(strip):
    assert strip.summary_label.text() == "Last 5 parts: none yet"
    for i, s in enumerate([0.9, 0.1, 0.2, 0.6, 0.7]):
        strip.add_result(i, result(i, s))
    assert strip.summary_label.text() == "3 NOK in the last 5 — last 2 in a row"
    assert "color: #d93025" in strip.summary_label.styleSheet()  # red while there is a NOK among them
    strip.add_result(5, result(5, 0.1))
    strip.add_result(6, result(6, None))
    assert strip.summary_label.text() == "2 NOK in the last 5, 1 unreadable"  # 0.9 and 0.1 left the strip
    for i in range(7, 12):
        strip.add_result(i, result(i, 0.1))
    assert strip.summary_label.text() == "0 NOK in the last 5" and strip.summary_label.styleSheet() == ""


def test_events_are_markers_between_tiles_and_leave_with_the_parts_before_them(strip):
    strip.add_result(0, result(0, 0.1))
    strip.add_event("threshold changed 0.5 → 0.6", dt.datetime(2026, 3, 4, 10, 40, 0))
    strip.add_result(1, result(1, 0.9))
    assert [t.verdict for t in strip.tiles] == ["OK", "event", "NOK"]
    assert strip.tiles[1].tooltip == "10:40:00 · threshold changed 0.5 → 0.6"
    assert colour_name(strip.tiles[1].colour) not in ("green", "red", "grey")  # distinct from every verdict
    rects = strip.tile_rects()
    assert rects[1].width() < rects[0].width() / 2  # a thin marker, not a part
    assert strip.summary_label.text() == "1 NOK in the last 2"  # events are not parts
    for i in range(2, 6):
        strip.add_result(i, result(i, 0.1))
    assert [t.index for t in strip.tiles] == [1, 2, 3, 4, 5]  # the first part went, and the marker with it


def test_length_can_change_and_must_be_positive(strip):
    for i in range(5):
        strip.add_result(i, result(i, 0.1 * i))
    strip.set_length(3)
    assert [t.index for t in strip.tiles] == [2, 3, 4]
    strip.set_length(10)
    strip.add_result(5, result(5, 0.1))
    assert [t.index for t in strip.tiles] == [2, 3, 4, 5]
    with pytest.raises(ValueError, match="at least 1"):
        strip.set_length(0)


def test_the_right_click_menu_sets_the_length(strip, qtbot):
    for i in range(5):
        strip.add_result(i, result(i, 0.1 * i))
    menu = strip.length_menu()
    assert [a.text() for a in menu.actions()] == [f"Show the last {n}" for n in (10, 20, 50, 100)]
    assert not any(a.isChecked() for a in menu.actions())  # 5 is not offered: nothing checked
    (ten,) = [a for a in menu.actions() if a.text() == "Show the last 10"]
    with qtbot.waitSignal(strip.length_changed) as sig:
        ten.trigger()
    assert sig.args == [10] and strip.length == 10
    assert [a.text() for a in strip.length_menu().actions() if a.isChecked()] == ["Show the last 10"]


def test_clicking_a_tile_emits_its_run_index(strip, qtbot):
    for i in range(10, 15):
        strip.add_result(i, result(i, 0.3))
    with qtbot.waitSignal(strip.result_clicked) as sig:
        qtbot.mouseClick(strip.bar, Qt.MouseButton.LeftButton, pos=strip.tile_rects()[1].center().toPoint())
    assert sig.args == [11]
    with qtbot.assertNotEmitted(strip.result_clicked):  # the empty left part of the bar
        qtbot.mouseClick(strip.bar, Qt.MouseButton.LeftButton, pos=QPoint(1, strip.bar.height() // 2))


# ------------------------------------------------------------------------------ in the window
@pytest.fixture
def mixed_run(tmp_path) -> Path:
    """Four good toy textures and three with a large dark blotch, in name order g, d, g, d, g, d, g."""
    rng = np.random.default_rng(7)
    folder = tmp_path / "run"
    folder.mkdir()
    for i in range(7):
        img = texture(rng)
        if i % 2:
            img[12:52, 12:52] = 10
        Image.fromarray(img).save(folder / f"{i:02d}_{'defect' if i % 2 else 'good'}.png")
    return folder


def test_window_strip_follows_the_run_log_and_click_shows_the_part(qtbot, window, toy_copy, mixed_run):
    open_recipe(qtbot, window, toy_copy)
    strip = window.strip
    strip.set_length(5)
    window.run_folder(mixed_run)
    wait_idle(qtbot, window)
    rows = window.log.rows(newest_first=False)
    assert len(rows) == 7
    logged = [r[COLUMN["verdict"]] for r in rows]
    assert "NOK" in logged and "OK" in logged, logged  # the blotches are found: both colours are on the strip
    # the newest five, in order, with the logged verdicts, scores and thresholds
    assert [t.index for t in strip.tiles] == [2, 3, 4, 5, 6]
    assert strip.verdicts() == logged[2:]
    for tile, row in zip(strip.tiles, rows[2:]):
        assert Path(row[COLUMN["file"]]).name in tile.tooltip
        assert f"score {row[COLUMN['score']]:.4g} · threshold {row[COLUMN['threshold']]:.4g} → " in tile.tooltip
    assert strip.summary_label.text().startswith(f"{logged[2:].count('NOK')} NOK in the last 5")
    assert strip.current == 6  # the part shown (the newest) is outlined

    qtbot.mouseClick(strip.bar, Qt.MouseButton.LeftButton, pos=strip.tile_rects()[1].center().toPoint())
    assert window.current == 3 and strip.current == 3
    assert window.position_label.text().startswith("4 / 7") and "03_defect.png" in window.position_label.text()
    assert window.verdict_panel.verdict_text == logged[3]
    assert not window.browser.follow  # a live run would not jump away from the part picked
    window.step(+1)  # browsing with the keys moves the outline too
    assert strip.current == 4

    # a threshold applied during the run is a marker after the parts judged before it
    new = float(window.thresholds.applied) * 1.5
    with qtbot.waitSignal(window.worker.threshold_applied, timeout=60_000):
        window.apply_threshold(new)
    wait_idle(qtbot, window)
    assert strip.tiles[-1].is_event and "threshold changed" in strip.tiles[-1].tooltip
    qtbot.mouseClick(strip.bar, Qt.MouseButton.LeftButton, pos=strip.tile_rects()[-2].center().toPoint())
    assert window.current == 6 and window.browser.follow  # the newest part: new ones are followed again

    window.new_run()
    assert strip.tiles == [] and strip.current is None
    window.run_folder(mixed_run)  # a new run starts from an empty strip
    wait_idle(qtbot, window)
    assert [t.index for t in strip.tiles] == [2, 3, 4, 5, 6]


def test_the_strip_length_is_kept_in_the_settings(qtbot, data_dir):
    w = make_window(qtbot, restore_recipe=False)
    assert w.strip.length == 20
    (fifty,) = [a for a in w.strip.length_menu().actions() if a.text() == "Show the last 50"]
    fifty.trigger()
    assert w.strip.length == 50
    w.close()
    w2 = make_window(qtbot, restore_recipe=False)
    assert w2.strip.length == 50
    w2.close()
    s = open_settings()
    s.setValue("view/strip_length", "many")  # a hand-edited settings file
    s.sync()
    w3 = make_window(qtbot, restore_recipe=False)
    assert w3.strip.length == 20


def test_many_events_in_a_row_share_one_marker_and_leave_every_part_visible(strip):
    for i in range(5):
        strip.add_result(i, result(i, 0.1))
    for k in range(200):  # a flickering source: stale, resumed, stale...
        strip.add_event("source stale" if k % 2 == 0 else "source resumed", dt.datetime(2026, 3, 4, 11, 0, k % 60))
    strip.add_result(5, result(5, 0.9))
    assert [t.verdict for t in strip.tiles] == ["OK"] * 4 + ["event", "NOK"]
    marker = strip.tiles[4]
    assert marker.events == 200
    lines = marker.tooltip.split("\n")
    assert lines[0] == "195 earlier events …" and len(lines) == 6
    assert lines[-1] == "11:00:19 · source resumed"  # the newest of them (k = 199)
    rects = strip.tile_rects()
    assert all(not r.isEmpty() for r in rects)  # every part's tile is drawn
    assert [t.index for t in strip.tiles if not t.is_event] == [1, 2, 3, 4, 5]
