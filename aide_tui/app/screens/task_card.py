"""The task card as a form: checked, maybe corrected, and confirmed before a new run's first node.

The engine waits (TaskCardReady with `confirm`) until the app sends ConfirmTaskCard;
escape quits without running a node.  Files and columns are offered as choices
(the project's CSV files, the chosen files' headers), so most mistakes cannot be
typed; what is left (an id that is not unique per test row, a target that is
also an id) is checked against the data and shown in the form.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Select, SelectionList, Static
from textual.widgets.selection_list import Selection

from ...control import COMMAND_INFO
from ...events import ConfirmTaskCard
from ...run.workspace import list_data_files
from ...search.offline.task_reader import card_problem, csv_headers
from ...search.task_card import METRIC_KINDS, METRIC_NAMES, TaskCard

SOURCES = {
    "derived": "derived from task.md and the data by the offline reader",
    "llm": "read from task.md and the data by the LLM",
    "aide.toml": "derived, then corrected by aide.toml [task]",
}
DIRECTIONS = [("higher is better (maximize)", "maximize"), ("lower is better (minimize)", "minimize")]


def _pick(options: list[tuple[str, str]], value: str | None) -> str:
    """`value` when it is among the options; else blank (aide.toml may name what the data lacks)."""
    return value if value is not None and value in {v for _, v in options} else Select.NULL  # type: ignore[return-value]


class TaskCardScreen(ModalScreen[TaskCard | None]):
    """Train/test file, target, id columns, metric and direction; ctrl+s starts the run."""

    FITS = 38  # rows the whole form needs (title, text, eight fields, buttons, help)

    BINDINGS = [
        Binding("ctrl+s", "confirm", "Start run", tooltip=COMMAND_INFO[ConfirmTaskCard].does, id="card.confirm"),
        Binding("escape", "quit", "Quit", tooltip="Quit without running a node", id="card.quit"),
    ]

    def __init__(
        self, card: TaskCard, source: str, headers: dict[str, list[str]], check: Callable[[TaskCard], str | None]
    ) -> None:
        super().__init__(classes="dialog-screen")
        self.card = card
        self.source = source
        self.headers = headers  # {CSV data file: its header}
        self.check = check  # why a card does not fit the data, or None
        self._metric = card.metric

    @classmethod
    def for_project(cls, card: TaskCard, source: str, project_dir: Path) -> TaskCardScreen:
        """The form with the project's CSV files as choices, checked against them."""
        files = list_data_files(project_dir)
        return cls(card, source, csv_headers(project_dir, files), partial(card_problem, project_dir, files))

    def compose(self) -> ComposeResult:
        card, files = self.card, [(name, name) for name in self.headers]
        with Vertical(classes="dialog dialog-card"):
            yield Label("Task card — check it before the first node", classes="dialog-title")
            # The fields scroll between the title and the buttons: at 80x24 tab brings each into view.
            body = VerticalScroll(id="card-body")
            body.can_focus = False
            with body:
                yield from self._fields(card, files)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Start run (ctrl+s)", id="confirm", variant="primary")
                yield Button("Quit (escape)", id="quit", variant="error")
            yield Static("id columns: space toggles · tab moves between fields", classes="dialog-help")

    def _fields(self, card: TaskCard, files: list[tuple[str, str]]) -> ComposeResult:
        yield Static(
            Text(
                f"Proposed: {SOURCES.get(self.source, self.source)}. Correct what is wrong, "
                "then start the run; the card is saved with it."
            ),
            classes="dialog-text",
        )
        yield Static("", id="card-error")  # up here, so a short terminal shows it without scrolling
        with Grid(id="card-grid"):
            yield Label("Train file")
            yield Select(files, value=_pick(files, card.train_file), prompt="(choose)", id="card-train", compact=True)
            yield Label("Test file")
            yield Select(files, value=_pick(files, card.test_file), prompt="(none)", id="card-test", compact=True)
            yield Label("Target")
            columns = self._columns(card.train_file)
            yield Select(columns, value=_pick(columns, card.target), prompt="(choose)", id="card-target", compact=True)
            yield Label("Id columns")
            yield SelectionList[str](
                *self._id_choices(card.test_file, card.train_file, card.target, card.id_columns),
                id="card-ids",
                compact=True,
            )
            yield Label("Group column")
            yield Select(
                columns, value=_pick(columns, card.group_column), prompt="(none)", id="card-group", compact=True
            )
            yield Label("Time column")
            yield Select(columns, value=_pick(columns, card.time_column), prompt="(none)", id="card-time", compact=True)
            yield Label("Metric")
            yield Select(
                [(f"{METRIC_NAMES.get(k, k)} ({k})", k) for k in METRIC_KINDS],
                value=card.metric,
                allow_blank=False,
                id="card-metric",
                compact=True,
            )
            yield Label("Direction")
            yield Select(DIRECTIONS, value=card.direction, allow_blank=False, id="card-direction", compact=True)

    def on_mount(self) -> None:
        self._fit(self.app.size.height)
        self.query_one("#confirm", Button).focus()

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size.height)

    def _fit(self, height: int) -> None:
        """Below FITS rows the whole form does not fit: its fields scroll, the buttons stay."""
        self.query_one(".dialog-card").set_class(height < self.FITS, "-short")

    # -- choices that follow the files
    def _columns(self, file: str | None) -> list[tuple[str, str]]:
        return [(c, c) for c in self.headers.get(file or "", [])]

    def _id_choices(self, test: str | None, train: str, target: str, chosen: list[str]) -> list[Selection[str]]:
        """The test file's columns (the train file's without one) but the target."""
        columns = self.headers.get(test or train, [])
        return [Selection(c, c, c in chosen) for c in columns if c != target]

    def _value(self, selector: str) -> str | None:
        value = self.query_one(selector, Select).value
        return None if value is Select.NULL else str(value)

    def _refresh_ids(self) -> None:
        ids = self.query_one("#card-ids", SelectionList)
        chosen = list(ids.selected)
        ids.clear_options()
        ids.add_options(
            self._id_choices(
                self._value("#card-test"), self._value("#card-train") or "", self._value("#card-target") or "", chosen
            )
        )

    @on(Select.Changed, "#card-train")
    def _train_changed(self) -> None:
        target = self.query_one("#card-target", Select)
        keep = self._value("#card-target")
        columns = self._columns(self._value("#card-train"))
        target.set_options(columns)
        if keep in dict(columns):
            target.value = keep
        for selector in ("#card-group", "#card-time"):  # groups and time are columns of the train file too
            select = self.query_one(selector, Select)
            kept = self._value(selector)
            select.set_options(columns)
            if kept in dict(columns):
                select.value = kept
        self._refresh_ids()

    @on(Select.Changed, "#card-test")
    @on(Select.Changed, "#card-target")
    def _ids_follow(self) -> None:
        self._refresh_ids()

    @on(Select.Changed, "#card-metric")
    def _metric_changed(self) -> None:
        """A new metric brings its usual direction; the user may still flip it."""
        metric = self._value("#card-metric")
        if metric and metric != self._metric:
            self._metric = metric
            self.query_one("#card-direction", Select).value = METRIC_KINDS[metric][0]

    # -- confirm / quit
    def edited(self) -> TaskCard | None:
        """The card as the form shows it; None when a required field is empty."""
        train, target, metric = self._value("#card-train"), self._value("#card-target"), self._value("#card-metric")
        direction = self._value("#card-direction")
        if not (train and target and metric and direction):
            return None
        ids = list(self.query_one("#card-ids", SelectionList).selected)
        return TaskCard(
            train,
            self._value("#card-test"),
            target,
            ids,
            metric,
            direction,  # type: ignore[arg-type]
            group_column=self._value("#card-group"),
            time_column=self._value("#card-time"),
            extra_tables=[dict(t) for t in self.card.extra_tables],  # not edited here: aide.toml [task]
        )

    def action_confirm(self) -> None:
        card = self.edited()
        problem = "choose a train file, a target, a metric and a direction" if card is None else self.check(card)
        if problem:
            self.query_one("#card-error", Static).update(Text(problem))
            error = self.query_one("#card-error")
            error.add_class("-shown")
            error.scroll_visible()
            return
        self.dismiss(card)

    def action_quit(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "confirm":
            self.action_confirm()
        else:
            self.action_quit()
