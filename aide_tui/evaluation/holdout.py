"""Re-run a node's script on the withheld rows and score what it predicts.

The node's own script runs again, in its own workspace under the run
directory, with the same sandbox and limits (the engine hands in how to run a
request); its ./input is the node's, except that the test file is the
holdout's features.  Its submission is checked like any other, then scored
against the withheld labels by `scoring` in aide-tui's process.  The labels
never enter the workspace, and the submission is read back through
`run.safe_read`: a symlink or hard link to them (or to anything the sandbox
hides) is refused, never followed.  Which nodes are re-run and which one the
run answers with is `holdout_policy`'s.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..run.executor import ExecRequest, ExecResult
from ..run.workspace import INPUT_DIR, prepare_workspace, remove_tree
from ..search.node import Node
from ..search.task_card import TaskCard
from .holdout_policy import final_pick, holdout_candidates  # noqa: F401 - where callers found them
from .scoring import ScoreError, score_with_spread
from .staging import Evaluation
from .submission_check import SUBMISSION, check_submission

HOLDOUT_RUNS = "holdout-runs"  # under the run directory: the re-runs' workspaces

RunRequest = Callable[[ExecRequest], ExecResult]


@dataclass(frozen=True)
class HoldoutOutcome:
    metric: float | None
    note: str  # why there is no metric ("" when there is one)
    spread: float | None = None  # the metric's bootstrap standard deviation over the holdout rows


class HoldoutScorer:
    def __init__(
        self,
        evaluation: Evaluation,
        card: TaskCard,
        run_root: Path,
        inputs,
        request_for: Callable[[Path], ExecRequest],
        sample: Path | None = None,
    ):
        self.evaluation = evaluation
        self.sample = sample  # the project's sample submission: the columns a submission must have
        self.card = card
        self.root = Path(run_root) / HOLDOUT_RUNS
        self.inputs = inputs  # the run's InputData: the node's ./input
        self.request_for = request_for

    def workspace(self, node_id: int) -> Path:
        return self.root / f"{node_id:04d}"

    def score(self, node: Node, run: RunRequest) -> HoldoutOutcome:
        workspace = self.workspace(node.id)
        try:
            remove_tree(workspace)
            prepare_workspace(workspace, self.root, [], node.code, inputs=self.inputs)
            _replace_input(workspace / INPUT_DIR, self.evaluation.test_file, self.evaluation.holdout_features)
            result = run(self.request_for(workspace))
            return self._judge(workspace, result)
        finally:
            remove_tree(workspace, ignore_errors=True)

    def _judge(self, workspace: Path, result: ExecResult) -> HoldoutOutcome:
        if result.killed_reason:
            return HoldoutOutcome(None, f"the holdout re-run was stopped ({result.killed_reason})")
        if result.exit_code != 0:
            return HoldoutOutcome(
                None, f"the holdout re-run crashed ({result.exc_type or f'exit code {result.exit_code}'})"
            )
        submission = workspace / SUBMISSION
        if not os.path.lexists(submission):
            return HoldoutOutcome(None, f"the holdout re-run wrote no {SUBMISSION}")
        # Row count, ids and columns before a number: read through safe_read (no symlink, no hard
        # link, capped), so the script cannot point its submission at the labels or at a file
        # the sandbox hid, and nothing of such a file reaches a message.
        problem = check_submission(
            submission, self.evaluation.holdout_features, self.card.id_columns, self.sample, test_label="the holdout"
        )
        if problem:
            return HoldoutOutcome(None, problem)
        try:
            metric, spread = score_with_spread(submission, self.evaluation.holdout_labels, self.card)
        except ScoreError as exc:
            return HoldoutOutcome(None, str(exc))
        return HoldoutOutcome(metric, "", spread)


def _replace_input(input_dir: Path, rel: str | None, source: Path) -> None:
    """Put `source` where the node's script reads `rel` (a fresh read-only copy, never a link)."""
    assert rel is not None
    target = input_dir.joinpath(*PurePosixPath(rel).parts)
    if target.exists() or target.is_symlink():
        target.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    os.chmod(target, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
