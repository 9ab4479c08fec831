"""The policies beyond AIDE's rule (aide+, mcts), and AIDE's rule kept exactly, on scripted trees."""

from __future__ import annotations

import random

import pytest

from aide_tui.search.lines import fruitless
from aide_tui.search.node import Node
from aide_tui.search.policy import AidePolicy, Decision, make_policy
from aide_tui.search.policy_lines import LinesPolicy
from aide_tui.search.policy_mcts import MctsPolicy
from aide_tui.search.tree import SearchTree

# AIDE's choices for seed 1 on the random walk below, recorded from the rule as it was before the
# new policies were added: `policy = "aide"` must keep making exactly these.
AIDE_SEED_1 = [
    ("draft", None), ("draft", None), ("draft", None), ("improve", 1), ("improve", 4), ("improve", 4),
    ("improve", 6), ("improve", 7), ("improve", 7), ("improve", 7), ("debug", 2), ("debug", 3),
    ("improve", 7), ("improve", 7), ("improve", 7), ("improve", 7), ("improve", 7), ("debug", 16),
    ("improve", 7), ("improve", 7), ("improve", 7), ("improve", 7), ("improve", 7), ("improve", 7),
    ("debug", 22), ("improve", 7), ("improve", 7), ("improve", 7), ("improve", 7), ("improve", 7),
    ("improve", 7), ("debug", 30), ("improve", 7), ("improve", 7), ("improve", 7), ("improve", 7),
    ("improve", 7), ("improve", 7), ("improve", 7), ("improve", 7),
]  # fmt: skip


def random_walk(policy, seed: int) -> list[tuple[str, int | None]]:
    rng = random.Random(100 + seed)
    tree = SearchTree("maximize")
    out: list[tuple[str, int | None]] = []
    for step in range(1, 41):
        in_flight = (Decision("improve", tree.best_id, "x"),) if step % 7 == 0 and tree.best_id else ()
        d = policy.choose(tree, step, in_flight)
        out.append((d.operation, d.parent_id))
        status = "ok" if rng.random() < 0.7 else "buggy"
        depth = tree.get(d.parent_id).debug_depth + 1 if d.operation == "debug" else 0
        metric = rng.random() if status == "ok" else None
        node = Node(
            step, d.parent_id, d.operation, step, code="pass\n", status=status, metric=metric, debug_depth=depth
        )  # type: ignore[arg-type]
        tree.add(node)
    return out


def test_aide_policy_makes_the_same_choices_as_before_for_the_same_seed():
    policy = make_policy("aide", num_drafts=3, debug_prob=0.4, max_debug_depth=2, seed=1, steps=40)
    assert isinstance(policy, AidePolicy)
    assert random_walk(policy, 1) == AIDE_SEED_1


# ---------------------------------------------------------------- the stand-in task

GAIN = 0.02
PAYING_STEPS = 3  # improving a line pays for three steps, then never again


def improves_in_a_row(tree: SearchTree, node: Node) -> int:
    n, cur = 0, node
    while cur.operation == "improve" and cur.parent_id is not None:
        n, cur = n + 1, tree.get(cur.parent_id)
    return n


def play(policy, steps: int = 20, num_drafts: int = 5) -> SearchTree:
    """Drafts score 0.60, 0.64, 0.62, 0.58, 0.66...; an improve gains 0.02 for its line's first three
    improves and loses 0.001 after; a merge scores 0.01 above the better parent."""
    tree = SearchTree("maximize")
    for step in range(1, steps + 1):
        d = policy.choose(tree, step)
        assert policy.choose(tree, step) == d  # pure: asked twice, the same answer
        if d.operation == "draft":
            metric = [0.60, 0.64, 0.62, 0.58, 0.66, 0.55, 0.57][tree.draft_count % 7]
            parents: list[int] = []
        elif d.operation == "improve":
            parent = tree.get(d.parent_id)
            paying = improves_in_a_row(tree, parent) < PAYING_STEPS
            metric = parent.metric + (GAIN if paying else -0.001)
            parents = [parent.id]
        else:
            assert d.operation == "merge" and d.other_id is not None
            metric = max(tree.get(d.parent_id).metric, tree.get(d.other_id).metric) + 0.01
            parents = [d.parent_id, d.other_id]
        node = Node(step, parents[0] if parents else None, d.operation, step, status="ok", metric=metric)
        node.parent_ids = parents
        tree.add(node)
        policy.observe(node)
    return tree


def fruitless_improves(tree: SearchTree) -> dict[int, int]:
    return {n.id: fruitless(tree, n) for n in tree.nodes.values()}


def test_greedy_aide_improves_one_node_over_and_over_on_the_stand_in_task():
    tree = play(AidePolicy(5, 0.0, 3))
    assert max(fruitless_improves(tree).values()) >= 5  # the dead end the default policy avoids


def test_default_policy_leaves_a_dead_end_and_still_finds_what_greedy_finds():
    greedy = play(AidePolicy(5, 0.0, 3))
    default = play(make_policy("aide+", 5, 0.0, 3, seed=0, steps=20))
    assert max(fruitless_improves(default).values()) < 5
    assert default.best.metric >= greedy.best.metric  # type: ignore[union-attr]
    lines_improved = {n.parent_id for n in default.nodes.values() if n.operation == "improve"}
    assert len({_root(default, i) for i in lines_improved}) >= 2  # it went back to another line


def _root(tree: SearchTree, node_id: int) -> int:
    return tree.lineage(node_id)[0]


def test_default_policy_merges_two_stalled_lines_once_then_drafts_again():
    tree = SearchTree("maximize")
    for i, m in ((1, 0.6), (2, 0.7)):
        tree.add(Node(i, None, "draft", i, status="ok", metric=m))
    next_id = 3
    for parent in (1, 2):  # three fruitless improves on each line's head
        for _ in range(3):
            tree.add(Node(next_id, parent, "improve", next_id, status="buggy"))
            next_id += 1
    policy = LinesPolicy(2, 0.0, 3, patience=3)
    d = policy.choose(tree, next_id)
    assert (d.operation, d.parent_id, d.other_id) == ("merge", 2, 1)
    assert policy.choose(tree, next_id, (d,)).operation == "draft"  # the pair is being merged already
    merged = Node(next_id, 2, "merge", next_id, status="ok", metric=0.65, parent_ids=[2, 1])
    tree.add(merged)
    assert policy.choose(tree, next_id + 1).operation == "draft"


def test_default_policy_counts_improves_in_flight_as_attempts():
    tree = SearchTree("maximize")
    tree.add(Node(1, None, "draft", 1, status="ok", metric=0.5))
    tree.add(Node(2, None, "draft", 2, status="ok", metric=0.4))
    policy = LinesPolicy(2, 0.0, 3, patience=2)
    busy = (Decision("improve", 1, "in flight"), Decision("improve", 1, "in flight"))
    assert policy.choose(tree, 3).parent_id == 1
    assert policy.choose(tree, 5, busy).parent_id == 2  # #1 has its two attempts under way


def test_mcts_explores_early_and_exploits_the_best_line_late():
    tree = SearchTree("maximize")
    tree.add(Node(1, None, "draft", 1, status="ok", metric=0.8))
    tree.add(Node(2, None, "draft", 2, status="ok", metric=0.5))
    for i in range(3, 9):  # line 1 has been improved a lot, without gain
        tree.add(Node(i, 1, "improve", i, status="ok", metric=0.79))
    policy = MctsPolicy(2, 0.0, 3, steps=100, seed=0)
    assert policy.exploration(10) > policy.exploration(90) > 0
    early = policy.choose(tree, 9)
    late = policy.choose(tree, 99)
    assert early.operation == "draft" or early.parent_id == 2  # visits line 2 or a new line
    assert (late.operation, late.parent_id) == ("improve", 1)
    assert policy.choose(tree, 9) == early  # pure


@pytest.mark.parametrize("name", ["aide", "aide+", "mcts"])
def test_every_policy_drafts_first_and_debugs_with_aides_draws(name):
    policy = make_policy(name, num_drafts=2, debug_prob=1.0, max_debug_depth=3, seed=0, steps=20)
    tree = SearchTree("maximize")
    assert policy.choose(tree, 1).operation == "draft"
    tree.add(Node(1, None, "draft", 1, code="raise SystemExit(1)\n", status="buggy"))
    tree.add(Node(2, None, "draft", 2, code="pass\n", status="ok", metric=0.3))
    d = policy.choose(tree, 3)
    assert (d.operation, d.parent_id) == ("debug", 1)
    assert policy.choose(tree, 3, (d,)).operation != "debug"  # the leaf is taken by the node in flight


def test_node_parent_ids_load_from_old_journals_and_name_the_tree_parent_first():
    old = Node.from_dict({"id": 3, "parent_id": 1, "operation": "improve", "step": 3})
    assert old.parent_ids == [1]
    merged = Node.from_dict(Node(4, None, "merge", 4, parent_ids=[2, 1]).to_dict())
    assert (merged.parent_id, merged.parent_ids) == (2, [2, 1])
