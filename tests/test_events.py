"""What the real engine announces: each fact once, with everything a front end would otherwise rebuild.

A real run (real SDK over HTTP to the Messages API stand-in, real scripts, real git)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from aide_script import ScriptedAide
from helpers import git, make_project

from aide_tui import events as ev
from aide_tui.engine import build_engine
from aide_tui.settings import resolve

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


def settings(**over):
    base = dict(steps=5, num_drafts=2, debug_prob=0.0, timeout=30, memory_limit="1G", coder="llm", seed=1, workers=1)
    base.update(over)
    return resolve(None, base)


@pytest.fixture
def scripted(llm_env):
    llm_env.responder = ScriptedAide(crash_every=2)  # nodes 1 and 3 work, 2 crashes


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


def latest_commits(events) -> dict[int, str]:
    """Each node's commit as the events announced it: NodeFinished, and HoldoutScored names the same one."""
    tips = {}
    for e in events:
        if isinstance(e, ev.NodeFinished):
            tips[e.node.id] = e.commit
        elif isinstance(e, ev.HoldoutScored) and e.commit:
            tips[e.node_id] = e.commit
    return tips


def run_steered(project, steer, **over) -> tuple[list[ev.Event], object]:
    """Run to the end; `steer(engine, event)` is called on every event (on the engine thread)."""
    events: list[ev.Event] = []
    engine = build_engine(project, settings(**over), resume=False, listener=lambda e: None)

    def listener(event):
        events.append(event)
        steer(engine, event)

    engine.listener = listener
    engine.run()
    return events, engine


def test_one_next_planned_per_change_of_plan_and_the_queue_is_the_engines(tmp_path, scripted):
    project = make_project(tmp_path / "p", dirty=False)

    def steer(engine, event):
        if isinstance(event, ev.NodeFinished) and event.node.id == 1:
            engine.submit(ev.Pause())
        if isinstance(event, ev.RunStateChanged) and event.state == "paused":
            engine.submit(ev.DraftNext())  # changes the plan of step 2
            engine.submit(ev.ImproveNode(1))  # queued behind it: step 2's plan is unchanged
            engine.submit(ev.AddHint("try a log target"))
            engine.submit(ev.Resume())

    events, _ = run_steered(project, steer)
    planned = [(e.step, e.operation, e.parent_id, e.source) for e in of(events, ev.NextPlanned)]
    assert planned[:4] == [
        (1, "draft", None, "policy"),
        (2, "draft", None, "policy"),
        (2, "draft", None, "command"),
        (3, "improve", 1, "command"),
    ]
    assert [(step, source) for step, _, _, source in planned[4:]] == [(4, "policy"), (5, "policy")]
    queues = [(tuple((s.operation, s.parent_id) for s in e.steps), e.hints) for e in of(events, ev.QueueChanged)]
    assert queues == [
        ((("draft", None),), ()),
        ((("draft", None), ("improve", 1)), ()),
        ((("draft", None), ("improve", 1)), ("try a log target",)),
        ((("improve", 1),), ()),  # step 2 took the draft and the hint
        ((), ()),  # step 3 took the improve
    ]
    started = of(events, ev.NodeStarted)
    assert [(e.operation, e.parent_id, e.hint) for e in started[1:3]] == [
        ("draft", None, "try a log target"),
        ("improve", 1, None),
    ]
    # each NextPlanned precedes the step it announces; none is sent while a step runs
    kinds = [type(e).__name__ for e in events]
    for i, kind in enumerate(kinds):
        if kind == "NextPlanned":
            running = kinds[:i].count("NodeStarted") - kinds[:i].count("NodeFinished")
            assert running == 0


def test_direction_node_records_and_the_run_finished_say_it_all(tmp_path, scripted):
    project = make_project(tmp_path / "p", dirty=False)
    events, engine = run_steered(project, lambda engine, event: None, steps=3)
    started = of(events, ev.RunStarted)[0]
    assert started.direction is None  # direction = auto: the first working node's review decides
    fixed = of(events, ev.DirectionFixed)
    assert [e.direction for e in fixed] == ["minimize"]
    run_info = json.loads((project / ".aide" / "runs" / engine.run_name / "run.json").read_text())
    assert run_info["direction"] == "minimize"
    assert events.index(fixed[0]) < events.index(of(events, ev.NodeFinished)[0])
    tips = latest_commits(events)
    for finished in of(events, ev.NodeFinished):
        record = finished.to_json()["node"]
        on_disk = json.loads(git(project, "show", f"{finished.branch}:node.json"))
        assert {key: record[key] for key in on_disk} == on_disk
        assert git(project, "rev-parse", finished.branch).strip() == tips[finished.node.id]
    done = of(events, ev.RunFinished)[0]
    best = next(e for e in of(events, ev.NodeFinished) if e.node.id == done.best_id)
    assert (done.reason, done.nodes, done.best_metric, done.best_branch) == (
        "completed",
        3,
        best.node.metric,
        best.branch,
    )
    assert done.best_id == of(events, ev.NodeFinished)[-1].best_id


def test_replayed_nodes_carry_their_branch_commit_and_best(tmp_path, scripted):
    project = make_project(tmp_path / "p", dirty=False)

    def stop_after_2(engine, event):
        if isinstance(event, ev.NodeFinished) and event.node.id == 2:
            engine.submit(ev.StopAfterStep())

    first, engine = run_steered(project, stop_after_2, steps=4)
    assert of(first, ev.RunFinished)[0].reason == "stopped"
    again: list[ev.Event] = []
    build_engine(project, settings(steps=3), resume=True, listener=again.append).run()
    replayed = of(again, ev.RunStarted)[0].nodes
    tips = latest_commits(first)  # exactly as they were announced (a holdout score is a note on that commit)
    assert replayed == tuple(dataclasses.replace(e, commit=tips[e.node.id]) for e in of(first, ev.NodeFinished))
    for record in replayed:
        assert git(project, "rev-parse", record.branch).strip() == record.commit
    assert of(again, ev.RunStarted)[0].direction == "minimize"


def test_pause_and_stop_asked_mid_step_are_pending_and_a_second_pause_cancels(tmp_path, scripted):
    project = make_project(tmp_path / "p", dirty=False)
    answers: list[str] = []

    def steer(engine, event):
        if isinstance(event, ev.NodeStarted) and event.node_id == 1:
            engine.submit(ev.Pause())
            engine.submit(ev.Resume())  # the pause is taken back before the step ends
        if isinstance(event, ev.NodeStarted) and event.node_id == 2:
            engine.submit(ev.StopAfterStep())
        if isinstance(event, ev.CommandAccepted):
            answers.append(event.detail)

    events, _ = run_steered(project, steer, steps=4)
    states = [(e.state, e.reason) for e in of(events, ev.RunStateChanged)]
    assert states == [
        ("running", ""),
        ("pausing", "pausing after the current step"),
        ("running", "pause cancelled"),
        ("stopping", "stopping after the current step"),
        ("finished", "stopped"),
    ]
    assert answers == [
        "pausing after the current step",
        "the pending pause is cancelled",
        "stopping after the current step",
    ]
    assert [e.node.id for e in of(events, ev.NodeFinished)] == [1, 2]


def test_phases_sent_are_the_phases_declared(tmp_path, scripted):
    project = make_project(tmp_path / "p", dirty=False)
    events, _ = run_steered(project, lambda engine, event: None, steps=2)
    assert {e.phase for e in of(events, ev.PhaseChanged)} == set(ev.Phase.__args__)


def test_a_command_sent_before_the_run_starts_is_announced_with_the_first_step(tmp_path, scripted):
    project = make_project(tmp_path / "p", dirty=False)
    events: list[ev.Event] = []
    engine = build_engine(project, settings(steps=1), resume=False, listener=events.append)
    engine.submit(ev.DraftNext())
    engine.run()
    kinds = [type(e).__name__ for e in events]
    assert kinds[:2] == ["CommandAccepted", "QueueChanged"]  # answered at once
    assert kinds.index("RunStarted") < kinds.index("NextPlanned")
    assert [(e.step, e.source) for e in of(events, ev.NextPlanned)] == [(1, "command")]


def test_the_readme_documents_every_event_and_its_json_fields():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", readme, re.MULTILINE))
    for kind in ev.ALL_EVENTS:
        fields = [f.name for f in dataclasses.fields(kind)]
        if kind is ev.NodeFinished:  # run, branch and direction sit inside `node`, as in node.json
            fields = [f for f in fields if f not in ("run", "branch", "direction")]
        documented = [name.strip() for name in re.sub(r"\([^)]*\)", "", rows[kind.__name__]).split(",")]
        assert documented == fields, kind.__name__


def test_headless_verbose_names_the_node_of_every_reply_and_output_line():
    """Two nodes in flight: their streamed replies and outputs interleave, so each line says whose."""
    import io

    from aide_tui.headless import HeadlessPrinter

    out = io.StringIO()
    printer = HeadlessPrinter(verbose=True, out=out, err=out)
    for event in (
        ev.LlmDelta(1, "Plan for one.\n```py"),
        ev.LlmDelta(2, "Plan for "),
        ev.LlmDelta(1, "thon\nprint(1)"),
        ev.OutputLine(2, "stdout", "fold 0: 0.5"),
        ev.LlmDelta(2, "two.\n"),
        ev.CodeReady(1, "Plan for one.", "print(1)"),
        ev.OutputLine(1, "stderr", "warning"),
    ):
        printer(event)
    assert out.getvalue().splitlines() == [
        "  #1 > Plan for one.",
        "  #1 > ```python",  # a line is printed once it is whole, from however many pieces
        "  #2 | fold 0: 0.5",
        "  #2 > Plan for two.",
        "  #1 > print(1)",  # the reply's last line, without a newline, once the code is ready
        "  #1 | warning",
    ]


def test_the_holdout_pick_is_marked_in_the_tree_when_it_is_not_the_best():
    """★ is the search's best by validation; when the hidden holdout ranks another node above
    it, the run answers with that one ("best #8" at the end), and the tree must say which."""
    from aide_tui.app.widgets.node_tree import Palette, node_label
    from aide_tui.search.node import Node
    from aide_tui.state import RunModel

    model = RunModel()
    a = Node(1, None, "draft", 1, status="ok", metric=2.0)
    b = Node(2, None, "draft", 2, status="ok", metric=1.0)
    model.apply(ev.NodeFinished(a, 1, "c1", "aide/r/0001-draft", "r", "minimize"))
    model.apply(ev.NodeFinished(b, 2, "c2", "aide/r/0002-draft", "r", "minimize"))

    def labels():
        return {i: node_label(model.nodes[i], model.best_id, Palette(), pick_id=model.pick_id).plain for i in (1, 2)}

    assert labels() == {1: "#1 draft ✓ 2.0000", 2: "#2 draft ✓ 1.0000 ★"}
    change = model.apply(ev.HoldoutScored(2, 9.0, "", 2))
    assert "pick" not in labels()[1] and "pick" not in labels()[2]  # the best is also the pick
    change = model.apply(ev.HoldoutScored(1, 4.0, "", 1))
    assert labels() == {1: "#1 draft ✓ 2.0000 · holdout 4.0000 ⚑ pick", 2: "#2 draft ✓ 1.0000 · holdout 9.0000 ★"}
    assert set(change.tree_updated) >= {1, 2}  # both labels are redrawn
    model.apply(ev.RunFinished("completed", 2, best_id=1, best_metric=2.0, best_holdout=4.0))
    assert model.pick_id == 1


def test_the_spend_accrues_while_nodes_run_and_is_exact_once_they_finish():
    import dataclasses

    from aide_tui.search.node import Node, Usage
    from aide_tui.state import RunModel

    model = RunModel()

    def same(a: Usage, b: Usage) -> bool:
        return dataclasses.replace(a, cost=0.0) == dataclasses.replace(b, cost=0.0) and a.cost == pytest.approx(b.cost)

    card = Usage(input_tokens=500, output_tokens=50, cost=0.01, calls=1)
    model.apply(ev.UsageUpdated(card, None))
    for node_id in (1, 2):  # two workers
        model.apply(ev.NodeStarted(node_id, None, "draft", node_id))
    code = Usage(input_tokens=1000, output_tokens=400, cost=0.02, calls=1)
    model.apply(ev.CodeReady(1, "plan", "print(1)", code))
    assert same(model.accrued_usage, card + code)  # #1 has spent on its code; #2 is still streaming
    model.apply(ev.CodeReady(2, "plan", "print(2)", code))
    assert same(model.accrued_usage, card + code + code)
    review = Usage(input_tokens=300, output_tokens=20, cost=0.005, calls=1)
    done = Node(1, None, "draft", 1, status="ok", metric=1.0, usage=code + review)
    model.apply(ev.NodeFinished(done, 1, "c1", "aide/r/0001-draft", "r", "minimize"))
    assert same(model.accrued_usage, card + code + review + code)  # before the engine's total arrives, too
    model.apply(ev.UsageUpdated(card + code + review, None))
    assert same(model.accrued_usage, card + code + review + code)
