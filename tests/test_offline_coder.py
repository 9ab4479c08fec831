"""The offline coder, end to end on the bundled examples: generated scripts really run.

Scripts are executed the way the engine's runner will: cwd = a workspace with
the project's data copied to ./input/<relative path>.  Training data is
subsampled in the copies to keep the whole file fast.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aide_tui.search.coder import TaskContext
from aide_tui.search.node import ExecInfo, Node
from aide_tui.search.offline import OfflineCoder, parse_recipe, read_task, recipe_changes
from aide_tui.search.offline.review import last_metric

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DATA = ["data/train.csv", "data/test.csv"]
TRAIN_ROWS = 300  # subsample: the scripts' behaviour does not depend on size
pytestmark = pytest.mark.timeout(180)  # real sklearn scripts; a loaded machine makes them slow


@pytest.fixture(scope="module")
def projects(tmp_path_factory) -> dict[str, Path]:
    """Copies of both examples with a smaller training set."""
    out = {}
    for name in ("house-prices", "wine-quality"):
        dest = tmp_path_factory.mktemp(name)
        shutil.copytree(EXAMPLES / name, dest, dirs_exist_ok=True)
        lines = (dest / "data/train.csv").read_text().splitlines(keepends=True)
        (dest / "data/train.csv").write_text("".join(lines[: TRAIN_ROWS + 1]))
        out[name] = dest
    return out


def make_ctx(project: Path, **kw) -> TaskContext:
    return TaskContext(task=(project / "task.md").read_text(), data_preview="", memory="", **kw)


_counter = [0]


def run_script(project: Path, code: str, tmp_path: Path) -> Node:
    """A stand-in for the engine's runner: workspace, ./input/ data, run, record a Node."""
    _counter[0] += 1
    ws = tmp_path / f"ws{_counter[0]}"
    for rel in DATA:
        (ws / "input" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(project / rel, ws / "input" / rel)
    (ws / "solution.py").write_text(code)
    r = subprocess.run([sys.executable, "solution.py"], cwd=ws, capture_output=True, text=True, timeout=120)
    tb = r.stderr if "Traceback" in r.stderr else None
    exc = tb.strip().splitlines()[-1].split(":")[0] if tb else None
    node = Node(id=_counter[0], parent_id=None, operation="draft", step=_counter[0], code=code,
                output=r.stdout + r.stderr,
                exec=ExecInfo(exit_code=r.returncode, exc_type=exc, traceback=tb,
                              outputs=sorted(p.name for p in ws.iterdir() if p.is_file() and p.name != "solution.py")))
    node.workspace = ws  # type: ignore[attr-defined]  # test-only convenience
    return node


def test_reads_both_example_tasks(projects):
    house = read_task(projects["house-prices"], DATA, (projects["house-prices"] / "task.md").read_text())
    assert (house.target, house.id_column, house.metric, house.direction, house.task_type) == (
        "sale_price", "house_id", "rmse", "minimize", "regression")
    assert house.train_path == "./input/data/train.csv" and house.test_path == "./input/data/test.csv"
    assert set(house.categorical_columns) == {"neighborhood", "condition"}
    wine = read_task(projects["wine-quality"], DATA, (projects["wine-quality"] / "task.md").read_text())
    assert (wine.target, wine.id_column, wine.metric, wine.direction, wine.task_type) == (
        "high_quality", "wine_id", "roc_auc", "maximize", "classification")


@pytest.mark.parametrize(
    "sentence, metric, direction",
    [
        ("Scored by mean absolute error.", "mae", "minimize"),
        ("We use log loss on the predicted probabilities.", "log_loss", "minimize"),
        ("Root mean squared log error is the metric.", "rmsle", "minimize"),
        ("Macro F1 score, please.", "f1", "maximize"),
        ("Report the R-squared.", "r2", "maximize"),
    ],
)
def test_metric_and_direction_from_task_text(projects, sentence, metric, direction):
    spec = read_task(projects["house-prices"], DATA, f"Predict `sale_price`. {sentence}")
    assert (spec.metric, spec.direction) == (metric, direction)


def test_task_without_metric_or_test_file_infers_type_from_target(tmp_path):
    (tmp_path / "d.csv").write_text("pid,colour,size,label\n" + "".join(
        f"{i},{'red' if i % 2 else 'blue'},{i % 7},{'cat' if i % 3 else 'dog'}\n" for i in range(60)))
    spec = read_task(tmp_path, ["d.csv"], "Predict the label column from the rest.")
    assert (spec.target, spec.task_type, spec.metric, spec.direction, spec.test_path) == (
        "label", "classification", "accuracy", "maximize", None)


@pytest.mark.parametrize("name, rows", [("house-prices", 300), ("wine-quality", 300)])
def test_three_drafts_run_differ_and_write_submissions(projects, tmp_path, name, rows):
    project = projects[name]
    coder = OfflineCoder(project, DATA, seed=3)
    ctx = make_ctx(project)
    codes, models = [], []
    for _ in range(3):
        deltas: list[str] = []
        proposal = coder.draft(ctx, deltas.append)
        assert len(deltas) > 3 and proposal.plan in "".join(deltas) and proposal.code in "".join(deltas)
        assert proposal.usage.calls == 0
        code = proposal.code
        assert 'if __name__ == "__main__":' in code and '"""' in code and "SEED = 3" in code
        node = run_script(project, code, tmp_path)
        assert node.exec.exit_code == 0, node.output[-2000:]
        assert node.output.strip().splitlines()[-1].startswith("Validation metric: ")
        review = coder.review(ctx, node)
        assert not review.is_bug and review.metric == last_metric(node.output)
        with open(node.workspace / "submission.csv") as fh:  # type: ignore[attr-defined]
            sub = list(csv.reader(fh))
        header = sub[0]
        assert header == [read_task(project, DATA, ctx.task).id_column, read_task(project, DATA, ctx.task).target]
        assert len(sub) - 1 == rows
        codes.append(code)
        models.append(parse_recipe(code).model)
    assert len(set(codes)) == 3 and len(set(models)) == 3


def test_review_direction_and_bugs(projects):
    coder = OfflineCoder(projects["wine-quality"], DATA, seed=0)
    ctx = make_ctx(projects["wine-quality"])
    ok = Node(1, None, "draft", 1, output="fold 1: 0.8\nValidation metric: 0.5\nValidation metric: 0.875\n",
              exec=ExecInfo(exit_code=0, outputs=["submission.csv"]))
    review = coder.review(ctx, ok)
    assert (review.is_bug, review.metric, review.direction) == (False, 0.875, "maximize")
    assert review.usage.calls == 0 and review.usage.cost == 0
    crashed = Node(2, None, "draft", 2, output="Validation metric: 0.9\nTraceback...\nValueError: x",
                   exec=ExecInfo(exit_code=1, exc_type="ValueError"))
    assert coder.review(ctx, crashed).is_bug
    killed = Node(3, None, "draft", 3, output="Validation metric: 0.9", exec=ExecInfo(killed_reason="timeout"))
    assert coder.review(ctx, killed).is_bug and coder.review(ctx, killed).metric is None
    silent = Node(4, None, "draft", 4, output="done\n", exec=ExecInfo(exit_code=0))
    assert coder.review(ctx, silent).is_bug
    nan = Node(5, None, "draft", 5, output="Validation metric: nan\n", exec=ExecInfo(exit_code=0))
    assert coder.review(ctx, nan).is_bug
    house = OfflineCoder(projects["house-prices"], DATA, seed=0)
    assert house.review(make_ctx(projects["house-prices"]), ok).direction == "minimize"


def test_improve_changes_exactly_one_thing_and_runs(projects, tmp_path):
    project = projects["house-prices"]
    coder = OfflineCoder(project, DATA, seed=0)
    ctx = make_ctx(project)
    coder.draft(ctx, lambda _: None)
    parent_code = coder.draft(ctx, lambda _: None).code  # random forest
    parent = Node(7, None, "draft", 7, code=parent_code, status="ok", metric=30000.0)
    first = coder.improve(ctx, parent, lambda _: None)
    before, after = parse_recipe(parent_code), parse_recipe(first.code)
    assert len(recipe_changes(before, after)) == 1 and len(after.history) == 1
    assert "Improve node 7" in first.plan
    node = run_script(project, first.code, tmp_path)
    assert node.exec.exit_code == 0, node.output[-2000:]
    assert not coder.review(ctx, node).is_bug

    # A second improvement of the same parent tries something else.
    second = coder.improve(ctx, parent, lambda _: None)
    assert recipe_changes(before, parse_recipe(second.code)) != recipe_changes(before, after)
    assert len(recipe_changes(before, parse_recipe(second.code))) == 1

    # Along a lineage, changes are not repeated.
    child = Node(8, 7, "improve", 8, code=first.code, status="ok", metric=29000.0)
    grandchild = parse_recipe(coder.improve(ctx, child, lambda _: None).code)
    assert len(set(grandchild.history)) == len(grandchild.history) == 2
    assert len(recipe_changes(after, grandchild)) == 1


def test_improve_follows_hint_and_rewrites_foreign_code(projects):
    project = projects["wine-quality"]
    coder = OfflineCoder(project, DATA, seed=0)
    ctx = make_ctx(project)
    parent = Node(1, None, "draft", 1, code=coder.draft(ctx, lambda _: None).code, status="ok", metric=0.8)
    hinted = coder.improve(make_ctx(project, hint="try extra trees"), parent, lambda _: None)
    assert parse_recipe(hinted.code).model == "extra_trees"
    foreign = Node(2, None, "manual", 2, code="from sklearn.ensemble import RandomForestClassifier\n...", status="ok")
    rewritten = coder.improve(ctx, foreign, lambda _: None)
    assert "not written by the offline coder" in rewritten.plan
    assert parse_recipe(rewritten.code).model == "random_forest"


# Broken scripts a person (or a model) might write; each fails with a real traceback.
BROKEN = {
    "non_numeric": """
import pandas as pd
from sklearn.linear_model import LinearRegression
train = pd.read_csv("./input/data/train.csv")
X = train.drop(columns=["sale_price"])
model = LinearRegression().fit(X, train["sale_price"])
""",
    "missing_values": """
import pandas as pd
from sklearn.linear_model import LinearRegression
train = pd.read_csv("./input/data/train.csv")
X = train.select_dtypes("number").drop(columns=["sale_price"])
model = LinearRegression().fit(X, train["sale_price"])
""",
    "wrong_column": """
import pandas as pd
from sklearn.ensemble import GradientBoostingRegressor
train = pd.read_csv("./input/data/train.csv")
y = train["price"]
""",
    "feature_mismatch": """
import pandas as pd
from sklearn.ensemble import RandomForestRegressor
train = pd.read_csv("./input/data/train.csv")
test = pd.read_csv("./input/data/test.csv")
X = pd.get_dummies(train.drop(columns=["sale_price"]).fillna(0))
model = RandomForestRegressor(n_estimators=10, random_state=0).fit(X.to_numpy(), train["sale_price"])
model.predict(test.select_dtypes("number").fillna(0).to_numpy())
""",
}
EXPECTED_FAMILY = {"non_numeric": "linear", "missing_values": "linear", "wrong_column": "gradient_boosting",
                   "feature_mismatch": "random_forest"}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_debug_fixes_real_failures(projects, tmp_path, kind):
    project = projects["house-prices"]
    coder = OfflineCoder(project, DATA, seed=0)
    ctx = make_ctx(project)
    broken = run_script(project, BROKEN[kind], tmp_path)
    assert broken.exec.exit_code != 0 and broken.exec.traceback
    assert coder.review(ctx, broken).is_bug

    proposal = coder.debug(ctx, broken, lambda _: None)
    from aide_tui.search.offline.debugging import diagnose

    assert diagnose(broken).kind == kind, broken.exec.traceback
    assert f"Node {broken.id} failed" in proposal.plan
    assert parse_recipe(proposal.code).model == EXPECTED_FAMILY[kind]
    fixed = run_script(project, proposal.code, tmp_path)
    assert fixed.exec.exit_code == 0, fixed.output[-2000:]
    review = coder.review(ctx, fixed)
    assert not review.is_bug and review.metric is not None


def test_debug_unrecognised_failure_drafts_afresh_and_timeout_lightens(projects):
    project = projects["wine-quality"]
    coder = OfflineCoder(project, DATA, seed=0)
    ctx = make_ctx(project)
    weird = Node(1, None, "draft", 1, code="raise SystemExit(3)", output="",
                 exec=ExecInfo(exit_code=3))
    proposal = coder.debug(ctx, weird, lambda _: None)
    assert "could not recognise" in proposal.plan and parse_recipe(proposal.code) is not None

    heavy = parse_recipe(coder.draft(ctx, lambda _: None).code)  # the second draft: a random forest
    heavy_code = coder.draft(ctx, lambda _: None).code  # hist gradient boosting, 5-fold CV
    slow = Node(2, None, "draft", 2, code=heavy_code, exec=ExecInfo(killed_reason="timeout"))
    fixed = parse_recipe(coder.debug(ctx, slow, lambda _: None).code)
    assert heavy is not None and fixed.validation == "holdout"
    assert fixed.params["max_iter"] < parse_recipe(heavy_code).params["max_iter"]
    assert "ran out of time" in coder.debug(ctx, slow, lambda _: None).plan


def test_deterministic_for_a_seed(projects):
    project = projects["wine-quality"]
    ctx = make_ctx(project)
    a, b, c = (OfflineCoder(project, DATA, seed=s) for s in (5, 5, 6))
    drafts_a = [a.draft(ctx, lambda _: None).code for _ in range(7)]
    drafts_b = [b.draft(ctx, lambda _: None).code for _ in range(7)]
    assert drafts_a == drafts_b
    assert len(set(drafts_a)) == 7  # the seventh draft varies the first, it does not repeat it
    assert c.draft(ctx, lambda _: None).code != drafts_a[0]
    parent = Node(1, None, "draft", 1, code=drafts_a[2], status="ok", metric=0.8)
    assert a.improve(ctx, parent, lambda _: None).code == b.improve(ctx, parent, lambda _: None).code


def test_offline_coder_imports_no_llm_or_ui():
    code = "import sys, aide_tui.search.offline; print(any(m.split('.')[0] in ('anthropic', 'textual') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", ["house-prices", "wine-quality"])
def test_long_lineage_one_change_per_step_no_repeats(projects, name):
    """Eight improvements in a row: each one decision, none repeated, all valid Python."""
    project = projects[name]
    coder = OfflineCoder(project, DATA, seed=0)
    ctx = make_ctx(project)
    for first in range(3):  # lineages rooted at a linear model, a forest and a boosting model
        code = coder.draft(ctx, lambda _: None).code
        for step in range(8):
            parent = Node(100 * first + step, None, "improve", step, code=code, status="ok", metric=1.0)
            code = coder.improve(ctx, parent, lambda _: None).code
            compile(code, "solution.py", "exec")
            assert len(recipe_changes(parse_recipe(parent.code), parse_recipe(code))) == 1
        history = parse_recipe(code).history
        assert len(history) == len(set(history)) == 8


def test_restore_after_resume_continues_the_draft_order_and_skips_tried_changes(tmp_path):
    """A resumed run builds a new coder; it must pick up where the old one stopped."""
    from aide_tui.search.coder import TaskContext
    from aide_tui.search.node import Node
    from aide_tui.search.offline import OfflineCoder
    from aide_tui.search.offline.recipe import parse_recipe
    from aide_tui.run.workspace import list_data_files

    project = EXAMPLES / "house-prices"
    files = list_data_files(project)
    ctx = TaskContext(task=(project / "task.md").read_text(), data_preview="", memory="")
    first = OfflineCoder(project, files, seed=0)
    drafts = [first.draft(ctx, lambda _: None) for _ in range(2)]
    nodes = [Node(id=i + 1, parent_id=None, operation="draft", step=i + 1, code=p.code, status="ok", metric=1.0) for i, p in enumerate(drafts)]
    improved = first.improve(ctx, nodes[0], lambda _: None)
    nodes.append(Node(id=3, parent_id=1, operation="improve", step=3, code=improved.code, status="ok", metric=1.0))
    expected_next_draft = first.draft(ctx, lambda _: None).code
    expected_next_improve = first.improve(ctx, nodes[0], lambda _: None).code

    resumed = OfflineCoder(project, files, seed=0)
    resumed.restore(nodes)
    assert resumed.draft(ctx, lambda _: None).code == expected_next_draft
    again = resumed.improve(ctx, nodes[0], lambda _: None)
    assert again.code == expected_next_improve
    assert parse_recipe(again.code).history != parse_recipe(improved.code).history


def test_review_flags_a_missing_submission_when_the_task_has_test_data():
    from aide_tui.search.offline.review import review_node

    ran = Node(id=1, parent_id=None, operation="draft", step=1, output="Validation metric: 0.8\n",
               exec=ExecInfo(exit_code=0, outputs=[]))
    assert review_node(ran, "maximize", expects_submission=True).is_bug
    assert not review_node(ran, "maximize", expects_submission=False).is_bug
    ran.exec.outputs = ["submission.csv"]
    assert not review_node(ran, "maximize", expects_submission=True).is_bug
