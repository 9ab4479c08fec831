"""The hard rules that decide a node's status, whatever the review model says.

A crash, a timeout, a memory kill or a missing/non-finite metric always makes
a node buggy; the printed metric line beats the review's reading of it; the
metric direction is fixed once per run and never flips.
"""

from __future__ import annotations

import math

from .coder import Review
from .metric_line import last_metric
from .node import Direction, ExecInfo, Status, is_valid_metric


def coerce_metric(value: object) -> float | None:
    """Numbers (ints included) and numeric strings become floats; anything else None."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not is_valid_metric(value):
        return None
    return float(value)  # type: ignore[arg-type]


def _number(value: float) -> str:
    return f"{value:.10g}"


def decide(exec_info: ExecInfo, review: Review | None, output: str) -> tuple[Status, float | None, str]:
    """Return (status, metric, note): the reason for a buggy verdict, or for an ok
    one where its metric came from when the review did not supply it as printed.

    The last `Validation metric:` line of `output` is the metric whenever it is
    there: the review keeps the bug flag and the summary, not the number.  With
    no review at all (the call failed twice), that line alone decides.  Only a
    script that printed no exact line is ranked by the review's reading.
    """
    reason = exec_info.killed_reason or ""
    if reason == "timeout":
        return "timeout", None, "timed out"
    if reason.startswith("memory"):
        return "memory", None, reason
    if reason == "cancelled":
        return "cancelled", None, "cancelled"
    if exec_info.exit_code != 0:
        what = exec_info.exc_type or f"exit code {exec_info.exit_code}"
        return "buggy", None, f"crashed ({what})"
    printed = last_metric(output)
    if review is None:
        if printed is None:
            return "buggy", None, "no review, and no valid 'Validation metric: <number>' line was printed"
        return "ok", printed, f"no review; the printed metric {_number(printed)} decides"
    said = coerce_metric(review.metric)
    if review.is_bug:
        return "buggy", printed if printed is not None else said, "the review found a bug"
    if printed is not None:
        if said is None or not math.isclose(said, printed, rel_tol=1e-9, abs_tol=0.0):
            heard = "gave no metric" if said is None else f"said {_number(said)}"
            return "ok", printed, f"review {heard}; the script printed {_number(printed)}"
        return "ok", printed, ""
    if said is None:
        bad = review.metric
        why = "no metric reported" if bad is None else f"metric {bad!r} is not a finite number"
        return "buggy", None, why
    return "ok", said, f"no exact 'Validation metric: <number>' line; the review read {_number(said)}"


def fix_direction(current: Direction | None, proposed: Direction | None) -> Direction | None:
    """First valid answer wins; later answers never flip it."""
    return current if current is not None else proposed


__all__ = ["coerce_metric", "decide", "fix_direction"]
