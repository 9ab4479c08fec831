"""A node of the solution tree and its direction-aware metric.

Nodes are plain data so that the journal can store them as JSON lines and a
resumed run rebuilds exactly the same tree.  Only finished nodes exist as
`Node` objects; the node being built lives in the engine until it is durable.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Operation = Literal["draft", "improve", "debug", "merge", "manual"]
# ok: ran and produced a valid metric.  buggy: crashed, no metric, or the review
# found a bug.  timeout / memory: killed by a limit (also counted as buggy).
Status = Literal["ok", "buggy", "timeout", "memory", "cancelled"]
Direction = Literal["maximize", "minimize"]


def is_valid_metric(value: Any) -> bool:
    """A metric must be a finite real number; bools are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value)


@dataclass
class Usage:
    """Token counts and dollars for one or more LLM calls."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost: float = 0.0
    calls: int = 0
    thinking_tokens: int = 0  # of output_tokens, those the model spent thinking (already in output_tokens)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.cost + other.cost,
            self.calls + other.calls,
            self.thinking_tokens + other.thinking_tokens,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Usage:
        return cls(**(data or {}))


@dataclass
class ExecInfo:
    """What running the script produced, as recorded on the node."""

    exit_code: int | None = None
    exc_type: str | None = None
    traceback: str | None = None
    wall_time: float = 0.0
    peak_memory_mb: float = 0.0
    killed_reason: str | None = None  # "timeout", "memory limit exceeded: N MiB", "cancelled"
    output_truncated_bytes: int = 0
    outputs: list[str] = field(default_factory=list)  # files the script wrote (relative paths)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ExecInfo:
        return cls(**(data or {}))


@dataclass
class Node:
    id: int
    parent_id: int | None
    operation: Operation
    step: int  # position in the run's order of creation (== id for now)
    plan: str = ""
    code: str = ""
    status: Status = "buggy"
    metric: float | None = None
    review_summary: str = ""
    output: str = ""  # captured stdout+stderr, capped (head + tail)
    exec: ExecInfo = field(default_factory=ExecInfo)
    usage: Usage = field(default_factory=Usage)
    debug_depth: int = 0  # consecutive debug steps leading to this node
    hint: str | None = None  # the user's hint that went into this node's prompt
    skipped_files: list[str] = field(default_factory=list)  # files it wrote whose names git cannot hold
    created_at: float = 0.0
    finished_at: float = 0.0
    holdout_metric: float | None = None  # the card's metric on the hidden holdout (evaluation/holdout.py)
    holdout_note: str = ""  # why a holdout re-run gave no score
    validation_folds: list[int] | None = None  # the run folds its metric averaged (its `Validation folds:` line)
    reused_from: int | None = None  # same code as this earlier node: its result was reused, not run again
    holdout_spread: float | None = None  # the holdout score's bootstrap standard deviation
    holdout_flag: str = ""  # why validation and holdout disagree beyond chance (evaluation/holdout_policy.py)
    # Why the coder gave no code: 'refused (cyber)', 'cut off (thinking)', 'cut off (length)', 'no code'.
    coder_outcome: str = ""
    parent_ids: list[int] = field(default_factory=list)  # all parents, the tree parent first (a merge has two)

    def __post_init__(self) -> None:
        """`parent_id` stays the tree parent every view draws; `parent_ids` adds a merge's second parent.
        Journals written before merges have only `parent_id`: it becomes the one-element list."""
        if not self.parent_ids and self.parent_id is not None:
            self.parent_ids = [self.parent_id]
        elif self.parent_ids:
            self.parent_id = self.parent_ids[0]

    @property
    def is_buggy(self) -> bool:
        return self.status != "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Node:
        data = dict(data)
        data["exec"] = ExecInfo.from_dict(data.get("exec"))
        data["usage"] = Usage.from_dict(data.get("usage"))
        return cls(**data)


def status_word(node: Node) -> str:
    """What a user reads for a node's outcome, the same in the TUI, headless and node.json:
    'ok', 'refused (cyber)', 'cut off (thinking)', 'cut off (length)', 'no code',
    'buggy (KeyError)', 'buggy (timed out)', 'buggy (out of memory)', 'cancelled', 'buggy'."""
    if node.status == "ok":
        return "ok"
    if node.coder_outcome:
        return node.coder_outcome
    if not node.code.strip() and node.status == "buggy" and node.operation != "manual":
        return "no code"
    if node.status == "timeout":
        return "buggy (timed out)"
    if node.status == "memory":
        return "buggy (out of memory)"
    if node.status == "cancelled":
        return "cancelled"
    return f"buggy ({node.exec.exc_type})" if node.exec.exc_type else "buggy"


def has_code(node: Node) -> bool:
    """A node with a script to read, run or fix (a refused or cut-off reply leaves none)."""
    return bool(node.code.strip())


def better(a: float, b: float, direction: Direction) -> bool:
    """True when metric `a` is strictly better than `b` under `direction`."""
    return a > b if direction == "maximize" else a < b
