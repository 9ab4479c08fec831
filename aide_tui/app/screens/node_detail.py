"""Everything about one node: plan, code, diff against the parent, output, review, cost, git."""

from __future__ import annotations

import difflib

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.highlight import highlight
from textual.screen import Screen
from textual.widgets import Footer, Static, TabbedContent, TabPane

from ...state import RUNNING, NodeView, RunModel
from ...terminal_text import terminal_safe
from ..widgets.node_tree import Palette, format_metric, node_label
from ..widgets.status_bar import format_duration, format_tokens


def unified_diff(parent_code: str, code: str, parent_name: str, name: str) -> str:
    lines = difflib.unified_diff(
        parent_code.splitlines(), code.splitlines(), fromfile=parent_name, tofile=name, lineterm=""
    )
    return "\n".join(lines)


def code_content(code: str, language: str = "python") -> Content:
    if not code.strip():
        return Content("(no code)")
    try:
        return highlight(code, language=language)
    except Exception:  # noqa: BLE001 - fall back to plain text rather than fail the screen
        return Content(code)


def diff_text(diff: str, palette: Palette) -> Text:
    """A unified diff coloured line by line with the theme's success/error colours."""
    out = Text(no_wrap=True)
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            style = "bold"
        elif line.startswith("@@"):
            style = palette.accent
        elif line.startswith("+"):
            style = palette.success
        elif line.startswith("-"):
            style = palette.error
        else:
            style = ""
        out.append(line + "\n", style=style)
    return out


def code_diff(old: NodeView, new: NodeView, palette: Palette, same: str = "Same code.") -> Text:
    """The coloured diff of two nodes' solution.py (`old` -> `new`)."""
    if not new.code:
        return Text("The code is not written yet.")
    diff = unified_diff(old.code, new.code, f"#{old.id}/solution.py", f"#{new.id}/solution.py")
    return diff_text(terminal_safe(diff), palette) if diff else Text(same)


def overview_text(view: NodeView, model: RunModel, palette: Palette) -> Text:
    t = Text()

    def row(key: str, value: str | Text, style: str = "") -> None:
        t.append(f"{key:<13}", style="bold")
        if isinstance(value, Text):
            t.append_text(value)
        else:
            t.append(terminal_safe(value), style=style)  # exception names and reasons come from the script
        t.append("\n")

    row("node", node_label(view, model.best_id, palette, pick_id=model.pick_id))
    parent = f"#{view.parent_id}" if view.parent_id is not None else "— (new draft)"
    row("parent", parent)
    if view.status == RUNNING:
        row("phase", view.phase or "starting")
    node = view.node
    if node is not None:
        row("metric", (format_metric(node.metric) or "—") + " (validation, as the script reported it)")
        if node.holdout_metric is not None:
            row("holdout", f"{format_metric(node.holdout_metric)} (re-run on the hidden holdout rows)")
            if node.holdout_flag:
                row("⚠ flagged", node.holdout_flag, palette.error)
        elif node.holdout_note:
            row("holdout", f"not scored: {node.holdout_note}", palette.muted)
        ex = node.exec
        row("exec time", f"{ex.wall_time:.1f} s")
        row("peak memory", f"{ex.peak_memory_mb:.0f} MiB")
        if ex.exit_code is not None:
            row("exit code", str(ex.exit_code))
        if ex.exc_type:
            row("exception", ex.exc_type, f"bold {palette.error}")
        if ex.killed_reason:
            row("killed", ex.killed_reason, f"bold {palette.error}")
        u = node.usage
        row(
            "tokens",
            f"{format_tokens(u.input_tokens)} in · {format_tokens(u.output_tokens)} out"
            + (f" · {format_tokens(u.cache_read_tokens)} cached" if u.cache_read_tokens else "")
            + f" · {u.calls} call{'s' if u.calls != 1 else ''}",
        )
        row("cost", f"${u.cost:.4f}")
        if node.finished_at and node.created_at:
            row("took", format_duration(node.finished_at - node.created_at))
    if view.hint:
        row("your hint", view.hint, palette.accent)
    branch = view.branch
    if branch:
        row("branch", branch, f"bold {palette.accent}")
        t.append("\n")
        t.append("  git log " + branch + "\n", style=palette.muted)
        parent_view = model.nodes.get(view.parent_id) if view.parent_id is not None else None
        if parent_view is not None and parent_view.branch:
            t.append(f"  git diff {parent_view.branch} {branch}\n", style=palette.muted)
        else:
            t.append(f"  git show {branch}\n", style=palette.muted)
    elif view.finished:
        row("branch", "(not committed)", palette.muted)
    t.append("\n")
    t.append("Plan\n", style="bold underline")
    t.append(terminal_safe(view.plan or "(not written yet)") + "\n")
    if node is not None:
        t.append("\nReview\n", style="bold underline")
        t.append(terminal_safe(node.review_summary or "(no review)") + "\n")
    return t


class NodeDetailScreen(Screen[None]):
    """Opened with enter on a node; escape returns to the run."""

    BINDINGS = [
        Binding("escape", "close", "Back", tooltip="Back to the run", id="detail.close"),
        Binding(
            "1", "tab('overview')", "Overview", show=False, tooltip="Plan, review, cost, git", id="detail.overview"
        ),
        Binding("2", "tab('code')", "Code", show=False, tooltip="The node's code", id="detail.code"),
        Binding("3", "tab('diff')", "Diff", show=False, tooltip="Diff against the parent node", id="detail.diff"),
        Binding("4", "tab('output')", "Output", show=False, tooltip="Captured output", id="detail.output"),
    ]

    def __init__(self, node_id: int, tab: str = "overview") -> None:
        super().__init__()
        self.node_id = node_id
        self.initial_tab = tab  # the lineage view opens a step straight on its diff

    @property
    def model(self) -> RunModel:
        return self.app.model  # type: ignore[attr-defined]

    def compose(self) -> ComposeResult:
        yield Static(id="detail-header")
        with TabbedContent(id="detail-tabs", initial=self.initial_tab):
            with TabPane("Overview", id="overview"):
                with VerticalScroll():
                    yield Static(id="detail-overview")
            with TabPane("Code", id="code"):
                with VerticalScroll():
                    yield Static(id="detail-code", classes="code")
            with TabPane("Diff", id="diff"):
                with VerticalScroll():
                    yield Static(id="detail-diff", classes="code")
            with TabPane("Output", id="output"):
                with VerticalScroll():
                    yield Static(id="detail-output", classes="code")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_view()

    def refresh_view(self) -> None:
        model = self.model
        view = model.nodes.get(self.node_id)
        if view is None:
            return
        palette = getattr(self.app, "palette", Palette())
        header = Text(" Node ")
        header.append_text(node_label(view, model.best_id, palette, pick_id=model.pick_id))
        if view.branch:
            header.append(f"   {view.branch}", style=palette.muted)
        self.query_one("#detail-header", Static).update(header)
        self.query_one("#detail-overview", Static).update(overview_text(view, model, palette))
        code = view.code or ("".join(view.llm_text) if not view.finished else "")
        self.query_one("#detail-code", Static).update(code_content(terminal_safe(code)))
        parent = model.nodes.get(view.parent_id) if view.parent_id is not None else None
        if parent is None:
            diff_body: Text = Text("A draft has no parent: nothing to diff against.")
        else:
            diff_body = code_diff(parent, view, palette, same="Same code as the parent.")
        self.query_one("#detail-diff", Static).update(diff_body)
        self.query_one("#detail-output", Static).update(Text(terminal_safe(view.printed_text or "(no output)")))

    def action_close(self) -> None:
        self.dismiss(None)

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
