"""Small modal dialogs: confirm, hint, edit code, resume choice, run error."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, TextArea


class ConfirmModal(ModalScreen[bool]):
    """Yes/no question; `y`/`n`/escape."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", tooltip="Confirm", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", tooltip="Cancel", id="confirm.no"),
    ]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__(classes="dialog-screen")
        self.question = question
        self.yes, self.no = yes, no

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text(self.question), classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="error")
                yield Button(f"{self.no} (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class HintModal(ModalScreen[str | None]):
    """One line of advice for the next prompt."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", tooltip="Close without sending", id="hint.cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Hint for the next step (goes into the LLM's prompt):", classes="dialog-title")
            yield Input(placeholder="e.g. try target encoding for the high-cardinality columns", id="hint-input")
            yield Static("enter sends · escape cancels", classes="dialog-help")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        self.dismiss(text or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class EditCodeModal(ModalScreen[str | None]):
    """Edit a node's code; saving runs it as a new child of that node."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Run edited code", tooltip="Run this code as a new child node", id="edit.save"),
        # priority: the editor (tab indents) would otherwise take the first escape to release focus
        Binding("escape", "cancel", "Cancel", tooltip="Discard the edit", id="edit.cancel", priority=True),
    ]

    def __init__(self, node_id: int, code: str) -> None:
        super().__init__(classes="dialog-screen")
        self.node_id = node_id
        self.code = code

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog-wide"):
            yield Label(
                f"Edit the code of #{self.node_id} — ctrl+s runs it as a child of #{self.node_id}, escape cancels",
                classes="dialog-title",
            )
            # No language: syntax extras (tree-sitter) are not installed; plain editing is reliable.
            yield TextArea(self.code, id="code-editor", soft_wrap=False, show_line_numbers=True, tab_behavior="indent")

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def action_save(self) -> None:
        code = self.query_one(TextArea).text
        self.dismiss(code if code.strip() else None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ResumeModal(ModalScreen[str]):
    """An unfinished run exists: resume it, start a new one, or quit."""

    BINDINGS = [
        Binding("r", "choose('resume')", "Resume", tooltip="Continue the unfinished run", id="resume.resume"),
        Binding("n", "choose('new')", "New run", tooltip="Start a new run; the old one stays on disk", id="resume.new"),
        Binding("q,escape", "choose('quit')", "Quit", tooltip="Quit without running", id="resume.quit"),
    ]

    def __init__(self, run_name: str) -> None:
        super().__init__(classes="dialog-screen")
        self.run_name = run_name

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text(f"Run {self.run_name!r} did not finish. Resume it?"), classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Resume (r)", id="resume", variant="primary")
                yield Button("New run (n)", id="new")
                yield Button("Quit (q)", id="quit", variant="error")

    def on_mount(self) -> None:
        self.query_one("#resume", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "quit")

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)


class ErrorModal(ModalScreen[None]):
    """A run error the user must read (auth, budget, fatal)."""

    BINDINGS = [Binding("escape,enter", "close", "Close", tooltip="Close this message", id="error.close")]

    TITLES = {
        "auth": "Authentication failed",
        "budget": "Budget reached",
        "llm": "LLM request failed",
        "fatal": "The run stopped",
        "config": "Configuration problem",
    }

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(classes="dialog-screen")
        self.kind = kind
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog dialog-error"):
            yield Label(self.TITLES.get(self.kind, "Error"), classes="dialog-title")
            yield Static(Text(self.message), classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Close", id="close", variant="primary")

    def on_mount(self) -> None:
        self.query_one(Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_close(self) -> None:
        self.dismiss(None)


class NoKeyModal(ModalScreen[str]):
    """Claude was asked for but there is no key: say how to set one, offer the offline coder."""

    BINDINGS = [
        Binding(
            "o",
            "choose('offline')",
            "Offline coder",
            tooltip="Run now with the offline baseline coder",
            id="nokey.offline",
        ),
        Binding("q,escape", "choose('quit')", "Quit", tooltip="Quit and set the key first", id="nokey.quit"),
    ]

    TEXT = (
        "aide-tui was asked to use Claude (--coder llm), but ANTHROPIC_API_KEY is not set.\n\n"
        "To use Claude, quit and set your key, then start again:\n"
        "    export ANTHROPIC_API_KEY=sk-ant-...\n"
        "    (ANTHROPIC_BASE_URL points at a compatible endpoint)\n\n"
        "Or run now with the offline baseline coder: scikit-learn templates for tabular CSV tasks, not an LLM."
    )

    def __init__(self) -> None:
        super().__init__(classes="dialog-screen")

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("No Anthropic API key", classes="dialog-title")
            yield Static(Text(self.TEXT), classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Offline coder (o)", id="offline", variant="primary")
                yield Button("Quit (q)", id="quit", variant="error")

    def on_mount(self) -> None:
        self.query_one("#offline", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id or "quit")

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)
