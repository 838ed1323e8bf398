"""Defect log tab: the latest inspections in a table, a NOK-only filter, CSV export, and the
option to save NOK images with their overlays.

The table shows the verdict given at inspection time (never rewritten) and, while a threshold is
being previewed, the ``preview_verdict`` / ``preview_threshold`` columns beside it
(:func:`gui.defect_log.preview_cells`); they are hidden otherwise, and an export fills them the
same way.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QCheckBox, QFileDialog, QHBoxLayout, QHeaderView, QLabel, QPushButton, QTableView,
                               QVBoxLayout, QWidget)

from .defect_log import COLUMNS, EVENT, EXPORT_COLUMNS, PREVIEW_COLUMNS, DefectLog, DefectLogError, Preview, export_row

SHOWN_ROWS = 2000
"""Newest rows shown in the table (the database keeps all of them)."""

COLUMN_WIDTHS = {"id": 4, "time": 19, "station": 14, "recipe": 12, "backbone": 17, "source": 6, "file": 44,
                 "score": 7, "score_normalised": 6, "threshold": 7, "verdict": 5, "latency_ms": 6,
                 "nok_image": 24, "nok_overlay": 24, "preview_verdict": 7, "preview_threshold": 7}
"""Initial column widths in digits (at least the header's width)."""

_VERDICT_COLOURS = {"OK": "#e6f4ea", "NOK": "#fce8e6", "error": "#fef7e0", EVENT: "#e8f0fe"}


class LogTableModel(QAbstractTableModel):
    """Rows of the defect log, newest first (stored tuples in :data:`gui.defect_log.COLUMNS` order),
    shown in :data:`gui.defect_log.EXPORT_COLUMNS` order with the preview cells of :attr:`preview`."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple] = []
        self.preview: Preview | None = None
        self._verdict_col = COLUMNS.index("verdict")
        self._time_col = EXPORT_COLUMNS.index("time")
        self._preview_col = EXPORT_COLUMNS.index("preview_verdict")

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(EXPORT_COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return EXPORT_COLUMNS[section]
        return None

    def shown_row(self, i: int) -> tuple:
        """Row ``i`` as shown (:data:`gui.defect_log.EXPORT_COLUMNS` order)."""
        return export_row(self.rows[i], self.preview)

    def set_preview(self, preview: Preview | None) -> None:
        """Show the verdicts ``preview`` would give (None: no preview) in the preview columns."""
        self.preview = preview
        if self.rows:
            self.dataChanged.emit(self.index(0, self._preview_col),
                                  self.index(len(self.rows) - 1, self._preview_col + len(PREVIEW_COLUMNS) - 1))

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = self.shown_row(index.row())
        value = row[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            if value is None:
                return ""
            if isinstance(value, float):
                return f"{value:.4g}"
            if index.column() == self._time_col:
                return str(value)[:19].replace("T", " ")  # full ISO time with offset in the tooltip / CSV
            return str(value)
        if role == Qt.ItemDataRole.BackgroundRole:
            verdict = value if index.column() == self._preview_col else self.rows[index.row()][self._verdict_col]
            colour = _VERDICT_COLOURS.get(verdict)
            return QBrush(QColor(colour)) if colour else None
        if role == Qt.ItemDataRole.ToolTipRole and value is not None:
            return str(value)
        return None

    def reset_rows(self, rows: list[tuple]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def prepend(self, row: tuple) -> None:
        self.beginInsertRows(QModelIndex(), 0, 0)
        self.rows.insert(0, row)
        self.endInsertRows()
        if len(self.rows) > SHOWN_ROWS:
            self.beginRemoveRows(QModelIndex(), SHOWN_ROWS, len(self.rows) - 1)
            del self.rows[SHOWN_ROWS:]
            self.endRemoveRows()


class DefectLogWidget(QWidget):
    """Table + filter + export + NOK image saving (module docstring).

    Signals:
        message_posted(str level, str text): outcome of an export, for the window's message bar.
        nok_saving_changed(bool, str folder): the user switched NOK image saving or its folder.
    """

    message_posted = Signal(str, str)
    nok_saving_changed = Signal(bool, str)

    def __init__(self, log: DefectLog, parent: QWidget | None = None):
        super().__init__(parent)
        self.log = log
        self.model = LogTableModel()
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setDefaultSectionSize(self.table.fontMetrics().height() + 8)
        fm = self.table.fontMetrics()
        for i, col in enumerate(EXPORT_COLUMNS):
            sample = "0" * COLUMN_WIDTHS.get(col, 8)
            self.table.setColumnWidth(i, max(fm.horizontalAdvance(sample), fm.horizontalAdvance(col)) + 20)
        self.nok_only_check = QCheckBox("NOK only")
        self.count_label = QLabel("")
        self.export_button = QPushButton("Export CSV…")
        self.export_button.setToolTip("Write the log (all rows, or NOK only when filtered) to a CSV file")
        self.save_nok_check = QCheckBox("Save NOK images and overlays")
        self.nok_folder = ""
        self.nok_folder_button = QPushButton("Folder…")
        self.nok_folder_label = QLabel("")
        self.nok_folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        top = QHBoxLayout()
        top.addWidget(self.nok_only_check)
        top.addWidget(self.count_label)
        top.addStretch(1)
        top.addWidget(self.export_button)
        bottom = QHBoxLayout()
        bottom.addWidget(self.save_nok_check)
        bottom.addWidget(self.nok_folder_button)
        bottom.addWidget(self.nok_folder_label, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addLayout(bottom)

        self.nok_only_check.toggled.connect(lambda _: self.reload())
        self.export_button.clicked.connect(self._choose_export_file)
        self.save_nok_check.toggled.connect(lambda on: self.nok_saving_changed.emit(on, self.nok_folder))
        self.nok_folder_button.clicked.connect(self._choose_nok_folder)
        self.set_preview(None)
        self.reload()

    # ------------------------------------------------------------------ public
    def set_preview(self, preview: Preview | None) -> None:
        """Show the preview columns for ``preview``, or hide them (None)."""
        self.model.set_preview(preview)
        for col in PREVIEW_COLUMNS:
            self.table.setColumnHidden(EXPORT_COLUMNS.index(col), preview is None)

    def reload(self) -> None:
        nok_only = self.nok_only_check.isChecked()
        self.model.reset_rows(self.log.rows(nok_only=nok_only, limit=SHOWN_ROWS))
        self._update_count()

    def add_row(self, row: tuple) -> None:
        """A row (:data:`gui.defect_log.COLUMNS` order) was just written to the log."""
        if not self.nok_only_check.isChecked() or row[COLUMNS.index("verdict")] in ("NOK", EVENT):
            self.model.prepend(row)
        self._update_count()

    def export_csv(self, path: str | Path) -> int:
        """Export all rows, or only NOK rows (and events) when the filter is on, with the preview
        columns filled while previewing; returns the rows written.

        Raises:
            DefectLogError: the file cannot be written.
        """
        return self.log.export_csv(path, nok_only=self.nok_only_check.isChecked(), preview=self.model.preview)

    def set_nok_saving(self, enabled: bool, folder: str) -> None:
        self.nok_folder = folder
        self.nok_folder_label.setText(folder)
        self.save_nok_check.blockSignals(True)
        self.save_nok_check.setChecked(enabled)
        self.save_nok_check.blockSignals(False)

    # ------------------------------------------------------------------ private
    def _update_count(self) -> None:
        total, nok = self.log.count(), self.log.count(nok_only=True)
        self.count_label.setText(f"{total} inspections logged, {nok} NOK — {self.log.path}")

    def _choose_export_file(self) -> None:
        suffix = "_nok" if self.nok_only_check.isChecked() else ""
        start = str(Path.home() / f"defect_log{suffix}.csv")
        path, _ = QFileDialog.getSaveFileName(self, "Export defect log", start, "CSV files (*.csv)")
        if not path:
            return
        try:
            n = self.export_csv(path)
        except DefectLogError as exc:
            self.message_posted.emit("error", str(exc))
            return
        self.message_posted.emit("info", f"Exported {n} rows to {path}")

    def _choose_nok_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for NOK images", self.nok_folder or str(Path.home()))
        if folder:
            self.set_nok_saving(self.save_nok_check.isChecked(), folder)
            self.nok_saving_changed.emit(self.save_nok_check.isChecked(), folder)
