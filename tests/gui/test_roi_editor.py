"""Region-of-interest editor: geometry, drawing with the mouse, editing, files, the New-recipe
dialog's region and the outline in the inspection view.

Pixel counts are worked out by hand from the outline-inclusive rule of :mod:`engine.roi` (a
rectangle with corners on pixels ``(x0, y0)`` and ``(x1, y1)`` holds ``(x1 - x0 + 1) * (y1 - y0 + 1)``
pixels). The images are 80 x 64 (wider than high) so that a swapped x / y shows.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QEvent, QPointF, Qt, QTimer
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

from engine.roi import RegionOfInterest
from gui.image_view_widget import InspectionView
from gui.recipe_dialog import NewRecipeDialog
from gui.roi_editor import RoiEditorDialog
from gui.roi_geometry import (build_region, describe, distinct_vertices, image_to_view, outline_xy, percent,
                              polygon_problem, rectangle, view_to_image)
from tests.gui.window_helpers import open_recipe, wait_idle

W, H = 80, 64


def gray(w: int = W, h: int = H) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(60, 200, (h, w, 3), dtype=np.uint8)


@pytest.fixture
def editor(qtbot):
    dlg = RoiEditorDialog(gray())
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitExposed(dlg)
    qtbot.wait(50)  # let the layout settle before mapping image points to the screen
    dlg.fit_view()
    return dlg


def screen_point(dlg: RoiEditorDialog, vx: float, vy: float):
    """Viewport point (QPoint) showing view coordinates ``(vx, vy)``."""
    return dlg.graphics.mapFromScene(dlg.view.mapViewToScene(QPointF(vx, vy)))


def click(qtbot, dlg, x: float, y: float, centre: bool = True) -> None:
    """Left click on pixel ``(x, y)``'s centre (``centre=False``: at view coordinates ``(x, y)``)."""
    pt = screen_point(dlg, x + 0.5, y + 0.5) if centre else screen_point(dlg, x, y)
    qtbot.mouseMove(dlg.graphics.viewport(), pt)
    qtbot.mouseClick(dlg.graphics.viewport(), Qt.MouseButton.LeftButton, pos=pt)


def double_click(qtbot, dlg, x: float, y: float) -> None:
    """What Qt delivers for a double-click: press, release, double-click, release."""
    pt = screen_point(dlg, x + 0.5, y + 0.5)
    vp = dlg.graphics.viewport()
    qtbot.mouseMove(vp, pt)
    qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=pt)
    qtbot.mouseDClick(vp, Qt.MouseButton.LeftButton, pos=pt)
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=pt)


def pixels(dlg: RoiEditorDialog) -> int:
    roi = dlg.roi()
    return H * W if roi is None else int(roi.pixel_mask(H, W).sum())


# ---------------------------------------------------------------------- geometry (no Qt)
def test_a_clicked_point_is_the_pixel_under_it_clamped_to_the_image():
    assert view_to_image(10.2, 20.9, W, H) == (10.0, 20.0)
    assert view_to_image(-3.0, 70.0, W, H) == (0.0, H - 1.0)
    assert view_to_image(W + 0.4, -0.1, W, H) == (W - 1.0, 0.0)
    assert image_to_view(10, 20) == (10.5, 20.5)  # the pixel's centre on screen
    assert rectangle((30, 5), (10, 20)) == [(10, 5), (30, 5), (30, 20), (10, 20)]


def test_summary_counts_polygons_ignore_regions_and_the_share_kept():
    roi = RegionOfInterest(include=[rectangle((0, 0), (39, 63))], exclude=[rectangle((0, 0), (15, 15))],
                           ref_width=W, ref_height=H)
    # 40 x 64 = 2560 kept by the region, 16 x 16 = 256 cut out: 2304 / 5120 = 45 %
    assert describe(roi, H, W) == "region: 1 polygon, 1 ignore region, 45 % of the image"
    two = RegionOfInterest(include=[rectangle((0, 0), (9, 9)), rectangle((20, 20), (29, 29))], ref_width=W,
                           ref_height=H)
    assert describe(two, H, W) == "region: 2 polygons, 4 % of the image"  # 200 / 5120 = 3.9 %
    assert describe(None, H, W) == "region: whole image (100 %)"
    ignore_only = RegionOfInterest(exclude=[rectangle((0, 0), (79, 31))], ref_width=W, ref_height=H)
    assert describe(ignore_only, H, W) == "region: whole image, 1 ignore region, 50 % of the image"
    assert percent(0.001) == "< 1 %" and percent(0.999) == "> 99 %" and percent(0.0) == "0 %"
    assert build_region([], [], W, H) is None


def test_a_shape_without_area_is_named_not_taken():
    assert "at least 3 distinct corners (got 2)" in polygon_problem([(1, 1), (5, 5), (5, 5)])
    assert "no area" in polygon_problem([(0, 0), (5, 5), (10, 10)])
    assert polygon_problem([(0, 0), (5, 0), (0, 5)]) is None
    assert distinct_vertices([(1, 1), (1, 1), (4, 1), (4, 4), (1, 1)]) == [(1, 1), (4, 1), (4, 4)]


def test_outline_is_closed_in_view_coordinates_with_gaps_between_polygons():
    x, y = outline_xy([[(0, 0), (4, 0), (4, 2)], [(10, 10), (12, 10), (12, 12)]])
    assert list(x[:4]) == [0.5, 4.5, 4.5, 0.5] and list(y[:4]) == [0.5, 0.5, 2.5, 0.5]
    assert np.isnan(x[4]) and np.isnan(x[-1]) and len(x) == 10


# ---------------------------------------------------------------------- drawing with the mouse
def test_clicked_polygon_closed_by_double_click_is_the_region(qtbot, editor):
    editor.add_region_button.click()
    assert editor.drawing
    corners = [(10, 10), (40, 10), (40, 20), (20, 20), (20, 40)]
    for x, y in corners:
        click(qtbot, editor, x, y)
    double_click(qtbot, editor, 10, 40)  # last corner, then closes (no repeated corner)
    assert not editor.drawing
    assert editor.polygons("include") == [[(10, 10), (40, 10), (40, 20), (20, 20), (20, 40), (10, 40)]]
    # an L: rows 10..20 x columns 10..40 (11 x 31 = 341) + rows 21..40 x columns 10..20 (20 x 11 = 220)
    assert pixels(editor) == 561
    assert editor.status_label.text() == "region: 1 polygon, 11 % of the image"  # 561 / 5120
    assert editor.roi().ref_width == W and editor.roi().ref_height == H


def test_enter_closes_the_polygon_and_esc_drops_it_without_closing_the_dialog(qtbot, editor):
    editor.start_drawing("include", "polygon")
    for x, y in [(5, 5), (30, 5), (5, 30)]:
        click(qtbot, editor, x, y)
    qtbot.keyClick(editor.graphics, Qt.Key.Key_Escape)
    assert not editor.drawing and editor.polygons("include") == [] and editor.isVisible()
    editor.start_drawing("include", "polygon")
    for x, y in [(5, 5), (30, 5), (5, 30)]:
        click(qtbot, editor, x, y)
    qtbot.keyClick(editor.graphics, Qt.Key.Key_Return)
    assert editor.polygons("include") == [[(5, 5), (30, 5), (5, 30)]] and editor.isVisible()
    editor.start_drawing("include", "polygon")
    click(qtbot, editor, 50, 50)
    click(qtbot, editor, 60, 60)
    qtbot.keyClick(editor.graphics, Qt.Key.Key_Return)  # two corners: refused, drawing goes on
    assert editor.drawing and "at least 3 distinct corners" in editor.error_label.text()
    assert len(editor.polygons("include")) == 1


def test_rectangles_past_the_border_keep_the_whole_image_and_an_ignore_rectangle_cuts_out(qtbot, editor):
    editor.shape_combo.setCurrentIndex(editor.shape_combo.findData("rectangle"))
    editor.add_region_button.click()
    click(qtbot, editor, -0.8, -0.8, centre=False)  # just outside the top-left corner (view coordinates)
    click(qtbot, editor, W + 0.8, H + 0.8, centre=False)
    assert editor.polygons("include") == [[(0, 0), (W - 1, 0), (W - 1, H - 1), (0, H - 1)]]
    assert pixels(editor) == W * H
    editor.add_ignore_button.click()
    click(qtbot, editor, 29, 19)
    click(qtbot, editor, 10, 10)  # opposite corners in any order
    assert editor.polygons("exclude") == [[(10, 10), (29, 10), (29, 19), (10, 19)]]
    assert pixels(editor) == W * H - 20 * 10
    assert editor.status_label.text() == "region: 1 polygon, 1 ignore region, 96 % of the image"
    shade = editor.shade_item.image  # pixels outside the region are shaded, the others left clear
    assert shade.shape == (H, W, 4) and shade[15, 20, 3] > 0 and shade[5, 5, 3] == 0
    assert editor.shape_kinds() == ["include", "exclude"]


def test_a_click_on_an_existing_shape_while_drawing_adds_a_corner_to_the_new_one(qtbot, editor):
    editor.add_polygon("include", rectangle((0, 0), (60, 50)))
    editor.start_drawing("exclude", "polygon")
    for x, y in [(30, 0), (40, 10), (30, 20)]:  # (30, 0) lies on the region's top edge
        click(qtbot, editor, x, y)
    qtbot.keyClick(editor.graphics, Qt.Key.Key_Enter)
    assert editor.polygons("exclude") == [[(30, 0), (40, 10), (30, 20)]]
    assert editor.polygons("include") == [[(0, 0), (60, 0), (60, 50), (0, 50)]]  # untouched: no corner added


def drag(qtbot, dlg, a: tuple[float, float], b: tuple[float, float]) -> None:
    """Press on pixel ``a``'s centre, move with the button held to pixel ``b``'s, release."""
    vp = dlg.graphics.viewport()
    start, end = screen_point(dlg, a[0] + 0.5, a[1] + 0.5), screen_point(dlg, b[0] + 0.5, b[1] + 0.5)
    qtbot.mouseMove(vp, start)
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=start)
    for t in np.linspace(0.1, 1.0, 8):  # moves with the button held (QTest's mouseMove holds none)
        pos = QPointF(start + (end - start) * t)
        QApplication.sendEvent(vp, QMouseEvent(QEvent.Type.MouseMove, pos, vp.mapToGlobal(pos), Qt.MouseButton.NoButton,
                                               Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))
        qtbot.wait(15)  # pyqtgraph drops mouse moves closer than 10 ms
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=end)


def test_dragging_the_inside_of_a_shape_moves_all_its_corners(qtbot, editor):
    editor.add_polygon("exclude", rectangle((10, 10), (30, 30)))
    drag(qtbot, editor, (20, 20), (45, 25))
    assert editor.polygons("exclude") == [rectangle((35, 15), (55, 35))]


def test_dragging_a_corner_moves_it(qtbot, editor):
    editor.add_polygon("include", rectangle((10, 10), (30, 30)))
    drag(qtbot, editor, (30, 30), (50, 40))
    assert editor.polygons("include") == [[(10, 10), (30, 10), (50, 40), (10, 30)]]
    # the mask and summary follow once the corner rests
    moved = RegionOfInterest(include=[[(10, 10), (30, 10), (50, 40), (10, 30)]], ref_width=W, ref_height=H)
    qtbot.waitUntil(lambda: editor.status_label.text() == describe(moved, H, W), timeout=2000)
    assert describe(moved, H, W) != describe(build_region([rectangle((10, 10), (30, 30))], [], W, H), H, W)


def test_click_selects_a_shape_delete_removes_it_clear_removes_all(qtbot, editor):
    editor.add_polygon("include", rectangle((5, 5), (70, 55)))
    editor.add_polygon("exclude", rectangle((50, 40), (60, 50)))
    editor.select(None)
    click(qtbot, editor, 20, 20)  # inside the region, away from the ignore rectangle
    assert editor.selected == 0 and editor.shape_list.currentRow() == 0
    qtbot.keyClick(editor.graphics, Qt.Key.Key_Delete)
    assert editor.shape_kinds() == ["exclude"] and editor.polygons("include") == []
    assert pixels(editor) == W * H - 11 * 11  # only the ignore rectangle is left: cut out of the whole image
    assert editor.status_label.text() == "region: whole image, 1 ignore region, 98 % of the image"
    editor.shape_list.setCurrentRow(0)  # picking it in the list selects it too
    assert editor.selected == 0
    editor.add_polygon("include", rectangle((0, 0), (9, 9)))
    editor.clear_button.click()
    assert editor.roi() is None and editor.shape_list.count() == 0
    assert editor.status_label.text() == "region: whole image (100 %)"


def test_an_ignore_region_covering_the_region_cannot_be_used(qtbot, editor):
    editor.add_polygon("include", rectangle((10, 10), (20, 20)))
    editor.add_polygon("exclude", rectangle((5, 5), (25, 25)))
    assert "nothing would be judged" in editor.status_label.text()
    editor.buttons.button(editor.buttons.StandardButton.Ok).click()
    assert editor.isVisible() and "keeps no pixel" in editor.error_label.text()


# ---------------------------------------------------------------------- files and reference images
def test_save_then_load_on_an_image_twice_the_size_scales_the_shapes(qtbot, editor, tmp_path):
    editor.add_polygon("include", [(10, 10), (70, 12), (40, 60)])
    editor.add_polygon("exclude", rectangle((30, 20), (45, 30)))
    path = tmp_path / "part.roi.json"
    assert editor.save_roi_file(path)
    data = json.loads(path.read_text())
    assert data["reference_size"] == [W, H]
    assert data["include"] == [[[10.0, 10.0], [70.0, 12.0], [40.0, 60.0]]]
    assert data["exclude"] == [[[30.0, 20.0], [45.0, 20.0], [45.0, 30.0], [30.0, 30.0]]]

    big = RoiEditorDialog(gray(2 * W, 2 * H))
    qtbot.addWidget(big)
    assert big.load_roi_file(path)
    # pixel centre to pixel centre (engine.roi: x * (2W - 1) / (W - 1)), each corner on the nearest pixel
    def on_big(poly):
        return [(np.floor(x * (2 * W - 1) / (W - 1) + 0.5), np.floor(y * (2 * H - 1) / (H - 1) + 0.5)) for x, y in poly]
    assert big.polygons("include") == [on_big([(10, 10), (70, 12), (40, 60)])] == [[(20, 20), (141, 24), (81, 121)]]
    assert big.polygons("exclude") == [on_big(rectangle((30, 20), (45, 30)))]
    assert big.error_label.text() == ""  # same aspect ratio: no warning
    assert big.roi().ref_width == 2 * W
    # the region is the same one: at the original size it keeps the same pixels
    np.testing.assert_array_equal(big.roi().pixel_mask(H, W), RegionOfInterest.load(path).pixel_mask(H, W))


def test_a_damaged_file_is_named_and_changes_nothing(qtbot, editor, tmp_path):
    editor.add_polygon("include", rectangle((10, 10), (20, 20)))
    bad = tmp_path / "bad.roi.json"
    bad.write_text('{"format": "something else"}')
    assert not editor.load_roi_file(bad)
    assert str(bad) in editor.error_label.text() and "not a DINOInspect region" in editor.error_label.text()
    assert editor.polygons("include") == [[(10, 10), (20, 10), (20, 20), (10, 20)]]
    assert not editor.save_roi_file(tmp_path / "missing" / "x.roi.json")
    assert "cannot write the region" in editor.error_label.text()


def test_another_reference_image_keeps_the_shapes_scaled_and_warns_of_another_aspect(qtbot, editor, tmp_path):
    editor.add_polygon("include", rectangle((0, 0), (39, 31)))
    wide = tmp_path / "wide.png"
    Image.fromarray(gray(160, 64)).save(wide)
    assert editor.load_reference_image(wide)
    assert editor.image_size == (64, 160) and "wide.png" in editor.windowTitle()
    assert editor.polygons("include") == [[(0, 0), (78, 0), (78, 31), (0, 31)]]  # x doubled, y kept
    assert "drawn on a 80x64 image" in editor.error_label.text()
    assert not editor.load_reference_image(tmp_path / "nope.png")
    assert "file not found" in editor.error_label.text()


# ---------------------------------------------------------------------- the New-recipe dialog
def make_folder(tmp_path, name="good"):
    good = tmp_path / name
    good.mkdir()
    (good / "0.png").write_bytes(b"not an image")  # the first image is unreadable: the next one is used
    for i in (1, 2, 3):
        Image.fromarray(gray()).save(good / f"{i}.png")
    return good


def test_recipe_dialog_region_button_puts_the_drawn_region_into_the_spec(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("DINOINSPECT_DATA_DIR", str(tmp_path / "appdata"))
    dlg = NewRecipeDialog(good_folder=str(make_folder(tmp_path)))
    qtbot.addWidget(dlg)
    assert dlg.spec().roi is None and dlg.roi_label.text() == "whole image"
    seen = {}

    def draw():  # runs inside the editor's modal loop, as the operator would
        editor = dlg.roi_editor
        seen["title"], seen["size"] = editor.windowTitle(), editor.image_size
        editor.add_polygon("include", rectangle((8, 8), (47, 39)))
        editor.add_polygon("exclude", rectangle((8, 8), (17, 17)))
        editor.buttons.button(editor.buttons.StandardButton.Ok).click()

    QTimer.singleShot(0, draw)
    dlg.roi_button.click()
    assert seen == {"title": "Region of interest — 1.png", "size": (H, W)}
    expected = RegionOfInterest(include=[rectangle((8, 8), (47, 39))], exclude=[rectangle((8, 8), (17, 17))],
                                ref_width=W, ref_height=H)
    assert dlg.spec().roi == expected.to_json()
    # 40 x 32 = 1280 kept, 10 x 10 = 100 cut out: 1180 / 5120 = 23 %
    assert dlg.roi_label.text() == "1 polygon, 1 ignore region, 23 % of the image (drawn on 80x64)"

    def cancel():
        dlg.roi_editor.clear()
        dlg.roi_editor.reject()

    QTimer.singleShot(0, cancel)
    dlg.roi_button.click()  # reopened with the region; Cancel keeps it
    assert dlg.spec().roi == expected.to_json() and dlg.roi_editor is None


def test_recipe_dialog_says_why_there_is_no_image_to_draw_on(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("DINOINSPECT_DATA_DIR", str(tmp_path / "appdata"))
    empty = tmp_path / "empty"
    empty.mkdir()
    dlg = NewRecipeDialog(good_folder=str(empty))
    qtbot.addWidget(dlg)
    dlg.roi_button.click()
    assert dlg.roi_editor is None and f"{empty}: no images found" in dlg.error_label.text()
    dlg.folder_edit.setText("")
    dlg.roi_button.click()
    assert dlg.error_label.text().startswith("Choose the folder of good images first")


# ---------------------------------------------------------------------- the inspection view
def test_inspection_view_outlines_the_region_scaled_to_each_image(qtbot):
    view = InspectionView()
    qtbot.addWidget(view)
    roi = RegionOfInterest(include=[rectangle((10, 10), (60, 40))], exclude=[rectangle((20, 20), (30, 30))],
                           ref_width=W, ref_height=H)
    view.set_roi(roi.to_json())  # as the window passes info["roi"]
    assert view.roi_outline("include")[0].size == 0  # no image yet: nothing drawn
    view.show_result(gray(2 * W, 2 * H), (2 * H, 2 * W), None, None, "")
    x, y = view.roi_outline("include")
    # corners scaled pixel centre to pixel centre (x * (2W - 1) / (W - 1)), drawn on the pixels'
    # centres (+0.5), closed, then a gap
    sx, sy = (2 * W - 1) / (W - 1), (2 * H - 1) / (H - 1)
    assert x[:5] == pytest.approx([10 * sx + .5, 60 * sx + .5, 60 * sx + .5, 10 * sx + .5, 10 * sx + .5])
    assert y[:5] == pytest.approx([10 * sy + .5, 10 * sy + .5, 40 * sy + .5, 40 * sy + .5, 10 * sy + .5])
    assert np.isnan(x[5])
    xe, _ = view.roi_outline("exclude")
    assert xe[:5] == pytest.approx([20 * sx + .5, 30 * sx + .5, 30 * sx + .5, 20 * sx + .5, 20 * sx + .5])
    assert view.roi_items["exclude"].opts["pen"].style() == Qt.PenStyle.DashLine
    assert not view.roi_check.isHidden()
    view.roi_check.setChecked(False)
    assert not view.roi_items["include"].isVisible()
    view.set_roi(None)
    assert view.roi_outline("include")[0].size == 0 and view.roi_check.isHidden()


def test_view_menu_switch_and_the_views_checkbox_stay_in_step_and_are_remembered(window):
    assert window.actions.show_roi.isChecked() and window.view.roi_check.isChecked()
    window.actions.show_roi.trigger()
    assert not window.view.roi_check.isChecked()
    assert str(window.settings.value("view/roi")).lower() == "false"
    window.view.roi_check.setChecked(True)
    assert window.actions.show_roi.isChecked()


def test_window_outlines_the_loaded_recipes_region_on_inspected_images(qtbot, window, toy_copy, toy_images):
    open_recipe(qtbot, window, toy_copy)
    assert window.view.roi_outline("include")[0].size == 0  # the toy recipe has no region
    region = RegionOfInterest(include=[rectangle((8, 8), (31, 23))], ref_width=32, ref_height=32)
    window.worker.model_loaded.emit(dict(window.info, roi=region.to_json()))  # a recipe with a region (info["roi"])
    window.run_images([toy_images / "000.png"])  # a 64 x 64 image: the region drawn on 32 x 32 is doubled
    wait_idle(qtbot, window)
    x, y = window.view.roi_outline("include")
    s = 63 / 31  # pixel centre to pixel centre: 32 -> 64
    assert x[:5] == pytest.approx([8 * s + .5, 31 * s + .5, 31 * s + .5, 8 * s + .5, 8 * s + .5])
    assert y[:5] == pytest.approx([8 * s + .5, 8 * s + .5, 23 * s + .5, 23 * s + .5, 8 * s + .5])
    assert window.view.roi_items["include"].isVisible()
    window.worker.model_loaded.emit(dict(window.info, roi=None))
    assert window.view.roi_outline("include")[0].size == 0
