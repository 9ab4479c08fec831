"""The run's evaluation files, made once and kept in the run directory.

``.aide/runs/<run>/evaluation/`` holds:

* ``split.json``: the seed, the share, a hash of the training file and the
  withheld row indices, so a resumed run reuses exactly the same split;
* ``folds.csv``: ``row,fold`` for every training row the scripts see (row is
  the 0-based data row of the train file in ``./input``), shown to every node
  as ``./input/folds.csv``;
* ``train/<name>``: the training file without the withheld rows, shown in
  place of the original (only when rows are withheld);
* ``holdout_features.csv``: the withheld rows with the test file's columns,
  put in place of the test file when a node is re-run on the holdout;
* ``holdout_labels.csv``: their id columns and target.  It never enters a
  workspace, and the sandbox hides the whole project (run directory included)
  from scripts.

Rows are copied as `data.table` reads them: values are kept verbatim (only
quoting may be normalised) and each copy keeps its original's delimiter, so
the scripts see the data they would otherwise.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..data.table import TableError, TableFormat, read_header, read_table, table_format, write_table
from ..project import write_atomic
from ..search.task_card import METRIC_KINDS, TaskCard
from .split import make_split

FOLDS_NAME = "folds.csv"  # at the top of ./input


@dataclass(frozen=True)
class Evaluation:
    """Where the run's evaluation files are and what they replace in `./input`."""

    root: Path
    train_file: str  # project-relative, as on the card
    test_file: str | None
    rows: int  # training rows the scripts see
    holdout_rows: int  # rows withheld (0: no holdout)

    @property
    def folds(self) -> Path:
        return self.root / FOLDS_NAME

    @property
    def reduced_train(self) -> Path:
        return self.root / "train" / PurePosixPath(self.train_file).name

    @property
    def holdout_features(self) -> Path:
        return self.root / "holdout_features.csv"

    @property
    def holdout_labels(self) -> Path:
        return self.root / "holdout_labels.csv"

    @property
    def has_holdout(self) -> bool:
        return self.holdout_rows > 0 and self.test_file is not None

    def input_sources(self) -> dict[str, Path]:
        """What every node's ./input holds instead of (or besides) the project's files."""
        sources = {FOLDS_NAME: self.folds}
        if self.has_holdout:
            sources[self.train_file] = self.reduced_train
        return sources

    def holdout_sources(self) -> dict[str, Path]:
        """./input for a holdout re-run: the node's input, with the withheld rows as the test file."""
        assert self.test_file is not None
        return {**self.input_sources(), self.test_file: self.holdout_features}


class StagingError(Exception):
    """The training file cannot be split (unreadable, no such target column); the message says why."""


def stage(
    run_dir: Path, project_root: Path, card: TaskCard, seed: int, holdout_share: float
) -> tuple[Evaluation, list[str]]:
    """The run's evaluation, made now or reused from an earlier start; plus notices for the user."""
    root = Path(run_dir) / "evaluation"
    train_path = Path(project_root) / card.train_file
    header, rows = _read(train_path, card.train_file)
    if card.target not in header:
        raise StagingError(f"{card.train_file} has no column {card.target!r} (the card's target)")
    digest = _sha256(train_path)
    notices: list[str] = []
    if card.test_file is None and holdout_share > 0:
        notices.append(
            "no hidden holdout: the task card names no test file, so a node cannot be re-run on withheld rows"
        )
        holdout_share = 0.0
    saved = _saved_split(root)
    if saved is not None and saved.get("train_sha256") != digest:
        notices.append(f"{card.train_file} changed since the run started; its folds and holdout were made again")
        saved = None
    if saved is not None and (saved.get("group_column"), saved.get("time_column")) != (
        card.group_column,
        card.time_column,
    ):
        notices.append("the task card's group or time column changed; the folds and holdout were made again")
        saved = None
    if saved is not None:
        held = [int(i) for i in saved["holdout_rows"]]
        folds = [int(f) for f in saved["folds"]]
    else:
        labels = _column(header, rows, card.target)
        classification = METRIC_KINDS.get(card.metric, ("", "regression"))[1] == "classification"
        groups, times = structure_of(card, header, rows)
        split = make_split(labels, classification, seed, holdout_share, groups, times)
        held, folds = list(split.holdout_rows), list(split.folds)
        root.mkdir(parents=True, exist_ok=True)
        _write_split(root, seed, holdout_share, card, digest, held, folds)
    evaluation = Evaluation(root, card.train_file, card.test_file, len(rows) - len(held), len(held))
    _write_files(evaluation, card, project_root, header, rows, held, folds)
    return evaluation, notices


def _read(path: Path, label: str) -> tuple[list[str], list[list[str]]]:
    try:
        return read_table(path, label=label)
    except TableError as exc:
        raise StagingError(str(exc)) from None


def _column(header: list[str], rows: list[list[str]], name: str) -> list[str]:
    i = header.index(name)
    return [row[i] if i < len(row) else "" for row in rows]


def structure_of(card: TaskCard, header: list[str], rows: list[list[str]]) -> tuple[list[str] | None, list | None]:
    """The group of every row, or the time of every row (numbers, or dates as seconds), as the card says."""
    if card.time_column and card.time_column in header:
        values = _column(header, rows, card.time_column)
        return None, _times(values, card.time_column)
    if card.group_column and card.group_column in header:
        return [v.strip() for v in _column(header, rows, card.group_column)], None
    return None, None


def _times(values: list[str], column: str) -> list[float | None]:
    import pandas as pd

    numbers = pd.to_numeric(pd.Series(values).str.strip(), errors="coerce")
    if numbers.notna().sum() >= 0.95 * max(1, sum(1 for v in values if v.strip())):
        return [None if pd.isna(x) else float(x) for x in numbers]
    dates = pd.to_datetime(pd.Series(values), errors="coerce", format="mixed")
    if dates.notna().sum() < 0.95 * max(1, sum(1 for v in values if v.strip())):
        raise StagingError(f"time column {column!r}: its values are neither numbers nor dates")
    return [None if pd.isna(x) else x.timestamp() for x in dates]


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _saved_split(root: Path) -> dict | None:
    try:
        saved = json.loads((root / "split.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) and "holdout_rows" in saved and "folds" in saved else None


def _write_split(
    root: Path, seed: int, share: float, card: TaskCard, digest: str, held: list[int], folds: list[int]
) -> None:
    record = {
        "seed": seed,
        "holdout": share,
        "train_file": card.train_file,
        "train_sha256": digest,
        "group_column": card.group_column,
        "time_column": card.time_column,
        "holdout_rows": held,
        "folds": folds,
    }
    write_atomic(root / "split.json", json.dumps(record) + "\n")


def _write_csv(path: Path, header: list[str], rows: list[list[str]], fmt: TableFormat | None = None) -> None:
    write_table(path, header, rows, fmt)


def _write_files(
    evaluation: Evaluation,
    card: TaskCard,
    project_root: Path,
    header: list[str],
    rows: list[list[str]],
    held: list[int],
    folds: list[int],
) -> None:
    """(Re)write the derived files from the split: cheap, and a half-written earlier start is repaired."""
    held_set = set(held)
    kept = [row for i, row in enumerate(rows) if i not in held_set]
    _write_csv(evaluation.folds, ["row", "fold"], [[str(i), str(f)] for i, f in enumerate(folds)])
    if not evaluation.has_holdout:
        return
    train_format = _format(Path(project_root) / card.train_file)
    test_format = _format(Path(project_root) / card.test_file) if card.test_file else None
    _write_csv(evaluation.reduced_train, header, kept, train_format)
    withheld = [rows[i] for i in held]
    test_header = _read_header(Path(project_root) / card.test_file) if card.test_file else []
    feature_cols = (
        test_header
        if test_header and all(c in header for c in test_header)
        else [c for c in header if c != card.target]
    )
    label_cols = [c for c in card.id_columns if c in header and c != card.target] + [card.target]
    _write_csv(
        evaluation.holdout_features,
        feature_cols,
        [_pick(header, row, feature_cols) for row in withheld],
        test_format or train_format,
    )
    _write_csv(evaluation.holdout_labels, label_cols, [_pick(header, row, label_cols) for row in withheld])


def _read_header(path: Path) -> list[str]:
    try:
        return read_header(path)
    except TableError:
        return []


def _format(path: Path) -> TableFormat | None:
    try:
        return table_format(path)
    except TableError:
        return None


def _pick(header: list[str], row: list[str], columns: list[str]) -> list[str]:
    index = {name: i for i, name in enumerate(header)}
    return [row[index[c]] if index[c] < len(row) else "" for c in columns]
