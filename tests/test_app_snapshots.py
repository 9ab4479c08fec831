"""Snapshot tests (pytest-textual-snapshot) of the main screen mid-run and of node details.

Deterministic: the fake engine holds at a fixed node, the clock is frozen, and nothing blinks.
Every step waits for the state it needs (`helpers.pilot_wait_until`, `settled`), never for a
time: a loaded machine only makes them slower.
Update with `pytest tests/test_app_snapshots.py --snapshot-update` after a deliberate UI change.
"""

from __future__ import annotations

from fake_engine import factory
from helpers import pilot_wait_until as wait_for
from helpers import settled

from aide_tui.app.app import AideApp
from aide_tui.app.screens.compare import CompareScreen
from aide_tui.app.screens.lineage import LineageScreen
from aide_tui.app.screens.node_detail import NodeDetailScreen


class FrozenClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def mid_run_app(**kwargs) -> tuple[AideApp, FrozenClock]:
    clock = FrozenClock()
    kwargs.setdefault("hold_at", 9)
    return AideApp(factory(**kwargs), clock=clock, tick_interval=3600), clock


def waiter(app: AideApp, clock: FrozenClock, node: int, then=None):
    async def run_before(pilot) -> None:
        await wait_for(pilot, lambda: app.model.running_id == node and app.model.done == node)
        await settled(pilot, app)
        clock.now += 133  # 02:13 elapsed
        app._refresh_status()
        if then is not None:
            await then(pilot)
        await settled(pilot, app)

    return run_before


async def select(pilot, app: AideApp, node_id: int) -> None:
    """Move the tree's cursor to a node and wait until it is there."""
    app.goto_node(node_id)
    await wait_for(pilot, lambda: app.tree_pane.cursor_node is not None and app.tree_pane.cursor_node.data == node_id)


async def press_until(pilot, key: str, cond) -> None:
    await pilot.press(key)
    await wait_for(pilot, cond)


def test_main_screen_mid_run(snap_compare):
    app, clock = mid_run_app()
    try:
        assert snap_compare(app, terminal_size=(120, 36), run_before=waiter(app, clock, 9))
    finally:
        if app.engine is not None:
            app.engine.shutdown()


def test_main_screen_80x24(snap_compare):
    app, clock = mid_run_app()
    try:
        assert snap_compare(app, terminal_size=(80, 24), run_before=waiter(app, clock, 9))
    finally:
        if app.engine is not None:
            app.engine.shutdown()


def test_node_details(snap_compare):
    app, clock = mid_run_app()

    async def open_details(pilot) -> None:
        await select(pilot, app, 4)
        await press_until(pilot, "enter", lambda: isinstance(app.screen, NodeDetailScreen))

    try:
        assert snap_compare(app, terminal_size=(120, 36), run_before=waiter(app, clock, 9, open_details))
    finally:
        if app.engine is not None:
            app.engine.shutdown()


def test_node_diff_tab(snap_compare):
    app, clock = mid_run_app()

    async def open_diff(pilot) -> None:
        from textual.widgets import TabbedContent

        await select(pilot, app, 4)
        await press_until(pilot, "enter", lambda: isinstance(app.screen, NodeDetailScreen))
        await press_until(pilot, "3", lambda: app.screen.query_one(TabbedContent).active == "diff")

    try:
        assert snap_compare(app, terminal_size=(120, 36), run_before=waiter(app, clock, 9, open_diff))
    finally:
        if app.engine is not None:
            app.engine.shutdown()


def test_lineage_view(snap_compare):
    app, clock = mid_run_app()

    async def open_lineage(pilot) -> None:
        await select(pilot, app, 6)
        await press_until(pilot, "l", lambda: isinstance(app.screen, LineageScreen))
        last = app.screen.highlighted.id
        await press_until(pilot, "up", lambda: app.screen.highlighted.id != last)

    try:
        assert snap_compare(app, terminal_size=(120, 36), run_before=waiter(app, clock, 9, open_lineage))
    finally:
        if app.engine is not None:
            app.engine.shutdown()


def test_lineage_view_80x24(snap_compare):
    app, clock = mid_run_app()

    async def open_lineage(pilot) -> None:
        await select(pilot, app, 6)
        await press_until(pilot, "l", lambda: isinstance(app.screen, LineageScreen))

    try:
        assert snap_compare(app, terminal_size=(80, 24), run_before=waiter(app, clock, 9, open_lineage))
    finally:
        if app.engine is not None:
            app.engine.shutdown()


def test_compare_two_nodes(snap_compare):
    app, clock = mid_run_app()

    async def mark_and_compare(pilot) -> None:
        await select(pilot, app, 2)
        await press_until(pilot, "m", lambda: app.marked_id == 2)
        await select(pilot, app, 6)
        await press_until(pilot, "c", lambda: isinstance(app.screen, CompareScreen))
        app.clear_notifications()  # the "marked" toast times out, at a time a loaded machine decides

    try:
        assert snap_compare(app, terminal_size=(120, 36), run_before=waiter(app, clock, 9, mark_and_compare))
    finally:
        if app.engine is not None:
            app.engine.shutdown()


def test_marked_node_in_the_tree(snap_compare):
    app, clock = mid_run_app()

    async def mark(pilot) -> None:
        await select(pilot, app, 2)
        await press_until(pilot, "m", lambda: app.marked_id == 2)
        app.clear_notifications()  # the "marked" toast times out, at a time a loaded machine decides
        await select(pilot, app, 6)

    try:
        assert snap_compare(app, terminal_size=(120, 36), run_before=waiter(app, clock, 9, mark))
    finally:
        if app.engine is not None:
            app.engine.shutdown()


def card_form_app(tmp_path, **kwargs) -> AideApp:
    from helpers import make_project

    from aide_tui.search.task_card import TaskCard

    project = make_project(tmp_path / "proj", with_git=False)
    card = TaskCard("data/train.csv", "data/test.csv", "sale_price", ["id"], "rmse", "minimize")
    return AideApp(
        factory(project=str(project), card=card, confirm_card=True, **kwargs), clock=FrozenClock(), tick_interval=3600
    )


def card_form_waiter(app: AideApp, then=None):
    from aide_tui.app.screens.task_card import TaskCardScreen

    async def run_before(pilot) -> None:
        await wait_for(pilot, lambda: isinstance(app.screen, TaskCardScreen))
        await settled(pilot, app)
        app.clear_notifications()
        if then is not None:
            await then(pilot)
        await settled(pilot, app)

    return run_before


def test_task_card_form(snap_compare, tmp_path):
    app = card_form_app(tmp_path)
    try:
        assert snap_compare(app, terminal_size=(120, 36), run_before=card_form_waiter(app))
    finally:
        if app.engine is not None:
            app.engine.shutdown()


def test_task_card_form_with_an_error_80x24(snap_compare, tmp_path):
    app = card_form_app(tmp_path)

    async def bad_id(pilot) -> None:
        from textual.widgets import SelectionList

        ids = app.screen.query_one("#card-ids", SelectionList)
        ids.deselect("id")
        ids.select("neighborhood")  # one value in every test row: it cannot identify them
        await wait_for(pilot, lambda: list(ids.selected) == ["neighborhood"])
        error = app.screen.query_one("#card-error")
        await press_until(pilot, "ctrl+s", lambda: error.has_class("-shown"))

    try:
        assert snap_compare(app, terminal_size=(80, 24), run_before=card_form_waiter(app, bad_id))
    finally:
        if app.engine is not None:
            app.engine.shutdown()
