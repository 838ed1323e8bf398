"""Save a screenshot of the region-of-interest editor (offscreen) into docs/screenshots/roi_editor.png.

Opens the editor on a real good image (default: the first of ``mvtec_ad/bottle/train/good``), with a
region drawn around the bottle (a 32-corner polygon on a circle) and one ignore rectangle at its
lower left, as an operator would draw them, and grabs the dialog.

    python scripts/roi_screenshot.py                              # data from ../shared/data
    python scripts/roi_screenshot.py --image PATH.png --out docs/screenshots/roi_editor.png
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", default=str(REPO.parent / "shared" / "data" / "mvtec_ad" / "bottle" / "train" / "good"
                                          / "000.png"), help="reference image (default: bottle train/good/000.png)")
    p.add_argument("--out", default=str(REPO / "docs" / "screenshots" / "roi_editor.png"))
    args = p.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.insert(0, str(REPO))

    from PySide6.QtWidgets import QApplication

    from engine.errors import InspectError
    from engine.images import read_image
    from gui.roi_editor import RoiEditorDialog
    from gui.roi_geometry import rectangle

    try:
        image = read_image(args.image)
    except InspectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app = QApplication.instance() or QApplication([])
    h, w = image.shape[:2]
    dlg = RoiEditorDialog(image, image_path=args.image)
    dlg.resize(900, 700)
    dlg.show()
    cx, cy, r = 0.5 * (w - 1), 0.5 * (h - 1), 0.455 * min(w, h)
    circle = [(round(cx + r * math.cos(2 * math.pi * k / 32)), round(cy + r * math.sin(2 * math.pi * k / 32)))
              for k in range(32)]
    dlg.add_polygon("include", circle)
    dlg.add_polygon("exclude", rectangle((round(0.2 * w), round(0.66 * h)), (round(0.33 * w), round(0.78 * h))))
    dlg.select(None)
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)
    dlg.fit_view()
    app.processEvents()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    dlg.grab().save(str(out), "PNG", 0)  # 0 = smallest file (PNG is lossless)
    print(f"saved {out} ({out.stat().st_size / 1024:.0f} kB): {dlg.status_label.text()}")
    dlg.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
