"""The operation table: what each kind of step is, in one place.

The parts that used to ask "is this an improve?" read a row here instead: the engine (which
coder method writes it, how many parents it takes), control (which command queues it, what its
target must be), the run state and the app (the words and the key for it).  A new operation
(e.g. merge: two parents, its own prompt and coder method) is a new row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .node import Operation

# What the parent must be for a command to queue the step: any finished node, a working one, a buggy one.
ParentKind = Literal["any", "working", "buggy"]


@dataclass(frozen=True)
class OperationSpec:
    name: Operation
    parents: int  # finished nodes the coder builds on (manual: the user's code hangs under 0 or 1)
    prompt: str | None  # the prompt template (prompts/<name>.md); None: no model call
    coder_method: str | None  # the Coder method that writes it; None: the user brings the code
    command: str  # the command (events.Command.name) that queues it
    action: str  # the app's action (and key binding id) that sends the command
    parent_kind: ParentKind  # what the parent must be for the command to be accepted
    instead: Operation | None = None  # what to do to a parent of the wrong kind

    def step_text(self, parent_id: int | None, other_id: int | None = None) -> str:
        """`improve #4`, `draft`, `merge #4 + #7`, `your code under #2`: a planned or queued step in a few words."""
        if other_id is not None:
            return f"{self.name} #{parent_id} + #{other_id}"
        if self.coder_method is None:
            return f"your code under #{parent_id}" if parent_id is not None else "your code (new root)"
        return f"{self.name} #{parent_id}" if parent_id is not None else self.name


OPERATIONS: dict[str, OperationSpec] = {
    spec.name: spec
    for spec in (
        OperationSpec("draft", 0, "draft", "draft", "DraftNext", "draft", "any"),
        OperationSpec("improve", 1, "improve", "improve", "ImproveNode", "improve", "working", instead="debug"),
        OperationSpec("debug", 1, "debug", "debug", "DebugNode", "debug", "buggy", instead="improve"),
        OperationSpec("merge", 2, "merge", "merge", "MergeNodes", "merge", "working", instead="debug"),
        OperationSpec("manual", 1, None, None, "RunCode", "edit", "any"),
    )
}
BY_COMMAND: dict[str, OperationSpec] = {spec.command: spec for spec in OPERATIONS.values()}
BY_ACTION: dict[str, OperationSpec] = {spec.action: spec for spec in OPERATIONS.values()}
