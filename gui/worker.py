"""The inspection worker: the one object that owns the model, living in its own QThread.

The window never touches the model. It asks the worker for work through queued signals connected
to the worker's slots (:meth:`fit`, :meth:`load_model`, :meth:`inspect_paths`,
:meth:`inspect_frame`, :meth:`save_model`, :meth:`apply_threshold`) and hears back through the worker's signals, all
snake_case past-tense events that carry plain data (numpy arrays, dicts, dataclasses):

* ``progress_changed(done, total, stage)`` during fit and batch runs;
* ``model_loaded(info)`` when a recipe becomes active (after fit or load); ``info`` is
  :func:`model_info`'s dict;
* ``fit_finished(summary)``, ``result_ready(InspectionResult)``, ``batch_finished(n, cancelled)``,
  ``model_saved(path)``;
* ``threshold_applied(info, entry)`` when a new threshold is in the model and its file
  (``entry``: the history entry of :meth:`engine.model.InspectionModel.apply_threshold`);
* ``cancelled(job)`` and ``error_occurred(job, message)``, where ``job`` is ``"fit"``, ``"load"``,
  ``"batch"``, ``"frame"``, ``"save"`` or ``"apply"``.

Every result carries the verdict the model gave and the threshold it gave it at; since the
threshold changes only here (:meth:`apply_threshold`, between two images), each result is judged at
exactly one threshold, the one logged with it.

Cancelling is the one call made directly from the GUI thread: the worker's event loop is busy
during a job, so a queued signal would arrive too late. Every fit / batch request carries a job
number chosen by the window; :meth:`cancel` records the number to cancel (a plain int assignment,
atomic in Python), and the engine's progress callback, called between images, batches and
coreset steps, raises :class:`engine.errors.Cancelled` when it names the running job. A cancel
that arrives before its job starts still cancels it, and one that arrives after it ended cannot
touch the next job. A cancelled fit leaves the previous recipe active and writes no file.
"""

from __future__ import annotations

import traceback
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from engine.app_info import cli_command
from engine.calibration import weak_threshold_warning
from engine.errors import Cancelled, DatasetError, InspectError

from .heatmap import shrink_map
from .recipes import RecipeSpec, recipe_name
from .run_results import InspectionResult

MIN_GOOD_IMAGES = 5
"""Fewest good images for a recipe: each is scored by cross-fitting to calibrate the threshold."""


def model_info(model, path: str | Path) -> dict:
    """Plain-data description of a loaded model for the window (recipe, backbone, threshold...)."""
    calib = model.calibration or {}
    return {
        "recipe": recipe_name(path),
        "path": str(path),
        "backbone": model.backbone.name,
        "weights_source": str(model.backbone.weights_source),
        "scorer": model.scorer.name,
        "input_size": int(model.pre.size),
        "value_range": model.value_range.to_json(),  # live frames deeper than 8 bits are mapped by it
        "threshold": None if model.threshold is None else float(model.threshold),
        "calibrated_threshold": calib.get("threshold"),
        "threshold_history": list(calib.get("history") or []),
        "floor": calib.get("floor"),
        "display_range": model.display_range,
        "top_fraction": float(model.top_fraction),
        "holdout_scores": [float(s) for s in calib.get("holdout_scores", [])],
        "tail": calib.get("tail"),
        "pixel_threshold": calib.get("pixel_threshold"),
        "target_frr": calib.get("target_frr"),
        "guarantee_met": calib.get("guarantee_met"),
        "method": calib.get("method"),
        "calibration_description": calib.get("description", ""),
        "weak_warning": weak_threshold_warning(
            calib, remedy="Lower the threshold with the slider while watching known defective parts, or "
                          f"recalibrate with a few labelled defects ({cli_command()} calibrate)."),
        "n_fit": (model.provenance or {}).get("n_fit"),
        "describe": model.describe(),
        "roi": None if getattr(model, "roi", None) is None else model.roi.to_json(),
    }


class InspectionWorker(QObject):
    """Owns the :class:`engine.model.InspectionModel` (module docstring)."""

    progress_changed = Signal(int, int, str)
    model_loaded = Signal(object)
    fit_finished = Signal(object)
    result_ready = Signal(object)
    batch_finished = Signal(int, bool)
    model_saved = Signal(str)
    threshold_applied = Signal(object, object)
    cancelled = Signal(str)
    error_occurred = Signal(str, str)

    def __init__(self, device: str = "auto"):
        super().__init__()
        self._device = device
        self._model = None
        self._model_path: str | None = None
        self._job_id = 0
        self._cancel_id = -1

    # ------------------------------------------------------------------ called from the GUI thread
    def cancel(self, job_id: int) -> None:
        """Ask job ``job_id`` (running or still queued) to stop at its next step (thread-safe)."""
        self._cancel_id = job_id

    # ------------------------------------------------------------------ helpers (worker thread)
    def _progress(self, done: int, total: int, stage: str) -> None:
        if self._cancel_id == self._job_id:
            raise Cancelled("cancelled by the user")
        self.progress_changed.emit(int(done), int(total), str(stage))

    def _fail(self, job: str, exc: BaseException) -> None:
        if isinstance(exc, InspectError):
            self.error_occurred.emit(job, str(exc))
        else:
            traceback.print_exc()
            self.error_occurred.emit(job, f"unexpected error: {type(exc).__name__}: {exc}")

    def _require_model(self):
        if self._model is None:
            raise InspectError("no recipe is active: create one (Recipe > New recipe) or open a model file.")
        return self._model

    def _result(self, source: str, name: str, pred, image: np.ndarray, path: str | None) -> InspectionResult:
        return InspectionResult(source=source, name=name, score=float(pred.score),
                                anomaly_map=shrink_map(pred.anomaly_map), image_hw=tuple(image.shape[:2]),
                                latency_ms=float(pred.latency_ms), image_path=path, image=image,
                                threshold=self._model.threshold, verdict=pred.verdict,
                                value_range=self._model.value_range)

    # ------------------------------------------------------------------ slots (worker thread)
    @Slot(int, object)
    def fit(self, job_id: int, spec: RecipeSpec) -> None:
        """Create a model from ``spec``, fit it on the good folder, save it, make it active."""
        from engine.images import list_images
        from engine.model import InspectionModel
        from engine.roi import RegionOfInterest

        self._job_id = job_id
        try:
            paths = list_images(spec.good_folder)
            if spec.max_images:
                paths = paths[: spec.max_images]
            if len(paths) < MIN_GOOD_IMAGES:
                raise DatasetError(
                    f"{spec.good_folder}: {len(paths)} good image(s); a recipe needs at least {MIN_GOOD_IMAGES} "
                    f"(some are held out to calibrate the threshold). Add more good images.")
            self._progress(0, len(paths), "loading backbone")
            model = InspectionModel.create(backbone=spec.backbone, scorer=spec.scorer, size=spec.size,
                                           device=self._device, scorer_params=spec.scorer_params,
                                           batch_size=spec.batch_size)
            model.roi = RegionOfInterest.from_json(spec.roi, f"recipe {spec.name}: region of interest")
            report = model.fit(paths, progress=self._progress, holdout_fraction=spec.holdout_fraction,
                               target_frr=spec.target_frr)
            self._progress(len(paths), len(paths), "saving")
            model.save(spec.model_path)
        except Cancelled:
            self.cancelled.emit("fit")
            return
        except Exception as exc:  # noqa: BLE001 - every failure is shown once, in the window
            self._fail("fit", exc)
            return
        self._model, self._model_path = model, spec.model_path
        self.fit_finished.emit({"recipe": spec.name, "path": spec.model_path, "n_images": report.n_images,
                                "n_fit": report.n_fit, "n_holdout": report.n_holdout, "skipped": report.skipped,
                                "calibration_description": (report.calibration or {}).get("description", ""),
                                "seconds": report.total_seconds})
        self.model_loaded.emit(model_info(model, spec.model_path))

    @Slot(str)
    def load_model(self, path: str) -> None:
        """Read a model file and make it the active recipe."""
        from engine.model import InspectionModel

        try:
            model = InspectionModel.load(path, device=self._device)
        except Exception as exc:  # noqa: BLE001
            self._fail("load", exc)
            return
        self._model, self._model_path = model, path
        self.model_loaded.emit(model_info(model, path))

    @Slot(str)
    def save_model(self, path: str) -> None:
        """Write the active model (with its applied threshold) to ``path``; it becomes the recipe's file."""
        try:
            model = self._require_model()
            model.save(path)
        except Exception as exc:  # noqa: BLE001
            self._fail("save", exc)
            return
        self._model_path = path
        self.model_saved.emit(path)
        self.model_loaded.emit(model_info(model, path))

    @Slot(float, str)
    def apply_threshold(self, threshold: float, by: str) -> None:
        """Make ``threshold`` the model's and rewrite its file (atomically: a temporary file renamed
        over it), the previous threshold kept in its calibration history. When the file cannot be
        written the model keeps its previous threshold and ``error_occurred("apply", ...)`` says why."""
        try:
            model = self._require_model()
            before = (model.threshold, model.calibration)
            entry = model.apply_threshold(threshold, by=by)
            try:
                model.save(self._model_path)
            except Exception as exc:  # noqa: BLE001 - OSError, SafetensorError...: the file was not replaced
                model.threshold, model.calibration = before
                raise InspectError(f"{self._model_path}: cannot write the recipe ({exc}); the threshold stays "
                                   f"{'none' if before[0] is None else f'{before[0]:.6g}'}. Check that the file and its folder are writable, or save "
                                   f"the recipe elsewhere (Recipe > Save recipe as) and apply there.") from exc
        except Exception as exc:  # noqa: BLE001
            self._fail("apply", exc)
            return
        self.threshold_applied.emit(model_info(model, self._model_path), entry)

    @Slot(int, list, str)
    def inspect_paths(self, job_id: int, paths: list, source: str) -> None:
        """Inspect image files in batches; one ``result_ready`` per file, then ``batch_finished``."""
        self._job_id = job_id
        n = 0
        try:
            model = self._require_model()
            total = len(paths)
            self._progress(0, total, "inspect")
            for path, pred, image, err in model.predict_paths(paths, progress=self._progress):
                if err is not None:
                    self.result_ready.emit(InspectionResult(source=source, name=str(path), score=None,
                                                            image_path=str(path), error=err))
                else:
                    self.result_ready.emit(self._result(source, str(path), pred, image, str(path)))
                n += 1
        except Cancelled:
            self.batch_finished.emit(n, True)
            return
        except Exception as exc:  # noqa: BLE001
            self._fail("batch", exc)
            self.batch_finished.emit(n, False)
            return
        self.batch_finished.emit(n, False)

    @Slot(object, str, str, object)
    def inspect_frame(self, frame: np.ndarray, source: str, name: str, trigger=None) -> None:
        """Inspect one ``(H, W, 3) uint8`` RGB frame (camera, video, or an image in memory);
        ``trigger`` (a :class:`gui.camera.Trigger` or None) is carried into the result."""
        try:
            model = self._require_model()
            pred = model.predict([frame])[0]
        except Exception as exc:  # noqa: BLE001
            self._fail("frame", exc)
            return
        result = self._result(source, name, pred, frame, None)
        if trigger is not None:
            result.trigger_id, result.triggered_at, result.origin = (trigger.trigger_id, trigger.triggered_at,
                                                                     trigger.origin)
        self.result_ready.emit(result)
