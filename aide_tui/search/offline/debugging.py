"""Recognise why a script failed, and decide how the fixed script differs.

The offline coder cannot read code the way a model does, so it classifies the
failure from the traceback and output (the exception's last line first, the
whole text second) and rewrites the script from a recipe whose template is
robust by construction: a ColumnTransformer that imputes and encodes, column
names read from the header, the target re-derived when the name is wrong.
When the parent is not one of its own scripts, it keeps the parent's model
family where it can spot one, so the fix stays close to what was intended.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..node import Node
from .recipe import MODELS, Recipe

# kind -> (patterns, what went wrong, what the fix does)
FAILURES: list[tuple[str, tuple[str, ...], str, str]] = [
    (
        "missing_module",
        (r"ModuleNotFoundError", r"No module named"),
        "the script imports a package that is not installed",
        "uses scikit-learn, pandas and numpy only",
    ),
    (
        "missing_file",
        (r"FileNotFoundError", r"No such file or directory"),
        "the script reads a file from a path that does not exist in the workspace",
        "reads the data from ./input/, where the runner puts it",
    ),
    (
        "non_numeric",
        (
            r"could not convert string to float",
            r"non-numeric data",
            r"Unable to convert",
            r"unsupported operand type\(s\).*'str'",
            r"could not convert",
        ),
        "a text (categorical) column reached the model without being encoded",
        "routes text columns through an imputer and an encoder inside a ColumnTransformer",
    ),
    (
        "missing_values",
        (r"contains NaN", r"does not accept missing values", r"Input contains infinity"),
        "missing values reached a model that cannot handle them",
        "imputes every column inside the pipeline (median for numbers, most frequent for text)",
    ),
    (
        "feature_mismatch",
        (
            r"X has \d+ features?, but \w+ is expecting \d+",
            r"feature names should match",
            r"Feature names unseen at fit time",
            r"Feature names must be in the same order",
            r"shapes .* not aligned",
            r"number of features",
            r"inconsistent numbers of samples",
            r"Length of values",
        ),
        "the test features did not match the training features",
        "builds the test features with the same fitted pipeline, selecting the training columns by name",
    ),
    (
        "wrong_column",
        (r"KeyError", r"not in index", r"not found in axis", r"None of \[Index"),
        "the script refers to a column that the data does not have",
        "reads the column names from the CSV header and re-derives the target from it",
    ),
]
_EXC_LINE = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception|Interrupt))\b:?\s?(.*)$", re.M)
_METRIC_LINE = re.compile(r"^\s*Validation metric:\s*(\S+)\s*$", re.M | re.I)
# Model classes a user's or an LLM's script may use -> the closest family we can write.
FAMILY_OF_CLASS = {
    "LinearRegression": "linear",
    "Ridge": "linear",
    "Lasso": "linear",
    "ElasticNet": "linear",
    "LogisticRegression": "linear",
    "SGDRegressor": "linear",
    "SGDClassifier": "linear",
    "RandomForest": "random_forest",
    "ExtraTrees": "extra_trees",
    "HistGradientBoosting": "hist_gradient_boosting",
    "XGB": "hist_gradient_boosting",
    "LGBM": "hist_gradient_boosting",
    "CatBoost": "hist_gradient_boosting",
    "lightgbm": "hist_gradient_boosting",
    "xgboost": "hist_gradient_boosting",
    "GradientBoosting": "gradient_boosting",
    "KNeighbors": "knn",
    "DecisionTree": "random_forest",
    "SVR": "knn",
    "SVC": "knn",
}


@dataclass
class Diagnosis:
    kind: str  # a FAILURES kind, "timeout", "memory", "no_metric" or "unknown"
    evidence: str  # the line that gave it away (may be empty)
    cause: str
    fix: str


def _exception_line(text: str) -> str:
    found = _EXC_LINE.findall(text)
    if not found:
        return ""
    name, message = found[-1]
    return f"{name}: {message}".strip().rstrip(":")


def diagnose(parent: Node) -> Diagnosis:
    """Why `parent` failed, from its exec info, traceback and output."""
    info = parent.exec
    reason = info.killed_reason or ""
    if reason == "timeout":
        return Diagnosis(
            "timeout",
            "killed: timeout",
            "the script ran out of time",
            "validates on a single hold-out split and uses a lighter model",
        )
    if reason.startswith("memory"):
        return Diagnosis(
            "memory", reason, "the script ran out of memory", "uses a lighter model and a single hold-out split"
        )
    text = "\n".join(t for t in (info.traceback, parent.output) if t)
    last = _exception_line(info.traceback or "") or _exception_line(parent.output or "")
    for haystack in (last, text):
        if not haystack:
            continue
        for kind, patterns, cause, fix in FAILURES:
            if any(re.search(p, haystack) for p in patterns):
                return Diagnosis(kind, last, cause, fix)
    if info.exit_code == 0 and not _METRIC_LINE.search(parent.output or ""):
        return Diagnosis(
            "no_metric",
            "",
            "the script finished without printing 'Validation metric: <number>'",
            "prints the validation metric as its last line",
        )
    return Diagnosis("unknown", last, "", "")


def family_in_code(code: str) -> str | None:
    """The model family a foreign script uses, if one of the known classes appears."""
    for cls, family in FAMILY_OF_CLASS.items():
        if re.search(rf"\b{cls}", code or ""):
            return family
    return None


def fixed_recipe(base: Recipe, diagnosis: Diagnosis) -> Recipe:
    """`base` adjusted for the failure; the template itself already fixes data-handling bugs."""
    r = base.copy()
    if diagnosis.kind in ("timeout", "memory"):
        r.validation = "holdout"
        r.blend_with = None
        for name in ("n_estimators", "max_iter"):
            if name in r.params:
                r.params[name] = max(50, r.params[name] // 2)
        if diagnosis.kind == "memory" and r.model in ("random_forest", "extra_trees", "knn"):
            r.model, r.params = "hist_gradient_boosting", MODELS["hist_gradient_boosting"].defaults("regression")
    if diagnosis.kind in ("wrong_column", "feature_mismatch", "unknown"):
        r.defensive = True
    if diagnosis.kind == "non_numeric" and r.encoding not in ("onehot", "ordinal"):
        r.encoding = "onehot"
    if diagnosis.kind == "missing_values":
        r.missing_indicators = True
    r.history = base.history + [f"debug:{diagnosis.kind}"]
    return r
