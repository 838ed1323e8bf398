"""Application entry point: ``run_gui()`` opens the operator window (``python main.py``)."""

from __future__ import annotations

import sys

from .locations import APPLICATION, ORGANIZATION, resource_path


def run_gui(argv: list[str] | None = None) -> int:
    """Create the Qt application and the main window; returns the exit code."""
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication, QMessageBox

    import pyqtgraph as pg

    from .defect_log import DefectLogError
    from .main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv if argv is None else argv)
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setWindowIcon(QIcon(str(resource_path("dinoinspect.png"))))
    pg.setConfigOptions(antialias=True)
    try:
        window = MainWindow()
    except DefectLogError as exc:
        QMessageBox.critical(None, "DINOInspect cannot start", str(exc))
        return 2
    app.aboutToQuit.connect(window.shutdown)  # also when quitting without closing the window
    window.show()
    return app.exec()
