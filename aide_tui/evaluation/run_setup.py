"""The evaluation a run uses, wired from its card: the engine's one entry point.

With no card (the data is not one table), or a card the training file
contradicts, folds, holdout and submission checks are off and one notice says
so.  Everything else the engine needs is here: what ./input holds, what the
prompts say about the folds, the submission check after the review, and the
holdout scorer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..run.workspace import INPUT_DIR
from ..search.task_card import TaskCard
from .holdout import HoldoutScorer
from .staging import FOLDS_NAME, Evaluation, StagingError, stage
from .submission_check import SUBMISSION, check_submission, find_sample_submission

OFF = "folds, holdout and submission checks are off: {why}"


@dataclass
class RunEvaluation:
    card: TaskCard
    evaluation: Evaluation
    project_root: Path
    sample: str | None  # the project's sample submission, if any
    scorer: HoldoutScorer | None = None  # set once the engine has its inputs (attach_scorer)

    @property
    def input_sources(self) -> dict[str, Path]:
        return self.evaluation.input_sources()

    def prompt_values(self) -> dict[str, str]:
        """What the prompts' fixed-evaluation paragraph names."""
        return {"folds_file": f"./{INPUT_DIR}/{FOLDS_NAME}", "folds_train": f"./{INPUT_DIR}/{self.card.train_file}"}

    def attach_scorer(self, run_root: Path, inputs, request_for) -> None:
        if self.evaluation.has_holdout:
            sample = self.project_root / self.sample if self.sample else None
            self.scorer = HoldoutScorer(self.evaluation, self.card, run_root, inputs, request_for, sample)

    def check_submission(self, workspace: Path) -> str | None:
        """What is wrong with the node's submission.csv for the test file (None: fine, or no test file)."""
        if self.card.test_file is None:
            return None
        submission = Path(workspace) / SUBMISSION
        if not os.path.lexists(submission):  # the prompts require it: a node without one cannot be submitted
            return f"wrote no {SUBMISSION} (the task has a test file, {self.card.test_file})"
        sample = self.project_root / self.sample if self.sample else None
        return check_submission(
            submission,
            self.project_root / self.card.test_file,
            self.card.id_columns,
            sample,
            test_label="the test file",
        )


def setup_evaluation(
    card: TaskCard | None, run_dir: Path, project_root: Path, data_files: list[str], seed: int, holdout: float
) -> tuple[RunEvaluation | None, list[str]]:
    """The run's evaluation (made once, reused on resume) and notices for the user."""
    if card is None:
        return None, [OFF.format(why="the data is not one table the task card describes")]
    if not card.train_file.lower().endswith(".csv"):
        return None, [OFF.format(why=f"the training data {card.train_file} is not a CSV file")]
    try:
        evaluation, notices = stage(run_dir, project_root, card, seed, holdout)
    except StagingError as exc:
        return None, [OFF.format(why=str(exc))]
    if evaluation.has_holdout:
        notices.append(
            f"hidden holdout: {evaluation.holdout_rows} of {evaluation.rows + evaluation.holdout_rows} "
            f"training rows are withheld from the scripts; the best nodes are re-run on them"
        )
    return RunEvaluation(card, evaluation, Path(project_root), find_sample_submission(data_files)), notices
