"""The operator's main window: recipes, sources, the inspection view, threshold, counters and log.

Threads: the window (GUI thread) owns every widget, the defect log and the results of the run. The
model lives in :class:`gui.worker.InspectionWorker` in one long-lived QThread; frames come from
:class:`gui.live_session.LiveSession`'s grabber in another. They talk by queued signals only (the
``*_requested`` signals below go to the worker; their events come back).

One verdict everywhere (:mod:`gui.verdict`): the worker judges each part at the recipe's applied
threshold and the window logs that verdict with that threshold, never to be rewritten. The slider
only previews a threshold: the screen shows the preview (marked as such) and the log table a
preview-verdict column, with no model call. "Apply" has the worker write the new threshold into
the recipe's model file (history kept) and logs the change as an event row.

Runs: a run-state file (:mod:`gui.run_state`) is written when a run starts and removed when it
ends; one left behind by a killed program is reported at the next start.

Parts of the window live in their own modules: :class:`gui.recipe_bar.RecipeBar` (header, camera
and line connection state), :class:`gui.inspection_panel.InspectionPanel` (verdict, strip of the
last verdicts, threshold, counters), :class:`gui.inspection_recorder.InspectionRecorder` (log rows, NOK images),
:class:`gui.live_session.LiveSession` (camera / video) with :class:`gui.live_controls.LiveControls`
(its window side: start, stop, stale-source warnings), :class:`gui.line_controls.LineControls` (verdicts,
trigger and recipe switch over MQTT), :class:`gui.job_status.JobStatus` (status
bar) and :class:`gui.window_actions.WindowActions` (menus, toolbar, dialogs, drops).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QThread, QThreadPool, Signal
from PySide6.QtWidgets import QMainWindow, QSplitter, QTabWidget, QVBoxLayout, QWidget

from engine.errors import InspectError
from engine.images import list_images

from .defect_log import DefectLog, Preview
from .image_view_widget import InspectionView
from .inspection_panel import InspectionPanel
from .inspection_recorder import InspectionRecorder
from .job_status import JobStatus
from .line_controls import LineControls
from .live_controls import LiveControls
from .locations import as_bool, as_count, data_dir, open_settings
from .log_widget import DefectLogWidget
from .message_bar import MessageBar
from .recipe_bar import RecipeBar
from .recipes import RecentRecipes, RecipeSpec, calibration_note, recipe_name
from .run_browser import RunBrowser
from .run_results import InspectionResult, RunResults
from .run_state import RUN_STATE_FILE, RunState
from .verdict import Thresholds, fmt_threshold
from .window_actions import WindowActions, drop_targets, dropped_paths
from .worker import InspectionWorker

SHUTDOWN_WAIT_MS = 15000
LIVE_SOURCES = ("camera", "video", "basler")


class MainWindow(LiveControls, LineControls, QMainWindow):
    """The application window (module docstring).

    Args:
        device: torch device for the model (``"auto"``: CUDA when present).
        restore_recipe: open the last used recipe at start-up.
    """

    fit_requested = Signal(int, object)
    load_requested = Signal(str)
    save_requested = Signal(str)
    apply_requested = Signal(float, str)
    paths_requested = Signal(int, list, str)
    frame_requested = Signal(object, str, str, object)

    def __init__(self, device: str = "auto", restore_recipe: bool = True):
        super().__init__()
        self.settings = open_settings()
        self.recent = RecentRecipes(self.settings)
        self.log = DefectLog(data_dir() / "defect_log.sqlite")
        self.run_state = RunState(data_dir() / RUN_STATE_FILE)
        self.info: dict | None = None  # active recipe (gui.worker.model_info)
        self.job: str | None = None  # "fit" | "load" | "batch" | "save" | "apply" while the worker is busy
        self.job_id = 0  # number of the latest fit / batch request (for cancelling)
        self._closing = False
        self._startup_note = ""

        self._build_ui()
        self.recorder = InspectionRecorder(self.log, self.log_widget, lambda msg: self.show_message("error", msg))
        self.browser = RunBrowser(self.view, self.panel, self._warn)
        self.strip.result_clicked.connect(self.browser.select)
        self._start_threads(device)
        self._restore_settings()
        self._update_header()
        self._update_actions()
        self.setAcceptDrops(True)
        self._note_interrupted_run()
        last = self.settings.value("recipes/last", "")
        if restore_recipe and last and Path(last).is_file():
            self.open_recipe(last)

    # ================================================================== construction
    def _build_ui(self) -> None:
        self.setWindowTitle("DINOInspect")
        self.resize(1400, 900)
        self.message_bar = MessageBar()
        self.recipe_bar = RecipeBar()
        self.view = InspectionView()
        self.panel = InspectionPanel()
        self.verdict_panel, self.threshold_panel = self.panel.verdict_panel, self.panel.threshold_panel
        self.counters_panel, self.position_label = self.panel.counters_panel, self.panel.position_label
        self.strip, self.station_status = self.panel.verdict_strip, self.recipe_bar.station_status
        self.strip.length_changed.connect(lambda n: self.settings.setValue("view/strip_length", n))
        splitter = QSplitter()
        splitter.addWidget(self.view)
        splitter.addWidget(self.panel)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        self.log_widget = DefectLogWidget(self.log)
        self.tabs = QTabWidget()
        self.tabs.addTab(splitter, "Inspection")
        self.tabs.addTab(self.log_widget, "Defect log")

        central = QWidget()
        cl = QVBoxLayout(central)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(0)
        cl.addWidget(self.message_bar)
        cl.addWidget(self.recipe_bar)
        cl.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        self.job_status = JobStatus(self.statusBar(), self.cancel_job)
        self.status_label = self.job_status.label
        self.progress_bar, self.cancel_button = self.job_status.progress_bar, self.job_status.cancel_button
        self.actions = WindowActions(self)
        self.recipe_bar.recipe_chosen.connect(self.open_recipe)
        self.panel.preview_changed.connect(self._on_preview_changed)
        self.panel.apply_requested.connect(self.apply_threshold)
        self.log_widget.message_posted.connect(self.show_message)
        self.log_widget.nok_saving_changed.connect(self._on_nok_saving_changed)
        self.tabs.currentChanged.connect(lambda _: self._update_actions())

    def _start_threads(self, device: str) -> None:
        self.worker_thread = QThread(self)
        self.worker_thread.setObjectName("InspectionWorker")
        self.worker = InspectionWorker(device=device)
        self.worker.moveToThread(self.worker_thread)
        self.fit_requested.connect(self.worker.fit)
        self.load_requested.connect(self.worker.load_model)
        self.save_requested.connect(self.worker.save_model)
        self.apply_requested.connect(self.worker.apply_threshold)
        self.paths_requested.connect(self.worker.inspect_paths)
        self.frame_requested.connect(self.worker.inspect_frame)
        self.worker.progress_changed.connect(self._on_progress)
        self.worker.model_loaded.connect(self._on_model_loaded)
        self.worker.fit_finished.connect(self._on_fit_finished)
        self.worker.result_ready.connect(self._on_result)
        self.worker.batch_finished.connect(self._on_batch_finished)
        self.worker.model_saved.connect(lambda p: self.show_message("info", f"Recipe saved to {p}"))
        self.worker.threshold_applied.connect(self._on_threshold_applied)
        self.worker.cancelled.connect(self._on_cancelled)
        self.worker.error_occurred.connect(self._on_worker_error)
        self.worker_thread.finished.connect(self.worker.deleteLater)
        self.worker_thread.start()

        self._connect_live()
        self.station_status.watch_camera(self.live)  # LiveSession.camera_state_changed, where it has one
        self._connect_line()

    def _restore_settings(self) -> None:
        s = self.settings
        geometry = s.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        self.view.remember_in(s)
        self.strip.set_length(as_count(s.value("view/strip_length"), self.strip.length))
        self.log_widget.set_nok_saving(as_bool(s.value("log/save_nok", False)),
                                       str(s.value("log/nok_folder", str(data_dir() / "nok_images"))))
        self._refresh_recent()

    def _note_interrupted_run(self) -> None:
        """Say so when the last run never ended (the program was killed mid-run), then forget it."""
        self._startup_note = self.run_state.interrupted_note(lambda last_id: self.log.count(after_id=last_id)) or ""
        self._warn(self._startup_note)

    # ================================================================== public operations
    @property
    def station(self) -> str:
        return str(self.settings.value("station/name", ""))

    def set_station(self, name: str) -> None:
        self.settings.setValue("station/name", name)
        self._update_header()

    @property
    def thresholds(self) -> Thresholds:
        """Applied, calibrated and previewed thresholds of the active recipe (:mod:`gui.verdict`)."""
        return self.panel.thresholds

    @property
    def threshold(self) -> float | None:
        """The threshold in use on screen: the preview while there is one, else the applied one."""
        return self.thresholds.in_use

    @property
    def results(self) -> RunResults:
        """The results of the current run."""
        return self.browser.results

    @property
    def current(self) -> int | None:
        """Index of the result shown, or None."""
        return self.browser.current

    @property
    def busy(self) -> bool:
        return self.job is not None

    def show_message(self, level: str, text: str) -> None:
        self.message_bar.show_message(level, text)
        self.status_label.setText(text if len(text) < 120 else text[:117] + "…")

    def start_fit(self, spec: RecipeSpec) -> None:
        """Create a recipe: fit in the worker, with progress and Cancel; it becomes active when done."""
        if not self._can_start("fit"):
            return
        self._begin_job("fit", f"Learning recipe {spec.name} from {spec.good_folder}")
        self.job_id += 1
        self.fit_requested.emit(self.job_id, spec)

    def open_recipe(self, path: str | Path) -> None:
        """Load a recipe (model file) and make it active."""
        if not self._can_start("load"):
            return
        self._begin_job("load", f"Opening recipe {recipe_name(path)}", progress=False)
        self.load_requested.emit(str(path))

    def save_recipe(self, path: str | Path) -> None:
        """Save the active recipe, with its applied threshold (not a preview), to ``path``."""
        if self.info is None or not self._can_start("save"):
            return
        self._begin_job("save", f"Saving recipe to {path}", progress=False)
        self.save_requested.emit(str(path))

    def apply_threshold(self, value: float) -> None:
        """Make ``value`` the recipe's threshold: the worker writes it into the model file (the old
        one kept in its history), then the change is logged (:meth:`_on_threshold_applied`)."""
        if self.info is None or not self._can_start("apply"):
            return
        self.threshold_panel.set_applying(True)
        self._begin_job("apply", f"Applying threshold {fmt_threshold(value)} to recipe {self.info['recipe']}",
                        progress=False)
        self.apply_requested.emit(float(value), "operator")

    def run_folder(self, folder: str | Path) -> None:
        """Inspect every image of ``folder`` and its sub-folders (sorted by path) as a new run."""
        try:
            paths = list_images(folder, recursive=True)
        except InspectError as exc:
            self.show_message("error", str(exc))
            return
        self.settings.setValue("paths/last_folder", str(folder))
        if self._can_start("batch", need_model=True):
            self.new_run()
            self._run_paths(paths, "folder", str(folder), f"Inspecting {len(paths)} images of {folder}")
            if paths.skipped:  # nothing left out without a word (engine.listing)
                self.show_message("warning", f"{folder}: {paths.skipped_summary()}")

    def run_images(self, paths: list[str | Path]) -> None:
        """Inspect single image files, appended to the current run."""
        if paths and self._can_start("batch", need_model=True):
            self._run_paths([Path(p) for p in paths], "image", f"{len(paths)} image file(s)",
                            f"Inspecting {len(paths)} image(s)")

    def cancel_job(self) -> None:
        """Cancel the running fit or batch between steps."""
        if self.job in ("fit", "batch"):
            self.worker.cancel(self.job_id)
            self.status_label.setText("Cancelling…")

    def new_run(self) -> None:
        """Start a new run: clear results, counters, trend and the inspected-scores histogram."""
        self.browser.clear()

    def step(self, delta: int) -> None:
        """Show the previous (-1) or next (+1) result of the run."""
        self.browser.step(delta)

    def show_index(self, i: int) -> None:
        """Show result ``i`` of the run at the threshold in use."""
        self.browser.show(i)

    # ================================================================== worker events
    def _on_progress(self, done: int, total: int, stage: str) -> None:
        if not self._closing:
            self.job_status.step(done, total, stage)

    def _on_model_loaded(self, info: dict) -> None:
        if self._closing:
            return
        self.info = info
        self.panel.set_recipe(info)
        self.view.set_roi(info.get("roi"))  # outline of the recipe's region of interest, if any
        self.log_widget.set_preview(None)
        self.settings.setValue("recipes/last", str(Path(info["path"]).resolve()))
        self.recent.add(info["path"])
        self._refresh_recent()
        if self.job in ("fit", "load"):
            self.new_run()
        note = calibration_note(info)
        if self.job == "load":
            text = (f"Recipe {info['recipe']} active ({info['backbone']}, threshold {fmt_threshold(info['threshold'])})."
                    + note)
            level = "warning" if self._startup_note else "info"
            self.show_message(level, (self._startup_note + " " + text).strip())
            self._startup_note = ""
        elif self.job == "fit" and note:
            self.show_message("warning", self.message_bar.text + note)
        if self.job in ("fit", "load", "save"):
            self._end_job()
        self.panel.refresh_run(self.results)
        self._update_header()

    def _on_fit_finished(self, summary: dict) -> None:
        if self._closing:
            return
        skipped = f"; {len(summary['skipped'])} unreadable image(s) skipped" if summary["skipped"] else ""
        how = summary.get("calibration_description") or f"{summary['n_holdout']} held out to calibrate the threshold"
        self.show_message("info", f"Recipe {summary['recipe']} learned from {summary['n_fit']} good images "
                                  f"in {summary['seconds']:.1f} s{skipped}. Threshold: {how}. "
                                  f"Saved to {summary['path']}.")

    def _on_threshold_applied(self, info: dict, entry: dict) -> None:
        """The model file holds the new threshold: log the change, end the preview."""
        if self._closing:
            return
        old, new = entry["threshold"], entry["new_threshold"]
        self.info = info
        self.recorder.record_threshold_change(old, new, info, self.station, by=entry["replaced_by"])
        self.strip.add_event(f"threshold changed {fmt_threshold(old)} → {fmt_threshold(new)}")
        self.threshold_panel.set_applied(new)  # the preview ends (preview_changed redraws)
        if self.job == "apply":
            self._end_job()
        self.show_message("info", f"Threshold {fmt_threshold(old)} → {fmt_threshold(new)} applied to recipe "
                                  f"{info['recipe']} and saved in {info['path']} (the previous value is kept in its "
                                  f"history). Parts are judged at it from now on; earlier log rows keep their verdicts.")

    def _on_batch_finished(self, n: int, cancelled: bool) -> None:
        if self._closing:
            return
        self._warn(self.run_state.finish())
        if self.job == "batch":
            self._end_job()
        if cancelled:
            self.show_message("warning", f"Run cancelled after {n} image(s).")
        else:
            self.status_label.setText(f"Done: {n} image(s) inspected.")

    def _on_cancelled(self, job: str) -> None:
        if self._closing:
            return
        if job == "fit":
            active = f"; recipe {self.info['recipe']} stays active" if self.info else ""
            self.show_message("warning", f"Fit cancelled: no recipe written{active}.")
        if self.job == job:
            self._end_job()

    def _on_worker_error(self, job: str, message: str) -> None:
        if self._closing:
            return
        what = {"fit": "Fit failed", "load": "Could not open the recipe", "batch": "Inspection failed",
                "frame": "Live inspection failed", "save": "Could not save the recipe",
                "apply": "Could not apply the threshold"}.get(job, "Error")
        self.show_message("error", f"{what}: {message}")
        if job == "frame":
            self.live.frame_failed(message)
        elif job == "apply":
            self.threshold_panel.set_applying(False)
        if job in ("fit", "load", "save", "apply") and self.job == job:
            self._end_job()

    def _on_result(self, r: InspectionResult) -> None:
        if self._closing:
            return
        self.recorder.record(r, self.info, self.station, self.thresholds)
        self._publish_verdict(r)  # after the log row: it carries the row's id
        if r.error is not None:
            self.show_message("warning", f"Unreadable image: {r.error}")
        self.browser.add(r)
        if r.source in LIVE_SOURCES:
            self.live.result_arrived()

    # ================================================================== view updates
    def _on_preview_changed(self) -> None:
        """A threshold is previewed (or no longer): redraw the shown part, the run's counters and
        the log's preview column at the threshold in use (no model call)."""
        th = self.thresholds
        self.browser.redraw()
        self.log_widget.set_preview(Preview(th.recipe, th.preview) if th.previewing else None)
        self._update_header()

    def _update_header(self) -> None:
        self.setWindowTitle(self.recipe_bar.show_recipe(self.info, self.thresholds, self.station))

    def _refresh_recent(self) -> None:
        self.recipe_bar.set_recent(self.recent.paths(), self.info, self.actions.recent_menu, self.open_recipe)

    # ================================================================== job bookkeeping
    def _can_start(self, what: str, need_model: bool = False) -> bool:
        if self.job is not None:
            self.show_message("warning", f"Busy ({self.job}): wait for it to finish or cancel it first.")
            return False
        if self.live_running and what not in ("live", "apply"):  # the worker applies between two frames
            self.show_message("warning", "Stop the live source first.")
            return False
        if need_model and self.info is None:
            self.show_message("warning", "No recipe is active: create one (New recipe) or open a model file first.")
            return False
        return True

    def _run_paths(self, paths: list[Path], source: str, what: str, text: str) -> None:
        self.browser.follow = True
        self._begin_job("batch", text)
        self._run_started(source, what, total=len(paths))
        self.job_id += 1
        self.paths_requested.emit(self.job_id, [str(p) for p in paths], source)

    def _run_started(self, kind: str, what: str, total: int | None = None) -> None:
        self._warn(self.run_state.start(kind, what, self.info["recipe"] if self.info else "", self.log.last_id(),
                                        total))

    def _warn(self, message: str | None) -> None:
        if message:
            self.show_message("warning", message)

    def _begin_job(self, job: str, text: str, progress: bool = True) -> None:
        self.job = job
        self.job_status.begin(text, progress, cancellable=job in ("fit", "batch"))
        self._update_actions()

    def _end_job(self) -> None:
        self.job = None
        self.job_status.end()
        self._update_actions()

    def _update_actions(self) -> None:
        idle = self.job is None and not self.live_running
        self.recipe_bar.combo.setEnabled(idle)
        self.actions.update(idle, self.info is not None, self.live_running, self.tabs.currentIndex() == 0)

    def _on_nok_saving_changed(self, enabled: bool, folder: str) -> None:
        self.settings.setValue("log/save_nok", enabled)
        self.settings.setValue("log/nok_folder", folder)

    # ================================================================== drag and drop
    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt API
        if dropped_paths(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = dropped_paths(event.mimeData())
        if not paths:
            return
        event.acceptProposedAction()
        folder, files, warnings = drop_targets(paths)
        for w in warnings:
            self.show_message("warning", w)
        if folder is not None:
            self.run_folder(folder)
        else:
            self.run_images(files)

    # ================================================================== shutdown
    def closeEvent(self, event) -> None:  # noqa: N802
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop work and threads (within seconds: work stops at its next step), close the log; a
        run stopped this way ended normally (the run-state file goes)."""
        if self._closing:
            return
        self._closing = True
        self._stop_line()
        self.worker.cancel(self.job_id)
        self.worker_thread.quit()
        if not self.live.shutdown(SHUTDOWN_WAIT_MS):
            print(f"warning: the frame grabber did not stop within {SHUTDOWN_WAIT_MS / 1000:.0f} s")
        if not self.worker_thread.wait(SHUTDOWN_WAIT_MS):
            print(f"warning: the inspection worker did not stop within {SHUTDOWN_WAIT_MS / 1000:.0f} s")
        QThreadPool.globalInstance().waitForDone(SHUTDOWN_WAIT_MS)
        self._warn(self.run_state.finish())
        self.settings.sync()
        self.log.close()
