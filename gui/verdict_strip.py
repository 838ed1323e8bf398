"""The last N verdicts of the run as a strip of small tiles, for the operator at a station.

One tile per inspected part, **oldest at the left, newest at the right**: the same direction as the
trend plot under it (inspection number grows to the right) and as a line's parts pass a reading
operator; the strip fills from the right, so the newest tile is always at the same place. Tiles
are coloured by the verdict given at inspection time (as logged; a previewed threshold does not
recolour them): green OK, red NOK (with a white cross, for operators who do not tell red from
green), grey n/a (no threshold), orange unreadable. Events of the run
(the source went stale or resumed, the threshold was changed) are thin blue markers between the
tiles, so a gap or a change in verdicts is explained where it happened; events in a row (a source
going stale and resuming many times between two parts) share one marker, whose tooltip lists the
newest of them and counts the rest, so markers never crowd out the parts. The line above the tiles
counts the NOKs among them ("3 NOK in the last 20", and "last 2 in a row" when the newest parts
are NOK), so a run of NOKs is seen at a glance.

Hovering a tile gives its time, image or frame name, score and threshold; clicking it emits
:attr:`VerdictStrip.result_clicked` with the part's index in the run (:class:`gui.run_results.RunResults`)
and the window shows it. The tile of the part shown is outlined. The right-click menu sets N
(:attr:`VerdictStrip.length_changed`; the window keeps it in its settings).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QLabel, QMenu, QToolTip, QVBoxLayout, QWidget

from .run_results import InspectionResult, short_name
from .verdict import fmt_threshold

DEFAULT_LENGTH = 20
"""Verdicts shown by default."""

LENGTH_CHOICES = (10, 20, 50, 100)
"""Lengths offered in the strip's right-click menu."""

TILE_COLOURS = {"OK": "#1e8e3e", "NOK": "#d93025", "n/a": "#80868b", "error": "#e37400"}
"""Tile fill per logged verdict (the verdict panel's colours)."""

EVENT_COLOUR = "#1a73e8"
"""Fill of an event marker (stale source, resumed, threshold changed)."""

BAR_HEIGHT = 26
"""Height of the tile row (px)."""

MAX_TILE = 24
"""Widest tile (px); tiles get narrower when N of them do not fit."""

MARKER = 5
"""Width of an event marker's slot (px)."""

MARKER_LINES = 5
"""Events listed in the tooltip of a marker that holds several (the newest; the rest are counted)."""


@dataclass(frozen=True)
class StripTile:
    """One tile of the strip.

    Attributes:
        index: the part's index in the run (:class:`gui.run_results.RunResults`); None for an event.
        verdict: ``"OK"``, ``"NOK"``, ``"n/a"``, ``"error"``, or ``"event"`` for an event marker.
        colour: fill, ``"#rrggbb"``.
        tooltip: what hovering shows (time, name, score, threshold; or the events' messages).
        events: for an event marker, the events in a row it stands for (``lines`` holds the newest
            :data:`MARKER_LINES` of them); 0 for a part.
    """

    index: int | None
    verdict: str
    colour: str
    tooltip: str
    events: int = 0
    lines: tuple[str, ...] = ()

    @property
    def is_event(self) -> bool:
        return self.verdict == "event"


class VerdictStrip(QWidget):
    """The last ``length`` verdicts of the run (module docstring).

    Args:
        length: how many verdicts to show (>= 1).

    Signals:
        result_clicked(int): the operator clicked the tile of the run's result with this index.
        length_changed(int): the operator chose another length in the right-click menu.
    """

    result_clicked = Signal(int)
    length_changed = Signal(int)

    def __init__(self, length: int = DEFAULT_LENGTH, parent: QWidget | None = None):
        super().__init__(parent)
        self.tiles: list[StripTile] = []  # oldest first: verdict tiles and event markers
        self.current: int | None = None  # run index of the part shown
        self._length = DEFAULT_LENGTH
        self.summary_label = QLabel()
        self.bar = _TileBar(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 4)
        layout.setSpacing(2)
        layout.addWidget(self.summary_label)
        layout.addWidget(self.bar)
        self.set_length(length)

    # ------------------------------------------------------------------ contents
    @property
    def length(self) -> int:
        """How many verdicts the strip keeps."""
        return self._length

    def set_length(self, n: int) -> None:
        """Keep the last ``n`` verdicts (the oldest ones beyond go).

        Raises:
            ValueError: ``n < 1``.
        """
        if int(n) < 1:
            raise ValueError(f"verdict strip length must be at least 1, got {n}")
        self._length = int(n)
        self._trim()
        self._changed()

    def add_result(self, index: int, r: InspectionResult) -> None:
        """Append the tile of result ``r``, the run's result number ``index`` (0-based), at the right."""
        verdict = r.verdict if r.verdict in TILE_COLOURS else "n/a"
        self.tiles.append(StripTile(index, verdict, TILE_COLOURS[verdict], result_tooltip(r)))
        self._trim()
        self._changed()

    def add_event(self, message: str, at: dt.datetime | None = None) -> None:
        """Append an event marker (``message``: what happened, e.g. "threshold changed 0.4 -> 0.5
        by operator"; ``at``: when, default now)."""
        at = at or dt.datetime.now()
        line = f"{at:%H:%M:%S} · {message}"
        if self.tiles and self.tiles[-1].is_event:  # events in a row: one marker (module docstring)
            last = self.tiles.pop()
            n, lines = last.events + 1, (last.lines + (line,))[-MARKER_LINES:]
        else:
            n, lines = 1, (line,)
        earlier = n - len(lines)
        tooltip = (f"{earlier} earlier event{'s' if earlier != 1 else ''} …\n" if earlier else "") + "\n".join(lines)
        self.tiles.append(StripTile(None, "event", EVENT_COLOUR, tooltip, n, lines))
        self._changed()

    def set_current(self, index: int | None) -> None:
        """Outline the tile of the run's result ``index`` (None: none)."""
        if index != self.current:
            self.current = index
            self.bar.update()

    def clear(self) -> None:
        """A new run: no tiles."""
        self.tiles.clear()
        self.current = None
        self._changed()

    def verdicts(self) -> list[str]:
        """The verdicts of the tiles, oldest first (events left out)."""
        return [t.verdict for t in self.tiles if not t.is_event]

    @property
    def nok_count(self) -> int:
        """NOK verdicts among the tiles."""
        return self.verdicts().count("NOK")

    @property
    def nok_in_a_row(self) -> int:
        """How many of the newest verdicts in a row are NOK."""
        n = 0
        for v in reversed(self.verdicts()):
            if v != "NOK":
                break
            n += 1
        return n

    # ------------------------------------------------------------------ geometry
    def tile_rects(self) -> list[QRectF]:
        """Where each tile of :attr:`tiles` is drawn in :attr:`bar` (same order), newest at the
        right edge; tiles past the left edge get an empty rect."""
        width, height = self.bar.width(), self.bar.height()
        events = len(self.tiles) - len(self.verdicts())
        slot = max(4.0, min(MAX_TILE, (width - 2 - events * MARKER) / self._length))
        gap = 2.0 if slot >= 8 else 1.0
        rects: list[QRectF] = []
        right = width - 1.0
        for tile in reversed(self.tiles):
            w = MARKER if tile.is_event else slot
            left = right - w
            rects.append(QRectF(left + gap / 2, 2.0, w - gap, height - 4.0) if left >= 0 else QRectF())
            right = left
        rects.reverse()
        return rects

    def tile_at(self, pos: QPoint) -> int | None:
        """Position in :attr:`tiles` of the tile under ``pos`` (bar coordinates), or None."""
        for k, rect in enumerate(self.tile_rects()):
            if not rect.isEmpty() and rect.adjusted(-1, -2, 1, 2).contains(pos.toPointF()):
                return k
        return None

    # ------------------------------------------------------------------ private
    def _trim(self) -> None:
        excess = len(self.verdicts()) - self._length
        while self.tiles and (excess > 0 or self.tiles[0].is_event):
            if not self.tiles.pop(0).is_event:
                excess -= 1

    def _changed(self) -> None:
        n, nok, errors = len(self.verdicts()), self.nok_count, self.verdicts().count("error")
        if n == 0:
            text = f"Last {self._length} parts: none yet"
        else:
            text = f"{nok} NOK in the last {n}"
            if self.nok_in_a_row >= 2:
                text += f" — last {self.nok_in_a_row} in a row"
            if errors:
                text += f", {errors} unreadable"
        self.summary_label.setText(text)
        style = f"QLabel {{ color: {TILE_COLOURS['NOK']}; font-weight: bold; }}" if nok else ""
        if style != self.summary_label.styleSheet():  # restyling on every live frame would cost time
            self.summary_label.setStyleSheet(style)
        self.bar.update()

    def length_menu(self) -> QMenu:
        """The right-click menu: one checkable "Show the last N" per :data:`LENGTH_CHOICES`."""
        menu = QMenu(self)
        for n in LENGTH_CHOICES:
            act = menu.addAction(f"Show the last {n}")
            act.setCheckable(True)
            act.setChecked(n == self._length)
            act.triggered.connect(lambda _=False, n=n: (self.set_length(n), self.length_changed.emit(n)))
        return menu


class _TileBar(QWidget):
    """The painted row of tiles of a :class:`VerdictStrip` (clicks, tooltips, right-click menu)."""

    def __init__(self, strip: VerdictStrip):
        super().__init__(strip)
        self.strip = strip
        self.setFixedHeight(BAR_HEIGHT)
        self.setMinimumWidth(120)
        self.setMouseTracking(True)
        self.setToolTip("")  # tooltips are per tile (event())

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor("#f1f3f4"))
        p.drawRoundedRect(QRectF(self.rect()), 4, 4)
        for tile, rect in zip(self.strip.tiles, self.strip.tile_rects()):
            if rect.isEmpty():
                continue
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(tile.colour))
            p.drawRoundedRect(rect, 2, 2)
            if tile.verdict == "NOK" and rect.width() >= 8:  # a cross too: NOK is told from OK without colour
                c = rect.center()
                d = min(rect.width(), rect.height()) * 0.22
                p.setPen(QPen(QColor("white"), 1.6))
                p.drawLine(QPointF(c.x() - d, c.y() - d), QPointF(c.x() + d, c.y() + d))
                p.drawLine(QPointF(c.x() - d, c.y() + d), QPointF(c.x() + d, c.y() - d))
            if tile.index is not None and tile.index == self.strip.current:
                p.setPen(QPen(QColor("#202124"), 2))
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawRoundedRect(rect.adjusted(-1, -1, 1, 1), 3, 3)
        p.end()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            k = self.strip.tile_at(event.position().toPoint())
            if k is not None and self.strip.tiles[k].index is not None:
                self.strip.result_clicked.emit(self.strip.tiles[k].index)
                return
        super().mousePressEvent(event)

    def contextMenuEvent(self, event) -> None:  # noqa: N802
        menu = self.strip.length_menu()
        menu.exec(event.globalPos())
        menu.deleteLater()

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.ToolTip:
            k = self.strip.tile_at(event.pos())
            if k is None:
                QToolTip.hideText()
                event.ignore()
            else:
                QToolTip.showText(event.globalPos(), self.strip.tiles[k].tooltip, self)
            return True
        return super().event(event)


def result_tooltip(r: InspectionResult) -> str:
    """What hovering a result's tile shows: time, image or frame name, score, threshold and verdict."""
    head = f"{r.time:%H:%M:%S} · {short_name(r.name)}"
    if r.score is None:
        return f"{head}\nunreadable: {r.error}"
    return (f"{head}\nscore {r.score:.4g} · threshold {fmt_threshold(r.threshold)} → "
            f"{'no threshold' if r.verdict == 'n/a' else r.verdict}")
