"""Write an audit's HTML report folder from its results store (:func:`write_report`)."""

from __future__ import annotations

import datetime as _dt
import os
import shutil
from pathlib import Path

import numpy as np

from engine.errors import InspectError
from engine.images import ImageReadError, read_image

from ..records import fast_hash
from ..store import AuditStore
from . import html as H
from .content import group_rows, rank_rows, review_band, rollups
from .overlays import MapRenderer, encode, map_renderer, placeholder, thumbnail
from .plots import group_bars, histogram_counts, histogram_edges, score_histogram

TOP_N = 50
"""Default number of most anomalous images shown."""

MAX_TABLE_ROWS = 300
"""Rows shown per sub-folder table (highest first; the count of the rest is given)."""

MAX_BARS = 30
"""Bars per sub-folder plot."""

MAX_ERRORS = 200
"""Error rows listed (the count of the rest is given)."""

REPORT_DIR = "report"


class ReportError(InspectError):
    """The report cannot be written (message: the folder and the fix)."""


def write_report(store_dir: str | Path, out: str | Path | None = None, top_n: int = TOP_N,
                 band: float | None = None, band_n: int | None = None, progress=None) -> Path:
    """Write the report of the audit in ``store_dir`` (its ``audit.sqlite``) as one self-contained folder.

    The folder holds ``index.html`` (header: mode, backbone, model, threshold, roots, runs, counts and
    NOK rate; score histogram; NOK rate per sub-folder as tables and bar plots; the top-N most anomalous
    images and the review band as thumbnails, each linked to its full-size overlay; the errors),
    ``histogram.png``, ``groups_*.png``, ``thumbs/*.jpg`` and ``overlays/*.png``. It is written to a
    temporary folder next to ``out`` and renamed into place, so a report is replaced whole (the old one
    stays until the new one is complete). Only the store is read, plus the top-N and band images from
    disk; aggregates are SQL, scores are streamed, so a store of a million rows costs megabytes.

    Args:
        store_dir: the audit's ``--out`` folder.
        out: the report folder (default ``store_dir/report``).
        top_n: most anomalous images shown (>= 0).
        band: review band width in score units (None: the rule of :func:`content.review_band`).
        band_n: band images shown, highest first (default ``top_n``).
        progress: ``progress(done, total, stage)`` callback (:mod:`engine.progress`), or None.
    Returns:
        the report folder (open its ``index.html``).
    Raises:
        engine.audit.store.AuditStoreError: no store in ``store_dir``, or not one of this format.
        ReportError: ``out`` exists and is not a report folder, or cannot be written.
        ValueError: ``top_n`` < 0 or ``band`` not > 0.
    """
    if top_n < 0:
        raise ValueError(f"top_n must be >= 0, got {top_n}")
    store_dir = Path(store_dir)
    out = Path(out) if out is not None else store_dir / REPORT_DIR
    band_n = top_n if band_n is None else band_n
    with AuditStore.open(store_dir) as store:
        _check_out(out)
        _remove_leftovers(out)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        try:
            (tmp / "thumbs").mkdir(parents=True)
            (tmp / "overlays").mkdir()
            _write(store, tmp, top_n, band, band_n, progress)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ReportError(f"{out}: cannot write the report ({exc.strerror or exc}). Choose another folder "
                              f"(--report-out) or free space.") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    _swap_in(tmp, out)
    return out


def _check_out(out: Path) -> None:
    if out.exists() and not (out.is_dir() and ((out / "index.html").is_file() or not any(out.iterdir()))):
        raise ReportError(f"{out}: exists and is not a report folder (no index.html), so it is not replaced. "
                          f"Move it away or write the report elsewhere.")


def _remove_leftovers(out: Path) -> None:
    """Remove the temporary folders a killed report writer left next to ``out`` (``.report.tmp-PID``,
    ``.report.old-PID`` of a process that no longer runs)."""
    if not out.parent.is_dir():
        return
    for p in out.parent.glob(f".{out.name}.*-*"):
        kind, _, pid = p.name[len(out.name) + 2:].partition("-")
        if kind not in ("tmp", "old") or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # that writer still runs
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except OSError:
            continue


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace ``out`` by ``tmp``: two renames (the old folder is removed only after the new one is in place)."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write(store: AuditStore, dest: Path, top_n: int, band_width: float | None, band_n: int, progress) -> None:
    meta, counts, runs = store.meta(), store.counts(), store.runs()
    threshold = meta.get("threshold")
    # verdicts come from the threshold (recipe) or from the scorer's own cut per folder (mutual)
    has_verdicts = counts["ok"] + counts["nok"] > 0
    calibration = np.asarray(meta.get("calibration_scores") or [], np.float64)
    band = review_band(threshold, calibration, band_width)
    renderer = map_renderer(meta)

    # ---- histogram (scores streamed from the store)
    scores = store.scores()
    extra = [threshold] if threshold is not None else []
    if calibration.size:
        extra += [float(calibration.min()), float(calibration.max())]
    edges = histogram_edges(float(scores.min()) if scores.size else 0.0,
                            float(scores.max()) if scores.size else 1.0, extra)
    hist = histogram_counts([scores], edges)
    log_y = score_histogram(dest / "histogram.png", edges, hist, threshold, calibration,
                            band[:2] if band else None)
    del scores

    # ---- sub-folders
    groups_html = []
    for level in rollups(group_rows(store.path)):
        ranked = rank_rows(level.rows, by_nok=has_verdicts)
        shown = ranked[:MAX_TABLE_ROWS]
        plot = f"groups_{level.depth}.png"
        valued = [r for r in ranked if (r.nok_rate if has_verdicts else r.mean_score) is not None]
        plotted = valued[:MAX_BARS]
        if plotted:
            group_bars(dest / plot, [r.name for r in plotted],
                       [100 * r.nok_rate if has_verdicts else r.mean_score for r in plotted],
                       "NOK rate (%)" if has_verdicts else "mean image score",
                       f"{level.title}" + (f" (the {len(plotted)} highest of {len(valued)})"
                                           if len(valued) > len(plotted) else ""))
            groups_html.append(H.group_table(level, shown, has_verdicts, len(ranked))
                               + f"<p><img class=\"plot\" src=\"{plot}\" alt=\"{H.esc(level.title)} plot\"></p>")
        else:
            groups_html.append(H.group_table(level, shown, has_verdicts, len(ranked)))

    # ---- galleries
    top_rows = store.top(top_n) if top_n else []
    band_rows = store.band(band[0], band[1], band_n) if band and band_n else []
    total, done = len(top_rows) + len(band_rows), 0
    tiles = {"top": [], "band": []}
    for prefix, rows in (("top", top_rows), ("band", band_rows)):
        for rank, row in enumerate(rows, start=1):
            tiles[prefix].append(_tile(row, rank, prefix, renderer, dest))
            done += 1
            if progress is not None:
                progress(done, total, "report")
        rows.clear()

    errors = []
    if counts["errors"]:
        for row in store.iter_rows(order_by="path", status="error"):
            errors.append({"path": row["path"], "error": row["error"]})
            if len(errors) >= MAX_ERRORS:
                break

    # ---- page
    n_scored = counts["scored"]
    facts = [("mode", "recipe (model file)" if meta.get("mode") == "recipe" else
              "mutual (no recipe: each image scored against the other images of its folder)"),
             ("backbone", meta.get("backbone") or "?"),
             ("model", meta.get("model_path") or "(none)"),
             ("scorer", meta.get("describe") or ""),
             ("threshold", f"{threshold:.6g}" if threshold is not None else
              ("none: the verdicts are SUGGESTED by the scorer's robust cut per folder (median + 3.5 x 1.4826 x MAD of "
               "its reference images' scores), not a calibrated threshold") if has_verdicts else
              "none (no verdicts: images are ranked by score)"),
             ("roots", ", ".join(meta.get("roots") or [])),
             ("audit started", H._short_time(meta.get("created"))),
             ("report written", _dt.datetime.now(_dt.timezone.utc).isoformat()[:19].replace("T", " ") + " UTC"),
             ("overlays", renderer.note + (f"; {renderer.scale.describe()}" if renderer.scale else ""))]
    facts = [(k, v) for k, v in facts if v]
    hist_note = [f"{n_scored} scored images in {len(edges) - 1} bins"]
    if log_y:
        hist_note.append("count axis logarithmic (the tallest bin is over 50x the median non-empty bin)")
    if threshold is not None:
        hist_note.append(f"dashed line: threshold {threshold:.4g}")
        hist_note.append(f"green: the {calibration.size} good-calibration scores the threshold came from"
                         if calibration.size else "no good-calibration scores recorded")
    if band:
        hist_note.append(f"shaded: review band [{band[0]:.4g}, {band[1]:.4g})")
    band_html = (f"<p class=note>Scored images with {band[0]:.4g} &le; score &lt; threshold {band[1]:.4g} "
                 f"({H.esc(band[2])}), highest first, up to {band_n}.</p>" + H.gallery(tiles["band"], "band-list")
                 if band else "<p class=note>no threshold, so no review band (mutual audit: see the ranking)</p>")
    top_title = f"Top {len(tiles['top'])} most anomalous images"
    sections = [
        ("summary", "", f"<h1>Audit report</h1>{H.facts_table(facts)}{H.counts_block(counts, has_verdicts)}"
                        f"<h3>runs</h3>{H.runs_table(runs)}"),
        ("histogram", "Score histogram", f"<img class=\"plot\" id=\"histogram-img\" src=\"histogram.png\" "
                                         f"alt=\"score histogram\"><p class=note>{H.esc('; '.join(hist_note))}</p>"),
        ("groups", "NOK rate per sub-folder" if has_verdicts else "Scores per sub-folder",
         "<p class=note>click a column to sort</p>" + "".join(groups_html)),
        ("top", top_title, "<p class=note>ranked by image score, highest first; click a thumbnail for the "
                           "full-size overlay</p>" + H.gallery(tiles["top"], "top-list")),
        ("band", "Review band (just under the threshold)", band_html),
        ("errors", f"Errors ({counts['errors']})", H.errors_table(errors, counts["errors"])),
    ]
    (dest / "index.html").write_text(H.page("Audit report", sections), encoding="utf-8")


def _tile(row: dict, rank: int, prefix: str, renderer: MapRenderer, dest: Path) -> H.Tile:
    """Draw one gallery image: its overlay (full size, PNG) and thumbnail (JPEG), or a grey tile saying why not."""
    name = f"{prefix}_{rank:04d}"
    thumb, full = f"thumbs/{name}.jpg", f"overlays/{name}.png"
    note = _changed(row)
    if not note:
        try:
            img = read_image(row["path"], renderer.value_range)
            if row.get("height") and (img.shape[0], img.shape[1]) != (row["height"], row["width"]):
                note = "image size differs from the audited one: changed since"
        except ImageReadError as exc:
            note = f"cannot be read now: {exc}"
    if note:
        encode(dest / thumb, placeholder(note))
        full = None
    else:
        ov = renderer.overlay(img, row.get("anomaly_grid"), row["score"])
        encode(dest / full, ov)
        encode(dest / thumb, thumbnail(ov))
    return H.Tile(rank, float(row["score"]), row.get("verdict"), row.get("rel") or row["path"], row["path"],
                  thumb, full, note)


def _changed(row: dict) -> str:
    """'' when the file on disk is the one scored (size + mtime, else the fast hash), else why not."""
    try:
        st = os.stat(row["path"])
    except OSError as exc:
        return f"no longer on disk ({exc.strerror or exc})"
    if st.st_size == row["size"] and st.st_mtime_ns == row["mtime_ns"]:
        return ""
    try:
        if st.st_size == row["size"] and fast_hash(row["path"], st.st_size) == row["fast_hash"]:
            return ""
    except OSError as exc:
        return f"cannot be read now ({exc.strerror or exc})"
    return "changed on disk since it was scored (audit again to update)"
