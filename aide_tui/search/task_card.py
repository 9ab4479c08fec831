"""The task card: what a run is asked to do, in the decisions a person would check.

Train and test files, target, id columns, metric and direction; and, for real
tables, the structure a row-level shuffle would hide: a group column (rows of
one person, firm, patient belong together, and the test's groups are unseen),
a time column (the test follows the training period), and extra tables joined
to the training rows on a key.  It is derived
at run start (from task.md and the data), can be overridden by an `[task]` table
in aide.toml, is saved with the run (`task_card.json`) so a resumed run keeps it,
and is what the evaluation (folds, holdout, submission checks) is built on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import PurePosixPath
from typing import Any

from .node import Direction

# (key, patterns, direction, kind): the first entry whose pattern appears wins, so
# the more specific names come first ("root mean squared log error" before "rmse").
METRICS: list[tuple[str, tuple[str, ...], Direction, str]] = [
    ("rmsle", (r"\brmsle\b", r"root mean squared? log(arithmic)? error"), "minimize", "regression"),
    (
        "rmse",
        (r"\brmse\b", r"root[- ]mean[- ]squared?[- ]error", r"root[- ]mean[- ]square\b"),
        "minimize",
        "regression",
    ),
    ("mse", (r"\bmse\b", r"mean squared error"), "minimize", "regression"),
    ("mae", (r"\bmae\b", r"mean absolute error"), "minimize", "regression"),
    ("r2", (r"\br2\b", r"\br²", r"r-squared", r"r squared", r"coefficient of determination"), "maximize", "regression"),
    ("roc_auc", (r"roc[ _-]?auc", r"\bauc\b", r"area under the (roc )?curve"), "maximize", "classification"),
    ("log_loss", (r"log[ _-]?loss", r"cross[- ]entropy", r"logarithmic loss"), "minimize", "classification"),
    ("macro_f1", (r"macro[- _]?(averaged? )?f1", r"\bmacro_f1\b"), "maximize", "classification"),
    ("f1", (r"\bf1\b", r"f-score", r"f1[- ]score"), "maximize", "classification"),
    ("accuracy", (r"\baccuracy\b",), "maximize", "classification"),
]
METRIC_NAMES = {
    "rmsle": "RMSLE",
    "rmse": "RMSE",
    "mse": "MSE",
    "mae": "MAE",
    "r2": "R²",
    "roc_auc": "ROC AUC",
    "log_loss": "log loss",
    "f1": "F1",
    "macro_f1": "macro F1",
    "accuracy": "accuracy",
}
PROBA_METRICS = {"roc_auc", "log_loss"}
METRIC_KINDS = {key: (direction, kind) for key, _, direction, kind in METRICS}


@dataclass
class TaskCard:
    """The task as a person would state it; derived, shown, and overridable.

    Paths are project-relative (as in aide.toml); `id_columns` are the columns a
    submission carries next to the prediction, never model features.
    """

    train_file: str
    test_file: str | None
    target: str
    id_columns: list[str]
    metric: str  # a key of METRICS
    direction: Direction
    group_column: str | None = None  # folds and the holdout keep its groups whole; never a feature
    time_column: str | None = None  # folds and the holdout are time-ordered (validate on later periods)
    extra_tables: list[dict[str, str]] = field(default_factory=list)  # [{"file": ..., "key": ...}] joined on key

    def describe(self) -> str:
        """A few lines for a confirmation screen or the headless log."""
        tables = ", ".join(f"{t.get('file')} on {t.get('key')}" for t in self.extra_tables)
        return "\n".join(
            [
                f"train file: {self.train_file}",
                f"test file:  {self.test_file or '(none)'}",
                f"target:     {self.target}",
                f"id columns: {', '.join(self.id_columns) or '(none)'}",
                f"metric:     {METRIC_NAMES.get(self.metric, self.metric)} ({'higher' if self.direction == 'maximize' else 'lower'} is better)",
                f"groups:     {self.group_column or '(none)'}",
                f"time:       {self.time_column or '(none)'}",
                f"tables:     {tables or '(none)'}",
            ]
        )


CARD_KEYS = tuple(f.name for f in fields(TaskCard))


class TaskCardError(ValueError):
    """A card (from aide.toml or a saved run) that does not make sense; the message says what to fix."""


def card_to_dict(card: TaskCard) -> dict[str, Any]:
    return asdict(card)


def card_from_table(table: dict[str, Any], base: TaskCard | None, where: str) -> TaskCard:
    """`base` with the keys of an `[task]` table (or a saved card) laid over it.

    Without a base every key but `test_file` and `id_columns` must be given; a
    metric alone sets its usual direction.  Errors name `where` and the key.
    """
    unknown = [k for k in table if k not in CARD_KEYS]
    if unknown:
        raise TaskCardError(f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(CARD_KEYS)}")
    values: dict[str, Any] = (
        asdict(base)
        if base is not None
        else {"test_file": None, "id_columns": [], "group_column": None, "time_column": None, "extra_tables": []}
    )
    for key, value in table.items():
        if key in OPTIONAL_COLUMNS:
            if value in ("", None):
                value = None
            elif not isinstance(value, str):
                raise TaskCardError(f'{where}: {key} must be a column name, or "" for none')
        elif key == "extra_tables":
            value = _extra_tables(value, where)
        elif key == "id_columns":
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise TaskCardError(f"{where}: id_columns must be a list of column names")
        elif key == "test_file" and value in ("", None):
            value = None
        elif not isinstance(value, str) or not value.strip():
            raise TaskCardError(f"{where}: {key} must be a non-empty string")
        values[key] = value
    if "metric" in table:
        if values["metric"] not in METRIC_KINDS:
            raise TaskCardError(f"{where}: unknown metric {values['metric']!r}; use one of {', '.join(METRIC_KINDS)}")
        if "direction" not in table:
            values["direction"] = METRIC_KINDS[values["metric"]][0]
    missing = [k for k in CARD_KEYS if k not in values]
    if missing:
        raise TaskCardError(f"{where}: the task card cannot be derived from the data, so {missing[0]!r} must be given")
    if values["direction"] not in ("maximize", "minimize"):
        raise TaskCardError(f"{where}: direction must be maximize or minimize")
    return TaskCard(**values)


OPTIONAL_COLUMNS = ("group_column", "time_column")


def _extra_tables(value: Any, where: str) -> list[dict[str, str]]:
    """[{"file": ..., "key": ...}], also accepted as ["file:key", ...] (the short form for aide.toml)."""
    if not isinstance(value, list):
        raise TaskCardError(f'{where}: extra_tables must be a list like [{{file = "data/x.csv", key = "id"}}]')
    tables = []
    for item in value:
        if isinstance(item, str) and ":" in item:
            file, key = item.rsplit(":", 1)
            item = {"file": file.strip(), "key": key.strip()}
        if not (isinstance(item, dict) and isinstance(item.get("file"), str) and isinstance(item.get("key"), str)):
            raise TaskCardError(
                f'{where}: each of extra_tables needs a file and a key, e.g. {{file = "data/x.csv", key = "id"}}'
            )
        tables.append({"file": item["file"], "key": item["key"]})
    return tables


def input_path(relative: str) -> str:
    """Where the runner puts a project file in the node's workspace."""
    return "./input/" + PurePosixPath(relative.replace("\\", "/")).as_posix().lstrip("./")


def card_for_prompt(card: TaskCard) -> str:
    """The card as the coder's prompt states it: paths as the script sees them, and the submission header."""
    better = "higher" if card.direction == "maximize" else "lower"
    submission = [*card.id_columns, card.target]
    lines = [
        f"- Train on `{input_path(card.train_file)}`; the target column is `{card.target}`.",
        f"- Metric: {METRIC_NAMES.get(card.metric, card.metric)} ({card.metric}); {better} is better. "
        "Report this metric on the `Validation metric:` line.",
    ]
    if card.id_columns:
        lines.append(
            f"- Id column(s): {', '.join(f'`{c}`' for c in card.id_columns)}: they identify rows, "
            "they are not features; copy them unchanged into the submission."
        )
    if card.group_column:
        lines.append(
            f"- Rows come in groups by `{card.group_column}`, and the test rows belong to groups the training data "
            f"does not have: validate with whole groups held out (GroupKFold on `{card.group_column}`), and never use "
            f"`{card.group_column}` as a feature."
        )
    if card.time_column:
        lines.append(
            f"- Rows are ordered in time by `{card.time_column}` and the test period follows the training period: "
            "validate on later periods than you train on (never shuffle across time)."
        )
    for table in card.extra_tables:
        lines.append(
            f"- More features are in `{input_path(table['file'])}`, joined to the training and test rows on "
            f"`{table['key']}` (left join; aggregate it first when a key has several rows there)."
        )
    if card.test_file:
        lines.append(
            f"- Predict for `{input_path(card.test_file)}`; `./submission.csv` has one row per test row "
            f"and the columns `{','.join(submission)}`."
        )
    return "\n".join(lines)
