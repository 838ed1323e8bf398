"""Ground-truth masks that are not what the pixel metrics assume: each kind is made here, read with
engine.images.read_mask (and the evaluate path), and compared with the intended binary mask."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from engine.datasets import check_mask_sizes, load_category
from engine.errors import DatasetError, ImageReadError
from engine.images import read_mask
from engine.metrics import aupro, pixel_auroc


def _truth(h: int = 48, w: int = 64) -> np.ndarray:
    """A clean binary mask: two rectangles and a disc."""
    m = np.zeros((h, w), bool)
    m[5:15, 8:20] = True
    m[30:40, 40:60] = True
    yy, xx = np.mgrid[:h, :w]
    m |= (yy - 24) ** 2 + (xx - 30) ** 2 < 16
    return m


def _jpeg_ringed(m: np.ndarray, quality: int = 90) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", m.astype(np.uint8) * 255, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def test_jpeg_ringed_mask_reads_as_the_clean_mask_and_is_flagged_non_binary(tmp_path):
    truth = _truth()
    ringed = _jpeg_ringed(truth)
    assert ((ringed > 0) & ~truth).sum() > 0  # the fixture really has grey ringing outside the defect
    Image.fromarray(ringed).save(tmp_path / "m.png")
    notes = {}
    out = read_mask(tmp_path / "m.png", notes=notes)
    assert notes["non_binary"] and notes["resized_from"] is None
    # mid-grey cut: what > 127 gives on the decoded pixels, computed independently
    np.testing.assert_array_equal(out, ringed > 127)
    assert (out != truth).sum() <= 0.01 * truth.sum()  # ringing is gone, edges within 1 %


@pytest.mark.parametrize("kind", ["L 0/255", "L 0/1", "labels 0/1/2", "1-bit", "16-bit 0/65535", "16-bit 0/1",
                                  "16-bit ringed", "RGB white", "RGB red", "RGBA red", "palette", "float 0/1",
                                  "jpeg file"])
def test_mask_kinds_read_as_the_intended_binary_mask(tmp_path, kind):
    truth = _truth()
    t8 = truth.astype(np.uint8)
    path = tmp_path / ("m.jpg" if kind == "jpeg file" else "m.tif" if kind == "float 0/1" else "m.png")
    binary = True
    if kind == "L 0/255":
        Image.fromarray(t8 * 255).save(path)
    elif kind == "L 0/1":
        Image.fromarray(t8).save(path)
    elif kind == "labels 0/1/2":
        lab = t8.copy()
        lab[30:40, 40:60] *= 2  # a second defect class
        Image.fromarray(lab).save(path)
        binary = False
    elif kind == "1-bit":
        Image.fromarray(truth).convert("1").save(path)
    elif kind == "16-bit 0/65535":
        Image.fromarray(truth.astype(np.uint16) * 65535).save(path)
    elif kind == "16-bit 0/1":
        Image.fromarray(truth.astype(np.uint16)).save(path)
    elif kind == "16-bit ringed":
        a = truth.astype(np.uint16) * 65535
        a[~truth & (np.roll(truth, 1, 0) | np.roll(truth, 1, 1))] = 3000  # faint halo
        cv2.imwrite(str(path), a)
        binary = False
    elif kind in ("RGB white", "RGB red", "RGBA red"):
        rgb = np.zeros(truth.shape + (3,), np.uint8)
        rgb[truth] = (255, 255, 255) if kind == "RGB white" else (200, 0, 0)
        img = Image.fromarray(rgb)
        (img.convert("RGBA") if kind == "RGBA red" else img).save(path)
    elif kind == "palette":  # VOC-style: index 1 drawn in dark red (128, 0, 0)
        p = Image.fromarray(t8, "P")
        p.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)
        p.save(path)
    elif kind == "float 0/1":
        Image.fromarray(truth.astype(np.float32), "F").save(path)
    elif kind == "jpeg file":
        Image.fromarray(t8 * 255).save(path, quality=75)
        binary = False
    notes = {}
    out = read_mask(path, notes=notes)
    assert out.dtype == bool and out.shape == truth.shape
    if kind == "jpeg file":
        assert (out != truth).sum() <= 0.02 * truth.sum()
    else:
        np.testing.assert_array_equal(out, truth)
    assert notes["non_binary"] == (not binary)


def test_mask_of_another_size_same_aspect_is_resized_and_other_aspect_is_refused(tmp_path):
    truth = _truth(48, 64)
    small = truth[::2, ::2]
    Image.fromarray(small.astype(np.uint8) * 255).save(tmp_path / "half.png")
    notes = {}
    out = read_mask(tmp_path / "half.png", (48, 64), notes)
    assert notes["resized_from"] == (24, 32)
    np.testing.assert_array_equal(out, np.repeat(np.repeat(small, 2, 0), 2, 1))  # nearest-neighbour x2
    Image.fromarray(np.zeros((48, 48), np.uint8)).save(tmp_path / "square.png")
    with pytest.raises(ImageReadError) as e:
        read_mask(tmp_path / "square.png", (48, 64))
    msg = str(e.value)
    assert "square.png" in msg and "48x48" in msg and "64x48" in msg and "\n" not in msg


def test_unreadable_mask_is_a_one_line_error_naming_it(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ImageReadError, match="bad.png: cannot read mask") as e:
        read_mask(tmp_path / "bad.png")
    assert "\n" not in str(e.value)


def test_ringed_masks_give_the_pixel_metrics_of_the_clean_ones():
    rng = np.random.default_rng(0)
    truths = [_truth(), np.zeros((48, 64), bool), np.roll(_truth(), 7, 1)]
    maps = [t * 1.0 + rng.normal(0, 0.6, t.shape) for t in truths]
    ringed = []
    for t in truths:
        buf = io.BytesIO()
        Image.fromarray(_jpeg_ringed(t)).save(buf, "png")
        buf.seek(0)
        tmp = Image.open(buf)
        ringed.append(np.asarray(tmp) > 127)
    clean_auroc, clean_pro = pixel_auroc(truths, maps), aupro(truths, maps)
    assert abs(pixel_auroc(ringed, maps) - clean_auroc) < 2e-3 and abs(aupro(ringed, maps) - clean_pro) < 5e-3
    # the old "any non-zero pixel" rule would have shifted AUPRO well beyond that
    nonzero = [_jpeg_ringed(t) > 0 for t in truths]
    assert abs(aupro(nonzero, maps) - clean_pro) > 0.01


def _category(root, mask_sizes, stems=None):
    """A category with one image per entry of ``mask_sizes`` ((h, w) of its mask, or None: no mask)."""
    for sub in ("train/good", "test/good", "test/crack", "ground_truth/crack"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    img = np.full((48, 64, 3), 128, np.uint8)
    for i in range(2):
        Image.fromarray(img).save(root / "train/good" / f"{i}.png")
        Image.fromarray(img).save(root / "test/good" / f"{i}.png")
    for i, hw in enumerate(mask_sizes):
        Image.fromarray(img).save(root / "test/crack" / f"{i}.png")
        if hw is not None:
            name = (stems or {}).get(i, f"{i}_mask.png")
            Image.fromarray(np.full(hw, 255, np.uint8)).save(root / "ground_truth/crack" / name)
    return load_category(root)


def test_mask_lookup_accepts_label_gt_and_jpeg_names(tmp_path):
    cat = _category(tmp_path / "c", [(48, 64)] * 4 + [None],
                    stems={0: "0_mask.png", 1: "1_label.png", 2: "2_gt.bmp", 3: "3_mask.jpg"})
    got = {s.path.name: (s.mask_path.name if s.mask_path else None) for s in cat.test if s.label == 1}
    assert got == {"0.png": "0_mask.png", "1.png": "1_label.png", "2.png": "2_gt.bmp", "3.png": "3_mask.jpg",
                   "4.png": None}


def test_mask_sizes_are_checked_before_any_work(tmp_path):
    cat = _category(tmp_path / "ok", [(48, 64), (24, 32)])
    resized = check_mask_sizes(cat)
    assert len(resized) == 1 and "1_mask.png: 32x24 px, image 64x48 px" in resized[0]
    bad = _category(tmp_path / "bad", [(48, 64), (50, 50)])
    with pytest.raises(DatasetError) as e:
        check_mask_sizes(bad)
    assert "1_mask.png" in str(e.value) and "50x50" in str(e.value) and "re-export" in str(e.value)
