"""The solution tree: one line per node, nested under its parent."""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from ...state import RUNNING, NodeView, RunModel

STATUS_GLYPH = {
    RUNNING: ("●", "running"),
    "ok": ("✓", ""),
    "buggy": ("✗", "buggy"),
    "timeout": ("✗", "timed out"),
    "memory": ("✗", "out of memory"),
    "cancelled": ("–", "cancelled"),
}


# What the tree's marks mean: its tooltip, and the README's caption of the screen.
LEGEND = (
    "● running · ✓ works · ✗ buggy, timed out or out of memory · – cancelled · ★ best by validation · "
    "⚑ pick: the run's answer when the holdout ranks it above ★ · ✎ your hint steered it · "
    "◆ marked for c (compare) · holdout N: its score on the hidden rows"
)


def format_metric(value: float | None) -> str:
    if value is None:
        return ""
    size = abs(value)
    if size == 0 or 1e-3 <= size < 1e4:
        return f"{value:.4f}" if size < 10 else f"{value:.2f}"
    if 1e4 <= size < 1e9:  # e.g. an RMSE in dollars: 18,502 reads better than 1.850e+04
        return f"{value:,.0f}"
    return f"{value:.3e}"


class Palette:
    """Label colours taken from the current Textual theme (so labels follow theme changes)."""

    def __init__(
        self,
        success: str = "green",
        error: str = "red",
        warning: str = "yellow",
        accent: str = "cyan",
        muted: str = "grey50",
    ) -> None:
        self.success = success
        self.error = error
        self.warning = warning
        self.accent = accent
        self.muted = muted

    @classmethod
    def from_app(cls, app) -> Palette:
        try:
            theme = app.current_theme
            muted = "grey50" if theme.dark else "grey42"
            return cls(
                success=theme.success or "green",
                error=theme.error or "red",
                warning=theme.warning or "yellow",
                accent=theme.accent or theme.primary or "cyan",
                muted=muted,
            )
        except Exception:  # noqa: BLE001 - a palette problem must never break the tree
            return cls()


def node_label(
    view: NodeView, best_id: int | None, palette: Palette, marked: bool = False, pick_id: int | None = None
) -> Text:
    """`#7 improve ✓ 0.8112 ★` as a Text (never markup: nothing here is parsed);
    `⚑ pick` on the node the run answers with when the holdout ranks it above the ★;
    `⚠ disagrees` on a node whose validation metric the holdout contradicts (never the answer);
    `◆ marked` on the node that `c` compares the selection with."""
    glyph, word = STATUS_GLYPH.get(view.status, ("?", view.status))
    if view.node is not None and view.node.coder_outcome:  # no code came: 'refused (cyber)', 'cut off (thinking)'
        word = view.node.coder_outcome
    colour = {
        RUNNING: palette.warning,
        "ok": palette.success,
        "cancelled": palette.muted,
    }.get(view.status, palette.error)
    text = Text()
    text.append(f"#{view.id}", style="bold")
    text.append(" ")
    text.append(view.operation, style="italic")
    text.append(" ")
    text.append(glyph, style=f"bold {colour}")
    if word:
        text.append(f" {word}", style=colour)
    if view.metric is not None:
        text.append(f" {format_metric(view.metric)}", style="bold" if view.id == best_id else "")
    if view.holdout is not None:  # the hidden holdout's score, next to the script's own validation number
        text.append(f" · holdout {format_metric(view.holdout)}", style=palette.accent)
    if view.holdout_flag or (view.node is not None and view.node.holdout_flag):
        text.append(" ⚠ disagrees", style=f"bold {palette.error}")  # validation vs holdout, beyond chance
    if view.id == best_id:
        text.append(" ★", style=f"bold {palette.warning}")
    elif view.id == pick_id:
        text.append(" ⚑ pick", style=f"bold {palette.warning}")
    if view.hint:
        text.append(" ✎", style=palette.accent)
    if marked:
        text.append(" ◆ marked", style=f"bold {palette.accent}")
    return text


class NodeTree(Tree[int]):
    """Tree of nodes; `data` of each tree node is the AIDE node id."""

    BINDINGS = [
        # Tree binds space to toggle_node; in this app space pauses the run.
        Binding(
            "space", "app.toggle_pause", "Pause/resume", show=False, tooltip="Pause or resume the run", id="tree.pause"
        ),
        Binding("x", "toggle_node", "Fold", show=False, tooltip="Fold or unfold the selected subtree", id="tree.fold"),
    ]

    class UserMoved(Message):
        """The user moved the cursor (keys or mouse): stop following new nodes."""

    def __init__(self, **kwargs) -> None:
        super().__init__("run", **kwargs)
        self.show_root = False
        self.auto_expand = False
        self.guide_depth = 2
        self._by_id: dict[int, TreeNode[int]] = {}
        self.palette = Palette()
        self.marked_id: int | None = None
        self.tooltip = LEGEND  # hovering the tree explains its marks

    # ----------------------------------------------------------- queries
    def tree_node(self, node_id: int) -> TreeNode[int] | None:
        return self._by_id.get(node_id)

    @property
    def selected_id(self) -> int | None:
        node = self.cursor_node
        return node.data if node is not None and node.data is not None else None

    def node_count(self) -> int:
        return len(self._by_id)

    # ----------------------------------------------------------- updates
    def rebuild(self, model: RunModel) -> None:
        """Replace everything (start of a run, resume, theme change)."""
        selected = self.selected_id
        self.clear()
        self._by_id.clear()
        self.root.set_label(Text(model.run_name or "run"))
        self.add_views([model.nodes[i] for i in sorted(model.nodes)], model)
        if selected is not None:
            self.select_id(selected)

    def add_views(self, views: list[NodeView], model: RunModel) -> None:
        """Add several nodes in one go (one invalidation, one re-render)."""
        for view in views:
            if view.id in self._by_id:
                self._by_id[view.id].set_label(self._label(view, model))
                continue
            parent = self._by_id.get(view.parent_id) if view.parent_id is not None else None
            if parent is None:
                parent = self.root
            tnode = parent.add(self._label(view, model), data=view.id, expand=True)
            tnode.allow_expand = False
            if not parent.is_root:
                parent.allow_expand = True
            self._by_id[view.id] = tnode

    def update_views(self, ids: list[int], model: RunModel) -> None:
        for node_id in ids:
            view = model.nodes.get(node_id)
            tnode = self._by_id.get(node_id)
            if view is not None and tnode is not None:
                tnode.set_label(self._label(view, model))

    def set_marked(self, node_id: int | None, model: RunModel) -> None:
        """Move the `◆ marked` label to `node_id` (None clears it)."""
        before, self.marked_id = self.marked_id, node_id
        self.update_views([i for i in (before, node_id) if i is not None], model)

    def _label(self, view: NodeView, model: RunModel) -> Text:
        return node_label(view, model.best_id, self.palette, marked=view.id == self.marked_id, pick_id=model.pick_id)

    def select_id(self, node_id: int) -> bool:
        tnode = self._by_id.get(node_id)
        if tnode is None:
            return False
        parent = tnode.parent
        while parent is not None and not parent.is_root:
            parent.expand()
            parent = parent.parent
        # Lay the lines out now: a node added (or a parent expanded) since the last render has no
        # line yet, or a stale one, and the cursor would land on another node or none at all,
        # so `enter` opened the wrong node or did nothing.
        self.get_node_at_line(0)
        self.move_cursor(tnode)
        self.scroll_to_node(tnode, animate=False)
        return True

    # --- cursor moves made by the user (as opposed to the app following new nodes)
    def _user_moved(self) -> None:
        self.post_message(self.UserMoved())

    def action_cursor_up(self) -> None:
        self._user_moved()
        super().action_cursor_up()

    def action_cursor_down(self) -> None:
        self._user_moved()
        super().action_cursor_down()

    def action_page_up(self) -> None:
        self._user_moved()
        super().action_page_up()

    def action_page_down(self) -> None:
        self._user_moved()
        super().action_page_down()

    def action_scroll_home(self) -> None:
        self._user_moved()
        super().action_scroll_home()

    def action_scroll_end(self) -> None:
        self._user_moved()
        super().action_scroll_end()

    def action_cursor_parent(self) -> None:
        self._user_moved()
        super().action_cursor_parent()

    async def _on_click(self, event: events.Click) -> None:
        self._user_moved()
        await super()._on_click(event)
