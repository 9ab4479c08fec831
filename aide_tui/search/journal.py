"""The append-only journal of finished nodes: the truth a killed run resumes from.

One JSON object per line: a node record when a node finishes, and a start
record when a node gets its id (several may run at once; ids are never reused,
and a resumed run can say which nodes were lost in flight).  Each line is
flushed and fsynced before the engine moves on, so a crash loses at most the
nodes being built.  Only the *last* line can be torn by
a crash (the process died mid-write); it is cut off on load and `torn_tail`
says so, for the engine to tell the user.  Damage anywhere else was not made
by a crash: dropping it would silently lose the nodes after it and reuse
their ids, so `load` raises `JournalDamaged` instead, naming the line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import BinaryIO

from .node import Node


class JournalDamaged(Exception):
    """A line before the last cannot be read (or repeats a node): nothing is dropped silently."""

    def __init__(self, path: Path, line: int, reason: str):
        super().__init__(f"{path}: line {line} is damaged ({reason})")
        self.path = path
        self.line = line
        self.reason = reason


def parse_line(raw: bytes) -> Node | None:
    """The node a journal line holds; None for other records; ValueError when unreadable."""
    record = json.loads(raw)
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    if record.get("type") != "node":
        return None
    try:
        return Node.from_dict(record["node"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a node record: {exc}") from None


def holdout_line(node_id: int, metric: float | None, note: str, spread: float | None = None, flag: str = "") -> bytes:
    """A finished node's holdout score, known later than the node itself (a node record is written once)."""
    record = {"type": "holdout", "id": node_id, "metric": metric, "note": note, "spread": spread, "flag": flag}
    return json.dumps(record, separators=(",", ":")).encode("utf-8") + b"\n"


def _holdout_record(raw: bytes) -> dict | None:
    record = json.loads(raw)
    return record if isinstance(record, dict) and record.get("type") == "holdout" else None


def start_line(node_id: int) -> bytes:
    return json.dumps({"type": "start", "id": node_id}, separators=(",", ":")).encode("utf-8") + b"\n"


def started_id(raw: bytes) -> int | None:
    """The id a start record names (None for any other record)."""
    record = json.loads(raw)
    return int(record["id"]) if isinstance(record, dict) and record.get("type") == "start" else None


def node_line(node: Node) -> bytes:
    return (
        json.dumps({"type": "node", "node": node.to_dict()}, separators=(",", ":"), default=str).encode("utf-8") + b"\n"
    )


class Journal:
    def __init__(self, path: Path):
        self.path = path
        self._fh: BinaryIO | None = None
        self.torn_tail: str | None = None  # set by load() when it cut a torn last line
        self.started: set[int] = set()  # ids of nodes that started, finished or not (set by load())

    def load(self) -> list[Node]:
        """Replay the journal, cutting a torn last line; each node id appears once."""
        self.torn_tail = None
        if not self.path.exists():
            return []
        nodes: list[Node] = []
        seen: set[int] = set()
        good_bytes = 0
        with self.path.open("rb") as fh:
            lines = fh.readlines()
        for number, raw in enumerate(lines, start=1):
            last = number == len(lines)
            try:
                if not raw.endswith(b"\n"):
                    raise ValueError("no line end: the write was cut short")
                node = parse_line(raw)
            except ValueError as exc:
                if last:
                    self.torn_tail = f"{self.path}: line {number} was torn by a crash ({exc}); it was cut off"
                    break
                raise JournalDamaged(self.path, number, str(exc)) from None
            if node is None:
                start = started_id(raw)
                if start is not None:
                    self.started.add(start)
                holdout = _holdout_record(raw)
                if holdout is not None:
                    scored = next((n for n in nodes if n.id == holdout.get("id")), None)
                    if scored is not None:
                        scored.holdout_metric, scored.holdout_note = holdout.get("metric"), holdout.get("note") or ""
                        scored.holdout_spread, scored.holdout_flag = holdout.get("spread"), holdout.get("flag") or ""
            else:
                if node.id in seen:
                    raise JournalDamaged(self.path, number, f"node #{node.id} appears a second time")
                seen.add(node.id)
                nodes.append(node)
            good_bytes += len(raw)
        if good_bytes != self.path.stat().st_size:
            with self.path.open("r+b") as fh:
                fh.truncate(good_bytes)
        return nodes

    def append(self, node: Node) -> None:
        self._write(node_line(node))

    def record_holdout(self, node: Node) -> None:
        self._write(
            holdout_line(node.id, node.holdout_metric, node.holdout_note, node.holdout_spread, node.holdout_flag)
        )

    def record_start(self, node_id: int) -> None:
        """A node got its id: after a crash its id is not given again, and resume knows it was lost."""
        self._write(start_line(node_id))

    def _write(self, line: bytes) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("ab")
        self._fh.write(line)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def is_intact(self) -> bool:
        """False when the file being appended to was deleted or replaced under us."""
        if self._fh is None:
            return True
        try:
            return os.stat(self.path).st_ino == os.fstat(self._fh.fileno()).st_ino
        except OSError:
            return False

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
