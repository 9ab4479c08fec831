"""Which nodes the hidden holdout scores, which it flags, and which one the run answers with.

Pure functions over finished nodes, so the engine only calls them.  Why this shape:

* The validation metric is whatever the script printed.  Three drafts printing
  `Validation metric: 0.0001` fill a "top 3 by validation" list, and if only
  those were re-run on the holdout no honest node would ever be scored.  So the
  holdout scores the top `TOP_K` by validation *and* a sample across the tree:
  the best node of each other draft's subtree, then evenly spaced ranks.
* A node whose holdout score is worse than its validation metric by more than
  chance explains is flagged.  Chance is the holdout's own spread (the standard
  deviation of the metric over bootstrap resamples of the withheld rows: what
  another fold of the same size would give, `scoring.score_with_spread`) times
  `SPREADS`, and never less than `RELATIVE_SLACK` of the metric's size (a
  validation fold and the holdout are different rows; honest models move a few
  per cent between them).  Doing *better* on the holdout is never flagged.
* The run's answer is never a flagged node while an unflagged working one
  exists: the best holdout score among unflagged scored nodes, else the best
  validation metric among unflagged nodes (those whose re-run gave no score, e.g.
  a submission that was a symlink, last), else (every candidate flagged) the best
  holdout score.
"""

from __future__ import annotations

from ..search.node import Node, better

TOP_K = 3  # the best by validation metric, always scored at the end of a run
SAMPLE = 3  # more, across the tree, so fake metrics cannot crowd out every honest node
SPREADS = 3.0  # a gap beyond this many holdout spreads is not chance
RELATIVE_SLACK = 0.1  # ...nor one beyond a tenth of the metric's size


def _working(nodes: list[Node]) -> list[Node]:
    return [n for n in nodes if n.status == "ok" and n.metric is not None]


def _by_validation(nodes: list[Node], direction: str) -> list[Node]:
    return sorted(nodes, key=lambda n: (n.metric if direction == "minimize" else -n.metric, n.id))  # type: ignore[operator]


def _draft_of(node: Node, by_id: dict[int, Node]) -> int:
    seen = set()
    while node.parent_id is not None and node.parent_id in by_id and node.id not in seen:
        seen.add(node.id)
        node = by_id[node.parent_id]
    return node.id


def holdout_candidates(nodes: list[Node], direction: str, top_k: int = TOP_K, sample: int = SAMPLE) -> list[Node]:
    """The working nodes the holdout should score: the top `top_k` by validation metric, then up
    to `sample` more across the tree (each other draft subtree's best, then evenly spaced ranks).

    Nodes already scored (or whose re-run gave a note) are included; the caller skips them."""
    ranked = _by_validation(_working(nodes), direction)
    chosen = ranked[:top_k]
    rest = ranked[top_k:]
    if sample <= 0 or not rest:
        return chosen
    by_id = {n.id: n for n in nodes}
    covered = {_draft_of(n, by_id) for n in chosen}
    extra: list[Node] = []
    for node in rest:  # best first: the first node met of an uncovered subtree is its best
        draft = _draft_of(node, by_id)
        if draft not in covered and len(extra) < sample:
            covered.add(draft)
            extra.append(node)
    left = [n for n in rest if n not in extra]
    while len(extra) < sample and left:
        want = sample - len(extra)
        step = max(1, len(left) // want)
        pick = left[::step][:want]
        extra.extend(pick)
        left = [n for n in left if n not in pick]
    return chosen + extra


def disagreement(node: Node, direction: str | None) -> str:
    """Why the node's validation metric and holdout score disagree beyond chance ("" when they agree)."""
    if direction is None or node.metric is None or node.holdout_metric is None:
        return ""
    validation, holdout = node.metric, node.holdout_metric
    worse_by = holdout - validation if direction == "minimize" else validation - holdout
    scale = max(abs(validation), abs(holdout))
    allowed = max(SPREADS * (node.holdout_spread or 0.0), RELATIVE_SLACK * scale)
    if worse_by <= allowed:
        return ""
    spread = f"±{node.holdout_spread:.3g}" if node.holdout_spread is not None else "not measured"
    return (
        f"validation {validation:.6g} but holdout {holdout:.6g}: worse by {worse_by:.3g}, "
        f"beyond chance (holdout spread {spread}); the script's own metric is not trusted"
    )


def final_pick(nodes: list[Node], direction: str | None, validation_best: Node | None) -> Node | None:
    """The run's answer (see the module docstring): never a flagged node while an unflagged one exists."""
    working = _working(nodes)
    if direction is None:
        return validation_best
    clean = [n for n in working if not n.holdout_flag]
    scored_clean = [n for n in clean if n.holdout_metric is not None]
    if scored_clean:
        return _best_holdout(scored_clean, direction)
    flagged = [n for n in working if n.holdout_flag]
    if not flagged:
        return validation_best
    if clean:  # a node whose re-run gave no score (refused, crashed) only after those not yet re-run
        return min(_by_validation(clean, direction), key=lambda n: bool(n.holdout_note))
    return _best_holdout(flagged, direction)


def _best_holdout(nodes: list[Node], direction: str) -> Node:
    pick = nodes[0]
    for node in nodes[1:]:
        if better(node.holdout_metric, pick.holdout_metric, direction):  # type: ignore[arg-type]
            pick = node
    return pick
