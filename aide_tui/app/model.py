"""The front end's picture of a run, built only from engine events (no Textual here).

Widgets read it; `RunModel.apply` folds one event in and says what changed so the app
updates only the panes that need it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..events import (
    CodeReady,
    Event,
    LlmDelta,
    NextPlanned,
    NodeFinished,
    NodeStarted,
    OutputLine,
    PhaseChanged,
    RunError,
    RunFinished,
    RunStarted,
    RunStateChanged,
    UsageUpdated,
)
from ..search.node import Node, Usage

RUNNING = "running"
LIVE_TEXT_LIMIT = 200_000  # characters of streamed text kept per running node


@dataclass
class NodeView:
    id: int
    parent_id: int | None
    operation: str
    step: int
    status: str = RUNNING  # "running" or a finished Node.status
    metric: float | None = None
    node: Node | None = None
    ref: str | None = None
    commit: str | None = None
    hint: str | None = None
    plan: str = ""
    code: str = ""
    llm_text: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)
    phase: str = ""

    @property
    def finished(self) -> bool:
        return self.node is not None

    @property
    def branch(self) -> str | None:
        if not self.ref:
            return None
        return self.ref.removeprefix("refs/heads/")

    @property
    def is_buggy(self) -> bool:
        return self.finished and self.status != "ok"

    @classmethod
    def from_node(cls, node: Node, ref: str | None = None, commit: str | None = None) -> "NodeView":
        return cls(
            id=node.id,
            parent_id=node.parent_id,
            operation=node.operation,
            step=node.step,
            status=node.status,
            metric=node.metric,
            node=node,
            ref=ref,
            commit=commit,
            hint=node.hint,
            plan=node.plan,
            code=node.code,
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
    "planning": "planning the next step",
    "llm": "asking the LLM",
    "executing": "running node {node}",
    "reviewing": "reviewing node {node}",
    "committing": "saving node {node}",
    "paused": "paused",
}


class RunModel:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.run_name = ""
        self.project = ""
        self.steps_total = 0
        self.direction: str | None = None
        self.coder = "llm"
        self.resumed = False
        self.nodes: dict[int, NodeView] = {}
        self.best_id: int | None = None
        self.running_id: int | None = None
        self.state = "starting"
        self.state_reason = ""
        self.phase = "idle"
        self.phase_node: int | None = None
        self.usage = Usage()
        self.budget: float | None = None
        self.next_planned: NextPlanned | None = None
        self.queued: list[str] = []  # accepted overrides waiting for their step
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.finish_reason: str | None = None
        self.error: RunError | None = None
        # metric curve: (finish index, metric) for working nodes, best-so-far by finish index
        self.finish_order: list[int] = []
        self.points: list[tuple[int, float]] = []
        self.best_curve: list[tuple[int, float]] = []

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
        return self.done + (1 if self.running_id is not None else 0)

    @property
    def active(self) -> bool:
        return self.state in ("starting", "running", "paused", "stopping")

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
        if self.state == "stopping":
            text += " · stopping after this step"
        return text

    def metric_title(self) -> str:
        if self.direction == "minimize":
            return "Metric (lower is better)"
        if self.direction == "maximize":
            return "Metric (higher is better)"
        return "Metric"

    # ------------------------------------------------------------- events
    def apply(self, event: Event) -> Change:
        ch = Change()
        if isinstance(event, RunStarted):
            self.run_name = event.run
            self.project = event.project
            self.steps_total = event.steps
            self.direction = event.direction
            self.coder = event.coder
            self.resumed = event.resumed
            self.started_at = self.clock()
            self.state = "running"
            if event.nodes:
                self.nodes.clear()
                self.finish_order.clear()
                self.points.clear()
                self.best_curve.clear()
                best_before = self.best_id
                for node in event.nodes:
                    self._finish(NodeView.from_node(node), None)
                # replayed nodes: best by direction over working nodes
                self.best_id = self._best_of_replayed(event.nodes)
                self._recompute_best_curve()
                ch.tree_reset = True
                ch.best_changed = (best_before, self.best_id)
            ch.metrics = True
            ch.status = True
        elif isinstance(event, NextPlanned):
            self.next_planned = event
            if event.source == "command" and self.queued:
                self.queued.pop(0)
            ch.status = True
        elif isinstance(event, NodeStarted):
            view = NodeView(event.node_id, event.parent_id, event.operation, event.step, hint=event.hint)
            self.nodes[event.node_id] = view
            self.running_id = event.node_id
            self.next_planned = None
            ch.tree_added.append(event.node_id)
            ch.status = True
        elif isinstance(event, PhaseChanged):
            self.phase = event.phase
            self.phase_node = event.node_id
            if event.node_id is not None and event.node_id in self.nodes:
                self.nodes[event.node_id].phase = event.phase
            ch.status = True
        elif isinstance(event, LlmDelta):
            view = self.nodes.get(event.node_id)
            if view is not None and view.node is None and sum(map(len, view.llm_text)) < LIVE_TEXT_LIMIT:
                view.llm_text.append(event.text)
        elif isinstance(event, OutputLine):
            view = self.nodes.get(event.node_id)
            if view is not None and view.node is None and len(view.output) < 20_000:
                view.output.append(event.line)
        elif isinstance(event, CodeReady):
            view = self.nodes.get(event.node_id)
            if view is not None:
                view.plan = event.plan
                view.code = event.code
        elif isinstance(event, NodeFinished):
            node = event.node
            view = self.nodes.get(node.id)
            fresh = NodeView.from_node(node, event.ref, event.commit)
            if view is None:
                ch.tree_added.append(node.id)
            else:
                ch.tree_updated.append(node.id)
                fresh.llm_text = view.llm_text
            self._finish(fresh, event.best_id)
            if self.running_id == node.id:
                self.running_id = None
            if event.best_id != self.best_id:
                ch.best_changed = (self.best_id, event.best_id)
                self.best_id = event.best_id
            self._append_best()
            if self.direction is None:
                self._infer_direction()
            ch.metrics = True
            ch.status = True
        elif isinstance(event, UsageUpdated):
            self.usage = event.total
            self.budget = event.budget
            ch.status = True
        elif isinstance(event, RunStateChanged):
            self.state = event.state
            self.state_reason = event.reason
            if event.state in ("finished", "failed") and self.finished_at is None:
                self.finished_at = self.clock()
            ch.status = True
        elif isinstance(event, RunError):
            self.error = event
            ch.status = True
        elif isinstance(event, RunFinished):
            self.finish_reason = event.reason
            if self.state not in ("finished", "failed"):
                self.state = "failed" if event.reason == "error" else "finished"
            if self.finished_at is None:
                self.finished_at = self.clock()
            if self.running_id is not None:
                # the node never finished (cancelled); show it as such
                view = self.nodes.get(self.running_id)
                if view is not None and view.node is None:
                    view.status = "cancelled"
                    ch.tree_updated.append(view.id)
                self.running_id = None
            self.phase = "idle"
            ch.status = True
        return ch

    def _infer_direction(self) -> None:
        """RunStarted may not know the direction yet (the first review decides it); the
        engine's best node tells: best == max of working metrics -> maximize."""
        values = [v for _, v in self.points]
        best = self.nodes.get(self.best_id) if self.best_id is not None else None
        if best is None or best.metric is None or len(set(values)) < 2:
            return
        if best.metric == max(values):
            self.direction = "maximize"
        elif best.metric == min(values):
            self.direction = "minimize"

    def _finish(self, view: NodeView, best_id: int | None) -> None:
        self.nodes[view.id] = view
        self.finish_order.append(view.id)
        if view.status == "ok" and view.metric is not None:
            self.points.append((len(self.finish_order), view.metric))

    def _append_best(self) -> None:
        best = self.nodes.get(self.best_id) if self.best_id is not None else None
        if best is not None and best.metric is not None:
            self.best_curve.append((len(self.finish_order), best.metric))

    def _best_of_replayed(self, nodes: tuple[Node, ...]) -> int | None:
        ok = [n for n in nodes if n.status == "ok" and n.metric is not None]
        if not ok:
            return None
        key = (lambda n: n.metric) if self.direction != "minimize" else (lambda n: -n.metric)  # type: ignore[operator]
        return max(ok, key=key).id

    def _recompute_best_curve(self) -> None:
        self.best_curve.clear()
        best: float | None = None
        for x, nid in enumerate(self.finish_order, 1):
            v = self.nodes[nid]
            if v.status == "ok" and v.metric is not None:
                if best is None or (v.metric < best if self.direction == "minimize" else v.metric > best):
                    best = v.metric
            if best is not None:
                self.best_curve.append((x, best))

    def children(self, node_id: int | None) -> list[NodeView]:
        return [v for v in self.nodes.values() if v.parent_id == node_id]
