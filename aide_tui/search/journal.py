"""The append-only journal of finished nodes: the truth a killed run resumes from.

One JSON object per line, flushed and fsynced before the engine moves on, so a
crash loses at most the node being built.  A torn last line (the process died
mid-write) is dropped and cut off on open.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .node import Node


class Journal:
    def __init__(self, path: Path):
        self.path = path
        self._fh = None

    def load(self) -> list[Node]:
        """Replay the journal, repairing a torn tail; each node id appears once."""
        if not self.path.exists():
            return []
        nodes: list[Node] = []
        seen: set[int] = set()
        good_bytes = 0
        with self.path.open("rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break  # torn write: the node was never durable
                try:
                    record = json.loads(raw)
                except ValueError:
                    break
                good_bytes += len(raw)
                if record.get("type") != "node":
                    continue
                node = Node.from_dict(record["node"])
                if node.id not in seen:
                    seen.add(node.id)
                    nodes.append(node)
        if good_bytes != self.path.stat().st_size:
            with self.path.open("r+b") as fh:
                fh.truncate(good_bytes)
        return nodes

    def append(self, node: Node) -> None:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("ab")
        line = json.dumps({"type": "node", "node": node.to_dict()}, separators=(",", ":"), default=str)
        self._fh.write(line.encode("utf-8") + b"\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
