"""The status bar while the worker is busy: a line of text, a progress bar and a Cancel button."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QStatusBar


class JobStatus:
    """Text + progress + Cancel in ``status_bar``; ``on_cancel()`` runs when Cancel is pressed."""

    def __init__(self, status_bar: QStatusBar, on_cancel):
        self.label = QLabel("")
        self.progress_bar = QProgressBar()
        self.progress_bar.setMinimumWidth(300)
        self.progress_bar.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        status_bar.addWidget(self.label, 1)
        status_bar.addPermanentWidget(self.progress_bar)
        status_bar.addPermanentWidget(self.cancel_button)
        self.progress_bar.hide()
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(lambda _=False: on_cancel())

    def begin(self, text: str, progress: bool, cancellable: bool) -> None:
        """A job starts: ``progress`` shows steps (else a busy bar), ``cancellable`` shows Cancel."""
        self.label.setText(text + "…")
        self.progress_bar.setValue(0)
        self.progress_bar.setMaximum(1 if progress else 0)
        self.progress_bar.setFormat("")
        self.progress_bar.show()
        self.cancel_button.setVisible(cancellable)

    def step(self, done: int, total: int, stage: str) -> None:
        """Progress of the job: ``done`` of ``total`` in ``stage`` (e.g. "features")."""
        self.progress_bar.setMaximum(max(total, 1))
        self.progress_bar.setValue(min(done, max(total, 1)))
        self.progress_bar.setFormat(f"{stage}: %v / %m")

    def end(self) -> None:
        self.progress_bar.hide()
        self.cancel_button.hide()
