"""The Ray engine of an audit: feature extraction and scoring on a Ray cluster (Ray Data), results in
the same :class:`~engine.audit.store.AuditStore` as the local engine.

How it runs (``main.py audit --model RECIPE FOLDER... --out DIR --engine ray``):

1. The driver (this process) streams the scan and skips every file the store already has with the
   same key (:meth:`AuditStore.check`), exactly as the local engine does.
2. It cuts the pending files into *work units* of ``unit_size`` files in scan order
   (:func:`work_units`). A unit is the batch one ``score_batch`` call scores, in both engines: the
   k-NN scorer's patch scores depend on how many queries faiss searches at once (docs/AUDIT_RAY.md
   measures it), so the same batches are what make the two engines' records bit-identical.
3. Units become rows of a Ray dataset (``ray.data.from_items``), ``windows`` of at most
   ``window_units`` units at a time so the driver's memory stays flat on any archive.
   ``map_batches(batch_size=1)`` sends each unit to an actor of a fixed-size pool
   (``ray.data.ActorPoolStrategy``); each actor builds its :class:`~engine.audit.scoring.BatchScorer`
   once, from the model path (a picklable factory), and reads the images itself from their paths
   (a filesystem shared by every node is assumed: images are not shipped through the object store).
4. Records come back as Arrow rows (grids as ``np.save`` bytes of float16, scores as float64: bit
   exact) and the driver, the store's one writer, adds each unit in one transaction as it arrives.

Ray (``ray[data]``) is an optional extra: ``pip install -e ".[distributed]"``. Ray Data's
documentation: https://docs.ray.io/en/latest/data/transforming-data.html (stateful transforms with
an actor pool).
"""

from __future__ import annotations

import io
import itertools
import json
import os
import sys
import time
from dataclasses import dataclass, fields
from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import InspectError
from .records import ArchiveFile, AuditRecord
from .scoring import BatchScorer

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


def work_units(files: Iterable[ArchiveFile], unit_size: int) -> Iterator[list[ArchiveFile]]:
    """Cut a stream of files into consecutive lists of ``unit_size`` (the last one shorter), lazily.

    Both engines score exactly these lists, one ``score_batch`` call each (module docstring).
    """
    if unit_size < 1:
        raise ValueError(f"unit_size must be >= 1, got {unit_size}")
    it = iter(files)
    while True:
        unit = list(itertools.islice(it, unit_size))
        if not unit:
            return
        yield unit


# ---------------------------------------------------------------------------------------- encoding
def encode_unit(unit_id: int, files: list[ArchiveFile]) -> dict:
    """A dataset row for one work unit: ``{"unit": int, "files": JSON list of ArchiveFile fields}``."""
    return {"unit": int(unit_id), "files": json.dumps([[getattr(f, k) for k in FILE_FIELDS] for f in files])}


def decode_unit(files_json: str) -> list[ArchiveFile]:
    """Inverse of :func:`encode_unit`'s ``files``."""
    return [ArchiveFile(*values) for values in json.loads(files_json)]


def _grid_bytes(grid: np.ndarray | None) -> bytes | None:
    if grid is None:
        return None
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(grid, np.float16), allow_pickle=False)
    return buf.getvalue()


def records_table(unit_id: int, records: list[AuditRecord]):
    """``pyarrow.Table`` of records, one row each (column per :data:`RECORD_FIELDS` plus ``unit``;
    ``anomaly_grid`` as ``np.save`` bytes, ``score`` / ``latency_ms`` float64: nothing is rounded)."""
    import pyarrow as pa

    cols = {name: [getattr(r, name) for r in records] for name in RECORD_FIELDS}
    cols["anomaly_grid"] = [_grid_bytes(g) for g in cols["anomaly_grid"]]
    types = {"size": pa.int64(), "mtime_ns": pa.int64(), "score": pa.float64(), "height": pa.int64(),
             "width": pa.int64(), "anomaly_grid": pa.binary(), "latency_ms": pa.float64()}
    arrays = {name: pa.array([None if v is None else v for v in cols[name]], types.get(name, pa.string()))
              for name in RECORD_FIELDS}
    arrays["unit"] = pa.array([unit_id] * len(records), pa.int64())
    return pa.table(arrays)


def record_from_row(row: dict) -> AuditRecord:
    """An :class:`AuditRecord` from one returned row (a dict as ``iter_rows`` gives)."""
    values = {name: row[name] for name in RECORD_FIELDS}
    blob = values["anomaly_grid"]
    values["anomaly_grid"] = None if blob is None else np.load(io.BytesIO(blob), allow_pickle=False)
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
@dataclass
class RayRunResult:
    """What a Ray audit run did: counts of files scored / in error / unchanged (skipped), its
    status (``"finished"`` / ``"stopped"`` / ``"failed"``), wall seconds and the units sent."""

    n_scored: int = 0
    n_errors: int = 0
    n_unchanged: int = 0
    status: str = "running"
    seconds: float = 0.0
    n_units: int = 0


def resources_per_actor(ray, actors: int, actor_gpus: float, cpus_per_actor: float | None) -> float:
    """CPUs to reserve per actor: ``cpus_per_actor``, else the cluster's CPUs shared evenly
    (at least 1; with GPU actors, 1: the GPU does the work)."""
    if cpus_per_actor:
        return float(cpus_per_actor)
    if actor_gpus:
        return 1.0
    total = float(ray.cluster_resources().get("CPU", 1.0))
    return max(1.0, float(int(total // max(1, actors))))


def run_ray_audit(factory: Callable[[], BatchScorer], pending: Iterable[ArchiveFile], store, run_id: int, *,
                  unit_size: int = 4, actors: int = 2, actor_gpus: float = 0.0, cpus_per_actor: float | None = None,
                  address: str | None = None, window_units: int = 4096, n_unchanged: int = 0,
                  on_records: Callable[[list[AuditRecord]], None] | None = None,
                  should_stop: Callable[[], bool] | None = None) -> RayRunResult:
    """Score ``pending`` files on Ray and write each unit's records into ``store`` as they arrive.

    Args:
        factory: builds the actor's :class:`BatchScorer` (:class:`ScoreUnits`).
        pending: the files to score, in scan order, already filtered against the store (a lazy
            iterator: it is consumed ``window_units * unit_size`` files at a time).
        store: the open :class:`~engine.audit.store.AuditStore` (the driver is its only writer).
        run_id: the run the rows belong to (:meth:`AuditStore.begin_run`).
        unit_size: files per work unit (= per ``score_batch`` call; must equal the local engine's
            batch for the two engines to give the same bits).
        actors: size of the actor pool (fixed).
        actor_gpus: GPUs reserved per actor (0: CPU actors); the scorer picks its device itself.
        cpus_per_actor: CPUs reserved per actor, also its torch threads (default:
            :func:`resources_per_actor`).
        address: an existing cluster (``ray.init(address=...)``, e.g. ``"auto"`` or
            ``"ray://head:10001"``); None starts a local Ray when none is running in this process.
        window_units: units per Ray dataset; each window builds the actor pool anew (the model is
            loaded once per actor per window), and bounds the driver's memory.
        n_unchanged: files the caller skipped as already done (only reported back).
        on_records: called with each unit's records after they are stored (progress).
        should_stop: polled between units; True stops the run (status ``"stopped"``; units in
            flight are dropped, not stored: a later run scores them).
    Returns:
        :class:`RayRunResult`.
    Raises:
        RayEngineError: Ray missing or unreachable, or an actor failed (the run's status is then
            left for the caller to record as ``"failed"``; every unit stored so far stays).
    """
    ray = import_ray()
    import ray.data as rd

    started_here = False
    if not ray.is_initialized():
        try:
            kwargs = {"include_dashboard": False, "log_to_driver": False}
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(**kwargs)
        except Exception as exc:  # ConnectionError, RuntimeError...: Ray's own message is one line
            where = f"the Ray cluster at {address}" if address else "a local Ray"
            raise RayEngineError(f"cannot start or reach {where}: {_one_line(exc)}. Check --ray-address "
                                 f"(e.g. 'auto' on a cluster node, or ray://HEAD:10001), or use --engine local.") \
                from None
        started_here = True
    ctx = rd.DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver shows one bar of its own (images, rate, ETA)
    ctx.print_on_execution_start = False
    ctx.execution_options.preserve_order = False

    cpus = resources_per_actor(ray, actors, actor_gpus, cpus_per_actor)
    threads = None if actor_gpus else max(1, int(cpus))
    result = RayRunResult(n_unchanged=n_unchanged)
    t0 = time.perf_counter()
    units = work_units(pending, unit_size)
    unit_id = 0
    try:
        while True:
            window = list(itertools.islice(units, window_units))
            if not window:
                result.status = "finished"
                break
            rows = [encode_unit(unit_id + i, u) for i, u in enumerate(window)]
            unit_id += len(window)
            n_files = {r["unit"]: len(u) for r, u in zip(rows, window)}
            del window
            ds = rd.from_items(rows, override_num_blocks=len(rows)).map_batches(
                ScoreUnits, batch_size=1, batch_format="numpy",
                compute=rd.ActorPoolStrategy(size=int(actors)),
                fn_constructor_kwargs={"factory": factory, "torch_threads": threads},
                num_cpus=cpus, num_gpus=float(actor_gpus) or None)
            if _stream_window(ds, n_files, store, run_id, result, on_records, should_stop):
                result.status = "stopped"
                break
    except RayEngineError:
        raise
    except Exception as exc:
        if type(exc).__name__ in ("KeyboardInterrupt",):
            raise
        raise RayEngineError(f"the Ray audit failed after {result.n_scored + result.n_errors} stored images: "
                             f"{_one_line(exc)}. Every unit stored so far is kept: run the same command again "
                             f"to go on, or use --engine local.") from None
    finally:
        result.seconds = time.perf_counter() - t0
        if started_here:
            ray.shutdown()
    return result


def _stream_window(ds, n_files: dict[int, int], store, run_id: int, result: RayRunResult,
                   on_records, should_stop) -> bool:
    """Consume one window's results, storing each unit whole as soon as all its rows arrived.
    Returns True when ``should_stop`` asked to stop."""
    partial: dict[int, list[AuditRecord]] = {}
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        for row in batch.to_pylist():
            unit = int(row["unit"])
            got = partial.setdefault(unit, [])
            got.append(record_from_row(row))
            if len(got) < n_files[unit]:
                continue
            records = partial.pop(unit)
            store.add(records, run_id)
            result.n_units += 1
            for r in records:
                if r.status == "error":
                    result.n_errors += 1
                else:
                    result.n_scored += 1
            if on_records is not None:
                on_records(records)
            if should_stop is not None and should_stop():
                return True
    if partial:
        raise RuntimeError(f"{len(partial)} work units came back incomplete")
    return False


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 400 else text[:400] + "..."


def default_progress(total: int | None = None):
    """A tqdm bar (images, rate, ETA) on stderr, and the ``on_records`` callback feeding it."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc="audit (ray)", unit="img", file=sys.stderr, dynamic_ncols=True,
               disable=sys.stderr is None or os.environ.get("DINOINSPECT_NO_PROGRESS") == "1")
    return bar, (lambda records: bar.update(len(records)))
