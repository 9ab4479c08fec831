"""`--export NODE DIR` and `--worktree NODE DIR`: take one node out of a run.

Export writes the node's solution, output and node.json from the journal, and its
outputs from the node's *commit*, never from its workspace: the workspace is what an
untrusted script left (a `.git/config` with `core.fsmonitor`, executable hooks,
symlinks), the commit only what git could hold.  No path with a `.git` component is
written (an existing repository's `.git` in DIR is never touched), no file gets a run
bit, and nothing is written through a symlink already in DIR.

With it, what makes the script run on the project's data as it is (`export_run`): `input/`
with links to the data and folds for every training row, and with `--refit` a submission
fit on every training row (the run's own is kept as `submission_from_run.csv`).

A worktree checks the node's commit out on a new branch (git worktree add), so a
person can carry a solution into their own code with git.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import UserError
from .evaluation.holdout_policy import final_pick
from .project import Project
from .search.journal import Journal, JournalDamaged
from .search.node import Node
from .search.task_card import TaskCardError, card_from_table
from .search.tree import SearchTree
from .settings import Settings


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


EXPORT_MODE = 0o644  # never a run bit: nothing exported is meant to be executed as it lands


def committed_outputs(project: Project, run: str, node: Node) -> dict[str, bytes] | None:
    """The node's outputs as its commit holds them (None: the node has no commit)."""
    from .records import branch_name
    from .store.git import GitStore

    with GitStore(project.root) as store:
        commit = store.branch_sha(branch_name(run, node))
        return None if commit is None else store.read_tree(commit, "outputs")


def write_beneath(dest: Path, rel: str, data: bytes) -> None:
    """Write `data` at `rel` under `dest`, following no symlink on the way (a link planted or
    left in DIR cannot send the bytes elsewhere) and with mode 0644 whatever was there."""
    parts = rel.split("/")
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    current = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            try:
                os.mkdir(part, 0o755, dir_fd=current)
            except FileExistsError:
                pass
            nxt = os.open(part, flags, dir_fd=current)
            os.close(current)
            current = nxt
        fd = os.open(
            parts[-1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, EXPORT_MODE, dir_fd=current
        )
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), EXPORT_MODE)
            fh.write(data)
    finally:
        os.close(current)


def export_node(
    project: Project,
    which: str,
    dest: Path,
    run: str | None = None,
    *,
    settings: Settings | None = None,
    refit: bool | None = None,
) -> tuple[Path, Node]:
    """Write the node out, runnable on the project's data (export_run); returns DIR and the node.

    `refit` (default: on for 'best', when `settings` are given) re-runs it on all training rows."""
    from .store.git import refusal

    run, tree, node = find_node(project, which, run, "--export")
    outputs = committed_outputs(project, run, node)
    if outputs is None:
        raise UserError(
            f"node #{node.id} of run {run} has no commit, so its outputs are not known; "
            f"aide-tui {project.root} --resume --run {run} commits it"
        )
    dest.mkdir(parents=True, exist_ok=True)
    node_json = json.dumps({**node.to_dict(), "run": run, "direction": tree.direction}, indent=2, default=str)
    files = {
        "solution.py": node.code.encode("utf-8", "surrogateescape"),
        "output.txt": node.output.encode("utf-8", "replace"),
        "node.json": node_json.encode("utf-8"),
    }
    for name, data in sorted(outputs.items()):
        if refusal(name) is None and name not in files:  # never a .git component, whatever a commit holds
            files[name] = data
    for name, data in files.items():
        try:
            write_beneath(dest, name, data)
        except OSError as exc:
            raise UserError(
                f"{dest / name}: cannot write it ({exc.strerror}); export into an empty directory"
            ) from None
    _export_runnable(project, project.run_dir(run), node, dest, settings, which == "best" if refit is None else refit)
    return dest, node


def _export_runnable(
    project: Project, run_dir: Path, node: Node, dest: Path, settings: Settings | None, refit: bool
) -> None:
    """input/ with the project's data and whole-file folds; with `refit`, the all-rows submission."""
    from .export_run import RUN_SUBMISSION, link_inputs
    from .export_run import refit as refit_node
    from .run.workspace import list_data_files

    card_file = run_dir / "task_card.json"
    card = None
    if card_file.is_file():
        try:
            card = card_from_table(json.loads(card_file.read_text(encoding="utf-8")), None, str(card_file))
        except (ValueError, TaskCardError):
            card = None
    data_files = list_data_files(project.root)
    seed = settings.seed if settings is not None else _run_seed(run_dir)
    link_inputs(dest, project, data_files, card, seed)
    if not refit or settings is None:
        return
    submission, why = refit_node(project, run_dir, node, data_files, card, settings)
    if submission is None:
        raise UserError(f"--refit: {why}; export without it: --no-refit")
    if (dest / "submission.csv").is_file() and not (dest / "submission.csv").is_symlink():
        write_beneath(dest, RUN_SUBMISSION, (dest / "submission.csv").read_bytes())
    write_beneath(dest, "submission.csv", submission)


def _run_seed(run_dir: Path) -> int:
    """The seed the run's folds were made with (evaluation/split.json), so exported folds follow the same rule."""
    try:
        return int(json.loads((run_dir / "evaluation" / "split.json").read_text(encoding="utf-8"))["seed"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


# ------------------------------------------------------------------ worktrees


def default_worktree(project_dir: Path, run: str, node_id: int) -> tuple[str, Path]:
    """A branch name and a directory beside the project (`w` offers both; the user may change them):
    where the person looks for it, also when the project is a folder inside a larger repository."""
    branch = f"{run}-node-{node_id}"
    project_dir = Path(project_dir).resolve()
    return branch, project_dir.parent / f"{project_dir.name}-{branch}"


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
