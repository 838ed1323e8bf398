"""The inspection view: the image, the anomaly-map overlay and the defect contours, with zoom and pan.

Three pyqtgraph items share one ViewBox (y pointing down, square pixels, mouse wheel zooms, drag
pans, double-click or "Fit" resets): the image (``(H, W, 3) uint8`` row-major), the heatmap as a
second ImageItem (normalised map with fixed levels 0..1 and the RGBA table of
:func:`gui.heatmap.heatmap_lut`, stretched over the image) and the contours (one curve). The
controls below switch the overlay and contours on/off and set the overlay opacity.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget

from .heatmap import heatmap_lut


class InspectionView(QWidget):
    """Image + heatmap overlay + contours (module docstring).

    Signals:
        opacity_changed(float): overlay opacity 0..1 chosen by the user.
        overlay_toggled(bool), contours_toggled(bool): switches changed by the user.
    """

    opacity_changed = Signal(float)
    overlay_toggled = Signal(bool)
    contours_toggled = Signal(bool)

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
        for item in (self.image_item, self.heat_item, self.contour_item):
            self.view.addItem(item)
        self.placeholder = pg.TextItem("No image yet: open images, a folder or a camera", color="#bbbbbb",
                                       anchor=(0.5, 0.5))
        self.view.addItem(self.placeholder)
        self.view.setRange(QRectF(-1, -1, 2, 2), padding=0)
        self._image_hw: tuple[int, int] | None = None

        self.overlay_check = QCheckBox("Heatmap")
        self.overlay_check.setChecked(True)
        self.contour_check = QCheckBox("Contours")
        self.contour_check.setChecked(True)
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
        self.opacity_slider.valueChanged.connect(self._on_opacity)
        self.fit_button.clicked.connect(self.fit_view)
        self.graphics.scene().sigMouseClicked.connect(self._on_click)
        self._on_opacity(self.opacity_slider.value())

    # ------------------------------------------------------------------ public
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

    def _on_opacity(self, value: int) -> None:
        self.heat_item.setOpacity(value / 100.0)
        self.opacity_changed.emit(value / 100.0)

    def _on_click(self, event) -> None:
        if event.double():
            self.fit_view()
