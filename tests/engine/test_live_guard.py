"""Live guard on synthetic frames: frozen (bit-identical, noisy, re-encoded), blank, silent and
timestamp-stuck sources go stale after the period and resume on a new picture; a moving scene never
goes stale. A fake clock stands in for time (no sleeping)."""

from __future__ import annotations

import datetime as dt
import functools

import cv2
import numpy as np
import pytest

from engine.live_guard import (BLANK_RANGE, CHANGE_LEVEL, THUMB_SIDE, LiveGuard, blank_kind, describe_frame,
                               is_new_picture, thumb_difference)

H, W = 240, 320
FPS = 10
START = dt.datetime(2026, 1, 5, 14, 0, 0)


class Clock:
    """Seconds = 100 + frames delivered / FPS (counted, so that 90 frames are exactly 3 s), plus
    whatever a test adds to ``extra``."""

    def __init__(self):
        self.frames, self.extra = 0, 0.0

    def __call__(self):
        return 100.0 + self.frames / FPS + self.extra


@functools.lru_cache(maxsize=None)
def _clean_scene(x: int) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    img = 60 + 15 * ((xx // 8) % 2)  # belt stripes
    d2 = (xx - x) ** 2 + (yy - H // 2) ** 2
    img = np.where(d2 < 40 ** 2, 200, img)
    img = np.where(d2 < 12 ** 2, 30, img).astype(np.float32)
    return np.repeat(img[..., None], 3, axis=2)


def scene(x: int, rng: np.random.Generator | None = None, noise: float = 0.0) -> np.ndarray:
    """A bright part (disc with a dark hole) at column ``x`` on a striped belt, RGB uint8; optional
    Gaussian sensor noise of ``noise`` grey levels."""
    frame = _clean_scene(x)
    if noise:
        frame = frame + rng.normal(0, noise, frame.shape).astype(np.float32)
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)


def jpeg_again(frame: np.ndarray, quality: int = 75) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def make_guard(stale: float = 3.0):
    clock = Clock()
    return LiveGuard("camera 0", stale, clock=clock, wall_clock=lambda: START), clock


def feed(guard, clock, frames, ms=None):
    """Deliver ``frames`` at FPS; returns the decisions. ``ms``: source timestamps per frame."""
    out, previous = [], None
    for i, f in enumerate(frames):
        out.append(guard.check(describe_frame(f, previous, None if ms is None else ms[i])))
        previous = f
        clock.frames += 1
    return out


def events(decisions):
    return [d.event for d in decisions if d.event is not None]


def test_bit_identical_frames_are_judged_once_then_the_source_goes_stale_after_the_period():
    guard, clock = make_guard(stale=3.0)
    frozen = scene(160, np.random.default_rng(0), noise=3)
    ds = feed(guard, clock, [frozen.copy() for _ in range(5 * FPS)])  # 5 s of the same picture
    assert [d.inspect for d in ds] == [True] + [False] * (5 * FPS - 1)
    assert [d.kind for d in ds[1:]] == ["repeat"] * (5 * FPS - 1)
    (ev,) = events(ds)  # exactly one warning
    assert ds.index(next(d for d in ds if d.event)) == 3 * FPS  # the first frame at 3.0 s after the last new one
    assert ev.kind == "stale" and ev.cause == "repeat" and ev.since == START
    assert ev.message.startswith("Camera 0: camera image not changing since 14:00:00 (the same picture")
    assert "Verdicts paused" in ev.message and guard.stale


@pytest.mark.parametrize("variant", ["noise", "jpeg", "jpeg+noise"])
def test_near_identical_copies_of_a_frozen_frame_count_as_the_same_picture(variant):
    rng = np.random.default_rng(1)
    base = scene(160)
    guard, clock = make_guard(stale=2.0)

    def copy(i):
        f = base
        if "noise" in variant:
            f = np.clip(f + rng.normal(0, 3, f.shape), 0, 255).astype(np.uint8)
        return jpeg_again(f, 60 + i % 30) if "jpeg" in variant else f  # quality varies: not bit-identical

    ds = feed(guard, clock, [copy(i) for i in range(4 * FPS)])
    assert ds[0].kind == "new" and {d.kind for d in ds[1:]} == {"still"}
    # judged while a part may still be resting there (the first 2 s), never after
    assert all(d.inspect for d in ds[:2 * FPS]) and not any(d.inspect for d in ds[2 * FPS:])
    (ev,) = events(ds)
    assert ev.cause == "still" and "camera image not changing since 14:00:00" in ev.message


def test_a_moving_part_is_inspected_and_never_goes_stale_even_when_each_step_is_small():
    guard, clock = make_guard(stale=1.0)
    rng = np.random.default_rng(2)
    xs = [50 + 2 * i for i in range(110)]  # 2 px per frame: below the change level frame to frame
    one_step = describe_frame(scene(xs[1])).thumb
    assert thumb_difference(describe_frame(scene(xs[0])).thumb, one_step) <= CHANGE_LEVEL
    ds = feed(guard, clock, [scene(x, rng, noise=3) for x in xs])
    assert all(d.inspect for d in ds) and not events(ds) and not guard.stale
    assert guard.counts["new"] > 10  # the reference keeps up: small steps add up to changes


def test_a_new_part_after_a_stale_period_resumes_and_says_how_long_the_gap_was():
    guard, clock = make_guard(stale=3.0)
    frozen = scene(100)
    feed(guard, clock, [frozen] * (10 * FPS))
    assert guard.stale
    ds2 = feed(guard, clock, [scene(220), scene(220)])
    assert ds2[0].inspect and ds2[0].kind == "new"
    ev = ds2[0].event
    assert ev.kind == "resumed" and ev.cause == "repeat" and ev.since == START
    assert ev.at == START + dt.timedelta(seconds=10)
    assert "changing again at 14:00:10 after 0:00:10" in ev.message and "inspecting again" in ev.message
    assert ds2[1].kind == "repeat" and not ds2[1].inspect and not guard.stale  # the new period starts afresh


def test_a_small_part_arriving_on_an_empty_belt_is_a_new_picture():
    belt = scene(-500)  # the part far outside the view: stripes only
    yy, xx = np.mgrid[0:H, 0:W]
    small = belt.copy()
    small[(xx - 160) ** 2 + (yy - 120) ** 2 < 12 ** 2] = 220  # 0.6 % of the view
    a, b = describe_frame(belt).thumb, describe_frame(small).thumb
    assert thumb_difference(a, b) < 1.0  # the mean alone would miss it
    assert is_new_picture(b, a)
    guard, clock = make_guard(stale=1.0)
    feed(guard, clock, [belt] * (2 * FPS))
    assert guard.stale
    (d,) = feed(guard, clock, [small])
    assert d.inspect and d.kind == "new" and d.event.kind == "resumed"


@pytest.mark.parametrize("value, kind", [(0, "black"), (255, "saturated"), (128, "uniform")])
def test_blank_frames_are_never_inspected_and_go_stale(value, kind):
    rng = np.random.default_rng(3)
    guard, clock = make_guard(stale=1.0)
    frames = [np.clip(value + rng.normal(0, 2, (H, W, 3)), 0, 255).astype(np.uint8) for _ in range(2 * FPS)]
    ds = feed(guard, clock, frames)
    assert {d.kind for d in ds} == {"blank"} and not any(d.inspect for d in ds)
    (ev,) = events(ds)
    assert ev.cause == "blank" and f"camera image {kind} since 14:00:00" in ev.message


def test_one_black_frame_between_parts_is_skipped_without_a_warning():
    guard, clock = make_guard(stale=3.0)
    ds = feed(guard, clock, [scene(100), np.zeros((H, W, 3), np.uint8), scene(200)])
    assert [(d.kind, d.inspect) for d in ds] == [("new", True), ("blank", False), ("new", True)]
    assert not events(ds)


def test_blank_rule_against_a_real_scene():
    assert blank_kind(describe_frame(scene(160)).thumb) is None
    flat = np.full((20, 20), 100, np.float32)
    flat[0, 0] += BLANK_RANGE  # a spread of BLANK_RANGE levels is a picture
    assert blank_kind(flat) is None and blank_kind(flat - np.eye(20, dtype=np.float32)) is None
    assert blank_kind(np.full((20, 20), 100, np.float32)) == "uniform"


def test_a_timestamp_that_stops_advancing_marks_repeats_even_with_changing_pixels():
    guard, clock = make_guard(stale=1.0)
    rng = np.random.default_rng(4)
    frames = [scene(50 + 5 * i, rng, noise=3) for i in range(3 * FPS)]
    ms = [100.0 * i for i in range(10)] + [900.0] * (3 * FPS - 10)  # the grabber's clock stops after frame 10
    ds = feed(guard, clock, frames, ms)
    assert all(d.inspect for d in ds[:10]) and {d.kind for d in ds[10:]} == {"repeat"}
    assert not any(d.inspect for d in ds[10:])
    (ev,) = events(ds)
    assert ev.cause == "repeat"


def test_a_source_without_timestamps_is_judged_by_its_pixels():
    guard, clock = make_guard(stale=1.0)
    frames = [scene(50 + 5 * i) for i in range(2 * FPS)]
    ds = feed(guard, clock, frames, ms=[0.0] * len(frames))  # many drivers report a constant 0
    assert all(d.inspect for d in ds) and not events(ds)


def test_a_source_that_delivers_nothing_goes_stale_on_tick():
    guard, clock = make_guard(stale=2.0)
    feed(guard, clock, [scene(100)])
    clock.extra += 1.0
    assert guard.tick() is None
    clock.extra += 1.5
    ev = guard.tick()
    assert ev.cause == "no frames" and "no camera image since 14:00:00" in ev.message
    assert guard.tick() is None  # said once


def test_a_resolution_change_is_a_new_picture():
    guard, clock = make_guard()
    small = cv2.resize(scene(160), (160, 120), interpolation=cv2.INTER_AREA)
    ds = feed(guard, clock, [scene(160), small])
    assert [d.kind for d in ds] == ["new", "new"]


def test_describe_frame_shrinks_to_a_grey_thumbnail_and_refuses_non_8_bit_frames():
    f = scene(160)
    facts = describe_frame(f, f.copy(), 12.5)
    assert facts.thumb.shape == (24, THUMB_SIDE) and facts.thumb.dtype == np.float32
    assert facts.identical and facts.source_ms == 12.5
    assert not describe_frame(f, scene(161)).identical and not describe_frame(f, None).identical
    assert describe_frame(np.zeros((10, 12), np.uint8)).thumb.shape == (10, 12)  # small frames are not enlarged
    assert describe_frame(f, None, float("nan")).source_ms is None
    with pytest.raises(ValueError, match="uint8"):
        describe_frame(f.astype(np.uint16))


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_stale_period_must_be_positive(bad):
    with pytest.raises(ValueError, match="stale period"):
        LiveGuard(stale_seconds=bad)
