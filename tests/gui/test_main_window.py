"""End-to-end tests of the operator window (pytest-qt, offscreen), driving the real MainWindow.

Real data: a 10-image subset of ``../shared/data/mvtec_ad/bottle/train/good`` and four test images
(skipped with the reason when the folder is absent). Tests about the live path, cancelling and
closing use a tiny model fitted on synthetic textures so they run everywhere (fixtures in
tests/gui/conftest.py). Input size 64 px.
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QObject, QPointF, Qt, QThreadPool, QUrl, Slot
from PySide6.QtGui import QDropEvent

from tests.conftest import real_category, texture
from tests.gui.window_helpers import SIZE, TIMEOUT_MS, counter, make_window, open_recipe, wait_idle
from engine.model import InspectionModel
from engine.modelfile import load_model_file
from gui.camera import CameraConfig, load_camera_config, save_camera_config
from gui.defect_log import COLUMNS, EXPORT_COLUMNS
from gui.main_window import MainWindow
from gui.recipe_dialog import NewRecipeDialog
from gui.recipes import RecipeSpec
from gui.run_results import judge


# ---------------------------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def bottle_good(tmp_path_factory) -> Path:
    """The first 10 images of bottle train/good (links in a temporary folder)."""
    src = real_category("mvtec_ad/bottle") / "train" / "good"
    dst = tmp_path_factory.mktemp("bottle_good")
    for p in sorted(src.glob("*.png"))[:10]:
        os.symlink(p, dst / p.name)
    return dst


@pytest.fixture(scope="module")
def bottle_test(tmp_path_factory) -> Path:
    """A test folder laid out like bottle/test: good/ and broken_large/, two images each."""
    cat = real_category("mvtec_ad/bottle")
    dst = tmp_path_factory.mktemp("bottle_test")
    for sub in ("good", "broken_large"):
        (dst / sub).mkdir()
        for p in sorted((cat / "test" / sub).glob("*.png"))[:2]:
            os.symlink(p, dst / sub / p.name)
    return dst


@pytest.fixture(scope="module")
def bottle_model(bottle_good, tmp_path_factory) -> Path:
    """A bottle recipe fitted once through the engine (the window test fits its own)."""
    model = InspectionModel.create(backbone="efficientnet_lite0", size=SIZE, device="cpu")
    model.fit(sorted(bottle_good.iterdir()))
    path = tmp_path_factory.mktemp("recipes") / "bottle_test.dimodel"
    model.save(path)
    return path


# ---------------------------------------------------------------------------------------- tests
def test_new_recipe_from_real_good_folder_fits_saves_and_shows_recipe_and_backbone(qtbot, window, bottle_good):
    dlg = NewRecipeDialog(window, good_folder=str(bottle_good))
    qtbot.addWidget(dlg)
    assert dlg.backbone_combo.currentData() == "auto" and dlg.scorer_combo.currentData() == "knn"
    assert dlg.folder_info.text() == "10 images"
    dlg.name_edit.setText("bottle")
    dlg.backbone_combo.setCurrentIndex(dlg.backbone_combo.findData("efficientnet_lite0"))
    dlg.size_spin.setValue(SIZE)
    assert dlg.validate() is None
    spec = dlg.spec()
    assert spec.model_path.endswith("bottle.dimodel") and spec.scorer_params == {}

    stages = []
    window.worker.progress_changed.connect(lambda d, t, s: stages.append(s))
    with qtbot.waitSignal(window.worker.model_loaded, timeout=TIMEOUT_MS):
        window.start_fit(spec)
    wait_idle(qtbot, window)

    assert "features" in stages
    assert Path(spec.model_path).is_file()
    assert window.windowTitle() == "DINOInspect — bottle (efficientnet_lite0)"
    assert "efficientnet_lite0" in window.recipe_bar.header_label.text()
    assert window.recipe_bar.combo.currentText() == "bottle"
    assert window.threshold is not None and window.threshold == window.info["threshold"]
    assert "learned from 10 good images" in window.message_bar.text and "Threshold: " in window.message_bar.text
    assert "cross-fit" in window.message_bar.text  # every good image gave a calibration score
    assert window.settings.value("recipes/last") == str(Path(spec.model_path).resolve())
    assert window.threshold_panel.good_curve.getData()[1].sum() == 10  # one cross-fitted score per image


def test_folder_run_then_threshold_slider_previews_every_result_without_the_model(qtbot, window, bottle_model,
                                                                                   bottle_test):
    open_recipe(qtbot, window, bottle_model)
    window.run_folder(bottle_test)
    wait_idle(qtbot, window)
    assert len(window.results) == 4 and window.log.count() == 4
    scores = window.results.scores()
    applied = window.info["threshold"]
    logged_nok = int((scores >= applied).sum())

    def assert_counts_match(thr: float) -> None:
        nok = int((scores >= thr).sum())
        assert counter(window, "inspected") == "4"  # the counters stay as logged...
        assert counter(window, "nok") == str(logged_nok) and counter(window, "ok") == str(4 - logged_nok)
        if thr != applied:  # ...and the preview line gives the counts at the previewed threshold
            assert window.counters_panel.preview_label.text().endswith(f"{4 - nok} OK, {nok} NOK, "
                                                                       f"yield {100 * (4 - nok) / 4:.1f} %")
        r = window.results[window.current]
        assert window.verdict_panel.verdict_text == judge(r.score, thr)
        assert window.verdict_panel.preview == (thr != applied)

    assert_counts_match(window.threshold)
    assert window.threshold_panel.inspected_curve.getData()[1].sum() == 4

    requests = []
    window.paths_requested.connect(lambda *a: requests.append(a))
    window.frame_requested.connect(lambda *a: requests.append(a))
    panel = window.threshold_panel
    s = np.sort(scores)
    for target in ((s[1] + s[2]) / 2, s[0] - 1e-3 * abs(s[0]), s[3] + 1.0):
        panel.slider.setValue(panel.position_of(target))
        assert window.threshold == pytest.approx(panel.value_at(panel.slider.value()))
        assert_counts_match(window.threshold)
    panel.set_threshold(np.mean(s[1:3]))  # the exact-value box
    assert window.counters_panel.preview_label.text().endswith("2 OK, 2 NOK, yield 50.0 %")
    assert requests == [] and window.log.count() == 4  # judged again, not inspected again

    panel.reset_to_calibrated()
    assert window.threshold == window.info["threshold"] and not window.thresholds.previewing
    # expected false-reject rate under the slider = the engine's estimate from the model's own scores
    model = InspectionModel.load(bottle_model)
    f = model.frr_at()
    assert f is not None and panel.expected_frr() == f
    assert f"{f['exceed']} of {f['n']} calibration" in panel.frr_label.text()
    assert f"{f['estimate']:.1%}" in panel.frr_label.text()
    # colours and outlines by the engine's one rule: the threshold in use at 0.5, outlined there
    assert window.thresholds.scale() == model.display_scale()
    assert window.thresholds.contour_level() == model.contour_level() == 0.5
    panel.set_threshold(s[1])  # while previewing, the engine's rule with the previewed threshold
    assert window.thresholds.scale() == model.display_scale(s[1])
    assert f"threshold {s[1]:.4g}" in window.view.legend.text()  # the legend names the scale in use


def test_log_exports_csv_with_header_all_rows_or_nok_only(qtbot, window, bottle_model, bottle_test, tmp_path):
    open_recipe(qtbot, window, bottle_model)
    window.set_station("line 1")
    window.run_folder(bottle_test)
    wait_idle(qtbot, window)
    thr = window.threshold

    out = tmp_path / "all.csv"
    assert window.log_widget.export_csv(out) == 4
    with open(out, newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    records = [dict(zip(rows[0], r)) for r in rows[1:]]
    assert len(records) == 4
    files = [str(Path(r["file"]).relative_to(bottle_test)) for r in records]
    assert files == ["broken_large/000.png", "broken_large/001.png", "good/000.png", "good/001.png"]
    for r in records:
        assert r["source"] == "folder" and r["recipe"] == "bottle_test" and r["backbone"] == "efficientnet_lite0"
        assert r["station"] == "line 1" and float(r["threshold"]) == pytest.approx(thr)
        assert r["verdict"] == judge(float(r["score"]), thr)
        assert float(r["latency_ms"]) > 0

    window.log_widget.nok_only_check.setChecked(True)
    n_nok = sum(r["verdict"] == "NOK" for r in records)
    assert window.log_widget.model.rowCount() == n_nok
    out_nok = tmp_path / "nok.csv"
    assert window.log_widget.export_csv(out_nok) == n_nok
    with open(out_nok, newline="") as fh:
        nok_rows = list(csv.DictReader(fh))
    assert all(r["verdict"] == "NOK" for r in nok_rows) and len(nok_rows) == n_nok


def test_keyboard_left_right_browse_results(qtbot, window, toy_model, toy_images):
    open_recipe(qtbot, window, toy_model)
    window.run_folder(toy_images)
    wait_idle(qtbot, window)
    assert window.current == 7
    window.activateWindow()
    qtbot.waitUntil(lambda: window.isActiveWindow(), timeout=5000)
    qtbot.keyClick(window, Qt.Key.Key_Left)
    qtbot.keyClick(window, Qt.Key.Key_Left)
    assert window.current == 5
    assert window.position_label.text().startswith("6 / 8")
    qtbot.keyClick(window, Qt.Key.Key_Right)
    assert window.current == 6
    qtbot.keyClick(window, Qt.Key.Key_Home)
    assert window.current == 0


def test_video_file_as_camera_inspects_newest_frames_and_logs_them(qtbot, window, toy_model, tmp_path):
    video = tmp_path / "line.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (SIZE, SIZE))
    rng = np.random.default_rng(3)
    for _ in range(12):
        writer.write(cv2.cvtColor(texture(rng), cv2.COLOR_RGB2BGR))
    writer.release()
    open_recipe(qtbot, window, toy_model)

    window.start_live(CameraConfig(kind="video", video_path=str(video)))
    assert window.live_running and not window.actions.open_folder.isEnabled()
    qtbot.waitUntil(lambda: not window.live_running and not window.live.in_flight
                    and window.live.pending is None, timeout=60_000)
    s = window.live.stats
    assert s["captured"] == 12
    assert s["inspected"] >= 1 and s["inspected"] + s["dropped"] == s["captured"]
    assert len(window.results) == s["inspected"] == window.log.count()
    numbers = [int(r.name.rsplit("#", 1)[1]) for r in window.results.results]
    assert numbers == sorted(numbers) and numbers[-1] == 12  # newest frame always inspected, never a stale one
    assert {r[COLUMNS.index("source")] for r in window.log.rows()} == {"video"}
    assert window.results[-1].image is not None  # live frames keep their pixels for browsing
    assert window.settings.value("camera/video_path") == str(video)
    assert window.actions.open_folder.isEnabled()
    assert not window.run_state.path.exists()  # the video ended: the run ended normally


def test_camera_that_cannot_open_shows_message_and_app_stays_usable(qtbot, window, toy_model, toy_images):
    open_recipe(qtbot, window, toy_model)
    window.start_live(CameraConfig(kind="camera", device=63))
    qtbot.waitUntil(lambda: not window.live_running, timeout=30_000)
    assert window.message_bar.level == "error"
    assert "Camera 63 could not be opened" in window.message_bar.text
    assert window.actions.live.isEnabled() and window.actions.open_folder.isEnabled()
    window.run_folder(toy_images)
    wait_idle(qtbot, window)
    assert len(window.results) == 8


def test_save_recipe_as_keeps_the_applied_threshold_not_a_preview(qtbot, window, toy_copy, tmp_path):
    open_recipe(qtbot, window, toy_copy)
    new_threshold = window.threshold * 1.5
    window.threshold_panel.set_threshold(new_threshold)
    window.threshold_panel.apply()
    wait_idle(qtbot, window)
    window.threshold_panel.set_threshold(new_threshold * 2)  # a preview, not applied
    target = tmp_path / "toy_strict.dimodel"
    window.save_recipe(target)
    wait_idle(qtbot, window)
    assert load_model_file(target)[0]["threshold"] == pytest.approx(new_threshold)
    assert window.info["recipe"] == "toy_strict" and window.threshold == pytest.approx(new_threshold)
    combo = window.recipe_bar.combo
    assert [combo.itemText(i) for i in range(combo.count())] == ["toy_strict", "toy"]


def test_damaged_model_file_shows_message_and_keeps_the_active_recipe(qtbot, window, toy_model, tmp_path):
    open_recipe(qtbot, window, toy_model)
    bad = tmp_path / "damaged.dimodel"
    bad.write_bytes(b"not a model")
    window.open_recipe(bad)
    wait_idle(qtbot, window)
    assert window.message_bar.level == "error"
    assert "Could not open the recipe" in window.message_bar.text and "damaged.dimodel" in window.message_bar.text
    assert window.info["recipe"] == "toy" and window.windowTitle() == "DINOInspect — toy (efficientnet_lite0)"


def test_cancel_fit_keeps_previous_recipe_and_writes_no_file(qtbot, window, toy_model, toy_images, tmp_path):
    open_recipe(qtbot, window, toy_model)
    target = tmp_path / "cancelled.dimodel"
    spec = RecipeSpec(good_folder=str(toy_images), model_path=str(target), backbone="efficientnet_lite0", size=SIZE)
    with qtbot.waitSignal(window.worker.cancelled, timeout=TIMEOUT_MS) as blocker:
        window.start_fit(spec)
        assert window.cancel_button.isVisible()
        window.cancel_job()
    assert blocker.args == ["fit"]
    wait_idle(qtbot, window)
    assert not target.exists()
    assert window.info["recipe"] == "toy" and "Fit cancelled" in window.message_bar.text
    assert not window.cancel_button.isVisible() and window.actions.new_recipe.isEnabled()


def test_cancel_batch_run_stops_between_batches(qtbot, window, toy_model, toy_images):
    open_recipe(qtbot, window, toy_model)
    with qtbot.waitSignal(window.worker.batch_finished, timeout=TIMEOUT_MS) as blocker:
        window.run_images(sorted(toy_images.iterdir()) * 20)
        window.cancel_job()
    n, cancelled = blocker.args
    assert cancelled and n < 160
    wait_idle(qtbot, window)
    assert "cancelled" in window.message_bar.text


class CloseAtFirstResult(QObject):
    """Closes the window from the GUI thread when the first result of a run arrives."""

    def __init__(self, window: MainWindow):
        super().__init__()
        self.window = window
        self.seconds: float | None = None
        self.busy_at_close = False

    @Slot(object)
    def on_result(self, _result) -> None:
        if self.seconds is None:
            self.busy_at_close = self.window.busy
            t0 = time.monotonic()
            self.window.close()
            self.seconds = time.monotonic() - t0


def test_closing_during_a_run_ends_cleanly_within_seconds(qtbot, data_dir, toy_model, toy_images):
    w = make_window(qtbot, restore_recipe=False)
    open_recipe(qtbot, w, toy_model)
    closer = CloseAtFirstResult(w)
    w.worker.result_ready.connect(closer.on_result)  # queued: runs in the GUI thread
    w.run_images(sorted(toy_images.iterdir()) * 50)
    qtbot.waitUntil(lambda: closer.seconds is not None, timeout=TIMEOUT_MS)
    assert closer.busy_at_close and closer.seconds < 10
    assert not w.worker_thread.isRunning() and not w.live.thread.isRunning()
    assert len(w.results) < 400
    assert not w.run_state.path.exists()  # closing is a normal end: no "interrupted" note next time


def test_settings_and_last_recipe_persist_across_restarts(qtbot, data_dir, toy_model):
    w1 = make_window(qtbot, restore_recipe=False)
    open_recipe(qtbot, w1, toy_model)
    w1.set_station("Line 7")
    w1.view.set_opacity(0.3)
    w1.view.contour_check.setChecked(False)
    save_camera_config(w1.settings, CameraConfig(kind="camera", device=2, width=1280, height=720))
    w1.close()

    w2 = make_window(qtbot)
    wait_idle(qtbot, w2)
    assert w2.info is not None and w2.info["recipe"] == "toy"
    assert w2.station == "Line 7" and "Line 7" in w2.recipe_bar.header_label.text()
    assert w2.view.opacity() == pytest.approx(0.3)
    assert not w2.view.contour_check.isChecked()
    cam = load_camera_config(w2.settings)
    assert (cam.kind, cam.device, cam.width, cam.height) == ("camera", 2, 1280, 720)
    assert w2.recipe_bar.combo.currentText() == "toy"


def test_dropped_images_are_inspected_and_nok_images_saved_with_overlays(qtbot, window, toy_copy, toy_images,
                                                                          tmp_path):
    open_recipe(qtbot, window, toy_copy)
    window.threshold_panel.set_threshold(-1.0)  # every part NOK, once applied
    window.threshold_panel.apply()
    wait_idle(qtbot, window)
    nok_dir = tmp_path / "nok"
    window.log_widget.set_nok_saving(True, str(nok_dir))
    files = sorted(toy_images.iterdir())[:2]
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in files])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    wait_idle(qtbot, window)
    QThreadPool.globalInstance().waitForDone(10_000)
    rows = window.log.rows(newest_first=False)[1:]  # after the threshold change
    assert [Path(r[COLUMNS.index("file")]).name for r in rows] == [p.name for p in files]
    for r in rows:
        assert r[COLUMNS.index("source")] == "image" and r[COLUMNS.index("verdict")] == "NOK"
        img, ovl = Path(r[COLUMNS.index("nok_image")]), Path(r[COLUMNS.index("nok_overlay")])
        assert img.is_file() and ovl.is_file() and img.parent.parent == nok_dir
    assert window.verdict_panel.verdict_text == "NOK"


def test_main_py_without_arguments_opens_the_window_and_returns_when_it_closes(qtbot, data_dir):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    import main

    seen = []

    def close_window() -> None:
        for w in QApplication.topLevelWidgets():
            if isinstance(w, MainWindow) and w.isVisible():
                seen.append(w.windowTitle())
                w.close()

    QTimer.singleShot(300, close_window)
    assert main.main([]) == 0
    assert seen == ["DINOInspect — no recipe"]
    assert not QApplication.windowIcon().isNull()
