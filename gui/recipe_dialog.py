"""New-recipe dialog: what the operator decides up front, the rest under "Advanced" -> :class:`RecipeSpec`.

Up front: the recipe's name, the folder of good images, where the model file goes, the backbone
and the scorer. Under the collapsible "Advanced" section: input size, calibration hold-out, target
false-reject rate, an image limit, and the scorer's own parameters, each with a line saying what it
does and which values are valid.

The backbone list comes from :data:`engine.backbones.BACKBONES` (each marked with whether its
weights are on this machine; ``auto`` says what it resolves to) and the scorer list from
:data:`engine.scorers.SCORERS`, whatever is registered. Each scorer's keyword arguments with
simple defaults (numbers, text, switches) become fields, read from the scorer's signature, with the
explanation from its docstring's ``Args:`` section (parsed by ``docstring_parser``); text
parameters whose explanation lists quoted choices (````"l2"`` or ``"cosine"````) become a list of
those choices. So a new scorer needs no change here; only changed values are passed on, and
:meth:`NewRecipeDialog.validate` builds the scorer once so its own checks name a bad value.

"Region of interest…" opens :class:`gui.roi_editor.RoiEditorDialog` on the first readable image
of the good folder (:func:`first_good_image`); the region drawn goes into the spec as JSON
(``RecipeSpec.roi``) and a line beside the button says what it keeps.

The good-images field never walks the file system while the operator types: completion comes from
a ``QFileSystemModel`` (folders only, listed lazily by Qt in its own thread, one folder at a time),
and the image count under the field is taken 400 ms after typing stops, from that one folder
(:func:`count_images`), reporting unreadable folders in words instead of raising.
"""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path

import docstring_parser
import numpy as np
from PySide6.QtCore import QDir, Qt, QTimer
from PySide6.QtWidgets import (QCheckBox, QComboBox, QCompleter, QDialog, QDialogButtonBox, QDoubleSpinBox,
                               QFileDialog, QFileSystemModel, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                               QMessageBox, QPushButton, QScrollArea, QSpinBox, QToolButton, QVBoxLayout, QWidget)

from engine.app_info import cli_command
from engine.backbones import BACKBONES, find_local_weights, resolve_backbone_name
from engine.errors import DatasetError, InspectError
from engine.images import IMAGE_SUFFIXES, list_images, read_image
from engine.outputs import os_reason
from engine.roi import RegionOfInterest
from engine.scorers import SCORERS

from .locations import recipes_dir
from .recipes import MODEL_SUFFIX, RecipeSpec
from .roi_editor import RoiEditorDialog
from .roi_geometry import describe

HIDDEN_SCORER_PARAMS = {"seed"}
FOLDER_CHECK_DELAY_MS = 400
"""Quiet time after the last keystroke before the good-images folder is looked at."""
ADVANCED_HEIGHT = 440
"""Height (px) of the Advanced section when opened; it scrolls beyond."""
REFERENCE_TRIES = 10
"""Images of the good folder tried, in name order, for one that reads, to draw the region on."""


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


def scorer_param_help(name: str) -> dict[str, str]:
    """Explanation of each parameter of scorer ``name`` from its class docstring's ``Args:`` section
    (one line each, reST markup removed); parameters without one are absent."""
    doc = docstring_parser.parse(SCORERS[name].__doc__ or "")
    return {p.arg_name: " ".join(re.sub(r":\w+:`([^`]+)`|``([^`]+)``", r"\1\2", p.description or "").split())
            for p in doc.params if p.description}


def quoted_choices(help_text: str) -> list[str]:
    """The quoted values an explanation lists (``"l2" or "cosine"`` -> ``["l2", "cosine"]``)."""
    return list(dict.fromkeys(re.findall(r'"([\w.-]+)"', help_text)))


def count_images(folder: str) -> tuple[int | None, str]:
    """Images directly in ``folder`` (not its sub-folders), without raising.

    Returns:
        ``(count, text for the operator)``; count is None when the folder is missing or unreadable.
    """
    path = Path(folder.strip()).expanduser()
    try:
        if not path.is_dir():
            return None, f"{path}: not a folder. Give the folder that holds the good images."
        with os.scandir(path) as entries:
            n = sum(1 for e in entries if Path(e.name).suffix.lower() in IMAGE_SUFFIXES and e.is_file())
    except OSError as exc:
        return None, (f"{path}: cannot be read ({os_reason(exc)}). Choose a folder this user may read, or "
                      f"ask for read permission on it.")
    if n == 0:
        return 0, f"{path}: no images found (looked for {', '.join(IMAGE_SUFFIXES)}). Point to the folder that holds them."
    return n, f"{n} images"


def first_good_image(folder: str) -> tuple[Path, np.ndarray]:
    """The first readable image of ``folder`` (not its sub-folders, in name order), to draw the
    region of interest on.

    Returns:
        ``(path, (H, W, 3) uint8 RGB pixels)``.
    Raises:
        InspectError: the folder is missing or holds no image, or none of its first
            :data:`REFERENCE_TRIES` images reads; the message names the folder and the fix.
    """
    if not folder.strip():
        raise DatasetError("Choose the folder of good images first: the region is drawn on one of them.")
    paths = list_images(Path(folder.strip()).expanduser())
    reasons = []
    for path in paths[:REFERENCE_TRIES]:
        try:
            return path, read_image(path)
        except InspectError as exc:
            reasons.append(str(exc))
    raise DatasetError(f"{folder}: none of the first {len(reasons)} images can be read, so there is nothing to draw "
                       f"the region on (first: {reasons[0]})")


def roi_summary(roi: RegionOfInterest | None) -> str:
    """One line saying what ``roi`` keeps, measured on its reference size ("whole image" for None)."""
    if roi is None:
        return "whole image"
    return (describe(roi, roi.ref_height, roi.ref_width).removeprefix("region: ")
            + f" (drawn on {roi.ref_width}x{roi.ref_height})")


class NewRecipeDialog(QDialog):
    """Collects a :class:`RecipeSpec` (module docstring); :meth:`spec` reads the fields."""

    def __init__(self, parent: QWidget | None = None, good_folder: str = ""):
        super().__init__(parent)
        self.setWindowTitle("New recipe")
        self.setMinimumWidth(640)
        self.name_edit = QLineEdit("new_part")
        self.name_edit.setToolTip("Name of the product / recipe; the model file is named after it")
        self.folder_edit = QLineEdit(good_folder)
        self.folder_edit.setPlaceholderText("folder of good images of this product")
        self.folder_model = QFileSystemModel(self)
        self.folder_model.setFilter(QDir.Filter.AllDirs | QDir.Filter.NoDotAndDotDot | QDir.Filter.Drives)
        self.folder_model.setRootPath("")
        self.folder_completer = QCompleter(self.folder_model, self)
        self.folder_completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.folder_edit.setCompleter(self.folder_completer)
        self.folder_button = QPushButton("Browse…")
        self.folder_info = QLabel("")
        self.folder_info.setWordWrap(True)
        self._folder_timer = QTimer(self)
        self._folder_timer.setSingleShot(True)
        self._folder_timer.setInterval(FOLDER_CHECK_DELAY_MS)
        self.model_path_edit = QLineEdit()
        self.model_path_button = QPushButton("Save as…")
        self.roi_button = QPushButton("Region of interest…")
        self.roi_button.setToolTip("Draw where the part is judged on the first good image (the rest of the image "
                                   "is ignored when learning and inspecting)")
        self.roi_label = QLabel("")
        self.roi_editor: RoiEditorDialog | None = None  # the editor while it is open
        self._roi: RegionOfInterest | None = None
        self._model_path_touched = False

        self.backbone_combo = QComboBox()
        auto = resolve_backbone_name("auto")
        self.backbone_combo.addItem(f"auto ({auto})", "auto")
        for name, bspec in BACKBONES.items():
            have = find_local_weights(bspec) is not None
            self.backbone_combo.addItem(name if have else f"{name} (weights not found)", name)
            self.backbone_combo.setItemData(self.backbone_combo.count() - 1, bspec.description,
                                            Qt.ItemDataRole.ToolTipRole)
        self.backbone_combo.setToolTip("Network that turns images into features; auto picks the best one whose "
                                       "weights are on this machine")
        self.scorer_combo = QComboBox()
        for name in SCORERS:
            self.scorer_combo.addItem(name, name)
        if "knn" in SCORERS:
            self.scorer_combo.setCurrentIndex(list(SCORERS).index("knn"))
        self.scorer_combo.setToolTip("How normal is learned: knn (nearest good patches, the default), "
                                     "mahalanobis (prototypes), padim (per-position Gaussians)")
        self.size_spin = QSpinBox()
        self.size_spin.setRange(0, 1024)
        self.size_spin.setSingleStep(32)
        self.size_spin.setSpecialValueText("backbone default")
        self.size_spin.setSuffix(" px")
        self.holdout_spin = QDoubleSpinBox()
        self.holdout_spin.setRange(1, 50)
        self.holdout_spin.setValue(10)
        self.holdout_spin.setSuffix(" %")
        self.frr_spin = QDoubleSpinBox()
        self.frr_spin.setRange(0.1, 50)
        self.frr_spin.setDecimals(1)
        self.frr_spin.setValue(1.0)
        self.frr_spin.setSuffix(" %")
        self.max_images_spin = QSpinBox()
        self.max_images_spin.setRange(0, 100000)
        self.max_images_spin.setSpecialValueText("all")

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
        roi_row = QHBoxLayout()
        roi_row.addWidget(self.roi_button)
        roi_row.addWidget(self.roi_label, 1)
        form.addRow("Region", roi_row)
        form.addRow("Backbone", self.backbone_combo)
        form.addRow("Scorer", self.scorer_combo)

        self.advanced_button = QToolButton()
        self.advanced_button.setText("Advanced")
        self.advanced_button.setCheckable(True)
        self.advanced_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_button.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_button.setAutoRaise(True)
        self.advanced_button.setToolTip("Input size, calibration and the scorer's own parameters; the defaults suit "
                                        "most parts")
        self.advanced = QWidget()
        self.advanced_form = QFormLayout(self.advanced)
        self.advanced_form.setContentsMargins(16, 0, 0, 0)
        self._add_advanced("Input size", self.size_spin,
                           "Side of the network input in px (rounded to the backbone's multiple); larger finds smaller "
                           "defects and runs slower. 0 = the backbone's default.")
        self._add_advanced("Held out for calibration", self.holdout_spin,
                           "Share of good images (1–50 %) kept out to calibrate the threshold when cross-fitting is "
                           "off. Recipes made here cross-fit (5 folds: every good image is scored by a model that did "
                           "not learn it), so the value itself is not used.")
        self._add_advanced("Target false-reject rate", self.frr_spin,
                           "Share of good parts the calibrated threshold may reject (0.1–50 %).")
        self._add_advanced("Use first N images", self.max_images_spin,
                           "Learn from the first N good images only (all = every image of the folder).")
        self.scorer_title = QLabel("")
        self.advanced_form.addRow(self.scorer_title)
        self._fixed_rows = self.advanced_form.rowCount()
        self.param_widgets: dict[str, QWidget] = {}
        self.param_help: dict[str, str] = {}
        self._param_defaults: dict = {}
        self.advanced_area = QScrollArea()  # the scorer's list can be long: it scrolls, the dialog stays on screen
        self.advanced_area.setWidget(self.advanced)
        self.advanced_area.setWidgetResizable(True)
        self.advanced_area.setFrameShape(QScrollArea.Shape.NoFrame)
        self.advanced_area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.advanced_area.setMinimumHeight(ADVANCED_HEIGHT)
        self.advanced_area.setVisible(False)

        self.note_label = QLabel("")  # what a re-fit of an existing recipe changes (prefill)
        self.note_label.setWordWrap(True)
        self.note_label.setVisible(False)
        self._extra_params: dict = {}  # stored scorer parameters without a field here (prefill)
        self.error_label = QLabel("")
        self.error_label.setStyleSheet("color: #a50e0e;")
        self.error_label.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Fit")
        layout = QVBoxLayout(self)
        layout.addWidget(self.note_label)
        layout.addLayout(form)
        layout.addWidget(self.advanced_button)
        layout.addWidget(self.advanced_area, 1)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)

        self.name_edit.textChanged.connect(self._on_name)
        self.folder_edit.textChanged.connect(lambda _: self._folder_timer.start())
        self._folder_timer.timeout.connect(self._check_folder)
        self.folder_button.clicked.connect(self._browse_folder)
        self.model_path_button.clicked.connect(self._browse_model_path)
        self.roi_button.clicked.connect(self.edit_roi)
        self.model_path_edit.textEdited.connect(lambda _: setattr(self, "_model_path_touched", True))
        self.scorer_combo.currentIndexChanged.connect(lambda _: self._build_param_fields())
        self.advanced_button.toggled.connect(self.set_advanced_visible)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self._on_name(self.name_edit.text())
        self.set_roi(None)
        self._check_folder()
        self._build_param_fields()

    # ------------------------------------------------------------------ public
    def spec(self) -> RecipeSpec:
        """The recipe described by the fields (not validated; see :meth:`validate`)."""
        params = {}
        for key, widget in self.param_widgets.items():
            value = self._param_value(widget)
            if value != self._param_defaults[key]:
                params[key] = value
        params.update(self._extra_params)
        return RecipeSpec(
            good_folder=self.folder_edit.text().strip(), model_path=self.model_path_edit.text().strip(),
            backbone=self.backbone_combo.currentData(), scorer=self.scorer_combo.currentData(),
            size=self.size_spin.value() or None, scorer_params=params,
            holdout_fraction=self.holdout_spin.value() / 100.0, target_frr=self.frr_spin.value() / 100.0,
            max_images=self.max_images_spin.value() or None,
            roi=None if self._roi is None else self._roi.to_json())

    def validate(self) -> str | None:
        """What is wrong with the fields, in words, or None."""
        spec = self.spec()
        if not spec.model_path:
            return "Give the recipe a name (or a model file)."
        n, text = count_images(spec.good_folder)
        if not n:
            return text
        try:
            SCORERS[spec.scorer](**spec.scorer_params)
        except (ValueError, TypeError) as exc:
            return f"Advanced › {spec.scorer} parameters: {exc}"
        return None

    def prefill(self, spec: RecipeSpec, notes: list[str] = ()) -> None:
        """Fill the fields from ``spec`` to fit an existing recipe again (:mod:`gui.recipe_refit`),
        with a line saying why and the ``notes`` on settings the re-fit does not reproduce."""
        self._model_path_touched = True
        self.name_edit.setText(spec.name)
        self.model_path_edit.setText(spec.model_path)
        self.folder_edit.setText(spec.good_folder)
        if self.backbone_combo.findData(spec.backbone) < 0:
            self.backbone_combo.addItem(f"{spec.backbone} (not registered)", spec.backbone)
        self.backbone_combo.setCurrentIndex(self.backbone_combo.findData(spec.backbone))
        self.scorer_combo.setCurrentIndex(self.scorer_combo.findData(spec.scorer))
        self._build_param_fields()
        for key, value in spec.scorer_params.items():
            if key in self.param_widgets:
                self._set_param_value(self.param_widgets[key], value)
            else:
                self._extra_params[key] = value
        self.size_spin.setValue(spec.size or 0)
        self.holdout_spin.setValue(100 * spec.holdout_fraction)
        self.frr_spin.setValue(100 * spec.target_frr)
        self.max_images_spin.setValue(spec.max_images or 0)
        self.set_roi(RegionOfInterest.from_json(spec.roi, spec.model_path))
        self.setWindowTitle(f"Re-fit recipe {spec.name}")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Re-fit")
        text = (f"Changing the region of interest needs a re-fit: recipe {spec.name} learned normal from the old "
                f"region. The fields hold the settings it was fitted with; Re-fit replaces {spec.model_path}.")
        if notes:
            text += " Not reproduced by the app: " + "; ".join(notes) + f" (re-fit with {cli_command()} fit --roi)."
        self.note_label.setText(text)
        self.note_label.setVisible(True)

    def roi(self) -> RegionOfInterest | None:
        """The region of interest chosen (None = whole image)."""
        return self._roi

    def set_roi(self, roi: RegionOfInterest | None) -> None:
        """Use ``roi`` for the new recipe (None = whole image) and say so beside the button."""
        self._roi = roi
        self.roi_label.setText(roi_summary(roi))

    def edit_roi(self) -> None:
        """Open the region editor on the first good image; the region chosen there replaces this one.
        Without a readable image the reason is shown instead."""
        try:
            path, image = first_good_image(self.folder_edit.text())
        except InspectError as exc:
            self.error_label.setText(str(exc))
            return
        self.error_label.setText("")
        self.roi_editor = RoiEditorDialog(image, self._roi, self, image_path=str(path))
        try:
            if self.roi_editor.exec():
                self.set_roi(self.roi_editor.roi())
        finally:
            self.roi_editor.deleteLater()
            self.roi_editor = None

    def set_advanced_visible(self, on: bool) -> None:
        """Open (True) or close the "Advanced" section."""
        self.advanced_button.setChecked(on)
        self.advanced_button.setArrowType(Qt.ArrowType.DownArrow if on else Qt.ArrowType.RightArrow)
        self.advanced_area.setVisible(on)
        self.adjustSize()

    def accept(self) -> None:
        problem = self.validate()
        if problem:
            self.error_label.setText(problem)
            if problem.startswith("Advanced"):
                self.set_advanced_visible(True)
            return
        path = Path(self.spec().model_path)
        if path.exists():
            answer = QMessageBox.question(self, "Replace recipe?", f"{path} exists. Replace it with the new recipe?")
            if answer != QMessageBox.StandardButton.Yes:
                return
        super().accept()

    # ------------------------------------------------------------------ private
    def _add_advanced(self, label: str, widget: QWidget, help_text: str) -> None:
        """A field of the Advanced section with its explanation (tooltip, and a line under it)."""
        widget.setToolTip(help_text)
        note = QLabel(help_text)
        note.setWordWrap(True)
        note.setStyleSheet("color: #5f6368; font-size: 11px; margin-bottom: 4px;")
        self.advanced_form.addRow(label, widget)
        self.advanced_form.addRow(note)

    def _on_name(self, name: str) -> None:
        if not self._model_path_touched:
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name.strip())
            self.model_path_edit.setText(str(recipes_dir() / f"{safe}{MODEL_SUFFIX}") if safe else "")

    def _check_folder(self) -> None:
        folder = self.folder_edit.text()
        self.folder_info.setText(count_images(folder)[1] if folder.strip() else "")

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
        while self.advanced_form.rowCount() > self._fixed_rows:
            self.advanced_form.removeRow(self._fixed_rows)
        self.param_widgets.clear()
        self._extra_params = {}
        name = self.scorer_combo.currentData()
        self._param_defaults = scorer_defaults(name)
        self.param_help = scorer_param_help(name)
        self.scorer_title.setText(f"<b>Scorer parameters ({name})</b>" if self._param_defaults else "")
        for key, default in self._param_defaults.items():
            help_text = self.param_help.get(key, "")
            choices = quoted_choices(help_text) if isinstance(default, str) else []
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
            elif choices:
                w = QComboBox()
                w.setEditable(True)  # the list is what the docstring names; other valid values can be typed
                w.addItems(choices if default in choices else [default] + choices)
                w.setCurrentText(default)
            else:
                w = QLineEdit(default)
            self.param_widgets[key] = w
            self._add_advanced(key, w, help_text or "(no description in the scorer's docstring)")

    @staticmethod
    def _set_param_value(widget: QWidget, value) -> None:
        if isinstance(widget, QCheckBox):
            widget.setChecked(bool(value))
        elif isinstance(widget, (QSpinBox, QDoubleSpinBox)):
            widget.setValue(value)
        elif isinstance(widget, QComboBox):
            widget.setCurrentText(str(value))
        else:
            widget.setText(str(value))

    @staticmethod
    def _param_value(widget: QWidget):
        if isinstance(widget, QCheckBox):
            return widget.isChecked()
        if isinstance(widget, (QSpinBox, QDoubleSpinBox)):
            return widget.value()
        if isinstance(widget, QComboBox):
            return widget.currentText()
        return widget.text()
