"""Start-up time: `main.py -h`, `main.py fit -h` (wall time of the whole process) and the GUI to its
main window's first paint (``DINOINSPECT_STARTUP_PROBE=quit``, gui/app.py), each run ``--runs`` times.

    python benchmarks/startup.py [--runs 5] [--platform offscreen|xcb] [--out docs/startup.json]

Writes the median / min / max seconds per case, the load average before and after, and the
platform, to ``--out``. Under Xvfb: ``xvfb-run -a python benchmarks/startup.py --platform xcb``.
Timings on a shared machine vary with its load: the file records it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def gui_first_paint(env: dict) -> float:
    out = subprocess.run([sys.executable, str(REPO / "main.py")], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=600)
    for line in out.stderr.splitlines():
        if line.startswith("startup: main window shown after "):
            return float(line.split()[-2])
    raise RuntimeError(f"no startup line (exit {out.returncode}): {out.stderr[-1000:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--platform", default="offscreen", help="QT_QPA_PLATFORM for the GUI case (default offscreen)")
    ap.add_argument("--out", default=str(REPO / "docs" / "startup.json"))
    args = ap.parse_args()
    env = dict(os.environ, DINOINSPECT_DATA_DIR=tempfile.mkdtemp(prefix="dinoinspect-startup-"))
    gui_env = dict(env, DINOINSPECT_STARTUP_PROBE="quit", QT_QPA_PLATFORM=args.platform)
    load_before = os.getloadavg()
    cases = {
        "main.py -h (s, process wall time)": lambda: timed([sys.executable, "main.py", "-h"], env),
        "main.py fit -h (s, process wall time)": lambda: timed([sys.executable, "main.py", "fit", "-h"], env),
        f"GUI to first paint of the main window (s since process start, {args.platform})": lambda: gui_first_paint(gui_env),
    }
    results = {}
    for name, fn in cases.items():
        runs = [fn() for _ in range(args.runs)]
        results[name] = {"median": round(statistics.median(runs), 3), "min": round(min(runs), 3),
                         "max": round(max(runs), 3), "runs": [round(r, 3) for r in runs]}
        print(f"{name}: median {results[name]['median']:.3f} s (min {results[name]['min']:.3f}, "
              f"max {results[name]['max']:.3f}, {args.runs} runs)")
    doc = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
           "load_average_before": [round(x, 2) for x in load_before],
           "load_average_after": [round(x, 2) for x in os.getloadavg()], "results": results}
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
