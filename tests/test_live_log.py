"""The live log with several nodes running: it follows one node's stream, never an interleaving.

Driven by tests/fake_engine.py's OverlappingEngine, whose two nodes stream at once the way
`--workers 2` does; output lines name their node ("#2 line 4").
"""

from __future__ import annotations

import re

import pytest
from fake_engine import OverlappingEngine
from helpers import pilot_wait_until as wait_for

from aide_tui.app.app import AideApp
from aide_tui.app.log_follow import catch_up
from aide_tui.events import NodeStarted, OutputLine
from aide_tui.state import NodeView

SIZE = (120, 36)
LINE = re.compile(r"^#(\d) line (\d+)$")
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


def make_app() -> AideApp:
    return AideApp(lambda listener, resume: OverlappingEngine(listener), clock=lambda: 1000.0)


async def at_stage(pilot, app: AideApp, stage: int, lines: dict[int, int]) -> list[str]:
    """Wait until the engine holds after `stage` and the app has taken in all it emitted
    (running node id -> its output lines so far; the last line of a stage comes last)."""

    def caught_up() -> bool:
        nodes = app.model.nodes
        return app.engine.stage == stage and all(
            n in nodes and len(nodes[n].output) >= count for n, count in lines.items()
        )

    await wait_for(pilot, caught_up)
    return list(app.log_pane.lines)


def output_after(log: list[str], header: str) -> list[str]:
    """The output lines ("#N line K") below the last line starting with `header`."""
    start = max(i for i, line in enumerate(log) if line.startswith(header))
    return [line for line in log[start + 1 :] if LINE.match(line)]


async def test_with_two_nodes_running_the_log_shows_only_the_followed_nodes_stream():
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        log = await at_stage(pilot, app, 1, {1: 5, 2: 4})
        assert app.model.running == [1, 2]
        # Following the newest node (#2): after its header, none of #1's lines.
        assert output_after(log, "── #2 draft") == [f"#2 line {k}" for k in range(1, 5)]
        assert "── running node #1 ──" in log and "── running node #2 ──" in log
        assert app.log_pane.border_title == "Live · #2 of 2 running"

        await pilot.press("r")  # the next running node: #1, with what it printed so far
        await wait_for(pilot, lambda: any(line.startswith("── following #1") for line in app.log_pane.lines))
        app.engine.release()
        log = await at_stage(pilot, app, 2, {1: 9, 2: 8})
        assert output_after(log, "── following #1") == [f"#1 line {k}" for k in range(1, 10)]
        assert app.log_pane.border_title == "Live · #1 of 2 running"

        app.engine.release()  # #1 finishes: the log goes back to #2, catching up on what it missed
        log = await at_stage(pilot, app, 3, {2: 12})
        review = next(i for i, line in enumerate(log) if line.startswith("── review #1"))
        follow = max(i for i, line in enumerate(log) if line.startswith("── following #2"))
        assert review < follow
        assert output_after(log, "── following #2") == [f"#2 line {k}" for k in range(1, 13)]
        assert app.log_pane.border_title == "Live"
        app.engine.release()
        await wait_for(pilot, lambda: app.model.finish_reason == "completed")


async def test_the_timer_never_shows_a_nodes_stream_before_the_app_has_handled_its_start():
    """The real cause of the interleaving seen with --workers 2: the 50 ms timer drained
    stream items emitted after a NodeStarted still waiting in the message queue, so the log
    showed (and judged) a node's lines before the app knew the node ran."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await at_stage(pilot, app, 1, {1: 5, 2: 4})
        # As the engine thread would: a third node starts and prints at once; the timer
        # fires before the app has handled the NodeStarted message.
        app._listener(NodeStarted(3, None, "draft", 3))
        app._listener(OutputLine(3, "stdout", "#3 line 1"))
        app._flush_stream()
        assert "#3 line 1" not in app.log_pane.lines and 3 not in app.model.nodes
        await wait_for(pilot, lambda: "#3 line 1" in app.log_pane.lines)
        log = list(app.log_pane.lines)
        assert log.index("── #3 draft ──") < log.index("#3 line 1")
        assert list(app.model.nodes[3].output) == ["#3 line 1"]


def test_catching_up_on_a_node_shows_its_most_recent_lines():
    view = NodeView(7, 2, "improve", 7, llm_text=["Plan.\n", "```python\nprint(1)\n"], phase="llm")
    lines, text, after = catch_up(view)
    assert lines == ["── following #7 improve #2 (r: next running node) ──"]
    assert text == "Plan.\n```python\nprint(1)\n" and after == []  # no output yet: the reply being written
    view.phase = "executing"  # the script started and has printed nothing yet
    assert catch_up(view)[2] == ["── running node #7 ──"]
    view.output.extend(f"! line {k}" if k % 2 else f"line {k}" for k in range(1, 451))
    lines, text, after = catch_up(view, limit=200)
    assert text == "" and after == [] and lines[1] == "… 250 earlier lines not shown"
    assert lines[2:4] == ["! line 251", "line 252"] and lines[-1] == "line 450" and len(lines) == 202


async def test_the_quit_dialog_counts_the_running_nodes():
    from aide_tui.app.screens.modals import ConfirmModal

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await at_stage(pilot, app, 1, {1: 1, 2: 1})
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert app.screen.question.startswith("2 nodes are running (#1, #2). Quit now?\nThey are cancelled")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.return_code is not None)
