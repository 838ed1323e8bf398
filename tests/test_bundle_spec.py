"""The packaged program's collection lists (scripts/bundle_manifest.py, used by build.spec) match what
the installed packages hold and what the code loads at run time. Freezes nothing: a dependency bump
that renames or moves a file the bundle needs fails here instead of at a station."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import bundle_manifest as manifest  # noqa: E402


@pytest.fixture(scope="module")
def data_sources() -> set[Path]:
    return {Path(src).resolve() for src, _dest in manifest.resolve_package_data()}


def test_package_data_lands_where_the_package_had_it():
    for src, dest in manifest.resolve_package_data():
        base = manifest.package_dir(dest.split("/")[0])
        assert Path(src).parent == base / Path(*Path(dest).parts[1:]), (src, dest)


def test_packaged_backbone_weights_are_collected(data_sources):
    from engine.backbones import packaged
    from engine.backbones.registry import _packaged_effnet

    onnx = packaged.onnx_file()
    effnet = _packaged_effnet()
    assert onnx is not None and onnx.resolve() in data_sources
    assert effnet is not None and effnet.resolve() in data_sources


def test_every_demo_image_and_its_labels_are_collected(data_sources):
    import numpy as np

    import engine.demo as demo

    cat = demo.elpv_category()
    root = Path(cat.root)
    assert (root / "labels.csv").resolve() in data_sources
    listed = np.genfromtxt(root / "labels.csv", dtype=["U32", "f8", "U8"], names=["path", "prob", "type"])["path"]
    used = [Path(s.path) for s in (*cat.train, *cat.test)] + [root / p for p in listed]
    assert len(used) > 2000
    missing = [p for p in used if p.resolve() not in data_sources]
    assert not missing, f"{len(missing)} demo files not collected, e.g. {missing[:3]}"


def test_torchvision_extensions_are_the_files_torchvision_loads():
    listed = {Path(src).resolve() for src, dest in manifest.resolve_extensions() if dest == "torchvision"}
    code = ("import torch, torchvision, torchvision.io, timm; "
            "print('\\n'.join(sorted(torch.ops.loaded_libraries)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    tv_dir = manifest.package_dir("torchvision").resolve()
    loaded = {Path(p).resolve() for p in out.split() if Path(p).resolve().parent == tv_dir}
    assert loaded, "torchvision loaded no operator library: its ops (nms) would be missing"
    assert loaded == listed
    on_disk = {p.resolve() for p in tv_dir.iterdir() if p.suffix in (".so", ".pyd")}
    assert on_disk <= listed, f"torchvision has extension files the bundle would miss: {on_disk - listed}"


def test_a_renamed_extension_fails_with_the_fix(monkeypatch):
    monkeypatch.setattr(manifest, "EXTENSIONS", (manifest.Extension("torchvision", "_C", "ops"),))
    with pytest.raises(manifest.ManifestError, match=r"no extension '_C'.*_C_stable.*update EXTENSIONS"):
        manifest.resolve_extensions()


def test_a_missing_data_file_fails_with_the_fix(monkeypatch):
    monkeypatch.setattr(manifest, "PACKAGE_DATA", (manifest.PackageFiles("elpv_dataset", "data/labels.tsv", "x"),))
    with pytest.raises(manifest.ManifestError, match=r"labels\.tsv: 0 file\(s\)"):
        manifest.resolve_package_data()


def test_faiss_compiled_modules_are_hidden_imports():
    code = ("import sys, faiss; print('\\n'.join(n for n, m in sys.modules.items() if n.startswith('faiss') "
            "and str(getattr(m, '__file__', '') or '').endswith(('.so', '.pyd'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(out.split())
    assert loaded, "faiss loaded no compiled module"
    assert loaded <= set(manifest.hidden_imports()), loaded - set(manifest.hidden_imports())


def test_hidden_imports_exist_and_cover_every_cli_command():
    from cli import COMMANDS

    names = manifest.hidden_imports()
    assert {f"cli.{c}" for c in COMMANDS} <= set(names)
    for name in names:
        assert importlib.util.find_spec(name) is not None, name


_NO_TRITON = """
import importlib.abc, sys
class NoTriton(importlib.abc.MetaPathFinder):  # what the bundle without triton looks like to torch
    def find_spec(self, name, path, target=None):
        if name == "triton" or name.startswith("triton."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoTriton())
import torch, torchvision, timm, faiss, main, engine.fitting, engine.backbones.backbone
main.build_parser()
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
print(torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist())
vit = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=56).eval()
with torch.no_grad():
    print(tuple(vit.forward_features(torch.zeros(1, 3, 56, 56)).shape))
print("triton" in sys.modules)
"""


def test_inference_runs_without_the_excluded_triton():
    """torch imports triton only to ask whether it is there (torch.utils._triton.has_triton_package)
    and compiles with it only under torch.compile, which the app never uses: excluding it from the
    GPU flavour must leave imports, torchvision's ops and a ViT forward pass working."""
    assert "triton" in manifest.excludes("gpu")
    out = subprocess.run([sys.executable, "-c", _NO_TRITON], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[:3] == ["[0, 2]", "(1, 17, 384)", "False"]


def test_unknown_flavour_is_refused():
    with pytest.raises(ValueError, match="gpu, cpu"):
        manifest.excludes("rocm")


def _needed_xcb(lib: Path) -> set[str]:
    out = subprocess.run(["ldd", str(lib)], capture_output=True, text=True).stdout
    return {m.group(1) for m in re.finditer(r"^\s*(\S+) =>", out, re.M)
            if re.match(r"lib(xcb-|xkbcommon-x11|X11-xcb)", m.group(1))}


def test_xcb_list_covers_what_qts_xcb_plugin_links():
    qt = manifest.package_dir("PySide6") / "Qt"
    plugin = qt / "plugins" / "platforms" / "libqxcb.so"
    assert plugin.is_file()
    needed = _needed_xcb(plugin) | _needed_xcb(qt / "lib" / "libQt6XcbQpa.so.6")
    listed = {lib.soname for lib in manifest.XCB_LIBS}
    assert {"libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-cursor.so.0"} <= needed
    assert needed <= listed, f"Qt's xcb plugin links libraries the bundle would not carry: {needed - listed}"


def test_xcb_libraries_resolve_on_this_host():
    found, missing = manifest.find_system_libs()
    if missing:  # build_bundle.sh fails then (resolve_system_libs raises); a test host may lack them
        with pytest.raises(manifest.ManifestError, match="apt-get install -y " + re.escape(missing[0].debian)):
            manifest.resolve_system_libs()
        pytest.skip(f"this host lacks {[m.soname for m in missing]} (scripts/install_qt_deps.sh --desktop)")
    assert all(Path(p).is_file() for p in found.values())
    assert len(manifest.resolve_system_libs()) == len(manifest.XCB_LIBS)


def test_dropped_cuda_libraries_are_not_linked_by_torch():
    torch_lib = manifest.package_dir("torch") / "lib"
    linked = set()
    for lib in ("libtorch_cuda.so", "libtorch_cuda_linalg.so", "libtorch_python.so", "libcaffe2_nvrtc.so"):
        if (torch_lib / lib).is_file():
            out = subprocess.run(["ldd", str(torch_lib / lib)], capture_output=True, text=True).stdout
            linked |= {m.group(1) for m in re.finditer(r"^\s*(\S+) =>", out, re.M)}
    if not linked:
        pytest.skip("this torch has no CUDA libraries (CPU build): nothing is dropped")
    assert any(n.startswith("libcudnn") for n in linked)  # the scan sees CUDA links at all
    assert not [n for n in linked if manifest.unused_binary(n)]
    assert manifest.unused_binary("nvidia/cu13/lib/libcusolverMg.so.12")
    assert not manifest.unused_binary("nvidia/cu13/lib/libcusolver.so.12")
