"""The Ray engine of an audit: feature extraction and scoring on a Ray cluster (Ray Data), results in
the same :class:`~engine.audit.store.AuditStore` as the local engine.

How it runs (``main.py audit --model RECIPE FOLDER... --out DIR --engine ray``, :func:`run_audit_ray`):

1. The driver (this process) streams the scan and skips every file the store already has with the
   same key, and cuts the rest into *work units* of ``--batch-size`` files in scan order: exactly
   :func:`engine.audit.runner.work_units`, as the local engine. A unit is what one ``score_batch``
   call scores in either engine; a scorer's bits may depend on its batch (faiss's k-NN search does:
   docs/AUDIT_RAY.md), so the same units are what make the two engines' records bit-identical.
2. Units become rows of a Ray dataset (``ray.data.from_items``), in windows of at most
   ``window_units`` units so the driver's memory stays flat on any archive.
   ``map_batches(batch_size=1)`` sends each unit to an actor of a fixed-size pool
   (``ray.data.ActorPoolStrategy``); each actor builds its :class:`~engine.audit.scoring.BatchScorer`
   once per window from a picklable factory (the model path), and reads the images itself from their
   paths: every node must see the archive and the model at the same paths (a shared filesystem), and
   have this project installed; images never travel through Ray's object store.
3. Records come back as Arrow rows (grids as ``np.save`` bytes of float16, scores as float64: bit
   exact); the driver, the store's one writer, adds each unit in one transaction as soon as it is
   complete (a killed driver loses only the units in flight).

Ray (``ray[data]``) is an optional extra: ``pip install -e ".[distributed]"``. Ray Data's
documentation: https://docs.ray.io/en/latest/data/transforming-data.html (stateful transforms with
an actor pool).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import sys
import threading
import time
from dataclasses import fields
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ..errors import InspectError
from .records import ArchiveFile, AuditRecord
from .runner import AuditSummary, close_run, store_records, work_units
from .scan import ArchiveScan, count_images
from .scoring import BatchScorer
from .store import AuditStore, AuditStoreError, blob_to_grid, grid_to_blob

INSTALL_HINT = 'pip install -e ".[distributed]"  (Ray Data, ray[data])'

RECORD_FIELDS = tuple(f.name for f in fields(AuditRecord))
"""Fields of :class:`AuditRecord`, in order: the columns of the rows the actors return."""

FILE_FIELDS = tuple(f.name for f in fields(ArchiveFile))


class RayEngineError(InspectError):
    """Ray is missing, cannot be reached, or an actor failed (message: what, and the fix)."""


def import_ray():
    """``ray`` and ``ray.data``, or :class:`RayEngineError` saying how to install them."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise RayEngineError(f"--engine ray needs Ray Data, which is not installed ({exc}). Install it with "
                             f"{INSTALL_HINT}, or use the local engine (--engine local).") from None
    return ray


# ---------------------------------------------------------------------------------------- encoding
def encode_unit(unit_id: int, files: list[ArchiveFile]) -> dict:
    """A dataset row for one work unit: ``{"unit": int, "files": JSON list of ArchiveFile fields}``."""
    return {"unit": int(unit_id), "files": json.dumps([[getattr(f, k) for k in FILE_FIELDS] for f in files])}


def decode_unit(files_json: str) -> list[ArchiveFile]:
    """Inverse of :func:`encode_unit`'s ``files``."""
    return [ArchiveFile(*values) for values in json.loads(files_json)]


def records_table(unit_id: int, records: list[AuditRecord]):
    """``pyarrow.Table`` of records, one row each (column per :data:`RECORD_FIELDS` plus ``unit``;
    ``anomaly_grid`` as ``np.save`` bytes, ``score`` / ``latency_ms`` float64: nothing is rounded)."""
    import pyarrow as pa

    cols = {name: [getattr(r, name) for r in records] for name in RECORD_FIELDS}
    cols["anomaly_grid"] = [grid_to_blob(g) for g in cols["anomaly_grid"]]
    types = {"size": pa.int64(), "mtime_ns": pa.int64(), "score": pa.float64(), "height": pa.int64(),
             "width": pa.int64(), "anomaly_grid": pa.binary(), "latency_ms": pa.float64()}
    arrays = {name: pa.array([None if v is None else v for v in cols[name]], types.get(name, pa.string()))
              for name in RECORD_FIELDS}
    arrays["unit"] = pa.array([unit_id] * len(records), pa.int64())
    return pa.table(arrays)


def record_from_row(row: dict) -> AuditRecord:
    """An :class:`AuditRecord` from one returned row (a dict as ``iter_rows`` gives)."""
    values = {name: row[name] for name in RECORD_FIELDS}
    values["anomaly_grid"] = blob_to_grid(values["anomaly_grid"])
    return AuditRecord(**values)


# ---------------------------------------------------------------------------------------- the actor
class ScoreUnits:
    """The callable class ``map_batches`` runs in each actor: builds one :class:`BatchScorer` from
    ``factory`` (once per actor) and scores one work unit per call.

    Args:
        factory: a picklable zero-argument callable returning a :class:`BatchScorer`, e.g.
            ``functools.partial(RecipeScorer.from_path, "part.dimodel")``; it runs in the actor, so
            the model file must be readable there (shared filesystem).
        torch_threads: ``torch.set_num_threads`` in this actor (None: leave as Ray set it; Ray sets
            ``OMP_NUM_THREADS`` to the actor's CPUs).
    """

    def __init__(self, factory: Callable[[], BatchScorer], torch_threads: int | None = None):
        if torch_threads:
            import torch

            torch.set_num_threads(int(torch_threads))
        self.scorer = factory()

    def __call__(self, batch: dict) -> "object":
        units, files = batch["unit"], batch["files"]
        if len(units) != 1:  # map_batches(batch_size=1): one unit, one score_batch call
            raise RuntimeError(f"ScoreUnits got {len(units)} units in one call; expected 1 (batch_size=1)")
        unit_files = decode_unit(str(files[0]))
        records = self.scorer.score_batch(unit_files)
        if len(records) != len(unit_files):
            raise RuntimeError(f"score_batch returned {len(records)} records for {len(unit_files)} files")
        return records_table(int(units[0]), records)


# ---------------------------------------------------------------------------------------- the driver
def resources_per_actor(ray, actors: int, actor_gpus: float, cpus_per_actor: float | None) -> float:
    """CPUs to reserve per actor (also its torch threads): ``cpus_per_actor`` when given; else 1 for
    GPU actors (the GPU does the work); else the cluster's CPUs shared evenly, at least 1."""
    if cpus_per_actor:
        return float(cpus_per_actor)
    if actor_gpus:
        return 1.0
    total = float(ray.cluster_resources().get("CPU", 1.0))
    return max(1.0, float(int(total // max(1, actors))))


@contextlib.contextmanager
def ray_session(address: str | None):
    """Ray for the duration of a run: the one this process already joined, else ``ray.init`` (a
    local Ray when ``address`` is None, else that cluster), shut down after.

    Raises:
        RayEngineError: Ray missing, or the cluster cannot be started or reached.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    except Exception as exc:  # ConnectionError, RuntimeError, ValueError...: Ray's message is what went wrong
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise RayEngineError(f"cannot start or reach {where}: {_one_line(exc)}. Check --ray-address ('auto' on a "
                             f"node of a running cluster, or ray://HEAD:10001), or use --engine local.") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def score_units_on_ray(factory: Callable[[], BatchScorer], units: Iterable[list[ArchiveFile]], *, actors: int = 2,
                       actor_gpus: float = 0.0, cpus_per_actor: float | None = None,
                       window_units: int = 4096) -> Iterator[list[AuditRecord]]:
    """Score work units on the Ray this process has joined; yields each unit's records (in the
    unit's order) as soon as the unit is done, units in completion order.

    Args:
        factory: builds each actor's :class:`BatchScorer` (:class:`ScoreUnits`), once per actor and window.
        units: lists of files, scored one ``score_batch`` call each (:func:`engine.audit.runner.work_units`).
        actors: actors in the (fixed-size) pool.
        actor_gpus: GPUs reserved per actor; 0 for CPU actors.
        cpus_per_actor: CPUs per actor (default :func:`resources_per_actor`).
        window_units: units per Ray dataset: bounds the driver's memory; each window starts its
            actors anew (the model is loaded once per actor per window).
    Raises:
        RuntimeError / Ray's errors: an actor failed for a reason other than a bad file (bad files
            are records, never errors).
    """
    import ray
    import ray.data as rd

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its per-dataset notices; errors still show
    ctx = rd.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver shows one bar of its own (images, rate, ETA)
    ctx.print_on_execution_start = False
    ctx.execution_options.preserve_order = False
    cpus = resources_per_actor(ray, actors, actor_gpus, cpus_per_actor)
    threads = None if actor_gpus else max(1, int(cpus))
    units = iter(units)
    first = 0
    while True:
        window = list(itertools.islice(units, window_units))
        if not window:
            return
        rows = [encode_unit(first + i, u) for i, u in enumerate(window)]
        n_files = {first + i: len(u) for i, u in enumerate(window)}
        first += len(window)
        del window
        ds = rd.from_items(rows, override_num_blocks=len(rows)).map_batches(
            ScoreUnits, batch_size=1, batch_format="numpy", compute=rd.ActorPoolStrategy(size=int(actors)),
            fn_constructor_kwargs={"factory": factory, "torch_threads": threads},
            num_cpus=cpus, num_gpus=float(actor_gpus) or None)
        del rows
        partial: dict[int, list[AuditRecord]] = {}
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            for row in batch.to_pylist():
                unit = int(row["unit"])
                got = partial.setdefault(unit, [])
                got.append(record_from_row(row))
                if len(got) == n_files[unit]:
                    yield partial.pop(unit)
        if partial:
            raise RuntimeError(f"{len(partial)} work units came back incomplete")


def run_audit_ray(factory: Callable[[], BatchScorer], meta: dict, roots: list[str | Path], out_dir: str | Path,
                  batch_size: int = 4, restart: bool = False, retry_errors: bool = False,
                  argv: list[str] | None = None, progress: bool = True, stop: threading.Event | None = None,
                  count: bool = True, address: str | None = None, actors: int = 2, actor_gpus: float = 0.0,
                  cpus_per_actor: float | None = None, window_units: int = 4096) -> AuditSummary:
    """Audit the image files under ``roots`` into ``out_dir/audit.sqlite`` on Ray: the Ray twin of
    :func:`engine.audit.runner.run_audit` (same store, same units, same summary; module docstring).

    Args:
        factory: a picklable zero-argument callable building the :class:`BatchScorer` in each actor,
            e.g. ``functools.partial(RecipeScorer, "/models/part.dimodel")``.
        meta: the store's meta (``scorer.meta()`` of the same model, read in the driver).
        batch_size: files per work unit (the local engine's ``--batch-size`` for the same bits).
        address, actors, actor_gpus, cpus_per_actor, window_units: where and how it runs
            (:func:`ray_session`, :func:`score_units_on_ray`).
        Others: as :func:`engine.audit.runner.run_audit`.
    Returns:
        the run's :class:`~engine.audit.runner.AuditSummary` (engine ``"ray"`` in the runs table).
    Raises:
        DatasetError: a root does not exist.
        AuditStoreError: the store cannot be opened, continued or written (units written stay).
        RayEngineError: Ray missing or unreachable, or an actor failed; every unit stored so far stays
            and the run is recorded as ``"failed"``.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    scan = ArchiveScan(roots, exclude=out_dir)
    store = AuditStore.open(out_dir, meta={**meta, "roots": scan.roots}, restart=restart)
    run_id = store.begin_run(argv or [], "ray")
    summary = AuditSummary(run_id, "running", store.path)
    stop = stop or threading.Event()
    total: list[int | None] = [None]
    if count:
        threading.Thread(target=lambda: total.__setitem__(0, count_images(scan.roots, out_dir)), daemon=True,
                         name="audit-count").start()
    bar = tqdm(total=None, desc="audit (ray)", unit="img", file=sys.stderr, dynamic_ncols=True,
               disable=not progress, smoothing=0.1)

    def advance(n: int) -> None:
        if total[0] is not None and bar.total != total[0]:
            bar.total = total[0]
        bar.update(n)

    t0 = time.perf_counter()
    status = "failed"
    try:
        units = work_units(scan, store, int(batch_size), retry_errors, summary, lambda: advance(1))
        head = next(units, None)  # Ray is started only when there is something to score
        units = iter(()) if head is None else itertools.chain([head], units)
        with (ray_session(address) if head is not None else contextlib.nullcontext()):
            results = score_units_on_ray(factory, units, actors=actors, actor_gpus=actor_gpus,
                                         cpus_per_actor=cpus_per_actor, window_units=window_units)
            try:
                for records in results:
                    _write(store, records, run_id, summary)
                    bar.set_postfix_str(f"NOK {summary.n_nok}, errors {summary.n_errors}, "
                                        f"unchanged {summary.n_unchanged}", refresh=False)
                    advance(len(records))
                    if stop.is_set():
                        break
            except (AuditStoreError, KeyboardInterrupt):
                raise
            except Exception as exc:  # an actor died, the cluster went away...: one line, the units stay
                raise RayEngineError(
                    f"the Ray audit failed after {summary.n_scored + summary.n_errors} files stored in this run: "
                    f"{_one_line(exc)}. They are kept in {store.path}: run the same command again to go on, "
                    f"or use --engine local.") from None
            finally:
                results.close()  # ends the Ray execution (units in flight are dropped: scored next run)
        status = "stopped" if stop.is_set() else "finished"
    finally:
        close_run(store, run_id, summary, status, scan, bar, t0)
    return summary


def _write(store: AuditStore, records: list[AuditRecord], run_id: int, summary: AuditSummary) -> None:
    """One unit into the store (one transaction), counted in ``summary`` as the local runner does."""
    store_records(store, records, run_id, summary, saved="units")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 400 else text[:400] + "..."
