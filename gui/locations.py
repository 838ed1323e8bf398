"""Where the application keeps its files and settings.

* Data folder: the defect log (``defect_log.sqlite``), recipes (``recipes/*.dimodel``) and saved NOK
  images. It is the platform's per-user application-data folder (``QStandardPaths.AppDataLocation``,
  e.g. ``~/.local/share/DINOInspect/DINOInspect`` on Linux) unless ``$DINOINSPECT_DATA_DIR`` names
  another one.
* Settings (last recipe, camera, overlay opacity, station name...): the platform's normal
  ``QSettings`` store, or ``settings.ini`` inside ``$DINOINSPECT_DATA_DIR`` when that is set, so a
  test or a second station on one machine is fully isolated by one environment variable.
* Resources shipped with the program (``resources/``: the icon), found in a checkout and in a
  PyInstaller bundle alike.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings

from engine import app_info
from engine.app_info import APPLICATION, ENV_DATA_DIR, ORGANIZATION  # noqa: F401 - re-exported


def data_dir() -> Path:
    """The data folder (module docstring), created if missing: :func:`engine.app_info.user_data_dir`,
    the same folder the commands use (``demo``'s report, ``selftest``)."""
    return app_info.user_data_dir()


def recipes_dir() -> Path:
    """Default folder for recipe model files."""
    path = data_dir() / "recipes"
    path.mkdir(parents=True, exist_ok=True)
    return path


def open_settings() -> QSettings:
    """The application's settings store (module docstring)."""
    if os.environ.get(ENV_DATA_DIR):
        return QSettings(str(data_dir() / "settings.ini"), QSettings.Format.IniFormat)
    return QSettings(ORGANIZATION, APPLICATION)


def resource_path(name: str) -> Path:
    """A file shipped in ``resources/`` (the icon...), in a checkout or a PyInstaller bundle."""
    return app_info.resource_path("resources", name)


def as_bool(value) -> bool:
    """A boolean read from the settings (INI files give them back as strings)."""
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)


def as_count(value, default: int) -> int:
    """A positive whole number read from the settings; ``default`` when it is missing or not one
    (a hand-edited INI file)."""
    try:
        n = int(value)
    except (TypeError, ValueError):
        return default
    return n if n >= 1 else default
