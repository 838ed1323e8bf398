"""Live soak: the real operator window, its real event loop and a fake camera, for a while.

Reports frames captured / inspected / skipped, defect-log rows, and how the reference counts of
``None`` and ``True`` drift per second. On CPython < 3.12 these objects are not immortal: a Qt
binding that returns them without a new reference (seen with PySide6 6.12.0: one ``True`` per
Python-side ``Signal.emit``, one ``None`` per call of a method returning nothing, such as
``QLabel.setText``) drains them, and the process aborts ("Fatal Python error: none_dealloc /
bool_dealloc") when one reaches zero. The report projects when, at the measured rate.

Usage::

    python benchmarks/live_soak.py --model part.dimodel --seconds 60 [--mode moving|frozen] [--fps 30]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a fitted model file (.dimodel)")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--mode", choices=("moving", "frozen"), default="moving")
    ap.add_argument("--fps", type=float, default=30.0)
    args = ap.parse_args()
    os.environ["DINOINSPECT_DATA_DIR"] = tempfile.mkdtemp(prefix="live_soak_")

    import numpy as np
    import PySide6
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    import gui.camera as camera_mod
    from gui.camera import CameraConfig
    from gui.main_window import MainWindow

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (240, 320, 3), np.uint8)

    class FakeCamera:
        n = 0

        def __init__(self, *a): pass
        def isOpened(self): return True  # noqa: E704,N802
        def set(self, *a): return True  # noqa: E704
        def get(self, prop): return 0.0  # noqa: E704
        def release(self): pass  # noqa: E704

        def read(self):
            time.sleep(1 / args.fps)
            FakeCamera.n += 1
            return True, (np.roll(base, 7 * FakeCamera.n, axis=1) if args.mode == "moving" else base.copy())

    camera_mod.cv2.VideoCapture = FakeCamera
    w = MainWindow(device="cpu", restore_recipe=False)
    w.show()
    w.open_recipe(args.model)
    samples, rows = [], []

    def sample():
        samples.append((time.monotonic(), sys.getrefcount(True), sys.getrefcount(None), dict(w.live_stats)))
        rows.append(w.log.count())

    def start():
        if w.busy:
            QTimer.singleShot(100, start)
            return
        w.start_live(CameraConfig(kind="camera", device=0))
        QTimer.singleShot(2000, sample)  # after start-up
        QTimer.singleShot(int(2000 + args.seconds * 1000), finish)

    def finish():
        sample()
        w.stop_live()
        QTimer.singleShot(1000, app.quit)

    QTimer.singleShot(100, start)
    app.exec()
    (t0, a0, n0, s0), (t1, a1, n1, s1) = samples[0], samples[-1]
    dt = t1 - t0
    print(f"PySide6 {PySide6.__version__}, Python {sys.version.split()[0]}, {args.mode} camera at {args.fps:g} fps, "
          f"{dt:.0f} s: frames {s1['captured'] - s0['captured']}, inspected {s1['inspected'] - s0['inspected']}, "
          f"skipped {s1['skipped'] - s0['skipped']}, log rows {rows[-1]}")
    for name, r0, r1 in (("True", a0, a1), ("None", n0, n1)):
        rate = (r1 - r0) / dt
        left = f"; at this rate it reaches 0 in ~{r1 / -rate / 60:.0f} min" if rate < -1 and sys.version_info < (3, 12) \
            else ""
        print(f"  refcount of {name}: {r0} -> {r1} ({rate:+.1f}/s){left}")


if __name__ == "__main__":
    main()
