"""Is a live source still delivering new pictures? A guard against frozen, blank and silent cameras.

A camera can stay "alive" and stop delivering: after the cable is pulled some drivers keep
returning the last image (``read()`` -> True, same frame; opencv#5221), a covered lens or a failed
light gives black or saturated frames, a hung grabber delivers nothing. Judging such pictures logs
verdicts for parts that were never seen. :class:`LiveGuard` tells, frame by frame, whether a frame
is worth inspecting, and raises a *stale* event after :data:`STALE_SECONDS` (settable) without a new
picture and a *resumed* event when new pictures come back.

Each frame is first described by :func:`describe_frame` (cheap; the frame grabber calls it in its
own thread) and then judged by :meth:`LiveGuard.check` (the GUI thread). A frame is

* ``"repeat"``: bit-identical to the frame before it, or the source's own timestamp did not
  advance (only once the source has shown advancing timestamps: many report a constant 0). A real
  sensor never gives two bit-identical exposures (noise), so a repeat is the same picture again.
  Never inspected.
* ``"blank"``: nothing to inspect, the grey thumbnail spans fewer than :data:`BLANK_RANGE` grey
  levels (black, saturated or uniform frame). Never inspected.
* ``"still"``: within :data:`CHANGE_LEVEL` (mean absolute difference of the grey thumbnail, in grey
  levels of 255) of the last *new* picture, and fewer than :data:`LOCAL_CELLS` thumbnail cells
  changed by more than :data:`LOCAL_LEVEL`: sensor noise, JPEG re-encoding, nothing moved.
  Inspected during the stale period (a part may rest under the camera for a moment), not after it.
* ``"new"``: anything else. Inspected; it becomes the reference that later frames are compared
  with (a reference, not the previous frame, so a slow creep adds up to a change).

The thumbnail is the frame shrunk by area averaging to :data:`THUMB_SIDE` px on its longest side:
averaging hundreds of pixels per cell removes sensor noise and compression artefacts, while a part
moving, arriving or leaving changes many cells by many levels. The mean catches changes spread over
the view (movement, light); the local rule catches a small part arriving in a large empty view,
which moves the mean by less than a grey level.

Design for a real station (the part changes between inspections, but the conveyor may be empty):
the guard cannot tell a frozen driver that adds noise from a truly static scene (empty belt, line
stopped); in both cases there is no new part to judge, so after the stale period both stop the
verdicts and say so (the message names the likely causes, and bit-identical repeats point at the
driver). A station whose parts rest under the camera for longer than the stale period needs a
longer period (camera dialog); the first picture of each part is always judged, because a part
arriving changes the image. Timing uses the guard's clock (monotonic seconds); the times in the
messages are wall-clock times.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

STALE_SECONDS = 3.0
"""Default stale period (s): this long without a new picture and verdicts stop."""
CHANGE_LEVEL = 2.0
"""Mean absolute difference of the grey thumbnails (grey levels, 0..255) at or below which a
frame counts as the same picture as the reference."""
LOCAL_LEVEL = 24.0
"""A thumbnail cell whose grey level changed by more than this has changed locally."""
LOCAL_CELLS = 3
"""This many locally changed cells make a new picture, whatever the mean difference."""
BLANK_RANGE = 8.0
"""Peak-to-peak of the grey thumbnail (grey levels) below which a frame is blank."""
THUMB_SIDE = 32
"""Longest side of the grey thumbnail (px)."""


@dataclass(frozen=True)
class FrameFacts:
    """What the guard needs to know of one frame (:func:`describe_frame`).

    Attributes:
        thumb: ``(h, w) float32`` grey thumbnail, 0..255, longest side :data:`THUMB_SIDE` px.
        identical: bit-identical to the frame delivered just before it (same shape and pixels).
        source_ms: the source's own frame timestamp in ms (``CAP_PROP_POS_MSEC``), None if unknown.
        size: ``(H, W)`` of the frame in px (a resolution change is a new picture).
    """

    thumb: np.ndarray
    identical: bool
    source_ms: float | None = None
    size: tuple[int, int] = (0, 0)


def describe_frame(frame: np.ndarray, previous: np.ndarray | None = None,
                   source_ms: float | None = None) -> FrameFacts:
    """Describe ``frame`` for :meth:`LiveGuard.check`.

    Args:
        frame: ``(H, W, 3)`` or ``(H, W)`` uint8 picture (channel order does not matter much: the
            grey thumbnail uses RGB weights).
        previous: the frame delivered just before, or None (compared pixel for pixel).
        source_ms: the source's own timestamp of ``frame`` in ms, or None.

    Returns:
        :class:`FrameFacts`.

    Raises:
        ValueError: ``frame`` is not a 2-D or 3-D uint8 array with at least one pixel.
    """
    if frame.dtype != np.uint8 or frame.ndim not in (2, 3) or frame.size == 0:
        raise ValueError(f"expected an (H, W[, 3]) uint8 frame, got {frame.dtype} {frame.shape}")
    h, w = frame.shape[:2]
    scale = THUMB_SIDE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale))) if scale < 1 else (w, h)
    small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA) if scale < 1 else frame
    if small.ndim == 3:
        small = cv2.cvtColor(np.ascontiguousarray(small[..., :3]), cv2.COLOR_RGB2GRAY) if small.shape[2] >= 3 \
            else small[..., 0]
    identical = previous is not None and previous.shape == frame.shape and bool(np.array_equal(previous, frame))
    ms = None if source_ms is None or not np.isfinite(source_ms) else float(source_ms)
    return FrameFacts(thumb=np.asarray(small, np.float32), identical=identical, source_ms=ms, size=(h, w))


def blank_kind(thumb: np.ndarray) -> str | None:
    """``"black"``, ``"saturated"`` or ``"uniform"`` when the grey thumbnail (``(h, w)`` float,
    0..255) spans fewer than :data:`BLANK_RANGE` levels, else None."""
    if float(np.ptp(thumb)) >= BLANK_RANGE:
        return None
    mean = float(thumb.mean())
    return "black" if mean < 20 else "saturated" if mean > 235 else "uniform"


def thumb_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two grey thumbnails (``(h, w)`` float, 0..255) in grey levels;
    ``inf`` when their sizes differ."""
    if a.shape != b.shape:
        return float("inf")
    return float(np.mean(np.abs(a - b)))


def is_new_picture(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether grey thumbnail ``a`` shows a different picture than ``b`` (both ``(h, w)`` float,
    0..255): sizes differ, mean absolute difference above :data:`CHANGE_LEVEL`, or at least
    :data:`LOCAL_CELLS` cells changed by more than :data:`LOCAL_LEVEL`."""
    if a.shape != b.shape:
        return True
    diff = np.abs(a - b)
    return float(diff.mean()) > CHANGE_LEVEL or int(np.count_nonzero(diff > LOCAL_LEVEL)) >= LOCAL_CELLS


@dataclass(frozen=True)
class GuardEvent:
    """A change of state: the source went stale, or delivers new pictures again.

    Attributes:
        kind: ``"stale"`` or ``"resumed"``.
        cause: why it went stale: ``"repeat"``, ``"still"``, ``"blank"`` or ``"no frames"``.
        since: wall-clock time of the last new picture (start of the gap).
        at: wall-clock time of the event.
        message: one line for the operator (and the defect log).
    """

    kind: str
    cause: str
    since: dt.datetime
    at: dt.datetime
    message: str


@dataclass(frozen=True)
class GuardDecision:
    """The guard's answer for one frame: ``inspect`` it or not, what ``kind`` of frame it is
    (``"new"``, ``"still"``, ``"repeat"``, ``"blank"``), and the ``event`` it caused, if any."""

    inspect: bool
    kind: str
    event: GuardEvent | None = None


_CAUSES = {
    "repeat": "the same picture is delivered again and again: frozen driver, or the cable pulled? Check the camera",
    "still": "only sensor noise: nothing moves in view (empty line?), or the camera is frozen",
    "no frames": "no frames arrive: camera hung or disconnected? Check the camera",
}


class LiveGuard:
    """Frame-by-frame staleness check of one live session (module docstring). Not thread-safe: use
    it from one thread.

    Args:
        label: the source as named to the operator (``"camera 0"``).
        stale_seconds: stale period in seconds (> 0).
        clock: monotonic time in seconds (injectable for tests).
        wall_clock: the current local time (injectable for tests); read once, at creation.

    Raises:
        ValueError: ``stale_seconds`` is not a positive finite number.
    """

    def __init__(self, label: str = "camera", stale_seconds: float = STALE_SECONDS,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], dt.datetime] = lambda: dt.datetime.now().astimezone()):
        if not (np.isfinite(stale_seconds) and stale_seconds > 0):
            raise ValueError(f"stale period must be a positive number of seconds, got {stale_seconds!r}")
        self.label, self.stale_seconds, self._clock = label, float(stale_seconds), clock
        self._t0, self._wall0 = clock(), wall_clock()
        self._reference: FrameFacts | None = None
        self._changed_at = self._last_frame_at = self._t0
        self._last_ms: float | None = None
        self._ms_advances = False
        self._last_kind = "no frames"
        self._blank = ""
        self.stale = False
        self.cause = ""  # cause of the current (or last) stale period
        self.counts = {"new": 0, "still": 0, "repeat": 0, "blank": 0}

    def wall(self, t: float) -> dt.datetime:
        """Wall-clock time of clock time ``t`` (seconds)."""
        return self._wall0 + dt.timedelta(seconds=t - self._t0)

    def check(self, facts: FrameFacts) -> GuardDecision:
        """Judge one delivered frame: inspect it or not, and whether the source went stale or resumed."""
        now = self._clock()
        self._last_frame_at = now
        kind = self._kind(facts)
        self.counts[kind] += 1
        self._last_kind = kind
        if kind == "new":
            self._reference = facts
            gap_start, self._changed_at = self._changed_at, now
            if self.stale:
                self.stale = False
                return GuardDecision(True, kind, self._resumed(gap_start, now))
            return GuardDecision(True, kind)
        event = self.tick()
        return GuardDecision(kind == "still" and not self.stale, kind, event)

    def tick(self) -> GuardEvent | None:
        """Call now and then (also when no frame arrives): the stale event when the stale period has
        just passed without a new picture, else None."""
        now = self._clock()
        if self.stale or now - self._changed_at < self.stale_seconds:
            return None
        self.stale = True
        cause = "no frames" if now - self._last_frame_at >= self.stale_seconds else self._last_kind
        self.cause = cause
        since, at = self.wall(self._changed_at), self.wall(now)
        if cause == "blank":
            what = f"camera image {self._blank} since {since:%H:%M:%S} (lens covered, light off or exposure wrong?)"
        elif cause == "no frames":
            what = f"no camera image since {since:%H:%M:%S} ({_CAUSES[cause]})"
        else:
            what = f"camera image not changing since {since:%H:%M:%S} ({_CAUSES[cause]})"
        message = (f"{self.label.capitalize()}: {what}. Verdicts paused: stale pictures are not inspected or "
                   f"logged until the image changes (stale after {self.stale_seconds:g} s).")
        return GuardEvent("stale", cause, since, at, message)

    def _kind(self, facts: FrameFacts) -> str:
        ms, last = facts.source_ms, self._last_ms
        if ms is not None and last is not None and ms != last:
            self._ms_advances = True
        stuck = self._ms_advances and ms is not None and ms == last
        if ms is not None:
            self._last_ms = ms
        blank = blank_kind(facts.thumb)
        if blank:
            self._blank = blank
            return "blank"
        if facts.identical or stuck:
            return "repeat"
        ref = self._reference
        if ref is not None and ref.size == facts.size and not is_new_picture(facts.thumb, ref.thumb):
            return "still"
        return "new"

    def _resumed(self, gap_start: float, now: float) -> GuardEvent:
        since, at = self.wall(gap_start), self.wall(now)
        gap = dt.timedelta(seconds=round(now - gap_start))
        message = (f"{self.label.capitalize()}: camera image changing again at {at:%H:%M:%S} after {gap} without a "
                   f"new picture (since {since:%H:%M:%S}); inspecting again.")
        return GuardEvent("resumed", self.cause, since, at, message)
