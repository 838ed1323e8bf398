"""The verdict panel: a large OK / NOK indicator with the image score (raw and normalised) and latency.

A preview verdict (a threshold previewed, not applied: :mod:`gui.verdict`) is drawn as an outline in
the verdict's colour with "PREVIEW" in it, and the line under it says what was logged.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QLabel, QVBoxLayout, QWidget

VERDICT_STYLE = {
    "OK": ("OK", "#1e8e3e"),
    "NOK": ("NOK", "#d93025"),
    "n/a": ("NO THRESHOLD", "#80868b"),
    "error": ("UNREADABLE", "#e37400"),
    None: ("—", "#5f6368"),
}


class VerdictPanel(QWidget):
    """Large verdict indicator plus score and latency lines."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.indicator = QLabel()
        self.indicator.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.indicator.setMinimumHeight(96)
        self.note_label = QLabel("")
        self.note_label.setWordWrap(True)
        self.note_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.score_label = QLabel("—")
        self.normalised_label = QLabel("—")
        self.latency_label = QLabel("—")
        for lab in (self.score_label, self.normalised_label, self.latency_label):
            lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.normalised_label.setToolTip("0 = typical good part, 0.5 = threshold, 1 = far beyond it")
        form = QFormLayout()
        form.addRow("Image score", self.score_label)
        form.addRow("Normalised (threshold 0.5)", self.normalised_label)
        form.addRow("Latency", self.latency_label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.indicator)
        layout.addWidget(self.note_label)
        layout.addLayout(form)
        self.verdict: str | None = None
        self.preview = False
        self.show_verdict(None, None, None, None)

    @property
    def verdict_text(self) -> str:
        """The verdict shown (``"OK"``, ``"NOK"``, ``"NO THRESHOLD"``...), without the preview mark."""
        return VERDICT_STYLE.get(self.verdict, VERDICT_STYLE[None])[0]

    def show_verdict(self, verdict: str | None, score: float | None, normalised: float | None,
                     latency_ms: float | None, note: str = "", preview: bool = False) -> None:
        """Show a verdict (``"OK"``, ``"NOK"``, ``"n/a"``, ``"error"`` or None for nothing yet).

        ``preview``: it is a preview verdict (outlined, marked PREVIEW); ``note``: the line under it.
        """
        text, colour = VERDICT_STYLE.get(verdict, VERDICT_STYLE[None])
        self.verdict, self.preview = verdict, preview
        if preview:
            self.indicator.setText(f"{text}<br><span style='font-size: 14px;'>PREVIEW — not applied</span>")
            self.indicator.setStyleSheet(
                f"QLabel {{ background: white; color: {colour}; font-size: 44px; font-weight: bold; "
                f"border: 4px dashed {colour}; border-radius: 8px; }}")
        else:
            self.indicator.setText(text)
            self.indicator.setStyleSheet(
                f"QLabel {{ background: {colour}; color: white; font-size: 44px; font-weight: bold; "
                f"border-radius: 8px; }}")
        self.note_label.setText(note)
        self.note_label.setVisible(bool(note))
        self.score_label.setText("—" if score is None else f"{score:.4g}")
        self.normalised_label.setText("—" if normalised is None else f"{normalised:.3f}")
        self.latency_label.setText("—" if latency_ms is None else f"{latency_ms:.0f} ms")
