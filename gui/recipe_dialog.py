"""New-recipe dialog: a folder of good images, backbone and scorer (with defaults) -> :class:`RecipeSpec`.

The backbone list comes from :data:`engine.backbones.BACKBONES` (each marked with whether its
weights are on this machine; ``auto`` says what it resolves to) and the scorer list from
:data:`engine.scorers.SCORERS`, whatever is registered. Each scorer's keyword arguments with
simple defaults (numbers, text, switches) become fields under "Scorer parameters", read from the
scorer's signature, so a new scorer needs no change here; only changed values are passed on.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog,
                               QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QMessageBox, QPushButton,
                               QSpinBox, QVBoxLayout, QWidget)

from engine.backbones import BACKBONES, find_local_weights, resolve_backbone_name
from engine.errors import InspectError
from engine.images import list_images
from engine.scorers import SCORERS

from .locations import recipes_dir
from .recipes import MODEL_SUFFIX, RecipeSpec

HIDDEN_SCORER_PARAMS = {"seed"}


def scorer_defaults(name: str) -> dict:
    """Keyword arguments of scorer ``name`` with int/float/str/bool defaults, in signature order."""
    sig = inspect.signature(SCORERS[name].__init__)
    out = {}
    for p in list(sig.parameters.values())[1:]:
        if p.name in HIDDEN_SCORER_PARAMS or p.default is inspect.Parameter.empty:
            continue
        if isinstance(p.default, (bool, int, float, str)):
            out[p.name] = p.default
    return out


class NewRecipeDialog(QDialog):
    """Collects a :class:`RecipeSpec` (module docstring); :meth:`spec` reads the fields."""

    def __init__(self, parent: QWidget | None = None, good_folder: str = ""):
        super().__init__(parent)
        self.setWindowTitle("New recipe")
        self.setMinimumWidth(560)
        self.name_edit = QLineEdit("new_part")
        self.folder_edit = QLineEdit(good_folder)
        self.folder_edit.setPlaceholderText("folder of good images of this product")
        self.folder_button = QPushButton("Browse…")
        self.folder_info = QLabel("")
        self.model_path_edit = QLineEdit()
        self.model_path_button = QPushButton("Save as…")
        self._model_path_touched = False

        self.backbone_combo = QComboBox()
        auto = resolve_backbone_name("auto")
        self.backbone_combo.addItem(f"auto ({auto})", "auto")
        for name, bspec in BACKBONES.items():
            have = find_local_weights(bspec) is not None
            self.backbone_combo.addItem(name if have else f"{name} (weights not found)", name)
            self.backbone_combo.setItemData(self.backbone_combo.count() - 1, bspec.description,
                                            Qt.ItemDataRole.ToolTipRole)
        self.scorer_combo = QComboBox()
        for name in SCORERS:
            self.scorer_combo.addItem(name, name)
        if "knn" in SCORERS:
            self.scorer_combo.setCurrentIndex(list(SCORERS).index("knn"))
        self.size_spin = QSpinBox()
        self.size_spin.setRange(0, 1024)
        self.size_spin.setSingleStep(32)
        self.size_spin.setSpecialValueText("backbone default")
        self.size_spin.setSuffix(" px")
        self.holdout_spin = QDoubleSpinBox()
        self.holdout_spin.setRange(1, 50)
        self.holdout_spin.setValue(10)
        self.holdout_spin.setSuffix(" %")
        self.holdout_spin.setToolTip("Good images kept out of the model to calibrate the threshold")
        self.frr_spin = QDoubleSpinBox()
        self.frr_spin.setRange(0.1, 50)
        self.frr_spin.setDecimals(1)
        self.frr_spin.setValue(1.0)
        self.frr_spin.setSuffix(" %")
        self.frr_spin.setToolTip("Target share of good parts wrongly rejected (false-reject rate)")
        self.max_images_spin = QSpinBox()
        self.max_images_spin.setRange(0, 100000)
        self.max_images_spin.setSpecialValueText("all")

        self.params_box = QGroupBox("Scorer parameters")
        self.params_form = QFormLayout(self.params_box)
        self.param_widgets: dict[str, QWidget] = {}
        self._param_defaults: dict = {}

        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(self.folder_button)
        path_row = QHBoxLayout()
        path_row.addWidget(self.model_path_edit, 1)
        path_row.addWidget(self.model_path_button)
        form = QFormLayout()
        form.addRow("Recipe name", self.name_edit)
        form.addRow("Good images", folder_row)
        form.addRow("", self.folder_info)
        form.addRow("Model file", path_row)
        form.addRow("Backbone", self.backbone_combo)
        form.addRow("Scorer", self.scorer_combo)
        form.addRow("Input size", self.size_spin)
        form.addRow("Held out for calibration", self.holdout_spin)
        form.addRow("Target false-reject rate", self.frr_spin)
        form.addRow("Use first N images", self.max_images_spin)
        self.error_label = QLabel("")
        self.error_label.setStyleSheet("color: #a50e0e;")
        self.error_label.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Fit")
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.params_box)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)

        self.name_edit.textChanged.connect(self._on_name)
        self.folder_edit.textChanged.connect(self._on_folder)
        self.folder_button.clicked.connect(self._browse_folder)
        self.model_path_button.clicked.connect(self._browse_model_path)
        self.model_path_edit.textEdited.connect(lambda _: setattr(self, "_model_path_touched", True))
        self.scorer_combo.currentIndexChanged.connect(lambda _: self._build_param_fields())
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self._on_name(self.name_edit.text())
        self._on_folder(self.folder_edit.text())
        self._build_param_fields()

    # ------------------------------------------------------------------ public
    def spec(self) -> RecipeSpec:
        """The recipe described by the fields (not validated; see :meth:`validate`)."""
        params = {}
        for key, widget in self.param_widgets.items():
            value = self._param_value(widget)
            if value != self._param_defaults[key]:
                params[key] = value
        return RecipeSpec(
            good_folder=self.folder_edit.text().strip(), model_path=self.model_path_edit.text().strip(),
            backbone=self.backbone_combo.currentData(), scorer=self.scorer_combo.currentData(),
            size=self.size_spin.value() or None, scorer_params=params,
            holdout_fraction=self.holdout_spin.value() / 100.0, target_frr=self.frr_spin.value() / 100.0,
            max_images=self.max_images_spin.value() or None)

    def validate(self) -> str | None:
        """What is wrong with the fields, in words, or None."""
        spec = self.spec()
        if not spec.model_path:
            return "Give the recipe a name (or a model file)."
        try:
            list_images(spec.good_folder)
        except InspectError as exc:
            return str(exc)
        return None

    def accept(self) -> None:
        problem = self.validate()
        if problem:
            self.error_label.setText(problem)
            return
        path = Path(self.spec().model_path)
        if path.exists():
            answer = QMessageBox.question(self, "Replace recipe?", f"{path} exists. Replace it with the new recipe?")
            if answer != QMessageBox.StandardButton.Yes:
                return
        super().accept()

    # ------------------------------------------------------------------ private
    def _on_name(self, name: str) -> None:
        if not self._model_path_touched:
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name.strip())
            self.model_path_edit.setText(str(recipes_dir() / f"{safe}{MODEL_SUFFIX}") if safe else "")

    def _on_folder(self, folder: str) -> None:
        if not folder.strip():
            self.folder_info.setText("")
            return
        try:
            n = len(list_images(folder.strip()))
            self.folder_info.setText(f"{n} images")
        except InspectError as exc:
            self.folder_info.setText(str(exc))

    def _browse_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of good images", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)
            if self.name_edit.text() in ("", "new_part"):
                p = Path(folder)
                self.name_edit.setText(p.parent.parent.name if p.name == "good" else p.name)

    def _browse_model_path(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save recipe as", self.model_path_edit.text(),
                                              f"DINOInspect models (*{MODEL_SUFFIX})")
        if path:
            if not path.endswith(MODEL_SUFFIX):
                path += MODEL_SUFFIX
            self._model_path_touched = True
            self.model_path_edit.setText(path)

    def _build_param_fields(self) -> None:
        while self.params_form.rowCount():
            self.params_form.removeRow(0)
        self.param_widgets.clear()
        self._param_defaults = scorer_defaults(self.scorer_combo.currentData())
        for key, default in self._param_defaults.items():
            if isinstance(default, bool):
                w = QCheckBox()
                w.setChecked(default)
            elif isinstance(default, int):
                w = QSpinBox()
                w.setRange(-1_000_000, 1_000_000)
                w.setValue(default)
            elif isinstance(default, float):
                w = QDoubleSpinBox()
                w.setDecimals(4)
                w.setRange(-1e6, 1e6)
                w.setSingleStep(0.05 if abs(default) <= 1 else 1.0)
                w.setValue(default)
            else:
                w = QLineEdit(default)
            self.param_widgets[key] = w
            self.params_form.addRow(key, w)
        self.params_box.setVisible(bool(self._param_defaults))

    @staticmethod
    def _param_value(widget: QWidget):
        if isinstance(widget, QCheckBox):
            return widget.isChecked()
        if isinstance(widget, (QSpinBox, QDoubleSpinBox)):
            return widget.value()
        return widget.text()
