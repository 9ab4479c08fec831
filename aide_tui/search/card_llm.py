"""The task card read by the LLM: a tool call (forced where the model allows it) over task.md, the data files and their first rows.

The offline reader guesses the card from conventions; a model reads the task's
own words ("the `date` column identifies the day").  Its answer is still only a
proposal: it must name real files and columns, and the id columns must be
unique per test row (`check_card`), or the offline reader's card is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from ..llm.models import model_spec
from ..llm.thinking import thinking_shape
from .node import Usage
from .offline.task_reader import TaskReadError, check_card
from .prompts import render_prompt
from .task_card import METRIC_KINDS, TaskCard, TaskCardError, card_from_table

CARD_MAX_TOKENS = 8192  # room for the tool call after whatever thinking the model still does

CARD_TOOL: dict[str, Any] = {
    "name": "submit_task_card",
    "description": "State the task card: train and test files, target, id columns, metric and direction, "
    "and the group column, time column and extra tables when the data has them.",
    "input_schema": {
        "type": "object",
        "properties": {
            "train_file": {"type": "string", "description": "The data file to train on, as listed."},
            "test_file": {
                "type": ["string", "null"],
                "description": "The data file to predict for, as listed; null if none.",
            },
            "target": {"type": "string", "description": "The column to predict (a column of the train file)."},
            "id_columns": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Columns that identify a test row in the submission, from the task's words and unique per "
                "test row; never chosen by the name alone; empty if none.",
            },
            "metric": {"type": "string", "enum": list(METRIC_KINDS), "description": "The evaluation metric."},
            "direction": {
                "type": "string",
                "enum": ["maximize", "minimize"],
                "description": "Which way the metric improves.",
            },
            "group_column": {
                "type": ["string", "null"],
                "description": "A column whose rows belong together (a person, firm or patient seen over several "
                "rows) when the test rows are of groups the train file lacks, or the task says to validate by it; "
                "null if none.",
            },
            "time_column": {
                "type": ["string", "null"],
                "description": "A date or period column when the test rows come after the training rows in time; "
                "null if none.",
            },
            "extra_tables": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"file": {"type": "string"}, "key": {"type": "string"}},
                    "required": ["file", "key"],
                },
                "description": "Other data files with features for the train and test rows, each with the column "
                "it joins on (a column of the train file); empty if none.",
            },
        },
        "required": ["train_file", "test_file", "target", "id_columns", "metric", "direction"],
    },
}


class ToolClient(Protocol):
    def call_tool(
        self,
        *,
        model: str,
        system: str,
        messages: list[dict],
        tool: dict,
        max_tokens: int = 1024,
        cache_ttl: str = "5m",
        thinking: dict | None = None,
        effort: str | None = None,
    ) -> tuple[dict, Usage]: ...


class CardRejected(Exception):
    """The LLM's card does not fit the data (or the call failed); the message says why, `usage` what it cost."""

    def __init__(self, message: str, usage: Usage | None = None):
        super().__init__(message)
        self.usage = usage or Usage()


def card_prompt(task: str, data_files: list[str], data_preview: str, project_dir: Path | None) -> str:
    return render_prompt(
        "task_card",
        {
            "task": task.strip(),
            "data_files": "\n".join(f"- {name}" for name in data_files) or "(none)",
            "data_preview": data_preview.strip() or "(no preview)",
        },
        project_dir,
    )


def llm_task_card(
    client: ToolClient,
    model: str,
    project_dir: Path,
    data_files: list[str],
    task: str,
    data_preview: str,
    effort: str = "low",
) -> tuple[TaskCard, Usage]:
    """The card the LLM states, checked against the data; CardRejected when it does not fit.

    Like the review, it thinks as little as the model allows, at `effort` (review_effort)."""
    prompt = card_prompt(task, data_files, data_preview, project_dir)
    shape = thinking_shape(model, "off", effort)
    data, usage = client.call_tool(
        model=model,
        system="You state machine-learning tasks precisely.",
        messages=[{"role": "user", "content": prompt}],
        tool=CARD_TOOL,
        max_tokens=min(CARD_MAX_TOKENS, model_spec(model).max_output),
        thinking=shape.thinking,
        effort=shape.effort,
    )
    try:
        card = card_from_table(
            {k: v for k, v in data.items() if k in CARD_TOOL["input_schema"]["properties"]}, None, "the LLM's task card"
        )
        check_card(project_dir, data_files, card)
    except (TaskCardError, TaskReadError) as exc:
        raise CardRejected(str(exc), usage) from None
    return card, usage
