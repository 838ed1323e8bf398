"""Basler cameras through ``pypylon``, the vendor's Python binding (pylon runtime bundled).

:class:`PylonSource` opens a camera by serial number or user-defined name (or the first one
found), sets exposure (µs), gain (dB), pixel format (Mono8 / Mono10 / Mono12 / RGB8) and the trigger
mode, and delivers :class:`~engine.cameras.base.Frame` objects holding the camera's own values
(12-bit data as ``uint16`` with ``significant_bits=12``; :func:`engine.cameras.base.frame_to_rgb`
maps them like a 16-bit PNG with ``sBIT`` 12).

Node names differ between camera generations (GenICam SFNC 2 / USB3 and newer GigE cameras vs
older GigE ones): ``ExposureTime`` or ``ExposureTimeAbs`` (both µs), ``Gain`` or ``GainAbs`` (both
dB), ``RGB8`` or ``RGB8Packed``; the first one the camera offers is used. A camera with only the raw
gain register (``GainRaw``, device-specific units) is refused a gain in dB with a message, rather
than given a wrong one.

Trigger modes (:data:`engine.cameras.base.TRIGGER_MODES`), on the ``FrameStart`` trigger:

* ``"free"``: ``TriggerMode=Off``; grab strategy ``LatestImageOnly`` (a one-picture output queue,
  so a reader slower than the camera always gets the newest picture, never an old buffered one);
* ``"software"``: ``TriggerMode=On``, ``TriggerSource=Software``; :meth:`PylonSource.trigger`
  executes ``TriggerSoftware``. Grab strategy ``OneByOne``: every picture in the queue belongs
  to a trigger, and none may be lost (``LatestImageOnly`` would drop one when two triggers come
  faster than they are read). Before each trigger the queue is emptied, so a late picture of an
  earlier trigger (one that timed out) can never be taken for this trigger's picture;
* ``"hardware"``: ``TriggerMode=On``, ``TriggerSource=<trigger_line>`` (``Line1`` by default),
  rising edge; grab strategy ``OneByOne`` (one picture per edge, in order, none dropped).

The pylon camera emulation (environment variable ``PYLON_CAMEMU=<n>``, read when the devices are
enumerated) offers ``n`` emulated cameras; ``emulator_images`` makes one serve the images of a
folder (``ImageFileMode``), so real parts can be fed to the live path without a camera.

Errors are :class:`~engine.cameras.base.CameraError` with one line naming the camera and what to
check: no camera found, serial not found, camera in use, a setting refused (naming the setting and
the allowed values), camera removed (``IsCameraDeviceRemoved``), trigger not accepted.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import TRIGGER_MODES, CameraError, CameraRemoved, Frame, FrameSource

PIXEL_FORMATS = ("Mono8", "Mono10", "Mono12", "RGB8")
"""Pixel formats offered; each tried under its node names (:data:`_FORMAT_NAMES`)."""
_FORMAT_NAMES = {"Mono8": ("Mono8",), "Mono10": ("Mono10",), "Mono12": ("Mono12",),
                 "RGB8": ("RGB8", "RGB8Packed")}
MAX_FAILED_GRABS = 10
"""Consecutive failed grabs (damaged buffers) after which the camera counts as lost."""
QUEUE_BUFFERS = 16
"""Buffers pylon grabs into; in a trigger mode, triggers this far ahead of the reader are kept."""
_EMULATOR_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")
"""Image files the camera emulation serves from a folder."""


@dataclass(frozen=True)
class CameraInfo:
    """One camera pylon enumerates: ``serial``, ``user_name`` (DeviceUserID), ``model``, ``friendly_name``."""

    serial: str
    user_name: str
    model: str
    friendly_name: str


def _pylon():
    try:
        from pypylon import genicam, pylon
    except ImportError as exc:
        raise CameraError(f"Basler cameras need pypylon, which is not installed here ({exc}). Install it with "
                          f"pip install 'pypylon>=4.0' (or the station extra), then start the camera again.") from None
    return pylon, genicam


def list_cameras() -> list[CameraInfo]:
    """The Basler cameras pylon sees now (real ones and, with ``PYLON_CAMEMU``, emulated ones).

    Raises:
        CameraError: pypylon is not installed.
    """
    pylon, _ = _pylon()
    return [CameraInfo(d.GetSerialNumber(), d.GetUserDefinedName(), d.GetModelName(), d.GetFriendlyName())
            for d in pylon.TlFactory.GetInstance().EnumerateDevices()]


def _num(v: float) -> str:
    """``10000000`` / ``48`` / ``2.5``: a setting's value or limit for a message."""
    v = float(v)
    return f"{v:.0f}" if v.is_integer() or abs(v) >= 1e5 else f"{v:.4g}"


def _one_line(exc: BaseException) -> str:
    """A GenICam exception's message without its ``: ...Exception thrown (file ...)`` tail."""
    text = str(exc).replace("\n", " ").strip()
    cut = text.find(" : ")
    return (text[:cut] if cut > 0 else text).rstrip(". ") or type(exc).__name__


class PylonSource(FrameSource):
    """A Basler camera (module docstring).

    Args:
        serial: serial number or user-defined name of the camera; ``""`` = the first one found.
        exposure_us: exposure time in µs (auto exposure switched off); None = as the camera is set.
        gain_db: gain in dB (auto gain switched off); None = as the camera is set.
        pixel_format: one of :data:`PIXEL_FORMATS`.
        trigger_mode: one of :data:`engine.cameras.base.TRIGGER_MODES`.
        trigger_line: input line of the hardware trigger (``"Line1"``...).
        emulator_images: a folder of images for an emulated camera to serve (pylon emulation only).
    """

    def __init__(self, serial: str = "", exposure_us: float | None = None, gain_db: float | None = None,
                 pixel_format: str = "Mono8", trigger_mode: str = "free", trigger_line: str = "Line1",
                 emulator_images: str = ""):
        self.serial, self.exposure_us, self.gain_db = str(serial).strip(), exposure_us, gain_db
        for what, value, unit in (("exposure", exposure_us, "µs"), ("gain", gain_db, "dB")):
            if value is not None and not math.isfinite(float(value)):
                raise CameraError(f"Basler camera: {what} {value} is not a number of {unit}; set {what} in the camera "
                                  f"dialog.")
        self.pixel_format, self.trigger_mode, self.trigger_line = pixel_format, trigger_mode, trigger_line
        self.emulator_images = str(emulator_images)
        self.camera = None
        self.number = 0
        self.discarded = 0
        """Pictures emptied from the queue before a software trigger (late pictures of earlier triggers)."""
        self._failed_grabs = 0
        self._format = pixel_format
        self._name = f"Basler {self.serial}" if self.serial else "Basler camera"

    @property
    def label(self) -> str:
        return self._name

    # ------------------------------------------------------------------ opening
    def open(self) -> str:
        pylon, genicam = _pylon()
        if self.pixel_format not in PIXEL_FORMATS:
            raise CameraError(f"{self.label}: pixel format {self.pixel_format!r} is not offered; choose one of "
                              f"{', '.join(PIXEL_FORMATS)}.")
        if self.trigger_mode not in TRIGGER_MODES:
            raise CameraError(f"{self.label}: trigger mode {self.trigger_mode!r} is not known; choose one of "
                              f"{', '.join(TRIGGER_MODES)}.")
        factory = pylon.TlFactory.GetInstance()
        devices = factory.EnumerateDevices()
        if not devices:
            raise CameraError("No Basler camera found: pylon lists none. Check the cable and the camera's power (and, "
                              "for GigE, its IP address, e.g. in the pylon Viewer); without a camera, set "
                              "PYLON_CAMEMU=1 for an emulated one.")
        chosen = next((d for d in devices if not self.serial
                       or self.serial in (d.GetSerialNumber(), d.GetUserDefinedName())), None)
        if chosen is None:
            found = ", ".join(f"{d.GetSerialNumber()} ({d.GetUserDefinedName() or d.GetModelName()})" for d in devices)
            raise CameraError(f"Basler camera {self.serial!r} not found; pylon lists: {found}. Check the serial "
                              f"number or user-defined name in the camera dialog (Find cameras).")
        self._name = f"Basler {chosen.GetSerialNumber()}"
        try:
            self.camera = pylon.InstantCamera(factory.CreateDevice(chosen))
            self.camera.Open()
        except genicam.GenericException as exc:
            self.close()
            raise CameraError(f"{self.label} ({chosen.GetModelName()}) could not be opened: {_one_line(exc)}. Close "
                              f"other programs using it (pylon Viewer, another DINOInspect), then start it "
                              f"again.") from None
        try:
            self._step = "settings"
            self._configure(genicam)
            self._format = self.camera.PixelFormat.Value.replace("Packed", "")  # RGB8Packed -> RGB8
            self._step = "buffers"
            self.camera.MaxNumBuffer.Value = QUEUE_BUFFERS
            strategy = (pylon.GrabStrategy_LatestImageOnly if self.trigger_mode == "free"
                        else pylon.GrabStrategy_OneByOne)
            self._step = "start grabbing"
            self.camera.StartGrabbing(strategy)
        except CameraError:
            self.close()
            raise
        except genicam.GenericException as exc:
            self.close()
            raise CameraError(f"{self.label}: cannot be set up ({self._step}): {_one_line(exc)}. Check the camera in "
                              f"the pylon Viewer.") from None
        w, h = self.camera.Width.Value, self.camera.Height.Value
        return (f"{self.label} ({chosen.GetModelName()}, {w}x{h}, {self.camera.PixelFormat.Value}, "
                f"trigger {self.trigger_mode})")

    def _node(self, *names):
        """The first of ``names`` the camera offers (a parameter object), or None."""
        for n in names:
            node = self.camera.GetNodeMap().GetNode(n)
            if node is not None:
                return getattr(self.camera, n)
        return None

    def _set(self, genicam, what: str, names: tuple[str, ...], value, unit: str = "") -> None:
        """Set the first node of ``names`` to ``value``; a refused value is a :class:`CameraError`
        naming ``what`` and the allowed range or values."""
        param = self._node(*names)
        if param is None:
            raise CameraError(f"{self.label}: has no {what} setting ({' / '.join(names)}); leave {what} to the "
                              f"camera's own setting.")
        try:
            param.Value = value
        except genicam.GenericException as exc:
            if hasattr(param, "Symbolics"):  # an enumeration (pixel format, trigger source...)
                allowed = ", ".join(param.Symbolics)
            else:
                try:
                    allowed = f"{_num(param.Min)}..{_num(param.Max)}{unit}"
                except (genicam.GenericException, AttributeError):
                    allowed = "?"
            shown = _num(value) if isinstance(value, float) else value
            raise CameraError(f"{self.label}: {what} {shown}{unit} refused ({_one_line(exc)}); it allows {allowed}. "
                              f"Set {what} in the camera dialog.") from None

    def _configure(self, genicam) -> None:
        cam = self.camera
        if self.emulator_images:
            if cam.GetNodeMap().GetNode("ImageFilename") is None:
                raise CameraError(f"{self.label}: serving images from a folder works only with the pylon camera "
                                  f"emulation; clear the emulator image folder for a real camera.")
            folder = Path(self.emulator_images)
            if not folder.is_dir() or not any(f.suffix.lower() in _EMULATOR_SUFFIXES for f in folder.iterdir()):
                why = ("holds no PNG / BMP / TIFF / JPEG image" if folder.is_dir() else
                       "is a file, not a folder" if folder.exists() else "not found")
                raise CameraError(f"{self.label}: emulator image folder {folder} {why}; choose a folder of part "
                                  f"images in the camera dialog.")
            cam.ImageFilename.Value = self.emulator_images
            cam.ImageFileMode.Value = "On"
            cam.TestImageSelector.Value = "Off"
        offered = set(cam.PixelFormat.Symbolics)
        name = next((n for n in _FORMAT_NAMES[self.pixel_format] if n in offered), None)
        if name is None:
            usable = [p for p in PIXEL_FORMATS if any(n in offered for n in _FORMAT_NAMES[p])]
            raise CameraError(f"{self.label}: pixel format {self.pixel_format} is not offered by this camera "
                              f"(it offers {', '.join(sorted(offered))}); choose one of {', '.join(usable)}.")
        self._set(genicam, "pixel format", ("PixelFormat",), name)
        if self.exposure_us is not None:
            auto = self._node("ExposureAuto")
            if auto is not None and auto.IsWritable():
                auto.Value = "Off"
            self._set(genicam, "exposure", ("ExposureTime", "ExposureTimeAbs"), float(self.exposure_us), " µs")
        if self.gain_db is not None:
            auto = self._node("GainAuto")
            if auto is not None and auto.IsWritable():
                auto.Value = "Off"
            if self._node("Gain", "GainAbs") is None and self._node("GainRaw") is not None:
                raw = cam.GainRaw
                raise CameraError(f"{self.label}: gain can be set only in raw units here (GainRaw "
                                  f"{raw.Min}..{raw.Max}), "
                                  f"not in dB; leave gain to the camera's own setting (set it in the pylon Viewer).")
            self._set(genicam, "gain", ("Gain", "GainAbs"), float(self.gain_db), " dB")
        selector = self._node("TriggerSelector")
        if selector is not None and "FrameStart" in selector.Symbolics:
            selector.Value = "FrameStart"
        if self.trigger_mode == "free":
            self._set(genicam, "trigger mode", ("TriggerMode",), "Off")
            return
        source = "Software" if self.trigger_mode == "software" else self.trigger_line
        self._set(genicam, "trigger mode", ("TriggerMode",), "On")
        self._set(genicam, "trigger source", ("TriggerSource",), source)
        if self.trigger_mode == "hardware" and self._node("TriggerActivation") is not None:
            self._set(genicam, "trigger activation", ("TriggerActivation",), "RisingEdge")

    def settings(self) -> dict:
        """What the open camera is set to now: ``exposure_us``, ``gain_db`` (None when the camera has
        only raw gain), ``pixel_format`` (the camera's name), ``trigger_mode`` (``"Off"``/``"On"``),
        ``trigger_source``."""
        cam = self.camera
        exp, gain = self._node("ExposureTime", "ExposureTimeAbs"), self._node("Gain", "GainAbs")
        return {"exposure_us": float(exp.Value) if exp is not None else None,
                "gain_db": float(gain.Value) if gain is not None else None,
                "pixel_format": cam.PixelFormat.Value, "trigger_mode": cam.TriggerMode.Value,
                "trigger_source": cam.TriggerSource.Value}

    # ------------------------------------------------------------------ grabbing
    def trigger(self) -> None:
        """Execute a software trigger (``"software"`` mode), after emptying the queue of pictures of
        earlier triggers (counted in :attr:`discarded`).

        Raises:
            CameraError: not in software trigger mode, the camera was removed, or it was not ready
                for a trigger within 1 s (still exposing the previous picture).
        """
        pylon, genicam = _pylon()
        if self.trigger_mode != "software":
            raise CameraError(f"{self.label} runs in {self.trigger_mode} trigger mode; a software trigger needs "
                              f"trigger mode 'software' (camera dialog).")
        try:
            if self.camera.IsCameraDeviceRemoved():
                raise self._lost(None)
            while self.camera.GetGrabResultWaitObject().Wait(0):
                with self.camera.RetrieveResult(0, pylon.TimeoutHandling_Return) as late:
                    if late.IsValid():
                        self.discarded += 1
            if not self.camera.WaitForFrameTriggerReady(1000, pylon.TimeoutHandling_Return):
                raise CameraError(f"{self.label} was not ready for a software trigger within 1 s (still taking the "
                                  f"previous picture?); check that the exposure time is shorter than the time between "
                                  f"triggers.")
            self.camera.ExecuteSoftwareTrigger()
        except CameraError:
            raise
        except genicam.GenericException as exc:
            raise self._lost(exc) from None

    def check_connected(self) -> None:
        """Raises :class:`CameraRemoved` when pylon reports the camera removed (``IsCameraDeviceRemoved``)."""
        if self.camera is not None and self.camera.IsCameraDeviceRemoved():
            raise self._lost(None)

    def grab(self, timeout_s: float) -> Frame | None:
        pylon, genicam = _pylon()
        try:
            with self.camera.RetrieveResult(max(0, int(timeout_s * 1000)), pylon.TimeoutHandling_Return) as res:
                if not res.IsValid():
                    if self.camera.IsCameraDeviceRemoved():
                        raise self._lost(None)
                    return None
                if not res.GrabSucceeded():
                    self._failed_grabs += 1
                    if self._failed_grabs >= MAX_FAILED_GRABS or self.camera.IsCameraDeviceRemoved():
                        raise self._lost(f"{res.GetErrorDescription()} (error 0x{res.GetErrorCode():x})")
                    return None
                self._failed_grabs = 0
                ptype = res.GetPixelType()
                array = np.array(res.GetArray(), copy=True, order="C")  # the buffer goes back to the driver
                bits = int(pylon.BitDepth(ptype)) if pylon.IsMono(ptype) else 8
                self.number += 1
                return Frame(array=array, significant_bits=bits, pixel_format=self._format, timestamp_ms=None,
                             number=self.number)
        except CameraError:
            raise
        except genicam.GenericException as exc:
            raise self._lost(exc) from None

    def _lost(self, why) -> CameraError:
        removed = self.camera is not None and self.camera.IsCameraDeviceRemoved()
        if removed:
            return CameraRemoved(f"{self.label} was removed at {time.strftime('%H:%M:%S')} (cable pulled or power "
                               f"lost); live stopped. Check the cable and the camera's power, then start it again.")
        detail = _one_line(why) if isinstance(why, BaseException) else (why or "unknown error")
        return CameraError(f"{self.label} stopped delivering pictures at {time.strftime('%H:%M:%S')}: {detail}. "
                           f"Check the cable (GigE: packet size, bandwidth), then start the camera again.")

    def close(self) -> None:
        if self.camera is None:
            return
        try:
            if self.camera.IsGrabbing():
                self.camera.StopGrabbing()
            self.camera.Close()
            self.camera.DestroyDevice()
        except Exception:  # noqa: BLE001 - a removed device may refuse to be closed; it is released anyway
            pass
        self.camera = None
