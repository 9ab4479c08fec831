"""The run's git history reads naturally: one tree per run under a root commit,
`git show` of a node is that node's change, subjects a reader can scan, and
`.aide/` keeps `git status` clean."""

from __future__ import annotations

import hashlib
import json

import pytest
from helpers import git, make_project
from test_durability import GOOD, branches, journal_ids, run

from aide_tui import events as ev
from aide_tui.records import metric_name, node_subject, subject_metric
from aide_tui.search.node import ExecInfo, Node
from aide_tui.search.task_card import TaskCard

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

CRASH = "raise KeyError('price')\n"


def test_a_run_is_one_tree_under_its_root_and_each_show_is_the_nodes_change(tmp_path):
    project = make_project(tmp_path / "p", dirty=False)
    (project / "aide.toml").write_text("steps = 3\n")
    git(project, "add", "aide.toml")
    git(project, "commit", "-qm", "settings")
    head = git(project, "rev-parse", "HEAD").strip()
    events: list[ev.Event] = []
    engine, finished, events = run(project, [GOOD.format(m=20110.4)])
    assert finished.reason == "completed"
    name = engine.run_name
    root = f"aide/{name}/root"
    assert git(project, "log", "-1", "--format=%P", root).split() == []  # a tree of its own ...
    assert (
        git(project, "log", "-1", "--format=%(trailers:key=Aide-Base,valueonly)", root).strip() == head
    )  # ... started from HEAD
    added = git(project, "show", "--format=", "--name-status", root).split()
    assert added == [
        "A",
        "aide.toml",
        "A",
        "data-manifest.json",
        "A",
        "task.md",
        "A",
        "task_card.json",
    ]  # only the run's inputs
    assert git(project, "ls-tree", "-r", "--name-only", root).split() == [
        "aide.toml",
        "data-manifest.json",
        "task.md",
        "task_card.json",
    ]
    assert json.loads(git(project, "show", f"{root}:task_card.json"))["target"] == "sale_price"  # settled at the start
    assert git(project, "show", f"{root}:task.md") == (project / "task.md").read_text()
    manifest = json.loads(git(project, "show", f"{root}:data-manifest.json"))["files"]
    train = (project / "data" / "train.csv").read_bytes()
    assert {"path": "data/train.csv", "size": len(train), "sha256": hashlib.sha256(train).hexdigest()} in manifest
    subject = git(project, "log", "-1", "--format=%s", root).strip()
    assert subject == f"run {name}: Predict house prices"

    draft = f"aide/{name}/0001-manual"
    assert git(project, "log", "-1", "--format=%P", draft).split() == [git(project, "rev-parse", root).strip()]
    changed = git(project, "show", "--format=", "--name-status", draft).split()
    assert changed == ["A", "node.json", "A", "output.txt", "A", "outputs/submission.csv", "A", "solution.py"]
    assert git(project, "status", "--porcelain", "--untracked-files=all") == ""  # .aide/ ignores itself
    assert (project / ".aide" / ".gitignore").read_text().splitlines()[-1] == "*"


def test_subjects_start_with_what_a_reader_scans(tmp_path):
    project = make_project(tmp_path / "p", dirty=False)
    events: list[ev.Event] = []
    engine, finished, events = run(project, [GOOD.format(m=20110)])
    assert finished.reason == "completed"
    # improve #1, then a crashing child of #1, then its debug: the commands name the parents
    from aide_tui.engine import build_engine
    from aide_tui.settings import resolve

    settings = resolve(None, dict(steps=4, timeout=30, coder="offline", workers=1, holdout=0))
    commands = [
        ev.RunCode(1, GOOD.format(m=18210.2), "Target encoding of the neighbourhood\n\nMore detail."),
        ev.RunCode(2, CRASH, "Add a price feature"),
        ev.RunCode(3, GOOD.format(m=19000), "Use the right column"),
    ]

    def listener(event):  # each command names the node before it, so it goes in once that node exists
        events.append(event)
        if isinstance(event, (ev.RunStarted, ev.NodeFinished)) and commands:
            resumed.submit(commands.pop(0))

    resumed = build_engine(project, settings, resume=True, listener=listener, run_name=engine.run_name)
    assert resumed.run().reason == "completed"
    subjects = git(project, "log", "--format=%s", f"aide/{engine.run_name}/0004-manual").splitlines()
    assert subjects[:4] == [
        "#4 manual #3: RMSE 19,000, use the right column",
        "#3 manual #2: buggy (KeyError), add a price feature",
        "#2 manual #1: RMSE 20,110 -> 18,210, target encoding of the…",  # cut to 72
        "#1 manual: RMSE 20,110, edited by hand.",
    ]
    body = git(project, "log", "-1", "--format=%B", f"aide/{engine.run_name}/0002-manual")
    assert "More detail." in body and "Aide-Metric: 18210.2" in body
    assert journal_ids(resumed) == [1, 2, 3, 4]


def test_subject_rules():
    crashed = Node(2, 1, "draft", 2, status="buggy", exec=ExecInfo(exc_type="KeyError"))
    fixed = Node(4, 2, "debug", 4, plan="Use the right column name", status="ok", metric=19000.0)
    assert node_subject(fixed, crashed, "rmse") == "#4 debug #2: fixed KeyError, rmse 19,000, use the right column name"
    parent = Node(3, None, "draft", 3, status="ok", metric=18502.0)
    improve = Node(7, 3, "improve", 7, plan="Target encoding " + "and more words " * 10, status="ok", metric=18210.0)
    subject = node_subject(improve, parent, "rmse")
    assert subject.startswith("#7 improve #3: rmse 18,502 -> 18,210, target encoding") and len(subject) <= 72
    assert subject.endswith("…")
    slow = Node(5, 3, "improve", 5, plan="XGBoost with 5,000 trees", status="timeout")
    assert node_subject(slow, parent) == "#5 improve #3: buggy (timed out), XGBoost with 5,000 trees"
    assert metric_name("# T\n\nMetric: RMSE on a split\n") == "rmse"
    assert metric_name("**Metric**: accuracy (higher is better)") == "accuracy"
    assert metric_name("no such line") == "metric"
    # The offline coder's plans start with the operation; the subject says it once.
    draft = Node(
        2, None, "draft", 2, plan="Draft: ridge regression, validated with 5-fold CV.", status="ok", metric=28631.5
    )
    assert node_subject(draft, None, "RMSE") == "#2 draft: RMSE 28,632, ridge regression, validated with 5-fold CV."
    card = TaskCard("data/train.csv", None, "sale_price", [], "rmse", "minimize")
    assert subject_metric(card, "no Metric line here") == "RMSE"  # the card's name, not "metric"
    assert subject_metric(None, "Metric: MAE") == "mae" and subject_metric(None, "") == "metric"


def test_a_run_from_before_root_commits_still_resumes(tmp_path):
    """The previous version made no root: drafts hang off the user's HEAD, holding only node files."""
    project = make_project(tmp_path / "p", dirty=False)
    engine, _, _ = run(project, [GOOD.format(m=1)])
    name = engine.run_name
    git(project, "update-ref", "-d", f"refs/heads/aide/{name}/root")
    git(project, "update-ref", "-d", f"refs/heads/aide/{name}/0001-manual")  # re-made by the resume, old style
    resumed, finished, events = run(project, [GOOD.format(m=2)], resume=name, steps=2)
    assert finished.reason == "completed" and journal_ids(resumed) == [1, 2]
    head = git(project, "rev-parse", "HEAD").strip()
    for node in ("0001-manual", "0002-manual"):
        assert git(project, "log", "-1", "--format=%P", f"aide/{name}/{node}").split() == [head]
        assert "task.md" not in git(project, "ls-tree", "--name-only", f"aide/{name}/{node}").split()
    assert sorted(b.rsplit("/", 1)[1] for b in branches(project, name)) == ["0001-manual", "0002-manual"]


def test_a_holdout_note_reads_back_what_it_says():
    from aide_tui.records import holdout_note_text, parse_holdout_note

    node = Node(7, 3, "improve", 7, status="ok", metric=18.2)
    node.holdout_metric, node.holdout_spread, node.holdout_flag = 57.3065, 1.25, "validation 0.1\nbut holdout 57"
    text = holdout_note_text(node, "run1", "RMSE")
    assert text.splitlines()[0] == "#7 holdout RMSE 57.306 (re-run on the hidden holdout rows)"
    assert parse_holdout_note(text) == {
        "holdout_metric": 57.3065,
        "holdout_note": "",
        "holdout_spread": 1.25,
        "holdout_flag": "validation 0.1 but holdout 57",
    }
    unscored = Node(8, 3, "improve", 8, status="ok", metric=18.0, holdout_note="no submission.csv")
    assert parse_holdout_note(holdout_note_text(unscored, "run1"))["holdout_note"] == "no submission.csv"
    assert parse_holdout_note("a note someone else wrote") is None
