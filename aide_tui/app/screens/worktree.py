"""`w`: ask for a branch name and a directory, then check the node out there as a git worktree.

The git work is the caller's `create(branch, path)` (store/ is the only git writer); a
refused request (name taken, directory not empty) is shown in the dialog so the user can
change the name and press enter again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from ...errors import UserError

CreateWorktree = Callable[[str, Path], Path]


class WorktreeModal(ModalScreen[tuple[str, Path] | None]):
    """Dismissed with (branch, path) once the worktree exists, or None when cancelled."""

    DEFAULT_CSS = """
    WorktreeModal .worktree-field {
        margin-top: 1;
    }
    WorktreeModal #worktree-error {
        color: $error;
        text-style: bold;
    }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", tooltip="Close without creating anything", id="worktree.cancel")]

    def __init__(self, node_id: int, branch: str, path: Path, create: CreateWorktree) -> None:
        super().__init__(classes="dialog-screen")
        self.node_id = node_id
        self.branch = branch
        self.path = path
        self.create = create

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Git worktree of node #{self.node_id}", classes="dialog-title")
            yield Static(
                Text(
                    "A new branch at this node's commit, checked out in a new directory beside "
                    "your project, to carry the solution into your own code. Your checkout is not touched."
                ),
                classes="dialog-text",
            )
            yield Label("New branch", classes="worktree-field")
            yield Input(self.branch, id="worktree-branch")
            yield Label("Directory", classes="worktree-field")
            yield Input(str(self.path), id="worktree-path")
            yield Static(id="worktree-error")
            yield Static("enter creates · tab moves · escape cancels", classes="dialog-help")

    def on_mount(self) -> None:
        self.query_one("#worktree-branch", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        branch = self.query_one("#worktree-branch", Input).value.strip()
        path_text = self.query_one("#worktree-path", Input).value.strip()
        error = self.query_one("#worktree-error", Static)
        if not branch or not path_text:
            error.update(Text("Give both a branch name and a directory."))
            return
        try:
            path = self.create(branch, Path(path_text).expanduser())
        except UserError as exc:
            error.update(Text(str(exc)))
            return
        self.dismiss((branch, path))

    def action_cancel(self) -> None:
        self.dismiss(None)
