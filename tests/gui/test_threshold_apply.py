"""One verdict everywhere (pytest-qt, offscreen, the real window and worker on the toy recipe):
the slider previews, Apply writes the recipe and the log, a restart keeps the applied threshold,
and a run cut short by a killed program is reported at the next start."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from engine.modelfile import load_model_file
from gui.defect_log import COLUMNS, EXPORT_COLUMNS
from gui.run_results import judge
from tests.gui.window_helpers import counter, make_window, open_recipe, wait_idle

REPO = Path(__file__).resolve().parents[2]


def table_rows(w) -> list[dict]:
    """The log table as shown, newest first, as dicts by column name."""
    m = w.log_widget.model
    return [dict(zip(EXPORT_COLUMNS, m.shown_row(i))) for i in range(m.rowCount())]


def csv_rows(w, path: Path) -> list[dict]:
    w.log_widget.export_csv(path)
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_preview_is_marked_everywhere_apply_saves_and_logs_it_and_a_restart_keeps_it(qtbot, data_dir, toy_copy,
                                                                                     toy_images, tmp_path):
    w = make_window(qtbot, restore_recipe=False)
    open_recipe(qtbot, w, toy_copy)
    applied = w.thresholds.applied
    assert applied == load_model_file(toy_copy)[0]["threshold"]
    files = sorted(toy_images.iterdir())
    w.run_images(files[:4])
    wait_idle(qtbot, w)
    scores = w.results.scores()
    logged = [judge(s, applied) for s in scores]

    # move the slider past the highest-scoring part, so that its verdict flips in the preview
    top = int(np.argmax(scores))
    panel = w.threshold_panel
    pos = panel.position_of(scores[top])
    if logged[top] == "OK":  # preview just at or below it: NOK
        while panel.value_at(pos) > scores[top]:
            pos -= 1
    else:  # preview above it: OK
        while panel.value_at(pos) <= scores[top]:
            pos += 1
    panel.slider.setValue(pos)
    preview = w.thresholds.preview
    assert preview == panel.value_at(pos) and preview != applied
    previewed = [judge(s, preview) for s in scores]
    assert previewed[top] != logged[top]

    # the screen: the preview verdict, marked, and the logged one beside it
    w.show_index(top)
    assert w.verdict_panel.verdict_text == previewed[top] and w.verdict_panel.preview
    assert "not applied" in w.verdict_panel.note_label.text() and f"Logged: {logged[top]}" in w.verdict_panel.note_label.text()
    assert "not applied" in panel.status_label.text() and panel.apply_button.isEnabled()
    assert counter(w, "nok") == str(logged.count("NOK"))  # counters as logged, preview counts beside them
    assert f"{previewed.count('NOK')} NOK" in w.counters_panel.preview_label.text()
    # the log table and the CSV: inspection-time verdicts unchanged, preview verdicts beside them
    preview_col = EXPORT_COLUMNS.index("preview_verdict")
    assert not w.log_widget.table.isColumnHidden(preview_col)
    rows = table_rows(w)[::-1]
    assert [r["verdict"] for r in rows] == logged and [r["threshold"] for r in rows] == [applied] * 4
    assert [r["preview_verdict"] for r in rows] == previewed
    exported = csv_rows(w, tmp_path / "preview.csv")
    assert [r["verdict"] for r in exported] == logged and [r["preview_verdict"] for r in exported] == previewed
    assert [float(r["preview_threshold"]) for r in exported] == [preview] * 4

    # Revert, then preview again and Apply
    panel.revert_button.click()
    assert not w.thresholds.previewing and w.log_widget.table.isColumnHidden(preview_col)
    assert w.verdict_panel.verdict_text == logged[top] and not w.verdict_panel.preview
    panel.slider.setValue(pos)
    with qtbot.waitSignal(w.worker.threshold_applied, timeout=60_000):
        panel.apply_button.click()
    wait_idle(qtbot, w)
    assert w.thresholds.applied == preview and not w.thresholds.previewing
    event = table_rows(w)[0]
    assert event["verdict"] == "event" and event["threshold"] == preview
    assert event["message"] == f"threshold changed {applied:.6g} -> {preview:.6g} by operator"
    assert [r["verdict"] for r in table_rows(w)[1:]][::-1] == logged  # earlier rows untouched
    # the recipe file: the new threshold, the old one in its history
    cfg = load_model_file(toy_copy)[0]
    assert cfg["threshold"] == preview and cfg["calibration"]["threshold"] == applied
    assert cfg["calibration"]["history"][-1]["threshold"] == applied
    assert cfg["calibration"]["history"][-1]["new_threshold"] == preview
    assert cfg["calibration"]["history"][-1]["replaced_by"] == "operator"
    # the part shown keeps its logged verdict; the line under it says what the new threshold gives
    assert w.verdict_panel.verdict_text == logged[top]
    assert f"it would be {previewed[top]}" in w.verdict_panel.note_label.text()
    # parts inspected from now on are judged at the applied threshold
    w.run_images(files[4:6])
    wait_idle(qtbot, w)
    new_rows = [r for r in table_rows(w)[:2]][::-1]
    assert [r["threshold"] for r in new_rows] == [preview, preview]
    assert [r["verdict"] for r in new_rows] == [judge(r["score"], preview) for r in new_rows]
    exported = csv_rows(w, tmp_path / "applied.csv")
    assert [r["verdict"] for r in exported] == logged + ["event"] + [r["verdict"] for r in new_rows]
    assert {r["preview_verdict"] for r in exported} == {""}
    w.close()

    # restart: the recipe comes back with the applied threshold
    w2 = make_window(qtbot)
    wait_idle(qtbot, w2)
    assert Path(w2.info["path"]).resolve() == toy_copy.resolve()
    assert w2.thresholds.applied == preview and w2.threshold == preview and not w2.thresholds.previewing
    assert w2.thresholds.calibrated == applied
    assert w2.threshold_panel.status_label.text().startswith(f"Applied {preview:.4g}")
    assert f"threshold {preview:.4g}" in w2.recipe_bar.header_label.text()
    assert "did not end normally" not in w2.message_bar.text


KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {repo!r})
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import QObject, Slot
    from PySide6.QtWidgets import QApplication
    from gui.main_window import MainWindow

    class Killer(QObject):  # slots run in the GUI thread (queued), after the window's own
        @Slot(object)
        def on_loaded(self, _info):
            w.run_folder({folder!r})

        @Slot(object)
        def on_result(self, _r):  # the window has logged this part: die mid-run
            os.kill(os.getpid(), signal.SIGKILL)

    app = QApplication([])
    w = MainWindow(device="cpu", restore_recipe=False)
    killer = Killer()
    w.worker.model_loaded.connect(killer.on_loaded)
    w.worker.result_ready.connect(killer.on_result)
    w.open_recipe({model!r})
    app.exec()
""")


def test_a_run_cut_short_by_a_killed_program_is_reported_at_the_next_start(qtbot, data_dir, toy_model, toy_images):
    script = KILLED_RUN.format(repo=str(REPO), folder=str(toy_images), model=str(toy_model))
    env = dict(os.environ, DINOINSPECT_DATA_DIR=str(data_dir))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == -9, proc.stderr[-2000:]  # killed mid-run
    state_file = data_dir / "run_state.json"
    assert state_file.is_file()

    w = make_window(qtbot, restore_recipe=False)
    logged = w.log.count()
    assert 1 <= logged < 8
    note = w.message_bar.text
    assert w.message_bar.level == "warning" and "did not end normally" in note
    assert f"folder run of {toy_images} with recipe toy" in note and f"{logged} of 8 inspection(s)" in note
    assert not state_file.exists()  # reported once
    w.close()
    w2 = make_window(qtbot, restore_recipe=False)
    assert "did not end normally" not in w2.message_bar.text


def test_a_run_that_ends_normally_leaves_no_note(qtbot, data_dir, toy_model, toy_images):
    w = make_window(qtbot, restore_recipe=False)
    open_recipe(qtbot, w, toy_model)
    w.run_folder(toy_images)
    assert w.run_state.path.is_file()  # written when the run starts
    wait_idle(qtbot, w)
    assert not w.run_state.path.exists()
    assert w.log.rows()[0][COLUMNS.index("verdict")] in ("OK", "NOK")
