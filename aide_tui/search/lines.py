"""Lines of the search: the subtree grown from one draft, and how far each has stalled.

A line is everything descending (through tree parents) from one root.  Its head is its best working
node, the one greedy search would improve.  An improve (or merge) of a node that does not beat it is
a fruitless attempt on it; an attempt still in flight counts as one too, so several workers do not
all pile onto a node that is about to stall.  These are pure functions of the tree, so the policies
built on them stay pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .node import Node, better
from .tree import SearchTree

if TYPE_CHECKING:
    from .policy import Decision

ATTEMPTS = ("improve", "merge")


def works(node: Node) -> bool:
    return node.status == "ok" and node.metric is not None


def roots(tree: SearchTree) -> dict[int, int]:
    """Each node's line (the id of its root), in one pass: a parent's id is always lower than its child's."""
    out: dict[int, int] = {}
    for node_id in sorted(tree.nodes):
        parent = tree.nodes[node_id].parent_id
        out[node_id] = out.get(parent, node_id) if parent is not None else node_id
    return out


def fruitless(tree: SearchTree, node: Node, in_flight: Sequence[Decision] = ()) -> int:
    """Attempts on `node` that did not beat it (failed ones included), plus attempts in flight."""
    direction = tree.direction or "maximize"
    done = 0
    for child_id in tree.children.get(node.id, []):
        child = tree.nodes[child_id]
        if child.operation not in ATTEMPTS:
            continue
        if not (works(child) and better(child.metric, node.metric, direction)):  # type: ignore[arg-type]
            done += 1
    return done + sum(1 for d in in_flight if d.operation in ATTEMPTS and d.parent_id == node.id)


@dataclass(frozen=True)
class Line:
    root: int
    head: Node  # its best working node


def line_heads(tree: SearchTree) -> list[Line]:
    """Each line that has a working node, best head first (ties: the older line first)."""
    direction = tree.direction or "maximize"
    heads: dict[int, Node] = {}
    line_of = roots(tree)
    for node in tree.nodes.values():
        if not works(node):
            continue
        root = line_of[node.id]
        head = heads.get(root)
        if head is None or better(node.metric, head.metric, direction):  # type: ignore[arg-type]
            heads[root] = node
    sign = -1.0 if direction == "maximize" else 1.0
    return [Line(r, h) for r, h in sorted(heads.items(), key=lambda item: (sign * item[1].metric, item[0]))]  # type: ignore[operator]


def merged_pairs(tree: SearchTree, in_flight: Sequence[Decision] = ()) -> set[frozenset[int]]:
    """Pairs of nodes already merged (or being merged), so no pair is merged twice."""
    pairs = {frozenset(n.parent_ids) for n in tree.nodes.values() if n.operation == "merge"}
    pairs |= {frozenset((d.parent_id, d.other_id)) for d in in_flight if d.operation == "merge"}  # type: ignore[arg-type]
    return pairs
