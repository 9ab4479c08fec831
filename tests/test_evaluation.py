"""Fixed folds, the hidden holdout and the submission check: pure parts first, then real runs."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest
from helpers import WRITE_SUBMISSION, Recorder, git, journal_nodes, make_project

from aide_tui import events as ev
from aide_tui.engine import build_engine
from aide_tui.errors import UserError
from aide_tui.evaluation.holdout import final_pick
from aide_tui.evaluation.scoring import ScoreError, score_submission
from aide_tui.evaluation.split import N_FOLDS, make_split
from aide_tui.evaluation.staging import stage
from aide_tui.evaluation.submission_check import check_submission, find_sample_submission
from aide_tui.export import export_node
from aide_tui.project import Project
from aide_tui.records import parse_holdout_note, recover_run
from aide_tui.search.node import Node
from aide_tui.search.task_card import TaskCard
from aide_tui.settings import resolve

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
pytestmark = pytest.mark.slow  # real runs of the engine and the holdout re-runs


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def rows_of(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------ split


def test_split_is_seeded_stratified_and_never_withholds_a_missing_label():
    labels = ["sun"] * 60 + ["rain"] * 30 + ["snow"] * 10 + [""] * 5
    a = make_split(labels, classification=True, seed=3, holdout_share=0.1)
    assert a == make_split(labels, classification=True, seed=3, holdout_share=0.1)
    assert a != make_split(labels, classification=True, seed=4, holdout_share=0.1)
    held = [labels[i] for i in a.holdout_rows]
    assert sorted(held) == sorted(["sun"] * 6 + ["rain"] * 3 + ["snow"] * 1)
    assert len(a.folds) == len(labels) - len(a.holdout_rows)
    kept = [labels[i] for i in range(len(labels)) if i not in set(a.holdout_rows)]
    for cls in ("sun", "rain", "snow"):  # each class spread evenly over the folds
        counts = [sum(1 for lab, f in zip(kept, a.folds) if lab == cls and f == k) for k in range(N_FOLDS)]
        assert max(counts) - min(counts) <= 1, (cls, counts)
    assert make_split(labels, True, 3, 0.0).holdout_rows == ()


# ------------------------------------------------------------------ submission check


def test_submission_check_names_the_row_count_the_columns_and_foreign_ids(tmp_path):
    test = write(tmp_path / "test.csv", "date,temp\n" + "".join(f"2024-01-{d:02d},{d}\n" for d in range(1, 32)))
    sample = write(tmp_path / "sample_submission.csv", "date,weather\n2024-01-01,sun\n")
    short = write(
        tmp_path / "a" / "submission.csv", "date,weather\n" + "".join(f"2024-01-{d:02d},sun\n" for d in range(1, 31))
    )
    assert check_submission(short, test, ["date"], sample) == "submission.csv has 30 rows, the test file has 31"
    wrong_cols = write(tmp_path / "b" / "submission.csv", "id,weather\n" + "".join(f"{i},sun\n" for i in range(31)))
    assert (
        check_submission(wrong_cols, test, ["date"], sample)
        == "submission.csv columns id,weather; expected date,weather (as in sample_submission.csv)"
    )
    assert "expected the id column date" in check_submission(wrong_cols, test, ["date"])
    numbered = write(tmp_path / "c" / "submission.csv", "date,weather\n" + "".join(f"{i},sun\n" for i in range(31)))
    assert (
        check_submission(numbered, test, ["date"], sample)
        == "submission.csv has date '0', which is not in the test file"
    )
    good = write(
        tmp_path / "d" / "submission.csv", "weather,date\n" + "".join(f"rain,2024-01-{d:02d}\n" for d in range(1, 32))
    )
    assert check_submission(good, test, ["date"], sample) is None
    assert find_sample_submission(["data/train.csv", "data/sample_submission.csv"]) == "data/sample_submission.csv"


# ------------------------------------------------------------------ scoring


def card(**over) -> TaskCard:
    base = dict(
        train_file="train.csv",
        test_file="test.csv",
        target="y",
        id_columns=["key"],
        metric="rmse",
        direction="minimize",
    )
    base.update(over)
    return TaskCard(**base)


def test_scores_match_scikit_learn_and_rows_are_matched_on_ids(tmp_path):
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    labels = write(tmp_path / "labels.csv", "key,y\nk1,3\nk2,5\nk3,10\n")
    shuffled = write(tmp_path / "s.csv", "key,y\nk3,9\nk1,3\nk2,7\n")
    assert score_submission(shuffled, labels, card()) == pytest.approx(math.sqrt((1 + 4) / 3))
    partial = write(tmp_path / "p.csv", "key,y\nk3,9\nk1,3\nzz,7\n")
    with pytest.raises(ScoreError, match="no prediction for 1 of the 3"):
        score_submission(partial, labels, card())

    weather = write(tmp_path / "w.csv", "day,weather\n1,sun\n2,rain\n3,snow\n4,sun\n5,rain\n")
    guess = write(tmp_path / "g.csv", "day,weather\n1,sun\n2,sun\n3,snow\n4,sun\n5,rain\n")
    c = card(target="weather", id_columns=["day"], metric="macro_f1", direction="maximize")
    truth, pred = ["sun", "rain", "snow", "sun", "rain"], ["sun", "sun", "snow", "sun", "rain"]
    assert score_submission(guess, weather, c) == pytest.approx(f1_score(truth, pred, average="macro"))
    c.metric = "accuracy"
    assert score_submission(guess, weather, c) == pytest.approx(accuracy_score(truth, pred))

    proba = write(
        tmp_path / "pr.csv",
        "day,weather_rain,weather_snow,weather_sun\n"
        "1,0.1,0.1,0.8\n2,0.6,0.1,0.3\n3,0.2,0.7,0.1\n4,0.3,0.3,0.4\n5,0.5,0.2,0.3\n",
    )
    matrix = [[0.1, 0.1, 0.8], [0.6, 0.1, 0.3], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.5, 0.2, 0.3]]
    c.metric = "log_loss"
    assert score_submission(proba, weather, c) == pytest.approx(log_loss(truth, matrix, labels=["rain", "snow", "sun"]))

    binary = write(tmp_path / "b.csv", "id,hq\n1,1\n2,0\n3,1\n4,0\n")
    probs = write(tmp_path / "bp.csv", "id,hq\n1,0.9\n2,0.4\n3,0.35\n4,0.1\n")
    c = card(target="hq", id_columns=["id"], metric="roc_auc", direction="maximize")
    assert score_submission(probs, binary, c) == pytest.approx(roc_auc_score([1, 0, 1, 0], [0.9, 0.4, 0.35, 0.1]))


def test_final_pick_prefers_the_holdout_score_where_nodes_have_one():
    a = Node(1, None, "draft", 1, status="ok", metric=1.0, holdout_metric=5.0)
    b = Node(2, None, "draft", 2, status="ok", metric=2.0, holdout_metric=3.0)
    c = Node(3, None, "draft", 3, status="ok", metric=0.5)
    assert final_pick([a, b, c], "minimize", c).id == 2
    assert final_pick([c], "minimize", c).id == 3


# ------------------------------------------------------------------ staging


def weather_project(root: Path, *, test_rows: int = 20, sample: bool = True) -> Path:
    """Ids named `date` (not `id`), a three-class text target, text and missing feature values."""
    kinds = ["sun", "rain", "snow"]
    lines = ["date,temp,wind,region,weather"]
    for d in range(120):
        temp = "" if d % 11 == 0 else str(5 + (d * 7) % 20)
        region = "" if d % 13 == 0 else ("north" if d % 2 else "south")
        lines.append(f"2023-{1 + d // 28:02d}-{1 + d % 28:02d},{temp},{d % 9},{region},{kinds[(d * 5) % 7 % 3]}")
    write(root / "data" / "train.csv", "\n".join(lines) + "\n")
    test = ["date,temp,wind,region"] + [f"2024-01-{1 + d:02d},{10 + d % 5},{d % 4},north" for d in range(test_rows)]
    write(root / "data" / "test.csv", "\n".join(test) + "\n")
    if sample:
        write(root / "data" / "sample_submission.csv", "date,weather\n2024-01-01,sun\n")
    write(
        root / "task.md",
        "# Daily weather\n\nPredict `weather` (sun, rain or snow) for each day in data/test.csv. "
        "The `date` column identifies the day. Metric: macro F1, higher is better. Submit date,weather.\n",
    )
    write(
        root / "aide.toml",
        '[task]\ntrain_file = "data/train.csv"\ntest_file = "data/test.csv"\n'
        'target = "weather"\nid_columns = ["date"]\nmetric = "macro_f1"\n',
    )
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "data")
    return root


def test_staging_is_made_once_and_keeps_the_labels_out_of_the_inputs(tmp_path):
    root = weather_project(tmp_path / "p")
    c = card(
        train_file="data/train.csv", test_file="data/test.csv", target="weather", id_columns=["date"], metric="macro_f1"
    )
    first, _ = stage(tmp_path / "run", root, c, seed=1, holdout_share=0.1)
    folds = (tmp_path / "run" / "evaluation" / "folds.csv").read_bytes()
    again, notices = stage(tmp_path / "run", root, c, seed=99, holdout_share=0.3)  # a resumed run keeps its split
    assert again == first and notices == []
    assert (tmp_path / "run" / "evaluation" / "folds.csv").read_bytes() == folds
    assert 10 <= first.holdout_rows <= 14 and first.rows + first.holdout_rows == 120
    features = rows_of(first.holdout_features)
    assert list(features[0]) == ["date", "temp", "wind", "region"]  # the test file's columns: no target
    sources = first.holdout_sources()
    assert first.holdout_labels not in sources.values()
    assert len(rows_of(first.reduced_train)) == first.rows
    held_dates = {r["date"] for r in rows_of(first.holdout_labels)}
    assert not held_dates & {r["date"] for r in rows_of(first.reduced_train)}


# ------------------------------------------------------------------ real runs


def run_offline(project: Path, steps: int, **over) -> tuple[Recorder, ev.RunFinished, object]:
    events = Recorder()
    settings = resolve(
        project / "aide.toml" if (project / "aide.toml").exists() else None,
        dict(steps=steps, num_drafts=steps, coder="offline", seed=2, timeout=120, workers=1, **over),
    )
    engine = build_engine(project, settings, resume=False, listener=events)
    return events, engine.run(), engine


@pytest.mark.timeout(240)
def test_a_weather_run_validates_on_the_fixed_folds_and_scores_the_best_on_the_holdout(tmp_path):
    project = weather_project(tmp_path / "p")
    events, finished, engine = run_offline(project, 2)
    nodes = [e.node for e in events.events if isinstance(e, ev.NodeFinished)]
    assert [n.status for n in nodes] == ["ok", "ok"], [n.review_summary for n in nodes]
    assert all("FOLDS_PATH" in n.code and "fixed time-ordered folds" in n.plan for n in nodes)  # test days follow
    scored = [e for e in events.events if isinstance(e, ev.HoldoutScored)]
    assert scored and all(e.metric is not None and 0 <= e.metric <= 1 for e in scored), scored
    assert finished.best_holdout is not None and finished.best_id in {e.node_id for e in scored}
    run_dir = engine.paths.root
    journal = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    assert {r["id"] for r in journal if r["type"] == "holdout"} == {e.node_id for e in scored}
    # The branch is the node's own commit; its holdout score is a note on it (git log --notes=aide).
    branch = finished.best_branch
    assert git(project, "log", "-1", "--format=%s", branch).startswith(f"#{finished.best_id} ")
    assert "node.json" in git(project, "show", "--format=", "--name-only", branch).split()  # the node's whole change
    assert "holdout_metric" not in json.loads(git(project, "show", f"{branch}:node.json"))
    noted = git(project, "log", "-1", "--notes=aide", "--format=%N", branch)
    assert f"#{finished.best_id} holdout" in noted
    assert parse_holdout_note(noted)["holdout_metric"] == pytest.approx(finished.best_holdout)
    dest, exported = export_node(Project.open(project), "best", tmp_path / "out")
    assert exported.id == finished.best_id and exported.holdout_metric == pytest.approx(finished.best_holdout)

    # a resumed run sees the same folds and the same reduced training file
    folds = (run_dir / "evaluation" / "folds.csv").read_bytes()
    events2 = Recorder()
    settings = resolve(
        project / "aide.toml", dict(steps=3, num_drafts=3, coder="offline", seed=7, timeout=120, workers=1)
    )
    engine2 = build_engine(project, settings, resume=True, listener=events2, run_name=engine.run_name)
    engine2.run()
    assert engine2.paths.root == run_dir
    assert (run_dir / "evaluation" / "folds.csv").read_bytes() == folds
    third = [e.node for e in events2.events if isinstance(e, ev.NodeFinished)][-1]
    assert f"{engine.evaluation.evaluation.rows} training rows" in third.output, third.output

    # the journal rebuilt from git alone still knows the holdout score
    (run_dir / "journal.jsonl").unlink()
    recover_run(Project.open(project), engine.run_name)
    recovered = {n["id"]: n for n in journal_nodes(run_dir / "journal.jsonl")}
    assert recovered[finished.best_id]["holdout_metric"] == pytest.approx(finished.best_holdout)


@pytest.mark.timeout(240)
def test_a_submission_that_does_not_fit_the_test_file_makes_the_node_buggy_with_the_reason(tmp_path):
    project = weather_project(tmp_path / "p", sample=False)
    (project / "aide.toml").write_text(
        (project / "aide.toml").read_text().replace('id_columns = ["date"]', "id_columns = []")
    )
    with pytest.raises(UserError, match=r'set \[task\] id_columns = \["date"\]'):
        run_offline(project, 1)  # task.md asks for date,weather: no run numbers the rows instead
    (project / "aide.toml").write_text(
        (project / "aide.toml").read_text().replace("id_columns = []", 'id_columns = ["date"]')
    )
    write(project / "data" / "sample_submission.csv", "day,weather\n2024-01-01,sun\n")
    events, finished, _ = run_offline(project, 1)
    node = [e.node for e in events.events if isinstance(e, ev.NodeFinished)][0]
    assert node.status == "buggy" and node.metric is None
    assert "submission.csv columns date,weather; expected day,weather" in node.review_summary


def test_a_node_that_writes_no_submission_when_there_is_a_test_file_is_buggy(tmp_path, llm_env):
    from aide_script import ScriptedAide

    llm_env.responder = ScriptedAide()  # its review passes any script that prints a metric: the engine must not
    project = make_project(tmp_path / "p", dirty=False)
    events = Recorder()
    engine = build_engine(
        project, resolve(None, dict(steps=2, coder="llm", workers=1, timeout=60)), resume=False, listener=events
    )
    engine.submit(ev.RunCode(None, "print('Validation metric: 1.5')\n"))
    engine.submit(ev.RunCode(None, WRITE_SUBMISSION + "print('Validation metric: 1.5')\n"))
    engine.run()
    first, second = [e.node for e in events.events if isinstance(e, ev.NodeFinished)]
    assert first.status == "buggy" and first.metric is None
    assert "wrote no submission.csv (the task has a test file, data/test.csv)" in first.review_summary
    assert second.status == "ok" and second.metric == 1.5


@pytest.mark.timeout(300)
@pytest.mark.parametrize("example", ["house-prices", "wine-quality"])
def test_the_bundled_examples_are_scored_on_their_holdout(tmp_path, example):
    project = tmp_path / example
    shutil.copytree(EXAMPLES / example, project)
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "example")
    events, finished, engine = run_offline(project, 2)
    scored = [e for e in events.events if isinstance(e, ev.HoldoutScored)]
    assert scored and all(e.metric is not None and math.isfinite(e.metric) for e in scored), scored
    assert finished.best_holdout is not None
    assert engine.evaluation.evaluation.holdout_rows > 0


def test_a_sandboxed_holdout_re_run_cannot_read_the_withheld_labels(tmp_path):
    from aide_tui.evaluation.holdout import HoldoutScorer
    from aide_tui.run.bwrap import bwrap_problem, isolation_for
    from aide_tui.run.executor import ExecRequest
    from aide_tui.run.inputs import InputData
    from aide_tui.run.local import LocalExecutor
    from aide_tui.run.workspace import list_data_files

    problem = bwrap_problem()
    if problem is not None:
        pytest.skip(f"bwrap cannot start here: {problem}")
    root = weather_project(tmp_path / "p")
    run_dir = root / ".aide" / "runs" / "r1"
    c = card(
        train_file="data/train.csv", test_file="data/test.csv", target="weather", id_columns=["date"], metric="macro_f1"
    )
    evaluation, _ = stage(run_dir, root, c, seed=1, holdout_share=0.1)
    inputs = InputData(root, list_data_files(root), run_dir, read_only_mount=True, sources=evaluation.input_sources())
    isolation = isolation_for(root, Path.home(), [], False)
    scorer = HoldoutScorer(
        evaluation, c, run_dir, inputs, lambda ws: ExecRequest(workspace=ws, timeout=60, isolation=isolation)
    )
    labels = evaluation.holdout_labels
    code = f"""
import os, pandas as pd
for path in ({str(labels)!r}, "../../evaluation/holdout_labels.csv"):
    try:
        open(path).read()
        print("READ", path)
    except OSError:
        print("hidden", path)
test = pd.read_csv("input/data/test.csv")
print("inputs", sorted(os.listdir("input")), sorted(os.listdir("input/data")), "weather" in test.columns)
test[["date"]].assign(weather="sun").to_csv("submission.csv", index=False)
"""
    seen = []

    def run(request):
        result = LocalExecutor().submit(request, lambda s, line: seen.append(line)).wait(90)
        assert result is not None
        return result

    outcome = scorer.score(Node(1, None, "draft", 1, code=code), run)
    output = "\n".join(seen)
    assert "READ" not in output and output.count("hidden") == 2, output
    assert "inputs ['data', 'folds.csv'] ['sample_submission.csv', 'test.csv', 'train.csv'] False" in output
    assert outcome.metric is not None and 0 <= outcome.metric <= 1, outcome
