"""The window's commands: actions with their shortcuts, the toolbar and menus, the dialogs they
open before calling the window's public operations (``start_fit``, ``open_recipe``, ``run_folder``...),
and what dropped files mean."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QSize, Qt, QTimer, Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMainWindow, QToolBar

from engine.errors import InspectError
from engine.images import IMAGE_SUFFIXES, list_images

from .camera import load_camera_config
from .camera_dialog import CameraDialog
from .locations import data_dir
from .recipe_dialog import NewRecipeDialog
from .defect_log import EVENT, LogEntry
from .recipe_refit import refit_event_message, refit_spec
from .recipes import MODEL_SUFFIX
from .settings_dialog import SettingsDialog


class WindowActions:
    """Actions, toolbar and menus of ``window`` (a :class:`gui.main_window.MainWindow`)."""

    def __init__(self, window: QMainWindow):
        w = self.window = window
        self._refit_watch: _RefitWatch | None = None
        self.about_box = None  # the last About box opened
        self.new_recipe = self._action("New recipe…", self.new_recipe_dialog, ["Ctrl+N"],
                                       "Learn a recipe from a folder of good images")
        self.open_recipe = self._action("Open recipe…", self.open_recipe_dialog, ["Ctrl+O"])
        self.save_recipe = self._action("Save recipe as…", self.save_recipe_dialog, ["Ctrl+S"],
                                        "Save the active recipe (with its applied threshold) to another file")
        self.edit_roi = self._action("Edit region of interest…", self.edit_roi_dialog, [],
                                     "Draw the active recipe's region of interest again and re-fit it")
        self.open_images = self._action("Open images…", self.open_images_dialog, ["Ctrl+I"])
        self.open_folder = self._action("Run folder…", self.open_folder_dialog, ["Ctrl+R"],
                                        "Inspect every image of a folder and its sub-folders (new run)")
        self.live = self._action("Live…", self.live_dialog, ["Ctrl+L"], "Camera or video file")
        self.stop_live = self._action("Stop live", w.stop_live, ["Ctrl+."])
        self.trigger = self._action("Trigger", lambda: w.trigger_inspection("button"), [],
                                    "Inspect the next picture of the camera (software trigger; key F5)")
        self.new_run = self._action("New run", w.new_run, [], "Clear counters, trend and results")
        self.prev = self._action("◀ Previous", lambda: w.step(-1), ["Left", "PgUp"])
        self.next = self._action("Next ▶", lambda: w.step(1), ["Right", "PgDown"])
        self.first = self._action("First", lambda: w.show_index(0), ["Home"])
        self.last = self._action("Last", lambda: w.show_index(len(w.results) - 1), ["End"])
        self.settings = self._action("Station…", self.settings_dialog)
        self.quit = self._action("Quit", w.close, ["Ctrl+Q"])
        self.about = self._action("About DINOInspect…", self.about_dialog, [],
                                  "Version, libraries, device and the backbone weights with their SHA-256")
        self.show_roi = QAction("Region of interest outline", w, checkable=True, checked=True)
        self.show_roi.setToolTip("Outline the recipe's region of interest on every image (when it has one)")
        self.show_roi.toggled.connect(w.view.roi_check.setChecked)
        w.view.roi_check.toggled.connect(self.show_roi.setChecked)

        bar = QToolBar("Main")
        bar.setObjectName("MainToolbar")
        bar.setIconSize(QSize(16, 16))
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for act in (self.new_recipe, self.open_recipe, None, self.open_images, self.open_folder, self.live,
                    self.stop_live, self.trigger, None, self.prev, self.next, self.new_run, None, self.settings):
            bar.addSeparator() if act is None else bar.addAction(act)
        w.addToolBar(bar)

        menu = w.menuBar()
        recipe_menu = menu.addMenu("&Recipe")
        recipe_menu.addActions([self.new_recipe, self.open_recipe, self.save_recipe, self.edit_roi])
        self.recent_menu = recipe_menu.addMenu("Recent")
        recipe_menu.addSeparator()
        recipe_menu.addAction(self.quit)
        menu.addMenu("&Inspect").addActions([self.open_images, self.open_folder, self.live, self.stop_live,
                                             self.trigger, self.new_run])
        view_menu = menu.addMenu("&View")
        view_menu.addActions([self.prev, self.next, self.first, self.last])
        view_menu.addSeparator()
        view_menu.addAction(self.show_roi)
        menu.addMenu("&Station").addAction(self.settings)
        menu.addMenu("&Help").addAction(self.about)

    def update(self, idle: bool, have_model: bool, live_running: bool, on_view: bool) -> None:
        """Enable what can be done now: ``idle`` (no job, no live source), a recipe active, the
        inspection tab shown."""
        for act in (self.new_recipe, self.open_recipe):
            act.setEnabled(idle)
        self.save_recipe.setEnabled(idle and have_model)
        self.edit_roi.setEnabled(idle and have_model)
        for act in (self.open_images, self.open_folder, self.live):
            act.setEnabled(idle and have_model)
        self.stop_live.setEnabled(live_running)
        live = self.window.live
        self.trigger.setEnabled(live_running and live.triggered and live.config.trigger == "software")
        for act in (self.prev, self.next, self.first, self.last):
            act.setEnabled(on_view)

    # ------------------------------------------------------------------ dialogs
    def about_dialog(self) -> None:
        """Help › About…: :class:`gui.about_dialog.AboutDialog` (modeless; the weights' hashes fill in)."""
        from .about_dialog import AboutDialog

        dlg = AboutDialog(self.window)
        self.about_box = dlg  # the open box, for tests and to keep one reference
        dlg.show()

    def new_recipe_dialog(self) -> None:
        w = self.window
        dlg = NewRecipeDialog(w, good_folder=str(w.settings.value("paths/last_good_folder", "")))
        if dlg.exec():
            spec = dlg.spec()
            w.settings.setValue("paths/last_good_folder", spec.good_folder)
            w.start_fit(spec)

    def edit_roi_dialog(self) -> None:
        """Re-fit the active recipe with a new region: the New-recipe dialog filled with its fit
        settings (:mod:`gui.recipe_refit`), the region editor opened on top."""
        w = self.window
        if w.info is None:
            return
        dlg = NewRecipeDialog(w)
        try:
            dlg.prefill(*refit_spec(w.info["path"]))
        except InspectError as exc:
            dlg.deleteLater()
            w.show_message("error", str(exc))
            return
        QTimer.singleShot(0, dlg.edit_roi)
        if dlg.exec():
            before = dict(w.info)
            w.start_fit(dlg.spec())
            if w.job == "fit":  # started: the new fit's info is logged against this one
                if self._refit_watch is None:  # (the worker is made after the actions)
                    self._refit_watch = _RefitWatch(w)
                self._refit_watch.before = before

    def open_recipe_dialog(self) -> None:
        w = self.window
        start = w.info["path"] if w.info else str(data_dir() / "recipes")
        path, _ = QFileDialog.getOpenFileName(w, "Open recipe", start,
                                              f"DINOInspect models (*{MODEL_SUFFIX});;All files (*)")
        if path:
            w.open_recipe(path)

    def save_recipe_dialog(self) -> None:
        w = self.window
        if w.info is None:
            return
        path, _ = QFileDialog.getSaveFileName(w, "Save recipe as", w.info["path"],
                                              f"DINOInspect models (*{MODEL_SUFFIX})")
        if path:
            w.save_recipe(path if path.endswith(MODEL_SUFFIX) else path + MODEL_SUFFIX)

    def open_images_dialog(self) -> None:
        w = self.window
        patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        paths, _ = QFileDialog.getOpenFileNames(w, "Open images", str(w.settings.value("paths/last_folder", "")),
                                                f"Images ({patterns})")
        w.run_images(paths)

    def open_folder_dialog(self) -> None:
        w = self.window
        folder = QFileDialog.getExistingDirectory(w, "Folder to inspect", str(w.settings.value("paths/last_folder", "")))
        if folder:
            w.run_folder(folder)

    def live_dialog(self) -> None:
        w = self.window
        dlg = CameraDialog(load_camera_config(w.settings), w)
        if dlg.exec():
            w.start_live(dlg.config())

    def settings_dialog(self) -> None:
        w = self.window
        dlg = SettingsDialog(w.station, str(data_dir()), w, line=w.line_settings)
        if dlg.exec():
            w.set_station(dlg.station())
            w.set_line_settings(dlg.line_settings())

    def _action(self, text: str, slot, shortcuts=(), tip: str = "") -> QAction:
        act = QAction(text, self.window)
        if shortcuts:
            act.setShortcuts([QKeySequence(s) for s in shortcuts])
        act.setToolTip(tip or text)
        act.triggered.connect(lambda _=False: slot())
        self.window.addAction(act)
        return act


class _RefitWatch(QObject):
    """Logs a re-fit for a new region once its model is loaded. A QObject of the window, so the
    worker's signals reach it in the GUI thread (queued)."""

    def __init__(self, window: QMainWindow):
        super().__init__(window)
        self.before: dict | None = None  # the recipe's info while its re-fit runs
        window.worker.model_loaded.connect(self.after_fit)
        window.worker.error_occurred.connect(self.failed)
        window.worker.cancelled.connect(self.ended)

    @Slot(object)
    def after_fit(self, info: dict) -> None:
        """A fit finished (``model_loaded``): when it was a re-fit for a new region, log it (an event row
        and a strip marker: the applied threshold was replaced by the new calibration)."""
        before, self.before = self.before, None
        w = self.parent()
        if before is None or info["path"] != before["path"] or w._closing:
            return
        message = refit_event_message(before, info)
        w.recorder.record_event(LogEntry(source="operator", file=info["path"], verdict=EVENT,
                                         threshold=info["threshold"], station=w.station, recipe=info["recipe"],
                                         backbone=info["backbone"], message=message))
        w.strip.add_event(message)

    @Slot(str)
    def ended(self, job: str) -> None:
        if job == "fit":
            self.before = None  # failed or cancelled: the model file is the old one

    @Slot(str, str)
    def failed(self, job: str, _message: str) -> None:
        self.ended(job)


def dropped_paths(mime) -> list[Path]:
    """Local image files and folders among dropped URLs (a ``QMimeData``)."""
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


def drop_targets(paths: list[Path]) -> tuple[Path | None, list[Path], list[str]]:
    """What a drop asks for: ``(folder to run, None otherwise; image files to inspect; warnings)``.

    One folder alone is a folder run; otherwise folders contribute their images (not recursive).
    """
    if len(paths) == 1 and paths[0].is_dir():
        return paths[0], [], []
    files: list[Path] = []
    warnings: list[str] = []
    for p in paths:
        if p.is_dir():
            try:
                files.extend(list_images(p))
            except InspectError as exc:
                warnings.append(str(exc))
        else:
            files.append(p)
    return None, files, warnings
