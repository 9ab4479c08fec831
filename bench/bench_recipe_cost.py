"""Seconds per tree of the offline recipes' tree ensembles, the figures behind search/offline/sizing.py.

Fits each family with a few trees on random data of 5k and 40k rows x 12 features, one thread
(as a node with one core), and prints seconds per tree and the constant C in
seconds = C x rows x log2(rows) x features looked at (sqrt of them for classification forests).
sizing.TREE_SECONDS should be at least the largest C printed on a loaded machine.

    python bench/bench_recipe_cost.py
"""

from __future__ import annotations

import math
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from sklearn.ensemble import (  # noqa: E402
    ExtraTreesRegressor,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)

FEATURES = 12


def main() -> None:
    rng = np.random.default_rng(0)
    print(f"load average: {os.getloadavg()[0]:.1f} (cores: {os.cpu_count()})")
    for rows in (5_000, 40_000):
        x = rng.normal(size=(rows, FEATURES))
        y = x[:, 0] + rng.normal(size=rows)
        cases = [
            ("random_forest (regression)", RandomForestRegressor(n_estimators=10, n_jobs=1), y, FEATURES),
            (
                "random_forest (classification)",
                RandomForestClassifier(n_estimators=10, n_jobs=1),
                y > 0,
                math.sqrt(FEATURES),
            ),
            ("extra_trees", ExtraTreesRegressor(n_estimators=10, n_jobs=1), y, FEATURES),
            ("gradient_boosting (stage)", GradientBoostingRegressor(n_estimators=20), y, FEATURES),
        ]
        for name, model, target, looked_at in cases:
            t0 = time.perf_counter()
            model.fit(x, target)
            per_tree = (time.perf_counter() - t0) / model.n_estimators
            c = per_tree / (rows * math.log2(rows) * looked_at)
            print(f"{rows:>6} rows  {name:<32} {per_tree:7.3f} s/tree  C = {c:.2e}")


if __name__ == "__main__":
    main()
