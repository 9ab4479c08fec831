"""An exported node that runs on the user's data as it is, and a refit on all training rows.

During a run a script reads `./input/`: the training file less the hidden
holdout and the run's `folds.csv`, whose row numbers refer to that reduced
file.  Exported as is, it needs files that exist only inside the run, and its
`submission.csv` was fit on about 90 % of the labels.  So an export gets:

* `input/`: links to the project's own data files (the full training file) and
  `folds.csv` made again for every row of it, by the same rule as the run's
  (seed, groups, time), so `cd DIR && python solution.py` runs unchanged;
* with `--refit` (the default for `best`): the node's script re-run once in the
  run's sandbox on exactly that input, and its `submission.csv` exported; the
  run's own submission is kept beside it as `submission_from_run.csv`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

from .data.table import TableError, read_table, write_table
from .errors import UserError
from .evaluation.split import make_split
from .evaluation.staging import FOLDS_NAME, structure_of
from .project import Project
from .search.node import Node
from .search.task_card import METRIC_KINDS, TaskCard
from .settings import Settings

REFIT_RUNS = "refit-runs"  # under the run directory: the refits' workspaces
RUN_SUBMISSION = "submission_from_run.csv"


def full_folds(project_root: Path, card: TaskCard, seed: int) -> list[list[str]]:
    """`row,fold` rows for every row of the full training file, by the run's rule with nothing withheld."""
    try:
        header, rows = read_table(Path(project_root) / card.train_file, label=card.train_file)
    except TableError as exc:
        raise UserError(str(exc)) from None
    labels = [row[header.index(card.target)] if header.index(card.target) < len(row) else "" for row in rows]
    classification = METRIC_KINDS.get(card.metric, ("", "regression"))[1] == "classification"
    groups, times = structure_of(card, header, rows)
    split = make_split(labels, classification, seed, 0.0, groups, times)
    return [[str(i), str(f)] for i, f in enumerate(split.folds)]


def link_inputs(dest: Path, project: Project, data_files: list[str], card: TaskCard | None, seed: int) -> Path:
    """`dest/input/`: the project's data files (links, so big data is not copied) and regenerated folds."""
    input_dir = dest / "input"
    if input_dir.is_symlink() or input_dir.is_file():
        input_dir.unlink()
    elif input_dir.exists():
        shutil.rmtree(input_dir)
    for rel in data_files:
        target = input_dir.joinpath(*PurePosixPath(rel).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(project.root.joinpath(*PurePosixPath(rel).parts).resolve(), target)
    if card is not None:
        write_table(input_dir / FOLDS_NAME, ["row", "fold"], full_folds(project.root, card, seed))
    return input_dir


def refit(
    project: Project, run_dir: Path, node: Node, data_files: list[str], card: TaskCard | None, settings: Settings
) -> tuple[bytes | None, str]:
    """Re-run `node`'s script on all training rows, sandboxed and limited as the run's nodes are.

    Returns (its submission.csv, "") or (None, why not)."""
    from .engine import build_executor
    from .run.bwrap import choose_isolation
    from .run.executor import ExecRequest
    from .run.inputs import InputData
    from .run.sandbox import available_cpus
    from .run.workspace import prepare_workspace

    root = run_dir / REFIT_RUNS
    workspace = root / f"{node.id:04d}"
    if workspace.exists():
        shutil.rmtree(workspace)
    sources: dict[str, Path] = {}
    if card is not None:
        folds = root / f"{node.id:04d}-{FOLDS_NAME}"
        root.mkdir(parents=True, exist_ok=True)
        write_table(folds, ["row", "fold"], full_folds(project.root, card, settings.seed))
        sources[FOLDS_NAME] = folds
    isolation, _notice = choose_isolation(
        settings.sandbox, project.root, Path.home(), settings.sandbox_read, settings.network
    )
    inputs = InputData(project.root, data_files, root, read_only_mount=isolation is not None, sources=sources)
    prepare_workspace(workspace, project.root, [], node.code, inputs=inputs)
    request = ExecRequest(
        workspace=workspace,
        timeout=settings.timeout,
        memory_limit_mb=settings.memory_limit_mb,
        output_limit_bytes=settings.output_limit_bytes,
        env_pass=tuple(settings.env_pass),
        cpus=max(1, available_cpus() // max(1, settings.workers)),
        isolation=isolation,
    )
    if settings.python:
        request.python = settings.python
    executor = build_executor(settings)
    try:
        result = executor.submit(request, lambda _stream, _line: None).wait()
    finally:
        executor.shutdown()
    try:
        if result is None or result.killed_reason:
            return None, f"the refit was stopped ({result.killed_reason if result else 'no result'})"
        if result.exit_code != 0:
            return None, f"the refit crashed ({result.exc_type or f'exit code {result.exit_code}'})"
        submission = workspace / "submission.csv"
        if submission.is_symlink() or not submission.is_file():
            return None, "the refit wrote no submission.csv"
        return submission.read_bytes(), ""
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
