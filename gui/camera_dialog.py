"""Camera dialog: an OpenCV camera (device index, resolution), a video file as a stand-in camera,
or a Basler camera (serial, exposure, gain, pixel format, trigger line; "Find cameras" lists what
pylon sees); the trigger mode (free-running, software, hardware); and the stale period after which
a free-running source without a new picture stops being judged (:mod:`engine.live_guard`)."""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QCursor
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox,
                               QFileDialog, QFormLayout, QHBoxLayout, QLineEdit, QPushButton, QRadioButton, QSpinBox,
                               QVBoxLayout, QWidget)

from engine.cameras import CameraError

from .camera import CameraConfig

STALE_RANGE_S = (0.5, 3600.0)
"""Settable stale period (s)."""
RESOLUTIONS = [(0, 0), (640, 480), (1280, 720), (1280, 1024), (1920, 1080), (2592, 1944)]
TRIGGERS = [("free", "Free-running (newest picture)"), ("software", "Software trigger (button, F5, MQTT)"),
            ("hardware", "Hardware trigger (Basler input line)")]
PIXEL_FORMATS = ("Mono8", "Mono10", "Mono12", "RGB8")
TRIGGER_LINES = ("Line1", "Line2", "Line3", "Line4")


def _list_cameras():
    """The Basler cameras pylon sees, or the :class:`CameraError` it raised (any thread)."""
    from engine.cameras.pylon_source import list_cameras

    try:
        return list_cameras()
    except CameraError as exc:
        return exc


class _CameraSearch(QObject):
    """One pylon enumeration off the GUI thread; ``finished`` carries :func:`_list_cameras`'s answer."""

    finished = Signal(object)

    def run(self) -> None:
        self.finished.emit(_list_cameras())


class CameraDialog(QDialog):
    """Fields for a :class:`gui.camera.CameraConfig`; :meth:`config` reads them.

    Signals:
        cameras_listed(list): the serials found by "Find cameras" (empty when none or pylon failed).
    """

    cameras_listed = Signal(list)

    def __init__(self, config: CameraConfig, parent: QWidget | None = None):
        super().__init__(parent)
        self._searching: _CameraSearch | None = None
        self.setWindowTitle("Live source")
        self.camera_radio = QRadioButton("Camera")
        self.video_radio = QRadioButton("Video file (stand-in camera)")
        self.basler_radio = QRadioButton("Basler camera (pylon)")
        group = QButtonGroup(self)
        for radio in (self.camera_radio, self.video_radio, self.basler_radio):
            group.addButton(radio)
        self.device_spin = QSpinBox()
        self.device_spin.setRange(0, 63)
        self.device_spin.setValue(config.device)
        self.resolution_combo = QComboBox()
        for w, h in RESOLUTIONS:
            self.resolution_combo.addItem("camera default" if not w else f"{w} x {h}", (w, h))
        if (config.width, config.height) not in RESOLUTIONS:
            self.resolution_combo.addItem(f"{config.width} x {config.height}", (config.width, config.height))
        # findData() compares Python objects by identity, so a tuple equal to an item's data is not found
        wanted = (config.width, config.height)
        self.resolution_combo.setCurrentIndex(next(i for i in range(self.resolution_combo.count())
                                                   if tuple(self.resolution_combo.itemData(i)) == wanted))
        self.video_edit = QLineEdit(config.video_path)
        self.video_button = QPushButton("Browse…")
        self.loop_check = QCheckBox("Loop at the end")
        self.loop_check.setChecked(config.loop)
        self._basler_fields(config)
        self.trigger_combo = QComboBox()
        for key, text in TRIGGERS:
            self.trigger_combo.addItem(text, key)
        self.trigger_combo.setCurrentIndex(max(0, [k for k, _ in TRIGGERS].index(config.trigger)
                                               if config.trigger in dict(TRIGGERS) else 0))
        self.stale_spin = QDoubleSpinBox()
        self.stale_spin.setRange(*STALE_RANGE_S)
        self.stale_spin.setDecimals(1)
        self.stale_spin.setSuffix(" s")
        self.stale_spin.setValue(config.stale_seconds)
        self.stale_spin.setToolTip("No new picture for this long (frozen, black or silent camera, or nothing "
                                   "moving in view): warn and stop judging until the picture changes. Longer than "
                                   "a part rests under the camera. Free-running only.")
        {"video": self.video_radio, "basler": self.basler_radio}.get(config.kind, self.camera_radio).setChecked(True)

        video_row = QHBoxLayout()
        video_row.addWidget(self.video_edit, 1)
        video_row.addWidget(self.video_button)
        serial_row = QHBoxLayout()
        serial_row.addWidget(self.serial_combo, 1)
        serial_row.addWidget(self.find_button)
        form = QFormLayout()
        form.addRow(self.camera_radio)
        form.addRow("Device index", self.device_spin)
        form.addRow("Resolution", self.resolution_combo)
        form.addRow(self.video_radio)
        form.addRow("Video file", video_row)
        form.addRow("", self.loop_check)
        form.addRow(self.basler_radio)
        form.addRow("Serial or name", serial_row)
        form.addRow("Exposure", self.exposure_spin)
        form.addRow("Gain", self.gain_spin)
        form.addRow("Pixel format", self.format_combo)
        form.addRow("Trigger input", self.line_combo)
        form.addRow("Trigger", self.trigger_combo)
        form.addRow("Stale after", self.stale_spin)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Start")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.video_button.clicked.connect(self._browse)
        self.find_button.clicked.connect(self.search_cameras)
        group.buttonToggled.connect(lambda *_: self._grey())
        self.trigger_combo.currentIndexChanged.connect(lambda *_: self._grey())
        self._grey()

    def _basler_fields(self, config: CameraConfig) -> None:
        self.serial_combo = QComboBox()
        self.serial_combo.setEditable(True)
        self.serial_combo.setEditText(config.serial)
        self.serial_combo.lineEdit().setPlaceholderText("first camera found")
        self.find_button = QPushButton("Find cameras")
        self.exposure_spin = QDoubleSpinBox()
        self.exposure_spin.setRange(0, 10_000_000)
        self.exposure_spin.setDecimals(0)
        self.exposure_spin.setSuffix(" µs")
        self.exposure_spin.setSpecialValueText("camera's setting")
        self.exposure_spin.setValue(config.exposure_us)
        self.gain_spin = QDoubleSpinBox()
        self.gain_spin.setRange(-1, 48)
        self.gain_spin.setDecimals(1)
        self.gain_spin.setSuffix(" dB")
        self.gain_spin.setSpecialValueText("camera's setting")
        self.gain_spin.setValue(max(-1.0, config.gain_db))
        self.format_combo = QComboBox()
        self.format_combo.addItems(PIXEL_FORMATS)
        self.format_combo.setCurrentText(config.pixel_format)
        self.line_combo = QComboBox()
        self.line_combo.addItems(TRIGGER_LINES)
        self.line_combo.setCurrentText(config.trigger_line)
        self._emulator_images = config.emulator_images  # set outside the dialog (pylon emulation only)

    def _grey(self) -> None:
        """Only the chosen source's fields are editable; hardware trigger only for a Basler camera."""
        basler = self.basler_radio.isChecked()
        for w in (self.device_spin, self.resolution_combo):
            w.setEnabled(self.camera_radio.isChecked())
        for w in (self.video_edit, self.video_button, self.loop_check):
            w.setEnabled(self.video_radio.isChecked())
        for w in (self.serial_combo, self.find_button, self.exposure_spin, self.gain_spin, self.format_combo):
            w.setEnabled(basler)
        self.find_button.setEnabled(basler and self._searching is None)  # one search at a time
        hardware = self.trigger_combo.currentData() == "hardware"
        self.line_combo.setEnabled(basler and hardware)
        if hardware and not basler:
            self.trigger_combo.setCurrentIndex(0)
        self.trigger_combo.model().item(2).setEnabled(basler)
        self.stale_spin.setEnabled(self.trigger_combo.currentData() == "free")

    def search_cameras(self) -> None:
        """"Find cameras": ask pylon in a background thread (enumerating GigE cameras takes seconds),
        the button greyed and a busy cursor meanwhile; the list is filled when it answers
        (:attr:`cameras_listed`). The window stays responsive."""
        if self._searching is not None:
            return
        self._searching = _CameraSearch()
        self._searching.finished.connect(self._show_cameras, Qt.ConnectionType.QueuedConnection)
        self.find_button.setEnabled(False)
        self.find_button.setText("Searching…")
        self.setCursor(QCursor(Qt.CursorShape.BusyCursor))
        threading.Thread(target=self._searching.run, name="find-basler-cameras", daemon=True).start()

    def find_cameras(self) -> list[str]:
        """Fill the serial list with the Basler cameras pylon sees now; returns their serials.
        Blocks until pylon answers (the button uses :meth:`search_cameras`)."""
        return self._show_cameras(_list_cameras())

    def _show_cameras(self, found) -> list[str]:
        """Fill the serial list from ``found``: a list of cameras, or the CameraError pylon gave."""
        if self._searching is not None:
            self._searching = None
            self.find_button.setText("Find cameras")
            self.unsetCursor()
            self._grey()
        current = self.serial_combo.currentText()
        self.serial_combo.clear()
        if isinstance(found, CameraError):
            self.serial_combo.lineEdit().setPlaceholderText(str(found))
            self.cameras_listed.emit([])
            return []
        cameras = found
        for c in cameras:
            self.serial_combo.addItem(f"{c.serial}  ({c.friendly_name}{', ' + c.user_name if c.user_name else ''})",
                                      c.serial)
        self.serial_combo.lineEdit().setPlaceholderText("first camera found" if cameras else "no Basler camera found")
        self.serial_combo.setEditText(current if current else (cameras[0].serial if cameras else ""))
        self.basler_radio.setChecked(True)
        self.cameras_listed.emit([c.serial for c in cameras])
        return [c.serial for c in cameras]

    def _serial(self) -> str:
        text = self.serial_combo.currentText().strip()
        i = self.serial_combo.findText(text)
        return str(self.serial_combo.itemData(i)) if i >= 0 and self.serial_combo.itemData(i) else text

    def config(self) -> CameraConfig:
        w, h = self.resolution_combo.currentData()
        kind = "video" if self.video_radio.isChecked() else "basler" if self.basler_radio.isChecked() else "camera"
        return CameraConfig(kind=kind, device=self.device_spin.value(), width=w, height=h,
                            video_path=self.video_edit.text().strip(), loop=self.loop_check.isChecked(),
                            stale_seconds=self.stale_spin.value(), trigger=self.trigger_combo.currentData(),
                            serial=self._serial(), exposure_us=self.exposure_spin.value(),
                            gain_db=self.gain_spin.value(), pixel_format=self.format_combo.currentText(),
                            trigger_line=self.line_combo.currentText(), emulator_images=self._emulator_images)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Video file", self.video_edit.text(),
                                              "Videos (*.avi *.mp4 *.mkv *.mov *.mjpg);;All files (*)")
        if path:
            self.video_edit.setText(path)
            self.video_radio.setChecked(True)
