"""Writing the defect log: each inspection with the verdict given at inspection time, each applied
threshold change and each live-source gap as an event row, and NOK images with their overlays when enabled.

The row of a triggered inspection says which trigger it answers in its ``message`` column
(:func:`trigger_note`: ``"trigger <id> (<origin>)"``, after the error of an unreadable picture), so
the log alone matches a verdict to the trigger the line sent, like the MQTT verdict message does."""

from __future__ import annotations

from PySide6.QtCore import QThreadPool

from .defect_log import DefectLog, DefectLogError, LogEntry, threshold_event
from .log_widget import DefectLogWidget
from .nok_saver import SaveNokJob, SaveNokSignals, nok_paths
from .run_results import InspectionResult
from .verdict import Thresholds


def trigger_note(trigger_id: str, origin: str) -> str:
    """The defect-log note of a triggered verdict: ``"trigger <id> (<origin>)"`` (origin ``"?"`` when unknown)."""
    return f"trigger {trigger_id} ({origin or '?'})"


def _message(r: InspectionResult) -> str | None:
    """The ``message`` cell of ``r``'s row: its error and/or the trigger it answers; None for neither."""
    parts = [r.error] if r.error is not None else []
    if r.trigger_id is not None:
        parts.append(trigger_note(r.trigger_id, r.origin))
    return "; ".join(parts) if parts else None


class InspectionRecorder:
    """Adds rows to the log and its table (module docstring).

    Args:
        log: the defect log.
        table: its tab (rows are prepended there; NOK saving settings are read there).
        on_error: ``on_error(message)`` when the log cannot be written or a NOK image not saved.
    """

    def __init__(self, log: DefectLog, table: DefectLogWidget, on_error):
        self.log, self.table, self._on_error = log, table, on_error
        self._save_signals = SaveNokSignals()
        self._save_signals.failed.connect(on_error)

    def record(self, r: InspectionResult, info: dict | None, station: str, thresholds: Thresholds) -> None:
        """Log ``r`` with its own verdict and threshold (never a previewed one); save a NOK image
        and its overlay, coloured and contoured at that threshold, when enabled. Sets ``r.log_id``."""
        t = r.threshold
        entry = LogEntry(source=r.source, file=r.name, verdict=r.verdict, score=r.score,
                         score_normalised=None if t is None else thresholds.normalised(r.score, t), threshold=t,
                         station=station, recipe=info["recipe"] if info else "",
                         backbone=info["backbone"] if info else "",
                         latency_ms=r.latency_ms if r.score is not None else None, message=_message(r),
                         time=r.time.astimezone().isoformat(timespec="milliseconds"))
        if r.verdict == "NOK" and self.table.save_nok_check.isChecked() and r.image is not None:
            img_path, ovl_path = nok_paths(self.table.nok_folder, r.name, r.time)
            entry.nok_image, entry.nok_overlay = str(img_path), str(ovl_path)
            unit, level = thresholds.display(r, threshold=t)  # as on screen at that threshold
            QThreadPool.globalInstance().start(SaveNokJob(r.image, unit, img_path, ovl_path, self._save_signals,
                                                          contour_level=level))
        r.log_id = self._add(entry)

    def record_threshold_change(self, old: float | None, new: float, info: dict, station: str,
                                by: str = "operator") -> int | None:
        """Log an applied threshold change (an event row); returns its id, None when not written."""
        return self._add(threshold_event(old, new, by, station=station, recipe=info["recipe"],
                                         backbone=info["backbone"]))

    def record_event(self, entry: LogEntry) -> int | None:
        """Log an event row (verdict ``event``: a live source that went stale or resumed, a lost
        camera); returns its id, None when not written."""
        return self._add(entry)

    def _add(self, entry: LogEntry) -> int | None:
        try:
            row_id = self.log.add(entry)
        except DefectLogError as exc:
            self._on_error(str(exc))
            return None
        self.table.add_row(entry.row(row_id))
        return row_id
