"""What a change outside the region of interest does to the image score, with and without the region.

Loads two model files fitted on the same category (``main.py evaluate ... --report A`` without and
``--report B`` with ``--roi``; each report folder holds ``model.dimodel``), inverts the pixels of one
box of every test image (``--box y0,y1,x0,x1``, chosen outside the region) and prints, per model, how
many verdicts are NOK before and after and the median / largest absolute change of the image score.
docs/ROI.md has the figures. Usage::

    python benchmarks/roi_outside.py --data CATEGORY --reports A B --box 20,80,20,80
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.images import list_images, read_image  # noqa: E402
from engine.model import InspectionModel  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="category folder in MVTec AD layout")
    ap.add_argument("--reports", nargs="+", required=True, help="evaluate report folders (each with model.dimodel)")
    ap.add_argument("--box", required=True, help="y0,y1,x0,x1 of the inverted box, in image pixels")
    a = ap.parse_args()
    y0, y1, x0, x1 = (int(v) for v in a.box.split(","))
    images = [read_image(p) for p in list_images(Path(a.data) / "test", recursive=True)]
    painted = []
    for im in images:
        out = im.copy()
        out[y0:y1, x0:x1] = 255 - out[y0:y1, x0:x1]
        painted.append(out)
    for rep in a.reports:
        m = InspectionModel.load(Path(rep) / "model.dimodel")

        def scores(imgs):
            return np.array([p.score for b in range(0, len(imgs), 4) for p in m.predict(imgs[b:b + 4])])

        before, after = scores(images), scores(painted)
        d = np.abs(after - before)
        print(f"{rep}: {m.describe()}")
        print(f"  {len(images)} test images, threshold {m.threshold:.4g}: NOK before {int((before >= m.threshold).sum())}, "
              f"after {int((after >= m.threshold).sum())}; |score change| median {np.median(d):.4g}, "
              f"max {d.max():.4g} ({d.max() / m.threshold:.1%} of the threshold)")


if __name__ == "__main__":
    main()
