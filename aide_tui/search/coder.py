"""The interface every coder implements: the LLM coder and the offline one.

A coder is the paper's coding operator (draft / improve / debug) plus the
review that reads a run's output.  The engine only sees this interface, so
the offline baseline and Claude are interchangeable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from .node import Direction, Node, Usage
from .task_card import TaskCard

DeltaSink = Callable[[str], None]  # receives streamed reply text as it arrives


@dataclass
class TaskContext:
    """Everything a prompt may draw on, rebuilt once per step."""

    task: str  # task.md, verbatim
    data_preview: str  # compact description of the data files
    memory: str  # summary of what has been tried (bounded)
    direction: Direction | None = None  # fixed once known
    hint: str | None = None  # the user's hint for this step
    timeout: float = 600.0  # seconds the script may run (the prompt says so)
    network: bool = False  # whether the script can reach the network (the prompt says so)
    cpus: int = 1  # cores the script may use; its thread variables are set to it
    memory_mb: int = 0  # memory cap of the script's whole process tree (0: not stated)
    gpus: float = 0.0  # GPUs the script may use
    packages: str = ""  # the solution interpreter's ML packages with versions ('' if unknown)
    siblings: list[str] = field(default_factory=list)  # plans of other nodes improving the same parent right now
    folds_file: str = ""  # ./input/folds.csv when the run fixes the folds every script scores on (evaluation/)
    folds_train: str = ""  # the training file those folds number the rows of
    card: TaskCard | None = None  # the run's task card, once settled (the prompts state it)


@dataclass
class Proposal:
    plan: str
    code: str
    usage: Usage = field(default_factory=Usage)
    note: str = ""  # how the code came about when it matters (a patch that did not apply); the node's summary says it


@dataclass
class Review:
    is_bug: bool
    metric: float | None
    summary: str
    direction: Direction | None = None  # which way the metric improves
    usage: Usage = field(default_factory=Usage)


class CoderError(Exception):
    """The coder could not produce usable code; the node is recorded as failed.

    `outcome` is the status word the node shows: 'refused (cyber)', 'cut off (thinking)',
    'cut off (length)', 'no code'.
    """

    def __init__(self, message: str, usage: Usage | None = None, outcome: str = "no code"):
        super().__init__(message)
        self.usage = usage or Usage()
        self.outcome = outcome or "no code"


class Coder(Protocol):
    name: str  # "llm" or "offline"

    def draft(self, ctx: TaskContext, on_delta: DeltaSink) -> Proposal: ...

    def improve(self, ctx: TaskContext, parent: Node, on_delta: DeltaSink) -> Proposal: ...

    def debug(self, ctx: TaskContext, parent: Node, on_delta: DeltaSink) -> Proposal: ...

    def merge(self, ctx: TaskContext, parent: Node, other: Node, on_delta: DeltaSink) -> Proposal:
        """One script combining the best ideas of two working nodes; `parent` is the one it builds on."""
        ...

    def review(self, ctx: TaskContext, node: Node) -> Review:
        """`node` carries code, output and exec info; status/metric are not final yet."""
        ...
