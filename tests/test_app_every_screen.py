"""Every screen opens on every node in every state, on a live run with output.

The real engine over the Messages API stand-in, real scripts: a working node, a buggy one,
one whose reply the model refused, one running that has printed output, a queued step, and
the same running node once the run is cancelled under it.  A screen that cannot show a
node in some state raises inside the app, and `run_test` re-raises it here."""

from __future__ import annotations

import pytest
from aide_script import ScriptedAide
from fake_api import TextReply
from helpers import make_project
from helpers import pilot_wait_until as wait_for

from aide_tui.app.app import AideApp
from aide_tui.app.screens.compare import CompareScreen
from aide_tui.app.screens.lineage import LineageScreen
from aide_tui.app.screens.modals import EditCodeModal
from aide_tui.app.screens.node_detail import NodeDetailScreen
from aide_tui.app.screens.worktree import WorktreeModal
from aide_tui.engine import build_engine
from aide_tui.settings import resolve

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(400)]  # two walks over every screen
SIZE = (120, 36)

PRINTS_AND_WAITS = (
    "import sys, time\n"
    "for k in range(5):\n"
    "    print(f'epoch {k}', flush=True)\n"
    "print('warning: slow', file=sys.stderr, flush=True)\n"
    "time.sleep(600)\n"
)


@pytest.fixture
def anyio_backend():
    return "asyncio"


def live_run_responder():
    """Code requests: 1 works, 2 is refused, 3 crashes (the scripted drafts), 4 prints and hangs."""
    scripted = ScriptedAide(crash_every=2)
    served: list[int] = []

    def respond(body):
        if body.get("tools") or "# Draft" not in str(body.get("messages", "")):
            return scripted(body)
        served.append(1)
        if len(served) == 2:
            return TextReply("I can't help with that.", stop_reason="refusal")
        if len(served) == 4:
            return TextReply(f"Print and wait.\n\n```python\n{PRINTS_AND_WAITS}```\n")
        return scripted(body)

    return respond


async def walk_every_screen(pilot, app: AideApp) -> list[str]:
    """Open each screen on each node and come back; returns what was opened, for the assertion."""
    opened: list[str] = []
    first = min(app.model.nodes)
    for node_id in sorted(app.model.nodes):
        app.goto_node(node_id)
        await wait_for(pilot, lambda n=node_id: app.selected_id == n)
        app.open_details(node_id)
        await wait_for(pilot, lambda: isinstance(app.screen, NodeDetailScreen))
        for tab in "1234":
            await pilot.press(tab)
        await pilot.press("escape")
        app.open_lineage(node_id)
        await wait_for(pilot, lambda: isinstance(app.screen, LineageScreen))
        await pilot.press("escape")
        if node_id != first:
            app.marked_id = first
            app.push_screen(CompareScreen(first, node_id))
            await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
            await pilot.press("escape")
        view = app.model.nodes[node_id]
        if app.why_not("edit") is None:
            await app.run_action("edit")
            await wait_for(pilot, lambda: isinstance(app.screen, EditCodeModal))
            await pilot.press("escape")
        if view.branch and app.why_not("worktree") is None:
            await app.run_action("worktree")
            await wait_for(pilot, lambda: isinstance(app.screen, WorktreeModal))
            await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.screen_stack[0])
        opened.append(f"#{node_id} {view.status}")
    return opened


async def test_every_screen_opens_on_every_node_state_of_a_live_run(tmp_path, llm_env):
    llm_env.responder = live_run_responder()
    project = make_project(tmp_path / "p", dirty=False)
    settings = resolve(
        None, dict(steps=6, num_drafts=6, debug_prob=0.0, timeout=600, memory_limit="1G", coder="llm", workers=1)
    )
    app = AideApp(lambda listener, resume: build_engine(project, settings, resume=resume, listener=listener))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.model.running_id == 4 and len(app.model.nodes[4].output) >= 6)
        await pilot.press("d")  # a queued step while #4 runs
        await wait_for(pilot, lambda: len(app.model.queue) == 1)
        statuses = {i: v.status for i, v in app.model.nodes.items()}
        assert statuses == {1: "ok", 2: "buggy", 3: "buggy", 4: "running"}
        assert app.model.accrued_usage.calls > app.model.usage.calls  # #4's code call counts while it runs
        assert "refusal" in (app.model.nodes[2].node.review_summary + app.model.nodes[2].node.output)
        opened = await walk_every_screen(pilot, app)
        assert opened == ["#1 ok", "#2 buggy", "#3 buggy", "#4 running"]
        detail = NodeDetailScreen(4)
        app.push_screen(detail)
        await wait_for(pilot, lambda: app.screen is detail)
        shown = str(detail.query_one("#detail-output").render())
        assert "epoch 4" in shown and "! warning: slow" in shown
        await pilot.press("escape")

        app.engine.shutdown()  # the run is cancelled under the running node; the app stays open
        await wait_for(pilot, lambda: not app.model.active, timeout=60)
        assert app.model.nodes[4].status == "cancelled"
        opened = await walk_every_screen(pilot, app)
        assert opened == ["#1 ok", "#2 buggy", "#3 buggy", "#4 cancelled"]
