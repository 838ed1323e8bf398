"""Region-of-interest editor: the operator draws, on a reference image, where the part is judged.

:class:`RoiEditorDialog` shows the reference image in a pyqtgraph view (mouse wheel zooms, drag
pans) and edits a :class:`engine.roi.RegionOfInterest`:

* "Add region" / "Add ignore region" start a shape, drawn as a polygon (click its corners;
  double-click or Enter closes it, Esc drops it) or, with the shape set to "Rectangle", as a
  rectangle (click two opposite corners). A corner sits on the centre of the pixel clicked;
  clicks past the border land on the image's outer pixels.
* Each shape is a pyqtgraph ``PolyLineROI``: drag a corner to move it, drag the inside to move the
  shape, click an edge to add a corner, right-click a corner to remove it. Click a shape (or pick
  it in the list) to select it; Del or "Delete" removes it, "Clear all" removes every shape.
* Regions are outlined in green, ignore regions in red (dashed); every pixel outside the region
  (what the model will not judge) is shaded, and the line under the image says what is kept,
  e.g. "region: 2 polygons, 1 ignore region, 63 % of the image".
* "Load…" / "Save…" read and write ``.roi.json`` files (:meth:`RegionOfInterest.load` /
  ``save``), "Reference image…" draws on another image (the shapes are scaled to it).

:meth:`RoiEditorDialog.roi` gives the result: a region drawn on the reference image's size, or
None when nothing is drawn (the whole image is judged). What is not drawing (coordinates,
rectangles, coverage, the summary line) is in :mod:`gui.roi_geometry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QHBoxLayout, QLabel,
                               QListWidget, QPushButton, QVBoxLayout, QWidget)

from engine.app_info import cli_command
from engine.errors import InspectError
from engine.images import IMAGE_SUFFIXES, read_image
from engine.roi import Polygon, RegionOfInterest

from .roi_geometry import (build_region, describe, display_size, distinct_vertices, image_to_view, polygon_problem,
                           rectangle, scaled_polygons, shade_rgba, view_to_image)
from .roi_items import ClickLayer, PolygonItem

INCLUDE = "include"
EXCLUDE = "exclude"
POLYGON = "polygon"
RECTANGLE = "rectangle"
COLOURS = {INCLUDE: (70, 230, 100), EXCLUDE: (245, 85, 75)}
REFRESH_DELAY_MS = 40
"""Quiet time after a corner moves before the mask and summary are redrawn."""
HINTS = {
    None: "Add a region (or an ignore region), then click on the image. Drag a corner to move it, click an edge "
          "to add one, right-click a corner to remove it. Wheel zooms, drag pans.",
    POLYGON: "Click the corners; double-click or Enter closes the polygon, Esc drops it.",
    RECTANGLE: "Click one corner, then the opposite corner; Esc drops it.",
}


@dataclass
class _Shape:
    kind: str  # INCLUDE | EXCLUDE
    item: PolygonItem


class RoiEditorDialog(QDialog):
    """Draws a region of interest on a reference image (module docstring).

    Args:
        image: ``(H, W, 3) uint8`` RGB reference image.
        roi: region to edit (scaled to the image when drawn on another size), or None.
        image_path: where the image came from (shown in the title), or "".
    Signals:
        region_changed(): the shapes changed and the mask and summary were redrawn.
    """

    region_changed = Signal()

    def __init__(self, image: np.ndarray, roi: RegionOfInterest | None = None, parent: QWidget | None = None,
                 image_path: str = ""):
        super().__init__(parent)
        self.setWindowTitle("Region of interest")
        self.resize(1000, 780)
        self._shapes: list[_Shape] = []
        self._selected: int | None = None
        self._drawing: tuple[str, str] | None = None  # (kind, POLYGON | RECTANGLE) while a shape is drawn
        self._draft: Polygon = []  # corners placed so far (region coordinates)
        self._hw = (0, 0)

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("#202124")
        self.view = self.graphics.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.shade_item = pg.ImageItem(axisOrder="row-major")
        self.shade_item.setZValue(5)
        self.draft_item = pg.PlotDataItem(pen=pg.mkPen("w", width=1, style=Qt.PenStyle.DashLine), symbol="o",
                                          symbolSize=6, symbolBrush="w", symbolPen=None)
        self.draft_item.setZValue(50)
        self.layer = ClickLayer()
        self.layer.setZValue(100)
        self.layer.setVisible(False)
        for item in (self.image_item, self.shade_item, self.draft_item, self.layer):
            self.view.addItem(item)

        self.add_region_button = QPushButton("Add region")
        self.add_region_button.setToolTip("Draw a region where the part is judged (green)")
        self.add_ignore_button = QPushButton("Add ignore region")
        self.add_ignore_button.setToolTip("Draw a region cut out of it: a label, a clamp, a varying screw (red)")
        self.shape_combo = QComboBox()
        self.shape_combo.addItem("Polygon", POLYGON)
        self.shape_combo.addItem("Rectangle", RECTANGLE)
        self.shape_combo.setToolTip("Shape of the next region: polygon (click its corners) or rectangle (two corners)")
        self.delete_button = QPushButton("Delete")
        self.delete_button.setToolTip("Remove the selected shape (Del)")
        self.clear_button = QPushButton("Clear all")
        self.clear_button.setToolTip("Remove every shape: the whole image is judged")
        self.fit_button = QPushButton("Fit")
        self.fit_button.setToolTip("Show the whole image")
        self.image_button = QPushButton("Reference image…")
        self.image_button.setToolTip("Draw on another image (the shapes are scaled to it)")
        self.load_button = QPushButton("Load…")
        self.load_button.setToolTip("Read a region from a .roi.json file")
        self.save_button = QPushButton("Save…")
        self.save_button.setToolTip(f"Write the region to a .roi.json file (for {cli_command()} fit --roi)")
        self.shape_list = QListWidget()
        self.shape_list.setMaximumWidth(190)
        self.hint_label = QLabel(HINTS[None])
        self.hint_label.setWordWrap(True)
        self.hint_label.setStyleSheet("color: #5f6368;")
        self.status_label = QLabel("")
        self.status_label.setStyleSheet("font-weight: bold;")
        self.error_label = QLabel("")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #a50e0e;")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Use this region")
        for b in (self.add_region_button, self.add_ignore_button, self.delete_button, self.clear_button,
                  self.fit_button, self.image_button, self.load_button, self.save_button):
            b.setAutoDefault(False)  # Enter closes the polygon being drawn, never presses a tool button
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)

        tools = QHBoxLayout()
        for w in (self.add_region_button, self.add_ignore_button, QLabel("as"), self.shape_combo,
                  self.delete_button, self.clear_button, self.fit_button):
            tools.addWidget(w)
        tools.addStretch(1)
        for w in (self.image_button, self.load_button, self.save_button):
            tools.addWidget(w)
        middle = QHBoxLayout()
        middle.addWidget(self.graphics, 1)
        middle.addWidget(self.shape_list)
        layout = QVBoxLayout(self)
        layout.addLayout(tools)
        layout.addLayout(middle, 1)
        layout.addWidget(self.hint_label)
        layout.addWidget(self.status_label)
        layout.addWidget(self.error_label)
        layout.addWidget(self.buttons)

        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_DELAY_MS)
        self._refresh_timer.timeout.connect(self.refresh)
        self.add_region_button.clicked.connect(lambda: self.start_drawing(INCLUDE))
        self.add_ignore_button.clicked.connect(lambda: self.start_drawing(EXCLUDE))
        self.delete_button.clicked.connect(self.delete_selected)
        self.clear_button.clicked.connect(self.clear)
        self.fit_button.clicked.connect(self.fit_view)
        self.image_button.clicked.connect(self._choose_reference_image)
        self.load_button.clicked.connect(self._choose_load)
        self.save_button.clicked.connect(self._choose_save)
        self.shape_list.currentRowChanged.connect(lambda row: self.select(row if row >= 0 else None))
        self.layer.clicked.connect(self._on_layer_click)
        self.layer.moved.connect(self._on_layer_move)
        self.graphics.scene().sigMouseClicked.connect(self._on_scene_click)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        self._image_path = ""
        self.set_image(image, image_path)
        if roi is not None:
            self.set_roi(roi)
        self.refresh()

    # ------------------------------------------------------------------ public
    @property
    def image_size(self) -> tuple[int, int]:
        """``(height, width)`` of the reference image in pixels."""
        return self._hw

    @property
    def drawing(self) -> bool:
        """True while a shape is being drawn."""
        return self._drawing is not None

    def roi(self) -> RegionOfInterest | None:
        """The region drawn on the reference image, or None when nothing is drawn (whole image).

        Shapes that are not polygons (fewer than 3 distinct corners, no area) are left out;
        :meth:`accept` refuses to close while there is one.
        """
        h, w = self._hw
        return build_region([p for p in self.polygons(INCLUDE) if polygon_problem(p) is None],
                            [p for p in self.polygons(EXCLUDE) if polygon_problem(p) is None], w, h)

    def polygons(self, kind: str) -> list[Polygon]:
        """Corners of the ``kind`` (``"include"`` / ``"exclude"``) shapes in region coordinates
        (pixel centres at integers, clamped to the image; :func:`gui.roi_geometry.view_to_image`)."""
        h, w = self._hw
        out = []
        for s in self._shapes:
            if s.kind == kind:
                pts = [s.item.mapToParent(p) for _, p in s.item.getLocalHandlePositions()]
                out.append([view_to_image(p.x(), p.y(), w, h) for p in pts])
        return out

    def shape_kinds(self) -> list[str]:
        """Kind of each shape, in the list's order."""
        return [s.kind for s in self._shapes]

    def set_image(self, image: np.ndarray, image_path: str = "") -> None:
        """Draw on ``image`` (``(H, W, 3) uint8``); shapes already drawn are scaled to its size."""
        image = np.ascontiguousarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"reference image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        old = self.roi() if self._shapes else None
        H, W = image.shape[:2]
        self._hw = (H, W)
        self._image_path = image_path
        self.setWindowTitle(f"Region of interest — {Path(image_path).name}" if image_path else "Region of interest")
        self.image_item.setImage(image, levels=(0, 255), autoLevels=False)
        self.image_item.setRect(QRectF(0, 0, W, H))
        self.layer.set_rect(QRectF(-W, -H, 3 * W, 3 * H))  # clicks just past the border count (clamped)
        self.cancel_drawing()
        if old is not None:
            self.set_roi(old)
        self.fit_view()
        self.refresh()

    def set_roi(self, roi: RegionOfInterest | None) -> None:
        """Replace the shapes by those of ``roi`` (scaled to the reference image; None = none)."""
        self._remove_all()
        self.error_label.setText("")
        if roi is not None:
            h, w = self._hw
            include, exclude = scaled_polygons(roi, w, h)
            for kind, polys in ((INCLUDE, include), (EXCLUDE, exclude)):
                for p in polys:
                    self.add_polygon(kind, p)
            self.error_label.setText(roi.aspect_warning(h, w) or "")
        self.refresh()

    def add_polygon(self, kind: str, polygon: Polygon) -> int:
        """Add a shape of ``kind`` with corners ``polygon`` (region coordinates); its index."""
        if kind not in COLOURS:
            raise ValueError(f"kind must be {INCLUDE!r} or {EXCLUDE!r}, got {kind!r}")
        item = PolygonItem([image_to_view(x, y) for x, y in polygon], closed=True, movable=True)
        item.setAcceptedMouseButtons(Qt.MouseButton.LeftButton)
        item.sigClicked.connect(lambda it, _ev: self.select(self._index_of(it)))
        item.sigRegionChanged.connect(lambda _: self._refresh_timer.start())
        self.view.addItem(item)
        self._shapes.append(_Shape(kind, item))
        self._style(len(self._shapes) - 1, selected=False)
        self._rebuild_list()
        self.refresh()
        return len(self._shapes) - 1

    def start_drawing(self, kind: str, shape: str | None = None) -> None:
        """Start a shape of ``kind`` (``"include"`` / ``"exclude"``) as a ``shape`` (``"polygon"`` /
        ``"rectangle"``; None = the one chosen in the dialog); clicks on the image add its corners."""
        self.cancel_drawing()
        shape = shape or self.shape_combo.currentData()
        self.shape_combo.setCurrentIndex(self.shape_combo.findData(shape))
        self._drawing = (kind, shape)
        self.layer.setVisible(True)
        self.draft_item.setPen(pg.mkPen(COLOURS[kind], width=2, style=Qt.PenStyle.DashLine))
        self.hint_label.setText(("Ignore region: " if kind == EXCLUDE else "Region: ") + HINTS[shape])
        self.graphics.setFocus()

    def cancel_drawing(self) -> None:
        """Drop the shape being drawn (nothing else changes)."""
        self._drawing = None
        self._draft = []
        self.layer.setVisible(False)
        self.draft_item.setData([], [])
        self.hint_label.setText(HINTS[None])

    def finish_polygon(self) -> bool:
        """Close the polygon being drawn and add it; False (with the reason shown) when it is not one."""
        if self._drawing is None:
            return False
        kind = self._drawing[0]
        problem = polygon_problem(self._draft)
        if problem:
            self.error_label.setText(f"Not added: {problem}")
            return False
        poly = distinct_vertices(self._draft)
        self.cancel_drawing()
        self.error_label.setText("")
        self.select(self.add_polygon(kind, poly))
        return True

    def select(self, index: int | None) -> None:
        """Select shape ``index`` (drawn thicker, highlighted in the list), or none."""
        if index is not None and not 0 <= index < len(self._shapes):
            index = None
        if self._selected is not None and self._selected < len(self._shapes):
            self._style(self._selected, selected=False)
        self._selected = index
        if index is not None:
            self._style(index, selected=True)
        if self.shape_list.currentRow() != (-1 if index is None else index):
            self.shape_list.setCurrentRow(-1 if index is None else index)

    @property
    def selected(self) -> int | None:
        """Index of the selected shape, or None."""
        return self._selected

    def delete_selected(self) -> None:
        """Remove the selected shape (nothing when none is selected)."""
        if self._selected is None:
            return
        shape = self._shapes.pop(self._selected)
        self.view.removeItem(shape.item)
        self._selected = None
        self._rebuild_list()
        self.refresh()

    def clear(self) -> None:
        """Remove every shape: the whole image is judged."""
        self.cancel_drawing()
        self._remove_all()
        self.refresh()

    def fit_view(self) -> None:
        h, w = self._hw
        self.view.setRange(QRectF(0, 0, w, h), padding=0.02)

    def refresh(self) -> None:
        """Redraw the shading outside the region, the summary line and the list."""
        self._refresh_timer.stop()
        h, w = self._hw
        roi = self.roi()
        dh, dw = display_size(h, w)
        mask = np.ones((dh, dw), bool) if roi is None else roi.pixel_mask(dh, dw)
        self.shade_item.setImage(shade_rgba(mask), levels=(0, 255), autoLevels=False)
        self.shade_item.setRect(QRectF(0, 0, w, h))
        bad = sum(1 for k in (INCLUDE, EXCLUDE) for p in self.polygons(k) if polygon_problem(p))
        self.status_label.setText(describe(roi, h, w) + (f" ({bad} shape(s) without area left out)" if bad else ""))
        for i, s in enumerate(self._shapes):
            item = self.shape_list.item(i)
            if item is not None:
                item.setText(self._label(i))
        self.region_changed.emit()

    def load_roi_file(self, path: str | Path) -> bool:
        """Replace the shapes by the region in ``path`` (a ``.roi.json``); False with the reason shown."""
        try:
            roi = RegionOfInterest.load(path)
        except InspectError as exc:
            self.error_label.setText(str(exc))
            return False
        self.cancel_drawing()
        self.set_roi(roi)
        return True

    def save_roi_file(self, path: str | Path) -> bool:
        """Write the region (drawn on the reference image) to ``path``; False with the reason shown."""
        h, w = self._hw
        roi = self.roi() or RegionOfInterest(ref_width=w, ref_height=h)  # nothing drawn: the whole image
        try:
            roi.save(path)
        except OSError as exc:
            self.error_label.setText(f"{path}: cannot write the region ({exc.strerror or exc}). Choose another "
                                     f"folder.")
            return False
        self.error_label.setText(f"Region saved to {path}")
        return True

    def load_reference_image(self, path: str | Path) -> bool:
        """Draw on the image at ``path`` from now on; False with the reason shown."""
        try:
            image = read_image(path)
        except InspectError as exc:
            self.error_label.setText(str(exc))
            return False
        self.set_image(image, str(path))
        return True

    # ------------------------------------------------------------------ Qt events
    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt API
        key = event.key()
        if self.drawing and key == Qt.Key.Key_Escape:
            self.cancel_drawing()
        elif self.drawing and key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if self._drawing[1] == POLYGON:
                self.finish_polygon()
        elif key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.delete_selected()
        else:
            super().keyPressEvent(event)
            return
        event.accept()

    def accept(self) -> None:
        problems = [f"{word} {j + 1}: {why}" for kind, word in ((INCLUDE, "region"), (EXCLUDE, "ignore region"))
                    for j, poly in enumerate(self.polygons(kind)) for why in [polygon_problem(poly)] if why]
        if problems:
            self.error_label.setText("Fix or delete: " + "; ".join(problems))
            return
        h, w = self._hw
        roi = self.roi()
        if roi is not None and not roi.pixel_mask(h, w).any():
            self.error_label.setText("The region keeps no pixel: nothing would be judged. Draw the region around "
                                     "the part, or delete the ignore regions that cover it.")
            return
        self.cancel_drawing()
        super().accept()

    # ------------------------------------------------------------------ private
    def _on_layer_click(self, x: float, y: float, double: bool) -> None:
        if self._drawing is None:
            return
        h, w = self._hw
        shape = self._drawing[1]
        if shape == POLYGON and double:
            self.finish_polygon()
            return
        self._draft.append(view_to_image(x, y, w, h))
        if shape == RECTANGLE and len(self._draft) == 2:
            self._draft = rectangle(*self._draft)
            self.finish_polygon()
            return
        self._show_draft()

    def _on_layer_move(self, x: float, y: float) -> None:
        if self._drawing is not None and self._draft:
            h, w = self._hw
            self._show_draft(view_to_image(x, y, w, h))

    def _on_scene_click(self, ev) -> None:
        if self._drawing is None and not ev.isAccepted() and ev.button() == Qt.MouseButton.LeftButton:
            self.select(None)  # a click beside every shape deselects

    def _show_draft(self, mouse: tuple[float, float] | None = None) -> None:
        pts = list(self._draft)
        if mouse is not None:
            pts = rectangle(pts[0], mouse) + [pts[0]] if self._drawing[1] == RECTANGLE else pts + [mouse]
        xy = np.array([image_to_view(x, y) for x, y in pts], np.float64).reshape(-1, 2)
        self.draft_item.setData(xy[:, 0], xy[:, 1])

    def _choose_reference_image(self) -> None:
        patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self, "Reference image", str(Path(self._image_path).parent)
                                              if self._image_path else "", f"Images ({patterns})")
        if path:
            self.load_reference_image(path)

    def _choose_load(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load region of interest", "",
                                              "Regions of interest (*.roi.json);;JSON (*.json)")
        if path:
            self.load_roi_file(path)

    def _choose_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save region of interest", "region.roi.json",
                                              "Regions of interest (*.roi.json)")
        if path:
            self.save_roi_file(path if path.endswith(".json") else path + ".roi.json")

    def _index_of(self, item) -> int | None:
        return next((i for i, s in enumerate(self._shapes) if s.item is item), None)

    def _kind_index(self, i: int) -> int:
        """Position of shape ``i`` among the shapes of its kind."""
        return sum(1 for s in self._shapes[:i] if s.kind == self._shapes[i].kind)

    def _label(self, i: int) -> str:
        s = self._shapes[i]
        n = len(s.item.getHandles())
        return f"{'Ignore' if s.kind == EXCLUDE else 'Region'} {self._kind_index(i) + 1} — {n} corners"

    def _style(self, i: int, selected: bool) -> None:
        s = self._shapes[i]
        style = Qt.PenStyle.DashLine if s.kind == EXCLUDE else Qt.PenStyle.SolidLine
        s.item.setPen(pg.mkPen(COLOURS[s.kind], width=4 if selected else 2, style=style))

    def _rebuild_list(self) -> None:
        self.shape_list.blockSignals(True)
        self.shape_list.clear()
        for i in range(len(self._shapes)):
            self.shape_list.addItem(self._label(i))
        self.shape_list.blockSignals(False)
        if self._selected is not None:
            self.shape_list.setCurrentRow(self._selected)

    def _remove_all(self) -> None:
        for s in self._shapes:
            self.view.removeItem(s.item)
        self._shapes.clear()
        self._selected = None
        self._rebuild_list()
