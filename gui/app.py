"""Application entry point: ``run_gui()`` opens the operator window (``python main.py``).

Before Qt is asked for a platform, :func:`xcb_preflight` checks (Linux, X11) that the X11 platform
plugin's system libraries can be loaded, because Qt aborts the process when they cannot, with a message
that names ``xcb-cursor0`` whatever is missing; the preflight names the libraries that are actually
missing and the ``apt-get install`` line, and the program exits with status 2.

``DINOINSPECT_STARTUP_PROBE=1``: print ``startup: main window shown after N.NNN s`` on stderr when the
main window is first shown (seconds since the process started, from the OS's process start time);
``DINOINSPECT_STARTUP_PROBE=quit`` also quits right after (``benchmarks/startup.py`` uses it).
"""

from __future__ import annotations

import os
import sys
import time

from .locations import APPLICATION, ORGANIZATION, resource_path

STARTUP_PROBE_ENV = "DINOINSPECT_STARTUP_PROBE"


def xcb_preflight(env: dict | None = None) -> str | None:
    """Why Qt's xcb (X11) platform plugin would fail to load here, as one message, or None when it
    loads or this is not that case (not Linux, another platform in ``$QT_QPA_PLATFORM``, no
    ``$DISPLAY``, or the check cannot be made). Uses ``ldd`` (:mod:`engine.platform_libs`) on
    ``platforms/libqxcb.so`` in Qt's plugin folder (or ``$QT_QPA_PLATFORM_PLUGIN_PATH``)."""
    from engine.platform_libs import qt_platform, xcb_plugin_check

    env = os.environ if env is None else env
    if not sys.platform.startswith("linux") or not env.get("DISPLAY") or qt_platform(env) != "xcb":
        return None
    from PySide6.QtCore import QLibraryInfo  # QtCore loads without any platform plugin

    check = xcb_plugin_check(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath), env)
    if not check.missing:
        return None
    return (f"DINOInspect cannot open its window: Qt's X11 platform plugin {check.describe_missing()} "
            f"Then start the program again; `{_cli()} selftest` checks the installation.")


def _cli() -> str:
    from engine.app_info import cli_command

    return cli_command()


def process_age_s() -> float:
    """Seconds since this process started (Linux: ``/proc/self/stat`` start time; elsewhere since
    this module's import, a lower bound)."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of proc(5), counted after the "(comm)" field
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED


_IMPORTED = time.perf_counter()


def run_gui(argv: list[str] | None = None) -> int:
    """Create the Qt application and the main window; returns the exit code (2 when the window
    cannot open: missing X11 libraries, a defect log that cannot be opened)."""
    problem = xcb_preflight()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
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
    probe = os.environ.get(STARTUP_PROBE_ENV, "")
    if probe:
        window._startup_probe = _install_first_paint_probe(window, quit_after=probe == "quit")
    return app.exec()


def _install_first_paint_probe(window, quit_after: bool):
    """Event filter printing the process age at the main window's first paint (module docstring)."""
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication

    class Probe(QObject):
        done = False

        def eventFilter(self, obj, event):  # noqa: N802 - Qt's name
            if not self.done and event.type() == QEvent.Type.Paint:
                self.done = True
                print(f"startup: main window shown after {process_age_s():.3f} s", file=sys.stderr, flush=True)
                if quit_after:
                    QTimer.singleShot(0, QApplication.instance().quit)
            return False

    probe = Probe(window)
    window.installEventFilter(probe)
    return probe
