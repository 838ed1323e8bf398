"""Station settings dialog: the station name written into every log row, and the line's MQTT broker."""

from __future__ import annotations

from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QFormLayout, QGroupBox, QLabel, QLineEdit,
                               QSpinBox, QVBoxLayout, QWidget)

from .mqtt_bridge import LineSettings


class SettingsDialog(QDialog):
    """Edits the station name and the "Line (MQTT)" settings; shows where data and settings are kept."""

    def __init__(self, station: str, data_folder: str, parent: QWidget | None = None,
                 line: LineSettings | None = None):
        super().__init__(parent)
        self.setWindowTitle("Station settings")
        self.station_edit = QLineEdit(station)
        self.station_edit.setPlaceholderText("e.g. line 2 / final check")
        folder = QLabel(data_folder)
        folder.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Station name", self.station_edit)
        form.addRow("Data folder", folder)

        line = line or LineSettings()
        self.line_group = QGroupBox("Line (MQTT)")
        self.line_group.setCheckable(True)
        self.line_group.setChecked(line.enabled)
        self.line_group.setToolTip("Publish each verdict to the line's MQTT broker; accept a trigger and a "
                                   "recipe switch from it (topics: README, engine/mqtt_link.py)")
        self.host_edit = QLineEdit(line.host)
        self.port_spin = QSpinBox()
        self.port_spin.setRange(1, 65535)
        self.port_spin.setValue(line.port)
        self.prefix_edit = QLineEdit(line.topic_prefix)
        self.topics_label = QLabel()
        self.topics_label.setWordWrap(True)
        line_form = QFormLayout(self.line_group)
        line_form.addRow("Broker host", self.host_edit)
        line_form.addRow("Port", self.port_spin)
        line_form.addRow("Topic prefix", self.prefix_edit)
        line_form.addRow("Topics", self.topics_label)
        for edit in (self.station_edit, self.prefix_edit):
            edit.textChanged.connect(self._show_topics)
        self._show_topics()

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.line_group)
        layout.addWidget(buttons)

    def _show_topics(self) -> None:
        base = f"{self.prefix_edit.text().strip()}/{self.station() or '<station name>'}"
        self.topics_label.setText(f"{base}/verdict, /status (out); {base}/trigger, /recipe (in)")

    def station(self) -> str:
        return self.station_edit.text().strip()

    def line_settings(self) -> LineSettings:
        return LineSettings(enabled=self.line_group.isChecked(), host=self.host_edit.text().strip(),
                            port=self.port_spin.value(), topic_prefix=self.prefix_edit.text().strip())
