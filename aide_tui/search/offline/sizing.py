"""Size a recipe for the data and the node's limits: tree counts, `n_jobs`, early stopping.

On a 43k-row table, forests of 300-600 trees with no `n_jobs` were killed at the
600 s timeout in 4 of 11 nodes.  The script fits FITS models (the five folds and
the refit), so a recipe's trees are chosen to fit that many fits into half the
timeout, and a recipe that would not fit even with MIN_TREES is not drafted.

Cost model, seconds per tree: TREE_SECONDS[family] x rows x log2(rows) x the
features a split looks at (all of them for regression forests and boosting, the
square root for classification forests); one-hot encoding counts ONEHOT_WIDTH
columns per text column.  The constants are the slowest figures measured by
`bench/bench_recipe_cost.py` on a loaded 2-core machine (12 features, 5k and 40k rows),
so the estimate errs on the slow side.
"""

from __future__ import annotations

import math

from .recipe import Recipe
from .task_reader import TaskSpec

FITS = 6  # five folds and the refit on all rows
BUDGET_SHARE = 0.5  # of the timeout: the rest is reading, encoding, predicting, and a loaded machine
MIN_TREES = 30
ONEHOT_WIDTH = 10
TREE_SECONDS = {
    "random_forest": 2.0e-7,
    "extra_trees": 8.0e-8,
    "gradient_boosting": 8.0e-8,  # one boosting stage (depth 3)
}
PARALLEL = {"random_forest", "extra_trees", "knn"}  # scikit-learn spreads these over n_jobs cores
TREE_PARAM = {"random_forest": "n_estimators", "extra_trees": "n_estimators", "gradient_boosting": "n_estimators"}


def seconds_per_tree(family: str, spec: TaskSpec, encoding: str) -> float:
    rows = max(spec.n_rows, 2)
    text = len(spec.categorical_columns)
    width = len(spec.feature_columns) - text + (text * ONEHOT_WIDTH if encoding == "onehot" else text)
    width = max(width, 1)
    looked_at = math.sqrt(width) if (spec.task_type == "classification" and family != "gradient_boosting") else width
    return TREE_SECONDS.get(family, 0.0) * rows * math.log2(rows) * looked_at


def max_trees(family: str, spec: TaskSpec, encoding: str, cpus: int, timeout: float) -> int | None:
    """The most trees FITS fits can afford in the budget; None for families that are not tree ensembles."""
    per_tree = seconds_per_tree(family, spec, encoding)
    if family not in TREE_SECONDS or per_tree <= 0:
        return None
    cores = max(1, cpus) if family in PARALLEL else 1
    return int(BUDGET_SHARE * timeout * cores / (FITS * per_tree))


def fits_in_time(recipe: Recipe, spec: TaskSpec, cpus: int, timeout: float) -> bool:
    """Whether even the smallest version of this recipe is predicted to finish in time."""
    affordable = max_trees(recipe.model, spec, recipe.encoding, cpus, timeout)
    return affordable is None or affordable >= MIN_TREES


def size_recipe(recipe: Recipe, spec: TaskSpec, cpus: int, timeout: float) -> Recipe:
    """`recipe` with its tree count capped to the budget, `n_jobs` set to the node's cores, and early
    stopping for the boosting families on large tables (a copy; the history is kept)."""
    sized = recipe.copy()
    params = sized.params
    affordable = max_trees(sized.model, spec, sized.encoding, cpus, timeout)
    name = TREE_PARAM.get(sized.model)
    if affordable is not None and name is not None and params.get(name, 0) > affordable:
        params[name] = max(MIN_TREES, affordable)
    if sized.model in PARALLEL:
        params["n_jobs"] = max(1, cpus)
    if sized.model == "gradient_boosting" and spec.n_rows >= 2000:
        params.setdefault("n_iter_no_change", 10)  # stop adding stages when a 10% slice stops improving
        params.setdefault("validation_fraction", 0.1)
    if sized.model == "hist_gradient_boosting" and spec.n_rows >= 2000:
        params.setdefault("early_stopping", True)
    return sized
