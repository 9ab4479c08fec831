"""Stop a run that the model keeps refusing, instead of spending every step on refusals;
and say once when a model is not in the model table.

A refusal (`stop_reason: "refusal"`) is the service's safety classifier declining
the request; there is no server-side fallback, and the same task, data preview
and prompts are sent again at the next step, so a run whose task reads as
harmful would refuse until its steps run out and still exit 0.  After
`max_refusals` refused nodes in a row the run stops with a message saying what
to change.
"""

from __future__ import annotations

import threading

from ..llm.models import unknown_model_notice
from ..settings import Settings
from .node import Node

__all__ = ["RefusalStreak", "model_notices"]


def model_notices(settings: Settings) -> list[str]:
    """One line per model id the model table does not know (said once, at the start of a run)."""
    models = dict.fromkeys([settings.code_model, settings.feedback_model])
    return [note for model in models if (note := unknown_model_notice(model))]


class RefusalStreak:
    """Counts refused nodes in a row (in the order they finish); any other node resets the count."""

    def __init__(self, limit: int):
        self.limit = limit  # 0: never stop
        self.count = 0
        self._lock = threading.Lock()

    def observe(self, node: Node) -> str | None:
        """The message to stop the run with, once `limit` refusals came in a row; else None."""
        with self._lock:
            self.count = self.count + 1 if node.coder_outcome.startswith("refused") else 0
            if not self.limit or self.count < self.limit:
                return None
            return (
                f"the model refused {self.count} replies in a row (the last: node #{node.id}, "
                f"{node.coder_outcome}); the run stopped. Reword task.md or add a hint so the request reads as "
                "the ML task it is, or raise max_refusals; then resume"
            )
