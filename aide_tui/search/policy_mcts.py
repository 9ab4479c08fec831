"""`mcts`: choose what to expand by upper confidence bounds over the tree (UCT).

After AIDE's drafting and debugging steps (the same as `aide`), it walks down from a virtual root:
at each node the options are "improve this node" and "go into one of its subtrees"; at the root,
"write a new draft" and "go into a line".  Each option scores

    value + c * sqrt(ln(visits of the node) / visits of the option)

where value is the mean over the option's subtree of the metric rank-scaled to [0, 1] among the
working nodes (so the scale of the metric does not matter; failures count 0), and visits count its
nodes, finished or in flight.  "Improve this node" is valued at the node's own rank.  The exploration constant shrinks with the budget left, `c = c0 * (1 - step / steps)`
(never below `C_FLOOR * c0`): early steps explore other lines and drafts, the last ones exploit
the best.  The statistics are recomputed from the tree, so the policy is pure and a resumed run
needs nothing replayed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from .lines import works
from .node import Node
from .policy import AidePolicy, Decision
from .tree import SearchTree

DEFAULT_C = 0.7
C_FLOOR = 0.1  # the share of c0 left for the last steps


class MctsPolicy:
    def __init__(
        self,
        num_drafts: int,
        debug_prob: float,
        max_debug_depth: int,
        steps: int,
        seed: int = 0,
        c: float = DEFAULT_C,
    ):
        self._aide = AidePolicy(num_drafts, debug_prob, max_debug_depth, seed)
        self.seed = seed
        self.steps = max(1, steps)
        self.c = c

    def exploration(self, step: int) -> float:
        return self.c * max(C_FLOOR, 1.0 - step / self.steps)

    def choose(self, tree: SearchTree, step: int, in_flight: Sequence[Decision] = ()) -> Decision:
        rng = random.Random(f"{self.seed}:{step}")
        early = self._aide.draft_or_debug(tree, rng, in_flight)
        if early is not None:
            return early
        ranks = _ranks(tree)
        value, visits = _statistics(tree, ranks, in_flight)
        c = self.exploration(step)
        roots = [n for n in sorted(tree.nodes) if tree.nodes[n].parent_id is None and value[n] > 0]
        drafting = 1 + sum(1 for n in tree.nodes.values() if n.parent_id is None)
        drafting += sum(1 for d in in_flight if d.operation == "draft")
        total = sum(visits[r] for r in roots) + drafting
        new_draft = 0.5  # a fresh draft is worth an average line until it has been tried
        options = [(_uct(new_draft, drafting, total, c), -1)] + [
            (_uct(value[r], visits[r], total, c), r) for r in roots
        ]
        score, pick = max(options, key=lambda o: (o[0], -o[1]))
        if pick == -1:
            return Decision("draft", None, f"UCT: a new draft scores highest ({score:.2f}, c={c:.2f})")
        node_id = pick
        while True:
            node = tree.nodes[node_id]
            kids = [k for k in tree.children.get(node_id, []) if value[k] > 0]
            n_total = visits[node_id]
            own = sum(1 for d in in_flight if d.parent_id == node_id and d.operation in ("improve", "merge"))
            here_visits = 1 + len(tree.children.get(node_id, [])) + own
            options = [(_uct(value[k], visits[k], n_total, c), k) for k in kids]
            if works(node):
                options.append((_uct(ranks[node_id], here_visits, n_total, c), -1))
            score, pick = max(options, key=lambda o: (o[0], -o[1]))
            if pick == -1:
                return Decision("improve", node_id, f"UCT: improving #{node_id} ({score:.2f}, c={c:.2f})")
            node_id = pick

    def observe(self, node: Node) -> None:
        """The statistics are recomputed from the tree at each choice."""


def _uct(value: float, visits: int, parent_visits: int, c: float) -> float:
    return value + c * math.sqrt(math.log(max(parent_visits, 2)) / max(visits, 1))


def _ranks(tree: SearchTree) -> dict[int, float]:
    """Working nodes' metrics rank-scaled to (0, 1], 1 for the best."""
    ok = [n for n in tree.nodes.values() if works(n)]
    sign = 1.0 if (tree.direction or "maximize") == "maximize" else -1.0
    ok.sort(key=lambda n: (sign * n.metric, -n.id))  # type: ignore[operator]
    return {n.id: (i + 1) / len(ok) for i, n in enumerate(ok)}


def _statistics(
    tree: SearchTree, ranks: dict[int, float], in_flight: Sequence[Decision]
) -> tuple[dict[int, float], dict[int, int]]:
    """Per node: the mean rank over its subtree (failed nodes and nodes in flight count 0; a subtree
    where nothing works gets 0) and its size, nodes in flight included."""
    total = {n: ranks.get(n, 0.0) for n in tree.nodes}
    best = dict(total)
    visits = dict.fromkeys(tree.nodes, 1)
    for d in in_flight:
        if d.parent_id is not None and d.parent_id in visits:
            visits[d.parent_id] += 1
    for node_id in sorted(tree.nodes, reverse=True):  # children have higher ids than their parents
        parent = tree.nodes[node_id].parent_id
        if parent is not None and parent in total:
            total[parent] += total[node_id]
            best[parent] = max(best[parent], best[node_id])
            visits[parent] += visits[node_id]
    value = {n: (total[n] / visits[n] if best[n] > 0 else 0.0) for n in tree.nodes}
    return value, visits
