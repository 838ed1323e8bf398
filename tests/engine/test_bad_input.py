"""The bad-input corpus: every kind of awkward input a station meets, generated here (no binary
file is committed), with its expected outcome.

Each row of a table is one kind. The outcome is either ``read`` -- decoded, and its pixels checked
against values computed here independently -- or ``error`` -- a :class:`~engine.errors.InspectError`
whose message is one line, names the file and matches the row's pattern (what to do). Nothing may
crash with another exception.

Images (:data:`IMAGES`, through :func:`engine.images.read_image`), names, folders (through
:func:`engine.listing.list_images` / :func:`~engine.listing.expand_paths`) and model files
(:data:`MODELS`, through :func:`engine.modelfile.load_model_file`); a few go through the real
``python main.py`` process (exit code 2, one ``error:`` line on stderr, no traceback).

Size limit (decompression bombs): :data:`engine.images.MAX_PIXELS` = 178,956,970 px (Pillow's own
error limit): 12000x9000 (108 MP) is read; a 20000x10000 header is refused before decoding with
"... larger than the 179 MP limit on decoded images ... Downscale or crop it."
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from engine.errors import InspectError
from engine.images import MAX_PIXELS, read_image
from engine.listing import IMAGE_SUFFIXES, LOOP, expand_paths, list_images
from engine.modelfile import FORMAT_VERSION, load_model_file, save_model_file

REPO = Path(__file__).resolve().parents[2]
GRAD = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (16, 1))  # (16, 32) 0..248


def rgb(a2d):
    return np.repeat(a2d[:, :, None], 3, axis=2)


# ------------------------------------------------------------------------------------ makers
def png_bytes(arr, **kw):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", **kw)
    return buf.getvalue()


def jpeg_bytes(img: Image.Image, **kw):
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, **kw)
    return buf.getvalue()


def png_header_only(w, h):
    """A PNG whose IHDR claims ``w x h`` 8-bit gray, with no image data."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(  # noqa: E731
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def write(path: Path, data) -> Path:
    path.write_bytes(data)
    return path


def make(kind: str, d: Path) -> Path:
    """Write the file of one corpus kind into folder ``d``; returns its path."""
    if kind == "zero-byte PNG":
        return write(d / "empty.png", b"")
    if kind == "truncated PNG":
        return write(d / "cut.png", png_bytes(rgb(GRAD))[:60])
    if kind == "truncated JPEG":
        return write(d / "cut.jpg", jpeg_bytes(Image.fromarray(rgb(GRAD)))[:300])
    if kind == "PNG with a damaged data chunk (CRC)":
        data = bytearray(png_bytes(rgb(GRAD)))
        i = data.index(b"IDAT") + 10
        data[i] ^= 0xFF
        return write(d / "crc.png", bytes(data))
    if kind == "text file renamed .png":
        return write(d / "notes.png", b"part number 1234, station 7\n")
    if kind == "JPEG named .png":
        return write(d / "actually_jpeg.png", jpeg_bytes(Image.fromarray(rgb(GRAD))))
    if kind == "CMYK JPEG":
        return write(d / "cmyk.jpg", jpeg_bytes(Image.new("CMYK", (16, 16), (0, 255, 255, 0))))
    if kind == "EXIF-rotated JPEG":
        a = np.zeros((8, 16), np.uint8)
        a[:, :8] = 255  # left half white as stored; orientation 6 = displayed turned 90 deg clockwise
        exif = Image.Exif()
        exif[0x0112] = 6
        return write(d / "rotated.jpg", jpeg_bytes(Image.fromarray(a), exif=exif))
    if kind == "1x1 PNG":
        return write(d / "dot.png", png_bytes(np.zeros((1, 1, 3), np.uint8)))
    if kind == "20000x10000 header (decompression bomb)":
        return write(d / "bomb.png", png_header_only(20000, 10000))
    if kind == "16-bit TIFF (full range)":
        cv2.imwrite(str(d / "g16.tif"), (GRAD.astype(np.uint16) * 257))
        return d / "g16.tif"
    if kind == "12-bit data in 16-bit TIFF":
        cv2.imwrite(str(d / "g12.tif"), (GRAD.astype(np.uint16) * 16))
        return d / "g12.tif"
    if kind == "float TIFF 0..1":
        cv2.imwrite(str(d / "f.tif"), GRAD.astype(np.float32) / 255)
        return d / "f.tif"
    if kind == "float RGB TIFF (Pillow cannot open it)":
        cv2.imwrite(str(d / "frgb.tif"), rgb(GRAD).astype(np.float32) / 255)
        return d / "frgb.tif"
    if kind == "float TIFF with NaN":
        a = GRAD.astype(np.float32) / 255
        a[0, 0] = np.nan
        cv2.imwrite(str(d / "nan.tif"), a)
        return d / "nan.tif"
    if kind == "signed 16-bit TIFF":
        cv2.imwrite(str(d / "s16.tif"), (GRAD.astype(np.int32) * 257 - 32768).astype(np.int16))
        return d / "s16.tif"
    if kind == "16-bit RGB PNG":
        a = np.zeros((16, 16, 3), np.uint16)
        a[..., 0], a[..., 1] = 65535, 32896  # R full, G half (= 128 * 257)
        cv2.imwrite(str(d / "rgb16.png"), a[:, :, ::-1])
        return d / "rgb16.png"
    if kind == "palette PNG":
        Image.fromarray(GRAD).convert("P").save(d / "pal.png")
        return d / "pal.png"
    if kind == "palette PNG with transparency":
        p = Image.new("P", (16, 16), 1)
        p.putpalette([0, 0, 0, 200, 100, 50] + [0] * 762)
        p.info["transparency"] = 0
        p.paste(0, (0, 0, 8, 16))  # left half transparent
        p.save(d / "paltr.png", transparency=0)
        return d / "paltr.png"
    if kind == "animated GIF":
        frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
        frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
        return d / "anim.gif"
    if kind == "multi-page TIFF":
        pages = [Image.fromarray(rgb(GRAD)), Image.new("RGB", (32, 16), (0, 255, 0))]
        pages[0].save(d / "pages.tif", save_all=True, append_images=pages[1:])
        return d / "pages.tif"
    if kind == "WEBP (lossless)":
        Image.fromarray(rgb(GRAD)).save(d / "w.webp", lossless=True)
        return d / "w.webp"
    if kind == "AVIF":
        Image.fromarray(np.full((16, 16, 3), 77, np.uint8)).save(d / "a.avif", quality=100)
        return d / "a.avif"
    if kind == "HEIC":
        return write(d / "phone.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\0" * 64)
    if kind == "RGBA PNG":
        a = np.zeros((16, 16, 4), np.uint8)
        a[..., 0], a[..., 3] = 200, 128
        return write(d / "rgba.png", png_bytes(a))
    if kind == "gray + alpha PNG":
        a = np.zeros((16, 16, 2), np.uint8)
        a[..., 0], a[..., 1] = 100, 255
        Image.fromarray(a, "LA").save(d / "la.png")
        return d / "la.png"
    if kind == "1-bit PNG":
        Image.fromarray(GRAD >= 128).save(d / "bw.png")
        return d / "bw.png"
    if kind == "12000x9000 PNG":
        big = Image.new("L", (12000, 9000), 0)
        big.paste(255, (11000, 8000, 11010, 8010))
        big.save(d / "big.png", compress_level=1)
        return d / "big.png"
    if kind == "a folder given as an image":
        (d / "folder.png").mkdir()
        return d / "folder.png"
    if kind == "missing file":
        return d / "gone.png"
    raise KeyError(kind)


# ------------------------------------------------------------------------------------ checks
def equals(expected):
    return lambda a: np.array_equal(a, expected)


def close_to(expected, tol):
    return lambda a: a.shape == expected.shape and np.abs(a.astype(int) - expected.astype(int)).max() <= tol


ROT = np.rot90(np.where(np.arange(16)[None, :] < 8, 255, 0).repeat(8, 0), k=-1)  # (16, 8) top half white
PAL_TR = np.zeros((16, 16, 3), np.uint8)
PAL_TR[:, 8:] = (200, 100, 50)

READ, ERROR = "read", "error"
IMAGES = [  # kind, outcome, pixel check (read) or message pattern (error)
    ("zero-byte PNG", ERROR, r"empty file \(0 bytes\).*Copy it again"),
    ("truncated PNG", ERROR, r"cannot decode image .*re-export it"),
    ("truncated JPEG", ERROR, r"cannot decode image .*re-export it"),
    ("PNG with a damaged data chunk (CRC)", ERROR, r"cannot decode image .*corrupt"),
    ("text file renamed .png", ERROR, r"cannot decode image .*not an image"),
    ("JPEG named .png", READ, close_to(rgb(GRAD), 3)),
    ("CMYK JPEG", READ, close_to(np.full((16, 16, 3), (255, 0, 0), np.uint8), 3)),
    ("EXIF-rotated JPEG", READ, close_to(rgb(ROT.astype(np.uint8)), 40)),
    ("1x1 PNG", ERROR, r"only 1x1 px; need at least 8x8"),
    ("20000x10000 header (decompression bomb)", ERROR, r"\(200 MP\) is larger than the 179 MP limit"
                                                      r".*Downscale or crop it"),
    ("16-bit TIFF (full range)", READ, equals(rgb(GRAD))),
    ("12-bit data in 16-bit TIFF", READ, equals(rgb(np.rint(GRAD.astype(float) * 16 / 257).astype(np.uint8)))),
    ("float TIFF 0..1", READ, equals(rgb(GRAD))),
    ("float RGB TIFF (Pillow cannot open it)", READ, equals(rgb(GRAD))),
    ("float TIFF with NaN", READ, lambda a: a[0, 0, 0] == 0 and np.array_equal(a[1:], rgb(GRAD)[1:])),
    ("signed 16-bit TIFF", READ, equals(rgb(GRAD))),
    ("16-bit RGB PNG", READ, equals(np.full((16, 16, 3), (255, 128, 0), np.uint8))),
    ("palette PNG", READ, close_to(rgb(GRAD), 0)),
    ("palette PNG with transparency", READ, equals(PAL_TR)),
    ("animated GIF", READ, equals(np.full((16, 16, 3), (255, 0, 0), np.uint8))),
    ("multi-page TIFF", READ, equals(rgb(GRAD))),
    ("WEBP (lossless)", READ, equals(rgb(GRAD))),  # AVIF: read where this Pillow has the codec
    *([("AVIF", READ, close_to(np.full((16, 16, 3), 77, np.uint8), 2))] if ".avif" in IMAGE_SUFFIXES else []),
    ("HEIC", ERROR, r"HEIC images cannot be read here .*Export the images as PNG or JPEG"),
    ("RGBA PNG", READ, equals(np.full((16, 16, 3), (round(200 * 128 / 255), 0, 0), np.uint8))),
    ("gray + alpha PNG", READ, equals(np.full((16, 16, 3), 100, np.uint8))),
    ("1-bit PNG", READ, equals(rgb(np.where(GRAD >= 128, 255, 0).astype(np.uint8)))),
    ("a folder given as an image", ERROR, r"is a folder, not an image file"),
    ("missing file", ERROR, r"file not found\. Check the path"),
]


def assert_one_line_naming(exc: BaseException, path: Path, pattern: str) -> None:
    import re

    msg = str(exc)
    assert isinstance(exc, InspectError), f"{type(exc).__name__}: {msg}"
    assert "\n" not in msg and str(path) in msg, msg
    assert re.search(pattern, msg), msg


@pytest.mark.parametrize("kind,outcome,check", IMAGES, ids=[k for k, *_ in IMAGES])
def test_image_corpus(kind, outcome, check, tmp_path):
    path = make(kind, tmp_path)
    if outcome == READ:
        arr = read_image(path)
        assert arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3 and arr.flags.c_contiguous
        assert check(arr), (kind, arr[:2, :4, 0])
    else:
        with pytest.raises(Exception) as exc:
            read_image(path)
        assert_one_line_naming(exc.value, path, check)


@pytest.mark.slow
# engine.images silences Pillow's warning from 89 MP on at import (its own limit is checked on every
# read); pytest resets warning filters for each test, so the test repeats that filter
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_12000x9000_image_is_read_within_the_stated_limit(tmp_path):
    assert 12000 * 9000 <= MAX_PIXELS < 20000 * 10000
    arr = read_image(make("12000x9000 PNG", tmp_path))
    assert arr.shape == (9000, 12000, 3)
    assert (arr[8000:8010, 11000:11010] == 255).all() and arr[:8000].max() == 0 and arr[8010:].max() == 0


# ------------------------------------------------------------------------------------ names and folders
def saved(path: Path) -> Path:
    Image.fromarray(rgb(GRAD)).save(path)
    return path


NAMES = ["with spaces in it.png", "Prüfteil_部品_№7.png", "-leading-dash.png", "semi;colon'quote.png"]


@pytest.mark.parametrize("name", NAMES, ids=["spaces", "unicode", "leading dash", "shell characters"])
def test_odd_names_are_listed_and_read(name, tmp_path):
    p = saved(tmp_path / name)
    assert list_images(tmp_path) == [p]
    assert np.array_equal(read_image(p), rgb(GRAD))


def test_a_name_over_255_bytes_is_a_clear_error(tmp_path):
    p = tmp_path / ("x" * 300 + ".png")
    for call in (read_image, lambda q: expand_paths([q])):
        with pytest.raises(InspectError) as exc:
            call(p)
        assert_one_line_naming(exc.value, p, r"too long .*255")


FOLDERS = [  # kind, outcome, pattern or number of images read
    ("empty folder", ERROR, r"no images found .*The folder is empty"),
    ("folder of non-images", ERROR, r"It holds no image file; skipped 2 entries: 2 not an image type"),
    ("folder whose images are one level deeper", ERROR, r"Its sub-folders hold images: point to one of them"),
    ("symlink loop", READ, 1),
    ("folder link followed", READ, 2),
]


@pytest.mark.parametrize("kind,outcome,expected", FOLDERS, ids=[k for k, *_ in FOLDERS])
def test_folder_corpus(kind, outcome, expected, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    if kind == "folder of non-images":
        (d / "a.txt").write_text("x")
        (d / "b.db").write_bytes(b"\0")
    elif kind == "folder whose images are one level deeper":
        (d / "line1").mkdir()
        saved(d / "line1/a.png")
    elif kind == "symlink loop":
        saved(d / "a.png")
        os.symlink(d, d / "loop")
    elif kind == "folder link followed":
        (tmp_path / "far").mkdir()
        saved(tmp_path / "far/b.png")
        saved(d / "a.png")
        os.symlink(tmp_path / "far", d / "near")
    if outcome == READ:
        found = list_images(d, recursive=True)
        assert len(found) == expected and all(read_image(p).shape == (16, 32, 3) for p in found)
        if kind == "symlink loop":
            assert found.skipped == [(d / "loop", LOOP)]
    else:
        with pytest.raises(InspectError) as exc:
            list_images(d, recursive=kind != "folder whose images are one level deeper")
        assert_one_line_naming(exc.value, d, expected)


# ------------------------------------------------------------------------------------ model files
def good_model(path: Path) -> Path:
    cfg = {"backbone": {"name": "x"}, "scorer": {"name": "knn", "params": {}}, "threshold": 1.5}
    save_model_file(path, cfg, {"scorer/bank": np.arange(4096, dtype=np.float32).reshape(64, 64)})
    return path


class _Boom:
    """Unpickling this would create the file ``SENTINEL``: proof that the loader never unpickles."""

    sentinel = ""

    def __reduce__(self):
        return (Path.touch, (Path(self.sentinel),))


def make_model(kind: str, d: Path) -> Path:
    p = d / "m.dimodel"
    if kind == "zero-byte file":
        return write(p, b"")
    if kind == "a folder given as the model":
        p.mkdir()
        return p
    if kind == "missing file":
        return p
    data = good_model(d / "ok.dimodel").read_bytes()
    if kind == "truncated":
        return write(p, data[: len(data) * 2 // 3])
    if kind == "truncated inside the header":
        return write(p, data[:40])
    if kind == "one bit flipped in the arrays":
        b = bytearray(data)
        b[-5] ^= 0x10
        return write(p, bytes(b))
    if kind == "one bit flipped in the settings":
        b = bytearray(data)
        i = data.index(b"threshold")
        b[i] ^= 0x01  # "threshold" -> "uhreshold": still valid JSON
        return write(p, bytes(b))
    if kind == "newer format version":
        from safetensors.numpy import save_file

        save_file({"scorer/bank": np.zeros(4, np.float32)}, str(p), metadata={
            "format": "dinoinspect-model", "format_version": str(FORMAT_VERSION + 1), "config": "<new layout>"})
        return p
    if kind == "pickle renamed .dimodel":
        _Boom.sentinel = str(d / "UNPICKLED")
        return write(p, pickle.dumps({"model": _Boom()}))
    if kind == "PyTorch checkpoint renamed .dimodel":
        import torch

        torch.save({"w": torch.zeros(2)}, p)
        return p
    if kind == "safetensors file of another tool":
        from safetensors.numpy import save_file

        save_file({"weight": np.zeros((2, 2), np.float32)}, str(p), metadata={"format": "pt"})
        return p
    if kind == "JSON text renamed .dimodel":
        return write(p, b'{"threshold": 1.0}')
    if kind == "a JPEG renamed .dimodel":
        return write(p, jpeg_bytes(Image.fromarray(rgb(GRAD))))
    raise KeyError(kind)


MODELS = [
    ("zero-byte file", r"empty file \(0 bytes\).*Re-fit the model or restore it from its backup"),
    ("a folder given as the model", r"is a folder; give the model file itself"),
    ("missing file", r"model file not found\. Fit one with"),
    ("truncated", r"damaged or not a model file .*Re-fit the model or restore"),
    ("truncated inside the header", r"damaged or not a model file"),
    ("one bit flipped in the arrays", r"content checksum does not match.*Re-fit the model or restore"),
    ("one bit flipped in the settings", r"content checksum does not match"),
    ("newer format version", rf"model file format {FORMAT_VERSION + 1} is newer .*Update DINOInspect"),
    ("pickle renamed .dimodel", r"a Python pickle, not a DINOInspect model file; it is not opened"),
    ("PyTorch checkpoint renamed .dimodel", r"a zip archive \(a PyTorch .pt/.pth checkpoint\?\).*not opened"),
    ("safetensors file of another tool", r"a safetensors file, but not a DINOInspect model .*another tool"),
    ("JSON text renamed .dimodel", r"damaged or not a model file"),
    ("a JPEG renamed .dimodel", r"damaged or not a model file"),
]


@pytest.mark.parametrize("kind,pattern", MODELS, ids=[k for k, _ in MODELS])
def test_model_file_corpus(kind, pattern, tmp_path):
    path = make_model(kind, tmp_path)
    with pytest.raises(Exception) as exc:
        load_model_file(path)
    assert_one_line_naming(exc.value, path, pattern)
    assert not (tmp_path / "UNPICKLED").exists()


def test_the_unflipped_model_loads(tmp_path):
    """The corpus' reference file is itself fine (so the damaged kinds fail for their damage)."""
    cfg, arrays = load_model_file(good_model(tmp_path / "ok.dimodel"))
    assert cfg["threshold"] == 1.5 and np.array_equal(arrays["scorer/bank"].ravel(), np.arange(4096))


def test_corpus_covers_at_least_25_kinds():
    assert len(IMAGES) + len(NAMES) + 1 + len(FOLDERS) + len(MODELS) + 1 >= 25


# ------------------------------------------------------------------------------------ real processes
def run_main(*argv, cwd=REPO):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    return subprocess.run([sys.executable, "main.py", *map(str, argv)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["pickle model", "bit-flipped model", "name over 255 bytes", "folder of non-images"])
def test_real_process_gives_one_error_line_and_exit_2(case, tmp_path):
    img = saved(tmp_path / "part.png")
    if case == "pickle model":
        bad = make_model("pickle renamed .dimodel", tmp_path)
        argv = ["predict", "--model", bad, img, "--out", tmp_path / "o"]
    elif case == "bit-flipped model":
        bad = make_model("one bit flipped in the arrays", tmp_path)
        argv = ["predict", "--model", bad, img, "--out", tmp_path / "o"]
    elif case == "name over 255 bytes":
        bad = tmp_path / ("y" * 300 + ".png")
        argv = ["predict", "--model", good_model(tmp_path / "ok.dimodel"), bad, "--out", tmp_path / "o"]
    else:
        bad = tmp_path / "docs"
        bad.mkdir()
        (bad / "readme.txt").write_text("x")
        argv = ["fit", "--good", bad, "--out", tmp_path / "m.dimodel"]
    r = run_main(*argv, "--quiet")
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in r.stderr and len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ") and str(bad) in lines[0], lines[0]
    assert not (tmp_path / "UNPICKLED").exists() and not (tmp_path / "o" / "predictions.csv").exists()
