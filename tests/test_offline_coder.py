"""The offline coder, end to end on the bundled examples: generated scripts really run.

Scripts are executed the way the engine's runner will: cwd = a workspace with
the project's data copied to ./input/<relative path>.  Training data is
subsampled in the copies to keep the whole file fast.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aide_tui.errors import FatalRunError
from aide_tui.search.coder import TaskContext
from aide_tui.search.node import ExecInfo, Node
from aide_tui.search.offline import OfflineCoder, parse_recipe, read_task, recipe_changes
from aide_tui.search.offline.review import last_metric

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DATA = ["data/train.csv", "data/test.csv"]
TRAIN_ROWS = 300  # subsample: the scripts' behaviour does not depend on size
pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]  # real sklearn scripts; a loaded machine makes them slow


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


def run_script(project: Path, code: str, tmp_path: Path, files: list[str] = DATA) -> Node:
    """A stand-in for the engine's runner: workspace, ./input/ data, run, record a Node."""
    _counter[0] += 1
    ws = tmp_path / f"ws{_counter[0]}"
    for rel in files:
        (ws / "input" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(project / rel, ws / "input" / rel)
    (ws / "solution.py").write_text(code)
    one_thread = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    r = subprocess.run(
        [sys.executable, "solution.py"],
        cwd=ws,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **one_thread},
    )
    tb = r.stderr if "Traceback" in r.stderr else None
    exc = tb.strip().splitlines()[-1].split(":")[0] if tb else None
    node = Node(
        id=_counter[0],
        parent_id=None,
        operation="draft",
        step=_counter[0],
        code=code,
        output=r.stdout + r.stderr,
        exec=ExecInfo(
            exit_code=r.returncode,
            exc_type=exc,
            traceback=tb,
            outputs=sorted(p.name for p in ws.iterdir() if p.is_file() and p.name != "solution.py"),
        ),
    )
    node.workspace = ws  # type: ignore[attr-defined]  # test-only convenience
    return node


def test_reads_both_example_tasks(projects):
    house = read_task(projects["house-prices"], DATA, (projects["house-prices"] / "task.md").read_text())
    assert (house.target, house.id_columns, house.metric, house.direction, house.task_type) == (
        "sale_price",
        ["house_id"],
        "rmse",
        "minimize",
        "regression",
    )
    assert house.train_path == "./input/data/train.csv" and house.test_path == "./input/data/test.csv"
    assert set(house.categorical_columns) == {"neighborhood", "condition"}
    wine = read_task(projects["wine-quality"], DATA, (projects["wine-quality"] / "task.md").read_text())
    assert (wine.target, wine.id_columns, wine.metric, wine.direction, wine.task_type) == (
        "high_quality",
        ["wine_id"],
        "roc_auc",
        "maximize",
        "classification",
    )


@pytest.mark.parametrize(
    "sentence, metric, direction",
    [
        ("Scored by mean absolute error.", "mae", "minimize"),
        ("We use log loss on the predicted probabilities.", "log_loss", "minimize"),
        ("Root mean squared log error is the metric.", "rmsle", "minimize"),
        ("Macro F1 score, please.", "macro_f1", "maximize"),
        ("F1 score, please.", "f1", "maximize"),
        ("Report the R-squared.", "r2", "maximize"),
    ],
)
def test_metric_and_direction_from_task_text(projects, sentence, metric, direction):
    spec = read_task(projects["house-prices"], DATA, f"Predict `sale_price`. {sentence}")
    assert (spec.metric, spec.direction) == (metric, direction)


def test_task_without_metric_or_test_file_infers_type_from_target(tmp_path):
    (tmp_path / "d.csv").write_text(
        "pid,colour,size,label\n"
        + "".join(f"{i},{'red' if i % 2 else 'blue'},{i % 7},{'cat' if i % 3 else 'dog'}\n" for i in range(60))
    )
    spec = read_task(tmp_path, ["d.csv"], "Predict the label column from the rest.")
    assert (spec.target, spec.task_type, spec.metric, spec.direction, spec.test_path) == (
        "label",
        "classification",
        "accuracy",
        "maximize",
        None,
    )


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
        spec = read_task(project, DATA, ctx.task)
        assert header == spec.id_columns + [spec.target]
        assert len(sub) - 1 == rows
        codes.append(code)
        models.append(parse_recipe(code).model)
    assert len(set(codes)) == 3 and len(set(models)) == 3


def test_review_direction_and_bugs(projects):
    coder = OfflineCoder(projects["wine-quality"], DATA, seed=0)
    ctx = make_ctx(projects["wine-quality"])
    ok = Node(
        1,
        None,
        "draft",
        1,
        output="fold 1: 0.8\nValidation metric: 0.5\nValidation metric: 0.875\n",
        exec=ExecInfo(exit_code=0, outputs=["submission.csv"]),
    )
    review = coder.review(ctx, ok)
    assert (review.is_bug, review.metric, review.direction) == (False, 0.875, "maximize")
    assert review.usage.calls == 0 and review.usage.cost == 0
    crashed = Node(
        2,
        None,
        "draft",
        2,
        output="Validation metric: 0.9\nTraceback...\nValueError: x",
        exec=ExecInfo(exit_code=1, exc_type="ValueError"),
    )
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
    assert first.plan.index("(Improves node 7: ") > 20  # the change comes first, the parent after
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
EXPECTED_FAMILY = {
    "non_numeric": "linear",
    "missing_values": "linear",
    "wrong_column": "gradient_boosting",
    "feature_mismatch": "random_forest",
}


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
    weird = Node(1, None, "draft", 1, code="raise SystemExit(3)", output="", exec=ExecInfo(exit_code=3))
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
    from aide_tui.run.workspace import list_data_files
    from aide_tui.search.coder import TaskContext
    from aide_tui.search.node import Node
    from aide_tui.search.offline import OfflineCoder
    from aide_tui.search.offline.recipe import parse_recipe

    project = EXAMPLES / "house-prices"
    files = list_data_files(project)
    ctx = TaskContext(task=(project / "task.md").read_text(), data_preview="", memory="")
    first = OfflineCoder(project, files, seed=0)
    drafts = [first.draft(ctx, lambda _: None) for _ in range(2)]
    nodes = [
        Node(id=i + 1, parent_id=None, operation="draft", step=i + 1, code=p.code, status="ok", metric=1.0)
        for i, p in enumerate(drafts)
    ]
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

    ran = Node(
        id=1,
        parent_id=None,
        operation="draft",
        step=1,
        output="Validation metric: 0.8\n",
        exec=ExecInfo(exit_code=0, outputs=[]),
    )
    assert review_node(ran, "maximize", expects_submission=True).is_bug
    assert not review_node(ran, "maximize", expects_submission=False).is_bug
    ran.exec.outputs = ["submission.csv"]
    assert not review_node(ran, "maximize", expects_submission=True).is_bug


# ---------------------------------------------------------------- task cards and odd data

WEATHER_TASK = """# Tomorrow's weather

Predict the weather of each day in data/test.csv from the station's readings.
The `date` column identifies the day. `station` is a text column and some
readings are missing.

Metric: accuracy of the predicted `weather` (sunny, rain, snow or fog).

Submit `date,weather`: one row per test day.
"""


def weather_project(root: Path) -> Path:
    """Multi-class text target (a few missing), text and numeric features with gaps, dates as ids."""
    import datetime as dt

    root.mkdir(parents=True, exist_ok=True)
    (root / "task.md").write_text(WEATHER_TASK)
    (root / "data").mkdir(exist_ok=True)
    kinds = ["sunny", "rain", "snow", "fog"]

    def row(i: int, with_target: bool) -> str:
        day = dt.date(2023, 1, 1) + dt.timedelta(days=i)
        temp = "" if i % 11 == 0 else f"{(i * 7) % 30 - 5:.1f}"
        station = "" if i % 13 == 0 else ("north" if i % 3 else "south")
        cells = [day.isoformat(), station, temp, str((i * 37) % 100)]
        if with_target:
            cells.append("" if i % 50 == 7 else kinds[(i * 7 % 30 - 5 < 0) * 2 + (i % 2)])
        return ",".join(cells)

    header = "date,station,temperature,humidity"
    (root / "data/train.csv").write_text("\n".join([header + ",weather"] + [row(i, True) for i in range(200)]) + "\n")
    (root / "data/test.csv").write_text("\n".join([header] + [row(i, False) for i in range(200, 240)]) + "\n")
    return root


def test_weather_task_card_uses_the_date_as_id_not_as_a_feature(tmp_path):
    from aide_tui.search.offline import derive_task_card

    project = weather_project(tmp_path / "weather")
    files = ["data/test.csv", "data/train.csv"]
    card = derive_task_card(project, files, WEATHER_TASK)
    assert (card.train_file, card.test_file, card.target, card.id_columns, card.metric, card.direction) == (
        "data/train.csv",
        "data/test.csv",
        "weather",
        ["date"],
        "accuracy",
        "maximize",
    )
    assert "id columns: date" in card.describe()
    spec = read_task(project, files, WEATHER_TASK)
    assert "date" not in spec.feature_columns and spec.task_type == "classification"

    coder = OfflineCoder(project, files, seed=0)
    ctx = TaskContext(task=WEATHER_TASK, data_preview="", memory="")
    for _ in range(2):  # a linear model and a forest: both must run and submit the test dates
        node = run_script(project, coder.draft(ctx, lambda _: None).code, tmp_path, files)
        assert node.exec.exit_code == 0, node.output[-2000:]
        assert not coder.review(ctx, node).is_bug
        with open(node.workspace / "submission.csv") as fh:  # type: ignore[attr-defined]
            sub = list(csv.reader(fh))
        test_dates = [line.split(",")[0] for line in (project / "data/test.csv").read_text().splitlines()[1:]]
        assert sub[0] == ["date", "weather"]
        assert [r[0] for r in sub[1:]] == test_dates
        assert {r[1] for r in sub[1:]} <= {"sunny", "rain", "snow", "fog"}


def test_id_from_a_sample_submission_and_uniqueness_not_the_name(tmp_path):
    """`ticket` is the id (the sample submission says so); `passenger_id` repeats in test, so it is not."""
    from aide_tui.search.offline import derive_task_card

    (tmp_path / "data").mkdir()
    task = "# Boarding\n\nPredict `cabin_class` (first, second or third). Scored by macro F1.\n"
    header = "ticket,passenger_id,age,port"
    train = [header + ",cabin_class"] + [
        f"T-{i:04d},{i // 2},{'' if i % 9 == 0 else 20 + i % 40},{'' if i % 7 == 0 else 'ABC'[i % 3]},"
        f"{['first', 'second', 'third'][i % 3]}"
        for i in range(150)
    ]
    test = [header] + [f"T-{i:04d},{i // 2},{20 + i % 40},{'ABC'[i % 3]}" for i in range(150, 180)]
    (tmp_path / "data/train.csv").write_text("\n".join(train) + "\n")
    (tmp_path / "data/test.csv").write_text("\n".join(test) + "\n")
    (tmp_path / "data/sample_submission.csv").write_text("ticket,cabin_class\nT-0150,first\n")
    files = ["data/sample_submission.csv", "data/test.csv", "data/train.csv"]
    card = derive_task_card(tmp_path, files, task)
    assert (card.target, card.id_columns, card.metric) == ("cabin_class", ["ticket"], "macro_f1")

    (tmp_path / "data/sample_submission.csv").unlink()
    files.remove("data/sample_submission.csv")
    assert derive_task_card(tmp_path, files, task).id_columns == []  # passenger_id repeats: not an id
    spec = read_task(tmp_path, files, task)
    coder = OfflineCoder(tmp_path, files, seed=0)
    node = run_script(
        tmp_path, coder.draft(TaskContext(task=task, data_preview="", memory=""), lambda _: None).code, tmp_path, files
    )
    assert node.exec.exit_code == 0, node.output[-2000:]
    # passenger_id repeats and the test's passengers are new: a group, validated whole and never a feature
    assert spec.id_columns == [] and spec.group_column == "passenger_id" and "passenger_id" not in spec.feature_columns


def test_a_corrected_card_is_used_and_a_wrong_one_named(tmp_path):
    from aide_tui.search.offline import TaskCard, TaskReadError

    project = weather_project(tmp_path / "weather")
    files = ["data/test.csv", "data/train.csv"]
    card = TaskCard("data/train.csv", "data/test.csv", "weather", ["date", "station"], "accuracy", "maximize")
    spec = read_task(project, files, WEATHER_TASK, card)
    assert spec.id_columns == ["date", "station"] and "station" not in spec.feature_columns
    with pytest.raises(TaskReadError, match="target 'rain' is not a column of data/train.csv"):
        read_task(project, files, WEATHER_TASK, TaskCard("data/train.csv", None, "rain", [], "accuracy", "maximize"))
    with pytest.raises(TaskReadError, match="unknown metric 'auc-pr'"):
        read_task(project, files, WEATHER_TASK, TaskCard("data/train.csv", None, "weather", [], "auc-pr", "maximize"))


def _every_recipe(spec) -> list:
    """Every value of every recipe field on each model family, and the params every
    improvement lineage reaches: the values the templates can be asked to render."""
    from aide_tui.search.offline import base_recipe
    from aide_tui.search.offline.improvements import choose
    from aide_tui.search.offline.recipe import MODELS

    variations = {
        "scaler": [None, "standard", "robust"],
        "impute": ["median", "mean"],
        "missing_indicators": [False, True],
        "encoding": ["onehot", "ordinal"],
        "validation": ["holdout", "cv"],
        "blend_with": [None, *MODELS],
        "log_target": [False, True],
        "defensive": [False, True],
    }
    out = []
    for family in MODELS:
        base = base_recipe(family, spec.task_type)
        base.history = ["debug:missing_values", "rewrite:knn", "variant:1"]
        for name, values in variations.items():
            for value in values:
                recipe = base.copy()
                setattr(recipe, name, value)
                out.append(recipe)
        for _ in range(6):
            base = choose(base, spec, set())[0]
            out.append(base)
    return out


def test_every_recipe_value_compiles_and_no_recipe_text_on_the_first_two_lines(projects):
    """Compiled from bytes, as Python reads the file: a `coding=`-like comment on line 1
    or 2 would be taken as the source encoding (PEP 263) and fail."""
    import re

    from aide_tui.search.offline.task_reader import METRICS
    from aide_tui.search.offline.templates import render

    house = read_task(projects["house-prices"], DATA, (projects["house-prices"] / "task.md").read_text())
    rendered = 0
    for key, _, direction, kind in METRICS:
        spec = dataclasses.replace(
            house,
            metric=key,
            direction=direction,
            task_type=kind,
            title='A "quoted" title with a \\N back\\slash and coding=ordinal',
        )
        for recipe in _every_recipe(spec):
            code = render(spec, recipe, seed=0)
            head = "\n".join(code.splitlines()[:2])
            assert "aide-recipe" not in head and not re.search(r"^[ \t\f]*#.*?coding[:=]", head, re.M)
            compile(code.encode("utf-8"), "solution.py", "exec")
            assert parse_recipe(code) == recipe
            rendered += 1
    assert rendered > 1000


def test_data_that_is_not_csv_is_refused_before_the_run_with_exit_2_and_says_why(tmp_path):
    from helpers import git, make_project

    project = make_project(tmp_path / "proj", dirty=False)
    for f in (project / "data").iterdir():
        f.unlink()
    (project / "data" / "train.parquet").write_bytes(b"PAR1 not really")
    coder = OfflineCoder(project, ["data/train.parquet"], seed=0)
    with pytest.raises(FatalRunError, match="needs CSV data.*data/train.parquet"):
        coder.draft(TaskContext(task="Predict y.", data_preview="", memory=""), lambda _: None)

    out = subprocess.run(
        [sys.executable, "-m", "aide_tui.cli", str(project), "--headless", "--coder", "offline", "--steps", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"},
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert "needs CSV data" in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert git(project, "for-each-ref", "refs/heads/aide/").strip() == ""  # nothing created, not even a root
