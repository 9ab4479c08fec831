"""Which training rows are withheld and which fold each remaining row is in.

Pure and seeded: the same labels, seed and share give the same split on any
machine.  Classification targets are stratified (each class is spread over the
folds and the holdout in proportion); rows whose target is missing are never
withheld (they cannot be scored) but do get a fold, so the fold file covers
every row the scripts see.

Real tables are often not independent rows.  With a group column (a person,
a firm, a patient whose test rows are unseen) the holdout is whole groups and
the folds are scikit-learn's `GroupKFold`, so no group is on both sides.  With
a time column the holdout is the last period(s) and the folds follow
`TimeSeriesSplit` over the periods: fold k is validated by a model fit on the
rows of the folds before it; the earliest periods get fold -1 (training only).
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


def make_split(
    labels: list[str],
    classification: bool,
    seed: int,
    holdout_share: float,
    groups: list[str] | None = None,
    times: list[float | None] | None = None,
) -> Split:
    """Withhold about `holdout_share` of the rows, then give every kept row one of N_FOLDS folds."""
    if times is not None:
        return _time_split(labels, times, holdout_share)
    if groups is not None:
        return _group_split(labels, groups, seed, holdout_share)
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


def _group_split(labels: list[str], groups: list[str], seed: int, holdout_share: float) -> Split:
    """Whole groups withheld (shuffled, until the share is reached); GroupKFold over the rest."""
    from sklearn.model_selection import GroupKFold

    rng = random.Random(f"aide-tui group split {seed}")
    names = sorted(set(groups))
    rng.shuffle(names)
    held_groups: set[str] = set()
    target = round(len(labels) * holdout_share)
    held_count = 0
    sizes = {g: 0 for g in names}
    for g in groups:
        sizes[g] += 1
    for name in names:
        if held_count >= target or len(held_groups) >= len(names) - 2:
            break
        held_groups.add(name)
        held_count += sizes[name]
    held = [i for i, g in enumerate(groups) if g in held_groups and not is_missing(labels[i])]
    held_set = set(held)
    kept = [i for i in range(len(labels)) if i not in held_set]
    kept_groups = [groups[i] for i in kept]
    splits = min(N_FOLDS, len(set(kept_groups)))
    folds = [0] * len(kept)
    if splits >= 2:
        for fold, (_, valid) in enumerate(GroupKFold(n_splits=splits).split(kept, groups=kept_groups)):
            for n in valid:
                folds[n] = fold
    return Split(tuple(held), tuple(folds))


def _time_split(labels: list[str], times: list[float | None], holdout_share: float) -> Split:
    """The last periods withheld; TimeSeriesSplit over the kept periods (rows without a time: training only)."""
    from sklearn.model_selection import TimeSeriesSplit

    periods = sorted({t for t in times if t is not None})
    rows_at: dict[float, int] = {}
    for t in times:
        if t is not None:
            rows_at[t] = rows_at.get(t, 0) + 1
    held_periods: set[float] = set()
    target = round(len(labels) * holdout_share)
    held_count = 0
    for period in reversed(periods):
        if held_count >= target or len(held_periods) >= len(periods) - 2:
            break
        held_periods.add(period)
        held_count += rows_at[period]
    held = [i for i, t in enumerate(times) if t in held_periods and not is_missing(labels[i])]
    held_set = set(held)
    kept = [i for i in range(len(labels)) if i not in held_set]
    kept_times = [t for t in (times[i] for i in kept) if t is not None and t not in held_periods]
    kept_periods: list[float] = sorted(set(kept_times))
    fold_of_period: dict[float, int] = {}
    if len(kept_periods) >= 3:
        splits = TimeSeriesSplit(n_splits=min(N_FOLDS, len(kept_periods) - 1)).split(kept_periods)
        for fold, (_, valid) in enumerate(splits):
            for n in valid:
                fold_of_period[kept_periods[n]] = fold
    elif kept_periods:
        fold_of_period[kept_periods[-1]] = 0  # two periods: fit on the first, validate on the second
    folds = [-1 if (t := times[i]) is None else fold_of_period.get(t, -1) for i in kept]
    return Split(tuple(held), tuple(folds))
