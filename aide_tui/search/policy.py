"""The search policy: which node to expand next, and how (the paper's first part).

`AidePolicy` is AIDE's rule.  The engine asks `choose()` once per step unless a
queued user command overrides it; other policies (UCT, evolutionary) implement
the same `Policy` interface.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from .tree import SearchTree


@dataclass(frozen=True)
class Decision:
    operation: Literal["draft", "improve", "debug"]
    parent_id: int | None
    reason: str


class Policy(Protocol):
    def choose(self, tree: SearchTree, step: int, in_flight: Sequence[Decision] = ()) -> Decision:
        """`in_flight`: what the nodes started but not yet finished are doing."""
        ...


class AidePolicy:
    """AIDE's rule, in order:

    1. draft until `num_drafts` drafts exist;
    2. with probability `debug_prob`, debug a buggy leaf whose debug depth is
       below `max_debug_depth` (chosen at random among them);
    3. draft if no node works yet;
    4. otherwise improve the best node.

    With several nodes in flight, a draft in flight counts toward
    `num_drafts`, and a buggy leaf that a node in flight is already debugging
    is not picked again; the best node may be improved by several nodes at
    once (their prompts list each other's plans so the attempts differ).

    The random draws come from a generator seeded by (seed, step), so a resumed
    run makes the same choices an uninterrupted one would have made.
    """

    def __init__(self, num_drafts: int, debug_prob: float, max_debug_depth: int, seed: int = 0):
        self.num_drafts = num_drafts
        self.debug_prob = debug_prob
        self.max_debug_depth = max_debug_depth
        self.seed = seed

    def choose(self, tree: SearchTree, step: int, in_flight: Sequence[Decision] = ()) -> Decision:
        rng = random.Random(f"{self.seed}:{step}")
        drafts = tree.draft_count + sum(1 for d in in_flight if d.operation == "draft")
        if drafts < self.num_drafts:
            return Decision("draft", None, f"drafting ({drafts + 1} of {self.num_drafts})")
        if rng.random() < self.debug_prob:
            taken = {d.parent_id for d in in_flight}  # a leaf with a child on the way is no longer a leaf
            candidates = [n for n in tree.debuggable_leaves(self.max_debug_depth) if n.id not in taken]
            if candidates:
                target = rng.choice(candidates)
                return Decision("debug", target.id, f"debugging buggy leaf #{target.id}")
        best = tree.best
        if best is None:
            return Decision("draft", None, "no working node yet")
        return Decision("improve", best.id, f"improving the best node #{best.id}")
