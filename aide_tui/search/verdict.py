"""The hard rules that decide a node's status, whatever the review model says.

A crash, a timeout, a memory kill or a missing/non-finite metric always makes
a node buggy; the metric direction is fixed once per run and never flips.
"""

from __future__ import annotations


from .coder import Review
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


def decide(exec_info: ExecInfo, review: Review | None) -> tuple[Status, float | None, str]:
    """Return (status, metric, reason for a buggy verdict or '')."""
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
    if review is None:
        return "buggy", None, "no review"
    metric = coerce_metric(review.metric)
    if review.is_bug:
        return "buggy", metric, "the review found a bug"
    if metric is None:
        bad = review.metric
        why = "no metric reported" if bad is None else f"metric {bad!r} is not a finite number"
        return "buggy", None, why
    return "ok", metric, ""


def fix_direction(current: Direction | None, proposed: Direction | None) -> Direction | None:
    """First valid answer wins; later answers never flip it."""
    return current if current is not None else proposed


__all__ = ["coerce_metric", "decide", "fix_direction"]
