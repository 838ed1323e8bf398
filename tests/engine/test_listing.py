"""Listing folders (engine.listing): linked folders followed once, every skipped entry counted
with its reason, fast and clear errors for empty folders and folders of non-images."""

import os

import numpy as np
import pytest
from PIL import Image

from engine import listing
from engine.datasets import load_category
from engine.errors import DatasetError
from engine.listing import expand_paths, list_images


def img(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    return path


def rel(paths, root):
    return [p.relative_to(root).as_posix() for p in paths]


def reasons(listing_, root):
    return sorted((p.relative_to(root).as_posix(), why) for p, why in listing_.skipped)


def test_a_linked_sub_folder_is_followed_like_a_real_one(tmp_path):
    """The case recursive-skips-symlinked-folders: good/lineB links to a folder elsewhere."""
    for n in ("0", "1", "2"):
        img(tmp_path / "good/lineA" / f"{n}.png")
        img(tmp_path / "elsewhere/lineB" / f"1{n}.png")
    os.symlink(tmp_path / "elsewhere/lineB", tmp_path / "good/lineB")
    found = list_images(tmp_path / "good", recursive=True)
    assert rel(found, tmp_path / "good") == ["lineA/0.png", "lineA/1.png", "lineA/2.png",
                                             "lineB/10.png", "lineB/11.png", "lineB/12.png"]
    assert found.skipped == [] and found.skipped_summary() == ""


def test_link_loops_and_second_paths_are_visited_once_and_said(tmp_path):
    root = tmp_path / "in"
    img(root / "a/x.png")
    img(root / "b/y.png")
    os.symlink(root, root / "a/back")  # loop: a link to a folder that contains it
    os.symlink(root / "b", root / "c")  # b a second time
    os.symlink(root / "a/x.png", root / "b/x_link.png")  # the same file a second time
    os.symlink(root / "gone", root / "dangling.png")
    (root / "notes.txt").write_text("x")
    (root / "Thumbs.db").write_bytes(b"\0")
    (root / "photo.heic").write_bytes(b"\0")
    found = list_images(root, recursive=True)
    assert rel(found, root) == ["a/x.png", "b/y.png"]
    assert reasons(found, root) == sorted([
        ("a/back", listing.LOOP), ("c", listing.SAME_FOLDER), ("b/x_link.png", listing.SAME_FILE),
        ("dangling.png", listing.BROKEN_LINK), ("notes.txt", listing.NOT_IMAGE), ("Thumbs.db", listing.NOT_IMAGE),
        ("photo.heic", listing.UNSUPPORTED)])
    text = found.skipped_summary()
    assert text.startswith("skipped 7 entries: ") and "2 not an image type: Thumbs.db, notes.txt;" in text
    assert "1 link loop (to a folder that contains it): back;" in text


def test_non_recursive_listing_counts_sub_folders_and_names_the_option_only_when_given(tmp_path):
    img(tmp_path / "a.png")
    img(tmp_path / "sub/b.png")
    found = list_images(tmp_path)
    assert rel(found, tmp_path) == ["a.png"] and reasons(found, tmp_path) == [("sub", listing.SUBFOLDER)]
    assert found.skipped_summary(hint="add --recursive") == \
        "skipped 1 entry: 1 sub-folder, not searched: sub (add --recursive)"


def test_mask_and_output_folders_are_not_searched_and_said(tmp_path):
    img(tmp_path / "test/bad/b.png")
    img(tmp_path / "ground_truth/bad/b_mask.png")
    img(tmp_path / "results/overlays/x.png")
    found = list_images(tmp_path, recursive=True, exclude=tmp_path / "results")
    assert rel(found, tmp_path) == ["test/bad/b.png"]
    assert reasons(found, tmp_path) == [("ground_truth", listing.MASKS), ("results", listing.EXCLUDED)]


def test_empty_folder_and_folder_of_non_images_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"empty: no images found .* The folder is empty\."):
        list_images(tmp_path / "empty", recursive=True)
    (tmp_path / "docs").mkdir()
    for n in ("a.txt", "b.csv", "c.pdf"):
        (tmp_path / "docs" / n).write_text("x")
    with pytest.raises(DatasetError, match=r"It holds no image file; skipped 3 entries: 3 not an image type: "
                                           r"a\.txt, b\.csv, c\.pdf\."):
        list_images(tmp_path / "docs")
    with pytest.raises(DatasetError, match="no such folder"):
        list_images(tmp_path / "missing")
    with pytest.raises(DatasetError, match="not a folder"):
        list_images(tmp_path / "docs" / "a.txt")


def test_an_empty_top_folder_does_not_walk_the_whole_tree_below(tmp_path, monkeypatch):
    """The 'images sit one level deeper' hint looks one level down only: a deep tree is not walked
    (counted with the real os.scandir)."""
    deep = tmp_path / "top"
    d = deep
    for i in range(30):
        d = d / f"level{i}"
    img(d / "far.png")
    calls = []
    real = os.scandir

    def counting(path="."):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(listing.os, "scandir", counting)
    with pytest.raises(DatasetError, match="The folder is empty|Point to the folder"):
        list_images(deep)
    assert len(calls) <= 3
    img(deep / "sub/near.png")
    with pytest.raises(DatasetError, match="Its sub-folders hold images: point to one of them, or add --recursive"):
        list_images(deep, recursive_option="--recursive")


def test_expand_paths_takes_each_file_once_and_says_the_second_mention(tmp_path):
    a = img(tmp_path / "f/a.png")
    img(tmp_path / "f/b.png")
    found = expand_paths([a, tmp_path / "f"])
    assert rel(found, tmp_path) == ["f/a.png", "f/b.png"]
    assert reasons(found, tmp_path) == [("f/a.png", listing.GIVEN_TWICE)]
    with pytest.raises(DatasetError, match="no such file or folder"):
        expand_paths([tmp_path / "nothing"])


def test_category_keeps_what_its_folders_held_besides_images(synthetic_mvtec):
    (synthetic_mvtec / "train/good/readme.txt").write_text("x")
    (synthetic_mvtec / "test/scratch/Thumbs.db").write_bytes(b"\0")
    (synthetic_mvtec / "test/notes.md").write_text("x")
    cat = load_category(synthetic_mvtec)
    assert len(cat.train) == 12 and len(cat.test) == 8
    got = sorted((p.name, why) for p, why in cat.skipped)
    assert got == [("Thumbs.db", listing.NOT_IMAGE), ("notes.md", "not in a test/<good|defect> folder"),
                   ("readme.txt", listing.NOT_IMAGE)]
    assert cat.skipped_summary().startswith("skipped 3 entries")


def test_evaluate_layout_error_names_no_option_evaluate_lacks(synthetic_mvtec):
    good = synthetic_mvtec / "train/good"
    (good / "line1").mkdir()
    for p in list(good.glob("*.png")):
        p.rename(good / "line1" / p.name)
    with pytest.raises(DatasetError) as exc:
        load_category(synthetic_mvtec)
    msg = str(exc.value)
    assert "--" not in msg and "sit directly in" in msg and "point to one of them" in msg


def test_pipes_are_skipped_not_read(tmp_path):
    """A named pipe called *.png blocked predict for ever (opening it waits for a writer): listing
    skips anything that is not a regular file, with its reason, and refuses one given directly."""
    import os

    from engine.errors import DatasetError
    from engine.listing import NOT_REGULAR, expand_paths

    img(tmp_path / "a.png")
    os.mkfifo(tmp_path / "pipe.png")
    got = expand_paths([tmp_path])
    assert list(got) == [tmp_path / "a.png"]
    assert (tmp_path / "pipe.png", NOT_REGULAR) in got.skipped
    with pytest.raises(DatasetError, match="not a regular file"):
        expand_paths([tmp_path / "pipe.png"])
