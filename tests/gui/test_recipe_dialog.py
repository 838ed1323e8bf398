"""New-recipe dialog: defaults, registered backbones/scorers, scorer fields from the signature."""

from __future__ import annotations

import numpy as np
from PIL import Image

from engine.backbones import BACKBONES
from engine.scorers import SCORERS
from gui.recipe_dialog import NewRecipeDialog, scorer_defaults


def test_scorer_fields_come_from_the_scorer_signature():
    d = scorer_defaults("knn")
    assert d["coreset_ratio"] == 0.1 and d["k"] == 1 and d["metric"] == "l2"
    assert "seed" not in d  # hidden
    assert d["max_bank"] == 30000  # the signature default is offered as is


def test_dialog_lists_registered_names_and_passes_only_changed_parameters(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("DINOINSPECT_DATA_DIR", str(tmp_path / "appdata"))
    good = tmp_path / "good"
    good.mkdir()
    for i in range(3):
        Image.fromarray(np.full((16, 16, 3), i * 40, np.uint8)).save(good / f"{i}.png")
    dlg = NewRecipeDialog(good_folder=str(good))
    qtbot.addWidget(dlg)
    backbones = [dlg.backbone_combo.itemData(i) for i in range(dlg.backbone_combo.count())]
    assert backbones == ["auto"] + list(BACKBONES)
    assert [dlg.scorer_combo.itemData(i) for i in range(dlg.scorer_combo.count())] == list(SCORERS)
    assert dlg.folder_info.text() == "3 images"
    dlg.name_edit.setText("gear A")
    dlg.param_widgets["coreset_ratio"].setValue(0.25)
    spec = dlg.spec()
    assert spec.model_path == str(tmp_path / "appdata" / "recipes" / "gear_A.dimodel")
    assert spec.scorer_params == {"coreset_ratio": 0.25} and spec.size is None and spec.backbone == "auto"
    assert spec.holdout_fraction == 0.1 and spec.target_frr == 0.01
    assert dlg.validate() is None
    dlg.folder_edit.setText(str(tmp_path / "missing"))
    assert "not a folder" in dlg.validate()


def make_good_folder(tmp_path, n=3):
    good = tmp_path / "good"
    good.mkdir()
    for i in range(n):
        Image.fromarray(np.full((16, 16, 3), i * 40, np.uint8)).save(good / f"{i}.png")
    return good


def test_operator_fields_up_front_scorer_internals_under_advanced_with_explanations(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("DINOINSPECT_DATA_DIR", str(tmp_path / "appdata"))
    dlg = NewRecipeDialog(good_folder=str(make_good_folder(tmp_path)))
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitExposed(dlg)
    for w in (dlg.name_edit, dlg.folder_edit, dlg.backbone_combo, dlg.scorer_combo):
        assert w.isVisible()
    assert not dlg.advanced.isVisible() and not dlg.param_widgets["coreset_ratio"].isVisible()
    dlg.advanced_button.click()
    assert dlg.advanced.isVisible() and dlg.param_widgets["coreset_ratio"].isVisible()
    # explanations come from the scorer's docstring, valid range included
    assert "in (0, 1]" in dlg.param_widgets["coreset_ratio"].toolTip()
    metric = dlg.param_widgets["metric"]
    assert [metric.itemText(i) for i in range(metric.count())] == ["l2", "cosine"]
    metric.setCurrentText("cosine")
    dlg.param_widgets["k"].setValue(3)
    assert dlg.spec().scorer_params == {"metric": "cosine", "k": 3}
    # a value the scorer refuses is reported with the scorer's own message, in the Advanced section
    dlg.param_widgets["coreset_ratio"].setValue(0.0)
    assert dlg.validate() == "Advanced › knn parameters: coreset_ratio must be in (0, 1], got 0.0"
    dlg.scorer_combo.setCurrentIndex(dlg.scorer_combo.findData("mahalanobis"))
    assert "n_prototypes" in dlg.param_widgets and "coreset_ratio" not in dlg.param_widgets
    assert [dlg.param_widgets["shrinkage"].itemText(i) for i in range(2)] == ["ledoit_wolf", "oas"]


def test_folder_field_looks_at_the_folder_once_typing_stops(qtbot, tmp_path, monkeypatch):
    from gui import recipe_dialog

    monkeypatch.setenv("DINOINSPECT_DATA_DIR", str(tmp_path / "appdata"))
    good = make_good_folder(tmp_path)
    dlg = NewRecipeDialog()
    qtbot.addWidget(dlg)
    calls = []
    real = recipe_dialog.count_images
    monkeypatch.setattr(recipe_dialog, "count_images", lambda folder: calls.append(folder) or real(folder))
    qtbot.keyClicks(dlg.folder_edit, str(good))
    assert calls == []  # nothing looked at while typing
    qtbot.waitUntil(lambda: dlg.folder_info.text() == "3 images", timeout=5000)
    assert calls == [str(good)]


def test_unreadable_folder_gives_a_message_not_a_traceback(qtbot, tmp_path, monkeypatch, capfd):
    import os

    from gui import recipe_dialog

    monkeypatch.setenv("DINOINSPECT_DATA_DIR", str(tmp_path / "appdata"))
    locked = make_good_folder(tmp_path)
    (locked / "sub").mkdir()
    locked.chmod(0o000)
    try:
        try:
            os.listdir(locked)
            readable = True  # root reads it anyway: make the listing fail as it does for other users
        except PermissionError:
            readable = False
        if readable:
            real_scandir = os.scandir

            def scandir(path="."):
                if os.path.realpath(path).startswith(str(locked)):
                    raise PermissionError(13, "Permission denied", str(path))
                return real_scandir(path)

            monkeypatch.setattr(recipe_dialog.os, "scandir", scandir)
        dlg = NewRecipeDialog()
        qtbot.addWidget(dlg)
        dlg.show()
        qtbot.waitExposed(dlg)
        qtbot.keyClicks(dlg.folder_edit, str(locked) + "/")  # the completer lists it as the operator types
        dlg.folder_completer.complete()
        qtbot.waitUntil(lambda: "cannot be read" in dlg.folder_info.text(), timeout=5000)
        assert str(locked) in dlg.folder_info.text() and "read permission" in dlg.folder_info.text()
        assert "cannot be read" in dlg.validate()
        dlg.folder_edit.setText("/proc")  # a real unreadable-in-parts tree: nothing is walked
        qtbot.waitUntil(lambda: "/proc: no images found" in dlg.folder_info.text(), timeout=5000)
        qtbot.wait(300)  # let the file-system model finish listing in its thread
    finally:
        locked.chmod(0o755)
    assert "Traceback" not in capfd.readouterr().err
