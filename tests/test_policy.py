"""AIDE's rule, reproduced with a seeded RNG, on hand-built trees."""

from __future__ import annotations

import random

from aide_tui.search.node import Node
from aide_tui.search.policy import AidePolicy
from aide_tui.search.tree import SearchTree


def node(id, parent=None, op="draft", status="ok", metric=None, depth=0):
    return Node(
        id=id, parent_id=parent, operation=op, step=id, status=status, metric=metric, debug_depth=depth, code="x = 1\n"
    )


def tree_of(*nodes, direction="maximize"):
    t = SearchTree(direction)
    for n in nodes:
        t.add(n)
    return t


def test_drafts_until_num_drafts_exist_even_if_buggy_leaves_exist():
    policy = AidePolicy(num_drafts=3, debug_prob=1.0, max_debug_depth=3, seed=0)
    t = tree_of(node(1, status="buggy"), node(2, metric=0.5))
    d = policy.choose(t, step=3)
    assert (d.operation, d.parent_id) == ("draft", None)


def test_improves_the_best_node_respecting_direction():
    nodes = [node(1, metric=0.5), node(2, metric=0.9), node(3, metric=0.7)]
    up = AidePolicy(3, 0.0, 3).choose(tree_of(*nodes), 4)
    assert (up.operation, up.parent_id) == ("improve", 2)
    nodes = [node(1, metric=0.5), node(2, metric=0.9), node(3, metric=0.7)]
    down = AidePolicy(3, 0.0, 3).choose(tree_of(*nodes, direction="minimize"), 4)
    assert (down.operation, down.parent_id) == ("improve", 1)


def test_drafts_when_nothing_works():
    t = tree_of(node(1, status="buggy", depth=0), node(2, status="timeout"))
    d = AidePolicy(2, 0.0, 3).choose(t, 3)
    assert d.operation == "draft"


def test_debugs_only_buggy_leaves_below_the_depth_limit():
    t = tree_of(
        node(1, status="buggy"),  # has a child -> not a leaf
        node(2, parent=1, op="debug", status="buggy", depth=1),  # leaf, depth 1 -> debuggable
        node(3, metric=0.4),
        node(4, status="buggy"),
        node(5, parent=4, op="debug", status="buggy", depth=2),  # at the limit -> not debuggable
    )
    policy = AidePolicy(num_drafts=1, debug_prob=1.0, max_debug_depth=2, seed=7)
    choices = {policy.choose(t, step).parent_id for step in range(6, 40)}
    assert choices == {2}
    assert all(policy.choose(t, s).operation == "debug" for s in range(6, 20))


def test_debug_probability_matches_the_setting_and_is_reproducible():
    t = tree_of(node(1, status="buggy"), node(2, metric=0.3))
    policy = AidePolicy(num_drafts=2, debug_prob=0.3, max_debug_depth=3, seed=42)
    ops = [policy.choose(t, s).operation for s in range(3, 2003)]
    share = ops.count("debug") / len(ops)
    assert 0.25 < share < 0.35
    assert ops == [AidePolicy(2, 0.3, 3, seed=42).choose(t, s).operation for s in range(3, 2003)]
    assert ops != [AidePolicy(2, 0.3, 3, seed=43).choose(t, s).operation for s in range(3, 2003)]


def test_tree_bookkeeping_matches_a_full_scan():
    rng = random.Random(3)
    t = SearchTree("minimize")
    for i in range(1, 300):
        parent = rng.choice([None, *t.nodes]) if t.nodes else None
        status = rng.choice(["ok", "buggy", "timeout"])
        t.add(
            node(i, parent, "draft" if parent is None else "improve", status, rng.random() if status == "ok" else None)
        )
    leaves = {i for i, kids in t.children.items() if not kids and t.nodes[i].is_buggy}
    assert {n.id for n in t.debuggable_leaves(99)} == leaves
    ok = [n for n in t.nodes.values() if n.status == "ok"]
    assert t.best_id == min(ok, key=lambda n: n.metric).id
    assert t.draft_count == sum(1 for n in t.nodes.values() if n.parent_id is None)


def test_direction_set_late_reranks_the_best():
    t = SearchTree(None)
    t.add(node(1, metric=0.2))
    t.add(node(2, metric=0.8))
    t.set_direction("minimize")
    assert t.best_id == 1
    t.set_direction("maximize")  # never flips once fixed
    assert t.direction == "minimize" and t.best_id == 1
