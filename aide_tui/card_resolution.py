"""Which task card a run uses: the one it saved, else the derived one with aide.toml's corrections.

Runs before the engine starts, so a bad `[task]` table or a damaged saved card
is a one-line error (exit 2) and nothing has run yet.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import UserError
from .project import Project
from .search.offline.task_reader import TaskReadError, derive_task_card
from .search.task_card import TaskCard, TaskCardError, card_from_table
from .settings import Settings


def resolve_card(project: Project, data_files: list[str], settings: Settings, run_dir: Path) -> tuple[TaskCard | None, str]:
    """(card, source); the card is None when the data is not a table and aide.toml gives no full card."""
    saved = run_dir / "task_card.json"
    if saved.exists():
        try:
            return card_from_table(json.loads(saved.read_text(encoding="utf-8")), None, str(saved)), "saved"
        except (ValueError, TaskCardError) as exc:
            raise UserError(f"{saved}: damaged ({exc}); delete it to derive the card again") from None
    try:
        derived: TaskCard | None = derive_task_card(project.root, data_files, project.task_text())
    except TaskReadError:
        derived = None
    if not settings.task_table:
        return derived, "derived"
    where = f"{project.settings_file} [task]"
    try:
        card = card_from_table(settings.task_table, derived, where)
    except TaskCardError as exc:
        raise UserError(str(exc)) from None
    for name in (card.train_file, card.test_file):
        if name is not None and name not in data_files:
            raise UserError(f"{where}: {name!r} is not a data file of the project; use a path like {data_files[0]!r}")
    return card, "aide.toml"
