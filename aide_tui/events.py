"""Typed events the engine emits and commands it accepts.

These are the only vocabulary between the engine and a front end (the Textual
app or the headless printer).  They are plain frozen dataclasses so they can be
posted across threads and printed as JSON lines (`to_json`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from .search.node import Direction, Node, Operation, Usage, status_word
from .search.task_card import TaskCard

# --------------------------------------------------------------------- events

RunState = Literal["starting", "running", "pausing", "paused", "stopping", "finished", "failed"]
"""`pausing`/`stopping`: asked for while a step runs; they take effect when it ends."""
Phase = Literal["idle", "llm", "executing", "reviewing", "committing"]
PlanSource = Literal["policy", "command"]
FinishReason = Literal["completed", "stopped", "budget", "error", "cancelled"]


def _plain(value: Any) -> Any:
    if isinstance(value, Event):
        data = value.to_json()
        data.pop("event")
        return data
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Event:
    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": type(self).__name__}
        for f in dataclasses.fields(self):
            out[f.name] = _plain(getattr(self, f.name))
        return out

    def to_json_line(self) -> str:
        return json.dumps(self.to_json(), default=str)


@dataclass(frozen=True)
class RunStarted(Event):
    run: str
    project: str
    resumed: bool
    steps: int  # total node count the run aims for
    nodes: tuple[NodeFinished, ...] = ()  # a resumed run's nodes, as they were announced when they finished
    direction: Direction | None = None  # None until the first working node's review fixes it (DirectionFixed)
    coder: str = "llm"  # "llm" or "offline"


@dataclass(frozen=True)
class TaskCardReady(Event):
    """The task card the run evaluates against (after RunStarted, before the first node).

    `source` says where it came from: "derived" (task.md and the data, by the offline
    reader), "llm" (the LLM read task.md and the data), "aide.toml" (the `[task]` table,
    over what was derived), "confirmed" (the user confirmed or corrected it in the TUI),
    or "saved" (a resumed run keeps its card).
    """

    card: TaskCard
    source: str
    confirm: bool = False  # the engine waits for ConfirmTaskCard (or a stop) before the first node


@dataclass(frozen=True)
class DirectionFixed(Event):
    """The metric direction became known (the first working node's review); the best may change with it."""

    direction: Direction
    best_id: int | None


@dataclass(frozen=True)
class HoldoutScored(Event):
    """A node's script was re-run on the hidden holdout (it became the best, or is among the final
    candidates: the top 3 and a sample across the tree).

    `metric` is the card's metric on the withheld rows (None: `note` says why not);
    `pick_id` is the node the run would answer with now (the best unflagged holdout score);
    `commit` is the node branch's new tip (its node.json now has the score; None: git failed);
    `flag` says why its validation metric and holdout score disagree beyond chance ("": they agree),
    and such a node is never the answer while an unflagged one exists."""

    node_id: int
    metric: float | None
    note: str
    pick_id: int | None
    commit: str | None = None
    flag: str = ""


@dataclass(frozen=True)
class NextPlanned(Event):
    """What the next step will do and why; sent once per change of plan, while no step runs."""

    step: int
    operation: Operation
    parent_id: int | None
    source: PlanSource


@dataclass(frozen=True)
class QueuedStep:
    operation: Operation
    parent_id: int | None


@dataclass(frozen=True)
class QueueChanged(Event):
    """What the user has queued and no step has taken yet: steps in order, and hints for the next prompt."""

    steps: tuple[QueuedStep, ...]
    hints: tuple[str, ...]


@dataclass(frozen=True)
class NodeStarted(Event):
    node_id: int
    parent_id: int | None
    operation: Operation
    step: int
    hint: str | None = None


@dataclass(frozen=True)
class PhaseChanged(Event):
    node_id: int | None
    phase: Phase
    detail: str = ""


@dataclass(frozen=True)
class LlmDelta(Event):
    """A piece of the coding reply as it streams in."""

    node_id: int
    text: str


@dataclass(frozen=True)
class CodeReady(Event):
    node_id: int
    plan: str
    code: str
    usage: Usage = field(default_factory=Usage)  # what the node has spent so far: the front ends show it accruing


@dataclass(frozen=True)
class OutputLine(Event):
    node_id: int
    stream: Literal["stdout", "stderr"]
    line: str


@dataclass(frozen=True)
class NodeFinished(Event):
    """A node is durable: in the journal and committed on its own branch."""

    node: Node
    best_id: int | None  # the run's best node once this one counts
    commit: str | None  # sha of the node's git commit (None: git failed; the next resume commits it)
    branch: str | None  # e.g. aide/<run>/0003-improve
    run: str
    direction: Direction | None  # the run's metric direction when the node was committed

    def to_json(self) -> dict[str, Any]:
        """The node as its node.json has it (plus code and output): run, branch, direction inside."""
        node = self.node.to_dict()
        node.update(direction=self.direction, run=self.run, branch=self.branch, status_word=status_word(self.node))
        return {"event": "NodeFinished", "node": node, "best_id": self.best_id, "commit": self.commit}


@dataclass(frozen=True)
class UsageUpdated(Event):
    total: Usage
    budget: float | None


@dataclass(frozen=True)
class RunStateChanged(Event):
    state: RunState
    reason: str = ""


@dataclass(frozen=True)
class CommandAccepted(Event):
    command: str
    detail: str = ""


@dataclass(frozen=True)
class CommandRejected(Event):
    command: str
    reason: str


@dataclass(frozen=True)
class Notice(Event):
    """Something the user should read once (e.g. 'offline coder in use')."""

    message: str
    level: Literal["info", "warning"] = "info"


@dataclass(frozen=True)
class RunError(Event):
    kind: Literal["auth", "budget", "llm", "fatal", "config", "refused"]
    message: str


@dataclass(frozen=True)
class RunFinished(Event):
    reason: FinishReason
    nodes: int
    best_id: int | None = None
    best_metric: float | None = None
    best_branch: str | None = None
    best_holdout: float | None = None  # the pick's holdout score; the pick is by holdout where nodes have one


# ------------------------------------------------------------------- commands


@dataclass(frozen=True)
class Command:
    @property
    def name(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class DraftNext(Command):
    pass


@dataclass(frozen=True)
class ImproveNode(Command):
    node_id: int


@dataclass(frozen=True)
class DebugNode(Command):
    node_id: int


@dataclass(frozen=True)
class MergeNodes(Command):
    """Combine the best ideas of two working nodes into one script (a node with two parents)."""

    node_id: int  # the tree parent: the merged script builds on it
    other_id: int


@dataclass(frozen=True)
class AddHint(Command):
    text: str


@dataclass(frozen=True)
class RunCode(Command):
    """Run user-edited code as a new child of `parent_id`."""

    parent_id: int | None
    code: str
    plan: str = "Edited by hand."


@dataclass(frozen=True)
class Pause(Command):
    pass


@dataclass(frozen=True)
class Resume(Command):
    pass


@dataclass(frozen=True)
class StopAfterStep(Command):
    pass


@dataclass(frozen=True)
class ConfirmTaskCard(Command):
    """The task card the user confirmed (maybe corrected) when TaskCardReady asked for it."""

    card: TaskCard


@dataclass(frozen=True)
class CancelNow(Command):
    """Stop at once: kill the running script, leave the journal resumable."""

    pass


# Every event type: README's table of the --json stream documents each (tests/test_events.py checks it).
ALL_EVENTS = [c for c in list(globals().values()) if isinstance(c, type) and issubclass(c, Event) and c is not Event]
