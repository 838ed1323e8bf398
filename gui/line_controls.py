"""The window's line part: each logged verdict to the MQTT broker, a trigger and a recipe switch from it.

:class:`LineControls` is mixed into :class:`gui.main_window.MainWindow` (it uses the window's
settings, recorder, recent recipes, message bar and job bookkeeping). The link itself is
:class:`gui.mqtt_bridge.MqttBridge` (``self.line``); everything here runs in the GUI thread.

* Verdicts: :meth:`_publish_verdict` is called by the window's result path *after* the defect-log
  row is written, so the message carries the row's id (``log_id``) and the log holds every verdict
  whatever happens to the broker. Threshold changes and live-source events are log rows, not
  verdicts: they are not published.
* Trigger: a trigger message calls the window's ``trigger_inspection(origin="mqtt", ...)`` (the
  triggered live source's software trigger); the answer on ``trigger/result`` says whether it was
  accepted, and the verdict comes back with its ``trigger_id``.
* Recipe switch: by name among the recent recipes and the recipes folder, or by model-file path;
  the answer on ``recipe/result`` comes once the recipe is loaded (or why not). While a live source
  runs (a triggered station), it is stopped, the recipe loaded, and the source started again with
  the same camera settings (the new recipe's value range); the answer comes once the camera is
  connected again (``ok`` false, saying why, when it does not come back; when the load fails the
  old recipe stays and its source is started again). Triggers in between are refused.
* State: the header's "Line (MQTT)" indicator (:class:`gui.station_status.StationStatus`: state,
  and the detail with the verdicts waiting in its tooltip), and the message bar when the broker is
  lost or back.
"""

from __future__ import annotations

from pathlib import Path

from engine.mqtt_link import MqttSettingsError, verdict_message

from .camera import new_trigger_id
from .defect_log import EVENT, LogEntry
from .locations import recipes_dir
from .mqtt_bridge import LineSettings, MqttBridge, load_line_settings, save_line_settings
from .recipes import MODEL_SUFFIX, recipe_name
from .run_results import InspectionResult


class LineControls:
    """MQTT methods of the main window (module docstring)."""

    def _connect_line(self) -> None:
        """Create the bridge, its status label, and connect (called once while the window starts)."""
        self.line = MqttBridge(self)
        self._line_state = "off"
        self._line_started_with: tuple[LineSettings, str] | None = None  # what the running link uses
        self.station_status.watch_broker(self.line)
        self.line.broker_state_changed.connect(self._on_broker_state)
        self.line.trigger_requested.connect(self._on_line_trigger)
        self.line.recipe_requested.connect(self._on_line_recipe)
        self._line_switch: dict | None = None  # a recipe switch while live, until answered
        self.worker.model_loaded.connect(self._line_recipe_loaded)
        self.live.ended.connect(self._line_switch_live_ended)
        self.live.camera_state_changed.connect(self._line_switch_camera)
        self.worker.error_occurred.connect(self._line_worker_error)
        self._start_line(load_line_settings(self.settings))

    @property
    def line_settings(self) -> LineSettings:
        return load_line_settings(self.settings)

    def set_line_settings(self, line: LineSettings) -> None:
        """Store the broker settings and (re)connect with them (or switch the link off).

        A link already running with these settings and this station name is kept as it is (its
        waiting verdicts with it): the Station dialog's OK does not restart it.
        """
        save_line_settings(self.settings, line)
        if self.line.enabled and self._line_started_with == (line, self.station):
            return
        self._start_line(line)

    def _start_line(self, line: LineSettings) -> None:
        left = self.line.stop()
        if left:  # they are in the defect log; the line will not get them
            note = (f"Line (MQTT) restarted with new settings: {left} verdict{'s' if left != 1 else ''} waiting for "
                    f"the broker not sent (they are in the defect log)")
            self.show_message("warning", note + ".")
            self.recorder.record_event(LogEntry(
                source="mqtt", file="", verdict=EVENT, station=self.station,
                recipe=self.info["recipe"] if self.info else "",
                backbone=self.info["backbone"] if self.info else "", message=note))
        self._line_started_with = (line, self.station)
        try:
            self.line.start(line, self.station, self.info["recipe"] if self.info else "")
        except MqttSettingsError as exc:
            self.show_message("error", f"Line (MQTT) not connected: {exc}")

    def _stop_line(self) -> None:
        left = self.line.stop()
        if left:
            print(f"warning: {left} verdict(s) not sent to the MQTT broker (they are in the defect log)")

    def _publish_verdict(self, r: InspectionResult) -> None:
        """Send the verdict of ``r`` (already in the defect log) to the broker, when the link is on."""
        if not self.line.enabled:
            return
        self.line.publish_verdict(verdict_message(
            station=self.station, recipe=self.info["recipe"] if self.info else "", time=r.time, file=r.name,
            score=r.score, threshold=r.threshold, verdict=r.verdict,
            latency_ms=r.latency_ms if r.score is not None else None, log_id=r.log_id,
            trigger_id=r.trigger_id, origin=r.origin if (r.trigger_id or r.triggered_at is not None) else None,
            triggered_at=r.triggered_at))

    # ------------------------------------------------------------------ events from the line
    def _on_broker_state(self, state: str, detail: str) -> None:
        if self._closing:
            return
        previous, self._line_state = self._line_state, state
        if state == "disconnected" and previous != "disconnected":
            self.show_message("warning", f"Line (MQTT): {detail}. Verdicts stay in the defect log and are sent "
                                         f"when the broker is back.")
        elif state == "connected" and previous == "disconnected":
            self.show_message("info", f"Line (MQTT): connected again ({detail}).")

    def _on_line_trigger(self, origin: str, trigger_id: str) -> None:
        """A trigger message: inspect now through the window's software trigger. A message without an
        id gets a new one here, so the answer and the verdict carry the same id."""
        trigger_id = trigger_id or new_trigger_id()
        ok = self.trigger_inspection(origin=origin, trigger_id=trigger_id)
        self.line.reply_trigger(trigger_id, bool(ok), "inspection triggered" if ok else
                                (self.message_bar.text or "no triggered live source is running"))

    def find_recipe(self, name_or_path: str) -> Path | None:
        """The model file of a recipe: a path to one, or a name among the recent recipes and the
        recipes folder (``<name>.dimodel``); None when there is none.

        Raises:
            OSError, RuntimeError, ValueError: ``name_or_path`` cannot be a path here (a name too long
                for the file system, ``~unknownuser/...``, a NUL character).
        """
        p = Path(name_or_path).expanduser()
        if p.suffix == MODEL_SUFFIX and p.is_file():
            return p
        for recent in self.recent.paths():
            if recipe_name(recent) == name_or_path:
                return Path(recent)
        candidate = recipes_dir() / f"{name_or_path}{MODEL_SUFFIX}"
        return candidate if "/" not in name_or_path and candidate.is_file() else None

    def _on_line_recipe(self, name_or_path: str) -> None:
        """A recipe message: open that recipe; the answer comes when it is loaded (or failed)."""
        try:
            path = self.find_recipe(name_or_path)
        except (OSError, RuntimeError, ValueError) as exc:  # a name the line made up is no reason to crash
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.line.reply_recipe(False, f"no recipe {name_or_path[:80]!r}: not a usable name or path ({why}). "
                                          f"Give a model-file path or a recipe name.")
            return
        if path is None:
            self.line.reply_recipe(False, f"no recipe {name_or_path!r}: give a model-file path or the name of a "
                                          f"recent recipe or of one in {recipes_dir()}")
            return
        if self.job is not None:
            self.line.reply_recipe(False, f"recipe {recipe_name(path)} not loaded: busy ({self.job})")
            return
        if self.live_running:  # stop it, load, start it again with the same camera settings
            self._line_switch = {"path": path, "config": self.live.config, "stage": "stopping"}
            self.show_message("info", f"Line (MQTT): switching to recipe {recipe_name(path)}: stopping the live "
                                      f"source, loading, starting it again.")
            self.stop_live()
            return
        self.open_recipe(path)

    # a recipe switch while live (module docstring): stopping -> loading -> restarting -> answered
    def _line_switch_live_ended(self, _reason: str) -> None:
        switch = self._line_switch
        if switch is None or self._closing:
            return
        if switch["stage"] == "stopping":
            switch["stage"] = "loading"
            self.open_recipe(switch["path"])
            if self.job != "load":  # could not start the load
                self._line_switch = None
                self.line.reply_recipe(False, f"recipe {recipe_name(switch['path'])} not loaded: "
                                              f"{self.message_bar.text}")
        elif switch["stage"] == "restarting":  # the source stopped again before it was connected
            self._line_switch_answer(False, "the live source did not start again")

    def _line_switch_camera(self, state: str, detail: str) -> None:
        switch = self._line_switch
        if switch is None or switch["stage"] != "restarting" or self._closing:
            return
        if state == "connected":
            self._line_switch_answer(True, f"live source started again ({detail})")
        elif state == "disconnected":
            self._line_switch_answer(False, f"the live source did not start again: {detail}")

    def _line_switch_restart(self) -> None:
        """The recipe loaded (or failed to): start the live source again with the same camera settings
        (the active recipe's value range)."""
        switch = self._line_switch
        switch["stage"] = "restarting"
        self.start_live(switch["config"])
        if not self.live_running:
            self._line_switch_answer(False, f"the live source did not start again: {self.message_bar.text}")

    def _line_switch_answer(self, live_ok: bool, live_note: str) -> None:
        switch, self._line_switch = self._line_switch, None
        loaded = switch.get("loaded")
        if loaded is None:  # the load failed: the old recipe is active, its live source back (or not)
            self.line.reply_recipe(False, f"could not open the recipe: {switch['error']}; {live_note}")
        else:
            self.line.reply_recipe(live_ok, f"recipe {loaded['recipe']} loaded from {loaded['path']}; {live_note}",
                                   loaded["recipe"])

    def _line_recipe_loaded(self, info: dict) -> None:
        if self._closing:
            return
        self.line.set_recipe(info["recipe"])
        if self._line_switch is not None and self._line_switch["stage"] == "loading":
            self._line_switch["loaded"] = info
            self._line_switch_restart()  # answered once the source is back
        elif self.line.pending_recipe is not None:
            self.line.reply_recipe(True, f"recipe {info['recipe']} loaded from {info['path']}", info["recipe"])

    def _line_worker_error(self, job: str, message: str) -> None:
        if job != "load" or self._closing:
            return
        if self._line_switch is not None and self._line_switch["stage"] == "loading":
            self._line_switch["error"] = message
            self._line_switch_restart()  # the old recipe stays: its live source goes on
        elif self.line.pending_recipe is not None:
            self.line.reply_recipe(False, f"could not open the recipe: {message}")
