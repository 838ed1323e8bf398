"""Edit region of interest on an existing recipe: the fit settings read back from the model file,
the New-recipe dialog filled with them, and the re-fit asked of the worker with the new region."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from engine.errors import ModelFileError
from engine.model import InspectionModel
from gui.defect_log import COLUMNS
from engine.roi import RegionOfInterest
from gui.recipe_dialog import NewRecipeDialog
from gui.recipe_refit import refit_spec
from gui.roi_editor import RoiEditorDialog
from gui.roi_geometry import rectangle
from tests.gui.window_helpers import SIZE, open_recipe, wait_idle


def test_fit_settings_are_read_back_from_the_model_file(toy_model, toy_images):
    spec, notes = refit_spec(toy_model)
    # as tests/gui/conftest.py fitted it: EfficientNet-Lite0 at 64 px, knn with coreset_ratio 0.5, all
    # 8 images of the folder, the fit's default 1 % false-reject target, no region
    assert (spec.good_folder, spec.model_path) == (str(toy_images), str(toy_model))
    assert (spec.backbone, spec.scorer, spec.size) == ("efficientnet_lite0", "knn", SIZE)
    assert spec.scorer_params == {"coreset_ratio": 0.5}
    assert spec.max_images is None and spec.target_frr == 0.01 and spec.roi is None
    assert notes == []


def test_hold_out_and_uncalibrated_fits_are_reproduced_or_named(toy_images, tmp_path):
    paths = sorted(toy_images.iterdir())
    uncalibrated = InspectionModel.create(backbone="efficientnet_lite0", size=SIZE, device="cpu",
                                          scorer_params={"coreset_ratio": 0.5})
    uncalibrated.fit(paths, holdout_fraction=0.0)
    uncalibrated.save(tmp_path / "none.dimodel")
    spec, notes = refit_spec(tmp_path / "none.dimodel")
    assert spec.holdout_fraction == 0.0 and notes == []  # re-fitted uncalibrated, as it was
    held = InspectionModel.create(backbone="efficientnet_lite0", size=SIZE, device="cpu",
                                  scorer_params={"coreset_ratio": 0.5})
    held.fit(paths, holdout_fraction=0.25, folds=1)  # 2 of the 8 images held out
    held.save(tmp_path / "held.dimodel")
    spec, notes = refit_spec(tmp_path / "held.dimodel")
    assert spec.holdout_fraction > 0
    assert notes == ["the threshold was calibrated on a hold-out of 2 of 8 images in the file; the app's fit "
                     "cross-fits all of them (5 folds)"]


def test_a_file_that_is_not_a_model_is_named(tmp_path):
    bad = tmp_path / "x.dimodel"
    bad.write_bytes(b"nonsense")
    try:
        refit_spec(bad)
    except ModelFileError as exc:
        assert str(bad) in str(exc)
    else:
        raise AssertionError("no error")


def test_edit_region_refits_the_active_recipe_with_the_new_region(qtbot, window, toy_copy, toy_images,
                                                                    monkeypatch):
    open_recipe(qtbot, window, toy_copy)
    thresholds_before = dict(window.info)
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.Yes)
    fits = []
    window.fit_requested.connect(lambda job, spec: fits.append(spec))
    seen = {}
    region = RegionOfInterest(include=[rectangle((4, 4), (50, 40))], ref_width=SIZE, ref_height=SIZE)

    def operator():  # acts in the modal dialogs as they open: the region editor first, then the recipe dialog
        dlg = QApplication.activeModalWidget()
        if isinstance(dlg, RoiEditorDialog):
            seen["reference"] = dlg.windowTitle()
            dlg.add_polygon("include", rectangle((4, 4), (50, 40)))
            dlg.accept()
        elif isinstance(dlg, NewRecipeDialog) and "reference" in seen:
            seen["title"], seen["note"] = dlg.windowTitle(), dlg.note_label.text()
            seen["coreset"] = dlg.param_widgets["coreset_ratio"].value()
            dlg.buttons.button(dlg.buttons.StandardButton.Ok).click()
            return
        QTimer.singleShot(20, operator)

    QTimer.singleShot(0, operator)
    window.actions.edit_roi.trigger()
    assert seen["reference"] == "Region of interest — 000.png"  # the first good image of the recipe's folder
    assert seen["title"] == "Re-fit recipe toy" and "needs a re-fit" in seen["note"] and seen["coreset"] == 0.5
    assert asked and str(toy_copy) in asked[0]  # the file is replaced only once the operator says yes
    assert len(fits) == 1
    spec = fits[0]
    assert spec.roi == region.to_json() and spec.model_path == str(toy_copy)
    assert (spec.backbone, spec.scorer, spec.size, spec.scorer_params) == ("efficientnet_lite0", "knn", SIZE,
                                                                           {"coreset_ratio": 0.5})
    assert spec.good_folder == str(toy_images)
    before = float(thresholds_before["threshold"])
    wait_idle(qtbot, window)
    assert window.info is not None and window.info["path"] == str(toy_copy), window.message_bar.text
    # the file's applied threshold was replaced by the new calibration: one event row and one strip marker say so
    after = window.info["threshold"]
    events = [r for r in window.log.rows() if r[COLUMNS.index("verdict")] == "event"]
    assert len(events) == 1
    message = events[0][COLUMNS.index("message")]
    assert "re-fitted with a new region (whole image -> 1 include, 0 exclude polygon(s))" in message
    assert f"threshold {before:.6g} -> {after:.6g}" in message
    assert events[0][COLUMNS.index("threshold")] == after and events[0][COLUMNS.index("file")] == str(toy_copy)
    assert [t.tooltip.endswith(message) for t in window.strip.tiles if t.is_event] == [True]
