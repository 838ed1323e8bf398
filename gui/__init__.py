"""DINOInspect operator application (PySide6 + pyqtgraph).

Everything Qt lives here; :mod:`engine` never imports Qt. The window talks to the model only
through :class:`gui.worker.InspectionWorker`, a long-lived QObject in its own QThread, by signals.

Start it with ``python main.py`` (no arguments) or :func:`gui.app.run_gui`.

See also: ``main_window`` (the window that ties the parts together), ``worker`` (model owner),
``verdict`` (which threshold judges what: applied, previewed, logged), ``camera`` (frame grabber),
``defect_log`` (SQLite log of every inspection and threshold change), ``run_state`` (interrupted runs).
"""
