"""The audit's HTML report (engine/audit/report): what index.html says, checked against values the tests
compute from the records they stored; overlays equal to the model's own rendering; the folder swapped in
whole. The page in a real browser: tests/test_audit_report_browser.py."""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from engine.audit.records import ArchiveFile, AuditRecord, fast_hash
from engine.audit.report import ReportError, write_report
from engine.audit.report.overlays import map_renderer
from engine.audit.report.content import GroupRow, review_band, rollups
from engine.audit.report.plots import histogram_counts, histogram_edges, wants_log_y
from engine.audit.store import AuditStore, AuditStoreError
from tests.conftest import texture


# ------------------------------------------------------------------------------------------ helpers
class Page(HTMLParser):
    """The bits of index.html the tests read: gallery cards (attributes, img src, link), table rows, counts."""

    def __init__(self, text: str):
        super().__init__()
        self.cards: dict[str, list[dict]] = {}
        self.tables: list[dict] = []
        self.counts: dict[str, str] = {}
        self._list = None
        self._card = None
        self._table = None
        self._cell = None
        self._count = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "ol" and "gallery" in a.get("class", ""):
            self._list = self.cards.setdefault(a["id"], [])
        elif tag == "li" and self._list is not None:
            self._card = {**a, "img": None, "href": None}
            self._list.append(self._card)
        elif tag == "img" and self._card is not None:
            self._card["img"] = a["src"]
        elif tag == "a" and self._card is not None:
            self._card["href"] = a["href"]
        elif tag == "table":
            self._table = {"class": a.get("class", ""), "depth": a.get("data-depth"), "rows": [], "id": a.get("id")}
            self.tables.append(self._table)
        elif tag == "tr" and self._table is not None:
            self._table["rows"].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "div" and "count" in a.get("class", "").split():
            self._count = a["data-name"]
        elif tag == "b" and self._count is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "ol":
            self._list = None
        elif tag == "li":
            self._card = None
        elif tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._table is not None and self._cell is not None:
            self._table["rows"][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "b" and self._count is not None:
            self.counts[self._count] = "".join(self._cell).strip()
            self._cell, self._count = None, None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _file_in(root: Path, rel: str, rgb: np.ndarray) -> ArchiveFile:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(p)
    st = p.stat()
    return ArchiveFile(str(p), str(root), rel, rel.rpartition("/")[0], st.st_size, st.st_mtime_ns)


def _scored(f: ArchiveFile, score: float, threshold: float | None, grid: np.ndarray, hw=(48, 64)) -> AuditRecord:
    verdict = None if threshold is None else ("NOK" if score >= threshold else "OK")
    return AuditRecord(f.path, f.root, f.rel, f.group, f.size, f.mtime_ns, fast_hash(f.path), "scored", score=score,
                       verdict=verdict, height=hw[0], width=hw[1], anomaly_grid=grid, latency_ms=2.0)


def _meta(threshold: float | None, calibration: list[float], root: Path, mode: str = "recipe",
          model_path: str | None = None) -> dict:
    return {"mode": mode, "model_path": model_path, "model_sha256": "test", "backbone": "test-backbone",
            "threshold": threshold, "calibration_scores": calibration, "display": None, "roots": [str(root)],
            "patch_size": 14, "image_size": 56}


def _fill(out: Path, meta: dict, records: list[AuditRecord]) -> None:
    with AuditStore.open(out, meta=meta) as store:
        run = store.begin_run(["audit", "test"])
        store.add(records, run)
        store.finish_run(run, "finished", sum(r.status == "scored" for r in records),
                         sum(r.status == "error" for r in records), 0)


@pytest.fixture
def synthetic_audit(tmp_path: Path):
    """A store of 42 scored images in line*/day* sub-folders plus 2 unreadable ones; scores drawn at
    random, known to the test; threshold 3.0, 20 calibration scores."""
    rng = np.random.default_rng(7)
    root = tmp_path / "archive"
    threshold = 3.0
    calibration = list(rng.normal(2.0, 0.4, 20))
    records = []
    for i in range(42):
        rel = f"line{i % 3}/day{i % 2}/{i:03d}.png"
        f = _file_in(root, rel, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
        score = float(rng.gamma(3.0, 0.8))
        records.append(_scored(f, score, threshold, (rng.random((4, 5)) * score).astype(np.float32)))
    for name in ("line0/broken.png", "line1/day0/empty.png"):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"not a png")
        st = p.stat()
        f = ArchiveFile(str(p), str(root), name, name.rpartition("/")[0], st.st_size, st.st_mtime_ns)
        records.append(AuditRecord.failed(f, f"{p}: not an image. Re-export it.", fast_hash(str(p))))
    out = tmp_path / "out"
    _fill(out, _meta(threshold, calibration, root), records)
    return out, records, threshold, calibration


# ------------------------------------------------------------------------------------------ content
def test_header_counts_and_nok_rate_match_the_records(synthetic_audit):
    out, records, threshold, _ = synthetic_audit
    folder = write_report(out, top_n=5)
    assert folder == out / "report"
    page = Page((folder / "index.html").read_text(encoding="utf-8"))
    scored = [r for r in records if r.status == "scored"]
    nok = sum(r.score >= threshold for r in scored)
    assert page.counts == {"images": str(len(records)), "scored": str(len(scored)), "errors": "2",
                           "OK": str(len(scored) - nok), "NOK": str(nok), "NOK rate": f"{nok / len(scored):.2%}"}


def test_top_n_are_the_highest_scores_in_rank_order_with_files_present(synthetic_audit):
    out, records, _, _ = synthetic_audit
    folder = write_report(out, top_n=7)
    cards = Page((folder / "index.html").read_text(encoding="utf-8")).cards["top-list"]
    expected = sorted((r for r in records if r.status == "scored"), key=lambda r: -r.score)[:7]
    assert [c["data-path"] for c in cards] == [r.path for r in expected]
    assert [int(c["data-rank"]) for c in cards] == list(range(1, 8))
    for c, r in zip(cards, expected):
        assert float(c["data-score"]) == r.score
        thumb, full = cv2.imread(str(folder / c["img"])), cv2.imread(str(folder / c["href"]))
        assert thumb is not None and full is not None
        assert full.shape[:2] == (48, 64)  # the full-size overlay has the image's own size


def test_review_band_holds_exactly_the_scores_just_under_the_threshold(synthetic_audit):
    out, records, threshold, calibration = synthetic_audit
    folder = write_report(out, top_n=50)
    width = float(np.std(calibration))  # the documented default: spread of the calibration scores
    expected = sorted((r for r in records if r.status == "scored" and threshold - width <= r.score < threshold),
                      key=lambda r: -r.score)
    assert expected, "the fixture must put some scores in the band"
    cards = Page((folder / "index.html").read_text(encoding="utf-8")).cards["band-list"]
    assert [c["data-path"] for c in cards] == [r.path for r in expected]
    # a band width given by the user replaces the rule
    folder = write_report(out, top_n=50, band=0.25)
    cards = Page((folder / "index.html").read_text(encoding="utf-8")).cards["band-list"]
    assert [c["data-path"] for c in cards] == [r.path for r in sorted(
        (r for r in records if r.status == "scored" and threshold - 0.25 <= r.score < threshold), key=lambda r: -r.score)]


def test_review_band_rule_falls_back_to_a_tenth_of_the_threshold():
    lo, hi, rule = review_band(4.0, [1.0, 1.2])  # too few calibration scores
    assert (lo, hi) == (pytest.approx(3.6), 4.0) and "10%" in rule
    lo, hi, rule = review_band(4.0, [2.0] * 10)  # no spread
    assert lo == pytest.approx(3.6) and "all equal" in rule
    cal = np.linspace(1, 2, 9)
    assert review_band(4.0, cal)[0] == pytest.approx(4.0 - cal.std())
    assert review_band(None, cal) is None
    with pytest.raises(ValueError):
        review_band(4.0, cal, width=0)


def test_nok_rate_per_folder_and_its_rollups(synthetic_audit):
    out, records, threshold, _ = synthetic_audit
    folder = write_report(out, top_n=0)
    tables = {t["depth"]: t["rows"] for t in Page((folder / "index.html").read_text(encoding="utf-8")).tables
              if "groups" in t["class"]}
    assert set(tables) == {"1", "0"}  # sub-folders are two deep: first level, then the full sub-folders

    def expect(key):
        acc = {}
        for r in records:
            k = key(r)
            a = acc.setdefault(k, [0, 0, 0])
            a[0] += 1
            a[1] += r.status == "error"
            a[2] += r.status == "scored" and r.score >= threshold
        return acc

    for depth, key in (("1", lambda r: r.rel.split("/")[0]), ("0", lambda r: r.rel.rpartition("/")[0])):
        rows = tables[depth]
        assert rows[0][:5] == ["folder", "images", "errors", "NOK", "NOK rate"]
        got = {row[0]: row[1:5] for row in rows[1:]}
        want = {k: [str(n), str(e), str(k_), "n/a" if n == e else f"{k_ / (n - e):.1%}"]
                for k, (n, e, k_) in expect(key).items()}
        assert got == want
        rates = [float(r[4].rstrip("%")) for r in rows[1:] if r[4] != "n/a"]
        assert rates == sorted(rates, reverse=True)  # highest NOK rate first
    assert (folder / "groups_1.png").is_file() and (folder / "groups_0.png").is_file()


def test_rollup_levels_follow_the_folder_depth():
    rows = [GroupRow("a/x/1", 4, 0, 1, 4.0, 2.0), GroupRow("a/x/2", 2, 1, 1, 3.0, 3.0), GroupRow("b/y/1", 3, 0, 0, 1.0, 0.5)]
    levels = rollups(rows)
    assert [lv.depth for lv in levels] == [1, 2, 0]
    one = {r.name: (r.n, r.errors, r.nok, r.score_max) for r in levels[0].rows}
    assert one == {"a": (6, 1, 2, 3.0), "b": (3, 0, 0, 0.5)}
    assert levels[0].rows[0].nok_rate == pytest.approx(2 / 5)
    assert [lv.depth for lv in rollups([GroupRow("(root)", 3), GroupRow("lot1", 2)])] == [0]


def test_errors_table_lists_each_unreadable_file(synthetic_audit):
    out, records, _, _ = synthetic_audit
    page = Page((write_report(out, top_n=0) / "index.html").read_text(encoding="utf-8"))
    errors = next(t for t in page.tables if t["id"] == "errors")["rows"][1:]
    assert sorted(errors) == sorted([r.path, r.error] for r in records if r.status == "error")


def test_histogram_counts_streamed_in_chunks_equal_one_pass():
    rng = np.random.default_rng(1)
    scores = rng.gamma(2.0, 1.0, 10_000)
    edges = histogram_edges(scores.min(), scores.max(), [7.5, -1.0])
    assert edges[0] == -1.0 and edges[-1] == scores.max()
    chunked = histogram_counts(np.array_split(scores, 13), edges)
    assert chunked.tolist() == np.histogram(scores, edges)[0].tolist()
    assert chunked.sum() == scores.size
    assert wants_log_y(np.array([10_000, 30, 20, 10, 5])) and not wants_log_y(np.array([50, 40, 30, 20]))


# ------------------------------------------------------------------------------------------ overlays
@pytest.fixture(scope="module")
def letterbox_model(tmp_path_factory) -> Path:
    """A small fitted model with non-default map settings (letterbox, sigma 2, a region of interest),
    so an overlay drawn with the wrong settings differs from the model's own."""
    from engine.model import InspectionModel
    from engine.roi import RegionOfInterest

    rng = np.random.default_rng(5)
    good = tmp_path_factory.mktemp("lb_good")
    for i in range(6):
        Image.fromarray(texture(rng, 64)[:, :48].copy()).save(good / f"{i}.png")
    model = InspectionModel.create(backbone="efficientnet_lite0", size=64, resize_mode="letterbox", sigma=2.0,
                                   device="cpu", scorer_params={"coreset_ratio": 0.5})
    model.roi = RegionOfInterest(include=[[(4, 4), (43, 4), (43, 59), (4, 59)]], ref_width=48, ref_height=64)
    model.fit(sorted(good.iterdir()), folds=0, holdout_fraction=0.34, rule="tail", synthetic=0)
    path = tmp_path_factory.mktemp("lb_model") / "lb.dimodel"
    model.save(path)
    return path


def test_overlay_in_the_report_is_predicts_overlay(letterbox_model, tmp_path):
    """The real recipe scorer fills the store; the report's full-size overlay is compared with the one
    predict's pipeline draws from its float32 map (the stored grid is float16: a few pixels may differ
    by rounding at the colour steps and the outline)."""
    from engine.audit.scoring import RecipeScorer
    from engine.backbones.preprocess import Preprocess
    from engine.anomaly_map import anomaly_map
    from engine.model import InspectionModel
    from engine.overlay import render_overlay

    model = InspectionModel.load(letterbox_model, device="cpu")
    rng = np.random.default_rng(11)
    img = texture(rng, 64)[:, :48].copy()
    img[28:34, 20:26] = np.clip(img[28:34, 20:26].astype(int) + 60, 0, 255)  # a mild defect: colours not saturated
    root = tmp_path / "arch"
    f = _file_in(root, "part.png", img)
    scorer = RecipeScorer(letterbox_model, device="cpu")
    [rec] = scorer.score_batch([f])
    assert rec.status == "scored"
    _fill(tmp_path / "out", {**scorer.meta(), "roots": [str(root)]}, [rec])
    folder = write_report(tmp_path / "out", top_n=1)
    got = cv2.cvtColor(cv2.imread(str(folder / "overlays/top_0001.png")), cv2.COLOR_BGR2RGB)

    pred = model.predict([img])[0]
    want = render_overlay(img, pred.anomaly_map, model.display_scale(), pred.score)
    assert (want != img).any(-1).mean() > 0.2  # the heatmap shows (an all-transparent overlay would prove nothing)
    # the report's renderer, given predict's own float32 patch scores, draws predict's overlay bit for bit
    with AuditStore.open(tmp_path / "out") as store:
        renderer = map_renderer(store.meta())
    assert np.array_equal(renderer.overlay(img, pred.patch_scores, pred.score), want)
    # from the stored float16 grid: equal but for rounding (measured: 1.3 % of the pixels, by <= 3 levels)
    differs = (got != want).any(-1)
    assert differs.mean() < 0.03, f"{differs.mean():.2%} of the pixels differ from predict's overlay"
    assert np.abs(got.astype(int) - want.astype(int)).mean() < 0.5
    # the map settings matter: the same grid drawn stretched ('resize', default sigma) is far off
    plain = anomaly_map(rec.anomaly_grid.astype(np.float32), Preprocess(64, model.pre.mean, model.pre.std, "resize"),
                        (64, 48), 4.0)
    assert (render_overlay(img, plain, model.display_scale(), pred.score) != want).any(-1).mean() > 0.05


def test_mutual_audit_has_no_verdicts_no_band_and_ranks_by_score(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "arch"
    records = []
    for i in range(9):
        f = _file_in(root, f"lot{i % 2}/{i}.png", texture(rng, 64))
        records.append(_scored(f, float(i) / 3, None, rng.random((4, 4)).astype(np.float32), hw=(64, 64)))
    _fill(tmp_path / "out", _meta(None, [], root, mode="mutual"), records)
    text = (write_report(tmp_path / "out", top_n=4) / "index.html").read_text(encoding="utf-8")
    page = Page(text)
    assert [c["data-path"] for c in page.cards["top-list"]] == [r.path for r in records[::-1][:4]]
    assert "band-list" not in page.cards and "NOK" not in page.counts
    groups = [t for t in page.tables if "groups" in t["class"]][0]["rows"]
    assert groups[0] == ["folder", "images", "errors", "mean score", "max score"]
    assert "colours stretched per image" in text


def test_a_file_changed_or_gone_since_the_audit_gets_a_note_not_a_stale_overlay(synthetic_audit):
    out, records, _, _ = synthetic_audit
    top = sorted((r for r in records if r.status == "scored"), key=lambda r: -r.score)[:2]
    Path(top[0].path).unlink()
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(top[1].path)
    folder = write_report(out, top_n=3)
    cards = Page((folder / "index.html").read_text(encoding="utf-8")).cards["top-list"]
    assert cards[0]["href"] is None and cards[1]["href"] is None and cards[2]["href"] is not None
    text = (folder / "index.html").read_text(encoding="utf-8")
    assert "no longer on disk" in text and "changed on disk since it was scored" in text
    assert cv2.imread(str(folder / cards[0]["img"])) is not None  # a grey tile says why


# ------------------------------------------------------------------------------------------ the folder
def test_rewriting_replaces_the_folder_whole_and_a_stopped_rewrite_keeps_the_old(synthetic_audit):
    out, _, _, _ = synthetic_audit
    folder = write_report(out, top_n=6)
    assert len(list((folder / "thumbs").iterdir())) > 6  # top 6 + the band
    write_report(out, top_n=2, band_n=0)
    assert sorted(p.name for p in (folder / "thumbs").iterdir()) == ["top_0001.jpg", "top_0002.jpg"]
    before = (folder / "index.html").read_bytes()

    def stop(done, total, stage):
        raise KeyboardInterrupt  # the user stops it half-way

    with pytest.raises(KeyboardInterrupt):
        write_report(out, top_n=5, progress=stop)
    assert (folder / "index.html").read_bytes() == before
    assert [p.name for p in out.iterdir() if p.name.startswith(".report")] == []  # no temporary left
    # what a writer killed with SIGKILL leaves (its pid no longer runs) is removed by the next one
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / f".report.tmp-{dead.pid}" / "thumbs").mkdir(parents=True)
    write_report(out, top_n=1)
    assert [p.name for p in out.iterdir() if p.name.startswith(".report")] == []


def test_refuses_to_replace_a_folder_that_is_not_a_report_and_a_missing_store(synthetic_audit, tmp_path):
    out, _, _, _ = synthetic_audit
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ReportError, match="not a report folder"):
        write_report(out, out=mine)
    assert (mine / "notes.txt").read_text() == "keep me"
    with pytest.raises(AuditStoreError, match="no audit results"):
        write_report(tmp_path / "nothing-here")


# ------------------------------------------------------------------------------------------ a real audit
def test_a_real_audit_writes_the_report_and_report_only_remakes_it(tmp_path_factory, tmp_path, capsys):
    """main.py audit (real recipe scorer, local runner) writes DIR/report; --report-only re-makes it from
    the store alone; a folder without a store is one line, not a traceback."""
    from main import main
    from tests.audit_support import shared_tiny_model, write_archive

    model = shared_tiny_model(tmp_path_factory)
    arc, out = tmp_path / "arc", tmp_path / "out"
    write_archive(arc, 10)
    (arc / "line0" / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    main(["audit", "--model", str(model), str(arc), "--out", str(out), "--quiet", "--top-n", "4", "--device", "cpu"])
    assert f"report: {out / 'report' / 'index.html'}" in capsys.readouterr().out
    page = Page((out / "report" / "index.html").read_text(encoding="utf-8"))
    with AuditStore.open(out) as store:
        top = store.top(4)
        counts = store.counts()
    assert [c["data-path"] for c in page.cards["top-list"]] == [r["path"] for r in top]
    assert page.counts["images"] == "11" and page.counts["errors"] == "1" == str(counts["errors"])
    assert all((out / "report" / c["href"]).is_file() for c in page.cards["top-list"])
    first = (out / "report" / "index.html").stat().st_mtime_ns

    assert main(["audit", "--report-only", str(out), "--top-n", "2", "--quiet"]) == 0
    assert len(Page((out / "report" / "index.html").read_text(encoding="utf-8")).cards["top-list"]) == 2
    assert (out / "report" / "index.html").stat().st_mtime_ns != first
    capsys.readouterr()
    assert main(["audit", "--report-only", str(tmp_path / "none"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no audit results there" in err
