"""The search policy: which node to expand next, and how (the paper's first part).

`AidePolicy` is AIDE's rule.  The engine asks `choose()` once per step unless a
queued user command overrides it; other policies (UCT, evolutionary) implement
the same `Policy` interface.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal, Protocol

from .tree import SearchTree


@dataclass(frozen=True)
class Decision:
    operation: Literal["draft", "improve", "debug"]
    parent_id: int | None
    reason: str


class Policy(Protocol):
    def choose(self, tree: SearchTree, step: int) -> Decision: ...


class AidePolicy:
    """AIDE's rule, in order:

    1. draft until `num_drafts` drafts exist;
    2. with probability `debug_prob`, debug a buggy leaf whose debug depth is
       below `max_debug_depth` (chosen at random among them);
    3. draft if no node works yet;
    4. otherwise improve the best node.

    The random draws come from a generator seeded by (seed, step), so a resumed
    run makes the same choices an uninterrupted one would have made.
    """

    def __init__(self, num_drafts: int, debug_prob: float, max_debug_depth: int, seed: int = 0):
        self.num_drafts = num_drafts
        self.debug_prob = debug_prob
        self.max_debug_depth = max_debug_depth
        self.seed = seed

    def choose(self, tree: SearchTree, step: int) -> Decision:
        rng = random.Random(f"{self.seed}:{step}")
        if tree.draft_count < self.num_drafts:
            return Decision("draft", None, f"drafting ({tree.draft_count + 1} of {self.num_drafts})")
        if rng.random() < self.debug_prob:
            candidates = tree.debuggable_leaves(self.max_debug_depth)
            if candidates:
                target = rng.choice(candidates)
                return Decision("debug", target.id, f"debugging buggy leaf #{target.id}")
        best = tree.best
        if best is None:
            return Decision("draft", None, "no working node yet")
        return Decision("improve", best.id, f"improving the best node #{best.id}")
