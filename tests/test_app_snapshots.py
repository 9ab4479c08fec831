"""Snapshot tests (pytest-textual-snapshot) of the main screen mid-run and of node details.

Deterministic: the fake engine holds at a fixed node, the clock is frozen, and nothing blinks.
Update with `pytest tests/test_app_snapshots.py --snapshot-update` after a deliberate UI change.
"""

from __future__ import annotations

import time

from fake_engine import factory

from aide_tui.app.app import AideApp


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
        end = time.monotonic() + 10
        while not (app.model.running_id == node and app.model.done == node):
            assert time.monotonic() < end, "fake engine did not reach the held node"
            await pilot.pause(0.02)
        await pilot.pause(0.1)
        clock.now += 133  # 02:13 elapsed
        app._refresh_status()
        if then is not None:
            await then(pilot)
        await pilot.pause(0.1)

    return run_before


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
        app.goto_node(4)
        await pilot.pause(0.05)
        await pilot.press("enter")
        await pilot.pause(0.1)

    try:
        assert snap_compare(app, terminal_size=(120, 36), run_before=waiter(app, clock, 9, open_details))
    finally:
        if app.engine is not None:
            app.engine.shutdown()


def test_node_diff_tab(snap_compare):
    app, clock = mid_run_app()

    async def open_diff(pilot) -> None:
        app.goto_node(4)
        await pilot.pause(0.05)
        await pilot.press("enter")
        await pilot.pause(0.1)
        await pilot.press("3")
        await pilot.pause(0.1)

    try:
        assert snap_compare(app, terminal_size=(120, 36), run_before=waiter(app, clock, 9, open_diff))
    finally:
        if app.engine is not None:
            app.engine.shutdown()


def test_lineage_view(snap_compare):
    app, clock = mid_run_app()

    async def open_lineage(pilot) -> None:
        app.goto_node(6)
        await pilot.pause(0.05)
        await pilot.press("l")
        await pilot.pause(0.1)
        await pilot.press("up")
        await pilot.pause(0.1)

    try:
        assert snap_compare(app, terminal_size=(120, 36), run_before=waiter(app, clock, 9, open_lineage))
    finally:
        if app.engine is not None:
            app.engine.shutdown()


def test_lineage_view_80x24(snap_compare):
    app, clock = mid_run_app()

    async def open_lineage(pilot) -> None:
        app.goto_node(6)
        await pilot.pause(0.05)
        await pilot.press("l")
        await pilot.pause(0.1)

    try:
        assert snap_compare(app, terminal_size=(80, 24), run_before=waiter(app, clock, 9, open_lineage))
    finally:
        if app.engine is not None:
            app.engine.shutdown()


def test_compare_two_nodes(snap_compare):
    app, clock = mid_run_app()

    async def mark_and_compare(pilot) -> None:
        app.goto_node(2)
        await pilot.pause(0.05)
        await pilot.press("m")
        app.goto_node(6)
        await pilot.pause(0.05)
        await pilot.press("c")
        app.clear_notifications()  # the "marked" toast times out, at a time a loaded machine decides
        await pilot.pause(0.1)

    try:
        assert snap_compare(app, terminal_size=(120, 36), run_before=waiter(app, clock, 9, mark_and_compare))
    finally:
        if app.engine is not None:
            app.engine.shutdown()


def test_marked_node_in_the_tree(snap_compare):
    app, clock = mid_run_app()

    async def mark(pilot) -> None:
        app.goto_node(2)
        await pilot.pause(0.05)
        await pilot.press("m")
        await pilot.pause(0.05)
        app.clear_notifications()  # the "marked" toast times out, at a time a loaded machine decides
        app.goto_node(6)
        await pilot.pause(0.1)

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
        end = time.monotonic() + 10
        while not isinstance(app.screen, TaskCardScreen):
            assert time.monotonic() < end, "the task card form did not open"
            await pilot.pause(0.02)
        await pilot.pause(0.1)
        app.clear_notifications()
        if then is not None:
            await then(pilot)
        await pilot.pause(0.1)

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
        await pilot.pause(0.05)
        await pilot.press("ctrl+s")

    try:
        assert snap_compare(app, terminal_size=(80, 24), run_before=card_form_waiter(app, bad_id))
    finally:
        if app.engine is not None:
            app.engine.shutdown()
