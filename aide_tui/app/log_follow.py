"""Which running node the live log follows, and what it shows on switching to one.

With `--workers N` the engine streams the reply and the script output of every running
node at once; written as they come, they interleave line by line.  So the log follows one
running node and leaves the others' stream out.  The run model keeps each running node's
recent stream (`NodeView.llm_text`, `NodeView.output`), so switching to a node (`r`, the
cursor, or the followed node finishing) first shows what it has written so far.
"""

from __future__ import annotations

from ..state import NodeView, RunModel, step_text

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


def output_text(stream: str, line: str) -> str:
    """An output line as the log shows it (stderr marked)."""
    return line if stream == "stdout" else f"! {line}"


def catch_up(view: NodeView, limit: int = CATCH_UP_LINES) -> tuple[list[str], str]:
    """What the log shows on switching to running node `view`: whole lines (a header, then
    its most recent output lines) and, while it has no output yet, the tail of the reply
    being written (left unfinished, so the next deltas continue it)."""
    header = f"── following #{view.id} {step_text(view.operation, view.parent_id)} (r: next running node) ──"
    if view.output:
        recent = list(view.output)[-limit:]
        lines = [header]
        if len(view.output) > len(recent):
            lines.append(f"… {len(view.output) - len(recent):,} earlier lines not shown")
        return lines + [output_text(stream, line) for stream, line in recent], ""
    text = "".join(view.llm_text)
    pieces = text.splitlines(keepends=True)
    if len(pieces) > limit:
        return [header, f"… {len(pieces) - limit:,} earlier lines of the reply"], "".join(pieces[-limit:])
    return [header], text
