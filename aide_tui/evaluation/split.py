"""Which training rows are withheld and which fold each remaining row is in.

Pure and seeded: the same labels, seed and share give the same split on any
machine.  Classification targets are stratified (each class is spread over the
folds and the holdout in proportion); rows whose target is missing are never
withheld (they cannot be scored) but do get a fold, so the fold file covers
every row the scripts see.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

N_FOLDS = 5
MISSING = {"", "na", "nan", "null", "none", "n/a"}


def is_missing(value: str) -> bool:
    return value.strip().lower() in MISSING


@dataclass(frozen=True)
class Split:
    holdout_rows: tuple[int, ...]  # indices into the original training rows, ascending
    folds: tuple[int, ...]  # fold of each kept row, in file order (len = rows - holdout)


def make_split(labels: list[str], classification: bool, seed: int, holdout_share: float) -> Split:
    """Withhold about `holdout_share` of the rows, then give every kept row one of N_FOLDS folds."""
    rng = random.Random(f"aide-tui split {seed}")
    labelled = [i for i, v in enumerate(labels) if not is_missing(v)]
    held: set[int] = set()
    if holdout_share > 0:
        for group in _groups(labelled, labels, classification):
            rng.shuffle(group)
            held.update(group[: round(len(group) * holdout_share)])
    kept = [i for i in range(len(labels)) if i not in held]
    position = {row: n for n, row in enumerate(kept)}
    folds = [0] * len(kept)
    start = 0
    unlabelled = [i for i in kept if is_missing(labels[i])]
    for group in _groups([i for i in kept if not is_missing(labels[i])], labels, classification) + [unlabelled]:
        rng.shuffle(group)
        for n, row in enumerate(group):
            folds[position[row]] = (start + n) % N_FOLDS
        start = (start + len(group)) % N_FOLDS  # the next group fills the folds this one left short
    return Split(tuple(sorted(held)), tuple(folds))


def _groups(rows: list[int], labels: list[str], classification: bool) -> list[list[int]]:
    """One group per class (sorted, so the order is stable); one group for a regression target."""
    if not classification:
        return [list(rows)]
    by_class: dict[str, list[int]] = {}
    for i in rows:
        by_class.setdefault(labels[i].strip(), []).append(i)
    return [by_class[k] for k in sorted(by_class)]
