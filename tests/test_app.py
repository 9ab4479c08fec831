"""Pilot tests of the Textual app against the scripted fake engine (tests/fake_engine.py)."""

from __future__ import annotations

import pytest
from fake_engine import FakeEngine, factory
from helpers import pilot_wait_until as wait_for
from textual.command import CommandList, CommandPalette

from aide_tui.app.app import AideApp
from aide_tui.app.screens.modals import ConfirmModal, EditCodeModal, ErrorModal, HintModal, NoKeyModal
from aide_tui.app.screens.node_detail import NodeDetailScreen
from aide_tui.events import (
    AddHint,
    CommandAccepted,
    DebugNode,
    DirectionFixed,
    DraftNext,
    ImproveNode,
    NextPlanned,
    NodeStarted,
    Notice,
    Pause,
    QueuedStep,
    Resume,
    RunCode,
    RunError,
    RunStateChanged,
    StopAfterStep,
)

SIZE = (120, 36)
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


def status_text(app: AideApp) -> str:
    return app.status_bar.content.plain


def static_text(screen, selector: str) -> str:
    return screen.query_one(selector).content.plain


def notes(app: AideApp) -> list[str]:
    return [n.message for n in app._notifications]


def answers(app: AideApp) -> list[str]:
    """What the engine told the user on accepting commands (shown as toasts, which expire)."""
    return [e.detail for e in app.received if isinstance(e, CommandAccepted)]


async def held_app(pilot, app: AideApp, node: int) -> FakeEngine:
    """Wait until the fake engine holds at `node` (nodes before it finished)."""
    await wait_for(pilot, lambda: app.model.running_id == node and app.model.done == node)
    return app.engine  # type: ignore[return-value]


def make_app(**kwargs) -> AideApp:
    return AideApp(factory(**kwargs), clock=lambda: 1000.0)


async def test_nodes_appear_in_tree_with_status_and_best():
    app = make_app(steps=10)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.model.state == "finished")
        tree = app.tree_pane
        assert tree.node_count() == 10
        labels = {i: tree.tree_node(i).label.plain for i in range(10)}
        assert labels[0].startswith("#0 draft ✓ 0.7412")
        assert "✗ buggy" in labels[1]
        assert "timed out" in labels[5]
        assert labels[9].endswith("★")  # best
        assert sum("★" in label for label in labels.values()) == 1
        # nesting follows parent ids
        assert tree.tree_node(3).parent is tree.tree_node(1)
        assert tree.tree_node(4).parent is tree.tree_node(3)
        # log got the LLM text, the output and the review, in order
        lines = app.log_pane.lines
        first = next(i for i, line in enumerate(lines) if line.startswith("── #0 draft"))
        assert "Baseline" in lines[first + 1]
        assert any(line.startswith("epoch 1") for line in lines[first:])
        review = next(i for i, line in enumerate(lines) if line.startswith("── review #0"))
        code = next(i for i, line in enumerate(lines) if line.startswith("── running node #0"))
        assert first < code < review
        assert app.model.points and app.model.best_curve[-1][1] == pytest.approx(0.8257)


async def test_keys_send_commands():
    app = make_app(hold_at=5)
    async with app.run_test(size=SIZE) as pilot:
        engine = await held_app(pilot, app, 5)
        app.goto_node(4)
        await pilot.pause()
        await pilot.press("i")
        await pilot.press("d")
        await wait_for(pilot, lambda: len(app.model.queue) == 2)
        assert engine.commands == [ImproveNode(4), DraftNext()]
        assert "queued: improve #4, draft" in status_text(app)
        assert "a new draft runs after 1 queued step" in answers(app)
        await pilot.press("s")
        await wait_for(pilot, lambda: app.model.state == "stopping")
        assert engine.commands[-1] == StopAfterStep()
        assert "stopping after this step" in status_text(app)
        await pilot.press("space")  # nothing to pause once stopping; the key says why
        await pilot.pause()
        assert not any(isinstance(c, Pause) for c in engine.commands)
        assert any("stopping after this step; nothing to pause" in n for n in notes(app))
        engine.release()
        await wait_for(pilot, lambda: app.model.state == "finished")
        assert [v.operation for v in app.model.nodes.values()][5:] == ["improve"]  # stopped after node 5
        assert app.model.finish_reason == "stopped" and "queued" not in status_text(app)


async def test_the_queue_shown_is_the_engines_after_every_step():
    app = make_app(hold_at=5, steps=9)
    async with app.run_test(size=SIZE) as pilot:
        engine = await held_app(pilot, app, 5)
        app.goto_node(4)
        await pilot.pause()
        await pilot.press("d", "i", "space")  # queue a draft, then improve #4; pause after this step
        await wait_for(pilot, lambda: app.model.state == "pausing")
        assert "pausing after this step" in status_text(app)
        engine.release()
        await wait_for(pilot, lambda: app.model.state == "paused")
        # node 5 ran as the script said; the draft is next, the improve still queued behind it
        assert (
            app.model.queue == engine.control.snapshot().steps == (QueuedStep("draft", None), QueuedStep("improve", 4))
        )
        assert "next: draft (you)  queued: improve #4" in status_text(app)
        await pilot.press("space")
        await wait_for(pilot, lambda: app.model.state == "finished")
        started = [e for e in app.received if isinstance(e, NodeStarted)]
        assert [(e.operation, e.parent_id) for e in started[6:8]] == [("draft", None), ("improve", 4)]
        assert app.model.queue == () and "queued" not in status_text(app)


async def test_one_next_planned_per_change_of_plan():
    app = make_app(steps=6)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.model.state == "finished")
        planned = [e for e in app.received if isinstance(e, NextPlanned)]
        assert [e.step for e in planned] == [0, 1, 2, 3, 4, 5]


async def test_a_queue_left_when_the_run_ends_is_not_shown():
    app = make_app(hold_at=5, steps=6)
    async with app.run_test(size=SIZE) as pilot:
        engine = await held_app(pilot, app, 5)
        await pilot.press("d")
        await wait_for(pilot, lambda: "queued: draft" in status_text(app))
        engine.release()
        await wait_for(pilot, lambda: app.model.state == "finished")
        assert app.model.queue == () and "queued" not in status_text(app) and "next:" not in status_text(app)


async def test_debug_on_working_node_notifies_and_sends_nothing():
    app = make_app(hold_at=5)
    async with app.run_test(size=SIZE) as pilot:
        engine = await held_app(pilot, app, 5)
        app.goto_node(4)
        await pilot.pause()
        assert app.check_action("debug", ()) is None  # shown disabled in the footer
        await pilot.press("b")
        await pilot.pause()
        assert not any(isinstance(c, DebugNode) for c in engine.commands)
        assert any("works" in n and "improve it" in n for n in notes(app))
        app.goto_node(1)  # buggy
        await pilot.pause()
        assert app.check_action("debug", ()) is True
        await pilot.press("b")
        await wait_for(pilot, lambda: DebugNode(1) in engine.commands)
        # improve on a buggy node says why
        await pilot.press("i")
        await pilot.pause()
        assert not any(isinstance(c, ImproveNode) for c in engine.commands)
        assert any("debug it (b)" in n for n in notes(app))
        engine.shutdown()


async def test_hint_modal_sends_add_hint():
    app = make_app(hold_at=3)
    async with app.run_test(size=SIZE) as pilot:
        engine = await held_app(pilot, app, 3)
        await pilot.press("h")
        await pilot.pause()
        assert isinstance(app.screen, HintModal)
        await pilot.press(*"use xgboost")
        await pilot.press("enter")
        await wait_for(pilot, lambda: AddHint("use xgboost") in engine.commands)
        assert not isinstance(app.screen, HintModal)
        # escape cancels without sending
        await pilot.press("h")
        await pilot.pause()
        await pilot.press("x", "escape")
        await pilot.pause()
        assert sum(isinstance(c, AddHint) for c in engine.commands) == 1
        engine.shutdown()


async def test_space_pauses_after_the_step_and_a_second_space_cancels_the_pending_pause():
    app = make_app(hold_at=3)
    async with app.run_test(size=SIZE) as pilot:
        engine = await held_app(pilot, app, 3)
        await pilot.press("space")
        await wait_for(pilot, lambda: app.model.state == "pausing")
        assert "pausing after this step" in status_text(app)
        await pilot.press("space")
        await wait_for(pilot, lambda: app.model.state == "running")
        assert "the pending pause is cancelled" in answers(app)
        assert "pausing" not in status_text(app)
        await pilot.press("space")
        await wait_for(pilot, lambda: app.model.state == "pausing")
        engine.release()
        await wait_for(pilot, lambda: app.model.state == "paused")
        assert app.model.done == 4 and app.model.running_id is None  # node 3 finished, nothing started
        assert "‖ paused" in status_text(app)
        await pilot.press("space")
        await wait_for(pilot, lambda: app.model.state != "paused")  # the run goes on (and may finish at once)
        states = [e.state for e in app.received if isinstance(e, RunStateChanged)]
        assert states[:6] == ["running", "pausing", "running", "pausing", "paused", "running"]
        assert engine.commands == [Pause(), Resume(), Pause(), Resume()]
        assert "resuming" in answers(app)
        engine.shutdown()


async def test_edit_runs_code_as_child_of_selected():
    app = make_app(hold_at=3)
    async with app.run_test(size=SIZE) as pilot:
        engine = await held_app(pilot, app, 3)
        app.goto_node(2)
        await pilot.pause()
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, EditCodeModal)
        editor = app.screen.query_one("TextArea")
        editor.text = editor.text.replace("n_estimators=300", "n_estimators=500")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: any(isinstance(c, RunCode) for c in engine.commands))
        cmd = engine.commands[-1]
        assert cmd.parent_id == 2 and "n_estimators=500" in cmd.code
        assert "your code runs next, as a child of #2" in answers(app)
        engine.shutdown()


async def test_edited_code_behind_a_queued_draft_says_it_runs_after_it():
    app = make_app(hold_at=3)
    async with app.run_test(size=SIZE) as pilot:
        engine = await held_app(pilot, app, 3)
        await pilot.press("d")
        app.goto_node(2)
        await pilot.pause()
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, EditCodeModal))
        editor = app.screen.query_one("TextArea")
        editor.text = editor.text.replace("n_estimators=300", "n_estimators=500")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: any(isinstance(c, RunCode) for c in engine.commands))
        await wait_for(pilot, lambda: "your code runs after 1 queued step, as a child of #2" in answers(app))
        assert "queued: draft, your code under #2" in status_text(app)
        engine.shutdown()


async def test_copy_branch_and_jumps():
    app = make_app(hold_at=5)
    async with app.run_test(size=SIZE) as pilot:
        await held_app(pilot, app, 5)
        app.goto_node(2)
        await pilot.pause()
        await pilot.press("g")
        await pilot.pause()
        assert app.clipboard == "aide/titanic-1/0002-draft"
        await pilot.press("B")
        await wait_for(pilot, lambda: app.tree_pane.selected_id == 4)
        await pilot.press("r")
        await wait_for(pilot, lambda: app.tree_pane.selected_id == 5)
        # the running node has no branch yet: g says why
        await pilot.press("g")
        await pilot.pause()
        assert any("no git branch yet" in n for n in notes(app))
        app.engine.shutdown()


async def test_the_direction_is_announced_once_and_shown():
    app = make_app(steps=3)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.model.state == "finished")
        fixed = [e for e in app.received if isinstance(e, DirectionFixed)]
        assert [e.direction for e in fixed] == ["maximize"]
        assert app.model.direction == "maximize" and app.metrics.border_title == "Metric (higher is better)"
        assert "== metric direction: maximize (higher is better)" in app.log_pane.lines


async def test_replayed_nodes_keep_their_branch_for_details_and_g():
    app = make_app(replay=4, hold_at=5, steps=8)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.model.running_id == 5)
        app.goto_node(2)
        await pilot.pause()
        await pilot.press("g")
        await pilot.pause()
        assert app.clipboard == "aide/titanic-1/0002-draft"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, NodeDetailScreen))
        overview = static_text(app.screen, "#detail-overview")
        assert "git log aide/titanic-1/0002-draft" in overview and "(not committed)" not in overview
        assert app.model.direction == "maximize"  # as the replay said
        app.engine.shutdown()


async def test_details_screen_shows_diff_and_git():
    app = make_app(hold_at=5)
    async with app.run_test(size=SIZE) as pilot:
        await held_app(pilot, app, 5)
        app.goto_node(4)
        await pilot.pause()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, NodeDetailScreen))
        screen = app.screen
        overview = static_text(screen, "#detail-overview")
        assert "git log aide/titanic-1/0004-improve" in overview
        assert "git diff aide/titanic-1/0003-debug aide/titanic-1/0004-improve" in overview
        assert "Add family-size" in overview
        diff = static_text(screen, "#detail-diff")
        assert "-model = GradientBoostingClassifier(n_estimators=200)" in diff
        assert "+model = GradientBoostingClassifier(n_estimators=200, max_depth=4)" in diff
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, NodeDetailScreen)
        app.engine.shutdown()


async def test_quit_while_running_asks_and_shuts_engine_down():
    app = make_app(hold_at=3)
    async with app.run_test(size=SIZE) as pilot:
        engine = await held_app(pilot, app, 3)
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("n")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmModal)
        assert not engine.finished.is_set()
        await pilot.press("ctrl+q")
        await pilot.pause()
        await pilot.press("y")
        await wait_for(pilot, lambda: engine.finished.is_set())
    assert app.return_code == 0
    assert engine.finished.is_set()
    assert app.engine_worker.is_finished


async def test_quit_after_run_needs_no_confirmation():
    app = make_app(steps=3)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.model.state == "finished")
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: app.return_code is not None)
    assert app.return_code == 0


async def test_keys_after_run_finished_say_why():
    app = make_app(steps=3)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.model.state == "finished")
        await pilot.press("d")
        await pilot.pause()
        assert any("the run is complete" in n and "--resume --run" in n for n in notes(app))
        assert app.engine.commands == []
        # the palette says why once, first and in full; each run command says it in four words
        from aide_tui.app.commands import AideCommands

        entries = [(text, help_text) for text, _, help_text in AideCommands(app.screen)._entries()]
        assert entries[0][0] == "Run over" and "--resume --run" in entries[0][1]
        assert sum("--resume" in help_text for _, help_text in entries) == 1
        draft = next(help_text for text, help_text in entries if text == "Draft")
        assert draft.endswith("— unavailable: the run is over  [d]")


async def test_engine_crash_shows_error_not_traceback():
    app = make_app(crash=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal))
        assert "fake engine crashed" in app.screen.message
        assert app.model.state == "failed"
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: app.return_code is not None)
    assert app.return_code == 1


async def test_run_error_and_notice():
    app = make_app(error=RunError("auth", "invalid x-api-key: check ANTHROPIC_API_KEY"), coder="offline")
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorModal))
        assert app.screen.kind == "auth"
        assert any("offline baseline coder" in n for n in notes(app))
        assert any(isinstance(e, Notice) for e in app.received)


async def test_user_error_from_factory_exits_with_code_2():
    from aide_tui.errors import UserError

    def bad(listener, resume):
        raise UserError("ANTHROPIC_API_KEY is not set; export your key, or use --coder offline")

    app = AideApp(bad)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.return_code is not None)
    assert app.return_code == 2


async def test_resume_modal_choices():
    from aide_tui.app.screens.modals import ResumeModal

    made = factory(steps=2)
    app = AideApp(made, ask_resume="titanic-1")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ResumeModal)
        await pilot.press("r")
        await wait_for(pilot, lambda: app.model.state == "finished")
        assert made.engine.resume is True


async def test_compact_layout_at_80x24_keeps_sparkline():
    app = make_app(steps=6)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.model.state == "finished")
        assert not app.metrics.display or app.metrics.region.height == 0
        assert app.spark.region.width > 0 and app.spark.region.height > 0
        await pilot.resize_terminal(140, 40)
        await wait_for(pilot, lambda: app.metrics.region.height > 0)


async def test_high_rate_output_is_batched_and_ui_stays_responsive():
    """50k output lines: the log keeps the newest (capped), in order, and a key is handled meanwhile."""
    app = make_app(hold_at=1, output_lines=50_000, steps=3)
    async with app.run_test(size=SIZE) as pilot:
        engine = await held_app(pilot, app, 1)
        app.log_pane.max_lines = 500  # under the 1,000 lines a flush shows at least, so the cap must act
        engine.release()
        await pilot.press("h")
        await wait_for(pilot, lambda: isinstance(app.screen, HintModal), timeout=30)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.model.state == "finished", timeout=30)  # nothing streams after the last node
        lines = app.log_pane.lines
        assert len(lines) == 500  # capped, oldest dropped: all that is left is node 1's
        epochs = [int(line.split()[1].rstrip(":")) for line in lines if line.startswith("epoch ")]
        assert epochs == sorted(set(epochs)) and epochs[-1] == 50_000  # in order, the newest kept
        assert lines[-1].startswith("== run finished")


async def test_no_key_modal_offers_the_offline_coder_and_starts_it():
    started = []

    def llm_factory(listener, resume):
        raise AssertionError("the LLM engine must not start without a key")

    def offline_factory(listener, resume):
        engine = factory()(listener, resume)
        started.append(engine)
        return engine

    app = AideApp(llm_factory, offline_factory=offline_factory)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, NoKeyModal))
        assert "export ANTHROPIC_API_KEY" in str(app.screen.query_one(".dialog-text").content)
        await pilot.press("o")
        await wait_for(pilot, lambda: bool(started))
        assert app.engine is started[0]
        app.engine.shutdown()


async def test_no_key_modal_quit_starts_nothing():
    def never(listener, resume):
        raise AssertionError("no engine may start")

    app = AideApp(never, offline_factory=never)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, NoKeyModal))
        await pilot.press("q")
        await wait_for(pilot, lambda: app.return_code is not None)
    assert app.engine is None and app.return_code == 0


def test_the_tree_legend_explains_every_mark_a_node_label_can_carry():
    from aide_tui.app.widgets.node_tree import LEGEND, STATUS_GLYPH, NodeTree, Palette, node_label
    from aide_tui.state import NodeView

    view = NodeView(3, 1, "improve", 3, status="ok", metric=0.5, holdout=0.4, hint="try trees")
    label = node_label(view, best_id=3, palette=Palette(), marked=True).plain
    pick = node_label(NodeView(4, 1, "improve", 4, status="ok"), best_id=3, palette=Palette(), pick_id=4).plain
    marks = {ch for ch in label + pick if not ch.isascii()} | {glyph for glyph, _ in STATUS_GLYPH.values()}
    assert marks <= set(LEGEND), marks - set(LEGEND)
    assert "✎" in marks and "holdout" in LEGEND
    assert NodeTree().tooltip == LEGEND


async def test_selecting_a_node_added_since_the_last_render_puts_the_cursor_on_it_so_enter_opens_it():
    """The cursor followed a stale layout: B, or following a new node, put it on another line or
    none, and `enter` (the tree's own binding) then opened the wrong node or did nothing."""
    from aide_tui.state import NodeView

    app = make_app(steps=3)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.model.state == "finished")
        app.follow = False
        tree = app.tree_pane
        await wait_for(pilot, lambda: tree.cursor_node is not None and tree.cursor_node.data == 2)  # followed the last
        views = [NodeView(i, 0, "improve", i, status="ok") for i in (10, 11, 12)]
        for view in views:
            app.model.nodes[view.id] = view
        tree.add_views(views, app.model)  # no render in between: these have no line yet
        assert tree.select_id(12) and tree.cursor_node.data == 12
        await pilot.pause()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, NodeDetailScreen))
        assert app.screen.node_id == 12


async def test_a_command_chosen_in_the_palette_runs():
    """The palette's commands go through `invoke` (run_action is a coroutine: it must be awaited)."""
    app = make_app(hold_at=5)
    async with app.run_test(size=SIZE) as pilot:
        await held_app(pilot, app, 5)
        app.goto_node(2)
        await wait_for(pilot, lambda: app.tree_pane.selected_id == 2)
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"Best")
        options = app.screen.query_one(CommandList)
        await wait_for(pilot, lambda: options.option_count > 0 and "Best" in str(options.get_option_at_index(0).prompt))
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.tree_pane.selected_id == 4)
        app.engine.shutdown()
