"""Issue #4's promise: with no API key, the bundled examples run end to end
(offline coder, real execution, git branches) and produce real, graded solutions."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from aide_tui import events as ev
from aide_tui.engine import build_engine
from aide_tui.settings import resolve
from helpers import git

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def grade(example: str, submission: str) -> float:
    answers = list(csv.DictReader((EXAMPLES / "answers" / f"{example}.csv").open()))
    rows = list(csv.DictReader(io.StringIO(submission)))
    id_col, target = list(answers[0].keys())
    assert [r[id_col] for r in rows] == [a[id_col] for a in answers], "one row per test id, in order"
    truth = [float(a[target]) for a in answers]
    pred = [float(r[target]) for r in rows]
    if example == "house-prices":
        return (sum((p - t) ** 2 for p, t in zip(pred, truth)) / len(truth)) ** 0.5
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(truth, pred)


@pytest.mark.parametrize("example,direction", [("house-prices", "minimize"), ("wine-quality", "maximize")])
def test_offline_run_on_example_finds_a_graded_solution(tmp_path, monkeypatch, example, direction):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)  # the newcomer's situation: no key
    project = tmp_path / example
    shutil.copytree(EXAMPLES / example, project)
    events: list[ev.Event] = []
    settings = resolve(project / "aide.toml", dict(steps=10, timeout=120, memory_limit="2G", workers=1))
    engine = build_engine(project, settings, resume=False, listener=events.append)
    finished = engine.run()

    assert finished.reason == "completed" and finished.nodes == 10
    notices = [e.message for e in events if isinstance(e, ev.Notice)]
    assert len([n for n in notices if "offline baseline coder" in n.lower()]) == 1
    assert "ANTHROPIC_API_KEY" in notices[0]
    assert next(e for e in events if isinstance(e, ev.RunStarted)).coder == "offline"

    nodes = {e.node.id: e.node for e in events if isinstance(e, ev.NodeFinished)}
    best = nodes[finished.best_id]
    first_draft = next(n for n in nodes.values() if n.operation == "draft" and n.status == "ok")
    assert best.status == "ok"
    if direction == "minimize":
        assert best.metric <= first_draft.metric
    else:
        assert best.metric >= first_draft.metric
    assert {n.operation for n in nodes.values()} >= {"draft", "improve"}
    assert len({n.code for n in nodes.values()}) == 10  # every node is a distinct script

    branch = f"aide/{engine.run_name}/{best.id:04d}-{best.operation}"
    meta = json.loads(git(project, "show", f"{branch}:node.json"))
    assert meta["direction"] == direction and meta["metric"] == best.metric
    submission = git(project, "show", f"{branch}:outputs/submission.csv")
    score = grade(example, submission)
    if direction == "minimize":  # held-out RMSE in the same range as the validation RMSE
        assert score < 1.5 * best.metric
    else:
        assert score > 0.75
