"""The solution tree as the policy sees it, kept up to date incrementally.

Everything the policy asks (how many drafts, which buggy leaves can still be
debugged, which node is best) is answered without scanning the whole tree, so
the engine's per-step overhead stays flat as the tree grows to thousands of nodes.
"""

from __future__ import annotations

from .node import Direction, Node, better, has_code


class SearchTree:
    def __init__(self, direction: Direction | None = None):
        self.nodes: dict[int, Node] = {}
        self.children: dict[int, list[int]] = {}
        self.direction: Direction | None = direction
        self.best_id: int | None = None
        self.draft_count = 0
        self._buggy_leaves: set[int] = set()
        self._reserved_id = 0  # ids taken elsewhere (a git branch of a node the journal lost)

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, node_id: int) -> bool:
        return node_id in self.nodes

    def get(self, node_id: int) -> Node:
        return self.nodes[node_id]

    @property
    def best(self) -> Node | None:
        return self.nodes[self.best_id] if self.best_id is not None else None

    @property
    def next_id(self) -> int:
        return max(max(self.nodes, default=0), self._reserved_id) + 1

    def reserve_id(self, node_id: int) -> None:
        """Never hand out `node_id` (or a lower id) to a new node."""
        self._reserved_id = max(self._reserved_id, node_id)

    def add(self, node: Node) -> None:
        self.nodes[node.id] = node
        self.children.setdefault(node.id, [])
        if node.parent_id is not None:
            self.children.setdefault(node.parent_id, []).append(node.id)
            self._buggy_leaves.discard(node.parent_id)  # no longer a leaf
        if node.operation == "draft":
            self.draft_count += 1
        if node.is_buggy and has_code(node):  # a node without code (refused, cut off) has nothing to fix
            self._buggy_leaves.add(node.id)
        else:
            self._consider_best(node)

    def set_direction(self, direction: Direction) -> None:
        """Fix the run's metric direction (once) and re-rank what is already there."""
        if self.direction is not None:
            return
        self.direction = direction
        self.best_id = None
        for node in self.nodes.values():
            if not node.is_buggy:
                self._consider_best(node)

    def _consider_best(self, node: Node) -> None:
        if node.metric is None:
            return
        best = self.best
        if best is None or best.metric is None or better(node.metric, best.metric, self.direction or "maximize"):
            self.best_id = node.id

    def debuggable_leaves(self, max_debug_depth: int) -> list[Node]:
        """Buggy leaves whose line of fixes has not yet hit the depth limit, oldest first."""
        return sorted(
            (self.nodes[i] for i in self._buggy_leaves if self.nodes[i].debug_depth < max_debug_depth),
            key=lambda n: n.id,
        )

    def lineage(self, node_id: int) -> list[int]:
        out: list[int] = []
        cur: int | None = node_id
        while cur is not None:
            out.append(cur)
            cur = self.nodes[cur].parent_id
        return out[::-1]
