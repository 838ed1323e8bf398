"""Save screenshots of the operator window (offscreen) into docs/screenshots/.

Drives the real window the way an operator would: learns a recipe from a subset of
``mvtec_ad/bottle/train/good``, runs its whole test folder (good and defective sub-folders), then
grabs the window showing a NOK part, an OK part, a threshold being previewed with the slider (the
screen and the log's preview column), the same threshold once applied, and the defect log with
the threshold change, plus the New-recipe dialog (closed and with Advanced open) and the fit in
progress.
It also exports the log to CSV and prints its first lines.

    python scripts/screenshots.py                        # data from ../shared/data
    python scripts/screenshots.py --data PATH/bottle --n-train 30 --out docs/screenshots

Data and settings go to a temporary folder (DINOINSPECT_DATA_DIR), never the user's own.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "mvtec_ad" / "bottle"),
                   help="category folder in MVTec AD layout (default ../shared/data/mvtec_ad/bottle)")
    p.add_argument("--n-train", type=int, default=40, help="good images to learn from (first N)")
    p.add_argument("--size", type=int, default=None, help="network input side in px (default: backbone's)")
    p.add_argument("--out", default=str(REPO / "docs" / "screenshots"))
    p.add_argument("--csv", default=None, help="where to export the defect log (default: temp folder)")
    p.add_argument("--quick", action="store_true",
                   help="inspect 10 test images instead of the whole test folder (all sub-folders)")
    args = p.parse_args(argv)

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    tmp = Path(tempfile.mkdtemp(prefix="dinoinspect_shots_"))
    os.environ["DINOINSPECT_DATA_DIR"] = str(tmp / "appdata")
    sys.path.insert(0, str(REPO))

    from PySide6.QtWidgets import QApplication

    from gui.main_window import MainWindow
    from gui.recipe_dialog import NewRecipeDialog
    from gui.recipes import RecipeSpec

    category = Path(args.data)
    good = category / "train" / "good"
    if not good.is_dir():
        print(f"error: {good} not found; pass --data PATH/TO/bottle", file=sys.stderr)
        return 2
    test_images = []
    for sub, n in (("good", 3), ("broken_large", 3), ("contamination", 2), ("broken_small", 2)):
        test_images += sorted((category / "test" / sub).glob("*.png"))[:n]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    app = QApplication.instance() or QApplication([])
    app.setOrganizationName("DINOInspect")
    app.setApplicationName("DINOInspect")
    window = MainWindow(restore_recipe=False)
    window.resize(1500, 920)
    window.set_station("Line 1 — final check")
    window.show()

    def settle(seconds: float = 0.3) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    def wait_idle(limit_s: float = 1800) -> None:
        end = time.monotonic() + limit_s
        while window.busy and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)
        settle()

    def grab(widget, name: str) -> None:
        settle()
        path = out / name
        widget.grab().save(str(path))
        print(f"saved {path}")

    dialog = NewRecipeDialog(window, good_folder=str(good))
    dialog.name_edit.setText("bottle")
    dialog.max_images_spin.setValue(args.n_train)
    dialog.show()
    grab(dialog, "new_recipe_dialog.png")
    dialog.set_advanced_visible(True)
    grab(dialog, "new_recipe_dialog_advanced.png")
    dialog.close()

    spec = RecipeSpec(good_folder=str(good), model_path=str(tmp / "recipes" / "bottle.dimodel"),
                      backbone="efficientnet_lite0", size=args.size, max_images=args.n_train)
    t0 = time.monotonic()
    window.start_fit(spec)
    end = time.monotonic() + 120
    while window.busy and "features" not in window.progress_bar.format() and time.monotonic() < end:
        settle(0.1)
    settle(1.0)
    grab(window, "fitting_progress.png")
    wait_idle()
    if window.info is None:
        print(f"error: fit failed: {window.message_bar.text}", file=sys.stderr)
        return 1
    print(f"fitted in {time.monotonic() - t0:.1f} s: {window.info['describe']}")

    t0 = time.monotonic()
    if args.quick:
        window.run_images(test_images)
    else:
        window.run_folder(category / "test")  # the operator's "Run folder": good and defective sub-folders
    wait_idle()
    print(f"inspected {len(window.results)} images in {time.monotonic() - t0:.1f} s")
    scores = [r.score for r in window.results.results]
    window.show_index(max(range(len(scores)), key=lambda i: -1 if scores[i] is None else scores[i]))
    grab(window, "main_window_nok.png")
    window.show_index(min(range(len(scores)), key=lambda i: float("inf") if scores[i] is None else scores[i]))
    grab(window, "main_window_ok.png")
    # the operator previews a threshold just above the good test parts (re-judged, not re-run), then applies it
    good = [i for i, r in enumerate(window.results.results) if "/good/" in r.name and r.score is not None]
    top = max(good, key=lambda i: scores[i]) if good else 0
    panel = window.threshold_panel
    target = scores[top] * 1.001 if good else panel.value_at(400)
    panel.slider.setValue(panel.position_of(target))  # fine steps near the applied threshold
    window.show_index(top)
    grab(window, "main_window_preview.png")
    window.tabs.setCurrentIndex(1)
    grab(window, "defect_log_preview.png")
    window.tabs.setCurrentIndex(0)
    panel.apply()
    wait_idle()
    window.show_index(top)
    grab(window, "main_window_threshold_applied.png")
    window.tabs.setCurrentIndex(1)
    grab(window, "defect_log.png")

    csv_path = Path(args.csv) if args.csv else tmp / "defect_log.csv"
    n = window.log.export_csv(csv_path)
    print(f"exported {n} rows to {csv_path}:")
    with open(csv_path) as fh:
        for line in list(fh)[:4]:
            print("  " + line.rstrip())
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
