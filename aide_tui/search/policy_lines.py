"""`aide+`, the default policy: AIDE's rule, but it leaves a dead end.

Greedy AIDE improves the best node forever; on a task where improving stops paying after a few
steps it spends the rest of the run on one node.  This policy keeps AIDE's drafting and debugging
(the same steps, the same draws) and changes only what "improve the best node" means:

1. improve the head (best node) of the best line that is still open, i.e. whose head has had
   fewer than `patience` fruitless attempts: when the best line stalls, the search moves to the
   best node of another line;
2. when every line has stalled, merge the heads of the two best lines (once per pair), combining
   what works in each;
3. when no pair is left to merge, draft again: a new line.

Pure in (tree, step, nodes in flight); see `policy.py` for the contract.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .lines import fruitless, line_heads, merged_pairs
from .node import Node
from .policy import AidePolicy, Decision
from .tree import SearchTree

DEFAULT_PATIENCE = 4  # fruitless attempts on a line's head before the search leaves it (5 never happen)


class LinesPolicy:
    def __init__(
        self,
        num_drafts: int,
        debug_prob: float,
        max_debug_depth: int,
        seed: int = 0,
        patience: int = DEFAULT_PATIENCE,
        merge: bool = True,
    ):
        self._aide = AidePolicy(num_drafts, debug_prob, max_debug_depth, seed)
        self.seed = seed
        self.patience = patience
        self.merge = merge

    def choose(self, tree: SearchTree, step: int, in_flight: Sequence[Decision] = ()) -> Decision:
        rng = random.Random(f"{self.seed}:{step}")
        early = self._aide.draft_or_debug(tree, rng, in_flight)
        if early is not None:
            return early
        lines = line_heads(tree)
        stalled = [line for line in lines if fruitless(tree, line.head, in_flight) >= self.patience]
        open_lines = [line for line in lines if line not in stalled]
        if open_lines:
            head = open_lines[0].head
            if head.id == tree.best_id:
                return Decision("improve", head.id, f"improving the best node #{head.id}")
            left = ", ".join(f"#{line.head.id}" for line in stalled[:3])
            return Decision(
                "improve",
                head.id,
                f"improving #{head.id}, the best of another line ({left} stalled after {self.patience} fruitless tries)",
            )
        if self.merge and len(lines) >= 2:
            done = merged_pairs(tree, in_flight)
            for i, first in enumerate(lines):
                for second in lines[i + 1 :]:
                    if frozenset((first.head.id, second.head.id)) not in done:
                        return Decision(
                            "merge",
                            first.head.id,
                            f"every line stalled: merging #{first.head.id} with #{second.head.id}",
                            other_id=second.head.id,
                        )
        return Decision("draft", None, f"every line stalled after {self.patience} fruitless tries: a new draft")

    def observe(self, node: Node) -> None:
        """Everything this policy weighs is in the tree."""
