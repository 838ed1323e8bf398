"""The pyqtgraph items of the region-of-interest editor (:mod:`gui.roi_editor`).

* :class:`ClickLayer`: an invisible item over the image that takes the clicks while a shape is drawn;
* :class:`PolygonItem`: one drawn shape, a closed ``PolyLineROI`` whose corners can be dragged.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal


class ClickLayer(pg.GraphicsObject):
    """Invisible item over the image that takes left clicks while a shape is drawn (so a click on
    an existing shape adds a corner to the new one instead of editing the old one); drags still pan."""

    clicked = Signal(float, float, bool)
    """View x, y of a left click, and whether it was a double-click."""
    moved = Signal(float, float)
    """View x, y of the mouse over the layer."""

    def __init__(self):
        super().__init__()
        self._rect = QRectF()

    def set_rect(self, rect: QRectF) -> None:
        self.prepareGeometryChange()
        self._rect = QRectF(rect)

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        return self._rect

    def paint(self, painter, *args) -> None:
        pass

    def hoverEvent(self, ev) -> None:  # noqa: N802 - pyqtgraph API
        if ev.isExit():
            return
        ev.acceptClicks(Qt.MouseButton.LeftButton)
        self.moved.emit(ev.pos().x(), ev.pos().y())

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 - pyqtgraph API
        if ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        ev.accept()
        self.clicked.emit(ev.pos().x(), ev.pos().y(), ev.double())


class PolygonItem(pg.PolyLineROI):
    """A closed ``PolyLineROI`` whose corners lie above its edges: pyqtgraph gives both the same
    z value, so a press on a corner could grab the edge (which does not move) instead of the corner."""

    def addSegment(self, h1, h2, index=None):  # noqa: N802 - pyqtgraph API
        super().addSegment(h1, h2, index)
        for seg in self.segments:
            seg.setZValue(self.zValue() + 0.5)  # corners are at zValue() + 1
