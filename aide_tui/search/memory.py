"""The summarization operator: a bounded account of what the search has tried.

Every prompt carries this summary so the model does not repeat itself, and it
is rebuilt at every step.  Two properties matter more than completeness:

- Bounded: it never exceeds `budget_chars`, however large the tree, so prompt
  size (and cost) stays flat over a long run.
- Cheap: at 1,000 nodes it must cost well under a few milliseconds, so it
  sorts once and stops formatting as soon as the budget is spent.

Working nodes come first, best first (they are what the model should build
on), then a compact account of failures (what to avoid).  Output depends only
on the nodes and the direction, so identical trees give identical prompts.
"""

from __future__ import annotations

from .node import Node, is_valid_metric

PLAN_CHARS = 140  # one-line plan per entry
SUMMARY_CHARS = 140  # one-line review summary per entry
MAX_BUGGY_LINES = 5  # failures listed individually; the rest are only counted
BUGGY_SHARE = 0.3  # at most this part of the budget goes to failures


def _one_line(text: str, limit: int) -> str:
    """First meaningful sentence-ish of `text`, on one line, at most `limit` chars."""
    text = " ".join(text[: limit * 4].split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _working_line(node: Node) -> str:
    line = f"- node {node.id} ({node.operation}): metric {node.metric:.6g}"
    plan = _one_line(node.plan, PLAN_CHARS)
    if plan:
        line += f"; plan: {plan}"
    summary = _one_line(node.review_summary, SUMMARY_CHARS)
    if summary:
        line += f"; review: {summary}"
    return line


def _buggy_line(node: Node) -> str:
    what = _one_line(node.review_summary, SUMMARY_CHARS) or (
        f"{node.exec.exc_type}" if node.exec.exc_type else "no details")
    plan = _one_line(node.plan, PLAN_CHARS // 2)
    line = f"- node {node.id} ({node.operation}, {node.status})"
    if plan:
        line += f": tried {plan}"
    return f"{line}; went wrong: {what}"


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


def summarize(nodes: list[Node], direction: str | None, budget_chars: int) -> str:
    """What has been tried, best working solutions first, within `budget_chars`."""
    if budget_chars <= 0:
        return ""
    working = [n for n in nodes if n.status == "ok" and is_valid_metric(n.metric)]
    buggy = [n for n in nodes if not (n.status == "ok" and is_valid_metric(n.metric))]
    if not working and not buggy:
        return _clip("Nothing has been tried yet.", budget_chars)

    # Best first; ties (and an unknown direction, newest first) broken by id for determinism.
    if direction == "minimize":
        working.sort(key=lambda n: (n.metric, n.id))
    elif direction == "maximize":
        working.sort(key=lambda n: (-n.metric, n.id))
    else:
        working.sort(key=lambda n: -n.id)
    buggy.sort(key=lambda n: -n.id)  # recent failures are the most relevant

    lines: list[str] = []
    order = {"minimize": "best first, lower is better", "maximize": "best first, higher is better"}.get(
        direction or "", "newest first; direction of the metric not known yet")
    failures_budget = int(budget_chars * BUGGY_SHARE) if buggy else 0

    if working:
        header = f"Working solutions: {len(working)} ({order}):"
        lines.append(header)
        budget = budget_chars - failures_budget - len(header) - 1 - 80  # 80: room for the "more" line
        _, shown = _fill(lines, working, _working_line, budget)
        if shown < len(working):
            metrics = [n.metric for n in working[shown:]]
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
