"""The recipe: a small, machine-readable description of a generated script.

Every script the offline coder writes carries a `# aide-recipe: {json}` line
right after its docstring (never on line 1 or 2, where Python would read a
`coding=`-like text as the source encoding).
Improving or debugging a node means reading that line back, changing one
field and rendering the script again, so a change is always exactly one
decision and the lineage of changes travels with the code (`history`).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

RECIPE_PREFIX = "# aide-recipe: "
_RECIPE_LINE = re.compile(r"^# aide-recipe: (\{.*\})\s*$", re.M)


@dataclass(frozen=True)
class ModelSpec:
    """One model family: its scikit-learn classes and starting hyper-parameters."""

    display: str
    module: str
    regressor: str
    classifier: str
    regression_params: dict[str, Any]
    classification_params: dict[str, Any]
    seeded: bool  # takes random_state
    scale_sensitive: bool  # distances or penalties: features must be scaled
    why: str

    def cls(self, task_type: str) -> str:
        return self.classifier if task_type == "classification" else self.regressor

    def defaults(self, task_type: str) -> dict[str, Any]:
        return dict(self.classification_params if task_type == "classification" else self.regression_params)


_TREES = {"n_estimators": 300, "min_samples_leaf": 1}
MODELS: dict[str, ModelSpec] = {
    "linear": ModelSpec(
        "regularised linear model",
        "sklearn.linear_model",
        "Ridge",
        "LogisticRegression",
        {"alpha": 1.0},
        {"C": 1.0, "max_iter": 2000},
        False,
        True,
        "a fast, well-understood baseline that shows how much a linear fit explains",
    ),
    "random_forest": ModelSpec(
        "random forest",
        "sklearn.ensemble",
        "RandomForestRegressor",
        "RandomForestClassifier",
        dict(_TREES),
        dict(_TREES),
        True,
        False,
        "robust to feature scales and interactions with little tuning",
    ),
    "hist_gradient_boosting": ModelSpec(
        "histogram gradient boosting",
        "sklearn.ensemble",
        "HistGradientBoostingRegressor",
        "HistGradientBoostingClassifier",
        {"learning_rate": 0.1, "max_iter": 200, "max_leaf_nodes": 31},
        {"learning_rate": 0.1, "max_iter": 200, "max_leaf_nodes": 31},
        True,
        False,
        "usually the strongest scikit-learn model on tabular data",
    ),
    "extra_trees": ModelSpec(
        "extra trees",
        "sklearn.ensemble",
        "ExtraTreesRegressor",
        "ExtraTreesClassifier",
        dict(_TREES),
        dict(_TREES),
        True,
        False,
        "more randomised trees than a random forest, which often lowers variance further",
    ),
    "knn": ModelSpec(
        "k-nearest neighbours",
        "sklearn.neighbors",
        "KNeighborsRegressor",
        "KNeighborsClassifier",
        {"n_neighbors": 10, "weights": "uniform"},
        {"n_neighbors": 10, "weights": "uniform"},
        False,
        True,
        "a non-parametric view of the data that makes different errors from trees",
    ),
    "gradient_boosting": ModelSpec(
        "gradient boosting",
        "sklearn.ensemble",
        "GradientBoostingRegressor",
        "GradientBoostingClassifier",
        {"n_estimators": 200, "learning_rate": 0.1, "max_depth": 3},
        {"n_estimators": 200, "learning_rate": 0.1, "max_depth": 3},
        True,
        False,
        "boosted shallow trees, a strong classic for tabular data",
    ),
}


@dataclass
class Recipe:
    model: str
    params: dict[str, Any]
    scaler: str | None = None  # "standard" | "robust" | None
    impute: str = "median"  # numeric imputation strategy
    missing_indicators: bool = False  # add is-missing flags next to imputed numbers
    encoding: str = "onehot"  # "onehot" | "ordinal" for text categories
    validation: str = "holdout"  # "holdout" (20%) | "cv" (5 folds)
    blend_with: str | None = None  # a second model family averaged with the first
    log_target: bool = False  # regression on log1p(target)
    defensive: bool = False  # re-derive the target column from the headers at run time
    history: list[str] = field(default_factory=list)  # changes applied along the lineage

    def to_comment(self) -> str:
        return RECIPE_PREFIX + json.dumps(asdict(self), sort_keys=True)

    def copy(self) -> Recipe:
        return Recipe(**json.loads(json.dumps(asdict(self))))


def parse_recipe(code: str) -> Recipe | None:
    """The recipe embedded in `code`, or None for code the offline coder did not write."""
    m = _RECIPE_LINE.search(code or "")
    if not m:
        return None
    try:
        data = json.loads(m.group(1))
        known = {f.name for f in fields(Recipe)}
        recipe = Recipe(**{k: v for k, v in data.items() if k in known})
    except (ValueError, TypeError):
        return None
    if recipe.model not in MODELS or (recipe.blend_with and recipe.blend_with not in MODELS):
        return None
    return recipe


def recipe_changes(before: Recipe, after: Recipe) -> list[str]:
    """The decisions that differ; a model switch counts once (its params come with it)."""
    a, b = asdict(before), asdict(after)
    changed = []
    for name in a:
        if name in ("history", "params"):
            continue
        if a[name] != b[name]:
            changed.append(name)
    if a["model"] == b["model"]:
        keys = set(a["params"]) | set(b["params"])
        changed += [f"params.{k}" for k in sorted(keys) if a["params"].get(k) != b["params"].get(k)]
    return changed
