"""The local audit engine: scan -> skip what the store already has -> batch -> score -> store.

::

    summary = run_audit(RecipeScorer("bottle.dimodel"), ["/archive"], "/audits/bottle")

* Files come from :class:`engine.audit.scan.ArchiveScan` (streamed, flat memory); each is checked
  against the store (:meth:`engine.audit.store.AuditStore.check`): *unchanged* files are counted
  and skipped, *new* and *changed* ones are cut into work units of ``batch_size`` files
  (:func:`work_units`; the Ray engine scores the same units, so both give the same bits).
* While batch ``k`` is scored in this thread, batch ``k+1`` is decoded in a worker thread (as
  :func:`engine.model.iter_images` prefetches), when the scorer offers ``decode`` /
  ``score_decoded`` (:class:`engine.audit.scoring.RecipeScorer`); other scorers get
  ``score_batch``. At most two batches of images are in memory.
* Every batch is written in one transaction as soon as it is scored: a killed audit (``kill -9``)
  loses at most the batch in flight, and running the same command again continues.
* ``stop`` (a :class:`threading.Event`, set by the CLI on Ctrl-C / SIGTERM): the batch in flight is
  finished and written, the run is recorded as ``"stopped"``.
* Progress (tqdm, stderr): files done (unchanged ones included), rate, and an ETA once the
  total is known. The total comes from :func:`engine.audit.scan.count_images`, a cheap walk
  without per-file ``stat`` run in a background thread: scoring starts at once, the bar shows
  rate and count until the count arrives (a fraction of a second for 10,000 files on a local
  disk), then the ETA.
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .records import ArchiveFile
from .scan import ArchiveScan, count_images
from .scoring import BatchScorer
from .store import CHANGED, NEW, UNCHANGED, AuditStore, AuditStoreError


@dataclass
class AuditSummary:
    """What one run did. ``status``: ``"finished"`` or ``"stopped"``; counts are this run's, except
    ``store_counts`` (every row of the store after the run)."""

    run_id: int
    status: str
    store_path: Path
    n_new: int = 0
    n_changed: int = 0
    n_unchanged: int = 0
    n_scored: int = 0
    n_errors: int = 0
    n_ok: int = 0
    n_nok: int = 0
    elapsed_s: float = 0.0
    skipped: str = ""
    error_examples: list[str] = field(default_factory=list)
    store_counts: dict = field(default_factory=dict)

    @property
    def images_per_s(self) -> float:
        """Files scored (or recorded as errors) per second of this run."""
        return (self.n_scored + self.n_errors) / self.elapsed_s if self.elapsed_s > 0 else 0.0


def work_units(scan: ArchiveScan, store: AuditStore, size: int, retry_errors: bool = False,
               summary: AuditSummary | None = None, on_unchanged=None) -> Iterator[list[ArchiveFile]]:
    """The files still to score, cut into work units of ``size`` files in scan order (the last one
    shorter): what both engines score, one unit per ``score_batch`` call.

    A scorer's record may depend on the other images of its batch in the last bits (a CNN's or
    faiss's arithmetic can change with the batch size: docs/AUDIT.md), so the units are decided
    here, once, from the scan order and the store: the local engine and the Ray engine given the
    same files, store and ``size`` score the same units and get bit-identical results.

    Args:
        size: files per unit (the ``--batch-size``).
        summary: its ``n_new`` / ``n_changed`` / ``n_unchanged`` are counted up as files are met.
        on_unchanged: called once per unchanged (skipped) file, e.g. to advance a progress bar.
    """
    batch: list[ArchiveFile] = []
    for f in scan:
        state = store.check(f, retry_errors)
        if state == UNCHANGED:
            if summary is not None:
                summary.n_unchanged += 1
            if on_unchanged is not None:
                on_unchanged()
            continue
        if summary is not None:
            if state == NEW:
                summary.n_new += 1
            elif state == CHANGED:
                summary.n_changed += 1
        batch.append(f)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch




def store_records(store: AuditStore, records: list, run_id: int, summary: AuditSummary, saved: str = "batches") -> None:
    """Write one batch / unit of records (one transaction) and count them in ``summary``; both engines
    use it. Raises :class:`AuditStoreError` (one line naming the store and the fix) when the store cannot
    be written; ``saved`` names what is already kept ("batches", "units")."""
    try:
        store.add(records, run_id)
    except Exception as exc:  # sqlite3.Error / OSError: the disk is full, the folder went away...
        raise AuditStoreError(
            f"{store.path}: cannot write results ({exc}); stopped with the earlier {saved} saved. Fix the "
            f"cause (free space, permissions) and run the same command again to continue.") from None
    for r in records:
        if r.status == "error":
            summary.n_errors += 1
            if len(summary.error_examples) < 5:
                summary.error_examples.append(r.error or r.path)
        else:
            summary.n_scored += 1
            summary.n_ok += r.verdict == "OK"
            summary.n_nok += r.verdict == "NOK"

def close_run(store: AuditStore, run_id: int, summary: AuditSummary, status: str, scan: ArchiveScan, bar,
              t0: float) -> None:
    """End a run of either engine: close the progress bar, fill ``summary`` (status, time, skips, store
    counts), record the run in the store and close it.

    ``status`` is ``"finished"``, ``"stopped"`` or ``"failed"`` (an exception is on its way: a store that
    cannot be written then does not hide it). Raises whatever the store raises otherwise.
    """
    bar.close()
    summary.status = status
    summary.elapsed_s = time.perf_counter() - t0
    summary.skipped = scan.skipped_summary()
    try:
        store.finish_run(run_id, status, summary.n_scored, summary.n_errors, summary.n_unchanged)
        summary.store_counts = store.counts()
    except Exception:  # noqa: BLE001 - after a failure the store may be unwritable: keep the first error
        if status != "failed":
            raise
    finally:
        store.close()


def run_audit(scorer: BatchScorer, roots: list[str | Path], out_dir: str | Path, batch_size: int | None = None,
              restart: bool = False, retry_errors: bool = False, argv: list[str] | None = None,
              engine: str = "local", progress: bool = True, stop: threading.Event | None = None,
              count: bool = True) -> AuditSummary:
    """Audit the image files under ``roots`` into ``out_dir/audit.sqlite`` (module docstring).

    Args:
        scorer: a :class:`engine.audit.scoring.BatchScorer`.
        roots: folders (or files) to audit, searched recursively.
        out_dir: the audit's folder (created); a store already there is continued.
        batch_size: files per batch (default: the scorer's ``batch_size``, else 8).
        restart: move an existing store aside and start again.
        retry_errors: score again files whose row is an error (otherwise unchanged files, errors
            included, are skipped).
        argv: the command line, recorded in the ``runs`` table.
        progress: show a tqdm bar on stderr.
        stop: when set, the run ends after the batch in flight (status ``"stopped"``).
        count: count the files first (in a background thread) for the bar's total and ETA.
    Returns:
        the run's :class:`AuditSummary`.
    Raises:
        DatasetError: a root does not exist.
        AuditStoreError: the store cannot be opened or continued (another model), or a write failed
            (disk full): the batches already written stay in the store.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    scan = ArchiveScan(roots, exclude=out_dir)
    store = AuditStore.open(out_dir, meta={**scorer.meta(), "roots": scan.roots}, restart=restart)
    size = int(batch_size or getattr(scorer, "batch_size", 8) or 8)
    run_id = store.begin_run(argv or [], engine)
    summary = AuditSummary(run_id, "running", store.path)
    stop = stop or threading.Event()
    total: list[int | None] = [None]
    if count:
        threading.Thread(target=lambda: total.__setitem__(0, count_images(scan.roots, out_dir)), daemon=True,
                         name="audit-count").start()
    bar = tqdm(total=None, desc="audit", unit="img", file=sys.stderr, dynamic_ncols=True, disable=not progress,
               smoothing=0.1)

    def advance(n: int) -> None:
        if total[0] is not None and bar.total != total[0]:
            bar.total = total[0]
        bar.update(n)

    def write(records) -> None:
        store_records(store, records, run_id, summary)
        bar.set_postfix_str(f"NOK {summary.n_nok}, errors {summary.n_errors}, unchanged {summary.n_unchanged}",
                            refresh=False)
        advance(len(records))

    t0 = time.perf_counter()
    status = "failed"
    try:
        batches = work_units(scan, store, size, retry_errors, summary, lambda: advance(1))
        if hasattr(scorer, "decode") and hasattr(scorer, "score_decoded"):
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-decode") as pool:
                pending = None
                for batch in batches:
                    ahead = pool.submit(scorer.decode, batch)
                    if pending is not None:
                        write(scorer.score_decoded(pending.result()))
                    pending = ahead
                    if stop.is_set():
                        break
                if pending is not None:
                    write(scorer.score_decoded(pending.result()))
        else:
            for batch in batches:
                write(scorer.score_batch(batch))
                if stop.is_set():
                    break
        status = "stopped" if stop.is_set() else "finished"
    finally:
        close_run(store, run_id, summary, status, scan, bar, t0)
    return summary
