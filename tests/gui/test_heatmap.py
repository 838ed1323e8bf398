"""Overlay display data: threshold-anchored colour table, reduced maps, contours in image pixels."""

from __future__ import annotations

import numpy as np

from gui.heatmap import MAP_SIDE, contour_polyline, heatmap_lut, shrink_map


def test_lut_is_transparent_for_normal_and_opaque_from_the_threshold():
    lut = heatmap_lut()
    assert lut.shape == (256, 4) and lut.dtype == np.uint8
    assert lut[0, 3] == 0 and lut[int(0.1 * 255), 3] == 0
    assert lut[128, 3] == 255 and lut[255, 3] == 255
    assert lut[255, 0] > lut[255, 2]  # high values are red, as the engine's PNG overlays


def test_shrink_map_keeps_small_maps_and_reduces_large_ones():
    small = np.ones((100, 80), np.float32)
    assert shrink_map(small).shape == (100, 80)
    big = np.zeros((1024, 512), np.float32)
    assert shrink_map(big).shape == (MAP_SIDE, MAP_SIDE // 2)


def test_contour_surrounds_the_region_above_threshold_in_image_pixels():
    unit = np.zeros((64, 64), np.float32)
    unit[16:32, 32:48] = 1.0  # region above 0.5 in map pixels
    x, y = contour_polyline(unit, image_hw=(256, 256))  # image is 4x the map
    assert np.isnan(x[-1]) and np.isnan(y[-1])
    xs, ys = x[~np.isnan(x)], y[~np.isnan(y)]
    assert 120 <= xs.min() <= 136 and 184 <= xs.max() <= 200
    assert 56 <= ys.min() <= 72 and 120 <= ys.max() <= 136


def test_no_contour_when_nothing_crosses_the_threshold():
    x, y = contour_polyline(np.full((8, 8), 0.4, np.float32), image_hw=(32, 32))
    assert x.size == 0 and y.size == 0


def test_view_switches_and_opacity_are_remembered_and_restored(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from gui.image_view_widget import InspectionView

    settings = QSettings(str(tmp_path / "view.ini"), QSettings.Format.IniFormat)
    first = InspectionView()
    qtbot.addWidget(first)
    first.remember_in(settings)
    assert first.contour_check.isChecked() and first.overlay_check.isChecked() and first.roi_check.isChecked()
    first.contour_check.setChecked(False)
    first.roi_check.setChecked(False)
    first.opacity_slider.setValue(35)
    settings.sync()
    again = InspectionView()
    qtbot.addWidget(again)
    again.remember_in(QSettings(str(tmp_path / "view.ini"), QSettings.Format.IniFormat))
    assert not again.contour_check.isChecked() and not again.roi_check.isChecked()
    assert again.overlay_check.isChecked() and again.opacity_slider.value() == 35
