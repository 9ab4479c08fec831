"""Browsing the history in the TUI: the lineage view (l), comparing two nodes (m, c) and a git
worktree of a node (w), against the scripted fake engine (tests/fake_engine.py).

The fake run's tree: #0 draft, #1 draft (buggy) -> #3 debug -> #4 improve -> #5 (timed out),
#6 improve -> #8 (buggy), #9 (running); #2 and #7 drafts.
"""

from __future__ import annotations

import pytest
from fake_engine import FakeEngine, factory
from helpers import git, make_project
from test_app import SIZE, held_app, notes, static_text, wait_for
from textual.widgets import DataTable, Input

from aide_tui.app.app import AideApp
from aide_tui.app.screens.compare import CompareScreen, relation
from aide_tui.app.screens.lineage import LineageScreen, lineage
from aide_tui.app.screens.node_detail import NodeDetailScreen
from aide_tui.app.screens.worktree import WorktreeModal
from aide_tui.control import Plan
from aide_tui.search.node import Node
from aide_tui.state import NodeView, RunModel
from aide_tui.store.git import GitStore

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def main_screen_at(pilot, app: AideApp, node: int) -> None:
    await held_app(pilot, app, 9)
    app.goto_node(node)
    await wait_for(pilot, lambda: app.tree_pane.selected_id == node)


async def test_lineage_lists_the_steps_from_the_draft_and_opens_each_step_on_its_diff():
    app = AideApp(factory(hold_at=9))
    async with app.run_test(size=SIZE) as pilot:
        await main_screen_at(pilot, app, 6)
        assert [v.id for v in lineage(app.model, 6)] == [1, 3, 4, 6]
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LineageScreen))
        screen = app.screen
        table = screen.query_one(DataTable)
        assert [str(key.value) for key in table.rows] == ["1", "3", "4", "6"]
        assert table.get_row("4")[4].plain == "+0.0177"  # 0.8112 - 0.7935, better when maximizing
        assert table.get_row("1")[2].plain == "✗ buggy"
        assert "3 steps from draft #1" in static_text(screen, "#lineage-header")
        assert screen.query_one("#lineage-diff-scroll").border_title == "#6 improve against its parent #4"
        await pilot.press("up")
        await wait_for(
            pilot,
            lambda: "#4 improve against its parent #3" in str(screen.query_one("#lineage-diff-scroll").border_title),
        )
        assert "+model = GradientBoostingClassifier(n_estimators=200, max_depth=4)" in static_text(
            screen, "#lineage-diff"
        )
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, NodeDetailScreen))
        assert app.screen.node_id == 4
        assert app.screen.query_one("TabbedContent").active == "diff"
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, LineageScreen))
        app.engine.shutdown()


async def test_a_draft_s_lineage_is_itself_and_its_change_is_its_whole_code():
    app = AideApp(factory(hold_at=9))
    async with app.run_test(size=SIZE) as pilot:
        await main_screen_at(pilot, app, 2)
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LineageScreen))
        assert "a draft" in static_text(app.screen, "#lineage-header")
        assert "+from sklearn.ensemble import RandomForestClassifier" in static_text(app.screen, "#lineage-diff")
        await pilot.press("enter")  # a draft has no parent: its step opens on the code
        await wait_for(pilot, lambda: isinstance(app.screen, NodeDetailScreen))
        assert app.screen.query_one("TabbedContent").active == "code"
        app.engine.shutdown()


async def test_mark_then_compare_diffs_the_selected_node_against_the_marked_one():
    app = AideApp(factory(hold_at=9))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await main_screen_at(pilot, app, 6)
        await pilot.press("c")
        await wait_for(pilot, lambda: any("mark a node first (m)" in n for n in notes(app)))
        assert not isinstance(app.screen, CompareScreen)

        app.goto_node(2)
        await wait_for(pilot, lambda: app.tree_pane.selected_id == 2)
        await pilot.press("m")
        await wait_for(pilot, lambda: "◆ marked" in app.tree_pane.tree_node(2).label.plain)
        await pilot.press("c")
        await wait_for(pilot, lambda: any("#2 is the marked node" in n for n in notes(app)))

        app.goto_node(6)
        await wait_for(pilot, lambda: app.tree_pane.selected_id == 6)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen))
        header = static_text(app.screen, "#compare-header")
        assert "#2 draft" in header and "#6 improve" in header and "+0.0514" in header
        assert "from different drafts · +3 −3 lines" in header
        diff = static_text(app.screen, "#compare-diff")
        assert "-model = RandomForestClassifier(n_estimators=300)" in diff
        assert "+model = GradientBoostingClassifier()" in diff
        await pilot.press("x")
        await wait_for(pilot, lambda: app.screen.query_one("#compare-scroll").border_title == "#6 → #2")
        assert "+model = RandomForestClassifier(n_estimators=300)" in static_text(app.screen, "#compare-diff")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, CompareScreen))

        app.goto_node(2)
        await wait_for(pilot, lambda: app.tree_pane.selected_id == 2)
        await pilot.press("m")  # again: unmark
        await wait_for(pilot, lambda: "marked" not in app.tree_pane.tree_node(2).label.plain)
        assert app.marked_id is None
        app.engine.shutdown()


def finished_fake_run() -> RunModel:
    """The fake run's model, built straight from its events (no app needed)."""
    model = RunModel()
    FakeEngine(model.apply, steps=10).run()
    return model


def test_relation_says_how_two_nodes_descend():
    model = finished_fake_run()
    assert relation(model, 1, 6) == "#6 descends from #1 (3 steps)"
    assert relation(model, 6, 4) == "#6 descends from #4 (1 step)"
    assert relation(model, 5, 8) == "different lines from common ancestor #4"
    assert relation(model, 0, 7) == "from different drafts"


def repo_with_node_6(tmp_path):
    """A real repository holding the fake run's branch for node #6."""
    project = make_project(tmp_path / "titanic", dirty=False)
    with GitStore(project) as store:
        store.commit_node("aide/titanic-1/0006-improve", None, {"solution.py": b"print('six')\n"}, "six")
    return project


async def test_w_makes_a_worktree_of_the_selected_node_on_the_branch_the_user_names(tmp_path):
    project = repo_with_node_6(tmp_path)
    app = AideApp(factory(hold_at=9, project=str(project)))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await main_screen_at(pilot, app, 6)
        await pilot.press("w")
        await wait_for(pilot, lambda: isinstance(app.screen, WorktreeModal))
        modal = app.screen
        assert modal.query_one("#worktree-branch", Input).value == "titanic-1-node-6"
        assert modal.query_one("#worktree-path", Input).value == str(tmp_path / "titanic-titanic-1-node-6")

        modal.query_one("#worktree-branch", Input).value = "main"  # taken: said in the dialog, which stays
        await pilot.press("enter")
        await wait_for(pilot, lambda: "'main' already exists" in static_text(modal, "#worktree-error"))
        assert app.screen is modal

        modal.query_one("#worktree-branch", Input).value = "try-six"
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, WorktreeModal))
        dest = tmp_path / "titanic-titanic-1-node-6"
        assert (dest / "solution.py").read_text() == "print('six')\n"
        assert git(dest, "rev-parse", "--abbrev-ref", "HEAD").strip() == "try-six"
        assert git(project, "status", "--porcelain") == ""
        await wait_for(pilot, lambda: any("on new branch try-six" in n for n in notes(app)))
        app.engine.shutdown()


async def test_w_outside_a_git_repository_says_so_and_creates_nothing(tmp_path):
    app = AideApp(factory(hold_at=9, project=str(tmp_path / "no-repo")))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await main_screen_at(pilot, app, 6)
        await pilot.press("w")
        await wait_for(pilot, lambda: any("not inside a git repository" in n for n in notes(app)))
        assert not isinstance(app.screen, WorktreeModal)
        assert not (tmp_path / "no-repo").exists()
        app.engine.shutdown()


def test_every_history_key_has_a_description_for_the_footer_and_the_palette():
    keys = {b.id: b for b in AideApp.AIDE_BINDINGS}
    for binding_id, key in (("aide.lineage", "l"), ("aide.mark", "m"), ("aide.compare", "c"), ("aide.worktree", "w")):
        binding = keys[binding_id]
        assert binding.key == key and binding.show and binding.description and binding.tooltip


def test_lineage_stops_at_a_cycle_of_parent_ids():
    """A corrupt journal must not hang the view."""
    model = RunModel()
    model.nodes = {
        i: NodeView(id=i, parent_id=p, operation="improve", step=i, status="ok", node=Node(i, p, "improve", i))
        for i, p in ((1, 2), (2, 1))
    }
    assert [v.id for v in lineage(model, 1)] == [2, 1]


async def test_shift_m_merges_the_selected_working_node_with_the_marked_one():
    app = AideApp(factory(hold_at=9))
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await main_screen_at(pilot, app, 6)
        await pilot.press("M")
        await wait_for(pilot, lambda: any("mark a node first (m)" in n for n in notes(app)))
        app.goto_node(5)  # timed out: not a node to merge
        await wait_for(pilot, lambda: app.tree_pane.selected_id == 5)
        await pilot.press("m")
        app.goto_node(6)
        await wait_for(pilot, lambda: app.tree_pane.selected_id == 6)
        await pilot.press("M")
        await wait_for(pilot, lambda: any("the marked node: node #5 is timeout" in n for n in notes(app)))
        app.goto_node(2)
        await wait_for(pilot, lambda: app.tree_pane.selected_id == 2)
        await pilot.press("m")
        app.goto_node(6)
        await wait_for(pilot, lambda: app.tree_pane.selected_id == 6)
        await pilot.press("M")
        await wait_for(pilot, lambda: any("merging #6 with #2 runs" in n for n in notes(app)))
        assert app.engine.control.peek() == Plan("merge", 6, "command", other_id=2)
        app.engine.shutdown()


def test_the_merge_key_is_in_the_palette_with_its_description():
    binding = next(b for b in AideApp.AIDE_BINDINGS if b.id == "aide.merge")
    assert binding.key == "M" and binding.action == "merge" and "marked" in binding.tooltip
