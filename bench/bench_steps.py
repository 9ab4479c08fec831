"""A 20-step search against the local Messages API with no LLM latency: wall time and per node.

Every reply is a small pandas + scikit-learn solution (the kind of script most
nodes are), so what is left per node is the engine, the sandbox, the
interpreter start and the imports.  The run is made twice: cold
(``preload = []``) and with warm starts (the default preload), and prints the
wall time of each and the per-node total (median of the engine's per-step
timings) and execution time.  Issue 11's goal: the warm run's wall time at
most 0.8x aideml's on the same run (measured there: 31.8 s and 27.7 s on an
idle 2-core machine, so <= ~22-25 s).

Run: .venv/bin/python bench/bench_steps.py [steps]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fake_api import FakeMessagesAPI, TextReply, default_responder  # noqa: E402
from helpers import make_project  # noqa: E402

from aide_tui.engine import build_engine  # noqa: E402
from aide_tui.settings import resolve  # noqa: E402

SOLUTION = """import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.model_selection import cross_val_score

df = pd.read_csv("input/data/train.csv")
X = pd.get_dummies(df[["area", "neighborhood"]])
y = df["sale_price"]
score = -cross_val_score(Ridge(alpha={alpha}), X, y, cv=3, scoring="neg_root_mean_squared_error").mean()
print(f"Validation metric: {{score:.4f}}")
test = pd.read_csv("input/data/test.csv")
model = Ridge(alpha={alpha}).fit(X, y)
X_test = pd.get_dummies(test[["area", "neighborhood"]]).reindex(columns=X.columns, fill_value=0)
pd.DataFrame({{"id": test["id"], "prediction": model.predict(X_test)}}).to_csv("submission.csv", index=False)
"""


def responder(body: dict):
    if body.get("tool_choice"):
        return default_responder(body)
    responder.calls += 1
    code = SOLUTION.format(alpha=1.0 + responder.calls / 10)
    return TextReply(f"Ridge regression on area and neighbourhood.\n\n```python\n{code}```\n")


responder.calls = 0


def one_run(root: Path, steps: int, preload: list[str] | None, api: FakeMessagesAPI) -> tuple[float, list]:
    project = make_project(root, dirty=False)
    settings = resolve(None, dict(steps=steps, num_drafts=5, timeout=120, coder="llm", preload=preload))
    engine = build_engine(project, settings, resume=False, listener=lambda e: None)
    t0 = time.perf_counter()
    finished = engine.run()
    wall = time.perf_counter() - t0
    assert finished.reason == "completed", finished
    return wall, engine.timings


def main() -> int:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    load = os.getloadavg()[0]
    with FakeMessagesAPI() as api, tempfile.TemporaryDirectory() as tmp:
        os.environ["ANTHROPIC_BASE_URL"] = api.url
        os.environ["ANTHROPIC_API_KEY"] = "sk-bench-not-a-real-key"
        api.responder = responder
        for label, preload in (("cold (preload = [])", []), ("warm (default preload)", None)):
            wall, timings = one_run(Path(tmp) / label.split()[0], steps, preload, api)
            per_node = statistics.median(t.total for t in timings) * 1000
            execute = statistics.median(t.execute for t in timings) * 1000
            print(
                f"{label:24s} {steps} steps in {wall:6.1f} s   per node: total {per_node:7.1f} ms, "
                f"execute {execute:7.1f} ms (medians)"
            )
    print(f"load average at start: {load:.1f} (figures are only comparable on an idle machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
