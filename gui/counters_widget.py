"""Run counters (inspected, OK, NOK, yield %) and a trend plot of image scores against the threshold."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from .run_results import Counts

TREND_POINTS = 500
"""Latest results drawn in the trend plot."""

_COLOURS = {"OK": "#1e8e3e", "NOK": "#d93025", "n/a": "#80868b"}


class CountersPanel(QWidget):
    """Counters and trend plot of the current run."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.value_labels: dict[str, QLabel] = {}
        grid = QGridLayout()
        for col, (key, title) in enumerate((("inspected", "Inspected"), ("ok", "OK"), ("nok", "NOK"),
                                            ("yield", "Yield"))):
            head = QLabel(title)
            head.setAlignment(Qt.AlignmentFlag.AlignCenter)
            val = QLabel("0")
            val.setAlignment(Qt.AlignmentFlag.AlignCenter)
            val.setStyleSheet("font-size: 20px; font-weight: bold;")
            grid.addWidget(head, 0, col)
            grid.addWidget(val, 1, col)
            self.value_labels[key] = val
        self.value_labels["ok"].setStyleSheet("font-size: 20px; font-weight: bold; color: #1e8e3e;")
        self.value_labels["nok"].setStyleSheet("font-size: 20px; font-weight: bold; color: #d93025;")
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMinimumHeight(120)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        for axis in ("bottom", "left"):
            self.plot.getAxis(axis).enableAutoSIPrefix(False)
        self.plot.setLabel("bottom", "inspection #")
        self.plot.setLabel("left", "image score")
        self.scatter = pg.ScatterPlotItem(size=6, pen=None)
        self.plot.addItem(self.scatter)
        self.line = pg.InfiniteLine(angle=0, movable=False, pen=pg.mkPen("#d93025", width=1, style=Qt.PenStyle.DashLine))
        self.plot.addItem(self.line)
        self.line.setVisible(False)
        self._brushes = {k: pg.mkBrush(c) for k, c in _COLOURS.items()}
        self.plot.setXRange(0, 10)
        self.plot.setYRange(0, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(grid)
        layout.addWidget(self.plot, 1)

    def show_counts(self, counts: Counts) -> None:
        self.value_labels["inspected"].setText(str(counts.inspected))
        self.value_labels["ok"].setText(str(counts.ok))
        self.value_labels["nok"].setText(str(counts.nok))
        y = counts.yield_percent
        self.value_labels["yield"].setText("—" if y is None else f"{y:.1f} %")

    def show_trend(self, scores: np.ndarray, threshold: float | None) -> None:
        """``(n,)`` image scores of the run in order (NaN = unreadable, skipped); the latest
        :data:`TREND_POINTS` are drawn, red at or above the threshold, green below."""
        start = max(0, scores.size - TREND_POINTS)
        ys = scores[start:]
        xs = np.arange(start + 1, scores.size + 1, dtype=np.float64)
        keep = ~np.isnan(ys)
        xs, ys = xs[keep], ys[keep]
        if threshold is None:
            brushes = [self._brushes["n/a"]] * ys.size
        else:
            brushes = [self._brushes["NOK"] if y >= threshold else self._brushes["OK"] for y in ys]
        self.scatter.setData(xs, ys, brush=brushes)
        if xs.size:
            self.plot.enableAutoRange()
        self.line.setVisible(threshold is not None)
        if threshold is not None:
            self.line.setValue(threshold)
