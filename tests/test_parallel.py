"""Several nodes at once: the real engine, SDK (over HTTP to the stand-in) and execution.

Concurrency is proven, not timed: the stand-in's responder holds each draft
request at a barrier until as many requests arrive as there are workers, which
can only happen when that many nodes are in flight together.
"""

from __future__ import annotations

import json
import threading

import pytest
from aide_script import ScriptedAide
from fake_api import TextReply, last_user_text
from helpers import make_project

from aide_tui import events as ev
from aide_tui.engine import build_engine
from aide_tui.search.node import Node
from aide_tui.search.policy import AidePolicy, Decision
from aide_tui.search.tree import SearchTree
from aide_tui.settings import resolve

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


class Recorder:
    def __init__(self):
        self.events: list[ev.Event] = []
        self.lock = threading.Lock()

    def __call__(self, event):
        with self.lock:
            self.events.append(event)

    def of(self, kind):
        with self.lock:
            return [e for e in self.events if isinstance(e, kind)]


class Rendezvous(ScriptedAide):
    """Draft requests wait until `parties` of them are being answered at once."""

    def __init__(self, parties: int, **kw):
        super().__init__(**kw)
        self.barrier = threading.Barrier(parties, timeout=60)
        self.met = 0

    def __call__(self, body):
        if not body.get("tools") and last_user_text(body).lstrip().startswith("# Draft"):
            self.barrier.wait()
            with self.lock:
                self.met += 1
        return super().__call__(body)


def _settings(**over):
    base = dict(steps=4, num_drafts=2, debug_prob=0.0, timeout=60, memory_limit="1G", coder="llm", seed=3)
    base.update(over)
    return resolve(None, base)


# --------------------------------------------------------------- the policy


def _node(i, op="draft", parent=None, metric=None, buggy=False):
    return Node(
        id=i, parent_id=parent, operation=op, step=i, status="buggy" if buggy else "ok", metric=metric, code="print(1)"
    )


def test_drafts_in_flight_count_toward_num_drafts():
    tree = SearchTree("maximize")
    tree.add(_node(1, metric=0.5))
    policy = AidePolicy(num_drafts=2, debug_prob=0.0, max_debug_depth=3)
    assert policy.choose(tree, 2).operation == "draft"
    in_flight = (Decision("draft", None, "in flight"),)
    assert policy.choose(tree, 3, in_flight) == Decision("improve", 1, "improving the best node #1")


def test_a_leaf_already_being_debugged_is_not_picked_again():
    tree = SearchTree("maximize")
    tree.add(_node(1, buggy=True))
    tree.add(_node(2, buggy=True))
    policy = AidePolicy(num_drafts=2, debug_prob=1.0, max_debug_depth=3)
    first = policy.choose(tree, 3)
    assert first.operation == "debug"
    second = policy.choose(tree, 3, (Decision("debug", first.parent_id, "in flight"),))
    assert second.operation == "debug" and second.parent_id != first.parent_id
    both_taken = (Decision("debug", 1, "in flight"), Decision("debug", 2, "in flight"))
    assert policy.choose(tree, 3, both_taken).operation == "draft"  # nothing works and nothing is left to debug


def test_one_worker_chooses_exactly_as_before():
    """With nothing in flight the rule is the paper's, draw for draw."""
    tree = SearchTree("minimize")
    for i in range(1, 4):
        tree.add(_node(i, metric=float(10 - i), buggy=(i == 2)))
    policy = AidePolicy(num_drafts=3, debug_prob=0.5, max_debug_depth=3, seed=7)
    assert [policy.choose(tree, s) for s in range(4, 12)] == [policy.choose(tree, s, ()) for s in range(4, 12)]


# --------------------------------------------------------------- the engine


@pytest.mark.parametrize("workers", [2, 3])
def test_n_workers_have_n_nodes_in_flight_and_every_node_is_durable(tmp_path, llm_env, workers):
    aide = Rendezvous(parties=workers, crash_every=0)
    llm_env.responder = aide
    project = make_project(tmp_path / "p")
    rec = Recorder()
    engine = build_engine(
        project, _settings(steps=workers + 1, num_drafts=workers, workers=workers), resume=False, listener=rec
    )
    finished = engine.run()
    assert finished.reason == "completed" and finished.nodes == workers + 1
    assert aide.met == workers  # the barrier let them through: they were in flight together
    ids = sorted(e.node.id for e in rec.of(ev.NodeFinished))
    assert ids == list(range(1, workers + 2))  # unique, gapless ids
    assert all(e.commit for e in rec.of(ev.NodeFinished))
    journal = [
        json.loads(line)
        for line in (project / ".aide" / "runs" / engine.run_name / "journal.jsonl").read_text().splitlines()
    ]
    assert sorted(r["node"]["id"] for r in journal if r["type"] == "node") == ids
    assert sorted(r["id"] for r in journal if r["type"] == "start") == ids  # each id journaled when it started
    steps = sorted(e.step for e in rec.of(ev.NodeStarted))
    assert steps == list(range(1, workers + 2))
    drafts = [e for e in rec.of(ev.NodeStarted) if e.operation == "draft"]
    assert len(drafts) == workers  # in-flight drafts counted: no extra draft was started


def test_siblings_improving_the_same_parent_see_each_others_plans(tmp_path, llm_env):
    """The prompt of an improve lists the plans of the nodes improving the same parent now."""
    from aide_tui.control import Plan as _Plan
    from aide_tui.engine import InFlight as _InFlight
    from aide_tui.search.operators import LlmCoder

    project = make_project(tmp_path / "p")
    engine = build_engine(project, _settings(workers=3), resume=False, listener=lambda e: None)
    try:
        engine.tree.add(_node(1, metric=1.0))
        mine = _InFlight(3, 3, _Plan("improve", 1, "policy"))
        engine.loop.in_flight = {
            2: _InFlight(2, 2, _Plan("improve", 1, "policy"), proposed_plan="add target encoding"),
            3: mine,
            4: _InFlight(4, 4, _Plan("improve", 9, "policy"), proposed_plan="another parent's change"),
            5: _InFlight(5, 5, _Plan("improve", 1, "policy")),  # still being written: nothing to show
        }
        ctx = engine.steps.context(None, mine)
        assert ctx.siblings == ["#2: add target encoding"]
        assert isinstance(engine.coder, LlmCoder)

        def text(message):  # a prompt may come as blocks split at the cache breakpoint
            return message if isinstance(message, str) else "".join(block["text"] for block in message)

        prompt = text(engine.coder.improve_message(ctx, engine.tree.get(1)))
        assert "Being tried on this solution right now" in prompt and "- #2: add target encoding" in prompt
        alone = text(engine.coder.improve_message(engine.steps.context(None, None), engine.tree.get(1)))
        assert "Being tried on this solution right now" not in alone
    finally:
        engine.loop.in_flight = {}
        engine.lock.release()


def test_pause_lets_running_nodes_finish_and_starts_none(tmp_path, llm_env):
    aide = Rendezvous(parties=2, crash_every=0)
    llm_env.responder = aide
    project = make_project(tmp_path / "p")
    rec = Recorder()
    paused = threading.Event()
    engine = None

    def listener(event):
        rec(event)
        if isinstance(event, ev.NodeStarted) and event.node_id == 2:
            engine.submit(ev.Pause())
        if isinstance(event, ev.RunStateChanged) and event.state == "paused":
            paused.set()

    engine = build_engine(project, _settings(steps=6, workers=2), resume=False, listener=listener)
    worker = threading.Thread(target=engine.run)
    worker.start()
    assert paused.wait(120)
    finished_while_pausing = {e.node.id for e in rec.of(ev.NodeFinished)}
    assert finished_while_pausing == {1, 2}  # both running nodes finished ...
    assert {e.node_id for e in rec.of(ev.NodeStarted)} == {1, 2}  # ... and none started meanwhile
    engine.submit(ev.StopAfterStep())
    worker.join(60)
    assert not worker.is_alive()
    assert rec.of(ev.RunFinished)[-1].reason == "stopped"


def test_cancel_kills_every_running_node_and_keeps_the_run_resumable(tmp_path, llm_env):
    hang = '"""hang"""\nimport time\nprint("started", flush=True)\ntime.sleep(300)\nprint("Validation metric: 1.0")\n'
    llm_env.responder = lambda body: TextReply(f"Draft: wait.\n\n```python\n{hang}```\n")
    project = make_project(tmp_path / "p")
    rec = Recorder()
    running = threading.Semaphore(0)
    engine = None

    def listener(event):
        rec(event)
        if isinstance(event, ev.OutputLine) and event.line == "started":
            running.release()

    engine = build_engine(project, _settings(steps=4, workers=2, timeout=600), resume=False, listener=listener)
    worker = threading.Thread(target=engine.run)
    worker.start()
    assert running.acquire(timeout=120) and running.acquire(timeout=120)  # two scripts run at once
    engine.submit(ev.CancelNow())
    worker.join(60)
    assert not worker.is_alive()
    assert rec.of(ev.RunFinished)[-1].reason == "cancelled"
    assert rec.of(ev.NodeFinished) == []  # the unfinished nodes are discarded, not recorded
    info = (project / ".aide" / "runs" / engine.run_name / "run.json").read_text()
    assert '"status": "stopped"' in info


def test_kill_9_with_nodes_in_flight_loses_only_those_and_resume_plans_them_again(tmp_path, llm_env):
    import os
    import signal
    import subprocess
    import sys

    from helpers import journal_nodes

    hang = '"""Sleep."""\nimport time\nprint("sleeping", flush=True)\ntime.sleep(300)\n'
    quick = ScriptedAide(crash_every=0)
    drafts = []

    def first_quick_then_hang(body):
        if body.get("tools") or not last_user_text(body).lstrip().startswith("# Draft"):
            return quick(body)
        with quick.lock:
            drafts.append(1)
            n = len(drafts)
        return quick(body) if n == 1 else TextReply(f"Draft: sleep.\n\n```python\n{hang}```\n")

    llm_env.responder = first_quick_then_hang
    project = make_project(tmp_path / "p", dirty=False)
    env = {**os.environ, "ANTHROPIC_BASE_URL": llm_env.url, "ANTHROPIC_API_KEY": "sk-test-not-a-real-key"}
    args = [
        sys.executable,
        "-m",
        "aide_tui.cli",
        str(project),
        "--headless",
        "--json",
        "--coder",
        "llm",
        "--timeout",
        "300",
    ]
    proc = subprocess.Popen(
        [*args, "--verbose", "--steps", "4", "--num-drafts", "4", "--workers", "2", "--new"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    finished, sleeping = 0, 0
    for line in proc.stdout:
        event = json.loads(line)
        finished += event["event"] == "NodeFinished"
        sleeping += event["event"] == "OutputLine" and event["line"] == "sleeping"
        if finished >= 1 and sleeping >= 2:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    run = sorted(p.name for p in (project / ".aide" / "runs").iterdir())[-1]
    journal = project / ".aide" / "runs" / run / "journal.jsonl"
    done = [n["id"] for n in journal_nodes(journal)]
    assert len(done) == 1  # the quick draft finished; the two sleeping ones were in flight
    lost = sorted({1, 2, 3} - set(done))

    llm_env.responder = ScriptedAide(crash_every=0)
    res = subprocess.run([*args, "--resume", "--workers", "2"], capture_output=True, text=True, env=env, timeout=240)
    assert res.returncode == 0, res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    notices = " ".join(e["message"] for e in events if e["event"] == "Notice")
    assert f"#{lost[0]}, #{lost[1]} were still running" in notices
    ids = [n["id"] for n in journal_nodes(journal)]
    assert sorted(ids) == done + [4, 5, 6]  # the lost nodes were planned again, under new ids
    assert events[-1]["event"] == "RunFinished" and events[-1]["reason"] == "completed"


def test_the_run_state_tracks_every_node_in_flight():
    from aide_tui.state import RunModel

    model = RunModel(clock=lambda: 0.0)
    model.apply(ev.RunStarted("r", "/p", False, 5, (), "minimize", "llm"))
    model.apply(ev.NodeStarted(1, None, "draft", 1))
    model.apply(ev.NodeStarted(2, None, "draft", 2))
    assert model.running == [1, 2] and model.running_id == 2 and model.step_now == 2
    node = Node(id=1, parent_id=None, operation="draft", step=1, status="ok", metric=3.0)
    model.apply(ev.NodeFinished(node, 1, "abc", "aide/r/0001-draft", "r", "minimize"))
    assert model.running == [2] and model.step_now == 2 and model.nodes[1].finished
    model.apply(ev.RunFinished("cancelled", 1))
    assert model.running == [] and model.nodes[2].status == "cancelled"
