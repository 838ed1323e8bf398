"""Threshold slider with a histogram of image scores and the threshold line.

The histogram shows the held-out good images the threshold was calibrated on (green) and the
parts inspected in this run (blue); the vertical line is the threshold, draggable like the slider.
Moving either emits ``threshold_changed(value)``; the window then re-judges the stored scores, it
never runs the model again. "Calibrated" returns to the recipe's own threshold.

Under the slider, the expected false-reject rate of good parts at the current threshold, with its
95% interval, is estimated from the recipe's calibration scores (good images the scorer did not
learn from) by :func:`engine.calibration.frr_at`: the empirical exceedance, or the fitted tail
where that lies inside the Clopper-Pearson interval.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QDoubleSpinBox, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout,
                               QWidget)

from engine.calibration import frr_at

STEPS = 1000
BINS = 30


class ThresholdPanel(QWidget):
    """Slider + exact value + histogram (module docstring)."""

    threshold_changed = Signal(float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._threshold: float | None = None
        self._calibrated: float | None = None
        self._floor = 0.0
        self._good = np.empty(0)
        self._tail: dict | None = None
        self._inspected = np.empty(0)
        self._lo, self._hi = 0.0, 1.0

        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, STEPS)
        self.slider.setToolTip("Threshold: parts scoring at or above it are NOK")
        self.spin = QDoubleSpinBox()
        self.spin.setDecimals(4)
        self.spin.setRange(-1e9, 1e9)
        self.spin.setKeyboardTracking(False)
        self.reset_button = QPushButton("Calibrated")
        self.reset_button.setToolTip("Back to the threshold calibrated on good images")
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMinimumHeight(140)
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        for axis in ("bottom", "left"):
            self.plot.getAxis(axis).enableAutoSIPrefix(False)
        self.plot.setLabel("bottom", "image score")
        self.plot.setLabel("left", "images")
        self.good_curve = self.plot.plot([0, 1], [0], stepMode="center", fillLevel=0,
                                         brush=(30, 142, 62, 110), pen=pg.mkPen("#1e8e3e"))
        self.inspected_curve = self.plot.plot([0, 1], [0], stepMode="center", fillLevel=0,
                                              brush=(26, 115, 232, 90), pen=pg.mkPen("#1a73e8"))
        self.line = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen("#d93025", width=2),
                                    hoverPen=pg.mkPen("#ff6d00", width=3))
        self.plot.addItem(self.line)
        self.plot.setYRange(0, 1)

        self.legend = QLabel('<span style="color:#1e8e3e">&#9632;</span> good images (calibration) &nbsp; '
                             '<span style="color:#1a73e8">&#9632;</span> inspected &nbsp; '
                             '<span style="color:#d93025">&#9474;</span> threshold')

        row = QHBoxLayout()
        row.addWidget(QLabel("Threshold"))
        row.addWidget(self.slider, 1)
        row.addWidget(self.spin)
        row.addWidget(self.reset_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.frr_label = QLabel("")
        self.frr_label.setWordWrap(True)  # the side panel is narrow
        self.frr_label.setToolTip("Share of good parts expected to be rejected at this threshold, estimated from "
                                  "the good images the recipe was calibrated on (95% Clopper-Pearson interval)")
        layout.addLayout(row)
        layout.addWidget(self.frr_label)
        layout.addWidget(self.legend)
        layout.addWidget(self.plot, 1)

        self.slider.valueChanged.connect(self._on_slider)
        self.spin.valueChanged.connect(self._on_spin)
        self.line.sigPositionChangeFinished.connect(self._on_line)
        self.reset_button.clicked.connect(self.reset_to_calibrated)
        self._sync_controls()
        self._set_enabled(False)

    # ------------------------------------------------------------------ public
    def threshold(self) -> float | None:
        return self._threshold

    def calibrated_threshold(self) -> float | None:
        return self._calibrated

    def set_calibration(self, threshold: float | None, floor: float | None, good_scores,
                        tail: dict | None = None) -> None:
        """A recipe became active: its threshold, colour floor, calibration good image scores and
        their fitted tail (``engine.calibration.fit_exptail`` dict, or None)."""
        self._calibrated = threshold
        self._floor = 0.0 if floor is None else float(floor)
        self._good = np.asarray(good_scores, np.float64).ravel()
        self._tail = tail
        self._inspected = np.empty(0)
        self._threshold = threshold
        self._update_range(reset=True)
        self._sync_controls()
        self._draw_histogram()
        self._set_enabled(threshold is not None)

    def set_inspected_scores(self, scores) -> None:
        """Scores of the parts inspected in this run (histogram, and range of the slider)."""
        self._inspected = np.asarray(scores, np.float64).ravel()
        if self._update_range(reset=False):
            self._sync_controls()
        self._draw_histogram()
        if self._threshold is None and self._inspected.size:
            self._set_enabled(True)

    def set_threshold(self, value: float) -> None:
        """Set the threshold as if the user had chosen it (emits ``threshold_changed``)."""
        self._apply(float(value))

    def expected_frr(self) -> dict | None:
        """:func:`engine.calibration.frr_at` at the current threshold, or None without scores."""
        if self._threshold is None or not self._good.size:
            return None
        return frr_at(self._good, self._threshold, self._tail)

    def value_at(self, slider_position: int) -> float:
        """Threshold that a slider position stands for."""
        return self._lo + (self._hi - self._lo) * slider_position / STEPS

    def reset_to_calibrated(self) -> None:
        if self._calibrated is not None:
            self._apply(self._calibrated)

    # ------------------------------------------------------------------ private
    def _set_enabled(self, on: bool) -> None:
        for w in (self.slider, self.spin, self.line):
            w.setEnabled(on)
        self.reset_button.setEnabled(on and self._calibrated is not None)

    def _update_range(self, reset: bool) -> bool:
        vals = np.concatenate([self._good, self._inspected])
        thr = self._threshold
        lo = min([self._floor] + ([float(vals.min())] if vals.size else []) + ([thr] if thr is not None else []))
        hi_candidates = [float(vals.max())] if vals.size else []
        if thr is not None:
            hi_candidates.append(thr + (thr - self._floor))
        hi = max(hi_candidates) if hi_candidates else lo + 1.0
        if hi <= lo:
            hi = lo + 1.0
        hi += 0.05 * (hi - lo)
        if not reset and lo >= self._lo and hi <= self._hi:
            return False
        self._lo = lo if reset else min(lo, self._lo)
        self._hi = hi if reset else max(hi, self._hi)
        return True

    def _sync_controls(self) -> None:
        for w in (self.slider, self.spin, self.line):
            w.blockSignals(True)
        self.line.setVisible(self._threshold is not None)
        if self._threshold is not None:
            pos = int(round((self._threshold - self._lo) / (self._hi - self._lo) * STEPS))
            self.slider.setValue(min(max(pos, 0), STEPS))
            self.spin.setValue(self._threshold)
            self.line.setValue(self._threshold)
        self.spin.setSingleStep(max((self._hi - self._lo) / 200, 1e-6))
        for w in (self.slider, self.spin, self.line):
            w.blockSignals(False)
        f = self.expected_frr()
        if f is None:
            self.frr_label.setText("Expected false-reject rate: no calibration scores in this recipe"
                                   if self._threshold is not None else "")
        else:
            lo, hi = f["ci95"]
            self.frr_label.setText(f"Expected false-reject rate of good parts: <b>{f['estimate']:.1%}</b> "
                                   f"(95% interval {lo:.1%} – {hi:.1%}; {f['exceed']} of {f['n']} calibration "
                                   f"images at or above)")
        self.plot.setXRange(self._lo, self._hi, padding=0)

    def _draw_histogram(self) -> None:
        edges = np.linspace(self._lo, self._hi, BINS + 1)
        for curve, values in ((self.good_curve, self._good), (self.inspected_curve, self._inspected)):
            counts, _ = np.histogram(values, bins=edges)
            curve.setData(edges, counts.astype(np.float64))
        if self._good.size or self._inspected.size:
            self.plot.enableAutoRange(axis="y")

    def _apply(self, value: float) -> None:
        if self._threshold is not None and value == self._threshold:
            return
        self._threshold = value
        if value < self._lo or value > self._hi:
            self._lo, self._hi = min(self._lo, value), max(self._hi, value)
            self._draw_histogram()
        self._sync_controls()
        self.threshold_changed.emit(value)

    def _on_slider(self, pos: int) -> None:
        self._apply(self.value_at(pos))

    def _on_spin(self, value: float) -> None:
        self._apply(float(value))

    def _on_line(self) -> None:
        self._apply(float(self.line.value()))
