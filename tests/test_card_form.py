"""The task card form: shown before a new run's first node, corrected, checked against the data, confirmed.

Pilot tests against the scripted fake engine (which waits for ConfirmTaskCard through the real
RunControl) and against the real engine (offline coder, real git), checked by what was saved."""

from __future__ import annotations

import json

import pytest
from fake_engine import factory
from helpers import git, journal_nodes
from helpers import pilot_wait_until as wait_for
from textual.widgets import Select, SelectionList

from aide_tui.app.app import AideApp
from aide_tui.app.screens.task_card import TaskCardScreen
from aide_tui.engine import build_engine
from aide_tui.events import CommandRejected, ConfirmTaskCard, TaskCardReady
from aide_tui.search.task_card import TaskCard
from aide_tui.settings import resolve

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]
SIZE = (120, 36)
CARD = TaskCard("data/train.csv", "data/test.csv", "sale_price", ["id"], "rmse", "minimize")


@pytest.fixture
def anyio_backend():
    return "asyncio"


def fake_app(project, **kwargs) -> AideApp:
    kwargs.setdefault("card", CARD)
    kwargs.setdefault("steps", 2)
    return AideApp(factory(project=str(project), confirm_card=True, **kwargs), clock=lambda: 1000.0)


async def card_form(pilot, app) -> TaskCardScreen:
    await wait_for(pilot, lambda: isinstance(app.screen, TaskCardScreen))
    return app.screen  # type: ignore[return-value]


async def test_the_form_shows_the_card_and_no_node_runs_until_it_is_confirmed(project):
    app = fake_app(project)
    async with app.run_test(size=SIZE) as pilot:
        form = await card_form(pilot, app)
        assert form.query_one("#card-target", Select).value == "sale_price"
        assert list(form.query_one("#card-ids", SelectionList).selected) == ["id"]
        assert app.model.done == 0 and app.model.running_id is None
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.model.state == "finished")
        engine = app.engine
        assert engine.confirmed == CARD
        assert [e.source for e in app.received if isinstance(e, TaskCardReady)] == ["derived", "confirmed"]
        assert app.model.done == 2
        # the engine waited: its first node started only after the confirmed card
        order = [type(e).__name__ + getattr(e, "source", "") for e in app.received]
        assert order.index("TaskCardReadyconfirmed") < order.index("NodeStarted")


async def test_a_corrected_card_is_what_the_engine_gets(project):
    app = fake_app(project)
    async with app.run_test(size=SIZE) as pilot:
        form = await card_form(pilot, app)
        form.query_one("#card-metric", Select).value = "mae"
        ids = form.query_one("#card-ids", SelectionList)
        ids.deselect("id")
        ids.select("area")
        await wait_for(pilot, lambda: form._metric == "mae" and list(ids.selected) == ["area"])
        assert form.query_one("#card-direction", Select).value == "minimize"
        form.query_one("#card-metric", Select).value = "r2"  # a metric brings its usual direction
        await wait_for(pilot, lambda: form.query_one("#card-direction", Select).value == "maximize")
        await pilot.click("#confirm")
        await wait_for(pilot, lambda: app.engine.confirmed is not None)
        assert app.engine.confirmed == TaskCard(
            "data/train.csv", "data/test.csv", "sale_price", ["area"], "r2", "maximize"
        )


async def test_a_card_that_does_not_fit_the_data_is_explained_in_the_form(project):
    (project / "data" / "test.csv").write_text("id,area,neighborhood\n1,60,North\n1,61,South\n")  # ids repeat
    app = fake_app(project)
    async with app.run_test(size=SIZE) as pilot:
        form = await card_form(pilot, app)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: form.query_one("#card-error").has_class("-shown"))
        assert isinstance(app.screen, TaskCardScreen)
        error = str(form.query_one("#card-error").render())
        assert "not unique per row of data/test.csv" in error
        assert app.engine.confirmed is None


async def test_changing_the_train_file_offers_its_columns_as_targets(project):
    (project / "data" / "other.csv").write_text("key,x,label\n1,2,a\n2,3,b\n")
    app = fake_app(project)
    async with app.run_test(size=SIZE) as pilot:
        form = await card_form(pilot, app)
        form.query_one("#card-train", Select).value = "data/other.csv"
        target = form.query_one("#card-target", Select)
        await wait_for(pilot, lambda: [v for _, v in target._options if v is not Select.NULL] == ["key", "x", "label"])


async def test_without_a_test_file_the_id_columns_come_from_the_train_file(project):
    app = fake_app(project)
    async with app.run_test(size=SIZE) as pilot:
        form = await card_form(pilot, app)
        form.query_one("#card-test", Select).clear()
        ids = form.query_one("#card-ids", SelectionList)
        expected = ["id", "area", "neighborhood"]  # the train file's columns but the target
        await wait_for(pilot, lambda: [ids.get_option_at_index(i).value for i in range(ids.option_count)] == expected)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.engine.confirmed is not None)
        assert app.engine.confirmed.test_file is None and app.engine.confirmed.id_columns == ["id"]


async def test_escape_quits_without_running_a_node(project):
    app = fake_app(project)
    async with app.run_test(size=SIZE) as pilot:
        await card_form(pilot, app)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.is_running or app.engine.finished.is_set())
    assert app.engine.nodes == {} and app.engine.confirmed is None


async def test_a_resumed_run_does_not_ask(project):
    app = fake_app(project, card_source="saved", replay=2, steps=3)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.model.state == "finished")
        assert not any(isinstance(s, TaskCardScreen) for s in app.screen_stack)
        assert app.model.card == CARD


# ------------------------------------------------------------------ the real engine


def real_app(project) -> AideApp:
    settings = resolve(None, dict(steps=1, coder="offline", workers=1, timeout=60, memory_limit="1G"))
    return AideApp(
        lambda listener, resume: build_engine(project, settings, resume=resume, listener=listener, confirm_card=True)
    )


def run_dir(project):
    return sorted((project / ".aide" / "runs").iterdir())[-1]


@pytest.mark.slow
async def test_the_real_engine_saves_the_confirmed_card_and_its_nodes_use_it(project):
    app = real_app(project)
    async with app.run_test(size=SIZE) as pilot:
        form = await card_form(pilot, app)
        assert not (run_dir(project) / "task_card.json").exists()  # written once confirmed
        form.query_one("#card-metric", Select).value = "mae"
        await wait_for(pilot, lambda: form._metric == "mae")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.model.state == "finished", timeout=90)
    saved = json.loads((run_dir(project) / "task_card.json").read_text())
    assert saved["metric"] == "mae"
    (node,) = journal_nodes(run_dir(project) / "journal.jsonl")
    assert "mean_absolute_error" in node["code"]  # the offline coder scores with the confirmed metric
    root = git(project, "ls-tree", "--name-only", f"aide/{run_dir(project).name}/root").split()
    assert "task_card.json" not in root  # a card confirmed in the TUI lives in the run directory only


@pytest.mark.slow
async def test_the_engine_rejects_a_card_that_does_not_fit(project):
    app = real_app(project)
    async with app.run_test(size=SIZE) as pilot:
        await card_form(pilot, app)
        app.engine.submit(ConfirmTaskCard(TaskCard("data/train.csv", "data/test.csv", "nope", [], "rmse", "minimize")))
        await wait_for(pilot, lambda: any(isinstance(e, CommandRejected) for e in app.received))
        (rejected,) = [e for e in app.received if isinstance(e, CommandRejected)]
        assert "target 'nope' is not a column of data/train.csv" in rejected.reason
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.engine_worker is None or app.engine_worker.is_finished, timeout=30)
    # Leaving the form leaves nothing: no run to be offered for resuming, no root branch.
    assert list((project / ".aide" / "runs").iterdir()) == []
    assert git(project, "branch", "--list", "aide/*").strip() == ""


async def test_a_card_naming_a_column_the_data_lacks_opens_with_that_field_blank(project):
    app = fake_app(project, card=TaskCard("data/train.csv", "data/test.csv", "price", ["id"], "rmse", "minimize"))
    async with app.run_test(size=SIZE) as pilot:
        form = await card_form(pilot, app)
        assert form.query_one("#card-target", Select).value is Select.NULL
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: form.query_one("#card-error").has_class("-shown"))
        assert "choose a train file, a target" in str(form.query_one("#card-error").render())
        form.query_one("#card-target", Select).value = "sale_price"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.engine.confirmed is not None)
        assert app.engine.confirmed.target == "sale_price"


async def test_at_80x24_tab_brings_every_field_and_the_start_button_into_view(project):
    app = fake_app(project)
    async with app.run_test(size=(80, 24)) as pilot:
        form = await card_form(pilot, app)
        dialog = form.query_one(".dialog-card")
        seen = []
        for _ in range(10):  # start, quit, then the eight fields in order
            before = app.focused
            await pilot.press("tab")
            await wait_for(pilot, lambda b=before: app.focused is not b)
            widget = app.focused
            assert dialog.content_region.contains_region(widget.region), (widget.id, widget.region)
            seen.append(widget.id)
        fields = ["card-train", "card-test", "card-target", "card-ids", "card-group", "card-time", "card-metric"]
        assert seen == ["quit", *fields, "card-direction", "confirm"]
