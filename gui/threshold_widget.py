"""Threshold slider: a preview until applied, with a histogram of image scores.

The histogram shows the held-out good images the threshold was calibrated on (green) and the
parts inspected in this run (blue); the red line is the applied threshold. Moving the slider, the
exact-value box or the line only *previews* a threshold (orange, dashed; :mod:`gui.verdict`): the
window shows what it would do, the recipe and the log are untouched. "Apply" asks the window to
make it the recipe's threshold (``apply_requested(value)``; the window calls :meth:`set_applied`
once the model file holds it), "Revert" drops the preview, "Calibrated" previews the threshold
the recipe's calibration chose. Every change of the preview emits ``preview_changed()``; the state
itself is :attr:`ThresholdPanel.thresholds`.

Scale: the slider is fine near the applied threshold and coarse far from it (:class:`SliderScale`),
and the box next to it steps by about 0.1 % of the value (:func:`spin_step`).

Under the slider, the expected false-reject rate of good parts at the slider's threshold, with its
95% interval, is estimated from the recipe's calibration scores (good images the scorer did not
learn from) by :func:`engine.calibration.frr_at`: the empirical exceedance, or the fitted tail
where that lies inside the Clopper-Pearson interval.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QDoubleSpinBox, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout,
                               QWidget)

from engine.calibration import frr_at

from .verdict import Thresholds, fmt_threshold

STEPS = 1000
BINS = 30
SHARPNESS = 4.0
"""Steps of the slider at its ends are ``cosh(SHARPNESS)`` (about 27) times those at its middle."""

PREVIEW_COLOUR = "#e37400"
APPLIED_COLOUR = "#d93025"


class SliderScale:
    """Slider positions ``0..STEPS`` <-> thresholds in ``[lo, hi]``, fine near ``centre``.

    ``centre`` sits at the middle position; a position's offset ``u`` in [-1, 1] from there maps to
    ``centre + w * sinh(SHARPNESS * u) / sinh(SHARPNESS)`` with ``w = hi - centre`` above and
    ``centre - lo`` below, so one step near the centre moves the threshold by about
    ``0.15 * w / (STEPS / 2)`` (0.03 % of ``w``) and one at the ends by about 27 times that.
    Monotone; :meth:`position` inverts :meth:`value` up to rounding.
    """

    def __init__(self, lo: float, hi: float, centre: float):
        self.lo, self.hi = float(lo), float(hi)
        self.centre = min(max(float(centre), self.lo), self.hi)
        tiny = 1e-12 * max(1.0, abs(self.hi - self.lo))
        self._w_lo, self._w_hi = max(self.centre - self.lo, tiny), max(self.hi - self.centre, tiny)

    def value(self, position: int) -> float:
        """Threshold (image-score units) at a slider position in ``0..STEPS``."""
        u = 2.0 * position / STEPS - 1.0
        w = self._w_hi if u >= 0 else self._w_lo
        return self.centre + w * math.sinh(SHARPNESS * u) / math.sinh(SHARPNESS)

    def position(self, value: float) -> int:
        """Nearest slider position of a threshold (clipped to ``0..STEPS``)."""
        w = self._w_hi if value >= self.centre else self._w_lo
        u = math.asinh((value - self.centre) / w * math.sinh(SHARPNESS)) / SHARPNESS
        return int(min(max(round((u + 1.0) * STEPS / 2.0), 0), STEPS))


def spin_step(value: float | None) -> float:
    """Step of the exact-value box: the power of ten at or below 0.1 % of ``|value|`` (1e-6 at least)."""
    if not value:
        return 1e-3
    return max(10.0 ** math.floor(math.log10(abs(value) * 1e-3)), 1e-6)


class ThresholdPanel(QWidget):
    """Slider + exact value + Apply / Revert + histogram (module docstring)."""

    preview_changed = Signal()
    apply_requested = Signal(float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.thresholds = Thresholds()
        self._good = np.empty(0)
        self._tail: dict | None = None
        self._inspected = np.empty(0)
        self._lo, self._hi = 0.0, 1.0
        self.scale = SliderScale(0.0, 1.0, 0.5)
        self._applying = False

        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, STEPS)
        self.slider.setToolTip("Preview a threshold (parts scoring at or above it are NOK); fine steps near the "
                               "applied threshold, coarse far from it. Apply makes it the recipe's threshold.")
        self.spin = QDoubleSpinBox()
        self.spin.setRange(-1e9, 1e9)
        self.spin.setKeyboardTracking(False)
        self.spin.setToolTip("Exact threshold; the arrows step by about 0.1 % of the value")
        self.status_label = QLabel("")
        self.status_label.setWordWrap(True)
        self.apply_button = QPushButton("Apply")
        self.apply_button.setToolTip("Make the previewed threshold the recipe's: saved in its model file, kept "
                                     "in its history, and written to the defect log")
        self.revert_button = QPushButton("Revert")
        self.revert_button.setToolTip("Back to the applied threshold")
        self.reset_button = QPushButton("Calibrated")
        self.reset_button.setToolTip("Preview the threshold calibrated on good images")
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
        self.applied_line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(APPLIED_COLOUR, width=2))
        self.line = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen(APPLIED_COLOUR, width=2),
                                    hoverPen=pg.mkPen("#ff6d00", width=3))
        self.line.setToolTip("Drag to preview a threshold")
        self.plot.addItem(self.applied_line)
        self.plot.addItem(self.line)
        self.plot.setYRange(0, 1)

        self.legend = QLabel('<span style="color:#1e8e3e">&#9632;</span> good images (calibration) &nbsp; '
                             '<span style="color:#1a73e8">&#9632;</span> inspected &nbsp; '
                             f'<span style="color:{APPLIED_COLOUR}">&#9474;</span> applied &nbsp; '
                             f'<span style="color:{PREVIEW_COLOUR}">&#9482;</span> preview')
        self.legend.setWordWrap(True)  # the side panel is narrow

        row = QHBoxLayout()
        row.addWidget(QLabel("Threshold"))
        row.addWidget(self.slider, 1)
        row.addWidget(self.spin)
        buttons = QHBoxLayout()
        buttons.addWidget(self.status_label, 1)
        for b in (self.apply_button, self.revert_button, self.reset_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.frr_label = QLabel("")
        self.frr_label.setWordWrap(True)  # the side panel is narrow
        self.frr_label.setToolTip("Share of good parts expected to be rejected at this threshold, estimated from "
                                  "the good images the recipe was calibrated on (95% Clopper-Pearson interval)")
        layout.addLayout(row)
        layout.addLayout(buttons)
        layout.addWidget(self.frr_label)
        layout.addWidget(self.legend)
        layout.addWidget(self.plot, 1)

        self.slider.valueChanged.connect(lambda pos: self._request(self.scale.value(pos)))
        self.spin.valueChanged.connect(lambda v: self._request(float(v)))
        self.line.sigPositionChangeFinished.connect(lambda: self._request(float(self.line.value())))
        self.apply_button.clicked.connect(self.apply)
        self.revert_button.clicked.connect(self.revert)
        self.reset_button.clicked.connect(self.reset_to_calibrated)
        self._sync_controls()

    # ------------------------------------------------------------------ public
    def threshold(self) -> float | None:
        """The threshold in use: the preview, else the applied one."""
        return self.thresholds.in_use

    def set_recipe(self, thresholds: Thresholds, good_scores, tail: dict | None = None) -> None:
        """A recipe became active: its thresholds (no preview), calibration good image scores and
        their fitted tail (``engine.calibration.fit_exptail`` dict, or None)."""
        self.thresholds = thresholds
        self._good = np.asarray(good_scores, np.float64).ravel()
        self._tail = tail
        self._inspected = np.empty(0)
        self._applying = False
        self._update_range(reset=True)
        self._sync_controls()
        self._draw_histogram()

    def set_inspected_scores(self, scores) -> None:
        """Scores of the parts inspected in this run (histogram, and range of the slider)."""
        self._inspected = np.asarray(scores, np.float64).ravel()
        if self._update_range(reset=False):
            self._sync_controls()
        else:
            self._update_enabled()  # (not the value box: the operator may be typing in it)
        self._draw_histogram()

    def set_threshold(self, value: float) -> None:
        """Preview ``value`` as if the user had moved the slider (emits ``preview_changed``)."""
        self._request(float(value))

    def set_applied(self, value: float) -> None:
        """The recipe's threshold is now ``value`` (saved); the preview ends, unless the slider was
        moved elsewhere meanwhile."""
        self.thresholds.applied = float(value)
        self.thresholds.set_preview(self.thresholds.preview)
        self._applying = False
        self._update_range(reset=False)
        self._sync_controls()
        self.preview_changed.emit()

    def set_applying(self, on: bool) -> None:
        """Apply was requested and is being saved (on), or failed (off): Apply waits meanwhile."""
        self._applying = on
        self._sync_controls()

    def apply(self) -> None:
        """Ask for the previewed threshold to be applied (``apply_requested``)."""
        if self.thresholds.previewing and not self._applying:
            self.apply_requested.emit(self.thresholds.preview)

    def revert(self) -> None:
        """Drop the preview: back to the applied threshold."""
        self._request(None)

    def reset_to_calibrated(self) -> None:
        """Preview the calibrated threshold (nothing to preview when it is the applied one)."""
        if self.thresholds.calibrated is not None:
            self._request(self.thresholds.calibrated)

    def expected_frr(self, threshold: float | None = None) -> dict | None:
        """:func:`engine.calibration.frr_at` at ``threshold`` (default: the one in use), or None
        without calibration scores or threshold."""
        t = self.thresholds.in_use if threshold is None else threshold
        if t is None or not self._good.size:
            return None
        return frr_at(self._good, t, self._tail)

    def value_at(self, slider_position: int) -> float:
        """Threshold that a slider position stands for."""
        return self.scale.value(slider_position)

    def position_of(self, value: float) -> int:
        """Slider position nearest to a threshold."""
        return self.scale.position(value)

    # ------------------------------------------------------------------ private
    def _request(self, value: float | None) -> None:
        th = self.thresholds
        if not self._usable():
            return
        if value is not None and not (self._lo <= value <= self._hi):
            self._lo, self._hi = min(self._lo, value), max(self._hi, value)
            self._draw_histogram()
        changed = th.set_preview(value)
        self._sync_controls()
        if changed:
            self.preview_changed.emit()

    def _update_range(self, reset: bool) -> bool:
        th = self.thresholds
        vals = np.concatenate([self._good, self._inspected])
        marks = [t for t in (th.applied, th.preview) if t is not None]
        lo = min([th.scale_floor] + ([float(vals.min())] if vals.size else []) + marks)
        hi_candidates = ([float(vals.max())] if vals.size else []) + marks
        if th.applied is not None:
            hi_candidates.append(th.applied + (th.applied - th.scale_floor))
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
        th = self.thresholds
        t = th.in_use
        centre = th.applied if th.applied is not None else (self._lo + self._hi) / 2
        self.scale = SliderScale(self._lo, self._hi, centre)
        for w in (self.slider, self.spin, self.line):
            w.blockSignals(True)
        self.line.setVisible(t is not None)
        self.applied_line.setVisible(th.previewing)
        if t is not None:
            step = spin_step(t)
            self.spin.setDecimals(min(max(-math.floor(math.log10(step)), 0), 10))
            self.spin.setSingleStep(step)
            self.slider.setValue(self.scale.position(t))
            self.spin.setValue(t)
            self.line.setValue(t)
            self.applied_line.setValue(th.applied)
        colour = PREVIEW_COLOUR if th.previewing else APPLIED_COLOUR
        style = Qt.PenStyle.DashLine if th.previewing else Qt.PenStyle.SolidLine
        self.line.setPen(pg.mkPen(colour, width=2, style=style))
        for w in (self.slider, self.spin, self.line):
            w.blockSignals(False)
        self._update_enabled()
        self.status_label.setText(self._status_text())
        self.status_label.setStyleSheet(f"color: {PREVIEW_COLOUR}; font-weight: bold;" if th.previewing else "")
        self.frr_label.setText(self._frr_text())
        self.plot.setXRange(self._lo, self._hi, padding=0)

    def _update_enabled(self) -> None:
        th = self.thresholds
        for w in (self.slider, self.spin, self.line):
            w.setEnabled(self._usable())
        self.apply_button.setEnabled(th.previewing and not self._applying)
        self.revert_button.setEnabled(th.previewing)
        self.reset_button.setEnabled(th.calibrated is not None and th.calibrated != th.in_use)

    def _usable(self) -> bool:
        """A recipe is active and has a threshold, or scores to place one among."""
        th = self.thresholds
        return bool(th.recipe) and (th.applied is not None or bool(self._good.size or self._inspected.size))

    def _status_text(self) -> str:
        th = self.thresholds
        if th.in_use is None:
            return "No threshold applied" if th.recipe else ""
        if th.previewing:
            state = "applying…" if self._applying else "not applied"
            return f"Preview {fmt_threshold(th.preview)} — {state} (applied {fmt_threshold(th.applied)})"
        cal = "" if th.calibrated in (None, th.applied) else f" (calibrated {fmt_threshold(th.calibrated)})"
        return f"Applied {fmt_threshold(th.applied)}{cal}"

    def _frr_text(self) -> str:
        th = self.thresholds
        f = self.expected_frr()
        if f is None:
            return "Expected false-reject rate: no calibration scores in this recipe" if th.in_use is not None else ""
        lo, hi = f["ci95"]
        where = f"{fmt_threshold(th.in_use)} (preview)" if th.previewing else fmt_threshold(th.in_use)
        text = (f"Expected false-reject rate of good parts at {where}: <b>{f['estimate']:.1%}</b> "
                f"(95% interval {lo:.1%} – {hi:.1%}; {f['exceed']} of {f['n']} calibration images at or above)")
        if th.previewing and th.applied is not None:
            text += f"; at the applied {fmt_threshold(th.applied)}: {self.expected_frr(th.applied)['estimate']:.1%}"
        return text

    def _draw_histogram(self) -> None:
        edges = np.linspace(self._lo, self._hi, BINS + 1)
        for curve, values in ((self.good_curve, self._good), (self.inspected_curve, self._inspected)):
            counts, _ = np.histogram(values, bins=edges)
            curve.setData(edges, counts.astype(np.float64))
        if self._good.size or self._inspected.size:
            self.plot.enableAutoRange(axis="y")
