"""Station settings dialog: the station name written into every log row."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QVBoxLayout, QWidget


class SettingsDialog(QDialog):
    """Edits the station name; shows where data and settings are kept."""

    def __init__(self, station: str, data_folder: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Station settings")
        self.station_edit = QLineEdit(station)
        self.station_edit.setPlaceholderText("e.g. line 2 / final check")
        folder = QLabel(data_folder)
        folder.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Station name", self.station_edit)
        form.addRow("Data folder", folder)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def station(self) -> str:
        return self.station_edit.text().strip()
