"""Which task card a run uses: the one it saved, else the derived one with aide.toml's corrections.

Derived means: by the LLM when one is given (it reads task.md's own words), checked
against the data, else by the offline reader.  Runs before the engine starts, so a
bad `[task]` table or a damaged saved card is a one-line error (exit 2) and nothing
has run yet.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FatalRunError, UserError
from .project import Project
from .search.node import Usage
from .search.offline.task_reader import TaskReadError, derive_task_card
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


def resolve_card(
    project: Project, data_files: list[str], settings: Settings, run_dir: Path | None, ask_llm: AskLlm | None = None
) -> ResolvedCard:
    """The run's card; `run_dir` None for a new run (nothing saved yet)."""
    saved = run_dir / "task_card.json" if run_dir is not None else None
    if saved is not None and saved.exists():
        try:
            return ResolvedCard(
                card_from_table(json.loads(saved.read_text(encoding="utf-8")), None, str(saved)), "saved"
            )
        except (ValueError, TaskCardError) as exc:
            raise UserError(f"{saved}: damaged ({exc}); delete it to derive the card again") from None
    try:
        offline: TaskCard | None = derive_task_card(project.root, data_files, project.task_text())
    except TaskReadError:
        offline = None
    resolved = ResolvedCard(offline, "derived")
    if ask_llm is not None:
        resolved = _from_llm(ask_llm, offline)
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
    return ResolvedCard(card, "aide.toml", resolved.notice, resolved.usage, resolved.fatal)


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
