"""Metric of every working node by step, with the best-so-far curve."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static
from textual_plot import HiResMode, PlotWidget

from ...state import RunModel
from .node_tree import Palette, format_metric


class MetricPlot(PlotWidget, can_focus=False):
    """The plot, out of the focus chain: its keys (r, arrows) would shadow the app's."""


class MetricPane(Vertical):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.palette = Palette()
        self._drawn: tuple = ()

    def compose(self) -> ComposeResult:
        yield Static("no working node yet", id="metric-empty")
        yield MetricPlot(id="metric-plot", allow_pan_and_zoom=False)

    def on_mount(self) -> None:
        plot = self.query_one(MetricPlot)
        plot.margin_top = 0
        plot.margin_bottom = 2
        plot.margin_left = 8
        plot.set_xlabel("step")
        plot.display = False

    def update_from(self, model: RunModel, force: bool = False) -> None:
        self.border_title = model.metric_title()
        curve = model.best_curve
        key = (tuple(model.points), tuple(curve), self.palette.success)
        if key == self._drawn and not force:
            return
        self._drawn = key
        plot = self.query_one(MetricPlot)
        empty = self.query_one("#metric-empty", Static)
        has = bool(model.points)
        plot.display = has
        empty.display = not has
        if not has:
            return
        plot.clear()
        xs = [x for x, _ in model.points]
        ys = [y for _, y in model.points]
        last = max(model.done, max(xs))
        if curve:
            bx = [x for x, _ in curve] + [last]
            by = [y for _, y in curve] + [curve[-1][1]]
            # a step line: hold the best value until the next improvement.  Quadrant
            # blocks, not braille: more terminal fonts have them.
            sx, sy = [bx[0]], [by[0]]
            for x, y in zip(bx[1:], by[1:]):
                sx += [x, x]
                sy += [sy[-1], y]
            plot.plot(sx, sy, line_style=self.palette.success, hires_mode=HiResMode.QUADRANT, label="best so far")
        plot.scatter(xs, ys, marker="•", marker_style=f"bold {self.palette.accent}", label="node")
        lo, hi = min(ys), max(ys)
        pad = (hi - lo) * 0.1 or abs(hi) * 0.05 or 0.1
        plot.set_ylimits(lo - pad, hi + pad)
        plot.set_xlimits(0.5, last + 0.5)
        stride = max(1, round(last / 8))
        plot.set_xticks(list(range(1, last + 1, stride)))


class BestSparkline(Sparkline):
    """Best-so-far as a compact sparkline (always visible, even at 80x24)."""

    def update_from(self, model: RunModel) -> None:
        values = [v for _, v in model.best_curve]
        if model.direction == "minimize":
            values = [-v for v in values]  # up is better either way
        self.data = values  # empty: a flat baseline until a node works
        best = model.nodes.get(model.best_id) if model.best_id is not None else None
        arrow = "↓" if model.direction == "minimize" else "↑"
        self.tooltip = (
            f"best so far: #{best.id} {format_metric(best.metric)} ({arrow} is better)"
            if best
            else "no working node yet"
        )
