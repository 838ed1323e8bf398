"""The inspection view: the image, the anomaly-map overlay and the defect contours, with zoom and pan.

Three pyqtgraph items share one ViewBox (y pointing down, square pixels, mouse wheel zooms, drag
pans, double-click or "Fit" resets): the image (``(H, W, 3) uint8`` row-major), the heatmap as a
second ImageItem (normalised map with fixed levels 0..1 and the RGBA table of
:func:`gui.heatmap.heatmap_lut`, stretched over the image) and the contours (one curve). The
controls below switch the overlay and contours on/off and set the overlay opacity.

When the recipe has a region of interest (:meth:`InspectionView.set_roi`, the model's
``info["roi"]``), its outline is drawn over every image, scaled to the image as the engine scales
it: regions as a thin solid line, ignore regions dashed ("Region" switches it off).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget

from engine.roi import RegionOfInterest

from .heatmap import heatmap_lut
from .locations import as_bool
from .roi_geometry import outline_xy, scaled_polygons

ROI_PEN = {"include": ((120, 230, 140, 190), Qt.PenStyle.SolidLine),
           "exclude": ((255, 120, 110, 190), Qt.PenStyle.DashLine)}
"""Colour (RGBA) and line style of the region-of-interest outline, by kind."""


class InspectionView(QWidget):
    """Image + heatmap overlay + contours (module docstring).

    Signals:
        opacity_changed(float): overlay opacity 0..1 chosen by the user.
        overlay_toggled(bool), contours_toggled(bool), roi_toggled(bool): switches changed by the user.
    """

    opacity_changed = Signal(float)
    overlay_toggled = Signal(bool)
    contours_toggled = Signal(bool)
    roi_toggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("#202124")
        self.view = self.graphics.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.heat_item = pg.ImageItem(axisOrder="row-major")
        self.heat_item.setLookupTable(heatmap_lut())
        self.heat_item.setZValue(1)
        self.contour_item = pg.PlotCurveItem(pen=pg.mkPen("w", width=2), connect="finite")
        self.contour_item.setZValue(2)
        self.roi_items = {kind: pg.PlotCurveItem(pen=pg.mkPen(colour, width=1, style=style), connect="finite")
                          for kind, (colour, style) in ROI_PEN.items()}
        for item in self.roi_items.values():
            item.setZValue(3)
        for item in (self.image_item, self.heat_item, self.contour_item, *self.roi_items.values()):
            self.view.addItem(item)
        self._roi: RegionOfInterest | None = None
        self.placeholder = pg.TextItem("No image yet: open images, a folder or a camera", color="#bbbbbb",
                                       anchor=(0.5, 0.5))
        self.view.addItem(self.placeholder)
        self.view.setRange(QRectF(-1, -1, 2, 2), padding=0)
        self._image_hw: tuple[int, int] | None = None

        self.overlay_check = QCheckBox("Heatmap")
        self.overlay_check.setChecked(True)
        self.contour_check = QCheckBox("Contours")
        self.contour_check.setChecked(True)
        self.roi_check = QCheckBox("Region")
        self.roi_check.setChecked(True)
        self.roi_check.setToolTip("Outline of the recipe's region of interest (dashed: ignore regions)")
        self.roi_check.setVisible(False)  # shown while the recipe has a region
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(60)
        self.opacity_slider.setMaximumWidth(160)
        self.opacity_slider.setToolTip("Heatmap opacity")
        self.fit_button = QPushButton("Fit")
        self.fit_button.setToolTip("Show the whole image (also: double-click)")
        self.caption = QLabel("")
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.legend = QLabel("")  # what the colours and outlines mean (engine.overlay.DisplayScale.describe)
        self.legend.setWordWrap(True)
        self.legend.setStyleSheet("color: #666666")

        controls = QHBoxLayout()
        controls.addWidget(self.overlay_check)
        controls.addWidget(QLabel("Opacity"))
        controls.addWidget(self.opacity_slider)
        controls.addWidget(self.contour_check)
        controls.addWidget(self.roi_check)
        controls.addWidget(self.fit_button)
        controls.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics, 1)
        layout.addWidget(self.caption)
        layout.addWidget(self.legend)
        layout.addLayout(controls)

        self.overlay_check.toggled.connect(self._on_overlay_toggled)
        self.contour_check.toggled.connect(self._on_contours_toggled)
        self.roi_check.toggled.connect(self._on_roi_toggled)
        self.opacity_slider.valueChanged.connect(self._on_opacity)
        self.fit_button.clicked.connect(self.fit_view)
        self.graphics.scene().sigMouseClicked.connect(self._on_click)
        self._on_opacity(self.opacity_slider.value())

    # ------------------------------------------------------------------ public
    def remember_in(self, settings) -> None:
        """Restore opacity and the Heatmap / Contours / Region switches from ``settings`` (a
        ``QSettings``; keys ``view/opacity``, ``view/overlay``, ``view/contours``, ``view/roi``) and
        store each later change there."""
        self.set_opacity(float(settings.value("view/opacity", 0.6)))
        for key, check, changed in (("view/overlay", self.overlay_check, self.overlay_toggled),
                                    ("view/contours", self.contour_check, self.contours_toggled),
                                    ("view/roi", self.roi_check, self.roi_toggled)):
            check.setChecked(as_bool(settings.value(key, True)))
            changed.connect(lambda on, key=key: settings.setValue(key, on))
        self.opacity_changed.connect(lambda v: settings.setValue("view/opacity", v))

    def set_opacity(self, opacity: float) -> None:
        self.opacity_slider.setValue(int(round(100 * min(max(opacity, 0.0), 1.0))))

    def opacity(self) -> float:
        return self.opacity_slider.value() / 100.0

    def show_result(self, image: np.ndarray | None, image_hw: tuple[int, int], unit_map: np.ndarray | None,
                    contour_xy: tuple[np.ndarray, np.ndarray] | None, caption: str) -> None:
        """Show one inspected image.

        Args:
            image: ``(H, W, 3) uint8`` RGB, or None when the pixels are no longer available.
            image_hw: ``(H, W)`` the map and contours refer to.
            unit_map: ``(h, w)`` normalised anomaly map (0.5 = threshold) covering the image, or None.
            contour_xy: outlines in image pixels (:func:`gui.heatmap.contour_polyline`), or None.
        """
        H, W = image_hw
        reset = self._image_hw != (H, W)
        self._image_hw = (H, W)
        self.placeholder.setVisible(image is None and unit_map is None)
        if image is not None:
            self.image_item.setImage(np.ascontiguousarray(image), levels=(0, 255), autoLevels=False)
            self.image_item.setRect(QRectF(0, 0, W, H))
            self.image_item.setVisible(True)
        else:
            self.image_item.setVisible(False)
        self.update_map(unit_map, contour_xy)
        if reset:
            self._draw_roi()
        self.caption.setText(caption)
        if reset:
            self.fit_view()

    def update_map(self, unit_map: np.ndarray | None, contour_xy: tuple[np.ndarray, np.ndarray] | None) -> None:
        """Replace overlay and contours (after a threshold change) without touching the image."""
        if unit_map is None or self._image_hw is None:
            self.heat_item.clear()
            self.contour_item.setData([], [])
            return
        H, W = self._image_hw
        self.heat_item.setImage(np.ascontiguousarray(unit_map, np.float32), levels=(0.0, 1.0), autoLevels=False)
        self.heat_item.setRect(QRectF(0, 0, W, H))
        self.heat_item.setVisible(self.overlay_check.isChecked())
        x, y = contour_xy if contour_xy is not None else (np.empty(0), np.empty(0))
        self.contour_item.setData(x, y, connect="finite")
        self.contour_item.setVisible(self.contour_check.isChecked())

    def set_roi(self, roi: RegionOfInterest | dict | None) -> None:
        """Outline ``roi`` (a region, its JSON as in ``info["roi"]``, or None = no outline) over the
        images from now on, the one shown included.

        Raises:
            engine.errors.DatasetError: ``roi`` is JSON but not a region of interest.
        """
        self._roi = RegionOfInterest.from_json(roi, "recipe's region of interest") if isinstance(roi, dict) else roi
        self.roi_check.setVisible(self._roi is not None and not self._roi.is_whole_image)
        self._draw_roi()

    def roi_outline(self, kind: str) -> tuple[np.ndarray, np.ndarray]:
        """The outline drawn for ``kind`` (``"include"`` / ``"exclude"``): view ``(x, y)`` float64 arrays,
        polygons separated by NaN; empty when none is drawn."""
        x, y = self.roi_items[kind].getData()
        return (np.empty(0), np.empty(0)) if x is None else (np.asarray(x), np.asarray(y))

    def set_legend(self, text: str) -> None:
        """Describe the colour scale in use under the image (one line)."""
        self.legend.setText(text)

    def clear(self, message: str = "No image yet: open images, a folder or a camera") -> None:
        self.image_item.clear()
        self.heat_item.clear()
        self.contour_item.setData([], [])
        self.placeholder.setText(message)
        self.placeholder.setVisible(True)
        self.placeholder.setPos(0, 0)
        self.caption.setText("")
        self._image_hw = None
        self._draw_roi()
        self.view.setRange(QRectF(-1, -1, 2, 2), padding=0)

    def fit_view(self) -> None:
        if self._image_hw is not None:
            H, W = self._image_hw
            self.view.setRange(QRectF(0, 0, W, H), padding=0.02)

    # ------------------------------------------------------------------ private
    def _on_overlay_toggled(self, on: bool) -> None:
        self.heat_item.setVisible(on)
        self.overlay_toggled.emit(on)

    def _on_contours_toggled(self, on: bool) -> None:
        self.contour_item.setVisible(on)
        self.contours_toggled.emit(on)

    def _on_roi_toggled(self, on: bool) -> None:
        for item in self.roi_items.values():
            item.setVisible(on)
        self.roi_toggled.emit(on)

    def _draw_roi(self) -> None:
        """Outline the region on the image shown, scaled to its size (nothing without either)."""
        if self._roi is None or self._image_hw is None:
            for item in self.roi_items.values():
                item.setData([], [])
            return
        H, W = self._image_hw
        include, exclude = scaled_polygons(self._roi, W, H)
        for kind, polys in (("include", include), ("exclude", exclude)):
            x, y = outline_xy(polys)
            self.roi_items[kind].setData(x, y, connect="finite")
            self.roi_items[kind].setVisible(self.roi_check.isChecked())

    def _on_opacity(self, value: int) -> None:
        self.heat_item.setOpacity(value / 100.0)
        self.opacity_changed.emit(value / 100.0)

    def _on_click(self, event) -> None:
        if event.double():
            self.fit_view()
