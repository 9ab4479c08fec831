"""End to end: a real search with the real SDK (over HTTP to the stand-in),
real subprocess execution and a real git repository."""

from __future__ import annotations

import json
import threading

import pytest
from aide_script import ScriptedAide
from helpers import WRITE_SUBMISSION, Recorder, git, journal_nodes, make_project, user_state, wait_until

from aide_tui import events as ev
from aide_tui.engine import build_engine
from aide_tui.settings import resolve

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


def settings(**over):
    base = dict(
        steps=9,
        num_drafts=3,
        debug_prob=1.0,
        max_debug_depth=2,
        timeout=30,
        memory_limit="1G",
        coder="llm",
        seed=1,
        workers=1,
    )
    base.update(over)
    return resolve(None, base)


def run_paused_after_first_node(engine, rec: Recorder) -> threading.Thread:
    """Start the run in a thread; return once the engine holds, paused, after node 1."""
    paused = threading.Event()

    def listener(event):
        rec(event)
        if isinstance(event, ev.NodeFinished) and event.node.id == 1:
            engine.submit(ev.Pause())
        if isinstance(event, ev.RunStateChanged) and event.state == "paused":
            paused.set()

    engine.listener = listener
    worker = threading.Thread(target=engine.run)
    worker.start()
    assert paused.wait(60)
    return worker


@pytest.fixture
def scripted(llm_env):
    aide = ScriptedAide(crash_every=2)
    llm_env.responder = aide
    return aide


def test_full_search_builds_branches_commits_and_leaves_user_state_alone(tmp_path, scripted, llm_env):
    project = make_project(tmp_path / "proj")
    before = user_state(project)
    rec = Recorder()
    engine = build_engine(project, settings(), resume=False, listener=rec)
    finished = engine.run()

    assert finished.reason == "completed" and finished.nodes == 9
    assert user_state(project) == before  # HEAD, index, status, every file byte-identical

    nodes = [e.node for e in rec.of(ev.NodeFinished)]
    assert [n.id for n in nodes] == list(range(1, 10))
    ops = [n.operation for n in nodes]
    assert ops[:3] == ["draft", "draft", "draft"]  # num_drafts first
    # draft 2 crashed; with debug_prob=1 the policy debugs it next
    assert nodes[1].status == "buggy" and nodes[1].exec.exc_type == "ValueError"
    assert nodes[3].operation == "debug" and nodes[3].parent_id == 2 and nodes[3].status == "ok"
    assert "improve" in ops

    # best node: lowest metric among working nodes (RMSE, lower is better)
    ok = [n for n in nodes if n.status == "ok"]
    best = min(ok, key=lambda n: n.metric)
    assert finished.best_id == best.id
    assert (
        json.loads((project / ".aide" / "runs" / engine.run_name / "run.json").read_text())["direction"] == "minimize"
    )

    # git: one branch per node, parents follow the tree, node.json matches
    run = engine.run_name
    refs = git(project, "for-each-ref", "--format=%(refname:short)", f"refs/heads/aide/{run}/").split()
    assert len(refs) == 10 and f"aide/{run}/root" in refs  # the run's root + one branch per node
    user_head = before["head_sha"].strip()
    root = git(project, "rev-parse", f"aide/{run}/root").strip()
    assert git(project, "log", "-1", "--format=%P", root).split() == []
    assert git(project, "log", "-1", "--format=%(trailers:key=Aide-Base,valueonly)", root).strip() == user_head
    commits = {e.node.id: e.commit for e in rec.of(ev.NodeFinished)}
    for n in nodes:
        branch = f"aide/{run}/{n.id:04d}-{n.operation}"
        assert branch in refs
        commit = commits[n.id]  # the branch is the node's commit (a holdout score is a note on it)
        assert commit == git(project, "rev-parse", branch).strip()
        parents = git(project, "log", "-1", "--format=%P", commit).split()
        if n.parent_id is None:
            assert parents == [root]
        else:
            parent = next(p for p in nodes if p.id == n.parent_id)
            assert (
                len(parents) == 1
                and parents[0] in git(project, "rev-list", f"aide/{run}/{parent.id:04d}-{parent.operation}").split()
            )
        meta = json.loads(git(project, "show", f"{commit}:node.json"))
        assert meta["id"] == n.id and meta["operation"] == n.operation and meta["status"] == n.status
        assert meta["metric"] == n.metric and meta["direction"] == "minimize"
        assert git(project, "show", f"{commit}:solution.py") == n.code
        trailers = git(project, "log", "-1", "--format=%(trailers:key=Aide-Status,valueonly)", commit).strip()
        assert trailers == n.status
    best_branch = f"aide/{run}/{best.id:04d}-{best.operation}"
    assert "id,prediction" in git(project, "show", f"{best_branch}:outputs/submission.csv")
    # the lineage shows with plain git log
    lineage = git(project, "log", "--format=%s", best_branch).splitlines()
    assert lineage[-1].startswith(f"run {run}: ") and len(lineage) >= 2  # down to the run's root, which has no parent

    # usage and cache fields flow through
    total = rec.of(ev.UsageUpdated)[-1].total
    assert total.input_tokens > 0 and total.output_tokens > 0 and total.cache_read_tokens > 0
    assert total.cost > 0
    # the LLM's reply streamed as deltas, the script's output as lines
    assert len(rec.of(ev.LlmDelta)) > 20
    assert any("loaded 36 training rows" in e.line for e in rec.of(ev.OutputLine))  # 40 less the hidden holdout
    # journal holds each node exactly once
    journal_path = project / ".aide" / "runs" / run / "journal.jsonl"
    assert [n["id"] for n in journal_nodes(journal_path)] == list(range(1, 10))


def test_commands_override_the_policy_and_hints_reach_the_prompt(tmp_path, scripted, llm_env):
    project = make_project(tmp_path / "proj", dirty=False)
    rec = Recorder()
    engine = build_engine(project, settings(steps=6, num_drafts=2, debug_prob=0.0), resume=False, listener=rec)
    done = threading.Event()

    def steer(event):
        rec(event)
        if isinstance(event, ev.NodeFinished) and event.node.id == 2:
            engine.submit(ev.AddHint("try gradient boosting with depth 3"))
            engine.submit(ev.DebugNode(2))  # node 2 crashed (crash_every=2)
            engine.submit(ev.ImproveNode(1))
            engine.submit(ev.DebugNode(1))  # works: rejected
            engine.submit(ev.DraftNext())
            engine.submit(ev.RunCode(1, WRITE_SUBMISSION + "print('Validation metric: 1.5')\n"))
        if isinstance(event, ev.RunFinished):
            done.set()

    engine.listener = steer
    engine.run()
    nodes = {e.node.id: e.node for e in rec.of(ev.NodeFinished)}
    assert (nodes[3].operation, nodes[3].parent_id) == ("debug", 2)
    assert nodes[3].hint == "try gradient boosting with depth 3"
    assert (nodes[4].operation, nodes[4].parent_id) == ("improve", 1)
    assert nodes[5].operation == "draft"  # the policy would have improved the best
    assert (nodes[6].operation, nodes[6].parent_id, nodes[6].metric) == ("manual", 1, 1.5)
    rejected = rec.of(ev.CommandRejected)
    assert len(rejected) == 1 and "works" in rejected[0].reason
    debug_prompts = [text for op, text in scripted.prompts if op == "debug"]
    assert "try gradient boosting with depth 3" in debug_prompts[0]
    assert all("gradient boosting" not in text for op, text in scripted.prompts if op != "debug")


def test_pause_and_resume_hold_the_next_step(tmp_path, scripted, llm_env):
    project = make_project(tmp_path / "proj", dirty=False)
    rec = Recorder()
    engine = build_engine(project, settings(steps=3, num_drafts=3), resume=False, listener=rec)
    worker = run_paused_after_first_node(engine, rec)
    assert len(rec.of(ev.NodeFinished)) == 1
    # Held, not just announced: the loop blocks in hold_if_paused until Resume (a state, not a
    # time: a pause that only says "paused" never gets there, and this wait fails).
    wait_until(lambda: engine.control.holding and engine.control.paused, what="the loop holding while paused")
    assert worker.is_alive() and len(rec.of(ev.NodeFinished)) == 1 and len(rec.of(ev.NodeStarted)) == 1
    engine.submit(ev.Resume())
    worker.join(120)
    assert not worker.is_alive()
    assert len(rec.of(ev.NodeFinished)) == 3


def test_stop_after_step_and_resume_continue_to_the_step_count(tmp_path, scripted, llm_env):
    project = make_project(tmp_path / "proj", dirty=False)
    rec = Recorder()
    engine = build_engine(project, settings(steps=5), resume=False, listener=rec)

    def listener(event):
        rec(event)
        if isinstance(event, ev.NodeFinished) and event.node.id == 2:
            engine.submit(ev.StopAfterStep())

    engine.listener = listener
    assert engine.run().reason == "stopped"
    assert len(rec.of(ev.NodeFinished)) == 2
    rec2 = Recorder()
    engine2 = build_engine(
        project, resolve(None, dict(num_drafts=3, timeout=30, coder="llm", workers=1)), resume=True, listener=rec2
    )
    assert engine2.run_name == engine.run_name
    finished = engine2.run()
    assert finished.reason == "completed"
    started = rec2.of(ev.RunStarted)[0]
    assert started.resumed and [n.node.id for n in started.nodes] == [1, 2]
    assert [e.node.id for e in rec2.of(ev.NodeFinished)] == [3, 4, 5]  # the run's own target, not the default 20
    # --steps given again raises the target
    rec3 = Recorder()
    build_engine(
        project,
        resolve(None, dict(steps=6, timeout=30, coder="llm", workers=1)),
        resume=True,
        listener=rec3,
        run_name=engine.run_name,
    ).run()
    assert [e.node.id for e in rec3.of(ev.NodeFinished)] == [6]


def test_second_instance_is_refused_while_the_first_holds_the_lock(tmp_path, scripted, llm_env):
    from aide_tui.errors import UserError

    project = make_project(tmp_path / "proj", dirty=False)
    first = build_engine(project, settings(steps=1), resume=False, listener=Recorder())
    with pytest.raises(UserError, match="another aide-tui is running"):
        build_engine(project, settings(steps=1), resume=False, listener=Recorder())
    first.run()  # releases the lock
    build_engine(project, settings(steps=1), resume=False, listener=Recorder()).lock.release()


def test_budget_stops_the_run_cleanly(tmp_path, scripted, llm_env):
    from card_reader import is_card_call
    from fake_api import ErrorReply

    aide = llm_env.responder  # the task card call fails (costing nothing), so the budget is spent by node 1
    llm_env.responder = lambda body: ErrorReply(400) if is_card_call(body) else aide(body)
    project = make_project(tmp_path / "proj", dirty=False)
    rec = Recorder()
    engine = build_engine(project, settings(steps=6, budget=0.0001), resume=False, listener=rec)
    finished = engine.run()
    assert finished.reason == "budget" and finished.nodes == 1
    errors = rec.of(ev.RunError)
    assert errors and errors[0].kind == "budget" and "budget" in errors[0].message
    assert rec.of(ev.UsageUpdated)[-1].total.cost >= 0.0001


def test_a_reply_without_code_is_retried_then_recorded_as_a_failed_node(tmp_path, llm_env):
    from fake_api import TextReply

    aide = ScriptedAide(crash_every=0)
    refusals = []

    def responder(body):
        if not body.get("tools") and len(refusals) < 3:
            refusals.append(body)
            return TextReply("I would use a random forest, but I will not write code today.")
        return aide(body)

    llm_env.responder = responder
    project = make_project(tmp_path / "proj", dirty=False)
    rec = Recorder()
    engine = build_engine(project, settings(steps=2, num_drafts=2), resume=False, listener=rec)
    assert engine.run().reason == "completed"
    first, second = [e.node for e in rec.of(ev.NodeFinished)]
    assert first.status == "buggy" and first.code == "" and "no usable code" in first.plan
    assert first.usage.calls == 3  # the original request plus two retries
    assert second.status == "ok"
    assert git(project, "show", f"aide/{engine.run_name}/0001-draft:solution.py") == ""


def test_cancel_now_kills_the_running_script_and_discards_the_half_built_node(tmp_path, llm_env):
    import psutil
    from fake_api import TextReply

    marker = "aide-cancel-test-sleeper"  # unique: other xdist workers start sleepers of their own
    hang = f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)  # {marker}'])\nprint('started', flush=True)\ntime.sleep(600)\n"
    llm_env.responder = lambda body: TextReply(f"Hang.\n\n```python\n{hang}```\n")
    project = make_project(tmp_path / "proj", dirty=False)
    rec = Recorder()
    engine = build_engine(project, settings(steps=3, timeout=300), resume=False, listener=rec)

    def listener(event):
        rec(event)
        if isinstance(event, ev.OutputLine) and "started" in event.line:
            threading.Thread(target=engine.shutdown).start()

    engine.listener = listener
    before = {p.pid for p in psutil.process_iter()}
    finished = engine.run()
    assert finished.reason == "cancelled" and finished.nodes == 0
    leftovers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if p.pid not in before and marker in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []
    assert not (project / ".aide" / "runs" / engine.run_name / "nodes" / "0001").exists()
    assert json.loads((project / ".aide" / "runs" / engine.run_name / "run.json").read_text())["status"] == "stopped"


@pytest.mark.parametrize("copy_limit", [0, 10**9], ids=["linked-snapshot", "fresh-copy"])
def test_a_script_that_overwrites_its_inputs_cannot_hurt_the_next_node(tmp_path, llm_env, copy_limit):
    from aide_tui.engine import Engine

    llm_env.responder = ScriptedAide(crash_every=0)
    project = make_project(tmp_path / "proj", dirty=False)
    original = (project / "data" / "train.csv").read_bytes()
    rec = Recorder()
    # Unsandboxed, so the write lands and the repair path is what is tested (bwrap refuses the
    # write itself: tests/test_sandbox.py).
    engine = build_engine(project, settings(steps=3, num_drafts=3, sandbox="none"), resume=False, listener=rec)
    engine.input_copy_limit = copy_limit
    vandal = (
        "import os\n"
        "with open('input/data/train.csv', 'r+') as fh:\n    fh.write('GARBAGE')\n"
        "os.remove('input/data/test.csv')\n"
        "print('Validation metric: 1')\n"
    )
    engine.submit(ev.RunCode(None, vandal))
    engine.run()
    nodes = [e.node for e in rec.of(ev.NodeFinished)]
    assert nodes[0].operation == "manual"
    assert all(n.status == "ok" for n in nodes[1:])  # later drafts read intact data
    rows = engine.evaluation.evaluation.rows  # the training rows left after the hidden holdout
    assert any(f"loaded {rows} training rows" in e.line for e in rec.of(ev.OutputLine) if e.node_id == 2)
    assert (project / "data" / "train.csv").read_bytes() == original
    assert (project / "data" / "test.csv").exists()
    assert isinstance(engine, Engine) and engine.inputs.mode == ("link" if copy_limit == 0 else "copy")
    if copy_limit == 0:
        assert "modified its input files" in nodes[0].review_summary
        assert any(isinstance(e, ev.Notice) and "restored" in e.message for e in rec.events)


def test_a_front_end_bug_does_not_kill_the_search_and_is_logged(tmp_path, scripted, llm_env):
    project = make_project(tmp_path / "proj", dirty=False)
    rec = Recorder()

    def buggy_listener(event):
        rec(event)
        if isinstance(event, ev.NodeStarted):
            raise RuntimeError("widget exploded")

    engine = build_engine(project, settings(steps=2, num_drafts=2), resume=False, listener=buggy_listener)
    assert engine.run().reason == "completed"
    assert len(rec.of(ev.NodeFinished)) == 2
    log_text = (project / ".aide" / "runs" / engine.run_name / "engine.log").read_text()
    assert "widget exploded" in log_text and "listener failed on NodeStarted" in log_text


def test_the_next_step_is_announced_before_it_starts_and_updated_by_commands_while_paused(tmp_path, scripted, llm_env):
    project = make_project(tmp_path / "proj", dirty=False)
    rec = Recorder()
    engine = build_engine(project, settings(steps=3, num_drafts=1, debug_prob=0.0), resume=False, listener=rec)
    worker = run_paused_after_first_node(engine, rec)
    announced = rec.of(ev.NextPlanned)[-1]
    assert (announced.step, announced.operation, announced.parent_id, announced.source) == (2, "improve", 1, "policy")
    engine.submit(ev.DraftNext())
    announced = rec.of(ev.NextPlanned)[-1]
    assert (announced.step, announced.operation, announced.source) == (2, "draft", "command")
    engine.submit(ev.Resume())
    worker.join(60)
    assert [e.node.operation for e in rec.of(ev.NodeFinished)] == ["draft", "draft", "improve"]
