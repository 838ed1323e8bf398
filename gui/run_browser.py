"""The run on screen: which result is shown (following the newest one unless the operator browses
back), drawn at the threshold in use (:mod:`gui.verdict`), with the run's counters beside it."""

from __future__ import annotations

import numpy as np

from engine.errors import ImageReadError
from engine.images import read_image

from .image_view_widget import InspectionView
from .inspection_panel import InspectionPanel
from .run_results import InspectionResult, RunResults, short_name


class RunBrowser:
    """Results of the current run and the one shown.

    Args:
        view: the image / heatmap / contour view.
        panel: verdict, threshold and counters.
        on_warning: ``on_warning(message)`` when an image cannot be read again for display.
    """

    def __init__(self, view: InspectionView, panel: InspectionPanel, on_warning):
        self.view, self.panel, self._on_warning = view, panel, on_warning
        self.results = RunResults()
        self.current: int | None = None  # index of the shown result
        self.follow = True  # show each new result as it arrives

    def add(self, r: InspectionResult) -> None:
        """A new result: keep it, show it when following, update the counters."""
        image = r.image  # the run keeps pixels only for results without a file; show them now anyway
        index = self.results.add(r)
        self.panel.verdict_strip.add_result(index, r)
        if self.follow or self.current is None:
            self.show(index, image=image)
        self.panel.refresh_run(self.results)

    def show(self, i: int, image: np.ndarray | None = None) -> None:
        """Show result ``i``: image, overlay, contours and verdict at the threshold in use.

        ``image``: its pixels when the caller has them (else kept ones, else read from the file).
        """
        if not 0 <= i < len(self.results):
            return
        self.current = i
        r = self.results[i]
        image = r.image if image is None else image
        if image is None and r.image_path is not None and r.error is None:
            try:
                image = read_image(r.image_path, *([r.value_range] if r.value_range is not None else []))
            except ImageReadError as exc:
                self._on_warning(str(exc))
        if r.error is not None:
            self.view.clear(f"Unreadable: {r.error}")
        else:
            unit, contours = self.panel.thresholds.map_display(r)
            self.view.show_result(image, r.image_hw, unit, contours, _caption(r))
            self.view.set_legend(self.panel.thresholds.scale_text())
        self.panel.show_result(r, self._position(i))
        self.panel.verdict_strip.set_current(i)

    def select(self, i: int) -> None:
        """The operator picked result ``i`` (a tile of the verdict strip): show it; new results
        are followed again only when it is the newest one."""
        self.show(i)
        self.follow = self.current == len(self.results) - 1

    def step(self, delta: int) -> None:
        """Show the previous (-1) or next (+1) result; following resumes at the newest one."""
        if not len(self.results):
            return
        i = (len(self.results) - 1 if self.current is None else self.current) + delta
        self.show(min(max(i, 0), len(self.results) - 1))
        self.follow = self.current == len(self.results) - 1

    def clear(self) -> None:
        """A new run: no results, nothing shown, counters at zero."""
        self.results.clear()
        self.current = None
        self.follow = True
        self.view.clear()
        self.panel.clear_result()
        self.panel.verdict_strip.clear()
        self.panel.refresh_run(self.results)

    def redraw(self) -> None:
        """The threshold in use changed: map, contours and verdict of the shown result, and the
        counters, again (no model call)."""
        if self.current is not None and self.current < len(self.results):
            r = self.results[self.current]
            if r.error is None:
                self.view.update_map(*self.panel.thresholds.map_display(r))
                self.view.set_legend(self.panel.thresholds.scale_text())
            self.panel.show_result(r, self._position(self.current))
        self.panel.refresh_run(self.results, histogram=False)

    def _position(self, i: int) -> str:
        return f"{i + 1} / {len(self.results)}   {short_name(self.results[i].name)}"


def _caption(r: InspectionResult) -> str:
    note = "" if r.anomaly_map is not None else "   — anomaly map no longer kept (older result)"
    return f"{r.source}: {r.name}   ({r.image_hw[1]}x{r.image_hw[0]} px){note}"

