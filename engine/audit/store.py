"""The audit's results store: one SQLite file, ``DIR/audit.sqlite``, written as the audit goes.

Why SQLite (:mod:`sqlite3`): one file, no server, transactions (a batch is in the store whole or not
at all), safe against ``kill -9`` of the writer (WAL journal, a commit per batch: a killed audit
loses at most the batch in flight), readable by any tool, and no code runs when it is opened.

Tables (format ``dinoinspect-audit/1``)::

    meta   (key TEXT PRIMARY KEY, value TEXT NOT NULL)         -- JSON values, :data:`META_KEYS`
    images (id, path UNIQUE, root, rel, grp, size, mtime_ns, fast_hash, status, score, verdict,
            error, height, width, anomaly_grid, latency_ms, run_id, scored_at)
    runs   (id, started, finished, argv, engine, n_scored, n_errors, n_unchanged, status)

A file is *unchanged* (already done) when its row has the same ``(size, mtime_ns, fast_hash)``
(:meth:`AuditStore.check`); a changed file is scored again and its row replaced (same ``id``).
``anomaly_grid`` holds ``np.save`` bytes of the ``(h, w) float16`` patch scores, read back with
``allow_pickle=False``.

Usage::

    store = AuditStore.open(out_dir, meta={...})        # create, or continue the same audit
    run = store.begin_run(argv, engine="local")
    if not store.is_done(f): store.add(records, run)     # one transaction per batch
    store.finish_run(run, "finished", n_scored=..., n_errors=..., n_unchanged=...)
    AuditStore.open(out_dir).top(50)                      # read an existing store (report)
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..errors import InspectError
from .records import ArchiveFile, AuditRecord, fast_hash

FORMAT = "dinoinspect-audit/1"
STORE_NAME = "audit.sqlite"

META_KEYS = ("format", "mode", "model_path", "model_sha256", "backbone", "threshold", "calibration_scores",
             "display", "roots", "patch_size", "image_size", "created")
"""Keys every store's meta holds (JSON values): ``format`` (:data:`FORMAT`), ``mode`` ("recipe" |
"mutual"), ``model_path``, ``model_sha256`` (of the model file; for the mutual mode, of its settings),
``backbone`` (the backbone's name), ``threshold`` (float or null), ``calibration_scores`` (the good
scores the threshold came from, or []), ``display`` (the colour scale, or null), ``roots`` (the
folders audited, a list), ``patch_size`` (px), ``image_size`` (network input side, px), ``created``
(ISO 8601 UTC). A scorer may add keys (e.g. ``map``: what re-renders an anomaly map)."""

IDENTITY_KEYS = ("mode", "model_sha256")
"""Meta keys that must match for an audit to continue an existing store."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (
  id INTEGER PRIMARY KEY,
  path TEXT NOT NULL UNIQUE,
  root TEXT NOT NULL, rel TEXT NOT NULL,
  grp TEXT NOT NULL,
  size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, fast_hash TEXT NOT NULL,
  status TEXT NOT NULL,
  score REAL, verdict TEXT, error TEXT, height INTEGER, width INTEGER,
  anomaly_grid BLOB,
  latency_ms REAL, run_id INTEGER NOT NULL, scored_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS images_score ON images(score);
CREATE INDEX IF NOT EXISTS images_grp ON images(grp);
CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY, started TEXT, finished TEXT, argv TEXT, engine TEXT,
                   n_scored INTEGER, n_errors INTEGER, n_unchanged INTEGER, status TEXT);
"""

COLUMNS = ("id", "path", "root", "rel", "grp", "size", "mtime_ns", "fast_hash", "status", "score", "verdict",
           "error", "height", "width", "anomaly_grid", "latency_ms", "run_id", "scored_at")
"""Columns of the ``images`` table, in order; :meth:`AuditStore.iter_rows` yields dicts of them."""

CSV_COLUMNS = ("path", "rel", "grp", "status", "score", "verdict", "error", "height", "width", "latency_ms",
               "size", "mtime_ns", "fast_hash", "run_id", "scored_at")
"""Columns of :meth:`AuditStore.export_csv` (every ``images`` column but the grid and the id)."""

ORDERS = {"id": "id", "path": "path", "grp": "grp, path", "score": "score DESC, path", "-score": "score ASC, path"}
"""``order_by`` names of :meth:`AuditStore.iter_rows`: ``score`` is highest first."""

NEW, UNCHANGED, CHANGED = "new", "unchanged", "changed"


class AuditStoreError(InspectError):
    """The results store cannot be created, read or continued (message: the file and the fix)."""


def now_iso() -> str:
    """The current time, ISO 8601 UTC with microseconds (``2026-12-01T08:30:00.123456+00:00``)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat()


def grid_to_blob(grid: np.ndarray | None) -> bytes | None:
    """``(h, w)`` patch scores -> ``np.save`` bytes of float16 (None stays None)."""
    if grid is None:
        return None
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(grid, np.float16), allow_pickle=False)
    return buf.getvalue()


def blob_to_grid(blob: bytes | None) -> np.ndarray | None:
    """Inverse of :func:`grid_to_blob`: ``(h, w) float16`` (never unpickles)."""
    if blob is None:
        return None
    return np.load(io.BytesIO(blob), allow_pickle=False)


class AuditStore:
    """One audit's ``DIR/audit.sqlite`` (module docstring). One writer at a time; readers may
    open the same file while it is written (WAL)."""

    def __init__(self, path: Path, con: sqlite3.Connection):
        self.path = path
        self._con = con

    # ------------------------------------------------------------------ open / create
    @classmethod
    def open(cls, out_dir: str | Path, meta: dict | None = None, restart: bool = False) -> "AuditStore":
        """Open ``out_dir/audit.sqlite``.

        Args:
            out_dir: the audit's folder (created when ``meta`` is given).
            meta: the facts of the audit about to run (:data:`META_KEYS`). Given: a new store is
                created with them, or an existing one is continued when its ``mode`` and
                ``model_sha256`` are the same (its other keys are updated, its ``roots`` extended,
                its ``created`` kept). None: the store must exist (reading it: report, CSV export).
            restart: with ``meta``, move an existing store aside (``audit.sqlite.<time>``, never
                deleted) and start a new one.
        Raises:
            AuditStoreError: no store (``meta`` None), a file that is not a store of this format,
                a store made by another model or mode (both named, with the fix), or a folder
                that cannot be written.
        """
        out_dir = Path(out_dir)
        path = out_dir / STORE_NAME
        if meta is None:
            if not path.is_file():
                from engine.app_info import cli_command

                raise AuditStoreError(f"{path}: no audit results there. Run `{cli_command()} audit ... --out {out_dir}` "
                                      f"first, or give the folder an audit wrote.")
            store = cls(path, cls._connect(path))
            store._guarded(store._check_format)
            return store
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AuditStoreError(f"{out_dir}: cannot create the folder ({exc.strerror or exc}). Choose --out in "
                                  f"a folder you can write to.") from None
        if restart and path.exists():
            aside = path.with_name(f"{STORE_NAME}.{_dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
            for suffix in ("-wal", "-shm"):  # a clean close leaves none; a killed writer may
                side = path.with_name(path.name + suffix)
                if side.exists():
                    os.replace(side, aside.with_name(aside.name + suffix))
            os.replace(path, aside)
        existed = path.exists()
        store = cls(path, cls._connect(path))
        if existed:
            store._guarded(store._check_format)
            store._guarded(store._continue, meta)
        else:
            store._guarded(store._create, meta)
        return store

    def _guarded(self, fn, *args) -> None:
        """Run ``fn``; on any error close the file first (a refused store is left as it was)."""
        try:
            fn(*args)
        except BaseException:
            self._con.close()
            raise

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        con = None
        try:
            con = sqlite3.connect(path, isolation_level=None)  # autocommit; add() opens its own transaction
            con.execute("PRAGMA busy_timeout=10000")
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a killed process loses no commit
            return con
        except sqlite3.Error as exc:
            if con is not None:
                con.close()
            if "not a database" in str(exc):
                raise AuditStoreError(f"{path}: not a DINOInspect audit store ({exc}). Choose another --out, or "
                                      f"give --restart to move it aside and start a new audit.") from None
            raise AuditStoreError(f"{path}: cannot open the results store ({exc}). Check the folder's "
                                  f"permissions, or choose another --out.") from None

    def _check_format(self) -> None:
        try:
            row = self._con.execute("SELECT value FROM meta WHERE key='format'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise AuditStoreError(f"{self.path}: not a DINOInspect audit store ({exc}). Choose another --out, or "
                                  f"give --restart to move it aside and start a new audit.") from None
        fmt = None if row is None else json.loads(row[0])
        if fmt != FORMAT:
            raise AuditStoreError(f"{self.path}: store format {fmt!r}, this version reads {FORMAT!r}. Choose "
                                  f"another --out, or give --restart to move it aside and start a new audit.")

    def _create(self, meta: dict) -> None:
        meta = {**meta, "format": FORMAT}
        meta.setdefault("created", now_iso())
        missing = [k for k in META_KEYS if k not in meta]
        if missing:
            raise ValueError(f"audit meta lacks {missing}")
        with self._transaction():
            for stmt in SCHEMA.split(";"):
                if stmt.strip():
                    self._con.execute(stmt)
            self._con.executemany("INSERT INTO meta(key, value) VALUES (?, ?)",
                                  [(k, json.dumps(v)) for k, v in meta.items()])

    def _continue(self, meta: dict) -> None:
        old = self.meta()
        for key in IDENTITY_KEYS:
            if key in meta and old.get(key) != meta[key]:
                raise AuditStoreError(
                    f"{self.path}: made by an audit with {key} {old.get(key)!r} (model {old.get('model_path')}), "
                    f"this one has {meta[key]!r} (model {meta.get('model_path')}): results of two models are not "
                    f"mixed. Give another --out, or --restart to move the old results aside and start again.")
        new = {k: v for k, v in meta.items() if k not in ("format", "created")}
        new["roots"] = list(dict.fromkeys([*old.get("roots", []), *meta.get("roots", [])]))
        self.set_meta(**new)

    def _transaction(self):
        con = self._con

        class _Tx:
            def __enter__(self_inner):
                con.execute("BEGIN IMMEDIATE")

            def __exit__(self_inner, exc_type, exc, tb):
                con.execute("COMMIT" if exc_type is None else "ROLLBACK")
                return False

        return _Tx()

    def close(self) -> None:
        """Close the file (a later use raises :class:`sqlite3.ProgrammingError`)."""
        self._con.close()

    def __enter__(self) -> "AuditStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ meta and runs
    def meta(self) -> dict:
        """Every meta key -> its JSON-decoded value."""
        return {k: json.loads(v) for k, v in self._con.execute("SELECT key, value FROM meta")}

    def set_meta(self, **values) -> None:
        """Set meta keys (JSON-encoded) in one transaction."""
        with self._transaction():
            self._con.executemany("INSERT INTO meta(key, value) VALUES (?, ?) "
                                  "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                                  [(k, json.dumps(v)) for k, v in values.items()])

    def begin_run(self, argv: list[str] | str, engine: str = "local") -> int:
        """Record the start of a run (status ``"running"``); returns its id (``run_id`` of its rows)."""
        argv = argv if isinstance(argv, str) else json.dumps(list(argv))
        with self._transaction():
            cur = self._con.execute("INSERT INTO runs(started, argv, engine, n_scored, n_errors, n_unchanged, status) "
                                    "VALUES (?, ?, ?, 0, 0, 0, 'running')", (now_iso(), argv, engine))
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, status: str, n_scored: int, n_errors: int, n_unchanged: int) -> None:
        """Record how a run ended: ``status`` ``"finished"`` / ``"stopped"`` / ``"failed"`` and its counts.
        A run killed before this stays ``"running"`` in the table."""
        with self._transaction():
            self._con.execute("UPDATE runs SET finished=?, status=?, n_scored=?, n_errors=?, n_unchanged=? "
                              "WHERE id=?", (now_iso(), status, n_scored, n_errors, n_unchanged, run_id))

    def runs(self) -> list[dict]:
        """Every run, oldest first, as dicts of the ``runs`` columns."""
        cur = self._con.execute("SELECT * FROM runs ORDER BY id")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur]

    # ------------------------------------------------------------------ writing
    def check(self, file: ArchiveFile, retry_errors: bool = False) -> str:
        """Whether ``file`` is :data:`NEW` (no row), :data:`UNCHANGED` (a row with the same size,
        mtime and :func:`fast_hash`: nothing to do) or :data:`CHANGED` (to score again).

        Cheap: the hash is computed only when size and mtime match. With ``retry_errors``, a
        file whose row is an error counts as changed.
        """
        row = self._con.execute("SELECT size, mtime_ns, fast_hash, status FROM images WHERE path=?",
                                (file.path,)).fetchone()
        if row is None:
            return NEW
        size, mtime_ns, h, status = row
        if size != file.size or mtime_ns != file.mtime_ns or (retry_errors and status == "error"):
            return CHANGED
        try:
            return UNCHANGED if fast_hash(file.path, file.size) == h else CHANGED
        except OSError:
            return CHANGED  # unreadable now: scoring it again records the error

    def is_done(self, file: ArchiveFile) -> bool:
        """``check(file) == "unchanged"``."""
        return self.check(file) == UNCHANGED

    def add(self, records: Iterable[AuditRecord], run_id: int) -> int:
        """Write records in one transaction (a row per path: a changed file's row is replaced,
        keeping its id); returns how many were written."""
        stamp = now_iso()
        rows = [(r.path, r.root, r.rel, r.group, int(r.size), int(r.mtime_ns), r.fast_hash, r.status,
                 None if r.score is None else float(r.score), r.verdict, r.error, r.height, r.width,
                 grid_to_blob(r.anomaly_grid), None if r.latency_ms is None else float(r.latency_ms), run_id, stamp)
                for r in records]
        if not rows:
            return 0
        cols = COLUMNS[1:]
        update = ", ".join(f"{c}=excluded.{c}" for c in cols[1:])
        with self._transaction():
            self._con.executemany(f"INSERT INTO images({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
                                  f"ON CONFLICT(path) DO UPDATE SET {update}", rows)
        return len(rows)

    # ------------------------------------------------------------------ reading
    def counts(self) -> dict:
        """``{"images", "scored", "errors", "ok", "nok", "no_verdict"}`` over every row."""
        n, scored, errors, ok, nok = self._con.execute(
            "SELECT COUNT(*), SUM(status='scored'), SUM(status='error'), SUM(verdict='OK'), SUM(verdict='NOK') "
            "FROM images").fetchone()
        scored, errors, ok, nok = (int(x or 0) for x in (scored, errors, ok, nok))
        return {"images": int(n), "scored": scored, "errors": errors, "ok": ok, "nok": nok,
                "no_verdict": scored - ok - nok}

    def _rows(self, sql: str, params=(), with_grid: bool = True) -> Iterator[dict]:
        cur = self._con.execute(sql, params)
        names = [d[0] for d in cur.description]
        while True:
            chunk = cur.fetchmany(512)
            if not chunk:
                return
            for r in chunk:
                d = dict(zip(names, r))
                if "anomaly_grid" in d:
                    d["anomaly_grid"] = blob_to_grid(d["anomaly_grid"]) if with_grid else None
                yield d

    def iter_rows(self, order_by: str = "id", with_grid: bool = False, status: str | None = None) -> Iterator[dict]:
        """Rows as dicts of :data:`COLUMNS`, streamed (flat memory).

        Args:
            order_by: a name of :data:`ORDERS` (``"score"``: highest first).
            with_grid: decode ``anomaly_grid`` to ``(h, w) float16`` (else None: cheaper).
            status: only rows of that status (``"scored"`` / ``"error"``).
        """
        if order_by not in ORDERS:
            raise ValueError(f"order_by must be one of {sorted(ORDERS)}, got {order_by!r}")
        cols = ", ".join(COLUMNS) if with_grid else ", ".join(c if c != "anomaly_grid" else "NULL AS anomaly_grid"
                                                               for c in COLUMNS)
        where, params = ("WHERE status=?", (status,)) if status else ("", ())
        yield from self._rows(f"SELECT {cols} FROM images {where} ORDER BY {ORDERS[order_by]}", params, with_grid)

    def top(self, n: int) -> list[dict]:
        """The ``n`` highest-scoring scored rows, highest first (ties by path), grids decoded."""
        return list(self._rows(f"SELECT {', '.join(COLUMNS)} FROM images WHERE status='scored' AND score IS NOT NULL "
                               f"ORDER BY score DESC, path LIMIT ?", (int(n),)))

    def band(self, lo: float, hi: float, n: int) -> list[dict]:
        """Up to ``n`` scored rows with ``lo <= score < hi``, highest first (the review band just under a
        threshold ``hi``), grids decoded."""
        return list(self._rows(f"SELECT {', '.join(COLUMNS)} FROM images WHERE status='scored' AND score >= ? "
                               f"AND score < ? ORDER BY score DESC, path LIMIT ?", (float(lo), float(hi), int(n))))

    def groups(self) -> list[tuple[str, int, int, int]]:
        """``(grp, n, n_nok, n_err)`` per sub-folder, sorted by ``grp``."""
        return [(g, int(n), int(nok or 0), int(err or 0)) for g, n, nok, err in self._con.execute(
            "SELECT grp, COUNT(*), SUM(verdict='NOK'), SUM(status='error') FROM images GROUP BY grp ORDER BY grp")]

    def scores(self) -> np.ndarray:
        """``(N,) float64`` scores of every scored row, in id order (read in chunks)."""
        cur = self._con.execute("SELECT score FROM images WHERE status='scored' AND score IS NOT NULL ORDER BY id")
        parts = []
        while True:
            chunk = cur.fetchmany(65536)
            if not chunk:
                break
            parts.append(np.fromiter((r[0] for r in chunk), np.float64, len(chunk)))
        return np.concatenate(parts) if parts else np.zeros(0, np.float64)

    def export_csv(self, path: str | Path) -> int:
        """Write every row (:data:`CSV_COLUMNS`, in path order) to a CSV file, through a temporary
        file renamed into place (an interrupted export leaves the earlier file whole); returns the
        number of rows.

        Raises:
            OSError: the file cannot be written.
        """
        path = Path(path)
        tmp = path.with_name(path.name + ".part")
        n = 0
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(CSV_COLUMNS)
            for r in self._rows(f"SELECT {', '.join(CSV_COLUMNS)} FROM images ORDER BY path"):
                w.writerow(["" if r[c] is None else (repr(r[c]) if c == "score" else
                                                  f"{r[c]:.2f}" if c == "latency_ms" else r[c])
                            for c in CSV_COLUMNS])
                n += 1
        os.replace(tmp, path)
        return n
