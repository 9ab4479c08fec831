"""Which running node the live log follows, and what it shows on switching to one.

With `--workers N` the engine streams the reply and the script output of every running
node at once; written as they come, they interleave line by line.  So the log follows one
running node and leaves the others' stream out.  The run model keeps each running node's
recent stream (`NodeView.llm_text`, `NodeView.output`), so switching to a node (`r`, the
cursor, or the followed node finishing) first shows what it has written so far.
"""

from __future__ import annotations

from ..state import NodeView, RunModel, output_text, step_text

__all__ = ["catch_up", "followed_node", "output_text"]

CATCH_UP_LINES = 200  # most lines of a node's recent stream shown on switching to it


def followed_node(model: RunModel, selected_id: int | None, follow_newest: bool) -> int | None:
    """The running node the log follows: the newest one, or the one the user selected
    (`follow_newest` False: moved the cursor, or `r`) while it runs; None when none runs."""
    running = model.running
    if not running:
        return None
    if not follow_newest and selected_id in running:
        return selected_id
    return running[-1]


def catch_up(view: NodeView, limit: int = CATCH_UP_LINES) -> tuple[list[str], str, list[str]]:
    """What the log shows on switching to running node `view`, as (lines, text, lines):
    a header and, once its script runs, its most recent output lines; before that, the
    tail of its reply so far (left unfinished while it streams, so the next deltas
    continue it) and, if the script has just started, the line that says so."""
    header = f"── following #{view.id} {step_text(view.operation, view.parent_id)} (r: next running node) ──"
    if view.output:
        recent = list(view.output)[-limit:]
        lines = [header]
        if len(view.output) > len(recent):
            lines.append(f"… {len(view.output) - len(recent):,} earlier lines not shown")
        return lines + recent, "", []
    pieces = "".join(view.llm_text).splitlines(keepends=True)
    lines = [header]
    if len(pieces) > limit:
        lines.append(f"… {len(pieces) - limit:,} earlier lines of the reply")
    running = [f"── running node #{view.id} ──"] if view.phase in ("executing", "reviewing") else []
    return lines, "".join(pieces[-limit:]), running
