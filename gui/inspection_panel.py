"""The right-hand column of the inspection tab: the verdict of the shown part, the strip of the
run's last verdicts under it (:mod:`gui.verdict_strip`), the threshold (a preview until applied)
and the run's counters and trend -- everything that depends on which threshold judges what
(:mod:`gui.verdict`)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from .counters_widget import CountersPanel
from .run_results import InspectionResult, RunResults
from .threshold_widget import ThresholdPanel
from .verdict import Thresholds
from .verdict_strip import VerdictStrip
from .verdict_widget import VerdictPanel


class InspectionPanel(QWidget):
    """Verdict + position + strip of the last verdicts + threshold + counters.

    Signals:
        preview_changed(): the previewed threshold changed (or ended); the window redraws the map
            and the log's preview column.
        apply_requested(float): the operator pressed Apply on a previewed threshold.
    """

    preview_changed = Signal()
    apply_requested = Signal(float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.verdict_panel = VerdictPanel()
        self.verdict_strip = VerdictStrip()
        self.threshold_panel = ThresholdPanel()
        self.counters_panel = CountersPanel()
        self.position_label = QLabel("")
        self.setMinimumWidth(380)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 0, 0, 0)
        layout.addWidget(self.verdict_panel)
        layout.addWidget(self.position_label)
        layout.addWidget(self.verdict_strip)
        layout.addWidget(self.threshold_panel, 2)
        layout.addWidget(self.counters_panel, 2)
        self.threshold_panel.preview_changed.connect(self.preview_changed)
        self.threshold_panel.apply_requested.connect(self.apply_requested)

    @property
    def thresholds(self) -> Thresholds:
        """The active recipe's applied / calibrated / preview thresholds (one object, shared)."""
        return self.threshold_panel.thresholds

    def set_recipe(self, info: dict | None) -> None:
        """A recipe became active (``gui.worker.model_info`` dict): its thresholds, no preview."""
        self.threshold_panel.set_recipe(Thresholds.from_info(info), [] if info is None else info["holdout_scores"],
                                        None if info is None else info.get("tail"))

    def show_result(self, r: InspectionResult, position: str) -> None:
        """The verdict of result ``r`` as the screen shows it (preview or logged), and its position."""
        v = self.thresholds.screen_verdict(r)
        self.verdict_panel.show_verdict(v.verdict, r.score, v.normalised, r.latency_ms if r.score is not None else None,
                                        note=v.note, preview=v.preview)
        self.position_label.setText(position)

    def clear_result(self) -> None:
        self.verdict_panel.show_verdict(None, None, None, None)
        self.position_label.setText("")

    def refresh_run(self, results: RunResults, histogram: bool = True) -> None:
        """Counters and trend of the run as logged, with the preview's counts while previewing."""
        th = self.thresholds
        preview = results.counts(th.preview) if th.previewing else None
        self.counters_panel.show_counts(results.logged_counts(), preview, th.preview)
        self.counters_panel.show_trend(results.score_array(), results.verdicts(), th.applied, th.preview)
        if histogram:
            self.threshold_panel.set_inspected_scores(results.scores())
