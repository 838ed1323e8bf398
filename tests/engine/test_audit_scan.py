"""The audit's streaming walk (engine/audit/scan.py): the same files as a recursive listing, in a
stable per-folder order, linked folders once, lazily."""

from __future__ import annotations

import os
import shutil

import numpy as np
from PIL import Image

from engine import listing
from engine.audit.scan import ArchiveScan, count_images
from engine.listing import list_images


def img(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    return path


def test_same_files_as_a_recursive_listing_in_depth_first_name_order(tmp_path):
    root = tmp_path / "arc"
    for rel in ("z.png", "line1/2026-11-02/lot7/b.PNG", "line1/2026-11-02/lot7/a.jpg", "line1/2026-11-01/x.bmp",
                "line10/y.tif", "line2/c.png", "ground_truth/bad/m.png"):
        img(root / rel)
    (root / "line2/notes.txt").write_text("x")
    scan = ArchiveScan([root])
    files = list(scan)
    expected = list_images(root, recursive=True)
    assert sorted(f.path for f in files) == sorted(str(p) for p in expected)
    rels = [f.rel for f in files]
    assert rels == sorted(rels, key=lambda r: r.split("/"))  # each folder's entries by name, depth first
    assert rels[0] == "line1/2026-11-01/x.bmp" and rels[-1] == "z.png"
    by_rel = {f.rel: f for f in files}
    f = by_rel["line1/2026-11-02/lot7/b.PNG"]
    st = os.stat(root / f.rel)
    assert (f.root, f.group, f.path, f.size, f.mtime_ns) == (str(root), "line1/2026-11-02/lot7",
                                                             str(root / f.rel), st.st_size, st.st_mtime_ns)
    assert by_rel["z.png"].group == ""
    assert scan.skipped == {listing.MASKS: 1, listing.NOT_IMAGE: 1} and scan.found == 6
    assert "1 mask folder" in scan.skipped_summary()
    assert count_images([root]) == 6


def test_linked_folders_once_loops_and_hard_links_said(tmp_path):
    root = tmp_path / "in"
    img(root / "a/x.png")
    img(root / "b/y.png")
    img(tmp_path / "elsewhere/z.png")
    os.symlink(tmp_path / "elsewhere", root / "linked")
    os.symlink(root, root / "a/back")
    os.symlink(root / "b", root / "c")
    os.link(root / "a/x.png", root / "b/x_hard.png")
    os.symlink(root / "gone", root / "dangling.png")
    scan = ArchiveScan([root, root / "b"])  # b given again: already walked
    rels = [f.rel for f in scan]
    assert rels == ["a/x.png", "b/y.png", "linked/z.png"]
    assert scan.skipped == {listing.LOOP: 1, listing.SAME_FOLDER: 2, listing.SAME_FILE: 1, listing.BROKEN_LINK: 1}


def test_out_folder_inside_the_archive_is_not_searched(tmp_path):
    img(tmp_path / "arc/a.png")
    img(tmp_path / "arc/audit/report/top1.png")
    scan = ArchiveScan([tmp_path / "arc"], exclude=tmp_path / "arc/audit")
    assert [f.rel for f in scan] == ["a.png"] and scan.skipped == {listing.EXCLUDED: 1}
    assert count_images([tmp_path / "arc"], exclude=tmp_path / "arc/audit") == 1


def test_the_walk_is_lazy(tmp_path):
    """The first file comes before later folders are read: a folder removed after it is never seen."""
    img(tmp_path / "arc/a/1.png")
    img(tmp_path / "arc/b/2.png")
    it = iter(ArchiveScan([tmp_path / "arc"]))
    assert next(it).rel == "a/1.png"
    shutil.rmtree(tmp_path / "arc/b")
    assert list(it) == []


def test_missing_root_is_one_clear_error(tmp_path):
    import pytest

    from engine.errors import DatasetError

    with pytest.raises(DatasetError, match="no such file or folder"):
        ArchiveScan([tmp_path / "nope"])
