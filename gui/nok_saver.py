"""Saving NOK images and their heatmap overlays as a one-shot background job.

Each NOK inspection (when enabled) becomes a :class:`SaveNokJob` on the global ``QThreadPool``: it
writes ``<stem>.png`` (the image) and ``<stem>_overlay.png`` (:func:`engine.overlay.blend`: the
colours and outline the screen draws, by the engine's one display rule) so PNG encoding never
stalls the window. The file names are chosen up front (:func:`nok_paths`) so the log row can record them at once; a failed write is reported
through ``SaveNokSignals.failed(message)``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QRunnable, Signal

from engine.outputs import os_reason, short_stem
from engine.overlay import blend, save_png


NOK_STEM_BYTES = 80
"""Byte budget of the image's own name in a saved NOK file name (:func:`engine.outputs.short_stem`)."""


def nok_paths(folder: str | Path, name: str, when: dt.datetime) -> tuple[Path, Path]:
    """``(image, overlay)`` PNG paths for a NOK result, in a folder per day: ``<HHMMSS_mmm>_<stem>.png``
    and ``..._overlay.png``, the stem made safe and short by the rule ``predict`` uses for its overlays
    (:func:`engine.outputs.short_stem`, at most :data:`NOK_STEM_BYTES` bytes)."""
    stem = short_stem(Path(name).stem, NOK_STEM_BYTES)
    day = Path(folder) / when.strftime("%Y-%m-%d")
    base = f"{when.strftime('%H%M%S_%f')[:-3]}_{stem}"
    return day / f"{base}.png", day / f"{base}_overlay.png"


class SaveNokSignals(QObject):
    failed = Signal(str)


class SaveNokJob(QRunnable):
    """Write one NOK image and its overlay (module docstring).

    Args:
        image: ``(H, W, 3) uint8`` RGB.
        unit_map: ``(h, w)`` normalised anomaly map (0.5 = threshold) covering the image.
        contour_level: the outline level on that scale (:func:`engine.overlay.outline_level`), or None.
    """

    def __init__(self, image: np.ndarray, unit_map: np.ndarray, image_path: Path, overlay_path: Path,
                 signals: SaveNokSignals, contour_level: float | None = 0.5):
        super().__init__()
        self.image, self.unit_map, self.contour_level = image, unit_map, contour_level
        self.image_path, self.overlay_path = image_path, overlay_path
        self.signals = signals

    def run(self) -> None:
        try:
            save_png(self.image_path, self.image)
            save_png(self.overlay_path, blend(self.image, self.unit_map, self.contour_level))
        except Exception as exc:  # noqa: BLE001 - reported once, in the window
            self.signals.failed.emit(f"could not save NOK image {self.image_path}: {os_reason(exc)}")
