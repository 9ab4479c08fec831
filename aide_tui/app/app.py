"""The Textual front end: `aide-tui PROJECT` without `--headless`.

Threading model (Harlequin-style): the engine runs in one thread worker and only talks to
the app through its listener.  Ordinary events are posted as `EngineEvent` messages
(`post_message` is thread-safe).  High-rate events (`LlmDelta`, `OutputLine`) go into a
lock-free deque instead and are drained every 50 ms into one `Log` write.  The engine's
order is kept: an event's stream items are drained before it is handled, and the timer drains
only up to the oldest event not handled yet (else a node's lines could be shown, and judged,
before the app has seen the node start).  With several nodes running, the log shows the
stream of one of them (log_follow.py).
Worker failures are handled centrally in `on_worker_state_changed`.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from textual import events, on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Footer, Tree
from textual.worker import Worker, WorkerState

from ..control import COMMAND_INFO, target_problem
from ..errors import UserError
from ..events import (
    AddHint,
    CodeReady,
    Command,
    CommandAccepted,
    CommandRejected,
    ConfirmTaskCard,
    DebugNode,
    DirectionFixed,
    DraftNext,
    Event,
    ImproveNode,
    LlmDelta,
    MergeNodes,
    NodeFinished,
    NodeStarted,
    Notice,
    OutputLine,
    Pause,
    PhaseChanged,
    Resume,
    RunCode,
    RunError,
    RunFinished,
    RunStarted,
    RunStateChanged,
    StopAfterStep,
    TaskCardReady,
)
from ..search.operations import BY_ACTION
from ..settings import Settings
from ..state import Change, RunModel
from .commands import AideCommands
from .log_follow import catch_up, followed_node, output_text
from .screens.compare import CompareScreen
from .screens.lineage import LineageScreen
from .screens.modals import ConfirmModal, EditCodeModal, ErrorModal, HintModal, NoKeyModal, ResumeModal
from .screens.node_detail import NodeDetailScreen
from .screens.task_card import TaskCardScreen
from .screens.worktree import WorktreeModal
from .widgets.live_log import LiveLog
from .widgets.metric_pane import BestSparkline, MetricPane
from .widgets.node_tree import NodeTree, Palette, format_metric
from .widgets.status_bar import StatusBar

STREAM_EVENTS = (LlmDelta, OutputLine)
FLUSH_INTERVAL = 0.05
FLUSH_LINES = 1000  # most output lines shown per flush; older ones in a burst are summarised
COMPACT_WIDTH = 100
COMPACT_HEIGHT = 28
QUIT_WAIT = 15.0  # seconds to wait for the engine thread after shutdown()


class EngineLike(Protocol):
    def run(self) -> object: ...
    def submit(self, command: Command) -> None: ...
    def shutdown(self) -> None: ...


EngineFactory = Callable[[Callable[[Event], None], bool], EngineLike]
"""`factory(listener, resume) -> engine`; may raise UserError."""


class EngineEvent(Message):
    """One engine event, posted from the engine thread."""

    def __init__(self, event: Event, seq: int = 0) -> None:
        super().__init__()
        self.event = event
        self.seq = seq  # position in the engine's order; stream items before it are shown first


class AideApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "aide-tui"
    COMMANDS = App.COMMANDS | {AideCommands}
    ENABLE_COMMAND_PALETTE = True

    AIDE_BINDINGS = [
        Binding("d", "draft", "Draft", tooltip=COMMAND_INFO[DraftNext].does, id="aide.draft"),
        Binding("i", "improve", "Improve", tooltip=COMMAND_INFO[ImproveNode].does, id="aide.improve"),
        Binding("b", "debug", "Debug", tooltip=COMMAND_INFO[DebugNode].does, id="aide.debug"),
        Binding("h", "hint", "Hint", tooltip=COMMAND_INFO[AddHint].does, id="aide.hint"),
        Binding("e", "edit", "Edit", tooltip=COMMAND_INFO[RunCode].does, id="aide.edit"),
        Binding(
            "space", "toggle_pause", "Pause", key_display="space", tooltip=COMMAND_INFO[Pause].does, id="aide.pause"
        ),
        Binding("s", "stop", "Stop", tooltip=COMMAND_INFO[StopAfterStep].does, id="aide.stop"),
        Binding(
            "enter",
            "details",
            "Details",
            tooltip="Plan, code, diff, output and git branch of the selected node",
            id="aide.details",
        ),
        Binding("g", "copy_branch", "Branch", tooltip="Copy the selected node's git branch name", id="aide.branch"),
        Binding("B", "goto_best", "Best", key_display="B", tooltip="Select the best node (★)", id="aide.best"),
        Binding(
            "r",
            "goto_running",
            "Running",
            tooltip="Select the running node and follow new nodes; again, with several running, the next one",
            id="aide.running",
        ),
        Binding(
            "l",
            "lineage",
            "Lineage",
            tooltip="Steps from the draft to the selected node, each with its metric change and diff",
            id="aide.lineage",
        ),
        Binding(
            "m",
            "mark",
            "Mark",
            tooltip="Mark the selected node (◆) to compare others with it; again to unmark",
            id="aide.mark",
        ),
        Binding(
            "c", "compare", "Compare", tooltip="Diff the selected node against the marked node (◆)", id="aide.compare"
        ),
        Binding(
            "M",
            "merge",
            "Merge",
            key_display="M",
            show=False,
            tooltip=COMMAND_INFO[MergeNodes].does + " (◆): one script with the best of both",
            id="aide.merge",
        ),
        Binding(
            "w",
            "worktree",
            "Worktree",
            tooltip="Check the selected node out on a new git branch beside the project",
            id="aide.worktree",
        ),
        Binding(
            "tab", "app.focus_next", "Next pane", show=False, tooltip="Cycle focus: tree, log", id="aide.next-pane"
        ),
        Binding("ctrl+q", "quit", "Quit", priority=True, tooltip="Quit; the run stays resumable", id="aide.quit"),
    ]
    BINDINGS = [*AIDE_BINDINGS]  # App.BINDINGS is a list of a wider type (lists are invariant)

    def __init__(
        self,
        engine_factory: EngineFactory,
        *,
        resume: bool = False,
        ask_resume: str | None = None,
        offline_factory: EngineFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
        flush_interval: float = FLUSH_INTERVAL,
        tick_interval: float = 0.5,
    ) -> None:
        super().__init__()
        self.engine_factory = engine_factory
        self.resume = resume
        self.ask_resume = ask_resume
        self.offline_factory = offline_factory  # set when Claude was asked for but there is no key
        self.clock = clock
        self.flush_interval = flush_interval
        self.tick_interval = tick_interval
        self.model = RunModel(clock)
        self.engine: EngineLike | None = None
        self.engine_worker: Worker | None = None
        self.palette = Palette()
        self.selected_id: int | None = None
        self.follow = True  # cursor follows new nodes until the user moves it
        self._stream: deque[tuple[int, LlmDelta | OutputLine]] = deque()
        self._unhandled: deque[int] = deque()  # numbers of the events posted and not handled yet, oldest first
        self._seq = itertools.count()
        self._log_node: int | None = None  # the running node whose stream the log shows
        self._quitting = False
        self._engine_stopped = threading.Event()  # set when the engine thread has ended, however
        self._closed_ui = False
        self._engine_done = False
        self._exit_code = 0
        self.received: list[Event] = []  # every non-stream event, for tests and debugging

    # ------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            yield NodeTree(id="tree")
            with Vertical(id="right"):
                yield LiveLog(id="log")
                yield MetricPane(id="metrics")
        with Horizontal(id="bottom"):
            yield StatusBar(id="status")
            yield BestSparkline([], id="spark")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.tree_pane = self.query_one("#tree", NodeTree)
        self.log_pane = self.query_one("#log", LiveLog)
        self.metrics = self.query_one("#metrics", MetricPane)
        self.spark = self.query_one("#spark", BestSparkline)
        self.status_bar = self.query_one("#status", StatusBar)
        self.theme_changed_signal.subscribe(self, self._on_theme_changed)
        self._apply_palette()
        self.tree_pane.border_title = "Tree"
        self.log_pane.border_title = "Live"
        self.metrics.border_title = "Metric"
        self.query_one("#tree").focus()
        self._apply_size(self.size.width, self.size.height)
        self.set_interval(self.flush_interval, self._flush_stream)
        self.set_interval(self.tick_interval, self._tick)
        self._refresh_status()
        if self.offline_factory is not None:
            self.push_screen(NoKeyModal(), self._on_no_key_choice)
        else:
            self._begin()

    def _begin(self) -> None:
        if self.ask_resume:
            self.push_screen(ResumeModal(self.ask_resume), self._on_resume_choice)
        else:
            self.start_engine(self.resume)

    def _on_no_key_choice(self, choice: str | None) -> None:
        if choice == "offline" and self.offline_factory is not None:
            self.engine_factory = self.offline_factory
            self._begin()
        else:
            self.exit(0)

    def _on_resume_choice(self, choice: str | None) -> None:
        if choice == "resume":
            self.start_engine(True)
        elif choice == "new":
            self.start_engine(False)
        else:
            self.exit(0)

    def on_resize(self, event: events.Resize) -> None:
        self._apply_size(event.size.width, event.size.height)

    def _apply_size(self, width: int, height: int) -> None:
        body = self.query_one("#body")
        body.set_class(width < COMPACT_WIDTH or height < COMPACT_HEIGHT, "-compact")

    # ------------------------------------------------------------ engine
    def start_engine(self, resume: bool) -> None:
        """Build and run the engine in a thread: building may ask the LLM for the task card,
        and the screen must stay live (and quittable) meanwhile."""
        self.engine_worker = self.run_worker(
            partial(self._run_engine, resume), thread=True, name="engine", group="engine", exit_on_error=False
        )

    def _run_engine(self, resume: bool) -> None:
        try:
            self._build_and_run(resume)
        finally:
            self._engine_stopped.set()

    def _build_and_run(self, resume: bool) -> None:
        try:
            engine = self.engine_factory(self._listener, resume)
        except UserError as exc:
            self.call_from_thread(self.exit, 2, return_code=2, message=str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - never die with a traceback
            self.call_from_thread(
                self.exit, 1, return_code=1, message=f"cannot start the run: {type(exc).__name__}: {exc}"
            )
            return
        self.engine = engine
        if self._quitting or self._closed_ui:
            engine.shutdown()  # quit while it was being built: it starts, sees the cancel, and cleans up
        try:
            engine.run()
        finally:
            self._engine_done = True

    def _listener(self, event: Event) -> None:
        """Called on the engine thread."""
        seq = next(self._seq)
        if isinstance(event, STREAM_EVENTS):
            self._stream.append((seq, event))
        else:
            self._unhandled.append(seq)  # before posting: the timer must not drain past it
            self.post_message(EngineEvent(event, seq))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is not self.engine_worker or not self._ui_alive():
            return
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self._flush_stream()
            self._exit_code = 1
            # the engine died without its last events: say what it would have said
            self.model.apply(RunStateChanged("failed", f"{type(error).__name__}: {error}"))
            self.model.apply(RunFinished("error", self.model.done))
            self._refresh_status()
            self.refresh_bindings()
            if not self._quitting:
                self.push_screen(ErrorModal("fatal", f"The engine stopped: {type(error).__name__}: {error}"))
        elif event.state == WorkerState.SUCCESS:
            self._flush_stream()
            self.refresh_bindings()

    def _ui_alive(self) -> bool:
        return self.is_running and not self._closed_ui and bool(self._screen_stacks.get(self._current_mode))

    async def on_unmount(self) -> None:
        # Safety net: however the app ends, never leave the engine (and its scripts) running.
        self._closed_ui = True
        self._stop_engine_now()

    def _stop_engine_now(self) -> None:
        # Not worker.state: Textual marks thread workers cancelled on exit while the thread runs on.
        if self.engine is not None and self.engine_worker is not None and not self._engine_done:
            try:
                self.engine.shutdown()
            except Exception:  # noqa: BLE001
                pass

    # ------------------------------------------------------------ events
    def _flush_stream(self, before: int | None = None) -> None:
        """Drain the streamed deltas/lines the engine emitted before event number `before`
        (by default, before the oldest event not handled yet) into the model, and those of
        the node the log follows into one batched log write."""
        buf = self._stream
        if not buf or not self._ui_alive():
            return
        if before is None and self._unhandled:
            before = self._unhandled[0]
        items: list[LlmDelta | OutputLine] = []
        while buf and (before is None or buf[0][0] < before):
            items.append(buf.popleft()[1])
        if not items:
            return
        self._follow_log()  # before the items reach the model: a catch-up must not show them twice
        for item in items:
            self.model.apply(item)
        shown = self._log_node
        if shown is not None:
            items = [item for item in items if item.node_id == shown]
        outputs = sum(1 for item in items if isinstance(item, OutputLine))
        skip = outputs - FLUSH_LINES if outputs > FLUSH_LINES else 0
        if skip:
            # A burst faster than a terminal can show: keep the newest lines, say how many
            # were left out (the node's captured output keeps head and tail for details).
            kept: list[LlmDelta | OutputLine] = []
            dropped = 0
            for item in items:
                if dropped < skip and isinstance(item, OutputLine):
                    dropped += 1
                    continue
                kept.append(item)
            items = kept
            first_output = next((i for i, item in enumerate(items) if isinstance(item, OutputLine)), len(items))
            marker = OutputLine(-1, "stdout", f"… {skip:,} lines not shown (output faster than the screen)")
            items.insert(first_output, marker)
        log = self.log_pane
        text: list[str] = []
        lines: list[str] = []
        for item in items:
            if isinstance(item, LlmDelta):
                if lines:
                    log.append_lines(lines)
                    lines = []
                text.append(item.text)
            else:
                if text:
                    log.append_text("".join(text))
                    text = []
                assert isinstance(item, OutputLine)
                lines.append(output_text(item.stream, item.line))
        if text:
            log.append_text("".join(text))
        if lines:
            log.append_lines(lines)

    def _follow_log(self) -> None:
        """Point the log at the running node it should follow now; on switching to a node
        that has already streamed, show its recent stream first."""
        if not self._ui_alive():
            return
        node = followed_node(self.model, self.selected_id, self.follow)
        running = len(self.model.running)
        title = f"Live · #{node} of {running} running" if running > 1 else "Live"
        if self.log_pane.border_title != title:
            self.log_pane.border_title = title
        if node == self._log_node:
            return
        self._log_node = node
        view = self.model.nodes.get(node) if node is not None else None
        if view is not None and (view.llm_text or view.output):
            lines, text, after = catch_up(view)
            self.log_pane.append_lines(lines)
            self.log_pane.append_text(text)
            self.log_pane.append_lines(after)

    def _log_shows(self, node_id: int | None) -> bool:
        """Whether the log shows this node's headers now: it is the node followed, or none runs."""
        node = followed_node(self.model, self.selected_id, self.follow)
        return node is None or node_id == node

    def on_engine_event(self, message: EngineEvent) -> None:
        while self._unhandled and self._unhandled[0] <= message.seq:
            self._unhandled.popleft()
        if not self._ui_alive():
            return
        try:
            self._flush_stream(before=message.seq)
            self.handle_event(message.event)
        except Exception as exc:  # noqa: BLE001 - a display bug must not kill the run
            self.log.error(f"cannot show {message.event!r}: {exc!r}")
            self.say(f"display error on {type(message.event).__name__}: {exc}", severity="error")

    def handle_event(self, event: Event) -> None:
        """Fold the event into the run's picture, show what only this event says, refresh panes."""
        self.received.append(event)
        change = self.model.apply(event)
        show = self._SHOW.get(type(event))
        if show is not None:
            show(self, event, change)
        self._refresh_panes(change)
        self._follow_log()  # a node started or finished: the log may follow another one now
        if change.tree_added or change.tree_updated or isinstance(event, (RunStateChanged, RunFinished, RunStarted)):
            self.refresh_bindings()

    def _refresh_panes(self, change: Change) -> None:
        model, tree = self.model, self.tree_pane
        if change.tree_reset:
            tree.rebuild(model)
        else:
            if change.tree_added:
                tree.add_views([model.nodes[i] for i in change.tree_added], model)
            updated = list(change.tree_updated)
            if change.best_changed:
                updated += [i for i in change.best_changed if i is not None]
            if updated:
                tree.update_views(updated, model)
        if self.follow and (change.tree_added or change.tree_reset) and model.nodes:
            newest = model.running_id if model.running_id is not None else max(model.nodes)
            self._move_cursor(newest)
        if change.metrics:
            self.metrics.update_from(model)
            self.spark.update_from(model)
        if change.status:
            self._refresh_status()

    # one per event that shows more than the panes do
    def _show_run_started(self, event: RunStarted, change: Change) -> None:
        what = "Resumed" if event.resumed else "Started"
        self.log_pane.append_lines([f"== {what} run {event.run}: {event.steps} steps, {len(event.nodes)} nodes so far"])

    def _show_task_card_ready(self, event: TaskCardReady, change: Change) -> None:
        card = event.card
        self.log_pane.append_lines(
            [
                f"== task card ({event.source}): target {card.target}, "
                f"id columns {', '.join(card.id_columns) or '(none)'}, metric {card.metric} ({card.direction})"
            ]
        )
        if not event.confirm:
            return

        async def done(confirmed) -> None:
            if confirmed is None:
                await self.shutdown_and_exit()  # escape in the form: quit before any node runs
            else:
                self.send(ConfirmTaskCard(confirmed))

        self.push_screen(TaskCardScreen.for_project(card, event.source, Path(self.model.project)), done)

    def _show_direction_fixed(self, event: DirectionFixed, change: Change) -> None:
        better = "lower" if event.direction == "minimize" else "higher"
        self.log_pane.append_lines([f"== metric direction: {event.direction} ({better} is better)"])

    def _show_node_started(self, event: NodeStarted, change: Change) -> None:
        if not self._log_shows(event.node_id):
            return  # another node is followed; this one's stream is kept for when it is
        parent = f" of #{event.parent_id}" if event.parent_id is not None else ""
        hint = f" (hint: {event.hint})" if event.hint else ""
        self.log_pane.append_lines([" ", f"── #{event.node_id} {event.operation}{parent}{hint} ──"])

    def _show_phase_changed(self, event: PhaseChanged, change: Change) -> None:
        if event.phase == "executing" and event.node_id is not None and self._log_shows(event.node_id):
            self.log_pane.append_lines([f"── running node #{event.node_id} ──"])

    def _show_code_ready(self, event: CodeReady, change: Change) -> None:
        self._refresh_detail(event.node_id)

    def _show_node_finished(self, event: NodeFinished, change: Change) -> None:
        node = event.node
        verdict = "✓ ok" if node.status == "ok" else f"✗ {node.status}"
        metric = f" {format_metric(node.metric)}" if node.metric is not None else ""
        star = " ★ new best" if change.best_changed and event.best_id == node.id else ""
        summary = node.review_summary.strip().replace("\n", " ")
        self.log_pane.append_lines([f"── review #{node.id}: {verdict}{metric}{star} — {summary}"])
        self._refresh_detail(node.id)

    def _show_command_accepted(self, event: CommandAccepted, change: Change) -> None:
        self.say(event.detail or f"{event.command} accepted", title="Command accepted", timeout=4)

    def _show_command_rejected(self, event: CommandRejected, change: Change) -> None:
        self.say(event.reason, title=f"{event.command} rejected", severity="warning", timeout=6)

    def _show_notice(self, event: Notice, change: Change) -> None:
        self.say(event.message, severity="warning" if event.level == "warning" else "information", timeout=10)

    def _show_run_error(self, event: RunError, change: Change) -> None:
        self.log_pane.append_lines([f"!! {event.kind} error: {event.message}"])
        if event.kind in ("auth", "budget", "fatal", "config"):
            self.push_screen(ErrorModal(event.kind, event.message))
        else:
            self.say(event.message, title=f"{event.kind} error", severity="error", timeout=10)

    def _show_run_state_changed(self, event: RunStateChanged, change: Change) -> None:
        if event.state == "paused":
            self.log_pane.append_lines(["== paused (space resumes)"])

    def _show_run_finished(self, event: RunFinished, change: Change) -> None:
        if event.best_id is not None:
            best_text = f"best #{event.best_id} {format_metric(event.best_metric)}"
        else:
            best_text = "no working node"
        self.log_pane.append_lines([f"== run finished ({event.reason}): {event.nodes} nodes, {best_text}"])
        self.say(f"Run finished ({event.reason}): {best_text}", title="Run finished", timeout=10)

    _SHOW: dict[type[Event], Callable[[AideApp, Any, Change], None]] = {
        RunStarted: _show_run_started,
        TaskCardReady: _show_task_card_ready,
        DirectionFixed: _show_direction_fixed,
        NodeStarted: _show_node_started,
        PhaseChanged: _show_phase_changed,
        CodeReady: _show_code_ready,
        NodeFinished: _show_node_finished,
        CommandAccepted: _show_command_accepted,
        CommandRejected: _show_command_rejected,
        Notice: _show_notice,
        RunError: _show_run_error,
        RunStateChanged: _show_run_state_changed,
        RunFinished: _show_run_finished,
    }

    def _refresh_status(self) -> None:
        bar = self.status_bar
        bar.frame = int(self.clock() * 8)
        bar.update_from(self.model)

    def _tick(self) -> None:
        if self.model.active or self.model.running_id is not None:
            self._refresh_status()

    def _refresh_detail(self, node_id: int) -> None:
        screen = self.screen
        if isinstance(screen, NodeDetailScreen) and screen.node_id == node_id:
            screen.refresh_view()

    # ------------------------------------------------------------ theme
    def _apply_palette(self) -> None:
        self.palette = Palette.from_app(self)
        for widget in (self.tree_pane, self.metrics, self.status_bar):
            widget.palette = self.palette

    def _on_theme_changed(self, _theme: Any) -> None:
        self._apply_palette()
        self.tree_pane.rebuild(self.model)
        self.metrics.update_from(self.model, force=True)
        self._refresh_status()

    # ------------------------------------------------------------ selection
    @on(Tree.NodeHighlighted, "#tree")
    def _on_highlight(self, event: Tree.NodeHighlighted) -> None:
        self.selected_id = event.node.data
        if self._ui_alive():  # a highlight queued while the app closes finds no screen to refresh
            self.refresh_bindings()
            self._follow_log()

    @on(NodeTree.UserMoved)
    def _on_user_moved(self) -> None:
        self.follow = False
        self._follow_log()

    @on(Tree.NodeSelected, "#tree")
    def _on_select(self, event: Tree.NodeSelected) -> None:
        if event.node.data is not None:
            self.open_details(event.node.data)

    def _move_cursor(self, node_id: int) -> None:
        # the tree lays out new nodes on its next render; move the cursor after it
        self.tree_pane.call_after_refresh(self.tree_pane.select_id, node_id)
        self.selected_id = node_id
        self._follow_log()

    def goto_node(self, node_id: int) -> None:
        self.follow = False
        self._move_cursor(node_id)

    def open_details(self, node_id: int) -> None:
        if node_id not in self.model.nodes:
            self.say(f"No node #{node_id}", severity="warning")
            return
        if isinstance(self.screen, NodeDetailScreen):
            self.pop_screen()
        self.selected_id = node_id
        self.push_screen(NodeDetailScreen(node_id))

    @property
    def selected(self):
        if self.selected_id is None:
            return None
        return self.model.nodes.get(self.selected_id)

    # ------------------------------------------------------------ actions
    def why_not(self, action: str) -> str | None:
        """None when `action` applies now, else a one-line reason shown to the user."""
        model = self.model
        view = self.selected
        if action in self.RUN_ACTIONS:
            if self.engine is None:
                return "the run has not started yet"
            over = self.run_over()
            if over:
                return over
        if action in (
            "improve",
            "debug",
            "merge",
            "edit",
            "details",
            "copy_branch",
            "lineage",
            "mark",
            "compare",
            "worktree",
        ):
            if view is None:
                return "select a node in the tree first"
        spec = BY_ACTION.get(action)
        if spec is not None and spec.parent_kind != "any":  # the one rule the engine applies too
            keys: dict[str, str] = {
                BY_ACTION[b.action].name: b.key for b in self.AIDE_BINDINGS if b.action in BY_ACTION
            }
            no_code = (view.node.coder_outcome or "no code") if view.node is not None and not view.code.strip() else ""
            problem = target_problem(
                spec.name,
                view.id,
                view.status if view.finished else None,
                running=not view.finished,
                keys=keys,
                no_code=no_code,
            )
            if problem:
                return problem
        if action == "merge":
            marked = model.nodes.get(self.marked_id) if self.marked_id is not None else None
            if marked is None:
                return "mark a node first (m), then select another working node and press M"
            if marked.id == view.id:
                return f"#{view.id} is the marked node; select another working node to merge it with"
            status = marked.status if marked.finished else None
            problem = target_problem("merge", marked.id, status, running=not marked.finished)  # type: ignore[arg-type]
            if problem:
                return f"the marked node: {problem}"
        if action == "edit":
            if not view.code:
                return f"#{view.id} has no code yet"
        elif action in ("copy_branch", "worktree"):
            if not view.branch:
                return f"#{view.id} has no git branch yet (it is committed when it finishes)"
        elif action == "compare":
            if self.marked_id is None or self.marked_id not in model.nodes:
                return "mark a node first (m), then select another and press c"
            if self.marked_id == view.id:
                return f"#{view.id} is the marked node; select another node to compare with it"
            if not view.code:
                return f"#{view.id} has no code yet"
        elif action == "goto_best":
            if model.best_id is None:
                return "no working node yet, so no best node"
        elif action == "goto_running":
            if model.running_id is None:
                return "no node is running right now"
        elif action == "stop":
            if model.state == "stopping":
                return "already stopping after this step"
        elif action == "toggle_pause":
            if model.state == "stopping":
                return "the run is stopping after this step; nothing to pause"
        return None

    RUN_ACTIONS = ("draft", "improve", "debug", "merge", "hint", "edit", "toggle_pause", "stop")  # steer a live run

    def run_over(self) -> str | None:
        """Why no run command applies any more (the run has ended), else None."""
        model = self.model
        if self.engine is None or model.active:
            return None
        if model.finish_reason == "completed":
            return (
                f"the run is complete; start aide-tui again for a new run, or extend this one with "
                f"--headless --resume --run {model.run_name} --steps N"
            )
        return f"the run is over ({model.finish_reason or model.state}); start aide-tui again to resume it"

    GATED = {
        "draft",
        "improve",
        "debug",
        "hint",
        "edit",
        "toggle_pause",
        "stop",
        "details",
        "copy_branch",
        "goto_best",
        "goto_running",
        "lineage",
        "mark",
        "compare",
        "merge",
        "worktree",
    }
    marked_id: int | None = None  # the node `c` compares the selection with (◆ in the tree)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.GATED:
            # None = shown dimmed in the footer; the key then reaches on_key, which says why.
            return True if self.why_not(action) is None else None
        return True

    def on_key(self, event: events.Key) -> None:
        """A bound key whose action is unavailable lands here: say why instead of doing nothing."""
        if isinstance(self.screen, ModalScreen):
            return
        for binding in self.AIDE_BINDINGS:
            if event.key in binding.key.split(",") and binding.action in self.GATED:
                reason = self.why_not(binding.action)
                if reason:
                    event.stop()
                    self.say(reason, title=binding.description, severity="warning", timeout=5)
                return

    def say(self, message: str, **kwargs: Any) -> None:
        """`notify` without markup: messages carry engine/LLM text ("[...]" must show as is)."""
        self.notify(message, markup=False, **kwargs)

    async def invoke(self, action: str) -> None:
        """Run an action from the command palette, or say why it does not apply."""
        reason = self.why_not(action)
        if reason:
            self.say(reason, severity="warning", timeout=5)
            return
        await self.run_action(action)  # a coroutine: unawaited, the chosen command never ran

    def send(self, command: Command) -> None:
        if self.engine is None:
            self.say("The run has not started yet", severity="warning")
            return
        self.engine.submit(command)

    def action_draft(self) -> None:
        self.send(DraftNext())

    def action_improve(self) -> None:
        self.send(ImproveNode(self.selected.id))

    def action_debug(self) -> None:
        self.send(DebugNode(self.selected.id))

    def action_merge(self) -> None:
        assert self.marked_id is not None
        self.send(MergeNodes(self.selected.id, self.marked_id))

    def action_hint(self) -> None:
        def done(text: str | None) -> None:
            if text:
                self.send(AddHint(text))

        self.push_screen(HintModal(), done)

    def action_edit(self) -> None:
        view = self.selected
        node_id = view.id

        def done(code: str | None) -> None:
            if code is None:
                return
            if code == view.code:
                self.say("The code is unchanged; nothing to run", severity="warning")
                return
            self.send(RunCode(parent_id=node_id, code=code))

        self.push_screen(EditCodeModal(node_id, view.code), done)

    def action_toggle_pause(self) -> None:
        """Space pauses; again resumes, or takes back a pause the current step has not reached."""
        if self.model.state in ("paused", "pausing"):
            self.send(Resume())
        else:
            self.send(Pause())

    def action_stop(self) -> None:
        self.send(StopAfterStep())

    def action_details(self) -> None:
        self.open_details(self.selected.id)

    def action_copy_branch(self) -> None:
        branch = self.selected.branch
        self.copy_to_clipboard(branch)
        self.say(f"{branch}\n(try: git log {branch})", title="Branch copied", timeout=5)

    def action_lineage(self) -> None:
        self.open_lineage(self.selected.id)

    def open_lineage(self, node_id: int) -> None:
        if node_id not in self.model.nodes:
            self.say(f"No node #{node_id}", severity="warning")
            return
        self.push_screen(LineageScreen(node_id))

    def action_mark(self) -> None:
        node_id = self.selected.id
        self.marked_id = None if self.marked_id == node_id else node_id
        self.tree_pane.set_marked(self.marked_id, self.model)
        self.refresh_bindings()
        if self.marked_id is not None:
            self.say(f"#{node_id} marked: select another node and press c to compare", title="Marked", timeout=4)

    def action_compare(self) -> None:
        assert self.marked_id is not None
        self.push_screen(CompareScreen(self.marked_id, self.selected.id))

    def action_worktree(self) -> None:
        from ..export import add_worktree, default_worktree, repository_dir

        view = self.selected
        project = Path(self.model.project)
        try:
            repository_dir(project)  # no repository: say so before asking anything
            branch, path = default_worktree(project, self.model.run_name, view.id)
        except UserError as exc:
            self.say(str(exc), title="Worktree", severity="error", timeout=8)
            return

        def done(result: tuple[str, Path] | None) -> None:
            if result is not None:
                made_branch, made_path = result
                self.say(
                    f"{made_path}\non new branch {made_branch} (cd there to work on it)",
                    title="Worktree created",
                    timeout=8,
                )

        self.push_screen(WorktreeModal(view.id, branch, path, partial(add_worktree, project, view.branch)), done)

    def action_goto_best(self) -> None:
        if self.model.best_id is not None:  # why_not gates the key and the palette; None selects nothing
            self.goto_node(self.model.best_id)

    def action_goto_running(self) -> None:
        """Jump to the running node; pressed again with several in flight, to the next one."""
        running = self.model.running
        self.follow = True
        if self.selected_id in running and len(running) > 1:
            self.follow = False  # the user is choosing among the running nodes
            self._move_cursor(running[(running.index(self.selected_id) + 1) % len(running)])
        elif self.model.running_id is not None:
            self._move_cursor(self.model.running_id)

    async def action_quit(self) -> None:
        if self._quitting:
            return
        worker = self.engine_worker
        alive = worker is not None and worker.state in (WorkerState.PENDING, WorkerState.RUNNING)
        running = self.model.running
        if alive and running:
            ids = ", ".join(f"#{i}" for i in running)
            what = f"Node {ids} is running" if len(running) == 1 else f"{len(running)} nodes are running ({ids})"
            them = "It is" if len(running) == 1 else "They are"
            question = f"{what}. Quit now?\n{them} cancelled; the run stays resumable (aide-tui PROJECT again)."

            async def done(yes: bool | None) -> None:
                if yes:
                    await self.shutdown_and_exit()

            self.push_screen(ConfirmModal(question, yes="Quit", no="Keep running"), done)
        else:
            await self.shutdown_and_exit()

    async def shutdown_and_exit(self) -> None:
        """Tell the engine to cancel, then leave the screen at once.

        Why not wait here: the engine's own wind-down (scripts killed, streams closed, the
        journal closed, the zygote stopped) took seconds under load while the screen stayed up
        and took keys.  `shutdown()` is enough for the guarantees (no node starts after it,
        model calls are closed, scripts are killed); `run_app` then waits for the engine
        thread, off-screen, so nothing is left behind when the process ends.
        """
        if self._quitting:
            return
        self._quitting = True
        engine = self.engine
        if engine is not None and not self._engine_done:
            self.say("Stopping the run…", timeout=QUIT_WAIT)
            try:
                await asyncio.wait_for(asyncio.to_thread(engine.shutdown), QUIT_WAIT)
            except Exception:  # noqa: BLE001 - quitting must not fail; the unmount safety net retries
                pass
        self._flush_stream()
        self.exit(self._exit_code, return_code=self._exit_code)

    def wait_for_engine(self, timeout: float) -> bool:
        """Block until the engine thread has wound down (or `timeout`); True when it has."""
        return self._engine_stopped.wait(timeout)


def run_app(project_dir: Path, settings: Settings, resume: bool | None) -> int:
    """Open the TUI on PROJECT; returns the process exit code.

    `resume=None`: if an unfinished run exists, ask (Resume / New run / Quit).
    """
    from ..engine import build_engine  # the engine has no UI imports; imported late

    ask: str | None = None
    if resume is None:
        from ..project import Project, unfinished_run

        ask = unfinished_run(project_dir)
        if ask is not None and not Project.open(project_dir).finished_a_node(ask):
            ask = None  # it never finished a node: nothing to resume, so start over without asking

    def factory_for(chosen: Settings) -> EngineFactory:
        def factory(listener: Callable[[Event], None], resume_flag: bool) -> EngineLike:
            return build_engine(project_dir, chosen, resume=resume_flag, listener=listener, confirm_card=True)

        return factory

    from dataclasses import replace

    from ..engine import choose_coder_name
    from ..settings import api_key_present

    no_key = choose_coder_name(settings) == "llm" and not api_key_present()
    offline = factory_for(replace(settings, coder="offline")) if no_key else None
    app = AideApp(factory_for(settings), resume=bool(resume), ask_resume=ask, offline_factory=offline)
    app.run()
    # The screen is gone; the engine was told to cancel and winds down here (bounded).
    if app.engine_worker is not None and not app.wait_for_engine(QUIT_WAIT):
        print("aide-tui: the run did not stop in time; see .aide/runs/*/engine.log", file=sys.stderr)
    return app.return_code or 0
