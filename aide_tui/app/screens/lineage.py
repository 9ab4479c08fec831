"""The lineage of a node: every step from its draft to it, what each step did to the metric,
and the change each step made to the code.

A solution's history reads like `git log` of its branch: one row per ancestor (operation,
status, metric, change of metric against its parent, the first line of its plan), the diff of
the highlighted step below, and enter opening that step in the node detail screen.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ...state import NodeView, RunModel
from ...terminal_text import terminal_safe
from ..widgets.node_tree import STATUS_GLYPH, Palette, format_metric, node_label
from .node_detail import NodeDetailScreen, code_diff, diff_text, unified_diff

COLUMNS = {"node": 5, "step": 9, "status": 11, "metric": 10, "Δ parent": 9}  # fixed widths
PLAN_MIN = 20  # narrowest plan column; the rest of the width goes to it


def lineage(model: RunModel, node_id: int) -> list[NodeView]:
    """The node's ancestors and itself, draft first (a cycle or a missing parent ends it)."""
    chain: list[NodeView] = []
    seen: set[int] = set()
    view = model.nodes.get(node_id)
    while view is not None and view.id not in seen:
        chain.append(view)
        seen.add(view.id)
        view = model.nodes.get(view.parent_id) if view.parent_id is not None else None
    return chain[::-1]


def metric_change(old: float | None, new: float | None, direction: str | None, palette: Palette) -> Text:
    """`+0.0123` coloured by whether it is better under `direction` (plain when unknown)."""
    if old is None or new is None:
        return Text("")
    delta = new - old
    if delta == 0:
        return Text("±0", style=palette.muted)
    sign = "+" if delta > 0 else "−"
    better = delta > 0 if direction == "maximize" else delta < 0 if direction == "minimize" else None
    style = "" if better is None else palette.success if better else palette.error
    return Text(f"{sign}{format_metric(abs(delta))}", style=style)


def first_line(text: str, width: int) -> str:
    line = next((part.strip() for part in terminal_safe(text).splitlines() if part.strip()), "")
    return line if len(line) <= width else line[: width - 1].rstrip() + "…"


def step_diff(view: NodeView, model: RunModel, palette: Palette) -> tuple[str, Text]:
    """Title and body of what this step changed: the diff against its parent, or a draft's
    whole code as added lines (a draft's change is everything it wrote)."""
    parent = model.nodes.get(view.parent_id) if view.parent_id is not None else None
    if parent is not None:
        return f"#{view.id} {view.operation} against its parent #{parent.id}", code_diff(
            parent, view, palette, "Same code as the parent."
        )
    if not view.code:
        return f"#{view.id} {view.operation}", Text("The code is not written yet.")
    return f"#{view.id} {view.operation}: a new solution", diff_text(
        unified_diff("", view.code, "/dev/null", f"#{view.id}/solution.py"), palette
    )


class LineageScreen(Screen[None]):
    """Opened with `l` on a node; escape returns to the run."""

    DEFAULT_CSS = """
    LineageScreen #lineage-header {
        height: 1;
        background: $panel;
        padding: 0 1;
    }
    LineageScreen #lineage-table {
        height: auto;
        max-height: 45%;
        border: round $border;
        border-title-color: $text;
        background: $surface;
    }
    LineageScreen #lineage-diff-scroll {
        height: 1fr;
        border: round $border-blurred;
        border-title-color: $text-muted;
        background: $surface;
        padding: 0 1;
    }
    """

    BINDINGS = [
        Binding("escape", "close", "Back", tooltip="Back to the run", id="lineage.close"),
        Binding(
            "enter",
            "open_step",
            "Open step",
            tooltip="Open the highlighted step's diff in node details",
            id="lineage.open",
        ),
    ]

    def __init__(self, node_id: int) -> None:
        super().__init__()
        self.node_id = node_id
        self.steps: list[NodeView] = []

    @property
    def model(self) -> RunModel:
        return self.app.model  # type: ignore[attr-defined]

    @property
    def palette(self) -> Palette:
        return getattr(self.app, "palette", Palette())

    def compose(self) -> ComposeResult:
        yield Static(id="lineage-header")
        yield DataTable(id="lineage-table", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="lineage-diff-scroll"):
            yield Static(id="lineage-diff", classes="code")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_view()
        table = self.query_one(DataTable)
        table.move_cursor(row=len(self.steps) - 1)
        table.focus()

    def on_resize(self) -> None:
        self.refresh_view()

    def refresh_view(self) -> None:
        model, palette = self.model, self.palette
        self.steps = lineage(model, self.node_id)
        if not self.steps:
            return
        node = self.steps[-1]
        header = Text(" Lineage of ")
        header.append_text(node_label(node, model.best_id, palette, pick_id=model.pick_id))
        first_metric = next((v.metric for v in self.steps if v.metric is not None), None)
        count = len(self.steps) - 1
        if count:
            header.append(
                f"   {count} step{'s' if count != 1 else ''} from draft #{self.steps[0].id}", style=palette.muted
            )
        else:
            header.append("   a draft: the first step of its line", style=palette.muted)
        if first_metric is not None and node.metric is not None and len(self.steps) > 1:
            header.append(
                f" · metric {format_metric(first_metric)} → {format_metric(node.metric)} (", style=palette.muted
            )
            header.append_text(metric_change(first_metric, node.metric, model.direction, palette))
            header.append(")", style=palette.muted)
        self.query_one("#lineage-header", Static).update(header)

        table = self.query_one(DataTable)
        table.border_title = "Steps (enter opens one)"
        row = table.cursor_row
        table.clear(columns=True)
        plan_width = max(PLAN_MIN, self.size.width - sum(COLUMNS.values()) - 2 * (len(COLUMNS) + 1) - 4)
        for label, width in COLUMNS.items():
            table.add_column(label, width=width, key=label)
        table.add_column("plan", width=plan_width, key="plan")
        for view in self.steps:
            parent = model.nodes.get(view.parent_id) if view.parent_id is not None else None
            glyph, word = STATUS_GLYPH.get(view.status, ("?", view.status))
            colour = (
                palette.success
                if view.status == "ok"
                else palette.warning
                if view.status == "running"
                else palette.error
            )
            metric = Text(format_metric(view.metric), style="bold" if view.id == model.best_id else "")
            if view.id == model.best_id:
                metric.append(" ★", style=f"bold {palette.warning}")
            table.add_row(
                Text(f"#{view.id}", style="bold"),
                Text(view.operation + (" ✎" if view.hint else ""), style="italic"),
                Text(f"{glyph} {word or 'ok'}", style=colour),
                metric,
                metric_change(parent.metric if parent else None, view.metric, model.direction, palette),
                first_line(view.plan, plan_width) or Text("(no plan)", style=palette.muted),
                key=str(view.id),
            )
        table.move_cursor(row=min(row, len(self.steps) - 1))
        self.show_step(self.highlighted)

    @property
    def highlighted(self) -> NodeView:
        table = self.query_one(DataTable)
        return self.steps[max(0, min(table.cursor_row, len(self.steps) - 1))]

    def show_step(self, view: NodeView) -> None:
        title, body = step_diff(view, self.model, self.palette)
        self.query_one("#lineage-diff-scroll").border_title = title
        self.query_one("#lineage-diff", Static).update(body)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.steps:
            self.show_step(self.highlighted)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_step()

    def action_open_step(self) -> None:
        view = self.highlighted
        self.app.push_screen(NodeDetailScreen(view.id, tab="diff" if view.parent_id is not None else "code"))

    def action_close(self) -> None:
        self.dismiss(None)
