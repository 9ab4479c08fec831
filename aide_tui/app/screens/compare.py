"""Two nodes side by side in one diff: the marked node (`m`) against the selected one (`c`).

Any two nodes, not only parent and child: how a later improvement differs from an earlier
draft, or how two lines of the search ended up.  The header says how the two are related.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from ...state import RunModel
from ..widgets.node_tree import Palette, node_label
from .lineage import lineage, metric_change
from .node_detail import code_diff


def relation(model: RunModel, old_id: int, new_id: int) -> str:
    """How two nodes relate in the tree, in words."""
    old_line = [v.id for v in lineage(model, old_id)]
    new_line = [v.id for v in lineage(model, new_id)]
    if old_id in new_line:
        steps = len(new_line) - 1 - new_line.index(old_id)
        return f"#{new_id} descends from #{old_id} ({steps} step{'s' if steps != 1 else ''})"
    if new_id in old_line:
        steps = len(old_line) - 1 - old_line.index(new_id)
        return f"#{old_id} descends from #{new_id} ({steps} step{'s' if steps != 1 else ''})"
    common = [a for a, b in zip(old_line, new_line) if a == b]
    if common:
        return f"different lines from common ancestor #{common[-1]}"
    return "from different drafts"


def diff_stat(diff: Text) -> tuple[int, int]:
    """Lines added and removed in a coloured unified diff (file headers excluded)."""
    lines = diff.plain.splitlines()
    added = sum(1 for line in lines if line.startswith("+") and not line.startswith("+++"))
    removed = sum(1 for line in lines if line.startswith("-") and not line.startswith("---"))
    return added, removed


class CompareScreen(Screen[None]):
    """The diff from node `old_id` (the marked one) to `new_id`; `x` swaps the sides."""

    DEFAULT_CSS = """
    CompareScreen #compare-header {
        height: 2;
        background: $panel;
        padding: 0 1;
    }
    CompareScreen #compare-scroll {
        height: 1fr;
        border: round $border;
        border-title-color: $text;
        background: $surface;
        padding: 0 1;
    }
    """

    BINDINGS = [
        Binding("escape", "close", "Back", tooltip="Back to the run", id="compare.close"),
        Binding("x", "swap", "Swap sides", tooltip="Diff the other way round", id="compare.swap"),
    ]

    def __init__(self, old_id: int, new_id: int) -> None:
        super().__init__()
        self.old_id = old_id
        self.new_id = new_id

    @property
    def model(self) -> RunModel:
        return self.app.model  # type: ignore[attr-defined]

    def compose(self) -> ComposeResult:
        yield Static(id="compare-header")
        with VerticalScroll(id="compare-scroll"):
            yield Static(id="compare-diff", classes="code")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_view()
        self.query_one("#compare-scroll").focus()

    def refresh_view(self) -> None:
        model = self.model
        palette = getattr(self.app, "palette", Palette())
        old, new = model.nodes.get(self.old_id), model.nodes.get(self.new_id)
        if old is None or new is None:
            return
        marked = getattr(self.app, "marked_id", None)
        header = Text(" ")
        header.append_text(node_label(old, model.best_id, palette, marked=old.id == marked, pick_id=model.pick_id))
        header.append("  →  ", style="bold")
        header.append_text(node_label(new, model.best_id, palette, marked=new.id == marked, pick_id=model.pick_id))
        change = metric_change(old.metric, new.metric, model.direction, palette)
        if change.plain:
            header.append("   metric ", style=palette.muted)
            header.append_text(change)
        diff = code_diff(old, new, palette, same="The two nodes have the same code.")
        added, removed = diff_stat(diff)
        header.append(f"\n {relation(model, old.id, new.id)} · ", style=palette.muted)
        header.append(f"+{added}", style=palette.success)
        header.append(" ")
        header.append(f"−{removed}", style=palette.error)
        header.append(" lines of solution.py", style=palette.muted)
        self.query_one("#compare-header", Static).update(header)
        self.query_one("#compare-scroll").border_title = f"#{old.id} → #{new.id}"
        self.query_one("#compare-diff", Static).update(diff)

    def action_swap(self) -> None:
        self.old_id, self.new_id = self.new_id, self.old_id
        self.refresh_view()

    def action_close(self) -> None:
        self.dismiss(None)
