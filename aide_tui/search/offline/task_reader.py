"""Work out what a tabular task asks for, from task.md and the CSV files.

The offline coder has no model to read the task for it, so it relies on the
conventions real tasks follow: a train file and a test file, the target being
the column the test file lacks (or the one task.md names), identifier columns
that task.md or a sample submission names and whose values are unique per
test row, and the metric named in plain words in task.md.

The decisions a person would want to check are one small `TaskCard` (files,
target, id columns, metric, direction): `derive_task_card` makes it, a front
end can show it and let the user correct it, and `read_task` builds the
script-facing `TaskSpec` from whichever card it is given.
Tables are read by `aide_tui.data.table` (encoding and delimiter decided once).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ...data.structure import find_extra_tables, find_group_column, find_time_column
from ...data.table import TableError, count_rows, pandas_options, read_header, read_table, table_format
from ..node import Direction
from ..task_card import METRIC_KINDS, METRIC_NAMES, METRICS, PROBA_METRICS, TaskCard, input_path

SAMPLE_ROWS = 5000  # rows read to guess column types; the scripts read everything

_ID_NAME = re.compile(r"(^id$|_id$|^id_|Id$|ID$)")
# Words that, next to a column name in task.md, say the column identifies a row.
_ID_WORDS = re.compile(r"identif|\bids?\b|\bkey\b|unique|\bindex\b|one row per", re.I)
_CLAUSES = re.compile(r"(?<=[.;!?])\s+|\n\s*\n|\n\s*[-*]\s")
_MISSING = ("", "NA", "NaN", "nan")


@dataclass
class TaskSpec:
    """What the generated scripts need to know; paths are as the script sees them."""

    train_path: str  # e.g. "./input/data/train.csv"
    test_path: str | None
    target: str
    id_columns: list[str]
    metric: str  # a key of METRICS
    direction: Direction
    task_type: str  # "classification" | "regression"
    feature_columns: list[str] = field(default_factory=list)
    categorical_columns: list[str] = field(default_factory=list)
    target_positive: bool = False  # regression target > 0 everywhere (a log transform is safe)
    n_rows: int = 0
    title: str = "Tabular task"
    folds_path: str | None = None  # ./input/folds.csv when the run fixes the folds (the scripts validate on them)
    group_column: str | None = None  # never a feature; whole groups are validated together
    time_column: str | None = None  # folds are time-ordered: fold k trains on lower folds only
    drop_time: bool = False  # the time column is text (a date): not a feature as it stands
    extra_tables: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)  # (path, key, read options)
    train_read: dict[str, str] = field(default_factory=dict)  # pd.read_csv options (delimiter, encoding)
    test_read: dict[str, str] = field(default_factory=dict)

    @property
    def metric_name(self) -> str:
        return METRIC_NAMES.get(self.metric, self.metric)

    @property
    def uses_proba(self) -> bool:
        return self.metric in PROBA_METRICS


class TaskReadError(Exception):
    """The task cannot be handled offline (e.g. no CSV training data, or a card naming a missing column)."""


class TableUnreadable(TaskReadError):
    """A data file the card needs cannot be read (encoding, empty, not a table): the run must not start."""


def _read_csv(project_dir: Path, rel: str, limit: int | None = SAMPLE_ROWS) -> tuple[list[str], list[list[str]]]:
    """A project data file's header and first rows; errors name the file as the user does (`rel`)."""
    try:
        return read_table(Path(project_dir) / rel, limit=limit, label=rel)
    except TableError as exc:
        raise TableUnreadable(str(exc)) from None


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _values(header: list[str], rows: list[list[str]], column: str) -> list[str]:
    i = header.index(column)
    return [r[i].strip() for r in rows if i < len(r) and r[i].strip() not in _MISSING]


def _unique_per_row(header: list[str], rows: list[list[str]], columns: list[str]) -> bool:
    """Every row has a value in `columns` and no two rows share the same values."""
    idx = [header.index(c) for c in columns]
    keys = [tuple(r[i].strip() if i < len(r) else "" for i in idx) for r in rows]
    return bool(keys) and all(all(v not in _MISSING for v in k) for k in keys) and len(set(keys)) == len(keys)


def _is_sample_submission(path: str) -> bool:
    return "submission" in PurePosixPath(path).name.lower()


def _pick_files(data_files: list[str]) -> tuple[str, str | None]:
    csvs = [f for f in data_files if f.lower().endswith(".csv")]
    if not csvs:
        others = ", ".join(data_files[:5]) + (" ..." if len(data_files) > 5 else "") if data_files else "none"
        raise TaskReadError(
            f"it needs CSV data, and no data file is a .csv (found: {others}); "
            "convert the data to CSV, or use the LLM coder (--coder llm)"
        )
    usable = [f for f in csvs if not _is_sample_submission(f)] or csvs
    train = next((f for f in usable if "train" in PurePosixPath(f).name.lower()), None)
    test = next((f for f in usable if "test" in PurePosixPath(f).name.lower()), None)
    if train is None:
        rest = [f for f in usable if f != test]
        train = rest[0] if rest else usable[0]
    if test == train:
        test = None
    return train, test


def _find_metric(text: str) -> tuple[str, Direction, str] | None:
    low = text.lower()
    for key, patterns, direction, kind in METRICS:
        if any(re.search(p, low) for p in patterns):
            return key, direction, kind
    return None


def _find_target(task: str, train_cols: list[str], test_cols: list[str] | None) -> str:
    """The column test lacks; among several, the one task.md talks about; else the last."""
    mentioned = [c for c in train_cols if re.search(rf"(?<![\w]){re.escape(c)}(?![\w])", task)]
    if test_cols is not None:
        only_train = [c for c in train_cols if c not in test_cols]
        if len(only_train) == 1:
            return only_train[0]
        named = [c for c in only_train if c in mentioned]
        if named:
            return named[0]
        if only_train:
            return only_train[-1]
    # No test file to compare with: trust a column named next to "predict"/"target".
    for sentence in re.split(r"(?<=[.!?\n])", task):
        if re.search(r"predict|target|label|column to", sentence, re.I):
            for c in train_cols:
                if c in mentioned and re.search(rf"(?<![\w]){re.escape(c)}(?![\w])", sentence):
                    return c
    return train_cols[-1]


def _mentions(text: str, column: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(column)}(?![\w])", text) is not None


def _submission_columns(task: str, columns: set[str], target: str) -> list[str] | None:
    """The header task.md asks the submission to have, if it names one: `date,weather` in backticks, or
    a comma list of columns anywhere on a line, in any language ("Rendre submission.csv : personne,wages")."""
    for m in re.finditer(r"`([^`\n]+)`|((?<![\w.-])[\w.-]+(?:[ \t]*,[ \t]*[\w.-]+)+)", task):
        names = [n.strip() for n in (m.group(1) or m.group(2)).split(",")]
        if names[-1] not in columns:  # "Submit man,year,wage." ends a sentence
            names[-1] = names[-1].rstrip(".:;")
        if len(names) >= 2 and target in names and all(n in columns for n in names):
            return names
    return None


def required_ids(task: str, target: str, columns: set[str], sample_header: list[str] | None) -> list[str]:
    """The columns besides the target that the sample submission or task.md asks a submission to carry."""
    named = sample_header if sample_header and target in sample_header else _submission_columns(task, columns, target)
    return [c for c in (named or []) if c != target and c in columns]


def _find_ids(
    task: str,
    target: str,
    header: list[str],
    rows: list[list[str]],
    test: tuple[list[str], list[list[str]]] | None,
    sample_header: list[str] | None,
) -> list[str]:
    """The identifier columns, by evidence, strongest first; never by name alone.

    A sample submission's header or the submission format task.md spells out
    names them outright; otherwise a column task.md says identifies the rows,
    and last a column with an id-like name -- in both cases only if its values
    are unique per row of the test file (or of the training file without one).
    """
    key_header, key_rows = test if test is not None else (header, rows)
    candidates = [c for c in key_header if c != target]
    for named in (sample_header, _submission_columns(task, set(header) | set(key_header), target)):
        ids = [c for c in (named or []) if c in candidates]
        if named and target in named and ids and _unique_per_row(key_header, key_rows, ids):
            return ids
    for clause in _CLAUSES.split(task):
        if _ID_WORDS.search(clause):
            found = [c for c in candidates if _mentions(clause, c) and _unique_per_row(key_header, key_rows, [c])]
            if len(found) == 1:
                return found
    by_name = [c for c in candidates if _ID_NAME.search(c) and _unique_per_row(key_header, key_rows, [c])]
    return by_name[:1]


def _title(task: str) -> str:
    for line in task.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:80]
    return "Tabular task"


def _infer_metric(task: str, target_values: list[str]) -> tuple[str, Direction]:
    found = _find_metric(task)
    if found:
        return found[0], found[1]
    numeric = bool(target_values) and all(_is_number(v) for v in target_values)
    few_classes = len(set(target_values)) <= max(2, min(20, len(target_values) // 20))
    integral = numeric and all(float(v).is_integer() for v in target_values)
    metric: str
    direction: Direction
    metric, direction = (
        ("accuracy", "maximize") if (not numeric or (integral and few_classes)) else ("rmse", "minimize")
    )
    low = task.lower()
    if "lower is better" in low:
        direction = "minimize"
    elif "higher is better" in low:
        direction = "maximize"
    return metric, direction


def derive_task_card(project_dir: Path, data_files: list[str], task: str) -> TaskCard:
    """The card the offline reader proposes; raises TaskReadError when the data is not tabular CSV."""
    project_dir = Path(project_dir)
    train_rel, test_rel = _pick_files(data_files)
    header, rows = _read_csv(project_dir, train_rel)
    if len(header) < 2:
        raise TaskReadError(f"{train_rel} has fewer than two columns")
    test = _read_csv(project_dir, test_rel) if test_rel else None
    target = _find_target(task, header, test[0] if test else None)
    sample = next((f for f in data_files if f.lower().endswith(".csv") and _is_sample_submission(f)), None)
    sample_header = _read_csv(project_dir, sample)[0] if sample else None
    metric, direction = _infer_metric(task, _values(header, rows, target))
    ids = _find_ids(task, target, header, rows, test, sample_header)
    time_column = find_time_column(header, rows, test, [target])
    # A column of a composite id (person + year) can be the group; a single id is unique per row, never a group.
    single_id = ids if len(ids) == 1 else []
    group_column = find_group_column(
        task, header, rows, test, [target, *single_id, *([time_column] if time_column else [])]
    )
    others = [f for f in data_files if f.lower().endswith(".csv") and f not in (train_rel, test_rel, sample)]
    extra = find_extra_tables(task, str(project_dir), header, others, [target])
    return TaskCard(
        train_file=train_rel,
        test_file=test_rel,
        target=target,
        id_columns=ids,
        metric=metric,
        direction=direction,
        group_column=group_column,
        time_column=time_column,
        extra_tables=extra,
    )


def _check_card(card: TaskCard, header: list[str], test_cols: list[str] | None) -> None:
    """A card the user edited must name real columns and a known metric."""
    if card.target not in header:
        raise TaskReadError(f"task card: target {card.target!r} is not a column of {card.train_file}")
    missing = [c for c in card.id_columns if c not in (test_cols if test_cols is not None else header)]
    if missing:
        raise TaskReadError(
            f"task card: id column {missing[0]!r} is not a column of {card.test_file or card.train_file}"
        )
    if card.metric not in METRIC_KINDS:
        raise TaskReadError(f"task card: unknown metric {card.metric!r}; use one of {', '.join(METRIC_KINDS)}")


def csv_headers(project_dir: Path, data_files: list[str]) -> dict[str, list[str]]:
    """{CSV data file: its header}: the choices a form offers for files and columns (unreadable ones left out)."""
    headers = {}
    for rel in data_files:
        if rel.lower().endswith(".csv") and (Path(project_dir) / rel).is_file():
            try:
                headers[rel] = read_header(Path(project_dir) / rel, label=rel)
            except TableError:
                continue
    return headers


def check_card(project_dir: Path, data_files: list[str], card: TaskCard) -> None:
    """A card from the user or the LLM must fit the data: CSV files of the project, columns
    that exist, a target that is not an id, and id columns unique per test row (the key a
    submission is matched on).  TaskReadError says what is wrong."""
    for role, name in (("train file", card.train_file), ("test file", card.test_file)):
        if name is not None and name not in data_files:
            raise TaskReadError(f"task card: {role} {name!r} is not a data file of the project")
        if name is not None and not name.lower().endswith(".csv"):
            raise TaskReadError(f"task card: {role} {name!r} is not a .csv file")
    if card.test_file == card.train_file:
        raise TaskReadError("task card: the test file must differ from the train file (or be none)")
    header, rows = _read_csv(project_dir, card.train_file)
    test = _read_csv(project_dir, card.test_file) if card.test_file else None
    _check_card(card, header, test[0] if test else None)
    if card.target in card.id_columns:
        raise TaskReadError(f"task card: the target {card.target!r} cannot also be an id column")
    if card.direction not in ("maximize", "minimize"):
        raise TaskReadError(f"task card: direction must be maximize or minimize, not {card.direction!r}")
    key_header, key_rows = test if test is not None else (header, rows)
    if card.id_columns and not _unique_per_row(key_header, key_rows, card.id_columns):
        raise TaskReadError(
            f"task card: id column(s) {', '.join(card.id_columns)} are not unique per row of "
            f"{card.test_file or card.train_file}, so they cannot identify a prediction"
        )
    _check_structure(project_dir, data_files, card, header)
    if test is not None and not card.id_columns:
        _check_no_invented_id(project_dir, data_files, card, header, test[0])


def _check_structure(project_dir: Path, data_files: list[str], card: TaskCard, header: list[str]) -> None:
    """Group and time columns are training columns other than the target; extra tables join on a shared key."""
    for key, column in (("group_column", card.group_column), ("time_column", card.time_column)):
        if column is not None and column not in header:
            raise TaskReadError(f"task card: {key} {column!r} is not a column of {card.train_file}")
        if column is not None and column == card.target:
            raise TaskReadError(f"task card: {key} {column!r} cannot be the target")
    if card.group_column is not None and card.id_columns == [card.group_column]:
        raise TaskReadError(
            f"task card: group_column {card.group_column!r} is an id column; ids are unique per row, groups repeat"
        )
    for table in card.extra_tables:
        file, key = table["file"], table["key"]
        if file not in data_files or not file.lower().endswith(".csv"):
            raise TaskReadError(f"task card: extra table {file!r} is not a CSV data file of the project")
        if key not in header:
            raise TaskReadError(f"task card: join key {key!r} of {file} is not a column of {card.train_file}")
        if key not in _read_csv(project_dir, file, limit=0)[0]:
            raise TaskReadError(f"task card: join key {key!r} is not a column of {file}")


def _check_no_invented_id(
    project_dir: Path, data_files: list[str], card: TaskCard, header: list[str], test_header: list[str]
) -> None:
    """A submission the task matches by id must carry the test file's ids; a card without any would make
    the scripts number the rows instead, and every prediction would land on the wrong row."""
    sample = next((f for f in data_files if f.lower().endswith(".csv") and _is_sample_submission(f)), None)
    sample_header = _read_csv(project_dir, sample, limit=0)[0] if sample else None
    task_md = Path(project_dir) / "task.md"
    task = task_md.read_text(encoding="utf-8", errors="replace") if task_md.is_file() else ""
    needed = [c for c in required_ids(task, card.target, set(header) | set(test_header), sample_header)]
    needed = [c for c in needed if c in test_header]
    if needed:
        source = sample or "task.md"
        listed = ", ".join(f'"{c}"' for c in needed)
        raise TaskReadError(
            f"task card: the submission must carry {', '.join(needed)} (as {source} says) and the card names no "
            f"id column; set [task] id_columns = [{listed}] in aide.toml"
        )


def offline_problem(project_dir: Path, data_files: list[str], card: TaskCard) -> str | None:
    """Why the offline coder cannot solve `card`'s task (None: it can): e.g. no feature column and no table to join."""
    header = _read_csv(project_dir, card.train_file, limit=0)[0]
    skip = {card.target, *card.id_columns, *([card.group_column] if card.group_column else [])}
    if not [c for c in header if c not in skip] and not card.extra_tables:
        return (
            f"task card: {card.train_file} has no feature column besides the target and ids, and no other table "
            "is joined to it; name the tables and their key in aide.toml ([task] extra_tables = "
            '["data/features.csv:key"]), or use --coder llm, which can read the data its own way'
        )
    return None


def card_problem(project_dir: Path, data_files: list[str], card: TaskCard) -> str | None:
    """What `check_card` finds wrong with `card`, or None when it fits the data."""
    try:
        check_card(project_dir, data_files, card)
    except TaskReadError as exc:
        return str(exc)
    except (OSError, ValueError) as exc:
        return f"task card: cannot read the data ({exc})"
    return None


def read_task(project_dir: Path, data_files: list[str], task: str, card: TaskCard | None = None) -> TaskSpec:
    """The TaskSpec for `card` (derived from task.md and the data when not given)."""
    card = card or derive_task_card(project_dir, data_files, task)
    header, rows = _read_csv(project_dir, card.train_file)
    test_cols = _read_csv(project_dir, card.test_file)[0] if card.test_file else None
    _check_card(card, header, test_cols)
    problem = offline_problem(project_dir, data_files, card)
    if problem:
        raise TaskReadError(problem)
    target_values = _values(header, rows, card.target)
    task_type = METRIC_KINDS[card.metric][1]
    time_is_text = card.time_column is not None and not all(
        _is_number(v) for v in _values(header, rows, card.time_column)
    )
    skip = {card.target, *card.id_columns, card.group_column, card.time_column if time_is_text else None}
    features = [c for c in header if c not in skip]
    categorical = [c for c in features if not all(_is_number(v) for v in _values(header, rows, c))]
    positive = (
        task_type == "regression" and bool(target_values) and all(_is_number(v) and float(v) > 0 for v in target_values)
    )
    return TaskSpec(
        train_path=input_path(card.train_file),
        test_path=input_path(card.test_file) if card.test_file else None,
        target=card.target,
        id_columns=list(card.id_columns),
        metric=card.metric,
        direction=card.direction,
        task_type=task_type,
        feature_columns=features,
        categorical_columns=categorical,
        target_positive=positive,
        n_rows=count_rows(Path(project_dir) / card.train_file),
        title=_title(task),
        group_column=card.group_column,
        time_column=card.time_column,
        drop_time=time_is_text,
        extra_tables=[
            (input_path(t["file"]), t["key"], pandas_options(table_format(Path(project_dir) / t["file"])))
            for t in card.extra_tables
        ],
        train_read=pandas_options(table_format(Path(project_dir) / card.train_file)),
        test_read=pandas_options(table_format(Path(project_dir) / card.test_file)) if card.test_file else {},
    )
