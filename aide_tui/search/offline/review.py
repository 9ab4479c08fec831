"""Review a run without a model: the last `Validation metric:` line and the exit status.

The generated scripts print the metric in a fixed format, so parsing it is
exact; any script (hand-edited or LLM-written) that follows the same
convention is reviewed the same way.
"""

from __future__ import annotations

from ..coder import Review
from ..metric_line import last_metric
from ..node import Direction, Node


def review_node(
    node: Node, direction: Direction | None, metric_name: str = "metric", expects_submission: bool = False
) -> Review:
    info = node.exec
    metric = last_metric(node.output)
    if info.killed_reason:
        return Review(True, None, f"The run was stopped ({info.killed_reason}); no metric.", direction)
    if info.exit_code not in (0, None) or (info.exit_code is None and info.exc_type):
        what = info.exc_type or f"exit code {info.exit_code}"
        return Review(True, None, f"The script crashed ({what}).", direction)
    if metric is None:
        return Review(
            True, None, "The script finished but printed no valid 'Validation metric: <number>' line.", direction
        )
    wrote = {name.split(" (")[0] for name in info.outputs}
    if expects_submission and "submission.csv" not in wrote:
        return Review(
            True,
            metric,
            f"Validation {metric_name} = {metric:.6g}, but the task has test data and the "
            "script wrote no submission.csv.",
            direction,
        )
    better = "higher" if direction == "maximize" else "lower"
    return Review(
        False, metric, f"Ran cleanly; validation {metric_name} = {metric:.6g} ({better} is better).", direction
    )
