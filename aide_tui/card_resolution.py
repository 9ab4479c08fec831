"""Which task card a run uses: the one it saved, else the derived one with aide.toml's corrections.

Derived means: by the LLM when one is given (it reads task.md's own words), checked
against the data, else by the offline reader.  Runs before the engine starts, so a
bad `[task]` table, a damaged saved card, a card that does not fit the data (a
target that is not a column, ids the submission needs and the card lacks) or a
data file that cannot be read is a one-line error (exit 2) and nothing has been
created yet.  In the TUI a card that does not fit goes to the form instead,
which says what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FatalRunError, UserError
from .project import Project
from .search.node import Usage
from .search.offline.task_reader import TableUnreadable, TaskReadError, card_problem, derive_task_card, offline_problem
from .search.task_card import TaskCard, TaskCardError, card_from_table
from .settings import Settings

AskLlm = Callable[[], tuple[TaskCard, Usage]]  # the LLM's card, checked against the data; raises when it has none


@dataclass
class ResolvedCard:
    card: TaskCard | None  # None: the data is not a table and aide.toml gives no full card
    source: str  # "saved", "llm", "derived" or "aide.toml" (see events.TaskCardReady)
    notice: str = ""  # why the LLM's card was not used, for the user
    usage: Usage = field(default_factory=Usage)  # the LLM call's tokens and cost
    fatal: FatalRunError | None = None  # the key was refused: the run stops at its start, as it would at node 1
    detected: TaskCard | None = None  # the offline reader's card, for the warnings about groups and time
    given: set[str] = field(default_factory=set)  # the keys aide.toml's [task] sets
    warnings: list[str] = field(default_factory=list)  # structure the data shows and the card leaves out
    unsolvable: str = ""  # why the offline reader derived no card (e.g. no CSV data)


def resolve_card(
    project: Project,
    data_files: list[str],
    settings: Settings,
    run_dir: Path | None,
    ask_llm: AskLlm | None = None,
    *,
    confirm: bool = False,
    offline: bool = False,
) -> ResolvedCard:
    """The run's card; `run_dir` None for a new run (nothing saved yet).

    `confirm`: the front end shows the card in a form before the run, so a card that does not
    fit the data is left for the form to fix; otherwise it is a UserError.  `offline`: the
    offline coder will write the scripts, so the card must be one it can solve.
    """
    saved = run_dir / "task_card.json" if run_dir is not None else None
    stale = ""
    if saved is not None and saved.exists():
        try:
            card = card_from_table(json.loads(saved.read_text(encoding="utf-8")), None, str(saved))
        except (ValueError, TaskCardError) as exc:
            raise UserError(f"{saved}: damaged ({exc}); delete it to derive the card again") from None
        problem = card_problem(project.root, data_files, card)
        if problem is None:
            return ResolvedCard(card, "saved")
        stale = f"The run's saved task card no longer fits the data ({problem}); it was derived again."
    resolved = _resolve_new(project, data_files, settings, ask_llm)
    if stale:
        resolved.notice = " ".join(n for n in (stale, resolved.notice) if n)
    return _checked(project, data_files, resolved, confirm=confirm, offline=offline)


def _resolve_new(project: Project, data_files: list[str], settings: Settings, ask_llm: AskLlm | None) -> ResolvedCard:
    try:
        offline: TaskCard | None = derive_task_card(project.root, data_files, project.task_text())
    except TableUnreadable as exc:
        raise UserError(str(exc)) from None
    except TaskReadError as exc:
        offline = None
        unsolvable = str(exc)
    else:
        unsolvable = ""
    resolved = ResolvedCard(offline, "derived")
    resolved.unsolvable = unsolvable
    if ask_llm is not None:
        resolved = _from_llm(ask_llm, offline)
    resolved.detected = offline
    if not settings.task_table:
        return resolved
    where = f"{project.settings_file} [task]"
    try:
        card = card_from_table(settings.task_table, resolved.card, where)
    except TaskCardError as exc:
        raise UserError(str(exc)) from None
    for name in (card.train_file, card.test_file):
        if name is not None and name not in data_files:
            raise UserError(f"{where}: {name!r} is not a data file of the project; use a path like {data_files[0]!r}")
    given = set(settings.task_table)
    return ResolvedCard(card, "aide.toml", resolved.notice, resolved.usage, resolved.fatal, offline, given)


def _checked(
    project: Project, data_files: list[str], resolved: ResolvedCard, *, confirm: bool, offline: bool
) -> ResolvedCard:
    """Refuse, before anything is created, a card that does not fit the data; warn about structure it leaves out."""
    card = resolved.card
    if card is None:
        if offline and resolved.unsolvable:  # e.g. no CSV data: the first step would only fail the same way
            raise UserError(f"offline coder: {resolved.unsolvable}")
        return resolved
    problem = card_problem(project.root, data_files, card)
    if problem is None and offline:
        try:
            problem = offline_problem(project.root, data_files, card)
        except TaskReadError as exc:
            problem = str(exc)
    if problem is not None and not confirm:
        raise UserError(problem if resolved.source != "aide.toml" else f"{project.settings_file}: {problem}")
    resolved.warnings = structure_warnings(card, resolved.detected, resolved.given)
    return resolved


def structure_warnings(card: TaskCard, detected: TaskCard | None, given: set[str]) -> list[str]:
    """A group or time column the data shows and the card leaves out, named, with the setting that uses it."""
    if detected is None:
        return []
    out = []
    if detected.group_column and not card.group_column and "group_column" not in given:
        out.append(
            f"{card.train_file}: the values of {detected.group_column!r} repeat across rows and none is in "
            f"{card.test_file}, so they look like groups; the folds and the holdout mix them, which flatters the "
            f'metrics. Set [task] group_column = "{detected.group_column}" (or "" to keep this).'
        )
    if detected.time_column and not card.time_column and "time_column" not in given:
        out.append(
            f"{card.train_file}: the test rows of {detected.time_column!r} come after the training rows; shuffled "
            f'folds let a model see the future. Set [task] time_column = "{detected.time_column}" (or "" to keep this).'
        )
    return out


def _from_llm(ask_llm: AskLlm, offline: TaskCard | None) -> ResolvedCard:
    """The LLM's card; on any failure the offline reader's, with a notice saying why."""
    try:
        card, usage = ask_llm()
    except FatalRunError as exc:
        return ResolvedCard(offline, "derived", fatal=exc)
    except Exception as exc:  # noqa: BLE001 - a card is never worth failing the run for
        fallback = "the offline reader's card is used" if offline is not None else "no card is used"
        spent = getattr(exc, "usage", None)  # what the failed or rejected answer cost still counts
        return ResolvedCard(
            offline, "derived", f"The LLM could not state the task card ({exc}); {fallback}.", usage=spent or Usage()
        )
    return ResolvedCard(card, "llm", usage=usage)
