"""The recipe bar at the top of the window: the active recipe (recently used ones listed), its
backbone, scorer, input size and threshold, the station name, and the connection state of the
station's camera and line (:class:`gui.station_status.StationStatus`, at the right)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QMenu, QSizePolicy, QWidget

from .recipes import recipe_name
from .station_status import StationStatus
from .verdict import Thresholds, fmt_threshold


class RecipeBar(QWidget):
    """Recipe combo + header line + camera / line connection indicators.

    Signals:
        recipe_chosen(str path): the user picked another recent recipe.
    """

    recipe_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.combo = QComboBox()
        self.combo.setMinimumWidth(220)
        self.combo.setToolTip("Active recipe (recently used ones listed)")
        self.header_label = QLabel()
        self.header_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # the header may be cut at the right rather than widen the window past the screen (tooltip: all of it)
        self.header_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.header_label.setMinimumWidth(200)
        self.station_status = StationStatus()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 2)
        layout.addWidget(QLabel("<b>Recipe</b>"))
        layout.addWidget(self.combo)
        layout.addWidget(self.header_label, 1)
        layout.addWidget(self.station_status)
        self._active: str | None = None
        self.combo.activated.connect(self._on_combo)

    def show_recipe(self, info: dict | None, thresholds: Thresholds, station: str) -> str:
        """Show the active recipe (``gui.worker.model_info`` dict, or None) with its thresholds;
        returns the window title to use."""
        station = station or "(station name not set)"
        if info is None:
            self.header_label.setText(f"<i>No recipe active — create one (New recipe) or open a model file.</i>"
                                      f" &nbsp; Station: {station}")
            self.header_label.setToolTip("")
            return "DINOInspect — no recipe"
        thr = fmt_threshold(thresholds.applied)
        if thresholds.calibrated is not None and thresholds.applied != thresholds.calibrated:
            thr += f" (calibrated {fmt_threshold(thresholds.calibrated)})"
        if thresholds.previewing:
            thr += f", <span style='color:#e37400'>previewing {fmt_threshold(thresholds.preview)}</span>"
        self.header_label.setText(
            f"Backbone: <b>{info['backbone']}</b> [{short_source(info['weights_source'])}] &nbsp; scorer: "
            f"{info['scorer']} &nbsp; input {info['input_size']} px &nbsp; threshold {thr} &nbsp; Station: {station}")
        self.header_label.setToolTip(info["describe"] + "\n" + info["path"])
        return f"DINOInspect — {info['recipe']} ({info['backbone']})"

    def set_recent(self, paths: list[str], info: dict | None, menu: QMenu, open_recipe) -> None:
        """List recent recipe files in the combo (the active one, ``info``, chosen) and in ``menu``
        (``open_recipe(path)`` opens one)."""
        self._active = None if info is None else str(Path(info["path"]).resolve())
        self.combo.blockSignals(True)
        self.combo.clear()
        for p in paths:
            self.combo.addItem(recipe_name(p), p)
            self.combo.setItemData(self.combo.count() - 1, p, Qt.ItemDataRole.ToolTipRole)
        if self._active is not None:
            self.combo.setCurrentIndex(self.combo.findData(self._active))
        else:
            self.combo.setCurrentIndex(-1)
            self.combo.setPlaceholderText("no recipe")
        self.combo.blockSignals(False)
        menu.clear()
        for p in paths:
            act = menu.addAction(recipe_name(p))
            act.setToolTip(p)
            act.triggered.connect(lambda _=False, p=p: open_recipe(p))
        menu.setEnabled(bool(paths))

    def _on_combo(self, index: int) -> None:
        path = self.combo.itemData(index)
        if path and self._active != str(Path(path)):
            self.recipe_chosen.emit(path)


def short_source(source: str) -> str:
    """Where backbone weights came from, shortly: ``package:...`` or the file name."""
    if source.startswith("package:"):
        return source.split(" (")[0]
    return Path(source).name if ("/" in source or "\\" in source) else source
