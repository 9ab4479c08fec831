"""Recall: the past attempts most like the one about to be made, from this line and the others.

The memory lists the focus node's own children and the best solutions, but the lesson that
matters is often elsewhere: "target encoding was tried on another line and made it worse".  This
ranks every earlier change (improve, merge or debug: a node with a parent) by how many of its
plan's words it shares with the plan of the node the step builds on (and the user's hint), and
says for each which line it was on and how the metric moved.  Word overlap (Jaccard over content
words) is cheap enough to rank a thousand nodes per step in a few milliseconds and needs nothing
but the plans.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .node import Node

_WORD = re.compile(r"[a-z][a-z0-9_]{2,}")
_STOP = frozenset(
    "the and for with from this that into then than its are was were has have not but use using node "
    "model script metric validation improve change changes one more less which when will would also".split()
)


def words(text: str) -> frozenset[str]:
    return frozenset(w for w in _WORD.findall(text.lower()) if w not in _STOP)


def root_of(node: Node, by_id: dict[int, Node], memo: dict[int, int]) -> int:
    path, cur = [], node
    while cur.id not in memo and cur.parent_id is not None and cur.parent_id in by_id:
        path.append(cur.id)
        cur = by_id[cur.parent_id]
    root = memo.get(cur.id, cur.id)
    for node_id in [*path, cur.id]:
        memo[node_id] = root
    return root


def most_similar(nodes: list[Node], query: str, exclude: set[int], limit: int) -> list[tuple[float, Node]]:
    """Up to `limit` attempts whose plans share the most words with `query`, most similar first."""
    wanted = words(query)
    if not wanted:
        return []
    scored = []
    for node in nodes:
        if node.parent_id is None or node.id in exclude or not node.plan:
            continue
        have = words(node.plan[:600])
        shared = len(wanted & have)
        if shared:
            scored.append((shared / len(wanted | have), node))
    scored.sort(key=lambda item: (-item[0], -item[1].id))
    return scored[:limit]


def recall_lines(
    nodes: list[Node],
    by_id: dict[int, Node],
    focus: Node,
    query: str,
    exclude: set[int],
    describe: Callable[[Node, Node], str],
    limit: int = 8,
) -> list[str]:
    """'- node 12 (improve of node 7, another line: draft 3): metric ... ; tried: ...' for the most similar."""
    memo: dict[int, int] = {}
    home = root_of(focus, by_id, memo)
    out = []
    for _, node in most_similar(nodes, query, exclude, limit):
        parent = by_id.get(node.parent_id) if node.parent_id is not None else None
        if parent is None:
            continue
        root = root_of(node, by_id, memo)
        where = "this line" if root == home else f"another line: draft {root}"
        out.append(f"- node {node.id} ({node.operation} of node {parent.id}, {where}): {describe(parent, node)}")
    return out
