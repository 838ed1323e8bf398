"""Basler source (engine.cameras.pylon_source) against the pylon runtime's own camera emulation
(``PYLON_CAMEMU``; pypylon reads it when it enumerates devices, so setting it in the test is
enough): opening, free-running grabs, Mono12 mapped at full range like a 12-bit PNG, one picture per
software trigger, settings read back, refused settings, and an emulator serving our own images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.cameras import CameraError, Frame, frame_to_rgb
from engine.images import read_image
from engine.value_range import STANDALONE, ValueRange
from tests.engine.test_value_range import add_sbit, as_8bit

pytest.importorskip("pypylon")
from engine.cameras.pylon_source import PylonSource, list_cameras  # noqa: E402

EMULATED_SERIAL = "0815-0000"  # the first emulated camera's serial number (pylon's emulation)


@pytest.fixture
def emulation(monkeypatch):
    monkeypatch.setenv("PYLON_CAMEMU", "1")


@pytest.fixture
def opened(emulation):
    sources = []

    def make(**kwargs) -> PylonSource:
        s = PylonSource(**kwargs)
        sources.append(s)
        s.open()
        return s

    yield make
    for s in sources:
        s.close()


def test_the_emulated_camera_is_listed_and_opened_first_when_no_serial_is_given(emulation):
    assert [c.serial for c in list_cameras()] == [EMULATED_SERIAL]
    s = PylonSource()
    try:
        assert s.open().startswith(f"Basler {EMULATED_SERIAL} (Emulation, ")
    finally:
        s.close()
    s.close()  # twice is harmless


def test_free_running_camera_delivers_new_mono8_frames(opened):
    s = opened(serial=EMULATED_SERIAL)
    frames = [s.grab(2.0) for _ in range(3)]
    assert all(isinstance(f, Frame) for f in frames)
    assert [f.number for f in frames] == [1, 2, 3]
    assert {(f.array.shape, f.array.dtype, f.significant_bits, f.pixel_format) for f in frames} == \
        {((s.camera.Height.Value, s.camera.Width.Value), np.dtype(np.uint8), 8, "Mono8")}
    rgb = frame_to_rgb(frames[0])
    assert rgb.shape == frames[0].array.shape + (3,)
    assert all(np.array_equal(rgb[..., c], frames[0].array) for c in range(3))


def test_mono12_frames_map_at_full_range_exactly_like_a_12_bit_png(opened, tmp_path):
    s = opened(pixel_format="Mono12")
    f = s.grab(2.0)
    assert f.array.dtype == np.uint16 and f.significant_bits == 12 and f.array.max() > 255
    assert f.array.max() <= 4095
    png = tmp_path / "frame.png"
    cv2.imwrite(str(png), f.array)
    add_sbit(png, 12)
    expected = as_8bit(f.array, 12)  # 4095 -> 255, independently of the code under test
    for vr in (STANDALONE, ValueRange(bit_depth=12, source="measured", detail="12-bit")):
        got = frame_to_rgb(f, vr)
        assert np.array_equal(got, read_image(png, vr))
        assert np.array_equal(got[..., 0], expected) and np.array_equal(got[..., 2], expected)
    assert frame_to_rgb(f).max() == round(int(f.array.max()) * 255 / 4095)  # not max / 257 (~16)


def test_software_trigger_delivers_exactly_one_frame_per_trigger_and_none_without(opened):
    s = opened(trigger_mode="software")
    assert s.grab(0.3) is None
    for n in (1, 2, 3):
        s.trigger()
        f = s.grab(2.0)
        assert f is not None and f.number == n
        assert s.grab(0.2) is None
    assert s.discarded == 0


def test_a_software_trigger_in_free_running_mode_is_refused_with_the_fix(opened):
    s = opened(trigger_mode="free")
    with pytest.raises(CameraError, match="trigger mode 'software'"):
        s.trigger()


def test_exposure_gain_pixel_format_and_trigger_are_set_and_read_back(opened):
    s = opened(exposure_us=2500.0, gain_db=6.0, pixel_format="RGB8", trigger_mode="hardware", trigger_line="Line2")
    got = s.settings()
    assert got["exposure_us"] == pytest.approx(2500.0)
    assert got["gain_db"] == pytest.approx(6.0, abs=0.01)  # the camera rounds to its gain steps
    assert got["pixel_format"] in ("RGB8", "RGB8Packed")
    assert (got["trigger_mode"], got["trigger_source"]) == ("On", "Line2")


def test_rgb8_frames_are_passed_on_as_they_are(opened):
    s = opened(pixel_format="RGB8")
    f = s.grab(2.0)
    assert f.array.ndim == 3 and f.pixel_format == "RGB8"
    assert np.array_equal(frame_to_rgb(f), f.array)


@pytest.mark.parametrize("kwargs, words", [
    ({"pixel_format": "RGB16"}, ["pixel format 'RGB16'", "Mono8, Mono10, Mono12, RGB8"]),
    ({"exposure_us": 1e9}, ["exposure 1000000000 µs refused", "allows 1..10000000 µs"]),
    ({"gain_db": 99.0}, ["gain 99 dB refused", "allows 0..48 dB"]),
    ({"serial": "no-such-camera"}, ["'no-such-camera' not found", EMULATED_SERIAL]),
    ({"trigger_mode": "sometimes"}, ["trigger mode 'sometimes'", "free, software, hardware"]),
    ({"emulator_images": "/nonexistent/parts"}, ["emulator image folder /nonexistent/parts not found",
                                                 "camera dialog"]),
    ({"emulator_images": "/proc/self"}, ["holds no PNG / BMP / TIFF / JPEG image"]),
    ({"emulator_images": "/etc/hostname"}, ["is a file, not a folder"]),
    # the emulation has input lines 1-3: an enumeration refused, its allowed values named
    ({"trigger_mode": "hardware", "trigger_line": "Line4"}, ["Line4 refused", "Line1, Line2, Line3"]),
])
def test_refused_settings_give_one_line_naming_the_setting_and_what_is_allowed(emulation, kwargs, words):
    s = PylonSource(**kwargs)
    with pytest.raises(CameraError) as err:
        s.open()
    assert s.camera is None  # released again
    msg = str(err.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_no_camera_found_says_what_to_check(monkeypatch):
    monkeypatch.setenv("PYLON_CAMEMU", "0")
    if list_cameras():
        pytest.skip("a real Basler camera is attached")
    with pytest.raises(CameraError, match="No Basler camera found.*cable.*PYLON_CAMEMU=1"):
        PylonSource().open()


def test_emulator_fed_from_a_folder_delivers_those_images(opened, tmp_path):
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (48, 64), dtype=np.uint8) for _ in range(3)]
    for i, img in enumerate(images):
        cv2.imwrite(str(tmp_path / f"part{i}.png"), img)
    s = opened(emulator_images=str(tmp_path), pixel_format="Mono8", trigger_mode="software")
    seen = []
    for _ in range(len(images)):
        s.trigger()
        f = s.grab(2.0)
        seen.append(next(i for i, img in enumerate(images) if np.array_equal(f.array, img)))
        assert np.array_equal(frame_to_rgb(f), read_image(tmp_path / f"part{seen[-1]}.png"))
    assert sorted(seen) == [0, 1, 2]


def test_exposure_or_gain_that_is_not_a_number_is_refused_before_the_camera_is_asked():
    with pytest.raises(CameraError, match="exposure nan is not a number of µs"):
        PylonSource(exposure_us=float("nan"))
    with pytest.raises(CameraError, match="gain inf is not a number of dB"):
        PylonSource(gain_db=float("inf"))
