"""Pick one atomic, meaningful change to a recipe, the way a person tuning it would.

The candidates depend on what the parent is (a tree ensemble gets more trees,
a linear model stronger regularisation, a regression on a positive target a
log transform...) and are tried in a fixed order of expected value, skipping
any change already made on this lineage (the recipe's `history`) or already
proposed for this parent.  One change per step keeps the tree's comparisons
meaningful: a child's metric differs from its parent's for one reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .recipe import MODELS, Recipe
from .task_reader import TaskSpec

SWITCH_ORDER = ["hist_gradient_boosting", "random_forest", "gradient_boosting", "extra_trees"]
HINT_WORDS = {
    "linear": ("linear", "ridge", "logistic"),
    "random_forest": ("random forest", "randomforest"),
    "hist_gradient_boosting": ("histgradient", "hist gradient", "histogram", "lightgbm", "hgb"),
    "extra_trees": ("extra trees", "extratrees", "extra-trees"),
    "knn": ("knn", "nearest neighbo", "k-nn"),
    "gradient_boosting": ("gradientboosting", "gradient boosting"),
}


@dataclass
class Change:
    key: str  # recorded in the recipe's history; the knob, not its value, so a knob is turned once per lineage
    plan: str  # what changed and why, for the node's plan
    apply: Callable[[Recipe], None]


def family_in_hint(hint: str | None) -> str | None:
    """A model family the user's hint asks for, if any (most specific match first)."""
    low = (hint or "").lower()
    for family in ("hist_gradient_boosting", "extra_trees", "random_forest", "knn", "linear", "gradient_boosting"):
        if any(word in low for word in HINT_WORDS[family]):
            return family
    return None


def _param(name: str, new, why: str, recipe: Recipe) -> Change:
    old = recipe.params.get(name)

    def apply(r: Recipe) -> None:
        r.params[name] = new

    return Change(f"params.{name}", f"Change {name} from {old} to {new}: {why}", apply)


def _set(field: str, value, plan: str) -> Change:
    def apply(r: Recipe) -> None:
        setattr(r, field, value)

    return Change(f"{field}={value}" if not isinstance(value, bool) else field, plan, apply)


def _switch(family: str, task_type: str, why: str) -> Change:
    def apply(r: Recipe) -> None:
        r.model = family
        r.params = MODELS[family].defaults(task_type)
        if r.blend_with == family:
            r.blend_with = None

    return Change(
        f"model={family}", f"Switch the model to a {MODELS[family].display} (same preprocessing): {why}", apply
    )


def _may_switch(recipe: Recipe, family: str) -> bool:
    """A family not in use (nor as the blend partner) and not switched to before on this lineage."""
    return family not in (recipe.model, recipe.blend_with) and f"model={family}" not in recipe.history


def _hyper_parameters(recipe: Recipe, task_type: str) -> list[Change]:
    p, m = recipe.params, recipe.model
    out: list[Change] = []
    if m in ("random_forest", "extra_trees"):
        if p.get("n_estimators", 300) < 1200:
            out.append(
                _param(
                    "n_estimators",
                    p.get("n_estimators", 300) * 2,
                    "more trees average away more variance and only cost time.",
                    recipe,
                )
            )
        if p.get("min_samples_leaf", 1) < 3:
            out.append(_param("min_samples_leaf", 3, "larger leaves stop the trees from fitting noise.", recipe))
    elif m == "hist_gradient_boosting":
        if p.get("max_iter", 200) < 800:
            out.append(
                _param(
                    "max_iter",
                    p.get("max_iter", 200) * 2,
                    "more boosting rounds let the model keep reducing the error.",
                    recipe,
                )
            )
        if p.get("learning_rate", 0.1) > 0.03:
            out.append(
                _param(
                    "learning_rate",
                    round(p.get("learning_rate", 0.1) / 2, 4),
                    "smaller steps usually generalise better.",
                    recipe,
                )
            )
        if p.get("max_leaf_nodes", 31) > 15:
            out.append(
                _param("max_leaf_nodes", 15, "smaller trees regularise the boosting on a small dataset.", recipe)
            )
    elif m == "gradient_boosting":
        if p.get("n_estimators", 200) < 800:
            out.append(
                _param(
                    "n_estimators",
                    p.get("n_estimators", 200) * 2,
                    "more boosting rounds let the model keep reducing the error.",
                    recipe,
                )
            )
        if p.get("max_depth", 3) < 5:
            out.append(
                _param(
                    "max_depth",
                    p.get("max_depth", 3) + 1,
                    "deeper trees capture interactions between features.",
                    recipe,
                )
            )
        if p.get("learning_rate", 0.1) > 0.03:
            out.append(
                _param(
                    "learning_rate",
                    round(p.get("learning_rate", 0.1) / 2, 4),
                    "smaller steps usually generalise better.",
                    recipe,
                )
            )
    elif m == "linear":
        if task_type == "classification":
            out.append(
                _param(
                    "C",
                    round(p.get("C", 1.0) / 3, 4),
                    "stronger regularisation tames the many one-hot columns.",
                    recipe,
                )
            )
        else:
            out.append(
                _param(
                    "alpha",
                    round(p.get("alpha", 1.0) * 10, 4),
                    "stronger regularisation tames the many one-hot columns.",
                    recipe,
                )
            )
    elif m == "knn":
        if p.get("n_neighbors", 10) < 40:
            out.append(
                _param(
                    "n_neighbors",
                    p.get("n_neighbors", 10) * 2,
                    "averaging over more neighbours smooths noisy predictions.",
                    recipe,
                )
            )
        if p.get("weights") != "distance":
            out.append(_param("weights", "distance", "closer neighbours should count for more.", recipe))
    return out


def candidates(recipe: Recipe, spec: TaskSpec, hint: str | None = None) -> list[Change]:
    """Every sensible single change, best first."""
    tt = spec.task_type
    spec_model = MODELS[recipe.model]
    tree = not spec_model.scale_sensitive
    hyper = _hyper_parameters(recipe, tt)
    out: list[Change] = []

    wanted = family_in_hint(hint)
    low = (hint or "").lower()
    if wanted and wanted != recipe.model:
        out.append(_switch(wanted, tt, "as the hint asks."))
    if any(w in low for w in ("ensembl", "blend", "averag", "stack")) and not recipe.blend_with:
        partner = "hist_gradient_boosting" if recipe.model != "hist_gradient_boosting" else "random_forest"
        out.append(
            _set("blend_with", partner, f"Average the predictions with a {MODELS[partner].display}, as the hint asks.")
        )

    if (
        tt == "regression"
        and spec.target_positive
        and not recipe.log_target
        and spec.metric in ("rmsle", "rmse", "mae", "mse")
    ):
        out.append(
            _set(
                "log_target",
                True,
                "Fit on log1p of the target: it is positive and skewed, so "
                "errors on the largest values stop dominating the fit.",
            )
        )
    if not tree:
        # A weak baseline family: a stronger family first, then its own knobs.
        switch_to = next((f for f in SWITCH_ORDER if _may_switch(recipe, f)), None)
        if switch_to:
            out.append(
                _switch(
                    switch_to,
                    tt,
                    "tree ensembles capture non-linear effects and interactions "
                    "a distance- or linear-based model cannot.",
                )
            )
    out += hyper[:1]
    out.append(
        _set(
            "missing_indicators",
            True,
            "Add missing-value indicator columns next to the imputed "
            "numbers: whether a value was recorded can itself be predictive.",
        )
    )
    if tree and recipe.encoding == "onehot":
        out.append(
            _set(
                "encoding",
                "ordinal",
                "Encode text categories as ordinal codes instead of one-hot: "
                "trees split on the codes directly and fewer, denser columns help them.",
            )
        )
    if not tree and recipe.encoding == "ordinal":
        out.append(
            _set(
                "encoding",
                "onehot",
                "One-hot encode the text categories: ordinal codes impose a "
                "false order on a linear or distance-based model.",
            )
        )
    out += hyper[1:2]
    if not recipe.blend_with:
        partner = "hist_gradient_boosting" if recipe.model != "hist_gradient_boosting" else "random_forest"
        out.append(
            _set(
                "blend_with",
                partner,
                f"Average the predictions with a {MODELS[partner].display}: "
                "two model families make different errors, so the blend is steadier.",
            )
        )
    out += hyper[2:]
    if not tree and recipe.scaler == "standard":
        out.append(
            _set(
                "scaler",
                "robust",
                "Scale numbers with medians and quantiles instead of mean and "
                "standard deviation, so outliers stop squashing the other values.",
            )
        )
    if tree:
        for family in SWITCH_ORDER:
            if _may_switch(recipe, family):
                out.append(_switch(family, tt, "a different tree ensemble may suit this data better."))
                break
    if recipe.impute == "median":
        out.append(_set("impute", "mean", "Impute missing numbers with the mean instead of the median."))
    return out


def choose(recipe: Recipe, spec: TaskSpec, exclude: set[str], hint: str | None = None) -> tuple[Recipe, Change]:
    """The first candidate not tried on this lineage nor for this parent; applied to a copy."""
    options = candidates(recipe, spec, hint) or [
        _switch(next(f for f in SWITCH_ORDER if f != recipe.model), spec.task_type, "nothing else was left to try.")
    ]
    tried = set(recipe.history) | exclude
    fresh = [c for c in options if c.key not in tried]
    change = (fresh or options)[0]
    child = recipe.copy()
    change.apply(child)
    child.history = recipe.history + [change.key]
    return child, change
