"""Save screenshots of the operator window (offscreen) into docs/screenshots/.

Drives the real window the way an operator would: learns a recipe from a subset of
``mvtec_ad/bottle/train/good``, runs its whole test folder (good and defective sub-folders), then
grabs the window showing a NOK part, an OK part, a threshold being previewed with the slider (the
screen and the log's preview column), the same threshold once applied, and the defect log with
the threshold change, plus the New-recipe dialog (closed and with Advanced open) and the fit in
progress.
It also exports the log to CSV and prints its first lines. Last, the operator view
(``operator_view.png``): a new run on test parts in the order a line might bring them (mostly good,
a defective one now and then), with the strip of the last verdicts filled.

    python scripts/screenshots.py                        # data from ../shared/data
    python scripts/screenshots.py --data PATH/bottle --n-train 30 --out docs/screenshots
    python scripts/screenshots.py --only operator_view   # just the fit and the operator view

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
    p.add_argument("--only", choices=["operator_view"], default=None,
                   help="fit, then save only this screenshot")
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

    def grab(widget, name: str) -> Path:
        settle()
        path = out / name
        widget.grab().save(str(path))
        print(f"saved {path}")
        return path

    if args.only is None:
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
    if args.only is None:
        grab(window, "fitting_progress.png")
    wait_idle()
    if window.info is None:
        print(f"error: fit failed: {window.message_bar.text}", file=sys.stderr)
        return 1
    print(f"fitted in {time.monotonic() - t0:.1f} s: {window.info['describe']}")
    if args.only == "operator_view":
        operator_view(window, category, tmp / "line", wait_idle, grab)
        window.close()
        return 0

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
    window.tabs.setCurrentIndex(0)
    operator_view(window, category, tmp / "line", wait_idle, grab)
    window.close()
    return 0


def operator_view(window, category: Path, folder: Path, wait_idle, grab) -> None:
    """A new run on ``category``'s test parts in line order -- good ones with every fifth part
    defective, the defective ones left over at the end (links in ``folder``, numbered in that
    order) -- then the window showing the newest part and the strip of the last verdicts, saved as
    ``operator_view.png``."""
    good = sorted((category / "test" / "good").glob("*.png"))
    bad = sorted(p for d in sorted((category / "test").iterdir()) if d.name != "good" for p in d.glob("*.png"))
    bad = bad[::max(1, len(bad) // 8)][:8]  # a few of each defect type
    parts, g, b = [], iter(good), iter(bad)
    for i in range(len(good) + len(bad)):
        p = next(b, None) if i % 5 == 4 else next(g, None)
        p = p or next(g, None) or next(b, None)
        if p is not None:
            parts.append(p)
    folder.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(parts):
        os.symlink(p, folder / f"part{i:03d}_{p.parent.name}{p.suffix}")
    window.run_folder(folder)
    wait_idle()
    strip = window.strip
    print(f"operator view: {len(window.results)} parts, strip: {strip.summary_label.text()}")
    path = grab(window, "operator_view.png")
    from PIL import Image  # 256 colours (median cut) keep it under 300 kB; the other pictures stay as grabbed

    Image.open(path).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"{path}: {path.stat().st_size / 1024:.0f} kB")


if __name__ == "__main__":
    sys.exit(main())
