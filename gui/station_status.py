"""Connection state of the station's camera and of the line (MQTT broker), for the operator.

Two indicators side by side in the window's header, each a coloured dot, a name and the state in
words: **connected** (green), **connecting** (amber), **disconnected** (red, with the detail the
sender gives, e.g. "lost at 10:32:05, retrying") and **off** (grey, "not configured"). The full
detail line is in the tooltip; a disconnected source also shows it beside the state, so a lost
camera or broker is read from across the station without hovering. Verdicts waiting for the broker
(kept locally until it is back) are counted beside the line's indicator (and in its tooltip, once:
the MQTT link's own detail already says how many).

The senders are :class:`gui.live_session.LiveSession` (``camera_state_changed(str, str)``) and the
MQTT bridge (``broker_state_changed(str, str)``, ``backlog_changed(int)``): :meth:`StationStatus.watch_camera`
and :meth:`StationStatus.watch_broker` connect whichever of those signals the sender has. Everything
here runs in the GUI thread (the signals arrive queued).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

STATES = {
    "connected": "#1e8e3e",
    "connecting": "#f9ab00",
    "disconnected": "#d93025",
    "off": "#80868b",
}
"""Connection states and their colours (the dot's fill)."""

DEFAULT_DETAIL = {"off": "not configured"}
"""Detail shown when the sender gives none."""

INLINE_DETAIL_CHARS = 36
"""Longest detail shown beside a disconnected indicator (the tooltip has it whole)."""


class ConnectionIndicator(QWidget):
    """A coloured dot + name + state in words; the detail in the tooltip (module docstring).

    Args:
        name: what is connected, as the operator calls it ("Camera", "Line (MQTT)").
    """

    def __init__(self, name: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.name = name
        self.dot = QLabel()
        self.dot.setFixedSize(12, 12)
        self.label = QLabel()
        self.label.setTextFormat(Qt.TextFormat.PlainText)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(5)
        layout.addWidget(self.dot)
        layout.addWidget(self.label)
        self.state = ""
        self.detail = ""
        self.extra = self.extra_full = ""
        self.set_state("off", "")

    @property
    def colour(self) -> str:
        """The dot's colour, ``"#rrggbb"`` (:data:`STATES`)."""
        return STATES[self.state]

    def set_state(self, state: str, detail: str = "") -> None:
        """Show ``state`` (a key of :data:`STATES`) with its one-line ``detail`` ("" = the default).

        Raises:
            ValueError: ``state`` is not one of :data:`STATES` (a sender's mistake; nothing changes).
        """
        if state not in STATES:
            raise ValueError(f"{self.name}: unknown connection state {state!r}; expected one of "
                             f"{', '.join(STATES)}")
        self.state = state
        self.detail = detail.strip() or DEFAULT_DETAIL.get(state, "")
        self._redraw()

    def set_extra(self, short: str, full: str = "") -> None:
        """A second fact: ``short`` shown after the state ("3 verdicts waiting"), ``full`` in the
        tooltip (default ``short``); "" = none."""
        self.extra, self.extra_full = short, full or short
        self._redraw()

    def _redraw(self) -> None:
        self.dot.setStyleSheet(f"QLabel {{ background: {self.colour}; border-radius: 6px; }}")
        text = f"{self.name}: {self.state}"
        if self.state == "disconnected" and self.detail:
            cut = len(self.detail) > INLINE_DETAIL_CHARS
            text += f" — {self.detail[:INLINE_DETAIL_CHARS - 1] + '…' if cut else self.detail}"
        if self.extra:
            text += f" · {self.extra}"
        self.label.setText(text)
        self.label.setStyleSheet(f"QLabel {{ color: {self.colour}; font-weight: bold; }}"
                                 if self.state == "disconnected" else "")
        tip = f"{self.name}: {self.state}" + (f" — {self.detail}" if self.detail else "")
        extra = self.extra_full if self.extra_full and self.extra_full not in self.detail else ""
        self.setToolTip(tip + (f"\n{extra}" if extra else ""))  # said once, when the detail already has it


class StationStatus(QWidget):
    """The camera's and the line's connection indicators (module docstring)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.camera = ConnectionIndicator("Camera")
        self.broker = ConnectionIndicator("Line (MQTT)")
        self.backlog = 0
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(16)
        layout.addWidget(self.camera)
        layout.addWidget(self.broker)

    def set_camera_state(self, state: str, detail: str) -> None:
        """The camera is ``"connected"``, ``"connecting"``, ``"disconnected"`` or ``"off"``; ``detail``
        is one line about it ("Basler acA1300 (emulated), software trigger", "lost at 10:32:05, retrying").

        Raises:
            ValueError: unknown ``state``.
        """
        self.camera.set_state(state, detail)

    def set_broker_state(self, state: str, detail: str) -> None:
        """The MQTT broker connection is in ``state`` (as :meth:`set_camera_state`); ``detail``: one line.

        Raises:
            ValueError: unknown ``state``.
        """
        self.broker.set_state(state, detail)

    def set_broker_backlog(self, n: int) -> None:
        """``n`` verdicts are kept locally, waiting for the broker (0: none, nothing shown)."""
        self.backlog = max(0, int(n))
        waiting = f"{self.backlog} verdict{'s' if self.backlog != 1 else ''} waiting"
        self.broker.set_extra("" if self.backlog == 0 else waiting,
                              "" if self.backlog == 0 else f"{waiting} for the broker")

    def watch_camera(self, sender: QObject) -> bool:
        """Follow ``sender``'s ``camera_state_changed(str, str)`` signal; False when it has none
        (the indicator then stays "off")."""
        return _connect(sender, "camera_state_changed", self.set_camera_state)

    def watch_broker(self, sender: QObject) -> bool:
        """Follow ``sender``'s ``broker_state_changed(str, str)`` and, when it has one,
        ``backlog_changed(int)``; False when it has no state signal."""
        _connect(sender, "backlog_changed", self.set_broker_backlog)
        return _connect(sender, "broker_state_changed", self.set_broker_state)


def _connect(sender: QObject | None, signal_name: str, slot) -> bool:
    signal = getattr(sender, signal_name, None)
    if signal is None:
        return False
    signal.connect(slot)
    return True
