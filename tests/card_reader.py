"""How the Messages API stand-ins answer the task card call (`submit_task_card`): by reading the prompt.

A stand-in "model" that reads what a real one would: the data file list, the columns
the data preview shows, the task's words.  Train/test by file name, the target the
column the test file lacks, an `id` or `..._id` column of the test file, the metric the task names.
"""

from __future__ import annotations

import re

from fake_api import ToolReply, last_user_text

from aide_tui.search.task_card import METRICS


def is_card_call(body: dict) -> bool:
    """Forced (`tool_choice` names it) or offered with `tool_choice: auto` (models that refuse forcing)."""
    return any(t.get("name") == "submit_task_card" for t in body.get("tools") or [])


def card_reply(body: dict, **override) -> ToolReply:
    text = last_user_text(body)
    files = re.findall(r"^- (\S+)$", text.split("# The data", 1)[0], re.M)
    columns: dict[str, list[str]] = {}
    for block in re.split(r"^(?=\./input/)", text, flags=re.M):
        m = re.match(r"\./input/(\S+) \(", block)
        if m:
            columns[m.group(1)] = re.findall(r"^  (\w+): ", block, re.M)
    train = next((f for f in files if "train" in f), files[0])
    test = next((f for f in files if "test" in f), None)
    lacking = [c for c in columns.get(train, []) if test and c not in columns.get(test, [])]
    target = lacking[0] if lacking else (columns.get(train) or ["y"])[-1]
    low = text.split("\n# Task\n", 1)[-1].split("# Data files", 1)[0].lower()
    metric, direction = next(
        ((k, d) for k, pats, d, _ in METRICS if any(re.search(p, low) for p in pats)), ("rmse", "minimize")
    )
    card = {
        "train_file": train,
        "test_file": test,
        "target": target,
        "id_columns": [c for c in columns.get(test or train, []) if c == "id" or c.endswith("_id")][:1],
        "metric": metric,
        "direction": direction,
    }
    return ToolReply("submit_task_card", {**card, **override})
