"""Does a submission fit the test file?  Row count, columns, and the ids themselves.

Pure: it reads files and returns what is wrong, in words a person can act on,
or None.  The columns are checked against the sample submission when the
project has one (its header is the format the task asks for); without one,
the card's id columns must be there.  When the card names id columns, the
submission's ids must be the test file's ids: a header that is right over
ids 0..n-1 is still wrong.
"""

from __future__ import annotations

import math
import re
from pathlib import Path, PurePosixPath

from ..data.table import TableError, read_table

SUBMISSION = "submission.csv"
_SAMPLE = re.compile(r"(sample|example)[_ -]?submission", re.I)


def find_sample_submission(data_files: list[str]) -> str | None:
    """The project's sample submission file, if it has one (e.g. data/sample_submission.csv)."""
    found = [f for f in data_files if f.lower().endswith(".csv") and _SAMPLE.search(PurePosixPath(f).name)]
    return sorted(found, key=len)[0] if found else None


def _table(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        return read_table(path)
    except TableError as exc:
        if "is empty" in str(exc) or "no header" in str(exc):
            return [], []
        raise


def check_submission(
    submission: Path, test: Path, id_columns: list[str], sample: Path | None = None, test_label: str = "the test file"
) -> str | None:
    """What is wrong with `submission` for `test` (None: nothing found)."""
    name = submission.name
    try:
        columns, rows = _table(submission)
    except TableError as exc:
        return f"{name} cannot be read as CSV ({exc})"
    try:
        test_columns, test_rows = _table(test)
    except TableError:
        return None  # nothing to compare with; the card's test file is checked elsewhere
    if not columns:
        return f"{name} is empty"
    if len(rows) != len(test_rows):
        return f"{name} has {len(rows)} rows, {test_label} has {len(test_rows)}"
    if sample is not None:
        try:
            expected = _table(sample)[0]
        except TableError:
            expected = []
        if expected and sorted(columns) != sorted(expected):
            return f"{name} columns {','.join(columns)}; expected {','.join(expected)} (as in {sample.name})"
    ids = [c for c in id_columns if c in test_columns]
    missing = [c for c in ids if c not in columns]
    if missing:
        return f"{name} columns {','.join(columns)}; expected the id column{'s' if len(missing) > 1 else ''} {','.join(missing)} of {test_label}"
    if len(columns) <= len(ids):
        return f"{name} has only the id columns {','.join(columns)}; it needs a prediction column"
    if ids:
        return _check_ids(name, columns, rows, test_columns, test_rows, ids, test_label)
    return None


def _check_ids(
    name: str,
    columns: list[str],
    rows: list[list[str]],
    test_columns: list[str],
    test_rows: list[list[str]],
    ids: list[str],
    test_label: str,
) -> str | None:
    def keys(header: list[str], table: list[list[str]]) -> list[tuple[str, ...]]:
        where = [header.index(c) for c in ids]
        return [tuple(_canonical(row[i]) if i < len(row) else "" for i in where) for row in table]

    wanted = set(keys(test_columns, test_rows))
    for key in keys(columns, rows):
        if key not in wanted:
            shown = ",".join(key)
            return f"{name} has {'/'.join(ids)} {shown!r}, which is not in {test_label}"
    return None


def _canonical(value: str) -> str:
    """1, 1.0 and ' 1' are one id; text ids compare as written (trimmed)."""
    value = value.strip()
    try:
        number = float(value)
    except ValueError:
        return value
    if not math.isfinite(number):
        return value
    return str(int(number)) if number.is_integer() else repr(number)
