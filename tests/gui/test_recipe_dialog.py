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
