"""Images whose value range is not what their container suggests (engine.value_range): 10/12/14-bit
data in 16-bit files, declared significant bits, signed and float TIFF, 16-bit RGB; the range is
decided once per model, stored in its file and applied the same way at predict."""

import logging
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from engine.images import read_image
from engine.value_range import EIGHT_BIT, STANDALONE, ValueRange, measure_value_range, png_info


def scene(rng, hi=4095, size=64):
    """A smooth 'part' with values spread over 0..hi (float64, (size, size))."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    ph = rng.uniform(0, 6.28)
    a = 0.5 + 0.35 * np.sin(xx / 5.0 + ph) * np.cos(yy / 7.0) + rng.normal(0, 0.01, (size, size))
    return np.clip(a * hi, 0, hi)


def as_8bit(a, bits):
    """The 8-bit copy of integer data of ``bits`` significant bits, computed here independently."""
    return np.rint(a.astype(np.float64) * 255.0 / (2 ** bits - 1)).astype(np.uint8)


def add_sbit(path, bits):
    """Insert an sBIT chunk (gray, ``bits`` significant bits) right after IHDR of a PNG file."""
    data = path.read_bytes()
    ihdr_end = 8 + 8 + 13 + 4
    chunk = struct.pack(">I", 1) + b"sBIT" + bytes([bits])
    chunk += struct.pack(">I", zlib.crc32(b"sBIT" + bytes([bits])) & 0xFFFFFFFF)
    path.write_bytes(data[:ihdr_end] + chunk + data[ihdr_end:])


@pytest.mark.parametrize("bits", [10, 12, 14])
def test_n_bit_data_in_16bit_png_is_measured_once_and_read_like_its_8bit_copy(tmp_path, bits):
    rng = np.random.default_rng(bits)
    hi = 2 ** bits - 1
    good = []
    for i in range(3):
        a = np.rint(scene(rng, hi)).astype(np.uint16)
        a[0, 0] = hi if i == 0 else a[0, 0]  # the good set reaches the top of its bit depth once
        cv2.imwrite(str(tmp_path / f"g{i}.png"), a)
        good.append((tmp_path / f"g{i}.png", a))
    vr = measure_value_range([p for p, _ in good])
    assert vr.bit_depth == bits and vr.source == "measured" and f"largest value {hi}" in vr.detail
    for p, a in good:
        out = read_image(p, vr)
        assert (out[:, :, 0] == as_8bit(a, bits)).all() and (out[:, :, 1] == out[:, :, 2]).all()
    # the old rule (divide by 257) left these images almost black: the standalone default still does
    assert read_image(good[0][0]).max() <= round(hi / 257)


def test_a_dark_and_a_bright_frame_map_the_same_value_to_the_same_grey(tmp_path):
    rng = np.random.default_rng(1)
    bright = np.rint(scene(rng, 4095)).astype(np.uint16)
    bright[0, 0] = 4095
    dark = (bright // 4).astype(np.uint16)  # same part, a quarter of the light
    cv2.imwrite(str(tmp_path / "bright.png"), bright)
    cv2.imwrite(str(tmp_path / "dark.png"), dark)
    vr = measure_value_range([tmp_path / "bright.png", tmp_path / "dark.png"])
    assert vr.bit_depth == 12
    d = read_image(tmp_path / "dark.png", vr)[:, :, 0]
    assert (d == as_8bit(dark, 12)).all()  # not stretched to its own maximum
    assert d.max() <= 64


def test_a_value_beyond_the_model_range_is_clipped_with_a_warning_naming_the_file(tmp_path, caplog):
    a = np.full((16, 16), 1000, np.uint16)
    a[:4, :4] = 8000  # 13 bits: above a 12-bit model's range
    cv2.imwrite(str(tmp_path / "over.png"), a)
    vr = ValueRange(bit_depth=12, source="measured", detail="12-bit from 5 good images")
    with caplog.at_level(logging.WARNING, logger="engine.value_range"):
        out = read_image(tmp_path / "over.png", vr)
    assert out[0, 0, 0] == 255 and out[8, 8, 0] == round(1000 * 255 / 4095)
    assert len(caplog.records) == 1
    msg = caplog.records[0].getMessage()
    assert "over.png" in msg and "16 pixels" in msg and "12-bit" in msg and "--bit-depth" in msg
    caplog.clear()
    read_image(tmp_path / "over.png")  # standalone: 8000 fits the 16-bit container, nothing to warn
    assert not caplog.records


def test_bit_depth_option_overrides_the_measured_depth(tmp_path):
    a = np.full((16, 16), 1023, np.uint16)
    cv2.imwrite(str(tmp_path / "a.png"), a)
    assert measure_value_range([tmp_path / "a.png"]).bit_depth == 10
    vr = measure_value_range([tmp_path / "a.png"], bit_depth=16)
    assert vr.bit_depth == 16 and vr.source == "option"
    assert read_image(tmp_path / "a.png", vr)[0, 0, 0] == round(1023 * 255 / 65535)


def test_declared_significant_bits_are_used_when_the_values_fit_them(tmp_path):
    a = np.tile(np.arange(0, 1024, 4, dtype=np.uint16), (16, 1))[:, :64]  # 0..252 in steps of 4
    a[0, 0] = 700
    cv2.imwrite(str(tmp_path / "s.png"), a)
    add_sbit(tmp_path / "s.png", 10)
    assert png_info(tmp_path / "s.png") == {"sbit": 10, "bit_depth": 16, "color_type": 0}
    out = read_image(tmp_path / "s.png")  # standalone: the file's own 10 bits
    assert (out[:, :, 0] == as_8bit(a, 10)).all()
    vr = measure_value_range([tmp_path / "s.png"])  # values <= 700 alone would give 10 bits too: check the text
    assert vr.bit_depth == 10 and "sBIT" in vr.detail
    # a writer that shifts the data to the top bits (the PNG spec's reading of sBIT): full range
    b = (a.astype(np.uint32) << 6).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "shifted.png"), b)
    add_sbit(tmp_path / "shifted.png", 10)
    assert (read_image(tmp_path / "shifted.png")[:, :, 0] == as_8bit(b, 16)).all()


def test_signed_tiff_is_offset_and_float_tiff_follows_the_stated_rule(tmp_path):
    s = np.tile(np.linspace(-2048, 2047, 64).round().astype(np.int16), (16, 1))
    cv2.imwrite(str(tmp_path / "s.tif"), s)
    vr = measure_value_range([tmp_path / "s.tif"])
    assert vr.bit_depth == 12 and "signed" in vr.detail
    out = read_image(tmp_path / "s.tif", vr)[:, :, 0]
    assert out[0, 0] == 0 and out[0, -1] == 255 and (out == as_8bit(s.astype(np.int32) + 2048, 12)).all()

    f = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (16, 1))
    cv2.imwrite(str(tmp_path / "f.tif"), f)
    assert (read_image(tmp_path / "f.tif")[:, :, 0] == np.rint(f * 255)).all()  # 0..1 assumed when it fits
    assert measure_value_range([tmp_path / "f.tif"]).float_range == (0.0, 1.0)
    g = (f * 500 + 100).astype(np.float32)  # a physical unit, 100..600
    cv2.imwrite(str(tmp_path / "g.tif"), g)
    vr = measure_value_range([tmp_path / "g.tif"])
    assert vr.float_range == pytest.approx((100.0, 600.0))
    half = (g * 0.5 + 50).astype(np.float32)  # 100..350: mapped with the model's range, not its own
    cv2.imwrite(str(tmp_path / "half.tif"), half)
    out = read_image(tmp_path / "half.tif", vr)[:, :, 0]
    assert np.abs(out.astype(int) - np.rint((half - 100) / 500 * 255)).max() <= 1
    assert out.max() <= 128


def test_16bit_rgb_png_keeps_each_channel_and_its_order(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint16)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 4095, 2048, 0  # R, G, B
    cv2.imwrite(str(tmp_path / "c.png"), rgb[:, :, ::-1])  # OpenCV writes BGR
    vr = measure_value_range([tmp_path / "c.png"])
    assert vr.bit_depth == 12
    assert read_image(tmp_path / "c.png", vr)[0, 0].tolist() == [255, round(2048 * 255 / 4095), 0]


def test_8bit_images_are_never_rescaled(tmp_path):
    a = np.random.default_rng(0).integers(0, 60, (16, 16, 3), dtype=np.uint8)  # dark 8-bit image
    Image.fromarray(a).save(tmp_path / "a.png")
    for vr in (STANDALONE, ValueRange(bit_depth=12, source="measured"), ValueRange(bit_depth=16, source="option")):
        assert (read_image(tmp_path / "a.png", vr) == a).all()
    assert measure_value_range([tmp_path / "a.png"]) == EIGHT_BIT


def test_value_range_round_trips_and_old_model_files_read_as_standalone():
    vr = ValueRange(bit_depth=12, float_range=(0.0, 1.0), source="measured", detail="x")
    assert ValueRange.from_json(vr.to_json()) == vr
    assert ValueRange.from_json(None) == STANDALONE and ValueRange.from_json({}) == STANDALONE


def test_a_model_fitted_on_12bit_pngs_stores_its_depth_and_scores_like_the_8bit_copy(tmp_path):
    """The case 12bit-in-16bit-png-missed as a test: the same scenes as 12-bit-in-16-bit PNG and as
    8-bit PNG give the same images after decoding, hence the same scores, before and
    after the model file is saved and loaded."""
    from engine.model import InspectionModel
    from engine.modelfile import load_model_file

    rng = np.random.default_rng(0)
    for d in ("16/good", "8/good", "16/test", "8/test"):
        (tmp_path / d).mkdir(parents=True)
    scenes = [np.rint(scene(rng, 4095)).astype(np.uint16) for _ in range(4)]
    spot = np.rint(scene(rng, 4095)).astype(np.uint16)
    spot[20:32, 30:42] = 4000  # a bright defect
    for name, a in [*((f"good/{i}.png", s) for i, s in enumerate(scenes)), ("test/spot.png", spot)]:
        cv2.imwrite(str(tmp_path / "16" / name), a)
        cv2.imwrite(str(tmp_path / "8" / name), as_8bit(a, 12))
    from engine.scorers import create_scorer

    scores, backbone = {}, None
    for b in ("8", "16"):
        if backbone is None:
            m = InspectionModel.create("efficientnet_lite0", "knn", size=64, device="cpu",
                                       scorer_params={"coreset_ratio": 0.5})
            backbone = m.backbone
        else:  # the same backbone again (building one takes seconds)
            m = InspectionModel(backbone, create_scorer("knn", coreset_ratio=0.5), size=64)
        m.fit(sorted((tmp_path / b / "good").iterdir()), holdout_fraction=0)  # no calibration: scores suffice
        m.save(tmp_path / f"{b}.dimodel")
        if b == "16":  # what predict does: the depth comes from the file
            m = InspectionModel.load(tmp_path / "16.dimodel", device="cpu")
            assert m.value_range.bit_depth == 12
        [(_, pred, img, err)] = list(m.predict_paths([tmp_path / b / "test/spot.png"]))
        assert err is None and (img[:, :, 0] == as_8bit(spot, 12)).all()
        scores[b] = pred.score
    cfg, _ = load_model_file(tmp_path / "16.dimodel")
    assert cfg["input"]["bit_depth"] == 12 and cfg["input"]["source"] == "measured"
    assert load_model_file(tmp_path / "8.dimodel")[0]["input"]["bit_depth"] is None
    assert scores["16"] == pytest.approx(scores["8"], rel=1e-5)


def test_a_deep_image_given_to_a_model_of_8bit_images_is_read_by_the_standalone_rule_and_warned(tmp_path, caplog):
    """A station whose camera switched to Mono12 after an 8-bit fit: every part looked NOK and nothing
    said why. The image is read as without a model (16-bit container -> /257) and a warning names it."""
    Image.fromarray(np.full((16, 16, 3), 100, np.uint8)).save(tmp_path / "good.png")
    vr = measure_value_range([tmp_path / "good.png"])
    assert vr == EIGHT_BIT and ValueRange.from_json(vr.to_json()) == vr
    deep = np.full((16, 16), 4080, np.uint16)
    cv2.imwrite(str(tmp_path / "mono12.png"), deep)
    with caplog.at_level("WARNING", logger="engine.value_range"):
        got = read_image(tmp_path / "mono12.png", vr)
    assert (got == read_image(tmp_path / "mono12.png", STANDALONE)).all()
    assert (got == round(4080 / 257)).all()
    assert any("mono12.png" in r.getMessage() and "learned from 8-bit images" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="engine.value_range"):
        read_image(tmp_path / "mono12.png", STANDALONE)  # no model: nothing to compare with
        read_image(tmp_path / "good.png", vr)  # an 8-bit image for an 8-bit model
    assert not caplog.records
