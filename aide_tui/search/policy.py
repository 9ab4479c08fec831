"""The search policy: which node to expand next, and how (the paper's first part).

The contract every policy keeps (the engine relies on it):

- `choose(tree, step, in_flight)` is **pure in its inputs**: the same tree, step and nodes in
  flight give the same decision.  The engine calls it under its run lock (`engine.run_lock`), and
  may call it **more than once per step** (once to announce the next step, once to start it), so it
  must not change its own state there.  Random draws come from a generator seeded by (seed, step),
  so a resumed run makes the choices an uninterrupted one would have made.
- `in_flight` lists what the nodes started but not yet finished are doing: a draft in flight counts
  toward the drafts, a buggy leaf being debugged is not a leaf any more, an improve in flight is an
  attempt on its parent.
- `observe(node)` is called once for every node the tree gains (finished nodes, and the journal's
  nodes on resume, in id order), outside `choose`: the one place a policy may learn.

Three policies implement it (`make_policy` picks one from the `policy` setting):

- `aide`: AIDE's rule exactly (`AidePolicy`);
- `aide+`: the default; the same rule but it leaves a line after `k` fruitless improves, merges the
  best two lines, or drafts again when every line stalls (`policy_lines.LinesPolicy`);
- `mcts`: upper confidence bounds over the tree with a budget-aware exploration constant
  (`policy_mcts.MctsPolicy`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from .node import Node
from .tree import SearchTree

PolicyName = Literal["aide", "aide+", "mcts"]
POLICY_NAMES: tuple[str, ...] = ("aide", "aide+", "mcts")


@dataclass(frozen=True)
class Decision:
    operation: Literal["draft", "improve", "debug", "merge"]
    parent_id: int | None
    reason: str
    other_id: int | None = None  # a merge's second parent


class Policy(Protocol):
    def choose(self, tree: SearchTree, step: int, in_flight: Sequence[Decision] = ()) -> Decision:
        """Pure in (tree, step, in_flight); called under the engine's lock, maybe twice per step."""
        ...

    def observe(self, node: Node) -> None:
        """A node joined the tree (finished, or replayed on resume)."""
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
    """

    def __init__(self, num_drafts: int, debug_prob: float, max_debug_depth: int, seed: int = 0):
        self.num_drafts = num_drafts
        self.debug_prob = debug_prob
        self.max_debug_depth = max_debug_depth
        self.seed = seed

    def choose(self, tree: SearchTree, step: int, in_flight: Sequence[Decision] = ()) -> Decision:
        rng = random.Random(f"{self.seed}:{step}")
        early = self.draft_or_debug(tree, rng, in_flight)
        if early is not None:
            return early
        best = tree.best
        assert best is not None  # draft_or_debug drafts while nothing works
        return Decision("improve", best.id, f"improving the best node #{best.id}")

    def draft_or_debug(self, tree: SearchTree, rng: random.Random, in_flight: Sequence[Decision]) -> Decision | None:
        """Steps 1-3 of the rule, which every policy here shares (one draw of `rng` when drafts are done)."""
        drafts = tree.draft_count + sum(1 for d in in_flight if d.operation == "draft")
        if drafts < self.num_drafts:
            return Decision("draft", None, f"drafting ({drafts + 1} of {self.num_drafts})")
        if rng.random() < self.debug_prob:
            taken = {d.parent_id for d in in_flight}  # a leaf with a child on the way is no longer a leaf
            candidates = [n for n in tree.debuggable_leaves(self.max_debug_depth) if n.id not in taken]
            if candidates:
                target = rng.choice(candidates)
                return Decision("debug", target.id, f"debugging buggy leaf #{target.id}")
        if tree.best is None:
            return Decision("draft", None, "no working node yet")
        return None

    def observe(self, node: Node) -> None:
        """AIDE's rule reads everything from the tree."""


def make_policy(name: str, num_drafts: int, debug_prob: float, max_debug_depth: int, seed: int, steps: int) -> Policy:
    """The policy the `policy` setting names."""
    if name == "aide":
        return AidePolicy(num_drafts, debug_prob, max_debug_depth, seed)
    if name == "mcts":
        from .policy_mcts import MctsPolicy

        return MctsPolicy(num_drafts, debug_prob, max_debug_depth, steps, seed)
    from .policy_lines import LinesPolicy

    return LinesPolicy(num_drafts, debug_prob, max_debug_depth, seed)
