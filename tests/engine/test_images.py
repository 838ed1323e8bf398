import numpy as np
import pytest
from PIL import Image

from engine.errors import DatasetError, ImageReadError
from engine.images import expand_paths, list_images, read_image, read_mask


def test_grayscale_is_replicated_to_three_channels(tmp_path):
    a = np.arange(64 * 32, dtype=np.uint8).reshape(32, 64)
    Image.fromarray(a, "L").save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (32, 64, 3) and out.dtype == np.uint8
    assert all((out[..., c] == a).all() for c in range(3))


def test_16bit_is_scaled_by_257(tmp_path):
    a = np.array([[0, 257, 65535, 25700]] * 8, dtype=np.uint16)
    a = np.tile(a, (1, 2))
    Image.fromarray(a).save(tmp_path / "d.png")
    out = read_image(tmp_path / "d.png")
    assert out[0, :4, 0].tolist() == [0, 1, 255, 100]


def test_rgba_is_composited_over_black(tmp_path):
    a = np.zeros((8, 8, 4), np.uint8)
    a[..., 0] = 200
    a[..., 3] = 128  # alpha ~ 0.502
    Image.fromarray(a, "RGBA").save(tmp_path / "t.png")
    out = read_image(tmp_path / "t.png")
    assert out[0, 0].tolist() == [round(200 * 128 / 255), 0, 0]


@pytest.mark.parametrize("ext", ["png", "jpg", "bmp", "tiff"])
def test_formats_read_with_odd_sizes(tmp_path, ext):
    a = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / f"x.{ext}")
    out = read_image(tmp_path / f"x.{ext}")
    assert out.shape == (37, 53, 3)
    if ext != "jpg":
        assert (out == a).all()


def test_corrupt_file_raises_with_its_name(tmp_path):
    p = tmp_path / "broken.png"
    p.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    with pytest.raises(ImageReadError, match="broken.png"):
        read_image(p)


def test_truncated_jpeg_is_refused_not_zero_filled(tmp_path):
    a = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut.jpg"):
        read_image(tmp_path / "cut.jpg")


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="no images"):
        list_images(tmp_path)
    with pytest.raises(DatasetError, match="no such file"):
        expand_paths([tmp_path / "missing"])


def test_mask_is_binarised_and_resized_nearest(tmp_path):
    m = np.zeros((4, 4), np.uint8)
    m[:2, :2] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    out = read_mask(tmp_path / "m.png", (8, 8))
    assert out.dtype == bool and out.sum() == 16 and out[:4, :4].all()


def test_recursive_listing_skips_mask_folders_and_an_excluded_results_folder(tmp_path):
    img = np.zeros((8, 8, 3), np.uint8)
    for rel in ("train/good/a.png", "test/bad/b.png", "ground_truth/bad/b_mask.png", "results/overlays/x.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(tmp_path / rel)
    names = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path, recursive=True,
                                                                       exclude=tmp_path / "results")]
    assert names == ["test/bad/b.png", "train/good/a.png"]
    with pytest.raises(DatasetError, match="add --recursive"):
        list_images(tmp_path / "train", recursive_option="--recursive")  # images only in sub-folders
    with pytest.raises(DatasetError, match=r"point to one of them\.$"):  # no option named unless the caller has it
        list_images(tmp_path / "train")
