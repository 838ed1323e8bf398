"""Which shared libraries a Qt platform plugin cannot find, named before Qt aborts on them.

When Qt's ``xcb`` platform plugin (``platforms/libqxcb.so``, the X11 one) cannot be loaded because a
system library is missing (``libxcb-icccm4``, ``libxcb-keysyms1``...), Qt 6 prints that
``xcb-cursor0`` is needed whatever is actually missing and aborts the process. Here the dynamic
loader is asked instead: ``ldd`` lists each library the plugin needs and marks those it cannot
find ``=> not found``. Used by ``selftest`` and by the GUI before it creates its QApplication.

Qt-free: the caller passes the plugin folder (Qt's ``QLibraryInfo`` ``PluginsPath``, or
``$QT_QPA_PLATFORM_PLUGIN_PATH``, the folder Qt itself then loads platform plugins from).
Linux only (``ldd``); elsewhere the functions report that they cannot tell.

Debian package names (for the ``apt-get install`` hint) follow the Debian library packaging policy:
``libfoo-bar.so.N`` is in ``libfoo-barN`` (``libfoo-bar-N`` when the name ends in a digit), lower
case; the exceptions known to matter for Qt are in :data:`DEBIAN_PACKAGE`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

DEBIAN_PACKAGE = {
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libgobject-2.0.so.0": "libglib2.0-0",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libOpenGL.so.0": "libopengl0",
    "libGLX.so.0": "libglx0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libdbus-1.so.3": "libdbus-1-3",
}
"""Library soname -> Debian/Ubuntu package, where the policy's rule does not give it."""

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$")


def debian_package(soname: str) -> str:
    """The Debian/Ubuntu package that ships ``soname`` (``libxcb-icccm.so.4`` -> ``libxcb-icccm4``).

    Rule (Debian policy 8.1): the soname's base plus its major version, lower case, with a hyphen
    between them when the base ends in a digit; :data:`DEBIAN_PACKAGE` holds the exceptions."""
    if soname in DEBIAN_PACKAGE:
        return DEBIAN_PACKAGE[soname]
    m = re.match(r"^(.+?)\.so\.(\d+)", soname)
    if not m:
        return soname.split(".so")[0].lower()
    base, major = m.group(1).lower(), m.group(2)
    return f"{base}-{major}" if base[-1].isdigit() else f"{base}{major}"


@dataclass
class LibraryCheck:
    """What ``ldd`` said about one shared object.

    Attributes:
        path: the file checked.
        missing: sonames the loader could not find (empty when all were found).
        checked: False when it could not be checked (not Linux, no ``ldd``, file absent); then
            ``reason`` says why.
        needed: how many libraries ``ldd`` listed.
    """

    path: Path
    missing: list[str] = field(default_factory=list)
    checked: bool = True
    reason: str = ""
    needed: int = 0

    @property
    def ok(self) -> bool:
        return self.checked and not self.missing

    def apt_command(self) -> str:
        """``apt-get install ...`` for the missing system libraries (those Qt does not ship itself)."""
        pkgs = sorted({debian_package(s) for s in self.missing if not s.startswith("libQt6")})
        return f"apt-get install {' '.join(pkgs)}" if pkgs else ""

    def describe_missing(self) -> str:
        """One sentence naming the missing libraries and the fix."""
        qt_own = [s for s in self.missing if s.startswith("libQt6")]
        parts = [f"{self.path.name} cannot load: missing {', '.join(self.missing)}"]
        if self.apt_command():
            parts.append(f"install them with `sudo {self.apt_command()}` (Debian/Ubuntu package names)")
        if qt_own:
            parts.append("Qt's own libraries are missing beside the plugin: reinstall PySide6 or rebuild the "
                         "program")
        return "; ".join(parts) + "."


def missing_libraries(path: str | Path, env: dict | None = None, timeout: float = 20.0) -> LibraryCheck:
    """Ask the dynamic loader (``ldd``) which libraries ``path`` needs and cannot find.

    ``env`` (default: this process's) is passed to ``ldd``: ``LD_LIBRARY_PATH`` matters (a
    PyInstaller bundle sets it to its own folder). Never raises: problems give ``checked=False``.
    """
    path = Path(path)
    if not sys.platform.startswith("linux"):
        return LibraryCheck(path, checked=False, reason=f"not checked on {sys.platform} (ldd is Linux's)")
    if not path.is_file():
        return LibraryCheck(path, checked=False, reason=f"{path} not found")
    ldd = shutil.which("ldd")
    if ldd is None:
        return LibraryCheck(path, checked=False, reason="ldd not found (Debian package libc-bin)")
    try:
        out = subprocess.run([ldd, str(path)], capture_output=True, text=True, timeout=timeout,
                             env=dict(os.environ if env is None else env))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return LibraryCheck(path, checked=False, reason=f"ldd failed: {exc}")
    lines = out.stdout.splitlines()
    missing = [m.group(1) for line in lines if (m := _NOT_FOUND.match(line))]
    if out.returncode != 0 and not missing:
        return LibraryCheck(path, checked=False, reason=f"ldd {path.name}: {(out.stderr or out.stdout).strip()}")
    return LibraryCheck(path, missing=list(dict.fromkeys(missing)), needed=sum("=>" in ln for ln in lines))


def qt_platform(env: dict | None = None) -> str | None:
    """The platform plugin Qt will pick on this system: ``$QT_QPA_PLATFORM`` (its first entry) when
    set; on Linux ``wayland`` in a Wayland session (or with only ``WAYLAND_DISPLAY``), else ``xcb``
    when ``DISPLAY`` is set; None when Linux has no display at all (Qt would fail: no platform). Elsewhere the
    native one (``windows`` / ``cocoa``)."""
    env = os.environ if env is None else env
    if env.get("QT_QPA_PLATFORM"):
        return env["QT_QPA_PLATFORM"].split(";")[0].split(":")[0]
    if sys.platform.startswith("win"):
        return "windows"
    if sys.platform == "darwin":
        return "cocoa"
    if env.get("WAYLAND_DISPLAY") and (env.get("XDG_SESSION_TYPE") == "wayland" or not env.get("DISPLAY")):
        return "wayland"
    if env.get("DISPLAY"):
        return "xcb"
    return None


def platform_plugin_dir(plugins_path: str | Path, env: dict | None = None) -> Path:
    """The folder Qt loads platform plugins from: ``$QT_QPA_PLATFORM_PLUGIN_PATH`` when set, else
    ``<plugins_path>/platforms``."""
    env = os.environ if env is None else env
    return Path(env["QT_QPA_PLATFORM_PLUGIN_PATH"]) if env.get("QT_QPA_PLATFORM_PLUGIN_PATH") \
        else Path(plugins_path) / "platforms"


def xcb_plugin_check(plugins_path: str | Path, env: dict | None = None) -> LibraryCheck:
    """:func:`missing_libraries` of the xcb platform plugin (``libqxcb.so``) under ``plugins_path``."""
    return missing_libraries(platform_plugin_dir(plugins_path, env) / "libqxcb.so", env=env)
