"""The report page: plain HTML + inline CSS written from Python strings (no template engine, no CDN,
no JS framework; one 20-line inline script sorts a table when its header is clicked).

Every value from the store (paths, messages, folder names) goes through :func:`html.escape`; every
file the page links to lies in the report folder and is linked by a relative, URL-quoted path, so
the folder opens from ``file://`` in any browser, offline, and can be moved or zipped whole.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from urllib.parse import quote

from .content import GroupRow, Level


@dataclass
class Tile:
    """One image of a gallery (top-N or review band).

    Attributes:
        rank: 1-based position in its gallery.
        score: the image score; verdict: "OK" / "NOK" / None (no threshold).
        rel: path relative to its audited root; path: absolute path.
        thumb: thumbnail file, relative to the report folder; full: full-size overlay file (or None).
        note: why the overlay could not be drawn ('' when it was).
    """

    rank: int
    score: float
    verdict: str | None
    rel: str
    path: str
    thumb: str
    full: str | None
    note: str = ""


def esc(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def href(rel_path: str) -> str:
    """A report-relative file path as a URL (each segment quoted)."""
    return "/".join(quote(part) for part in rel_path.split("/"))


def fmt(v: float | None, spec: str = ".4g") -> str:
    return "" if v is None else format(v, spec)


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1280px;padding:16px 24px;
color:#1d2733;background:#fbfbfd}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin-top:1.6em;border-bottom:2px solid #dde3ea;padding-bottom:4px}
h3{font-size:1em;margin:1.2em 0 .4em}
table{border-collapse:collapse;font-size:.88em;margin:.4em 0}th,td{padding:3px 10px;border-bottom:1px solid #e3e7ec;
text-align:left}th{background:#eef2f6}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
table.sortable th{cursor:pointer}table.sortable th:after{content:" \\2195";color:#9aa5b1}
.facts td:first-child{color:#5a6776;padding-right:18px}
.counts{display:flex;gap:12px;flex-wrap:wrap;margin:.6em 0}.count{background:#fff;border:1px solid #dde3ea;
border-radius:6px;padding:8px 14px;min-width:90px}.count b{display:block;font-size:1.4em}
.count.nok b{color:#c0392b}.count.ok b{color:#1e8449}.count.err b{color:#8e44ad}
.gallery{display:flex;flex-wrap:wrap;gap:12px;list-style:none;padding:0}
.card{background:#fff;border:1px solid #dde3ea;border-radius:6px;padding:6px;width:236px;font-size:.8em}
.card img{display:block;max-width:224px;max-height:224px;margin:0 auto}
.card .rank{font-weight:bold}.card .rel{word-break:break-all;color:#44505d}
.v-NOK{color:#c0392b;font-weight:bold}.v-OK{color:#1e8449;font-weight:bold}
.note{color:#5a6776;font-size:.88em}.warn{color:#a04000}
img.plot{max-width:100%;border:1px solid #e3e7ec;background:#fff}
"""

SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (t) {
  t.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var dir = th.dataset.dir === "desc" ? 1 : -1; th.dataset.dir = dir === 1 ? "asc" : "desc";
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
        if (x === undefined) { x = a.cells[col].textContent; y = b.cells[col].textContent; }
        var nx = parseFloat(x), ny = parseFloat(y);
        if (!isNaN(nx) && !isNaN(ny)) return dir * (nx - ny);
        return dir * String(x).localeCompare(String(y));
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def facts_table(pairs: list[tuple[str, str]]) -> str:
    return "<table class=\"facts\">" + "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in pairs) \
        + "</table>"


def counts_block(counts: dict, has_verdicts: bool) -> str:
    scored = counts["scored"]
    items = [("images", counts["images"], ""), ("scored", scored, ""), ("errors", counts["errors"], "err")]
    if has_verdicts:
        rate = f"{counts['nok'] / scored:.2%}" if scored else "n/a"
        items += [("OK", counts["ok"], "ok"), ("NOK", counts["nok"], "nok"), ("NOK rate", rate, "nok")]
        if counts.get("no_verdict"):
            items.append(("no verdict", counts["no_verdict"], ""))
    return "<div class=\"counts\" id=\"counts\">" + "".join(
        f"<div class=\"count {cls}\" data-name=\"{esc(name)}\"><b>{esc(v)}</b>{esc(name)}</div>"
        for name, v, cls in items) + "</div>"


def runs_table(runs: list[dict], cap: int = 20) -> str:
    shown = runs[-cap:]
    head = "<tr><th>run</th><th>engine</th><th>started (UTC)</th><th>finished (UTC)</th><th>status</th>" \
           "<th class=num>scored</th><th class=num>errors</th><th class=num>unchanged</th></tr>"
    body = "".join(
        f"<tr><td>{esc(r.get('id'))}</td><td>{esc(r.get('engine'))}</td><td>{esc(_short_time(r.get('started')))}</td>"
        f"<td>{esc(_short_time(r.get('finished')) or '(not finished: stopped or killed)')}</td>"
        f"<td>{esc(r.get('status'))}</td><td class=num>{esc(r.get('n_scored'))}</td>"
        f"<td class=num>{esc(r.get('n_errors'))}</td><td class=num>{esc(r.get('n_unchanged'))}</td></tr>"
        for r in shown)
    more = f"<p class=note>the last {cap} of {len(runs)} runs</p>" if len(runs) > cap else ""
    return f"<table id=\"runs\"><thead>{head}</thead><tbody>{body}</tbody></table>{more}"


def _short_time(iso: str | None) -> str:
    return "" if not iso else iso.replace("T", " ")[:19]


def group_table(level: Level, rows: list[GroupRow], has_verdicts: bool, total_rows: int) -> str:
    nok_cols = "<th class=num>NOK</th><th class=num>NOK rate</th>" if has_verdicts else ""
    head = f"<tr><th>folder</th><th class=num>images</th><th class=num>errors</th>{nok_cols}" \
           f"<th class=num>mean score</th><th class=num>max score</th></tr>"
    out = []
    for r in rows:
        rate = r.nok_rate
        nok = (f"<td class=num>{r.nok}</td><td class=num data-v=\"{'' if rate is None else f'{rate:.6f}'}\">"
               f"{'n/a' if rate is None else f'{rate:.1%}'}</td>") if has_verdicts else ""
        out.append(f"<tr><td>{esc(r.name)}</td><td class=num>{r.n}</td><td class=num>{r.errors}</td>{nok}"
                   f"<td class=num>{fmt(r.mean_score)}</td><td class=num>{fmt(r.score_max)}</td></tr>")
    more = f"<p class=note>{len(rows)} of {total_rows} shown (highest first)</p>" if total_rows > len(rows) else ""
    return (f"<h3>{esc(level.title)}</h3><table class=\"sortable groups\" data-depth=\"{level.depth}\">"
            f"<thead>{head}</thead><tbody>{''.join(out)}</tbody></table>{more}")


def gallery(tiles: list[Tile], list_id: str) -> str:
    if not tiles:
        return "<p class=note>none</p>"
    items = []
    for t in tiles:
        img = f"<img class=\"ranked\" src=\"{href(t.thumb)}\" alt=\"rank {t.rank}: {esc(t.rel)}\" loading=\"eager\">"
        link = f"<a href=\"{href(t.full)}\">{img}</a>" if t.full else img
        verdict = f" <span class=\"v-{esc(t.verdict)}\">{esc(t.verdict)}</span>" if t.verdict else ""
        note = f"<div class=\"warn\">{esc(t.note)}</div>" if t.note else ""
        items.append(f"<li class=\"card\" data-rank=\"{t.rank}\" data-score=\"{t.score!r}\" data-path=\"{esc(t.path)}\">"
                     f"{link}<div><span class=\"rank\">#{t.rank}</span> score {fmt(t.score)}{verdict}</div>"
                     f"<div class=\"rel\" title=\"{esc(t.path)}\">{esc(t.rel)}</div>{note}</li>")
    return f"<ol class=\"gallery\" id=\"{list_id}\">{''.join(items)}</ol>"


def errors_table(errors: list[dict], n_errors: int) -> str:
    if not n_errors:
        return "<p class=note>no image failed</p>"
    body = "".join(f"<tr><td>{esc(e['path'])}</td><td>{esc(e['error'])}</td></tr>" for e in errors)
    more = f"<p class=note>{len(errors)} of {n_errors} errors shown; all are in the CSV export</p>" \
        if n_errors > len(errors) else ""
    return (f"<table id=\"errors\"><thead><tr><th>path</th><th>message</th></tr></thead><tbody>{body}</tbody>"
            f"</table>{more}")


def page(title: str, sections: list[tuple[str, str, str]]) -> str:
    """The whole document: ``sections`` are ``(id, heading, inner html)``; the first has no heading."""
    parts = []
    for sid, heading, inner in sections:
        h = f"<h2>{esc(heading)}</h2>" if heading else ""
        parts.append(f"<section id=\"{sid}\">{h}{inner}</section>")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n" + "\n".join(parts)
            + f"\n<script>{SORT_JS}</script>\n</body></html>\n")
