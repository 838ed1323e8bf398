"""The audit's HTML report: one self-contained folder (``index.html`` + PNG/JPEG files) made from a
results store (:class:`engine.audit.store.AuditStore`), opening offline from ``file://``.

* :mod:`.writer` -- :func:`write_report`: reads the store, draws, swaps the folder in whole;
* :mod:`.content` -- aggregates (sub-folder roll-ups, review band rule);
* :mod:`.plots` -- score histogram and sub-folder bars (matplotlib, Agg);
* :mod:`.overlays` -- thumbnails and full-size overlays from the stored patch grids, drawn by
  :mod:`engine.overlay` with the model's settings, as ``predict`` draws them;
* :mod:`.html` -- the page (plain strings, escaped; no CDN, no framework).

Usage::

    from engine.audit.report import write_report
    folder = write_report("audit_out", top_n=50)    # -> audit_out/report/index.html
"""

from .writer import ReportError, write_report

__all__ = ["ReportError", "write_report"]
