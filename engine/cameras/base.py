"""The frame-source interface and the one rule that turns a camera frame into the model's input.

A :class:`FrameSource` is opened once, then :meth:`FrameSource.grab` is called in a loop (by
:class:`gui.camera.FrameGrabber`, in its own thread). In a trigger mode (:data:`TRIGGER_MODES`)
each picture is taken on a trigger: ``"software"`` -- :meth:`FrameSource.trigger` asks for one
picture and the next :meth:`grab` returns it; ``"hardware"`` -- the camera takes one on each edge
of its trigger input line, and :meth:`grab` returns it when it comes.

Conversion (:func:`frame_to_rgb`), the same documented rules as image files (:mod:`engine.images`,
:mod:`engine.value_range`), by the same functions (:func:`engine.images.deep_to_rgb_uint8`):

* 8-bit mono -> replicated to three channels (like a grey PNG);
* Mono10 / Mono12 / Mono16 arrive as ``uint16`` holding 10 / 12 / 16 significant bits; the
  significant bits play the part of a PNG's ``sBIT``: with the model's
  :class:`~engine.value_range.ValueRange` (``bit_depth``) or, for a model fitted on 8-bit images,
  the standalone rule (``0 .. 2**significant_bits - 1`` -> ``0 .. 255``). 12-bit data is kept at
  full range: 4095 becomes 255, not 16;
* RGB8 as it is; BGR8 -> RGB; a fourth (padding) channel of BGRA8 is dropped.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from ..errors import InspectError
from ..images import deep_to_rgb_uint8
from ..value_range import STANDALONE, ValueRange

TRIGGER_MODES = ("free", "software", "hardware")
"""``free``: free-running, the newest picture; ``software``: one picture per :meth:`FrameSource.trigger`;
``hardware``: one picture per edge on the camera's trigger input line."""


class CameraError(InspectError):
    """A frame source cannot be opened, refuses a setting, or was lost; the one-line message names
    the camera and what to check."""


class CameraRemoved(CameraError):
    """The camera was removed (cable pulled, power lost): the session cannot go on."""


class SourceEnded(Exception):
    """A finite source (a video file) has no more frames."""


@dataclass
class Frame:
    """One picture as the source delivered it.

    Attributes:
        array: ``(H, W)`` mono or ``(H, W, 3)`` colour, ``uint8`` or ``uint16`` (10..16-bit mono),
            C-contiguous, owned by the caller (not a driver buffer).
        significant_bits: bits of each value that carry data (8, 10, 12, 16).
        pixel_format: the camera's name of the format: ``"Mono8"``, ``"Mono12"``, ``"RGB8"``,
            ``"BGR8"``, ``"BGRA8"``...
        timestamp_ms: the source's own timestamp (ms), or None when it has none.
        number: frame counter of the source (1, 2, ...).
    """

    array: np.ndarray
    significant_bits: int = 8
    pixel_format: str = "Mono8"
    timestamp_ms: float | None = None
    number: int = 0


def frame_to_rgb(frame: Frame, value_range: ValueRange = STANDALONE, name: str = "") -> np.ndarray:
    """The model's input for ``frame``: ``(H, W, 3) uint8`` RGB, C-contiguous (rules in the module docstring).

    Args:
        frame: as delivered by a :class:`FrameSource`.
        value_range: the model's :class:`~engine.value_range.ValueRange` (``model.value_range``).
        name: names the frame in a clipping warning (e.g. ``"Basler 0815-0000 #12"``).
    Raises:
        CameraError: an array that is not ``(H, W)`` / ``(H, W, 3|4)`` of unsigned integers.
    """
    a = frame.array
    if a.dtype.kind != "u" or a.ndim not in (2, 3) or a.size == 0 or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise CameraError(f"{name or frame.pixel_format}: frames of {a.dtype} {a.shape} cannot be inspected; set "
                          f"the camera to Mono8, Mono12 or RGB8.")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    elif a.ndim == 3:
        a = a[:, :, :3]
        if frame.pixel_format.upper().startswith("BGR"):
            a = a[:, :, ::-1]
    sbit = frame.significant_bits if a.dtype != np.uint8 else None
    return deep_to_rgb_uint8(a, value_range, name, sbit)


class FrameSource(abc.ABC):
    """A camera or stand-in camera delivering :class:`Frame` objects (module docstring).

    Attributes:
        trigger_mode: one of :data:`TRIGGER_MODES`.
        period_s: least seconds between two frames the reader should keep (a video file's own pace);
            0 = as fast as the source delivers.
        reads_between_triggers: in software trigger mode, :meth:`grab` must still be called while no
            trigger is pending (the source reads and drops pictures to stay current; :meth:`grab`
            returns None for them). False: nothing comes untriggered, the reader may wait for a trigger.
    """

    trigger_mode: str = "free"
    period_s: float = 0.0
    reads_between_triggers: bool = False

    @abc.abstractmethod
    def open(self) -> str:
        """Open the source and apply its settings; returns a one-line description (model, size, format).

        Raises:
            CameraError: not found, in use, or a setting refused (message names the camera and the fix).
        """

    @abc.abstractmethod
    def grab(self, timeout_s: float) -> Frame | None:
        """The next frame, or None when none came within ``timeout_s`` seconds (in a trigger mode:
        no trigger, or a software trigger still waiting for its picture).

        Raises:
            CameraError: the source was lost (unplugged, stopped delivering).
            SourceEnded: a finite source has no more frames.
        """

    def trigger(self) -> None:
        """Ask for one picture (``"software"`` trigger mode): the next :meth:`grab` returns it.

        Raises:
            CameraError: the camera refused the trigger.
        """

    def cancel_trigger(self) -> None:
        """Forget a software trigger whose picture did not come in time, so a later picture is not
        taken for it (the reader gave up on it). Default: nothing to forget."""

    def check_connected(self) -> None:
        """Look whether the device is still there (called about once a second while the reader
        waits for a trigger and does not grab). Default: nothing to check.

        Raises:
            CameraRemoved: the device was removed.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device (safe to call twice, and after a failed :meth:`open`)."""

    @property
    @abc.abstractmethod
    def label(self) -> str:
        """Short name for messages, e.g. ``"camera 0"``, ``"Basler 0815-0000"``."""
