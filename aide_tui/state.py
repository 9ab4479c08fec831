"""A front end's picture of a run, built only from engine events (no Textual here).

Both front ends (the Textual app and the headless printer) fold every event into a
`RunModel` with `apply`, which says what changed so the app refreshes only the panes that
need it.  Nothing here guesses: the direction, the best node, branches and the queue are
what the engine announced.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from . import events as ev
from .search.node import Direction, Node, Operation, Status, Usage, better
from .search.operations import OPERATIONS
from .search.task_card import TaskCard

RUNNING: Final = "running"
NodeStatus = Status | Literal["running"]
LIVE_TEXT_LIMIT = 200_000  # characters of streamed text kept per running node
LIVE_LINES_LIMIT = 20_000  # most recent output lines kept per running node


@dataclass
class NodeView:
    id: int
    parent_id: int | None
    operation: Operation
    step: int
    status: NodeStatus = RUNNING
    metric: float | None = None
    holdout: float | None = None  # the metric on the hidden holdout (HoldoutScored)
    holdout_flag: str = ""  # validation and holdout disagree beyond chance (HoldoutScored.flag)
    node: Node | None = None
    branch: str | None = None  # set once the node is committed
    commit: str | None = None
    hint: str | None = None
    plan: str = ""
    code: str = ""
    llm_text: list[str] = field(default_factory=list)
    # The running node's recent output lines as shown (stderr marked by `output_text`): one
    # shape for every reader (the live log's catch-up, the detail screen) while it runs.
    output: deque[str] = field(default_factory=lambda: deque(maxlen=LIVE_LINES_LIMIT))
    phase: str = ""
    usage: Usage = field(default_factory=Usage)  # spent so far while it runs (CodeReady); the node's own once finished

    @property
    def finished(self) -> bool:
        return self.node is not None

    @property
    def is_buggy(self) -> bool:
        return self.finished and self.status != "ok"

    @property
    def printed_text(self) -> str:
        """Everything the node printed so far: the captured output once it has finished,
        else the lines streamed while it runs."""
        if self.node is not None:
            return self.node.output
        return "\n".join(self.output)

    @classmethod
    def from_finished(cls, event: ev.NodeFinished) -> NodeView:
        node = event.node
        return cls(
            id=node.id,
            parent_id=node.parent_id,
            operation=node.operation,
            step=node.step,
            status=node.status,
            metric=node.metric,
            holdout=node.holdout_metric,
            node=node,
            branch=event.branch or None,
            commit=event.commit or None,
            hint=node.hint,
            plan=node.plan,
            code=node.code,
            usage=node.usage,
        )


@dataclass
class Change:
    """What one event changed, so the app refreshes only those panes."""

    tree_added: list[int] = field(default_factory=list)
    tree_updated: list[int] = field(default_factory=list)
    tree_reset: bool = False
    best_changed: tuple[int | None, int | None] | None = None
    metrics: bool = False
    status: bool = False


PHASE_TEXT = {
    "idle": "idle",
    "llm": "asking the LLM",
    "executing": "running node {node}",
    "reviewing": "reviewing node {node}",
    "committing": "saving node {node}",
}
PENDING_TEXT = {"pausing": "pausing after this step", "stopping": "stopping after this step"}


def output_text(stream: str, line: str) -> str:
    """An output line as the front ends show it (stderr marked)."""
    return line if stream == "stdout" else f"! {line}"


def step_text(operation: Operation, parent_id: int | None) -> str:
    """`improve #4`, `draft`, `your code under #2`: a planned or queued step in a few words."""
    return OPERATIONS[operation].step_text(parent_id)


class RunModel:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.run_name = ""
        self.project = ""
        self.steps_total = 0
        self.direction: Direction | None = None
        self.coder = "llm"
        self.card: TaskCard | None = None  # what the run evaluates against (TaskCardReady)
        self.card_source = ""
        self.resumed = False
        self.nodes: dict[int, NodeView] = {}
        self.best_id: int | None = None
        # The node the run answers with when the hidden holdout ranks another above best_id (★).
        self.pick_id: int | None = None
        self.running: list[int] = []  # nodes in flight, oldest first (several with --workers > 1)
        self.state: ev.RunState = "starting"
        self.state_reason = ""
        self.phase: ev.Phase = "idle"
        self.phase_node: int | None = None
        self.usage = Usage()
        self.budget: float | None = None
        self.next_planned: ev.NextPlanned | None = None
        self.queue: tuple[ev.QueuedStep, ...] = ()  # the engine's queue of steps the user asked for
        self.hints: tuple[str, ...] = ()  # hints waiting for the next prompt
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.finished: ev.RunFinished | None = None
        self.error: ev.RunError | None = None
        self.finish_order: list[int] = []
        self.points: list[tuple[int, float]] = []  # (finish index, metric) of working nodes

    # ------------------------------------------------------------ queries
    @property
    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        end = self.finished_at if self.finished_at is not None else self.clock()
        return max(0.0, end - self.started_at)

    @property
    def done(self) -> int:
        return len(self.finish_order)

    @property
    def step_now(self) -> int:
        return self.done + len(self.running)

    @property
    def accrued_usage(self) -> Usage:
        """The run's spend as it accrues: the engine's total (finished nodes, the card call)
        plus what the nodes in flight have spent on their code so far."""
        total = self.usage
        for node_id in self.running:
            view = self.nodes.get(node_id)
            if view is not None and view.node is None:
                total = total + view.usage
        return total

    @property
    def running_id(self) -> int | None:
        """The newest node in flight (the one the log and `r` follow by default)."""
        return self.running[-1] if self.running else None

    @property
    def active(self) -> bool:
        return self.state in ("starting", "running", "pausing", "paused", "stopping")

    @property
    def finish_reason(self) -> str | None:
        return self.finished.reason if self.finished is not None else None

    @property
    def waiting(self) -> tuple[ev.QueuedStep, ...]:
        """Queued steps other than the one already shown as the next step."""
        if self.next_planned is not None and self.next_planned.source == "command":
            return self.queue[1:]
        return self.queue

    @property
    def best_curve(self) -> list[tuple[int, float]]:
        """Best metric so far after each finished node (from the first working one on)."""
        metrics = dict(self.points)
        curve: list[tuple[int, float]] = []
        best: float | None = None
        for x in range(1, self.done + 1):
            metric = metrics.get(x)
            if metric is not None and (best is None or better(metric, best, self.direction or "maximize")):
                best = metric
            if best is not None:
                curve.append((x, best))
        return curve

    def phase_text(self) -> str:
        if self.state == "paused":
            return "paused"
        if self.state in ("finished", "failed"):
            reason = self.finish_reason or self.state_reason or self.state
            return f"finished ({reason})" if self.state == "finished" else f"failed: {reason}"
        text = PHASE_TEXT.get(self.phase, self.phase)
        node = self.phase_node if self.phase_node is not None else self.running_id
        text = text.format(node=f"#{node}" if node is not None else "")
        if self.phase == "llm" and node is not None:
            text += f" (node #{node})"
        if self.state in PENDING_TEXT:
            text += f" · {PENDING_TEXT[self.state]}"
        return text

    def metric_title(self) -> str:
        if self.direction == "minimize":
            return "Metric (lower is better)"
        if self.direction == "maximize":
            return "Metric (higher is better)"
        return "Metric"

    def children(self, node_id: int | None) -> list[NodeView]:
        return [v for v in self.nodes.values() if v.parent_id == node_id]

    # ------------------------------------------------------------- events
    def apply(self, event: ev.Event) -> Change:
        change = Change()
        handler = _APPLY.get(type(event))
        if handler is not None:
            handler(self, event, change)
        return change

    def _run_started(self, e: ev.RunStarted, ch: Change) -> None:
        self.run_name, self.project, self.steps_total = e.run, e.project, e.steps
        self.direction, self.coder, self.resumed = e.direction, e.coder, e.resumed
        self.started_at = self.clock()
        self.state = "running"
        if e.nodes:
            best_before = self.best_id
            self.nodes.clear()
            self.finish_order.clear()
            self.points.clear()
            for finished in e.nodes:
                self._record(NodeView.from_finished(finished))
            self.best_id = e.nodes[-1].best_id
            ch.best_changed = (best_before, self.best_id)
        ch.tree_reset = ch.metrics = ch.status = True

    def _task_card_ready(self, e: ev.TaskCardReady, ch: Change) -> None:
        self.card, self.card_source = e.card, e.source
        ch.status = True

    def _direction_fixed(self, e: ev.DirectionFixed, ch: Change) -> None:
        self.direction = e.direction
        self._set_best(e.best_id, ch)
        ch.metrics = ch.status = True

    def _next_planned(self, e: ev.NextPlanned, ch: Change) -> None:
        self.next_planned = e
        ch.status = True

    def _queue_changed(self, e: ev.QueueChanged, ch: Change) -> None:
        self.queue, self.hints = e.steps, e.hints
        ch.status = True

    def _node_started(self, e: ev.NodeStarted, ch: Change) -> None:
        self.nodes[e.node_id] = NodeView(e.node_id, e.parent_id, e.operation, e.step, hint=e.hint)
        self.running.append(e.node_id)
        self.next_planned = None
        ch.tree_added.append(e.node_id)
        ch.status = True

    def _phase_changed(self, e: ev.PhaseChanged, ch: Change) -> None:
        self.phase, self.phase_node = e.phase, e.node_id
        if e.node_id is not None and e.node_id in self.nodes:
            self.nodes[e.node_id].phase = e.phase
        ch.status = True

    def _llm_delta(self, e: ev.LlmDelta, ch: Change) -> None:
        view = self.nodes.get(e.node_id)
        if view is not None and view.node is None and sum(map(len, view.llm_text)) < LIVE_TEXT_LIMIT:
            view.llm_text.append(e.text)

    def _output_line(self, e: ev.OutputLine, ch: Change) -> None:
        view = self.nodes.get(e.node_id)
        if view is not None and view.node is None:
            view.output.append(output_text(e.stream, e.line))

    def _code_ready(self, e: ev.CodeReady, ch: Change) -> None:
        view = self.nodes.get(e.node_id)
        if view is not None:
            view.plan, view.code, view.usage = e.plan, e.code, e.usage
            ch.status = True  # the status bar adds what it has spent

    def _node_finished(self, e: ev.NodeFinished, ch: Change) -> None:
        fresh = NodeView.from_finished(e)
        view = self.nodes.get(fresh.id)
        if view is None:
            ch.tree_added.append(fresh.id)
        else:
            ch.tree_updated.append(fresh.id)
            fresh.llm_text = view.llm_text
        self._record(fresh)
        self.usage = self.usage + e.node.usage  # until UsageUpdated brings the engine's total, at once
        if fresh.id in self.running:
            self.running.remove(fresh.id)
        self.direction = e.direction or self.direction
        self._set_best(e.best_id, ch)
        ch.metrics = ch.status = True

    def _holdout_scored(self, e: ev.HoldoutScored, ch: Change) -> None:
        view = self.nodes.get(e.node_id)
        if view is not None:
            view.holdout, view.holdout_flag = e.metric, e.flag
            view.commit = e.commit or view.commit
            if view.node is not None:
                view.node.holdout_metric, view.node.holdout_note = e.metric, e.note
                view.node.holdout_flag = e.flag
            ch.tree_updated.append(e.node_id)
        self._set_pick(e.pick_id, ch)
        ch.status = True

    def _set_pick(self, pick_id: int | None, ch: Change) -> None:
        if pick_id != self.pick_id:
            ch.tree_updated.extend(i for i in (self.pick_id, pick_id) if i is not None)
            self.pick_id = pick_id

    def _usage_updated(self, e: ev.UsageUpdated, ch: Change) -> None:
        self.usage, self.budget = e.total, e.budget
        ch.status = True

    def _run_state_changed(self, e: ev.RunStateChanged, ch: Change) -> None:
        self.state, self.state_reason = e.state, e.reason
        if e.state in ("finished", "failed") and self.finished_at is None:
            self.finished_at = self.clock()
        ch.status = True

    def _run_error(self, e: ev.RunError, ch: Change) -> None:
        self.error = e
        ch.status = True

    def _run_finished(self, e: ev.RunFinished, ch: Change) -> None:
        self.finished = e
        if e.best_holdout is not None:  # the final pick went by the holdout
            self._set_pick(e.best_id, ch)
        if self.state not in ("finished", "failed"):
            self.state = "failed" if e.reason == "error" else "finished"
        if self.finished_at is None:
            self.finished_at = self.clock()
        for node_id in self.running:  # nodes that never finished (cancelled): show them as such
            view = self.nodes.get(node_id)
            if view is not None and view.node is None:
                view.status = "cancelled"
                ch.tree_updated.append(view.id)
        self.running = []
        self.phase = "idle"
        self.next_planned = None
        ch.status = True

    # ------------------------------------------------------------ helpers
    def _record(self, view: NodeView) -> None:
        self.nodes[view.id] = view
        self.finish_order.append(view.id)
        if view.status == "ok" and view.metric is not None:
            self.points.append((len(self.finish_order), view.metric))

    def _set_best(self, best_id: int | None, ch: Change) -> None:
        if best_id != self.best_id:
            ch.best_changed = (self.best_id, best_id)
            self.best_id = best_id


# Each handler takes the event of its key's type, which a dict's type cannot say: hence Any.
_APPLY: dict[type[ev.Event], Callable[[RunModel, Any, Change], None]] = {
    ev.RunStarted: RunModel._run_started,
    ev.TaskCardReady: RunModel._task_card_ready,
    ev.DirectionFixed: RunModel._direction_fixed,
    ev.NextPlanned: RunModel._next_planned,
    ev.QueueChanged: RunModel._queue_changed,
    ev.NodeStarted: RunModel._node_started,
    ev.PhaseChanged: RunModel._phase_changed,
    ev.LlmDelta: RunModel._llm_delta,
    ev.OutputLine: RunModel._output_line,
    ev.CodeReady: RunModel._code_ready,
    ev.NodeFinished: RunModel._node_finished,
    ev.HoldoutScored: RunModel._holdout_scored,
    ev.UsageUpdated: RunModel._usage_updated,
    ev.RunStateChanged: RunModel._run_state_changed,
    ev.RunError: RunModel._run_error,
    ev.RunFinished: RunModel._run_finished,
}
"""One handler per event the run's picture depends on (commands' answers and notices are the front end's)."""
