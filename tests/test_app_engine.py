"""The app driving the real engine: the real SDK over HTTP to the Messages API
stand-in, real execution, a real git repository.  Keys are checked by what the
engine did (journal, git, the requests the stand-in received), not only by
what the screen shows."""

from __future__ import annotations

import json

import psutil
import pytest
from aide_script import ScriptedAide
from fake_api import TextReply
from helpers import git, journal_nodes, make_project
from helpers import pilot_wait_until as wait_for

from aide_tui.app.app import AideApp
from aide_tui.app.screens.modals import ConfirmModal, HintModal
from aide_tui.engine import build_engine
from aide_tui.settings import resolve

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120), pytest.mark.slow]
SIZE = (120, 36)


@pytest.fixture
def anyio_backend():
    return "asyncio"


def journal(project):
    runs = sorted((project / ".aide" / "runs").iterdir())
    path = runs[-1] / "journal.jsonl"
    if not path.exists():
        return []
    return journal_nodes(path)


def make_app(project, **over):
    base = dict(steps=4, num_drafts=3, debug_prob=0.0, timeout=60, memory_limit="1G", coder="llm", workers=1)
    base.update(over)
    settings = resolve(None, base)
    return AideApp(lambda listener, resume: build_engine(project, settings, resume=resume, listener=listener))


async def cursor_on(pilot, app, node_id):
    """Wait until the tree's cursor has moved to `node_id` (goto_node moves it after a refresh)."""
    await wait_for(pilot, lambda: app.tree_pane.cursor_node is not None and app.tree_pane.cursor_node.data == node_id)


async def pause_after(pilot, app, aide, node_id):
    """Press space while `node_id` runs; the engine holds once it has finished.

    Steering from a paused run is how a person does it.  The node's code request
    is held at a gate (armed before the app starts) until the pause is seen, so
    the key surely lands while that node is in flight, however fast scripts run."""
    gate = aide.gates[node_id]
    await wait_for(pilot, lambda: app.model.running_id == node_id and gate.reached.is_set())
    await pilot.press("space")
    await wait_for(pilot, lambda: app.model.state in ("pausing", "paused"))
    gate.opened.set()
    await wait_for(pilot, lambda: app.model.state == "paused")
    assert app.model.done == node_id


@pytest.fixture
def slow_llm(llm_env):
    """A scripted Claude that takes about a second per reply, so keys land mid-step."""
    aide = ScriptedAide(crash_every=2)
    llm_env.responder = aide
    llm_env.delay_per_chunk = 0.004
    return aide


async def test_nodes_appear_and_i_makes_the_next_node_an_improve_of_the_selected_node(tmp_path, slow_llm):
    project = make_project(tmp_path / "p", dirty=False)
    slow_llm.hold(2)
    app = make_app(project)
    async with app.run_test(size=SIZE) as pilot:
        await pause_after(pilot, app, slow_llm, 2)
        app.goto_node(1)
        await cursor_on(pilot, app, 1)
        await pilot.press("i")
        await pilot.press("space")
        await wait_for(pilot, lambda: len(journal(project)) >= 3)
        assert 1 in app.model.nodes and 2 in app.model.nodes
        await wait_for(pilot, lambda: not app.model.active, timeout=90)
    nodes = journal(project)
    # the policy would have drafted node 3 (num_drafts=3); the key made it improve #1
    assert (nodes[2]["operation"], nodes[2]["parent_id"]) == ("improve", 1)
    assert nodes[3]["operation"] == "draft"
    run = sorted((project / ".aide" / "runs").iterdir())[-1].name
    # #3 grows from #1's commit (a holdout score is a note, not a commit on #1's branch)
    fork = git(project, "merge-base", f"aide/{run}/0001-draft", f"aide/{run}/0003-improve").strip()
    assert fork == git(project, "rev-parse", f"aide/{run}/0001-draft").strip()
    assert fork != git(project, "rev-parse", f"aide/{run}/root").strip()


async def test_b_debugs_the_selected_buggy_node_and_d_forces_a_draft(tmp_path, slow_llm):
    project = make_project(tmp_path / "p", dirty=False)
    slow_llm.hold(3)
    app = make_app(project, steps=5, num_drafts=2)
    async with app.run_test(size=SIZE) as pilot:
        # node 2 crashes (every 2nd draft); with debug_prob=0 the policy would never debug it
        await pause_after(pilot, app, slow_llm, 3)
        app.goto_node(2)
        await cursor_on(pilot, app, 2)
        assert app.model.nodes[2].is_buggy
        await pilot.press("b")
        await pilot.press("d")
        await pilot.press("space")
        await wait_for(pilot, lambda: not app.model.active, timeout=120)
    nodes = journal(project)
    assert (nodes[3]["operation"], nodes[3]["parent_id"]) == ("debug", 2)
    assert nodes[4]["operation"] == "draft"  # the policy would have improved the best node
    assert [n["operation"] for n in nodes[:3]] == ["draft", "draft", "improve"]


async def test_b_on_a_working_node_explains_and_sends_nothing(tmp_path, slow_llm):
    project = make_project(tmp_path / "p", dirty=False)
    slow_llm.hold(2)
    app = make_app(project, steps=3)
    async with app.run_test(size=SIZE) as pilot:
        await pause_after(pilot, app, slow_llm, 2)
        app.goto_node(1)
        await cursor_on(pilot, app, 1)
        await pilot.press("b")
        await wait_for(pilot, lambda: any("nothing to debug" in n.message for n in app._notifications), timeout=10)
        await pilot.press("space")
        await wait_for(pilot, lambda: not app.model.active, timeout=90)
    assert [n["operation"] for n in journal(project)] == ["draft", "draft", "draft"]


async def test_h_puts_the_hint_into_the_next_prompt(tmp_path, slow_llm):
    project = make_project(tmp_path / "p", dirty=False)
    slow_llm.hold(1)
    app = make_app(project, steps=3)
    async with app.run_test(size=SIZE) as pilot:
        await pause_after(pilot, app, slow_llm, 1)
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, HintModal), timeout=5)
        await pilot.press(*"use target encoding")
        await pilot.press("enter")
        await pilot.press("space")
        await wait_for(pilot, lambda: not app.model.active, timeout=90)
    prompts = [text for op, text in slow_llm.prompts]
    assert "use target encoding" not in prompts[0]  # node 1's prompt was already sent
    assert "use target encoding" in prompts[1]  # the next prompt carries it
    assert "use target encoding" not in prompts[2]  # once
    assert journal(project)[1]["hint"] == "use target encoding"


async def test_space_pauses_after_the_current_step_and_resumes(tmp_path, slow_llm):
    project = make_project(tmp_path / "p", dirty=False)
    gate = slow_llm.hold(1)
    app = make_app(project, steps=3)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.model.running_id == 1 and gate.reached.is_set())
        await pilot.press("space")
        await wait_for(pilot, lambda: app.model.state in ("pausing", "paused"))
        gate.opened.set()
        await wait_for(pilot, lambda: app.model.state == "paused")
        # held, not just announced: the loop blocks until space again (a pause that only says
        # "paused" never gets there, and this wait fails)
        await wait_for(pilot, lambda: app.engine.control.holding)
        assert len(journal(project)) == 1 and app.model.running == []
        assert "paused" in app.status_bar.content.plain.lower()
        await pilot.press("space")
        await wait_for(pilot, lambda: not app.model.active, timeout=90)
    assert len(journal(project)) == 3


async def test_quit_while_a_node_runs_leaves_no_process_and_keeps_finished_nodes(tmp_path, llm_env):
    marker = "aide-quit-test-sleeper"
    hang = (
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)  # {marker}'])\n"
        "print('sleeping', flush=True)\ntime.sleep(600)\n"
    )
    served = []

    def responder(body):
        if body.get("tools"):
            return ScriptedAide()(body)
        served.append(1)
        if len(served) == 1:
            return ScriptedAide(crash_every=0)(body)
        return TextReply(f"Sleep.\n\n```python\n{hang}```\n")

    llm_env.responder = responder
    project = make_project(tmp_path / "p", dirty=False)
    app = make_app(project, steps=4)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: any("sleeping" in line for line in app.log_pane.lines))
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal), timeout=5)
        await pilot.press("y")
        await wait_for(pilot, lambda: app.engine_worker is None or app.engine_worker.is_finished, timeout=30)
    survivors = [p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])]
    assert survivors == []
    nodes = journal(project)
    assert [n["id"] for n in nodes] == [1]  # the finished node is kept; the cancelled one is not recorded
    run_info = json.loads((sorted((project / ".aide" / "runs").iterdir())[-1] / "run.json").read_text())
    assert run_info["status"] == "stopped"  # resumable
