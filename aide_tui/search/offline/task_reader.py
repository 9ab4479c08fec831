"""Work out what a tabular task asks for, from task.md and the CSV headers.

The offline coder has no model to read the task for it, so it relies on the
conventions real tasks follow: a train file and a test file, the target being
the column the test file lacks (or the one task.md names), an identifier
column shared by both, and the metric named in plain words in task.md.
Only the standard library is used: this runs inside aide-tui, not the script.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..node import Direction

SAMPLE_ROWS = 5000  # rows read to guess column types; the scripts read everything

# (key, patterns, direction, kind): the first entry whose pattern appears wins, so
# the more specific names come first ("root mean squared log error" before "rmse").
METRICS: list[tuple[str, tuple[str, ...], Direction, str]] = [
    ("rmsle", (r"\brmsle\b", r"root mean squared? log(arithmic)? error"), "minimize", "regression"),
    ("rmse", (r"\brmse\b", r"root[- ]mean[- ]squared?[- ]error", r"root[- ]mean[- ]square\b"), "minimize", "regression"),
    ("mse", (r"\bmse\b", r"mean squared error"), "minimize", "regression"),
    ("mae", (r"\bmae\b", r"mean absolute error"), "minimize", "regression"),
    ("r2", (r"\br2\b", r"\br²", r"r-squared", r"r squared", r"coefficient of determination"), "maximize", "regression"),
    ("roc_auc", (r"roc[ _-]?auc", r"\bauc\b", r"area under the (roc )?curve"), "maximize", "classification"),
    ("log_loss", (r"log[ _-]?loss", r"cross[- ]entropy", r"logarithmic loss"), "minimize", "classification"),
    ("f1", (r"\bf1\b", r"f-score", r"f1[- ]score"), "maximize", "classification"),
    ("accuracy", (r"\baccuracy\b",), "maximize", "classification"),
]
METRIC_NAMES = {
    "rmsle": "RMSLE", "rmse": "RMSE", "mse": "MSE", "mae": "MAE", "r2": "R²",
    "roc_auc": "ROC AUC", "log_loss": "log loss", "f1": "F1", "accuracy": "accuracy",
}
PROBA_METRICS = {"roc_auc", "log_loss"}
_ID_NAME = re.compile(r"(^id$|_id$|^id_|Id$|ID$)")


@dataclass
class TaskSpec:
    """What the generated scripts need to know; paths are as the script sees them."""

    train_path: str  # e.g. "./input/data/train.csv"
    test_path: str | None
    target: str
    id_column: str | None
    metric: str  # a key of METRICS
    direction: Direction
    task_type: str  # "classification" | "regression"
    feature_columns: list[str] = field(default_factory=list)
    categorical_columns: list[str] = field(default_factory=list)
    target_positive: bool = False  # regression target > 0 everywhere (a log transform is safe)
    n_rows: int = 0
    title: str = "Tabular task"

    @property
    def metric_name(self) -> str:
        return METRIC_NAMES.get(self.metric, self.metric)

    @property
    def uses_proba(self) -> bool:
        return self.metric in PROBA_METRICS


class TaskReadError(Exception):
    """The task cannot be handled offline (e.g. no CSV training data)."""


def input_path(relative: str) -> str:
    """Where the runner puts a project file in the node's workspace."""
    return "./input/" + PurePosixPath(relative.replace("\\", "/")).as_posix().lstrip("./")


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        rows = []
        for i, row in enumerate(reader):
            if i >= SAMPLE_ROWS:
                break
            rows.append(row)
    return [h.strip() for h in header], rows


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _values(header: list[str], rows: list[list[str]], column: str) -> list[str]:
    i = header.index(column)
    return [r[i].strip() for r in rows if i < len(r) and r[i].strip() not in ("", "NA", "NaN", "nan")]


def _pick_files(data_files: list[str]) -> tuple[str, str | None]:
    csvs = [f for f in data_files if f.lower().endswith(".csv")]
    if not csvs:
        raise TaskReadError("no CSV file among the data files; the offline coder handles tabular CSV tasks only")
    usable = [f for f in csvs if "submission" not in PurePosixPath(f).name.lower()] or csvs
    train = next((f for f in usable if "train" in PurePosixPath(f).name.lower()), None)
    test = next((f for f in usable if "test" in PurePosixPath(f).name.lower()), None)
    if train is None:
        others = [f for f in usable if f != test]
        train = others[0] if others else usable[0]
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


def _find_id(header: list[str], rows: list[list[str]], test_cols: list[str] | None, target: str) -> str | None:
    shared = [c for c in header if c != target and (test_cols is None or c in test_cols)]
    for c in shared:
        if _ID_NAME.search(c):
            values = _values(header, rows, c)
            if len(set(values)) == len(values) == len(rows):
                return c
    return None


def _title(task: str) -> str:
    for line in task.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line[:80]
    return "Tabular task"


def read_task(project_dir: Path, data_files: list[str], task: str) -> TaskSpec:
    """Build the TaskSpec; raises TaskReadError when the data is not tabular CSV."""
    train_rel, test_rel = _pick_files(data_files)
    header, rows = _read_csv(Path(project_dir) / train_rel)
    if len(header) < 2:
        raise TaskReadError(f"{train_rel} has fewer than two columns")
    test_cols = _read_csv(Path(project_dir) / test_rel)[0] if test_rel else None
    target = _find_target(task, header, test_cols)
    id_column = _find_id(header, rows, test_cols, target)

    target_values = _values(header, rows, target)
    numeric_target = bool(target_values) and all(_is_number(v) for v in target_values)
    found = _find_metric(task)
    if found:
        metric, direction, task_type = found
    else:
        few_classes = len(set(target_values)) <= max(2, min(20, len(target_values) // 20))
        integral = numeric_target and all(float(v).is_integer() for v in target_values)
        task_type = "classification" if (not numeric_target or (integral and few_classes)) else "regression"
        metric, direction = ("accuracy", "maximize") if task_type == "classification" else ("rmse", "minimize")
        low = task.lower()
        if "lower is better" in low:
            direction = "minimize"
        elif "higher is better" in low:
            direction = "maximize"

    features = [c for c in header if c not in (target, id_column)]
    categorical = [c for c in features if not all(_is_number(v) for v in _values(header, rows, c))]
    positive = numeric_target and task_type == "regression" and all(float(v) > 0 for v in target_values)
    return TaskSpec(
        train_path=input_path(train_rel),
        test_path=input_path(test_rel) if test_rel else None,
        target=target,
        id_column=id_column,
        metric=metric,
        direction=direction,
        task_type=task_type,
        feature_columns=features,
        categorical_columns=categorical,
        target_positive=positive,
        n_rows=len(rows),
        title=_title(task),
    )
