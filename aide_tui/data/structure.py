"""What a row-level shuffle would hide in real tables: groups, time, and features kept in other tables.

A panel of people over years validated row by row lets a model recognise the
person and flatters the holdout; a forecast validated on shuffled days sees
the future.  These guesses come from the data (and task.md's words), so the
card can say so before the run; the user or the LLM can always override them.

* group column: a column (not the target or an id) whose values repeat across
  training rows and do not appear in the test file, or one task.md names next
  to words like "group", "same ... never both", "unseen";
* time column: a date (or a column named like a period) whose test range
  starts where the training range ends;
* extra tables: other CSV files that share a column with the training file
  (the join key), as for `train.csv = subject,death` + `patients.csv`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .table import TableError, read_table

_MISSING = {"", "na", "nan", "null", "none", "n/a"}
_GROUP_WORDS = re.compile(
    r"group|same .{0,40}(never|not)|never both|unseen|new (people|patients|subjects|firms|customers)|"
    r"per (person|patient|subject)|groupe|même|mismo|gleiche|panel",
    re.I,
)
_TIME_NAME = re.compile(
    r"(^|_)(date|time|timestamp|year|month|week|day|period|datetime|annee|année|jahr|fecha)($|_)", re.I
)
_JOIN_WORDS = re.compile(r"join|merge|key|linked|relat|jointure|clé|clave|schlüssel", re.I)
MIN_GROUPS = 5


def _values(header: Sequence[str], rows: Sequence[Sequence[str]], column: str) -> list[str]:
    i = list(header).index(column)
    return [r[i].strip() for r in rows if i < len(r) and r[i].strip().lower() not in _MISSING]


def _mentioned(task: str, column: str) -> list[str]:
    """The sentences of task.md that name `column`."""
    pattern = re.compile(rf"(?<![\w]){re.escape(column)}(?![\w])")
    return [s for s in re.split(r"(?<=[.;!?])\s+|\n", task) if pattern.search(s)]


def _as_times(values: list[str]) -> list[float] | None:
    """Numbers, or dates as seconds; None when most values are neither."""
    if not values:
        return None
    try:
        return [float(v) for v in values]
    except ValueError:
        pass
    import pandas as pd

    parsed = pd.to_datetime(pd.Series(values), errors="coerce", format="mixed")
    if parsed.isna().mean() > 0.05:
        return None
    return [t.timestamp() for t in parsed.dropna()]


def find_time_column(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    test: tuple[Sequence[str], Sequence[Sequence[str]]] | None,
    exclude: Sequence[str],
) -> str | None:
    """A date (or period-named) column whose test values all come at or after the training values' end."""
    if test is None:
        return None
    test_header, test_rows = test
    for column in header:
        if column in exclude or column not in test_header:
            continue
        train_values = _values(header, rows, column)
        sample = train_values[:200]
        is_number = all(_is_number(v) for v in sample)
        if is_number and not _TIME_NAME.search(column):
            continue  # an ascending number (row ids!) is not time unless it is named so
        if not is_number and _as_times(sample) is None:
            continue
        train_times = _as_times(train_values)
        test_times = _as_times(_values(test_header, test_rows, column))
        if not train_times or not test_times or len(set(train_times)) < 2:
            continue
        if min(test_times) >= max(train_times):
            return column
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def find_group_column(
    task: str,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    test: tuple[Sequence[str], Sequence[Sequence[str]]] | None,
    exclude: Sequence[str],
) -> str | None:
    """The column whose repeated values are whole groups: named so by task.md, or unseen in the test file."""
    candidates = [c for c in header if c not in exclude]
    repeated = {}
    for column in candidates:
        values = _values(header, rows, column)
        distinct = set(values)
        if len(distinct) >= MIN_GROUPS and len(distinct) <= 0.7 * len(values):
            repeated[column] = distinct
    for column in repeated:
        if any(_GROUP_WORDS.search(sentence) for sentence in _mentioned(task, column)):
            return column
    if test is None:
        return None
    test_header, test_rows = test
    for column, distinct in repeated.items():
        if column not in test_header:
            continue
        test_distinct = set(_values(test_header, test_rows, column))
        if len(test_distinct) >= 2 and not (test_distinct & distinct):
            return column
    return None


def find_extra_tables(
    task: str,
    project_dir: str,
    header: Sequence[str],
    others: Sequence[str],
    exclude: Sequence[str],
) -> list[dict[str, str]]:
    """{file, key} for each other CSV that shares a column with the training file (not the target)."""
    from pathlib import Path

    tables = []
    for rel in others:
        try:
            other_header = read_table(Path(project_dir) / rel, limit=0, label=rel)[0]
        except TableError:
            continue
        shared = [c for c in other_header if c in header and c not in exclude]
        if not shared:
            continue
        named = [c for c in shared if any(_JOIN_WORDS.search(s) for s in _mentioned(task, c))]
        tables.append({"file": rel, "key": (named or shared)[0]})
    return tables
