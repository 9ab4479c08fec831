"""`w` in the TUI and `--worktree NODE DIR`: a node checked out on a new branch beside the
project (git worktree add), the only write outside refs/heads/aide/ and only on request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import git, make_project, user_state

from aide_tui.cli import main
from aide_tui.engine import branch_name
from aide_tui.errors import UserError
from aide_tui.export import add_worktree, default_worktree
from aide_tui.search.journal import Journal
from aide_tui.search.node import Node
from aide_tui.store.git import GitStore

RUN = "20260101-000000"


def make_run(tmp_path: Path) -> Path:
    """A project whose run has two committed nodes: #1 draft and #2 improve of #1 (the best)."""
    project = make_project(tmp_path / "proj")
    run_dir = project / ".aide" / "runs" / RUN
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"status": "completed", "direction": "maximize"}))
    journal = Journal(run_dir / "journal.jsonl")
    nodes = [
        Node(1, None, "draft", 1, plan="Baseline", code="print('draft')\n", status="ok", metric=0.5),
        Node(2, 1, "improve", 2, plan="Better", code="print('improved')\n", status="ok", metric=0.7),
    ]
    parent = None
    with GitStore(project) as store:
        for node in nodes:
            journal.append(node)
            files = {"solution.py": node.code.encode(), "output.txt": b""}
            parent = store.commit_node(branch_name(RUN, node), parent, files, node.plan)
    journal.close()
    return project


def test_cli_worktree_checks_the_best_node_out_on_a_branch_named_after_the_directory(tmp_path, capsys):
    project = make_run(tmp_path)
    before = user_state(project)
    dest = tmp_path / "my-solution"
    assert main([str(project), "--worktree", "best", str(dest)]) == 0
    assert "my-solution" in capsys.readouterr().out
    assert (dest / "solution.py").read_text() == "print('improved')\n"
    assert git(dest, "rev-parse", "--abbrev-ref", "HEAD").strip() == "my-solution"
    assert git(dest, "rev-parse", "HEAD") == git(project, "rev-parse", f"aide/{RUN}/0002-improve")
    assert git(dest, "status", "--porcelain") == ""
    assert user_state(project) == before  # the user's checkout, index and HEAD are untouched


@pytest.mark.parametrize(
    "node,dest_name,needles",
    [
        ("9", "x", ["--worktree 9", "not a node"]),
        ("1", "aide", ["aide/", "another name"]),
        ("1", "bad..name", ["invalid branch name", "another branch name"]),
    ],
)
def test_cli_worktree_refuses_bad_requests_in_one_line(tmp_path, capsys, node, dest_name, needles):
    project = make_run(tmp_path)
    assert main([str(project), "--worktree", node, str(tmp_path / dest_name)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    assert not (tmp_path / dest_name).exists()


def test_an_existing_branch_or_a_non_empty_directory_is_refused_and_left_alone(tmp_path):
    project = make_run(tmp_path)
    node_branch = f"aide/{RUN}/0001-draft"
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep me\n")
    with pytest.raises(UserError, match="not empty"):
        add_worktree(project, node_branch, "fresh", taken)
    assert sorted(p.name for p in taken.iterdir()) == ["mine.txt"]
    with pytest.raises(UserError, match="'main' already exists"):
        add_worktree(project, node_branch, "main", tmp_path / "new")
    with pytest.raises(UserError, match="no such branch"):
        add_worktree(project, f"aide/{RUN}/0007-draft", "fresh", tmp_path / "new")
    assert git(project, "branch", "--list", "fresh") == ""


def test_default_worktree_sits_beside_the_project_even_inside_a_larger_repository(tmp_path):
    branch, path = default_worktree(tmp_path / "proj", RUN, 7)
    assert branch == f"{RUN}-node-7"
    assert path == tmp_path.resolve() / f"proj-{RUN}-node-7"
    _, nested = default_worktree(tmp_path / "repo" / "examples" / "house-prices", RUN, 7)
    assert nested == tmp_path.resolve() / "repo" / "examples" / f"house-prices-{RUN}-node-7"
