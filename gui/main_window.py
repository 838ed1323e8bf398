"""The operator's main window: recipes, sources, the inspection view, threshold, counters and log.

Threads: the window (GUI thread) owns every widget, the defect log and the results of the run. The
model lives in :class:`gui.worker.InspectionWorker` in one long-lived QThread; frames come from
:class:`gui.camera.FrameGrabber` in another. They talk by queued signals only (the ``*_requested``
signals below go to the worker / grabber; their events come back).

Live path: the window holds at most one frame in flight to the model and one pending frame. A new
frame replaces the pending one (the replaced frame is counted as dropped), so the model always
gets the newest frame and never queues behind itself.

Threshold: the slider only re-judges stored image scores (:mod:`gui.run_results`) and re-colours
the current anomaly map; the model is never run again for it. Each log row keeps the threshold in
force when that part was judged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QSize, Qt, QThread, QThreadPool, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QLabel, QMainWindow, QProgressBar,
                               QPushButton, QSplitter, QTabWidget, QToolBar, QVBoxLayout, QWidget)

from engine.errors import ImageReadError, InspectError
from engine.images import IMAGE_SUFFIXES, list_images, read_image
from engine.overlay import normalise

from .camera import CameraConfig, FrameGrabber
from .camera_dialog import CameraDialog
from .counters_widget import CountersPanel
from .defect_log import DefectLog, DefectLogError, LogEntry
from .heatmap import contour_polyline
from .image_view_widget import InspectionView
from .locations import data_dir, open_settings
from .log_widget import DefectLogWidget
from .message_bar import MessageBar
from .nok_saver import SaveNokJob, SaveNokSignals, nok_paths
from .recipe_dialog import NewRecipeDialog
from .recipes import MODEL_SUFFIX, RecentRecipes, RecipeSpec, recipe_name
from .run_results import InspectionResult, RunResults, judge
from .settings_dialog import SettingsDialog
from .threshold_widget import ThresholdPanel
from .verdict_widget import VerdictPanel
from .worker import InspectionWorker

SHUTDOWN_WAIT_MS = 15000
LIVE_SOURCES = ("camera", "video")


class MainWindow(QMainWindow):
    """The application window (module docstring).

    Args:
        device: torch device for the model (``"auto"``: CUDA when present).
        restore_recipe: open the last used recipe at start-up.
    """

    fit_requested = Signal(int, object)
    load_requested = Signal(str)
    save_requested = Signal(str, object)
    paths_requested = Signal(int, list, str)
    frame_requested = Signal(object, str, str)
    live_requested = Signal(object)

    def __init__(self, device: str = "auto", restore_recipe: bool = True):
        super().__init__()
        self.settings = open_settings()
        self.recent = RecentRecipes(self.settings)
        self.log = DefectLog(data_dir() / "defect_log.sqlite")
        self.results = RunResults()
        self.info: dict | None = None  # active recipe (gui.worker.model_info)
        self.job: str | None = None  # "fit" | "load" | "batch" | "save" while the worker is busy
        self.job_id = 0  # number of the latest fit / batch request (for cancelling)
        self.current: int | None = None  # index of the shown result
        self._follow = True
        self._closing = False
        self._threshold: float | None = None
        self.live_running = False
        self.live_config: CameraConfig | None = None
        self._live_in_flight = False
        self._live_pending: tuple[np.ndarray, str, str] | None = None
        self.live_stats = {"captured": 0, "inspected": 0, "dropped": 0}
        self._save_signals = SaveNokSignals()
        self._save_signals.failed.connect(lambda msg: self.show_message("error", msg))

        self._build_ui()
        self._start_threads(device)
        self._restore_settings()
        self._update_header()
        self._update_actions()
        self.setAcceptDrops(True)
        last = self.settings.value("recipes/last", "")
        if restore_recipe and last and Path(last).is_file():
            self.open_recipe(last)

    # ================================================================== construction
    def _build_ui(self) -> None:
        self.setWindowTitle("DINOInspect")
        self.resize(1400, 900)
        self.message_bar = MessageBar()
        self.recipe_combo = QComboBox()
        self.recipe_combo.setMinimumWidth(220)
        self.recipe_combo.setToolTip("Active recipe (recently used ones listed)")
        self.header_label = QLabel()
        self.header_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        header = QHBoxLayout()
        header.setContentsMargins(8, 6, 8, 2)
        header.addWidget(QLabel("<b>Recipe</b>"))
        header.addWidget(self.recipe_combo)
        header.addWidget(self.header_label, 1)

        self.view = InspectionView()
        self.verdict_panel = VerdictPanel()
        self.threshold_panel = ThresholdPanel()
        self.counters_panel = CountersPanel()
        self.position_label = QLabel("")
        right = QWidget()
        right.setMinimumWidth(380)
        rl = QVBoxLayout(right)
        rl.setContentsMargins(6, 0, 0, 0)
        rl.addWidget(self.verdict_panel)
        rl.addWidget(self.position_label)
        rl.addWidget(self.threshold_panel, 2)
        rl.addWidget(self.counters_panel, 2)
        splitter = QSplitter()
        splitter.addWidget(self.view)
        splitter.addWidget(right)
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
        cl.addLayout(header)
        cl.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        self.status_label = QLabel("")
        self.progress_bar = QProgressBar()
        self.progress_bar.setMinimumWidth(300)
        self.progress_bar.setTextVisible(True)
        self.cancel_button = QPushButton("Cancel")
        self.statusBar().addWidget(self.status_label, 1)
        self.statusBar().addPermanentWidget(self.progress_bar)
        self.statusBar().addPermanentWidget(self.cancel_button)
        self.progress_bar.hide()
        self.cancel_button.hide()

        self._build_actions()
        self.recipe_combo.activated.connect(self._on_recipe_combo)
        self.cancel_button.clicked.connect(self.cancel_job)
        self.threshold_panel.threshold_changed.connect(self._on_threshold_changed)
        self.log_widget.message_posted.connect(self.show_message)
        self.log_widget.nok_saving_changed.connect(self._on_nok_saving_changed)
        self.view.opacity_changed.connect(lambda v: self.settings.setValue("view/opacity", v))
        self.view.overlay_toggled.connect(lambda on: self.settings.setValue("view/overlay", on))
        self.view.contours_toggled.connect(lambda on: self.settings.setValue("view/contours", on))
        self.tabs.currentChanged.connect(lambda _: self._update_actions())

    def _action(self, text: str, slot, shortcuts=(), tip: str = "") -> QAction:
        act = QAction(text, self)
        if shortcuts:
            act.setShortcuts([QKeySequence(s) for s in shortcuts])
        act.setToolTip(tip or text)
        act.triggered.connect(lambda _=False: slot())
        self.addAction(act)
        return act

    def _build_actions(self) -> None:
        self.new_recipe_action = self._action("New recipe…", self.new_recipe_dialog, ["Ctrl+N"],
                                              "Learn a recipe from a folder of good images")
        self.open_recipe_action = self._action("Open recipe…", self.open_recipe_dialog, ["Ctrl+O"])
        self.save_recipe_action = self._action("Save recipe as…", self.save_recipe_dialog, ["Ctrl+S"],
                                               "Save the active recipe with the current threshold")
        self.open_images_action = self._action("Open images…", self.open_images_dialog, ["Ctrl+I"])
        self.open_folder_action = self._action("Run folder…", self.open_folder_dialog, ["Ctrl+R"],
                                               "Inspect every image of a folder and its sub-folders (new run)")
        self.live_action = self._action("Live…", self.live_dialog, ["Ctrl+L"], "Camera or video file")
        self.stop_live_action = self._action("Stop live", self.stop_live, ["Ctrl+."])
        self.new_run_action = self._action("New run", self.new_run, [], "Clear counters, trend and results")
        self.prev_action = self._action("◀ Previous", lambda: self.step(-1), ["Left", "PgUp"])
        self.next_action = self._action("Next ▶", lambda: self.step(1), ["Right", "PgDown"])
        self.first_action = self._action("First", lambda: self.show_index(0), ["Home"])
        self.last_action = self._action("Last", lambda: self.show_index(len(self.results) - 1), ["End"])
        self.settings_action = self._action("Station…", self.settings_dialog)
        self.quit_action = self._action("Quit", self.close, ["Ctrl+Q"])

        bar = QToolBar("Main")
        bar.setObjectName("MainToolbar")
        bar.setIconSize(QSize(16, 16))
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for act in (self.new_recipe_action, self.open_recipe_action, None, self.open_images_action,
                    self.open_folder_action, self.live_action, self.stop_live_action, None, self.prev_action,
                    self.next_action, self.new_run_action, None, self.settings_action):
            bar.addSeparator() if act is None else bar.addAction(act)
        self.addToolBar(bar)

        menu = self.menuBar()
        recipe_menu = menu.addMenu("&Recipe")
        recipe_menu.addActions([self.new_recipe_action, self.open_recipe_action, self.save_recipe_action])
        self.recent_menu = recipe_menu.addMenu("Recent")
        recipe_menu.addSeparator()
        recipe_menu.addAction(self.quit_action)
        inspect_menu = menu.addMenu("&Inspect")
        inspect_menu.addActions([self.open_images_action, self.open_folder_action, self.live_action,
                                 self.stop_live_action, self.new_run_action])
        view_menu = menu.addMenu("&View")
        view_menu.addActions([self.prev_action, self.next_action, self.first_action, self.last_action])
        menu.addMenu("&Station").addAction(self.settings_action)

    def _start_threads(self, device: str) -> None:
        self.worker_thread = QThread(self)
        self.worker_thread.setObjectName("InspectionWorker")
        self.worker = InspectionWorker(device=device)
        self.worker.moveToThread(self.worker_thread)
        self.fit_requested.connect(self.worker.fit)
        self.load_requested.connect(self.worker.load_model)
        self.save_requested.connect(self.worker.save_model)
        self.paths_requested.connect(self.worker.inspect_paths)
        self.frame_requested.connect(self.worker.inspect_frame)
        self.worker.progress_changed.connect(self._on_progress)
        self.worker.model_loaded.connect(self._on_model_loaded)
        self.worker.fit_finished.connect(self._on_fit_finished)
        self.worker.result_ready.connect(self._on_result)
        self.worker.batch_finished.connect(self._on_batch_finished)
        self.worker.model_saved.connect(lambda p: self.show_message("info", f"Recipe saved to {p}"))
        self.worker.cancelled.connect(self._on_cancelled)
        self.worker.error_occurred.connect(self._on_worker_error)
        self.worker_thread.finished.connect(self.worker.deleteLater)
        self.worker_thread.start()

        self.grabber_thread = QThread(self)
        self.grabber_thread.setObjectName("FrameGrabber")
        self.grabber = FrameGrabber()
        self.grabber.moveToThread(self.grabber_thread)
        self.live_requested.connect(self.grabber.run)
        self.grabber.opened.connect(self._on_live_opened)
        self.grabber.frame_captured.connect(self._on_frame)
        self.grabber.failed.connect(lambda msg: self.show_message("error", msg))
        self.grabber.stopped.connect(self._on_live_stopped)
        self.grabber_thread.finished.connect(self.grabber.deleteLater)
        self.grabber_thread.start()

    def _restore_settings(self) -> None:
        s = self.settings
        geometry = s.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        self.view.set_opacity(float(s.value("view/opacity", 0.6)))
        self.view.overlay_check.setChecked(_as_bool(s.value("view/overlay", True)))
        self.view.contour_check.setChecked(_as_bool(s.value("view/contours", True)))
        self.log_widget.set_nok_saving(_as_bool(s.value("log/save_nok", False)),
                                       str(s.value("log/nok_folder", str(data_dir() / "nok_images"))))
        self._refresh_recent()

    # ================================================================== public operations
    @property
    def station(self) -> str:
        return str(self.settings.value("station/name", ""))

    def set_station(self, name: str) -> None:
        self.settings.setValue("station/name", name)
        self._update_header()

    @property
    def threshold(self) -> float | None:
        return self._threshold

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
        """Save the active recipe, with the threshold now in force, to ``path``."""
        if self.info is None or not self._can_start("save"):
            return
        self._begin_job("save", f"Saving recipe to {path}", progress=False)
        self.save_requested.emit(str(path), self._threshold)

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
            self._run_paths(paths, "folder", f"Inspecting {len(paths)} images of {folder}")

    def run_images(self, paths: list[str | Path]) -> None:
        """Inspect single image files, appended to the current run."""
        if paths and self._can_start("batch", need_model=True):
            self._run_paths([Path(p) for p in paths], "image", f"Inspecting {len(paths)} image(s)")

    def start_live(self, config: CameraConfig) -> None:
        """Start a camera or a video file; frames are inspected newest-first as the model allows."""
        if self.live_running or not self._can_start("live", need_model=True):
            return
        self._save_camera_config(config)
        self.live_config = config
        self.live_running = True
        self._live_pending = None
        self.live_stats = {"captured": 0, "inspected": 0, "dropped": 0}
        self.status_label.setText(f"Opening {config.label}…")
        self._update_actions()
        self.live_requested.emit(config)

    def stop_live(self) -> None:
        """Stop the live source; a frame waiting for the model is dropped."""
        if not self.live_running:
            return
        self.grabber.stop()
        if self._live_pending is not None:
            self._live_pending = None
            self.live_stats["dropped"] += 1

    def cancel_job(self) -> None:
        """Cancel the running fit or batch between steps."""
        if self.job in ("fit", "batch"):
            self.worker.cancel(self.job_id)
            self.status_label.setText("Cancelling…")

    def new_run(self) -> None:
        """Start a new run: clear results, counters, trend and the inspected-scores histogram."""
        self.results.clear()
        self.current = None
        self._follow = True
        self.view.clear()
        self.verdict_panel.show_verdict(None, None, None, None)
        self.position_label.setText("")
        self._refresh_run_views()

    def step(self, delta: int) -> None:
        """Show the previous (-1) or next (+1) result of the run."""
        if not len(self.results):
            return
        i = (len(self.results) - 1 if self.current is None else self.current) + delta
        self.show_index(min(max(i, 0), len(self.results) - 1))
        self._follow = self.current == len(self.results) - 1

    def show_index(self, i: int, image: np.ndarray | None = None) -> None:
        """Show result ``i`` of the run: image, overlay, contours and verdict at the current threshold.

        ``image``: its pixels when the caller has them (else kept ones, else read from the file).
        """
        if not 0 <= i < len(self.results):
            return
        self.current = i
        r = self.results[i]
        image = r.image if image is None else image
        if image is None and r.image_path is not None and r.error is None:
            try:
                image = read_image(r.image_path)
            except ImageReadError as exc:
                self.show_message("warning", str(exc))
        if r.error is not None:
            self.view.clear(f"Unreadable: {r.error}")
        else:
            unit, contours = self._map_display(r)
            self.view.show_result(image, r.image_hw, unit, contours, self._caption(r))
        self._show_verdict(r)
        self.position_label.setText(f"{i + 1} / {len(self.results)}   {_short_name(r.name)}")

    # ================================================================== dialogs
    def new_recipe_dialog(self) -> None:
        dlg = NewRecipeDialog(self, good_folder=str(self.settings.value("paths/last_good_folder", "")))
        if dlg.exec():
            spec = dlg.spec()
            self.settings.setValue("paths/last_good_folder", spec.good_folder)
            self.start_fit(spec)

    def open_recipe_dialog(self) -> None:
        start = self.info["path"] if self.info else str(data_dir() / "recipes")
        path, _ = QFileDialog.getOpenFileName(self, "Open recipe", start,
                                              f"DINOInspect models (*{MODEL_SUFFIX});;All files (*)")
        if path:
            self.open_recipe(path)

    def save_recipe_dialog(self) -> None:
        if self.info is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save recipe as", self.info["path"],
                                              f"DINOInspect models (*{MODEL_SUFFIX})")
        if path:
            self.save_recipe(path if path.endswith(MODEL_SUFFIX) else path + MODEL_SUFFIX)

    def open_images_dialog(self) -> None:
        start = str(self.settings.value("paths/last_folder", ""))
        patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        paths, _ = QFileDialog.getOpenFileNames(self, "Open images", start, f"Images ({patterns})")
        self.run_images(paths)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder to inspect", str(self.settings.value("paths/last_folder", "")))
        if folder:
            self.run_folder(folder)

    def live_dialog(self) -> None:
        dlg = CameraDialog(self._camera_config(), self)
        if dlg.exec():
            self.start_live(dlg.config())

    def settings_dialog(self) -> None:
        dlg = SettingsDialog(self.station, str(data_dir()), self)
        if dlg.exec():
            self.set_station(dlg.station())

    # ================================================================== worker events
    def _on_progress(self, done: int, total: int, stage: str) -> None:
        if self._closing:
            return
        self.progress_bar.setMaximum(max(total, 1))
        self.progress_bar.setValue(min(done, max(total, 1)))
        self.progress_bar.setFormat(f"{stage}: %v / %m")

    def _on_model_loaded(self, info: dict) -> None:
        if self._closing:
            return
        self.info = info
        self._threshold = info["threshold"]
        self.threshold_panel.set_calibration(info["threshold"], info["floor"], info["holdout_scores"],
                                             info.get("tail"))
        self.settings.setValue("recipes/last", str(Path(info["path"]).resolve()))
        self.recent.add(info["path"])
        self._refresh_recent()
        if self.job in ("fit", "load"):
            self.new_run()
        if self.job == "load":
            self.show_message("info", f"Recipe {info['recipe']} active ({info['backbone']})."
                                      + self._calibration_note(info))
        elif self.job == "fit" and self._calibration_note(info):
            self.show_message("warning", self.message_bar.text + self._calibration_note(info))
        if self.job in ("fit", "load", "save"):
            self._end_job()
        self._refresh_run_views()
        self._update_header()

    def _on_fit_finished(self, summary: dict) -> None:
        if self._closing:
            return
        skipped = f"; {len(summary['skipped'])} unreadable image(s) skipped" if summary["skipped"] else ""
        how = summary.get("calibration_description") or f"{summary['n_holdout']} held out to calibrate the threshold"
        self.show_message("info", f"Recipe {summary['recipe']} learned from {summary['n_fit']} good images "
                                  f"in {summary['seconds']:.1f} s{skipped}. Threshold: {how}. "
                                  f"Saved to {summary['path']}.")

    def _calibration_note(self, info: dict) -> str:
        """Warning when the threshold looks weak: it passes most synthetic defects, or too few good
        images were scored for the target false-reject rate."""
        if info.get("weak_warning"):
            return " Warning: " + info["weak_warning"][0].upper() + info["weak_warning"][1:]
        if info.get("guarantee_met") is not False or not info.get("target_frr") or info.get("method") != "conformal":
            return ""
        need = int(np.ceil(1 / info["target_frr"])) - 1
        return (f" Only {len(info['holdout_scores'])} calibration score(s), too few for a "
                f"{info['target_frr']:.0%} false-reject target (needs {need}): the threshold is their highest "
                f"score, so expect some good parts to be rejected; use more good images or adjust the threshold.")

    def _on_batch_finished(self, n: int, cancelled: bool) -> None:
        if self._closing:
            return
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
                "frame": "Live inspection failed", "save": "Could not save the recipe"}.get(job, "Error")
        self.show_message("error", f"{what}: {message}")
        if job == "frame":
            self._live_in_flight = False
            self.stop_live()
        elif job in ("fit", "load", "save") and self.job == job:
            self._end_job()

    def _on_result(self, r: InspectionResult) -> None:
        if self._closing:
            return
        thr = self._threshold
        verdict = judge(r.score, thr)
        entry = LogEntry(source=r.source, file=r.name, verdict=verdict, score=r.score,
                         score_normalised=self._normalised_score(r.score), threshold=thr, station=self.station,
                         recipe=self.info["recipe"] if self.info else "", backbone=self.info["backbone"] if self.info else "",
                         latency_ms=r.latency_ms if r.score is not None else None, message=r.error,
                         time=r.time.astimezone().isoformat(timespec="milliseconds"))
        if verdict == "NOK" and self.log_widget.save_nok_check.isChecked() and r.image is not None:
            img_path, ovl_path = nok_paths(self.log_widget.nok_folder, r.name, r.time)
            entry.nok_image, entry.nok_overlay = str(img_path), str(ovl_path)
            unit, _ = self._map_display(r, contours=False)
            QThreadPool.globalInstance().start(SaveNokJob(r.image, unit, img_path, ovl_path, self._save_signals))
        try:
            r.log_id = self.log.add(entry)
            self.log_widget.add_row(entry.row(r.log_id))
        except DefectLogError as exc:
            self.show_message("error", str(exc))
        if r.error is not None:
            self.show_message("warning", f"Unreadable image: {r.error}")
        image = r.image  # the run keeps pixels only for results without a file; show them now anyway
        index = self.results.add(r)
        if self._follow or self.current is None:
            self.show_index(index, image=image)
        self._refresh_run_views()
        if r.source in LIVE_SOURCES:
            self._live_in_flight = False
            self.live_stats["inspected"] += 1
            self._send_pending_frame()
            self._update_live_status()

    # ================================================================== live events
    def _on_live_opened(self, description: str) -> None:
        if not self._closing:
            self.status_label.setText(f"Live: {description}")

    def _on_frame(self, frame: np.ndarray, number: int) -> None:
        if self._closing or not self.live_running or self.live_config is None:
            return
        self.live_stats["captured"] += 1
        item = (frame, self.live_config.kind, f"{self.live_config.label} #{number}")
        if self._live_pending is not None:
            self.live_stats["dropped"] += 1
        self._live_pending = item
        self._send_pending_frame()

    def _send_pending_frame(self) -> None:
        if self._live_in_flight or self._live_pending is None or self._closing:
            return
        frame, source, name = self._live_pending
        self._live_pending = None
        self._live_in_flight = True
        self.frame_requested.emit(frame, source, name)

    def _on_live_stopped(self, reason: str) -> None:
        if self._closing:
            return
        self.live_running = False
        self._update_live_status(f" — {reason}")
        self._update_actions()

    def _update_live_status(self, suffix: str = "") -> None:
        if self.live_config is None:
            return
        s = self.live_stats
        self.status_label.setText(f"Live {self.live_config.label}: {s['captured']} frames, {s['inspected']} inspected, "
                                  f"{s['dropped']} dropped (newest frame first){suffix}")

    # ================================================================== view updates
    def _on_threshold_changed(self, value: float) -> None:
        """Re-judge the current image and the whole run at the new threshold (no model call)."""
        self._threshold = float(value)
        if self.current is not None and self.current < len(self.results):
            r = self.results[self.current]
            if r.error is None:
                unit, contours = self._map_display(r)
                self.view.update_map(unit, contours)
            self._show_verdict(r)
        self._refresh_run_views(histogram=False)
        self._update_header()

    def _refresh_run_views(self, histogram: bool = True) -> None:
        thr = self._threshold
        self.counters_panel.show_counts(self.results.counts(thr))
        self.counters_panel.show_trend(self.results.score_array(), thr)
        if histogram:
            self.threshold_panel.set_inspected_scores(self.results.scores())

    def _show_verdict(self, r: InspectionResult) -> None:
        verdict = judge(r.score, self._threshold)
        self.verdict_panel.show_verdict(verdict, r.score, self._normalised_score(r.score),
                                        r.latency_ms if r.score is not None else None)

    def _normalised_score(self, score: float | None) -> float | None:
        if score is None or self._threshold is None:
            return None
        return float(normalise(score, self._threshold, self._floor()))

    def _floor(self) -> float:
        floor = self.info.get("floor") if self.info else None
        return 0.0 if floor is None else float(floor)

    def _map_display(self, r: InspectionResult, contours: bool = True):
        """``(unit map, contour polyline)`` of a result at the current threshold."""
        if r.anomaly_map is None:
            return None, None
        if self._threshold is None:  # no threshold: stretch this map alone, contour at its mid-range
            lo, hi = float(r.anomaly_map.min()), float(r.anomaly_map.max())
            unit = normalise(r.anomaly_map, (lo + hi) / 2, lo)
            level = 0.5
        else:
            unit = normalise(r.anomaly_map, self._threshold, self._floor())
            level = self._contour_level()
        return unit, (contour_polyline(unit, r.image_hw, level=level) if contours else None)

    def _contour_level(self) -> float:
        """Contour level on the normalised map: the recipe's calibrated pixel threshold (raw score
        units, fixed when the image threshold moves), else the image threshold (0.5)."""
        pt = self.info.get("pixel_threshold") if self.info else None
        if pt is None or self._threshold is None:
            return 0.5
        return float(normalise(np.float32(pt), self._threshold, self._floor()))

    def _caption(self, r: InspectionResult) -> str:
        note = "" if r.anomaly_map is not None else "   — anomaly map no longer kept (older result)"
        return f"{r.source}: {r.name}   ({r.image_hw[1]}x{r.image_hw[0]} px){note}"

    def _update_header(self) -> None:
        station = self.station or "(station name not set)"
        if self.info is None:
            self.header_label.setText(f"<i>No recipe active — create one (New recipe) or open a model file.</i>"
                                      f" &nbsp; Station: {station}")
            self.setWindowTitle("DINOInspect — no recipe")
            return
        i = self.info
        thr = "none" if self._threshold is None else f"{self._threshold:.4g}"
        if self._threshold is not None and i["threshold"] is not None and self._threshold != i["threshold"]:
            thr += f" (calibrated {i['threshold']:.4g})"
        self.header_label.setText(
            f"Backbone: <b>{i['backbone']}</b> [{_short_source(i['weights_source'])}] &nbsp; scorer: {i['scorer']}"
            f" &nbsp; input {i['input_size']} px &nbsp; threshold {thr} &nbsp; Station: {station}")
        self.header_label.setToolTip(i["describe"] + "\n" + i["path"])
        self.setWindowTitle(f"DINOInspect — {i['recipe']} ({i['backbone']})")

    def _refresh_recent(self) -> None:
        paths = self.recent.paths()
        self.recipe_combo.blockSignals(True)
        self.recipe_combo.clear()
        for p in paths:
            self.recipe_combo.addItem(recipe_name(p), p)
            self.recipe_combo.setItemData(self.recipe_combo.count() - 1, p, Qt.ItemDataRole.ToolTipRole)
        if self.info is not None:
            idx = self.recipe_combo.findData(str(Path(self.info["path"]).resolve()))
            self.recipe_combo.setCurrentIndex(idx)
        else:
            self.recipe_combo.setCurrentIndex(-1)
            self.recipe_combo.setPlaceholderText("no recipe")
        self.recipe_combo.blockSignals(False)
        self.recent_menu.clear()
        for p in paths:
            act = self.recent_menu.addAction(recipe_name(p))
            act.setToolTip(p)
            act.triggered.connect(lambda _=False, p=p: self.open_recipe(p))
        self.recent_menu.setEnabled(bool(paths))

    def _on_recipe_combo(self, index: int) -> None:
        path = self.recipe_combo.itemData(index)
        if path and (self.info is None or Path(self.info["path"]).resolve() != Path(path)):
            self.open_recipe(path)

    # ================================================================== job bookkeeping
    def _can_start(self, what: str, need_model: bool = False) -> bool:
        if self.job is not None:
            self.show_message("warning", f"Busy ({self.job}): wait for it to finish or cancel it first.")
            return False
        if self.live_running and what != "live":
            self.show_message("warning", "Stop the live source first.")
            return False
        if need_model and self.info is None:
            self.show_message("warning", "No recipe is active: create one (New recipe) or open a model file first.")
            return False
        return True

    def _run_paths(self, paths: list[Path], source: str, text: str) -> None:
        self._follow = True
        self._begin_job("batch", text)
        self.job_id += 1
        self.paths_requested.emit(self.job_id, [str(p) for p in paths], source)

    def _begin_job(self, job: str, text: str, progress: bool = True) -> None:
        self.job = job
        self.status_label.setText(text + "…")
        self.progress_bar.setValue(0)
        self.progress_bar.setMaximum(0 if not progress else 1)
        self.progress_bar.setFormat("")
        self.progress_bar.show()
        self.cancel_button.setVisible(job in ("fit", "batch"))
        self._update_actions()

    def _end_job(self) -> None:
        self.job = None
        self.progress_bar.hide()
        self.cancel_button.hide()
        self._update_actions()

    def _update_actions(self) -> None:
        idle = self.job is None and not self.live_running
        have_model = self.info is not None
        for act in (self.new_recipe_action, self.open_recipe_action):
            act.setEnabled(idle)
        self.recipe_combo.setEnabled(idle)
        self.save_recipe_action.setEnabled(idle and have_model)
        for act in (self.open_images_action, self.open_folder_action, self.live_action):
            act.setEnabled(idle and have_model)
        self.stop_live_action.setEnabled(self.live_running)
        on_view = self.tabs.currentIndex() == 0
        for act in (self.prev_action, self.next_action, self.first_action, self.last_action):
            act.setEnabled(on_view)

    # ================================================================== settings
    def _camera_config(self) -> CameraConfig:
        s = self.settings
        return CameraConfig(kind=str(s.value("camera/kind", "camera")), device=int(s.value("camera/device", 0)),
                            width=int(s.value("camera/width", 0)), height=int(s.value("camera/height", 0)),
                            video_path=str(s.value("camera/video_path", "")),
                            loop=_as_bool(s.value("camera/loop", False)))

    def _save_camera_config(self, c: CameraConfig) -> None:
        for key, value in (("kind", c.kind), ("device", c.device), ("width", c.width), ("height", c.height),
                           ("video_path", c.video_path), ("loop", c.loop)):
            self.settings.setValue(f"camera/{key}", value)

    def _on_nok_saving_changed(self, enabled: bool, folder: str) -> None:
        self.settings.setValue("log/save_nok", enabled)
        self.settings.setValue("log/nok_folder", folder)

    # ================================================================== drag and drop
    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt API
        if _dropped_paths(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = _dropped_paths(event.mimeData())
        if not paths:
            return
        event.acceptProposedAction()
        if len(paths) == 1 and paths[0].is_dir():
            self.run_folder(paths[0])
            return
        files: list[Path] = []
        for p in paths:
            if p.is_dir():
                try:
                    files.extend(list_images(p))
                except InspectError as exc:
                    self.show_message("warning", str(exc))
            else:
                files.append(p)
        self.run_images(files)

    # ================================================================== shutdown
    def closeEvent(self, event) -> None:  # noqa: N802
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop work and threads (within seconds: work stops at its next step) and close the log."""
        if self._closing:
            return
        self._closing = True
        self.worker.cancel(self.job_id)
        self.grabber.stop()
        for thread in (self.grabber_thread, self.worker_thread):
            thread.quit()
        for thread in (self.grabber_thread, self.worker_thread):
            if not thread.wait(SHUTDOWN_WAIT_MS):
                print(f"warning: {thread.objectName()} did not stop within {SHUTDOWN_WAIT_MS / 1000:.0f} s")
        QThreadPool.globalInstance().waitForDone(SHUTDOWN_WAIT_MS)
        self.settings.sync()
        self.log.close()


def _as_bool(value) -> bool:
    """QSettings returns booleans from INI files as strings."""
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)


def _short_name(name: str) -> str:
    """``folder/file`` of a path (enough to tell test/good/000.png from test/broken/000.png)."""
    p = Path(name)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def _short_source(source: str) -> str:
    if source.startswith("package:"):
        return source.split(" (")[0]
    return Path(source).name if ("/" in source or "\\" in source) else source


def _dropped_paths(mime) -> list[Path]:
    """Local image files and folders among dropped URLs."""
    if not mime.hasUrls():
        return []
    out = []
    for url in mime.urls():
        if not url.isLocalFile():
            continue
        p = Path(url.toLocalFile())
        if p.is_dir() or p.suffix.lower() in IMAGE_SUFFIXES:
            out.append(p)
    return out
