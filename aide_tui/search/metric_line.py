"""The `Validation metric: <number>` line every solution prints as its result.

Parsed exactly, because it is the number the search ranks by: the last such
line counts (a script may print progress lines first), and only a finite
float is a metric.  The review model's reading of the output is checked
against it (see verdict.decide); the offline reviewer uses it alone.
"""

from __future__ import annotations

import math
import re

_METRIC = re.compile(
    r"^\s*Validation metric:\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf|-inf)\s*$", re.M | re.I
)


def last_metric(output: str) -> float | None:
    """The value on the last `Validation metric: X` line, or None (also for nan/inf)."""
    found = _METRIC.findall(output or "")
    if not found:
        return None
    value = float(found[-1])
    return value if math.isfinite(value) else None


_FOLDS = re.compile(r"^\s*Validation folds:\s*(-?\d+(?:\s*,\s*-?\d+)*)\s*$", re.M | re.I)


def validation_folds(output: str) -> list[int] | None:
    """The run folds the metric was averaged over, from the last `Validation folds: 0,1,2` line
    (the offline scripts print it; None when a script does not say)."""
    found = _FOLDS.findall(output or "")
    return [int(f) for f in found[-1].split(",")] if found else None


__all__ = ["last_metric", "validation_folds"]
