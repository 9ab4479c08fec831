"""The offline coder's merge: the first recipe, blended with the second's model family and
carrying over the preprocessing the second's line changed."""

from __future__ import annotations

from aide_tui.search.offline.merging import merge_recipes
from aide_tui.search.offline.recipe import Recipe


def test_merge_blends_the_other_family_and_carries_over_what_its_line_changed():
    first = Recipe("random_forest", {"n_estimators": 600}, history=["params.n_estimators", "encoding=ordinal"])
    first.encoding = "ordinal"
    second = Recipe("linear", {"alpha": 1.0}, scaler="robust", log_target=True, history=["log_target", "scaler=robust"])
    second.encoding = "onehot"
    merged, took = merge_recipes(first, second)
    assert merged.model == "random_forest" and merged.params == {"n_estimators": 600}
    assert merged.blend_with == "linear"
    assert merged.log_target and merged.scaler == "robust"  # changed on the second line
    assert merged.encoding == "ordinal"  # the first line chose it: kept
    assert merged.history[-1] == "merge" and len(took) == 3


def test_merging_two_of_the_same_family_with_nothing_to_carry_takes_nothing():
    a = Recipe("linear", {"alpha": 1.0})
    merged, took = merge_recipes(a, Recipe("linear", {"alpha": 3.0}))
    assert took == [] and merged.blend_with is None
