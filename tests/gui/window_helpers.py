"""Helpers of the window tests: make a window, wait for the worker, open a recipe."""

from __future__ import annotations

from pathlib import Path

from gui.main_window import MainWindow

SIZE = 64
"""Network input side of the test models (px)."""
TIMEOUT_MS = 120_000


def make_window(qtbot, **kwargs) -> MainWindow:
    w = MainWindow(device="cpu", **kwargs)
    qtbot.addWidget(w)  # closed (and its threads stopped) at teardown
    w.show()
    qtbot.waitExposed(w)
    return w


def wait_idle(qtbot, w: MainWindow, timeout: int = TIMEOUT_MS) -> None:
    qtbot.waitUntil(lambda: not w.busy, timeout=timeout)


def open_recipe(qtbot, w: MainWindow, path: Path) -> None:
    w.open_recipe(path)
    wait_idle(qtbot, w)
    assert w.info is not None, w.message_bar.text


def counter(w: MainWindow, key: str) -> str:
    return w.counters_panel.value_labels[key].text()
