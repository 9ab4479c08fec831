"""Identical code is not run twice: a node whose script is byte-identical to a finished node's
of the same run (so the same inputs: the run's data, folds and holdout are fixed at its start)
takes that node's result instead of running again, and says so.

Drafts from a deterministic coder, or an LLM that answers the same prompt the same way, used to
be executed again (three byte-identical drafts, three runs): time spent for no information.
The reused node keeps its own id, plan and branch; its output, metric and files are the earlier
node's, `reused_from` names it, and its review summary starts by saying so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

from ..records import MAX_OUTPUT_FILE_BYTES, MAX_OUTPUT_TOTAL_BYTES, committable_outputs
from ..run.workspace import INPUT_DIR, collect_outputs
from ..search.node import Node


def code_digest(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def earlier_same_code(nodes: list[Node], node: Node) -> Node | None:
    """The first finished node with exactly `node`'s code (a cancelled run is no result to reuse)."""
    digest = code_digest(node.code)
    for other in sorted(nodes, key=lambda n: n.id):
        if other.id == node.id or not other.code or other.exec.killed_reason == "cancelled":
            continue
        if other.reused_from is None and code_digest(other.code) == digest:
            return other
    return None


def reuse_result(node: Node, earlier: Node, earlier_workspace: Path, workspace: Path) -> dict[str, bytes]:
    """Give `node` the earlier node's result and files; returns the files to commit."""
    if workspace.exists():
        shutil.rmtree(workspace)
    workspace.mkdir(parents=True)
    if earlier_workspace.is_dir():
        for item in earlier_workspace.iterdir():
            if item.name == INPUT_DIR or item.is_symlink():
                continue
            if item.is_dir():
                shutil.copytree(item, workspace / item.name, symlinks=True)
            else:
                shutil.copy2(item, workspace / item.name)
    (workspace / "solution.py").write_text(node.code, encoding="utf-8")
    written, _skipped = collect_outputs(workspace, MAX_OUTPUT_FILE_BYTES, MAX_OUTPUT_TOTAL_BYTES)
    outputs, node.skipped_files = committable_outputs(written)
    node.output = earlier.output
    node.exec = dataclasses.replace(earlier.exec, outputs=list(earlier.exec.outputs))
    node.status, node.metric = earlier.status, earlier.metric
    node.validation_folds = earlier.validation_folds
    node.reused_from = earlier.id
    node.review_summary = (
        f"Same script as node #{earlier.id} (sha256 {code_digest(node.code)[:12]}, same inputs): its result is "
        f"reused, not run again. {earlier.review_summary}"
    ).strip()
    return outputs
