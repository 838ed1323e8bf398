"""Run counters (inspected, OK, NOK, yield %) and a trend plot of image scores against the threshold.

Counters and point colours are the verdicts given at inspection time (as logged). While a
threshold is previewed, a line under the counters gives the run's counts at it, and the trend plot
shows it as an orange dashed line beside the applied one (red).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from .run_results import Counts
from .verdict import fmt_threshold

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
        self.preview_label = QLabel("")
        self.preview_label.setStyleSheet("color: #e37400; font-weight: bold;")
        self.preview_label.setWordWrap(True)
        self.preview_label.hide()
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
        self.preview_line = pg.InfiniteLine(angle=0, movable=False,
                                            pen=pg.mkPen("#e37400", width=1, style=Qt.PenStyle.DashLine))
        self.plot.addItem(self.preview_line)
        self.preview_line.setVisible(False)
        self._brushes = {k: pg.mkBrush(c) for k, c in _COLOURS.items()}
        self.plot.setXRange(0, 10)
        self.plot.setYRange(0, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(grid)
        layout.addWidget(self.preview_label)
        layout.addWidget(self.plot, 1)

    def show_counts(self, counts: Counts, preview: Counts | None = None, preview_threshold: float | None = None) -> None:
        """The run's counters as logged; ``preview``: its counts at ``preview_threshold`` (or None)."""
        self.value_labels["inspected"].setText(str(counts.inspected))
        self.value_labels["ok"].setText(str(counts.ok))
        self.value_labels["nok"].setText(str(counts.nok))
        self.value_labels["yield"].setText(_percent(counts.yield_percent))
        self.preview_label.setVisible(preview is not None)
        if preview is not None:
            self.preview_label.setText(f"Preview at {fmt_threshold(preview_threshold)} (not applied): {preview.ok} OK, "
                                       f"{preview.nok} NOK, yield {_percent(preview.yield_percent)}")

    def show_trend(self, scores: np.ndarray, verdicts: list[str], threshold: float | None,
                   preview: float | None = None) -> None:
        """``(n,)`` image scores of the run in order (NaN = unreadable, skipped) and the verdicts
        given then; the latest :data:`TREND_POINTS` are drawn, coloured by verdict, with the applied
        ``threshold`` and a previewed one as horizontal lines."""
        start = max(0, scores.size - TREND_POINTS)
        ys = scores[start:]
        vs = verdicts[start:]
        xs = np.arange(start + 1, scores.size + 1, dtype=np.float64)
        keep = ~np.isnan(ys)
        xs, ys = xs[keep], ys[keep]
        brushes = [self._brushes.get(v, self._brushes["n/a"]) for v, k in zip(vs, keep) if k]
        self.scatter.setData(xs, ys, brush=brushes)
        if xs.size:
            self.plot.enableAutoRange()
        for line, value in ((self.line, threshold), (self.preview_line, preview)):
            line.setVisible(value is not None)
            if value is not None:
                line.setValue(value)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} %"
