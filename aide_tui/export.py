"""Write one node's solution and outputs to a directory, from the journal and its workspace."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .errors import UserError
from .project import Project
from .search.journal import Journal, JournalDamaged
from .search.tree import SearchTree


def export_node(project: Project, which: str, dest: Path, run: str | None = None) -> Path:
    run = run or project.latest_run()
    if run is None:
        raise UserError(f"{project.root}: no runs yet; run a search before --export")
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
    if which == "best":
        node = tree.best
        if node is None:
            raise UserError(f"run {run}: no working node yet, so there is no best node to export")
    else:
        try:
            node = tree.get(int(which.lstrip("#")))
        except (ValueError, KeyError):
            raise UserError(f"--export {which}: not a node of run {run}; use 'best' or a node id") from None
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "solution.py").write_text(node.code, encoding="utf-8")
    (dest / "output.txt").write_text(node.output, encoding="utf-8")
    (dest / "node.json").write_text(json.dumps({**node.to_dict(), "run": run, "direction": tree.direction}, indent=2, default=str), encoding="utf-8")
    workspace = run_dir / "nodes" / f"{node.id:04d}"
    for name in node.exec.outputs:
        src = workspace / name
        if src.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest
