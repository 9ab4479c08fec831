"""The summarization operator: a bounded account of what the search has tried.

Every prompt carries this summary so the model does not repeat itself, and it
is rebuilt at every step.  Two properties matter more than completeness:

- Bounded: it never exceeds `budget_chars`, however large the tree, so prompt
  size (and cost) stays flat over a long run.
- Cheap: at 1,000 nodes it must cost well under a few milliseconds, so it
  sorts once and stops formatting as soon as the budget is spent.

What it carries is lessons, not just a leaderboard:

- For the node the step builds on (`focus`), its earlier children come first:
  what was already tried on it and what each attempt gave, so the same change
  is not proposed twice and a change that hurt is not repeated.
- Every improvement says what changed (the start of its plan, which the
  prompts ask to name the one change) and the metric from parent to child,
  so the model sees which kinds of change paid off.
- Working nodes follow, best first (what to build on), then a compact account
  of failures (what to avoid).

Output depends only on the nodes, the direction and the focus, so identical
trees give identical prompts.
"""

from __future__ import annotations

from .node import Node, is_valid_metric
from .recall import recall_lines

PLAN_CHARS = 140  # one-line plan per entry
SUMMARY_CHARS = 140  # one-line review summary per entry
MAX_BUGGY_LINES = 5  # failures listed individually; the rest are only counted
BUGGY_SHARE = 0.3  # at most this part of the budget goes to failures
FOCUS_SHARE = 0.35  # at most this part of the budget goes to the focus node's earlier children
SIMILAR_SHARE = 0.2  # at most this part goes to the attempts most like the coming one (recall.py)


def _one_line(text: str, limit: int) -> str:
    """First meaningful sentence-ish of `text`, on one line, at most `limit` chars."""
    text = " ".join(text[: limit * 4].split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _ok(node: Node) -> bool:
    return node.status == "ok" and is_valid_metric(node.metric)


def _metric(node: Node) -> float:
    """The metric of a node `_ok` accepted, typed as the number it then is."""
    assert node.metric is not None
    return node.metric


def _change(parent: Node, child: Node, direction: str | None) -> str:
    """'metric 0.81 -> 0.84 (better)': the effect of one step, judged by the run's direction."""
    before = f"{parent.metric:.6g}" if _ok(parent) else "none"
    if not _ok(child):
        return f"metric {before} -> failed ({child.status})"
    text = f"metric {before} -> {child.metric:.6g}"
    if _ok(parent) and direction in ("maximize", "minimize"):
        if child.metric == parent.metric:
            return text + " (no change)"
        gained = (_metric(child) > _metric(parent)) == (direction == "maximize")
        text += " (better)" if gained else " (worse)"
    return text


def _working_line(node: Node, by_id: dict[int, Node], direction: str | None) -> str:
    parent = by_id.get(node.parent_id) if node.parent_id is not None else None
    plan = _one_line(node.plan, PLAN_CHARS)
    if node.operation == "improve" and parent is not None:
        line = f"- node {node.id} (improve of node {parent.id}): {_change(parent, node, direction)}"
        return line + (f"; change: {plan}" if plan else "")
    if node.operation == "merge" and parent is not None:
        of = " and ".join(f"node {i}" for i in node.parent_ids)
        line = f"- node {node.id} (merge of {of}): {_change(parent, node, direction)}"
        return line + (f"; combined: {plan}" if plan else "")
    line = f"- node {node.id} ({node.operation}): metric {node.metric:.6g}"
    if plan:
        line += f"; plan: {plan}"
    summary = _one_line(node.review_summary, SUMMARY_CHARS)
    if summary:
        line += f"; review: {summary}"
    return line


def _buggy_line(node: Node) -> str:
    what = _one_line(node.review_summary, SUMMARY_CHARS) or (
        f"{node.exec.exc_type}" if node.exec.exc_type else "no details"
    )
    plan = _one_line(node.plan, PLAN_CHARS // 2)
    of = f" of node {node.parent_id}" if node.parent_id is not None else ""
    line = f"- node {node.id} ({node.operation}{of}, {node.status})"
    if plan:
        line += f": tried {plan}"
    return f"{line}; went wrong: {what}"


def _child_line(child: Node, parent: Node, direction: str | None) -> str:
    line = f"- node {child.id} ({child.operation}): {_change(parent, child, direction)}"
    plan = _one_line(child.plan, PLAN_CHARS)
    if plan:
        line += f"; tried: {plan}"
    if not _ok(child):
        line += f"; went wrong: {_one_line(child.review_summary, SUMMARY_CHARS) or child.exec.exc_type or 'no details'}"
    return line


def _focus_section(focus: Node, children: list[Node], direction: str | None, budget: int) -> list[str]:
    """The focus node's earlier children, newest first, within `budget` characters."""
    if not children:
        return [f"Node {focus.id}, which this step builds on, has not been changed before."]
    lines = [f"Already tried on node {focus.id}, which this step builds on ({len(children)}, newest first):"]
    _, shown = _fill(lines, children, lambda c: _child_line(c, focus, direction), budget - len(lines[0]) - 1)
    if shown < len(children):
        lines.append(f"  ({len(children) - shown} earlier attempts not shown)")
    return lines


def _fill(lines: list[str], items, render, budget: int) -> tuple[int, int]:
    """Append rendered items while they fit in `budget`; return (used, count)."""
    used = count = 0
    for item in items:
        line = render(item)
        if used + len(line) + 1 > budget:
            break
        lines.append(line)
        used += len(line) + 1
        count += 1
    return used, count


LINEAGE_PLANS = 4  # the plans of the focus node and its nearest ancestors describe the approach


def _lineage(node: Node, by_id: dict[int, Node]) -> list[int]:
    """Ids from the root down to `node`."""
    out, cur = [node.id], node
    while cur.parent_id is not None and cur.parent_id in by_id and len(out) < len(by_id):
        cur = by_id[cur.parent_id]
        out.append(cur.id)
    return out[::-1]


def _similar_section(
    nodes: list[Node], by_id: dict[int, Node], focus: Node, query: str, direction: str | None, budget: int
) -> list[str]:
    """The earlier changes (on any line) most like the approach of the node this step builds on:
    its plan and its nearest ancestors' (what the line is), plus `query` (the user's hint)."""
    shown = {n.id for n in nodes if n.parent_id == focus.id}  # already in the focus section
    shown |= set(_lineage(focus, by_id))  # the approach itself, not an attempt to recall

    def describe(parent: Node, child: Node) -> str:
        line = _change(parent, child, direction)
        plan = _one_line(child.plan, PLAN_CHARS)
        return line + (f"; tried: {plan}" if plan else "")

    found = recall_lines(nodes, by_id, focus, query, shown, describe)
    if not found:
        return []
    lines = [f"Most similar earlier attempts to node {focus.id}'s approach (this line and others):"]
    _, count = _fill(lines, found, lambda line: line, budget - len(lines[0]) - 1)
    return lines if count else []


def summarize(
    nodes: list[Node], direction: str | None, budget_chars: int, focus: int | None = None, query: str = ""
) -> str:
    """What has been tried, within `budget_chars`: first what was tried on node `focus`
    (the parent of the coming step), then the earlier attempts most like its plan (and `query`,
    e.g. the user's hint) on any line, then working solutions best first, then failures."""
    if budget_chars <= 0:
        return ""
    by_id = {n.id: n for n in nodes}
    working = [n for n in nodes if _ok(n)]
    buggy = [n for n in nodes if not _ok(n)]
    if not working and not buggy:
        return _clip("Nothing has been tried yet.", budget_chars)

    # Best first; ties (and an unknown direction, newest first) broken by id for determinism.
    if direction == "minimize":
        working.sort(key=lambda n: (n.metric, n.id))
    elif direction == "maximize":
        working.sort(key=lambda n: (-_metric(n), n.id))
    else:
        working.sort(key=lambda n: -n.id)
    buggy.sort(key=lambda n: -n.id)  # recent failures are the most relevant

    lines: list[str] = []
    if focus in by_id:
        children = sorted((n for n in nodes if n.parent_id == focus), key=lambda n: -n.id)
        lines += _focus_section(by_id[focus], children, direction, int(budget_chars * FOCUS_SHARE))
        text = " ".join([*(by_id[i].plan[:600] for i in _lineage(by_id[focus], by_id)[-LINEAGE_PLANS:]), query])
        lines += _similar_section(nodes, by_id, by_id[focus], text, direction, int(budget_chars * SIMILAR_SHARE))
    order = {"minimize": "best first, lower is better", "maximize": "best first, higher is better"}.get(
        direction or "", "newest first; direction of the metric not known yet"
    )
    failures_budget = int(budget_chars * BUGGY_SHARE) if buggy else 0

    if working:
        header = f"Working solutions: {len(working)} ({order}):"
        lines.append(header)
        used = sum(len(x) + 1 for x in lines)
        budget = budget_chars - failures_budget - used - 80  # 80: room for the "more" line
        _, shown = _fill(lines, working, lambda n: _working_line(n, by_id, direction), budget)
        if shown < len(working):
            metrics = [_metric(n) for n in working[shown:]]
            lines.append(f"  ({len(working) - shown} more working, metrics {min(metrics):.4g} to {max(metrics):.4g})")
    else:
        lines.append("No working solution yet.")

    if buggy:
        counts: dict[str, int] = {}
        for n in buggy:
            counts[n.status] = counts.get(n.status, 0) + 1
        detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        header = f"Failed attempts: {len(buggy)} ({detail}); most recent:"
        lines.append(header)
        room = budget_chars - sum(len(x) + 1 for x in lines)
        _fill(lines, buggy[:MAX_BUGGY_LINES], _buggy_line, room)

    return _clip("\n".join(lines), budget_chars)


def _clip(text: str, budget: int) -> str:
    """Last line of defence for tiny budgets: never return more than `budget` chars."""
    if len(text) <= budget:
        return text
    return text[: max(budget - 1, 0)] + "…" if budget > 1 else text[:budget]
