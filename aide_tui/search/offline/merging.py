"""Merging two recipes: the offline coder's version of combining two lines of the search.

The merged recipe keeps the first parent's model and settings, averages its predictions with the
second parent's model family (when they differ and no blend partner is there yet), and takes
every preprocessing decision the second parent's lineage changed and the first's did not: the
ideas that paid off on the other line, carried over one by one.
"""

from __future__ import annotations

from .recipe import Recipe

CARRIED = ("scaler", "impute", "missing_indicators", "encoding", "log_target")


def merge_recipes(first: Recipe, second: Recipe) -> tuple[Recipe, list[str]]:
    """(the merged recipe, what it took from `second`, in words)."""
    merged = first.copy()
    took: list[str] = []
    if second.model not in (first.model, first.blend_with) and first.blend_with is None:
        merged.blend_with = second.model
        took.append(f"its model ({second.model}), averaged with this one")
    touched_first = {key.split("=")[0] for key in first.history}
    for name in CARRIED:
        value = getattr(second, name)
        if value != getattr(first, name) and any(k.split("=")[0] == name for k in second.history):
            if name not in touched_first:
                setattr(merged, name, value)
                took.append(f"{name.replace('_', ' ')} = {value}")
    merged.history = [*first.history, "merge"]
    return merged, took
