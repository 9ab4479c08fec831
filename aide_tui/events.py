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

from .search.node import Node, Usage

# --------------------------------------------------------------------- events

RunState = Literal["starting", "running", "paused", "stopping", "finished", "failed"]
Phase = Literal["idle", "planning", "llm", "executing", "reviewing", "committing", "paused"]


def _plain(value: Any) -> Any:
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
            value = getattr(self, f.name)
            out[f.name] = _plain(value)
        return out

    def to_json_line(self) -> str:
        return json.dumps(self.to_json(), default=str)


@dataclass(frozen=True)
class RunStarted(Event):
    run: str
    project: str
    resumed: bool
    steps: int  # total node count the run aims for
    nodes: tuple[Node, ...] = ()  # finished nodes replayed from the journal
    direction: str | None = None
    coder: str = "llm"  # "llm" or "offline"


@dataclass(frozen=True)
class NextPlanned(Event):
    """What the step about to start will do and why (policy or a command)."""

    step: int
    operation: str
    parent_id: int | None
    source: str  # "policy" or "command"


@dataclass(frozen=True)
class NodeStarted(Event):
    node_id: int
    parent_id: int | None
    operation: str
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


@dataclass(frozen=True)
class OutputLine(Event):
    node_id: int
    stream: Literal["stdout", "stderr"]
    line: str


@dataclass(frozen=True)
class NodeFinished(Event):
    node: Node
    best_id: int | None
    commit: str | None = None  # sha of the node's git commit
    ref: str | None = None  # e.g. refs/heads/aide/<run>/0003-improve


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
    kind: Literal["auth", "budget", "llm", "fatal", "config"]
    message: str


@dataclass(frozen=True)
class RunFinished(Event):
    reason: str  # "completed", "stopped", "budget", "error", "cancelled"
    best_id: int | None
    nodes: int


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
class CancelNow(Command):
    """Stop at once: kill the running script, leave the journal resumable."""

    pass


ALL_EVENTS = [c for c in list(globals().values()) if isinstance(c, type) and issubclass(c, Event) and c is not Event]
