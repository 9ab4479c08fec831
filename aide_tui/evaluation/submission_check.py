"""Does a submission fit the test file?  Row count, columns, and the ids themselves.

Pure: it reads files and returns what is wrong, in words a person can act on,
or None.  The columns are checked against the sample submission when the
project has one (its header is the format the task asks for); without one,
the card's id columns must be there.  When the card names id columns, the
submission's ids must be the test file's ids: a header that is right over
ids 0..n-1 is still wrong, and so is an id given twice.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..data.table import delimiter_of
from ..run import safe_read

SUBMISSION = "submission.csv"
_SAMPLE = re.compile(r"(sample|example)[_ -]?submission", re.I)


def find_sample_submission(data_files: list[str]) -> str | None:
    """The project's sample submission file, if it has one (e.g. data/sample_submission.csv)."""
    found = [f for f in data_files if f.lower().endswith(".csv") and _SAMPLE.search(PurePosixPath(f).name)]
    return sorted(found, key=len)[0] if found else None


MAX_SUBMISSION_BYTES = 256 * 1024 * 1024  # beyond any honest submission; the check streams below it


def submission_cap(test: Path, per_byte: int = 64) -> int:
    """Bytes a submission for `test` may have: generous (probability columns per class), never unbounded."""
    try:
        size = Path(test).stat().st_size
    except OSError:
        size = 0
    return min(MAX_SUBMISSION_BYTES, (1 << 20) + per_byte * size)


def _header(rows) -> list[str]:
    return next((row for row in rows if row), [])


def _test_shape(test: Path, id_columns: list[str]) -> tuple[list[str], int, list[str], set[tuple[str, ...]]]:
    """The test file's columns, row count, the id columns it has and their keys (streamed: it may be large)."""
    with Path(test).open(encoding="utf-8-sig", newline="", errors="replace") as fh:
        reader = csv.reader(fh, delimiter=delimiter_of(test))  # the project's file, as data.table reads it
        columns = [c.strip() for c in _header(reader)]
        ids = [c for c in id_columns if c in columns]
        where = [columns.index(c) for c in ids]
        count, keys = 0, set()
        for row in reader:
            if row:
                count += 1
                if where:
                    keys.add(_key(row, where))
    return columns, count, ids, keys


def _key(row: list[str], where: list[int]) -> tuple[str, ...]:
    return tuple(_canonical(row[i]) if i < len(row) else "" for i in where)


@dataclass
class _Submission:
    """What one streamed pass over a submission found (its rows are never all in memory)."""

    columns: list[str]
    rows: int = 0
    stray: tuple[str, ...] | None = None  # the first id not in the test file
    twice: tuple[str, ...] | None = None  # the first id given twice


def _read_submission(submission: Path, cap: int, ids: list[str], wanted: set[tuple[str, ...]]) -> _Submission:
    with safe_read.open_text(submission.parent, submission.name, cap) as fh:
        reader = csv.reader(fh)
        found = _Submission(_header(reader))
        where = [found.columns.index(c) for c in ids if c in found.columns]
        check = len(where) == len(ids) > 0
        seen: set[tuple[str, ...]] = set()
        for row in reader:
            if not row:
                continue
            found.rows += 1
            if check and found.stray is None and found.twice is None:
                key = _key(row, where)
                if key not in wanted:
                    found.stray = key
                elif key in seen:
                    found.twice = key
                else:
                    seen.add(key)
    return found


def check_submission(
    submission: Path, test: Path, id_columns: list[str], sample: Path | None = None, test_label: str = "the test file"
) -> str | None:
    """What is wrong with `submission` for `test` (None: nothing found).

    The submission is the script's: it is opened through `safe_read` (no symlink, no
    FIFO, no hard link, at most `submission_cap` bytes) and streamed, so a 30 MB file
    costs a few megabytes of aide-tui's memory, not a gigabyte."""
    name = submission.name
    try:
        test_columns, test_rows, ids, wanted = _test_shape(test, id_columns)
    except (OSError, csv.Error):
        return None  # nothing to compare with; the card's test file is checked elsewhere
    try:
        found = _read_submission(submission, submission_cap(test), ids, wanted)
    except FileNotFoundError:
        return f"wrote no {name}"
    except safe_read.RefusedRead as exc:
        return f"{name} is not read: {exc.strerror}"
    except (OSError, csv.Error) as exc:
        return f"{name} cannot be read as CSV ({exc})"
    columns = found.columns
    if not columns:
        return f"{name} is empty"
    if found.rows != test_rows:
        return f"{name} has {found.rows} rows, {test_label} has {test_rows}"
    if sample is not None:
        try:
            with Path(sample).open(encoding="utf-8-sig", newline="", errors="replace") as fh:
                expected = [c.strip() for c in _header(csv.reader(fh, delimiter=delimiter_of(sample)))]
        except (OSError, csv.Error):
            expected = []
        if expected and sorted(columns) != sorted(expected):
            return f"{name} columns {','.join(columns)}; expected {','.join(expected)} (as in {sample.name})"
    missing = [c for c in ids if c not in columns]
    if missing:
        return f"{name} columns {','.join(columns)}; expected the id column{'s' if len(missing) > 1 else ''} {','.join(missing)} of {test_label}"
    if len(columns) <= len(ids):
        return f"{name} has only the id columns {','.join(columns)}; it needs a prediction column"
    if found.stray is not None:
        return f"{name} has {'/'.join(ids)} {','.join(found.stray)!r}, which is not in {test_label}"
    if found.twice is not None:
        return f"{name} has {'/'.join(ids)} {','.join(found.twice)!r} twice"
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
