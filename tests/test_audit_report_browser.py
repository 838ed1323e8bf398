"""The audit report in a real browser: Debian's chromium, headless, opens index.html from file://.

Checks that the page is not blank (pixel spread, many colours, the score histogram's own region not
uniform) and that the ranked images are in the DOM in rank order, each loaded (``naturalWidth`` > 0,
read by a small script added to a copy of the page). chromium comes from scripts/install_chromium.sh
(.ci/run); without it the test skips, except under CI=true, where it fails.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from engine.audit.records import AuditRecord, fast_hash
from engine.audit.report import write_report
from engine.audit.store import AuditStore
from tests.conftest import texture

WINDOW = (1280, 2200)

PROBE = """<script>
window.addEventListener("load", function () {
  var imgs = [];
  document.querySelectorAll("#top-list li").forEach(function (li) {
    var im = li.querySelector("img.ranked");
    imgs.push({rank: li.dataset.rank, path: li.dataset.path, src: im.getAttribute("src"), complete: im.complete,
               width: im.naturalWidth});
  });
  var h = document.getElementById("histogram-img"), r = h.getBoundingClientRect();
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify({images: imgs, hist: {x: r.left + window.scrollX, y: r.top + window.scrollY,
                                    w: r.width, h: r.height, natural: h.naturalWidth}});
  document.body.appendChild(pre);
});
</script>"""


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe:
        return exe
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("chromium not found under CI=true: scripts/install_chromium.sh (run by .ci/run) installs it")
    pytest.skip("chromium not found: run scripts/install_chromium.sh (apt-get install chromium) for this test")


def _run_chromium(exe: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--hide-scrollbars", "--force-device-scale-factor=1", f"--user-data-dir={tmp / 'chromium-profile'}",
           f"--window-size={WINDOW[0]},{WINDOW[1]}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture
def report(tmp_path: Path) -> tuple[Path, list[AuditRecord]]:
    """A report of 30 synthetic parts in lot folders (scores known), 8 ranked images."""
    rng = np.random.default_rng(21)
    root = tmp_path / "archive"
    records = []
    for i in range(30):
        rel = f"lot{i % 3}/{i:02d}.png"
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        img = np.concatenate([texture(rng, 96), texture(rng, 96)[:, :32]], axis=1)  # 96 x 128
        Image.fromarray(img).save(p)
        st = p.stat()
        score = float(rng.gamma(3.0, 0.7))
        records.append(AuditRecord(str(p), str(root), rel, rel.rpartition("/")[0], st.st_size, st.st_mtime_ns,
                                   fast_hash(str(p)), "scored", score=score, verdict="NOK" if score >= 3 else "OK",
                                   height=96, width=128, anomaly_grid=(rng.random((6, 8)) * score).astype(np.float32)))
    meta = {"mode": "recipe", "model_path": None, "model_sha256": "t", "backbone": "test-backbone", "threshold": 3.0,
            "calibration_scores": list(rng.normal(1.8, 0.4, 25)), "roots": [str(root)], "patch_size": 14,
            "image_size": 112, "display": {"floor": 0.5, "anchor": 3.0, "high": 5.5, "threshold": 3.0,
                                           "source": "threshold", "top_fraction": 0.01}}
    with AuditStore.open(tmp_path / "out", meta=meta) as store:
        run = store.begin_run(["test"])
        store.add(records, run)
        store.finish_run(run, "finished", len(records), 0, 0)
    return write_report(tmp_path / "out", top_n=8), records


def test_report_renders_in_headless_chromium_with_the_ranked_images_loaded(report, tmp_path):
    exe = _chromium()
    folder, records = report
    index = folder / "index.html"
    probe = folder / "probe.html"  # a copy of the page with a script that writes what it sees into the DOM
    probe.write_text(index.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")

    res = _run_chromium(exe, tmp_path, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', res.stdout, re.S)
    assert found, "the page's load event never ran: " + res.stdout[:500]
    seen = json.loads(html.unescape(found.group(1)))

    expected = sorted(records, key=lambda r: -r.score)[:8]
    assert [im["path"] for im in seen["images"]] == [r.path for r in expected]  # the DOM in rank order
    assert [im["rank"] for im in seen["images"]] == [str(i) for i in range(1, 9)]
    for im in seen["images"]:
        assert (folder / im["src"]).is_file()
        assert im["complete"] and im["width"] > 0, f"{im['src']} did not load in the browser"
    assert seen["hist"]["natural"] > 0 and seen["hist"]["w"] > 100

    shot = tmp_path / "shot.png"
    res = _run_chromium(exe, tmp_path, f"--screenshot={shot}", index.as_uri())
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    px = cv2.imread(str(shot))
    assert px.shape[:2] == (WINDOW[1], WINDOW[0])
    assert px.std() > 10 and len(np.unique(px.reshape(-1, 3), axis=0)) > 50  # not blank, not one colour
    h = seen["hist"]
    x, y, w, hh = (int(round(h[k])) for k in ("x", "y", "w", "h"))
    assert y + hh <= WINDOW[1], "the histogram should be inside the screenshot"
    region = px[y:y + hh, x:x + w]
    assert region.std() > 5 and len(np.unique(region.reshape(-1, 3), axis=0)) > 10  # the plot is drawn there
