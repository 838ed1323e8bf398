"""The defect log: one row per inspection, in SQLite, written the moment the verdict is known.

The database file lives in the data folder (:func:`gui.locations.data_dir`) and runs in WAL mode
(write-ahead log: a reader such as a quality engineer's spreadsheet import never blocks the station).
Each row is its own transaction, committed before the window shows it, so a killed or crashed
program loses no row it had shown (tests/test_crash_safety.py kills a running app with SIGKILL and
checks every committed row and ``pragma integrity_check``). ``synchronous=NORMAL``: a commit reaches
the operating system at once but the disk only at checkpoints, so a power cut (not a crash) can lose
the last rows, never the database; ``FULL`` would flush the disk on every row (measured 2.2 ms per
row here, on the GUI thread, more on a hard disk). Each row records what an auditor needs to
trust the verdict later: when, which station, which recipe and backbone, which image (source and
file), the image score, the threshold in force at that moment, the verdict and the latency.
A row is never rewritten: a later threshold change does not touch the verdicts given before it.
Threshold changes are rows too (:func:`threshold_event`: verdict ``"event"``, the new threshold,
and "threshold changed 66 -> 41.2 by operator" in ``message``).

Export and the window's table add two columns that are not stored (:data:`EXPORT_COLUMNS`):
``preview_verdict`` and ``preview_threshold``, the verdict a previewed, not applied threshold would
give (:class:`Preview`); empty when there is no preview, for event rows, and for rows of another
recipe (their scores are in other units).

This module is plain Python (no Qt), so the log can be read by scripts too::

    log = DefectLog(path)
    log.add(LogEntry(source="folder", file="a.png", score=3.1, threshold=2.5, verdict="NOK", ...))
    log.export_csv("nok.csv", nok_only=True)
    log.add(threshold_event(66.0, 41.2, recipe="bottle"))
"""

from __future__ import annotations

import csv
import datetime as dt
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

from .run_results import judge

COLUMNS = ("id", "time", "station", "recipe", "backbone", "source", "file", "score", "score_normalised",
           "threshold", "verdict", "latency_ms", "nok_image", "nok_overlay", "message")
"""Columns of the log (stored)."""

EVENT = "event"
"""Verdict of rows that record an event (a threshold change), not an inspection."""

PREVIEW_COLUMNS = ("preview_verdict", "preview_threshold")
EXPORT_COLUMNS = COLUMNS[:COLUMNS.index("verdict") + 1] + PREVIEW_COLUMNS + COLUMNS[COLUMNS.index("verdict") + 1:]
"""Columns of the table and the CSV file: the stored ones, with the preview columns after ``verdict``."""

_VERDICT, _SCORE, _RECIPE = COLUMNS.index("verdict"), COLUMNS.index("score"), COLUMNS.index("recipe")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS inspections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,             -- local time, ISO 8601 with UTC offset
    station TEXT NOT NULL,
    recipe TEXT NOT NULL,
    backbone TEXT NOT NULL,
    source TEXT NOT NULL,           -- folder | image | camera | video
    file TEXT NOT NULL,             -- image path, or camera/video frame name
    score REAL,                     -- image anomaly score (scorer units); NULL when unreadable
    score_normalised REAL,          -- 0 = typical good, 0.5 = threshold
    threshold REAL,                 -- threshold in force when judged
    verdict TEXT NOT NULL,          -- OK | NOK | n/a | error | event (threshold change)
    latency_ms REAL,
    nok_image TEXT,                 -- saved copy of a NOK image, if enabled
    nok_overlay TEXT,               -- saved heatmap overlay of a NOK image, if enabled
    message TEXT                    -- error message for unreadable images; what happened for events
);
CREATE INDEX IF NOT EXISTS inspections_verdict ON inspections (verdict);
"""


class DefectLogError(Exception):
    """The defect log database cannot be opened or written."""


class Preview(NamedTuple):
    """A threshold being previewed for one recipe (module docstring)."""

    recipe: str
    threshold: float


def preview_cells(row: tuple, preview: Preview | None) -> tuple[str | None, float | None]:
    """``(preview_verdict, preview_threshold)`` of a stored row (in :data:`COLUMNS` order): the
    verdict ``preview`` would give, or ``(None, None)`` (module docstring)."""
    if (preview is None or row[_VERDICT] == EVENT or row[_SCORE] is None
            or row[_RECIPE] != preview.recipe):
        return None, None
    return judge(row[_SCORE], preview.threshold), preview.threshold


def export_row(row: tuple, preview: Preview | None) -> tuple:
    """A stored row (:data:`COLUMNS` order) -> :data:`EXPORT_COLUMNS` order with the preview cells."""
    i = COLUMNS.index("verdict") + 1
    return row[:i] + preview_cells(row, preview) + row[i:]


@dataclass
class LogEntry:
    """One inspection, as written to the log (see :data:`COLUMNS`)."""

    source: str
    file: str
    verdict: str
    score: float | None = None
    score_normalised: float | None = None
    threshold: float | None = None
    station: str = ""
    recipe: str = ""
    backbone: str = ""
    latency_ms: float | None = None
    nok_image: str | None = None
    nok_overlay: str | None = None
    message: str | None = None
    time: str = field(default_factory=lambda: dt.datetime.now().astimezone().isoformat(timespec="milliseconds"))

    def row(self, row_id: int) -> tuple:
        """The entry as a table row in :data:`COLUMNS` order, with its database id."""
        values = asdict(self)
        return tuple(row_id if c == "id" else values[c] for c in COLUMNS)


def threshold_event(old: float | None, new: float, by: str = "operator", **context) -> LogEntry:
    """The log row of a threshold change from ``old`` to ``new`` (image-score units) by ``by``;
    ``context``: other :class:`LogEntry` fields (station, recipe, backbone...)."""
    before = "none" if old is None else f"{old:.6g}"
    return LogEntry(source="operator", file="", verdict=EVENT, threshold=float(new),
                    message=f"threshold changed {before} -> {new:.6g} by {by}", **context)


class DefectLog:
    """SQLite defect log (module docstring). Use from one thread (the GUI thread).

    Raises:
        DefectLogError: the file cannot be opened or created (folder not writable, disk full,
            not a database); the message names the file and the fix.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.commit()
        except (sqlite3.Error, OSError) as exc:
            raise DefectLogError(
                f"{self.path}: cannot open the defect log ({exc}). Check that the folder is writable, or "
                f"point DINOINSPECT_DATA_DIR to a writable folder.") from exc

    @property
    def journal_mode(self) -> str:
        return str(self._db.execute("PRAGMA journal_mode").fetchone()[0])

    def add(self, entry: LogEntry) -> int:
        """Write one row and commit it at once; returns its id."""
        values = asdict(entry)
        cols = [c for c in COLUMNS if c != "id"]
        try:
            cur = self._db.execute(
                f"INSERT INTO inspections ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                [values[c] for c in cols])
            self._db.commit()
        except sqlite3.Error as exc:
            raise DefectLogError(f"{self.path}: cannot write to the defect log ({exc}); this inspection is not "
                                 f"logged, the rows before it are kept. Free some space or make the folder "
                                 f"writable.") from exc
        return int(cur.lastrowid)

    def rows(self, nok_only: bool = False, limit: int | None = None, newest_first: bool = True) -> list[tuple]:
        """Rows as tuples in :data:`COLUMNS` order; ``nok_only``: NOK rows and events (threshold
        changes, so a NOK-only list still shows which threshold was in force)."""
        sql = f"SELECT {', '.join(COLUMNS)} FROM inspections"
        if nok_only:
            sql += f" WHERE verdict IN ('NOK', '{EVENT}')"
        sql += " ORDER BY id " + ("DESC" if newest_first else "ASC")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self._db.execute(sql).fetchall()

    def count(self, nok_only: bool = False, after_id: int = 0) -> int:
        """Inspections logged (events not counted), NOK ones only with ``nok_only``, only those
        with an id above ``after_id`` when given."""
        sql = "SELECT COUNT(*) FROM inspections WHERE id > ? AND " + ("verdict = 'NOK'" if nok_only else
                                                                      f"verdict != '{EVENT}'")
        return int(self._db.execute(sql, (int(after_id),)).fetchone()[0])

    def last_id(self) -> int:
        """Id of the newest row (0 for an empty log)."""
        return int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM inspections").fetchone()[0])

    def export_csv(self, path: str | Path, nok_only: bool = False, preview: Preview | None = None) -> int:
        """Write the log (oldest first) to a CSV file with a header row (:data:`EXPORT_COLUMNS`);
        returns the rows written. ``preview``: fill the preview columns (module docstring).

        Raises:
            DefectLogError: the CSV file cannot be written.
        """
        path = Path(path)
        try:
            with open(path, "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(EXPORT_COLUMNS)
                n = 0
                for row in self.rows(nok_only=nok_only, newest_first=False):
                    writer.writerow("" if v is None else v for v in export_row(row, preview))
                    n += 1
        except OSError as exc:
            raise DefectLogError(f"{path}: cannot write the CSV file ({exc}). Choose another folder.") from exc
        return n

    def close(self) -> None:
        self._db.close()
