"""The Ray engine of ``main.py audit`` (engine/audit/ray_engine.py) on a real local Ray.

A local Ray with 2 CPUs runs the audit of ~200 images with 2 actors; its store must hold exactly the
rows the local engine writes (score bits, verdict, grid bytes, error messages), also when the Ray
run is stopped half-way and resumed. Skips with the reason when Ray is not installed; fails instead
under ``CI=true`` (.ci/run installs the ``distributed`` extra).
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import texture

UNIT = 4  # files per work unit = the local engine's batch


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Ray is not installed under CI ({exc}): .ci/run installs the distributed extra")
        pytest.skip(f'Ray is not installed ({exc}): pip install -e ".[distributed]"')
    return ray


@pytest.fixture(scope="module")
def local_ray():
    """A real local Ray (2 CPUs, no dashboard), shut down after the module."""
    ray = _ray()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> tuple[Path, Path]:
    """~200 textures in three sub-folders (a few with a bright defect), a corrupt and a truncated file,
    and a small recipe (DINOv2 ViT-S/14 at 56 px, k-NN) fitted on 16 other textures."""
    from engine.model import InspectionModel

    base = tmp_path_factory.mktemp("ray_audit")
    rng = np.random.default_rng(7)
    root = base / "archive"
    for g, n in (("line1/lotA", 80), ("line1/lotB", 70), ("line2", 48)):
        folder = root / g
        folder.mkdir(parents=True)
        for i in range(n):
            img = texture(rng)
            if i % 9 == 4:
                img[20:30, 20:30] = [250, 30, 30]
            Image.fromarray(img).save(folder / f"{i:03d}.png")
    (root / "line2" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    good = (root / "line1/lotA/000.png").read_bytes()
    (root / "line2" / "truncated.png").write_bytes(good[: len(good) // 2])
    train = base / "train"
    train.mkdir()
    for i in range(16):
        Image.fromarray(texture(rng)).save(train / f"{i:02d}.png")
    model = InspectionModel.create(size=56, device="cpu")
    model.fit(sorted(train.iterdir()), folds=2, synthetic=4)
    model_path = base / "toy.dimodel"
    model.save(model_path)
    return root, model_path


class StopAfter(threading.Event):
    """A stop flag that turns set at its ``n``-th look (the engines look once per stored unit): a
    Ctrl-C arriving after ``n`` units."""

    def __init__(self, n: int):
        super().__init__()
        self.looks, self.n = 0, n

    def is_set(self) -> bool:
        self.looks += 1
        return self.looks >= self.n or super().is_set()


def _rows(store_dir: Path) -> dict[str, tuple]:
    """path -> every column that must not depend on the engine (ids, run ids, times and latency do)."""
    con = sqlite3.connect(store_dir / "audit.sqlite")
    try:
        return {r[0]: r[1:] for r in con.execute(
            "SELECT path, root, rel, grp, size, mtime_ns, fast_hash, status, score, verdict, error, height, width, "
            "anomaly_grid FROM images")}
    finally:
        con.close()


def test_ray_audit_stores_the_local_engines_records_exactly_and_resumes(local_ray, archive, tmp_path):
    from engine.audit.ray_engine import run_audit_ray
    from engine.audit.runner import run_audit
    from engine.audit.scoring import RecipeScorer
    from engine.audit.store import AuditStore

    root, model_path = archive
    scorer = RecipeScorer(model_path, device="cpu", batch_size=UNIT)
    local = run_audit(scorer, [root], tmp_path / "local", batch_size=UNIT, progress=False)
    assert local.status == "finished" and local.n_scored + local.n_errors == 200

    # Ray, 2 actors: stopped after 10 units, then run again (resumed)
    factory = functools.partial(RecipeScorer, str(model_path), device="cpu", batch_size=UNIT)
    kw = dict(meta=scorer.meta(), roots=[root], out_dir=tmp_path / "ray", batch_size=UNIT, progress=False, actors=2)
    first = run_audit_ray(factory, stop=StopAfter(10), **kw)
    assert first.status == "stopped" and first.n_scored + first.n_errors == 10 * UNIT
    second = run_audit_ray(factory, **kw)
    assert second.status == "finished"
    assert second.n_unchanged == 10 * UNIT  # what the first run stored is not scored again...
    assert second.n_scored + second.n_errors == 200 - 10 * UNIT  # ...and nothing is lost
    with AuditStore.open(tmp_path / "ray") as store:
        assert [(r["engine"], r["status"]) for r in store.runs()] == [("ray", "stopped"), ("ray", "finished")]

    want, got = _rows(tmp_path / "local"), _rows(tmp_path / "ray")
    assert len(want) == 200 and sorted(got) == sorted(want)
    differ = [p for p in want if got[p] != want[p]]  # score as float64 bits, grid as bytes, errors as text
    assert not differ, f"{len(differ)} rows differ, e.g. {differ[0]}: local {want[differ[0]]} ray {got[differ[0]]}"
    errors = {Path(p).name: row[9] for p, row in want.items() if row[6] == "error"}
    assert set(errors) == {"corrupt.png", "truncated.png"}
    assert all(name in message for name, message in errors.items())  # each message names its file
    assert {row[8] for row in want.values() if row[6] == "scored"} == {"OK", "NOK"}
