"""Smoke test of a built bundle (``dist/DINOInspect``), the way a station without Python runs it.

Run with the system Python (not the build venv): the build venv is renamed away for the whole test
and every bundle command runs under ``env -i`` with only HOME (a fresh, empty one), PATH=/usr/bin:/bin
and, for the GUI, DISPLAY. Checks, each a PASS/FAIL row:

  version-cli / version-gui   ``--version`` of both programs names the source's version
  help-cli                    ``dinoinspect-cli -h`` exits 0 (its time is reported)
  selftest                    ``dinoinspect-cli selftest`` exits 0
  backbones                   ``dinoinspect-cli backbones`` exits 0 and finds dinov2_vits14's weights
  demo                        ``dinoinspect-cli demo`` (full size) exits 0 and writes its report
  fit / predict               on <data>/train/good and <data>/test
  predict-same-as-source      predictions.csv (file, score, verdict) identical to ``python main.py
                              predict`` from this source tree on the same model file
  gui-window                  ``DINOInspect`` opens its main window under Xvfb (screenshot saved)
  program-folder-unchanged    nothing was written inside the program folder

    python scripts/bundle_smoke.py dist/DINOInspect [--venv build/venv-gpu] [--screenshot PNG]

Exit status 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "battery_weld" / "welding"
STATION_PATH = "/usr/bin:/bin"


class Smoke:
    """Runs bundle commands under ``env -i`` and records one PASS/FAIL row per check."""

    def __init__(self, dist: Path, work: Path, log):
        self.dist, self.work, self.log = dist, work, log
        self.home = work / "home"
        self.home.mkdir()
        self.rows: list[tuple[str, bool, str]] = []

    def env(self, **extra: str) -> list[str]:
        pairs = {"HOME": str(self.home), "PATH": STATION_PATH, **extra}
        return ["env", "-i", *(f"{k}={v}" for k, v in pairs.items())]

    def run(self, program: str, *args: str, timeout: float = 1800, **extra: str) -> tuple[int, str, float]:
        cmd = [*self.env(**extra), str(self.dist / program), *args]
        print("$", " ".join(cmd), file=self.log, flush=True)
        t0 = time.perf_counter()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.work)
            rc, out = p.returncode, p.stdout + p.stderr
        except subprocess.TimeoutExpired as exc:
            rc, out = 124, f"timed out after {timeout} s: {exc}"
        dt = time.perf_counter() - t0
        print(out, f"[rc {rc}, {dt:.1f} s]", file=self.log, flush=True)
        return rc, out, dt

    def check(self, name: str, ok: bool, detail: str) -> bool:
        self.rows.append((name, bool(ok), detail))
        print(f"{'PASS' if ok else 'FAIL'}  {name:26s} {detail}", flush=True)
        return bool(ok)


def tail(text: str, n: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else "..." + text[-n:]


def source_version() -> str:
    sys.path.insert(0, str(ROOT))
    from engine import __version__

    return __version__


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """relative path -> (size, mtime ns) of every file under ``folder``."""
    out = {}
    for dirpath, _dirs, files in os.walk(folder):
        for f in files:
            p = Path(dirpath) / f
            st = p.lstat()
            out[str(p.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return out


def read_predictions(path: Path) -> list[tuple[str, str, str]]:
    """(file name, score, verdict) rows of a predictions.csv, sorted by file name."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return []
    fcol = "file" if "file" in rows[0] else ("path" if "path" in rows[0] else next(iter(rows[0])))
    return sorted((Path(r[fcol]).name if fcol == "path" else r[fcol], r.get("score", ""), r.get("verdict", ""))
                  for r in rows)


@contextmanager
def moved_away(venv: Path | None):
    """Rename the build venv for the duration (so the bundle cannot lean on it)."""
    if venv is None or not venv.exists():
        yield None
        return
    hidden = venv.with_name(venv.name + ".moved-away")
    venv.rename(hidden)
    try:
        yield hidden
    finally:
        hidden.rename(venv)


def wait_for_window(display: str, title: str, timeout: float) -> bool:
    env = {"DISPLAY": display, "PATH": STATION_PATH}
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        p = subprocess.run(["xwininfo", "-root", "-tree"], capture_output=True, text=True, env=env)
        for line in p.stdout.splitlines():
            if title in line and "has no name" not in line:
                # a mapped top-level window with a real size, not Qt's 1x1 helper windows
                parts = line.split(")")[-1].split()
                if parts and "x" in parts[0]:
                    w, h = parts[0].split("+")[0].split("x")
                    if int(w) > 200 and int(h) > 150:
                        return True
        time.sleep(0.2)
    return False


def gui_check(s: Smoke, screenshot: Path | None) -> None:
    display = ":87"
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1600x1000x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    app = None
    try:
        time.sleep(1.0)
        cmd = [*s.env(DISPLAY=display, DINOINSPECT_STARTUP_PROBE="1"), str(s.dist / "DINOInspect")]
        print("$", " ".join(cmd), file=s.log, flush=True)
        gui_log = open(s.work / "gui.log", "w")
        t0 = time.perf_counter()
        app = subprocess.Popen(cmd, stdout=gui_log, stderr=subprocess.STDOUT, cwd=s.work)
        ok = wait_for_window(display, "DINOInspect", 300)
        dt = time.perf_counter() - t0
        if ok:
            time.sleep(3.0)  # let it paint
        shot = ""
        if ok and screenshot is not None:
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            r = subprocess.run(["import", "-window", "root", str(screenshot)], capture_output=True, text=True,
                               env={"DISPLAY": display, "PATH": STATION_PATH})
            shot = f", screenshot {screenshot}" if r.returncode == 0 else f", screenshot failed: {r.stderr.strip()}"
        alive = app.poll() is None
        log = (s.work / "gui.log").read_text(errors="replace")
        probe = next((ln.strip() for ln in log.splitlines() if ln.startswith("startup:")), "no startup probe line")
        s.check("gui-window", ok and alive, f"window mapped after {dt:.1f} s ({probe}){shot}" if ok else
                f"no main window in {dt:.0f} s (rc {app.poll()}): {tail(log)}")
    finally:
        if app is not None and app.poll() is None:
            app.send_signal(signal.SIGTERM)
            try:
                app.wait(10)
            except subprocess.TimeoutExpired:
                app.kill()
        xvfb.terminate()
        xvfb.wait(10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dist", type=Path, help="the bundle folder, e.g. dist/DINOInspect")
    ap.add_argument("--venv", type=Path, help="build venv to move away during the test")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="category in MVTec AD layout")
    ap.add_argument("--screenshot", type=Path, default=ROOT / "docs" / "screenshots" / "bundle_gui.png")
    ap.add_argument("--work", type=Path, help="scratch folder (default: a new temporary one)")
    ap.add_argument("--skip", default="", help="comma-separated checks to skip (e.g. demo,gui)")
    args = ap.parse_args(argv)

    dist = args.dist.resolve()
    skip = set(filter(None, args.skip.split(",")))
    if not (dist / "dinoinspect-cli").is_file():
        print(f"error: {dist}/dinoinspect-cli not found: build the bundle first (scripts/build_bundle.sh)",
              file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bundle-smoke-", dir=args.work))
    log = open(work / "smoke.log", "w")
    print(f"bundle {dist}\nscratch {work} (commands and their output: {work / 'smoke.log'})", flush=True)
    s = Smoke(dist, work, log)
    version = source_version()
    before = snapshot(dist)

    with moved_away(args.venv.resolve() if args.venv else None) as hidden:
        if hidden:
            print(f"build venv moved to {hidden} for the test", flush=True)
        rc, out, _ = s.run("dinoinspect-cli", "--version")
        s.check("version-cli", rc == 0 and version in out, tail(out, 80))
        rc, out, _ = s.run("DINOInspect", "--version")
        s.check("version-gui", rc == 0 and version in out, tail(out, 80))
        times = []
        for _ in range(3):
            rc, out, dt = s.run("dinoinspect-cli", "-h")
            times.append(dt)
        s.check("help-cli", rc == 0 and "dinoinspect-cli" in out,
                f"-h in {sorted(times)[1]:.2f} s (median of 3; {', '.join(f'{t:.2f}' for t in times)})"
                + ("" if "dinoinspect-cli" in out else "; usage does not name dinoinspect-cli"))
        rc, out, dt = s.run("dinoinspect-cli", "selftest")
        s.check("selftest", rc == 0, f"{dt:.1f} s; {tail(out, 300)}")
        rc, out, _ = s.run("dinoinspect-cli", "backbones")
        line = next((ln for ln in out.splitlines() if ln.strip().startswith("dinov2_vits14 ")), "")
        s.check("backbones", rc == 0 and line != "" and "not found" not in line.lower(), tail(line or out, 160))

        if "demo" not in skip:
            report = work / "demo"
            rc, out, dt = s.run("dinoinspect-cli", "demo", "--report", str(report), "--quiet")
            made = sorted(p.name for p in report.iterdir()) if report.is_dir() else []
            auroc = next((ln.strip() for ln in out.splitlines() if "AUROC" in ln), "")
            s.check("demo", rc == 0 and len(made) > 0, f"{dt:.0f} s; {auroc}; wrote {made}")

        if "fit" not in skip:
            model = work / "welding.dimodel"
            rc, out, dt = s.run("dinoinspect-cli", "fit", "--good", str(args.data / "train" / "good"),
                                "--out", str(model), "--quiet")
            s.check("fit", rc == 0 and model.is_file(), f"{dt:.0f} s; {tail(out, 160)}")
            rc, out, dt = s.run("dinoinspect-cli", "predict", "--model", str(model), "--out", str(work / "pred_bundle"),
                                "--recursive", "--no-overlays", "--quiet", str(args.data / "test"))
            s.check("predict", rc == 0 and (work / "pred_bundle" / "predictions.csv").is_file(),
                    f"{dt:.0f} s; {tail(out, 160)}")
            cmd = [sys.executable, str(ROOT / "main.py"), "predict", "--model", str(model), "--out",
                   str(work / "pred_source"), "--recursive", "--no-overlays", "--quiet", str(args.data / "test")]
            print("$", " ".join(cmd), file=log, flush=True)
            p = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
            print(p.stdout + p.stderr, file=log, flush=True)
            try:
                a = read_predictions(work / "pred_bundle" / "predictions.csv")
                b = read_predictions(work / "pred_source" / "predictions.csv")
                diff = [(x, y) for x, y in zip(a, b) if x != y]
                s.check("predict-same-as-source", p.returncode == 0 and a and len(a) == len(b) and not diff,
                        f"{len(a)} rows (file, score, verdict) identical" if not diff and a and len(a) == len(b)
                        else f"{len(a)} vs {len(b)} rows, {len(diff)} differ, e.g. {diff[:2]}")
            except OSError as exc:
                s.check("predict-same-as-source", False, str(exc))

        if "gui" not in skip:
            gui_check(s, args.screenshot)

    changed = sorted(set(snapshot(dist).items()) ^ set(before.items()))
    s.check("program-folder-unchanged", not changed,
            "no file written inside the program folder" if not changed else f"changed: {changed[:5]}")
    failed = [name for name, ok, _ in s.rows if not ok]
    print("\n| check | result | detail |\n|---|---|---|")
    for name, ok, detail in s.rows:
        print(f"| {name} | {'PASS' if ok else 'FAIL'} | {detail.replace('|', '/')} |")
    print(f"\n{len(s.rows) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
