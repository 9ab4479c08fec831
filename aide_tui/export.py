"""`--export NODE DIR` and `--worktree NODE DIR`: take one node out of a run.

Export writes the node's solution, output and outputs to DIR from the journal and its
workspace; a worktree checks the node's commit out on a new branch (git worktree add), so a
person can carry a solution into their own code with git.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .errors import UserError
from .evaluation.holdout import final_pick
from .project import Project
from .search.journal import Journal, JournalDamaged
from .search.node import Node
from .search.tree import SearchTree


def find_node(project: Project, which: str, run: str | None, flag: str) -> tuple[str, SearchTree, Node]:
    """The run (default: the newest), its tree and the node `which` ('best' or an id) names."""
    run = run or project.latest_run()
    if run is None:
        raise UserError(f"{project.root}: no runs yet; run a search before {flag}")
    run_dir = project.run_dir(run)
    if not (run_dir / "run.json").exists():
        raise UserError(f"--run {run}: no such run under {project.runs_dir}")
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    tree = SearchTree(info.get("direction"))
    try:
        nodes = Journal(run_dir / "journal.jsonl").load()
    except JournalDamaged as exc:
        raise UserError(f"{exc}; rebuild it first: aide-tui {project.root} --recover-journal --run {run}") from None
    for node in nodes:
        tree.add(node)
    if which == "best":  # the holdout score decides where nodes have one (the run's final pick)
        pick = final_pick(nodes, tree.direction, tree.best)
        if pick is None:
            raise UserError(f"run {run}: no working node yet, so there is no best node for {flag}")
        return run, tree, pick
    try:
        return run, tree, tree.get(int(which.lstrip("#")))
    except (ValueError, KeyError):
        raise UserError(f"{flag} {which}: not a node of run {run}; use 'best' or a node id") from None


def scores(node: Node) -> str:
    """Both numbers a person judges a node by: what its script reported, and the hidden holdout."""
    valid = f"validation {node.metric:.6g}" if node.metric is not None else f"no validation metric ({node.status})"
    if node.holdout_metric is not None:
        return f"{valid}, holdout {node.holdout_metric:.6g}"
    return f"{valid}, holdout not scored" + (f" ({node.holdout_note})" if node.holdout_note else "")


def export_node(project: Project, which: str, dest: Path, run: str | None = None) -> tuple[Path, Node]:
    """Write the node out; returns DIR and the node (its scores are printed)."""
    run, tree, node = find_node(project, which, run, "--export")
    run_dir = project.run_dir(run)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "solution.py").write_text(node.code, encoding="utf-8")
    (dest / "output.txt").write_text(node.output, encoding="utf-8")
    (dest / "node.json").write_text(
        json.dumps({**node.to_dict(), "run": run, "direction": tree.direction}, indent=2, default=str), encoding="utf-8"
    )
    workspace = run_dir / "nodes" / f"{node.id:04d}"
    for name in node.exec.outputs:
        src = workspace / name
        if src.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest, node


# ------------------------------------------------------------------ worktrees


def default_worktree(repo_dir: Path, run: str, node_id: int) -> tuple[str, Path]:
    """A branch name and a directory beside the repository (never inside the user's tree)."""
    branch = f"{run}-node-{node_id}"
    return branch, repo_dir.parent / f"{repo_dir.name}-{branch}"


def repository_dir(project_root: Path) -> Path:
    """Top of the git working tree that holds the project (what worktrees sit beside).

    Looked up without opening the repository: GitStore would create one where there is none.
    """
    project_root = Path(project_root).resolve()
    for directory in (project_root, *project_root.parents):
        if (directory / ".git").exists():
            return directory
    raise UserError(f"{project_root}: not inside a git repository, so there is no node commit to check out")


def add_worktree(project_root: Path, node_branch: str, branch: str, dest: Path) -> Path:
    """Check out the commit of `node_branch` (an aide/ branch) in a new worktree at `dest`."""
    from .store.git import GitStore, GitStoreError

    repository_dir(project_root)  # refuse before GitStore would create a repository
    with GitStore(project_root) as store:
        commit = store.branch_sha(node_branch)
        if commit is None:
            raise UserError(f"{node_branch}: no such branch in {store.repo_dir}; was the run's history deleted?")
        try:
            return store.add_worktree(dest, branch, commit)
        except GitStoreError as exc:  # e.g. a directory git cannot create: one line, not a traceback
            raise UserError(str(exc)) from None


def worktree_node(project: Project, which: str, dest: Path, run: str | None = None) -> tuple[Path, str]:
    """`--worktree NODE DIR`: like `git worktree add DIR`, the new branch is named after DIR."""
    from .engine import branch_name

    run, _tree, node = find_node(project, which, run, "--worktree")
    dest = dest.expanduser().resolve()
    return add_worktree(project.root, branch_name(run, node), dest.name, dest), dest.name
