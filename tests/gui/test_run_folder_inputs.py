"""The app's Run folder follows linked sub-folders and says what it left out (engine.listing)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from tests.conftest import texture
from tests.gui.window_helpers import open_recipe, wait_idle


def test_run_folder_follows_a_linked_folder_and_says_what_it_skipped(qtbot, window, toy_model, tmp_path):
    rng = np.random.default_rng(5)
    run = tmp_path / "run"
    for rel in ("lineA/a0.png", "lineA/a1.png", "../far/lineB/b0.png", "../far/lineB/b1.png"):
        p = (run / rel).resolve()
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(texture(rng)).save(p)
    os.symlink(tmp_path / "far/lineB", run / "lineB")  # a mounted share / folder link
    os.symlink(run, run / "lineA/back")  # a loop
    (run / "notes.txt").write_text("shift 2")
    open_recipe(qtbot, window, toy_model)
    window.run_folder(run)
    assert window.message_bar.level == "warning"
    text = window.message_bar.label.text()
    assert text == f"{run}: skipped 2 entries: 1 link loop (to a folder that contains it): back; " \
                   f"1 not an image type: notes.txt"
    wait_idle(qtbot, window)
    names = sorted(os.path.basename(r.image_path) for r in window.results)
    assert names == ["a0.png", "a1.png", "b0.png", "b1.png"]


def test_browsing_back_reads_a_deep_image_again_with_the_model_bit_depth(qtbot, window, toy_model, tmp_path):
    """A result shown again is read from its file the way the model inspected it (its ValueRange),
    not with the standalone rule (which would show 12-bit data almost black)."""
    import cv2

    from engine.value_range import ValueRange

    run = tmp_path / "deep"
    run.mkdir()
    a12 = np.tile(np.linspace(0, 4095, 64).round().astype(np.uint16), (64, 1))
    cv2.imwrite(str(run / "a.png"), a12)
    cv2.imwrite(str(run / "b.png"), a12[:, ::-1].copy())
    open_recipe(qtbot, window, toy_model)
    window.worker._model.value_range = ValueRange(bit_depth=12, source="option")  # as fitted on 12-bit images
    window.run_folder(run)
    wait_idle(qtbot, window)
    window.browser.show(0)  # not the newest: its pixels come from the file again
    shown = window.view.image_item.image
    expected = np.rint(a12 * 255.0 / 4095).astype(np.uint8)
    assert shown.shape[:2] == (64, 64) and np.array_equal(shown[:, :, 0], expected)
