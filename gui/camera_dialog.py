"""Camera dialog: an OpenCV camera (device index, resolution) or a video file as a stand-in camera,
and the stale period after which a source without a new picture stops being judged
(:mod:`engine.live_guard`)."""

from __future__ import annotations

from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox,
                               QFileDialog, QFormLayout, QHBoxLayout, QLineEdit, QPushButton, QRadioButton, QSpinBox,
                               QVBoxLayout, QWidget)

from .camera import CameraConfig

STALE_RANGE_S = (0.5, 3600.0)
"""Settable stale period (s)."""
RESOLUTIONS = [(0, 0), (640, 480), (1280, 720), (1280, 1024), (1920, 1080), (2592, 1944)]


class CameraDialog(QDialog):
    """Fields for a :class:`gui.camera.CameraConfig`; :meth:`config` reads them."""

    def __init__(self, config: CameraConfig, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Live source")
        self.camera_radio = QRadioButton("Camera")
        self.video_radio = QRadioButton("Video file (stand-in camera)")
        group = QButtonGroup(self)
        group.addButton(self.camera_radio)
        group.addButton(self.video_radio)
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
        self.stale_spin = QDoubleSpinBox()
        self.stale_spin.setRange(*STALE_RANGE_S)
        self.stale_spin.setDecimals(1)
        self.stale_spin.setSuffix(" s")
        self.stale_spin.setValue(config.stale_seconds)
        self.stale_spin.setToolTip("No new picture for this long (frozen, black or silent camera, or nothing "
                                   "moving in view): warn and stop judging until the picture changes. Longer than "
                                   "a part rests under the camera.")
        (self.video_radio if config.kind == "video" else self.camera_radio).setChecked(True)

        video_row = QHBoxLayout()
        video_row.addWidget(self.video_edit, 1)
        video_row.addWidget(self.video_button)
        form = QFormLayout()
        form.addRow(self.camera_radio)
        form.addRow("Device index", self.device_spin)
        form.addRow("Resolution", self.resolution_combo)
        form.addRow(self.video_radio)
        form.addRow("Video file", video_row)
        form.addRow("", self.loop_check)
        form.addRow("Stale after", self.stale_spin)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Start")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.video_button.clicked.connect(self._browse)

    def config(self) -> CameraConfig:
        w, h = self.resolution_combo.currentData()
        return CameraConfig(kind="video" if self.video_radio.isChecked() else "camera",
                            device=self.device_spin.value(), width=w, height=h,
                            video_path=self.video_edit.text().strip(), loop=self.loop_check.isChecked(),
                            stale_seconds=self.stale_spin.value())

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Video file", self.video_edit.text(),
                                              "Videos (*.avi *.mp4 *.mkv *.mov *.mjpg);;All files (*)")
        if path:
            self.video_edit.setText(path)
            self.video_radio.setChecked(True)
