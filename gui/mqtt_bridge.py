"""The app's side of the line link: :class:`engine.mqtt_link.MqttLink` behind Qt signals.

paho-mqtt calls the link from its own network thread; :class:`MqttBridge` turns each call into a
signal queued to the GUI thread, where it emits its public signals. So every slot connected to
``broker_state_changed``, ``trigger_requested`` or ``recipe_requested`` runs in the GUI thread and
may touch widgets. The broker settings (:class:`LineSettings`) live in the app's QSettings under
``mqtt/``; the station's name is the window's own.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QObject, QSettings, Qt, Signal

from engine.mqtt_link import DEFAULT_PREFIX, MqttLink

from .locations import as_bool


@dataclass
class LineSettings:
    """How the station reaches the line's MQTT broker (module docstring)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 1883
    topic_prefix: str = DEFAULT_PREFIX


def load_line_settings(settings: QSettings) -> LineSettings:
    """The stored broker settings (defaults where none or unreadable)."""
    d = LineSettings()
    try:
        port = int(settings.value("mqtt/port", d.port))
    except (TypeError, ValueError):
        port = d.port
    return LineSettings(enabled=as_bool(settings.value("mqtt/enabled", d.enabled)),
                        host=str(settings.value("mqtt/host", d.host)), port=port,
                        topic_prefix=str(settings.value("mqtt/topic_prefix", d.topic_prefix)))


def save_line_settings(settings: QSettings, s: LineSettings) -> None:
    settings.setValue("mqtt/enabled", s.enabled)
    settings.setValue("mqtt/host", s.host)
    settings.setValue("mqtt/port", s.port)
    settings.setValue("mqtt/topic_prefix", s.topic_prefix)


class MqttBridge(QObject):
    """One :class:`~engine.mqtt_link.MqttLink` at a time, its events as GUI-thread signals.

    Signals:
        broker_state_changed(state, detail): ``"connected" | "connecting" | "disconnected" | "off"``
            and a one-line detail (waiting verdicts included).
        backlog_changed(n): verdicts waiting for the broker (:attr:`engine.mqtt_link.MqttLink.waiting`)
            changed to ``n`` (the link says so whenever a verdict is queued, acknowledged or dropped).
        trigger_requested(origin, trigger_id): a valid trigger message (``origin`` is ``"mqtt"``,
            ``trigger_id`` ``""`` when the message had none).
        recipe_requested(name_or_path): a valid recipe message; answer with :meth:`reply_recipe`.
            One at a time: a recipe message arriving while one is pending is refused at once
            ("busy loading A") and the pending one keeps its answer.
    """

    broker_state_changed = Signal(str, str)
    trigger_requested = Signal(str, str)
    recipe_requested = Signal(str)
    backlog_changed = Signal(int)

    _state_from_link = Signal(int, str, str)  # (link generation, ...): late calls of a stopped link are ignored
    _trigger_from_link = Signal(int, object)
    _recipe_from_link = Signal(int, str, object)
    _backlog_from_link = Signal(int, int)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.link: MqttLink | None = None
        self.state, self.detail = "off", "MQTT off"
        self._pending_recipe: tuple[str, str | None] | None = None  # (requested, request id)
        self._generation = 0
        self.backlog = 0
        queued = Qt.ConnectionType.QueuedConnection
        self._state_from_link.connect(self._on_state, queued)
        self._trigger_from_link.connect(self._on_trigger, queued)
        self._recipe_from_link.connect(self._on_recipe, queued)
        self._backlog_from_link.connect(self._on_backlog, queued)

    @property
    def enabled(self) -> bool:
        return self.link is not None

    def start(self, settings: LineSettings, station: str, recipe: str = "", **link_options) -> None:
        """(Re)connect with ``settings`` (stops the link first); ``settings.enabled`` False = off.

        Raises:
            engine.mqtt_link.MqttSettingsError: a setting cannot be used (the state stays ``off``).
        """
        self.stop()
        if not settings.enabled:
            return
        self._generation += 1
        g = self._generation
        self.link = MqttLink(settings.host, settings.port, station=station, topic_prefix=settings.topic_prefix,
                             on_state=lambda state, detail: self._state_from_link.emit(g, state, detail),
                             on_trigger=lambda tid: self._trigger_from_link.emit(g, tid),
                             on_recipe=lambda name, rid: self._recipe_from_link.emit(g, name, rid),
                             on_backlog=lambda n: self._backlog_from_link.emit(g, n), **link_options)
        self.link.recipe = recipe
        self.link.start()

    def stop(self) -> int:
        """Disconnect (status ``offline``); returns the verdicts that were still waiting (they are
        in the defect log)."""
        if self.link is None:
            return 0
        link, self.link = self.link, None
        self._generation += 1
        left = link.stop()
        self._pending_recipe = None
        self.state, self.detail = link.state, link.detail
        self.broker_state_changed.emit(link.state, link.detail)
        self._set_backlog(0)
        return left

    def publish_verdict(self, message: dict) -> None:
        """Send one verdict message (:func:`engine.mqtt_link.verdict_message`) when enabled."""
        if self.link is not None:
            self.link.publish_verdict(message)

    def set_recipe(self, name: str) -> None:
        """The active recipe, for the retained status message."""
        if self.link is not None:
            self.link.set_recipe(name)

    @property
    def pending_recipe(self) -> str | None:
        """The recipe asked for by the last recipe message not yet answered."""
        return None if self._pending_recipe is None else self._pending_recipe[0]

    def reply_recipe(self, ok: bool, message: str, recipe: str | None = None) -> None:
        """Answer the pending recipe message (or one for ``recipe``) on ``recipe/result``."""
        requested, rid = self._pending_recipe or (recipe or "", None)
        self._pending_recipe = None
        if self.link is not None:
            self.link.reply_recipe(recipe or requested, ok, message, rid)

    def reply_trigger(self, trigger_id: str, ok: bool, message: str) -> None:
        """Answer a trigger message on ``trigger/result``."""
        if self.link is not None:
            self.link.reply_trigger(trigger_id or None, ok, message)

    # ------------------------------------------------------------------ GUI thread
    def _current(self, generation: int) -> bool:
        return self.link is not None and generation == self._generation

    def _on_state(self, generation: int, state: str, detail: str) -> None:
        if not self._current(generation):
            return  # a late call from a link already stopped
        self.state, self.detail = state, detail
        self.broker_state_changed.emit(state, detail)

    def _on_backlog(self, generation: int, n: int) -> None:
        if self._current(generation):
            self._set_backlog(n)

    def _set_backlog(self, n: int) -> None:
        if n != self.backlog:
            self.backlog = n
            self.backlog_changed.emit(n)

    def _on_trigger(self, generation: int, trigger_id) -> None:
        if self._current(generation):
            self.trigger_requested.emit("mqtt", trigger_id or "")

    def _on_recipe(self, generation: int, name: str, request_id) -> None:
        if not self._current(generation):
            return
        if self._pending_recipe is not None:  # one at a time: the first keeps its answer ("loaded" or why not)
            if self.link is not None:
                self.link.reply_recipe(name, False, f"busy loading recipe {self._pending_recipe[0]!r}: send "
                                                    f"{name!r} again after its answer", request_id)
            return
        self._pending_recipe = (name, request_id)
        self.recipe_requested.emit(name)
