"""Pull the plan and the script out of a coding reply.

The prompts ask for "a short plan, then exactly one ```python block", but a
model's reply is text, not a contract.  This module is deliberately lenient
about what it accepts (``py``/``python3`` tags, bare fences, several blocks)
and strict about what it rejects (no code, empty code, a block cut off at
`max_tokens`), because a rejected reply is cheap to retry while a half script
costs a whole execution.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PLAN_LIMIT = 2000  # characters of plan kept on the node; plans are meant to be short

_PYTHON_TAGS = {"python", "py", "python3", "py3"}
_FENCE = re.compile(r"^ {0,3}(`{3,})\s*([\w+.-]*)[^`]*$")


@dataclass
class _Block:
    lang: str  # lower-cased info string's first word ("" for a bare fence)
    code: str
    start: int  # offset of the opening fence in the reply
    closed: bool


def _blocks(reply: str) -> list[_Block]:
    """Fenced blocks in order; a fence is closed by a bare fence at least as long."""
    blocks: list[_Block] = []
    offset = 0
    current: _Block | None = None
    fence_len = 0
    lines: list[str] = []
    for line in reply.splitlines(keepends=True):
        stripped = line.rstrip("\r\n")
        if current is None:
            m = _FENCE.match(stripped)
            if m:
                fence_len = len(m.group(1))
                current = _Block(m.group(2).lower(), "", offset, False)
                lines = []
        else:
            bare = stripped.strip()
            if bare.startswith("`" * fence_len) and set(bare) == {"`"}:
                current.code = "".join(lines)
                current.closed = True
                blocks.append(current)
                current = None
            else:
                lines.append(line)
        offset += len(line)
    if current is not None:
        current.code = "".join(lines)
        blocks.append(current)
    return blocks


def _candidates(blocks: list[_Block]) -> list[_Block]:
    tagged = [b for b in blocks if b.lang in _PYTHON_TAGS]
    return tagged or [b for b in blocks if b.lang == ""]


def extract_plan_and_code(reply: str) -> tuple[str, str] | None:
    """(plan, code) from a reply, or None when it holds no usable script.

    plan: the text before the chosen block, stripped and bounded.
    code: the longest python-tagged block (bare fences only if none is tagged).
    None: no block, only empty blocks, or the final fence never closed (the
    stream was cut off, so even an earlier complete block is suspect).
    """
    blocks = _blocks(reply)
    if not blocks or not blocks[-1].closed:
        return None
    candidates = [b for b in _candidates(blocks) if b.code.strip()]
    if not candidates:
        return None
    best = max(candidates, key=lambda b: len(b.code))
    plan = reply[: best.start].strip()
    if len(plan) > PLAN_LIMIT:
        plan = plan[: PLAN_LIMIT - 1].rstrip() + "…"
    return plan, best.code.strip("\n") + "\n"


def diagnose(reply: str, stop_reason: str | None = None) -> str:
    """Say, in one sentence addressed to the model, why a reply was rejected."""
    blocks = _blocks(reply)
    if stop_reason == "max_tokens" or (blocks and not blocks[-1].closed):
        return (
            "Your reply was cut off before the code block was closed. "
            "Write a more concise script (and a shorter plan) so the whole reply fits."
        )
    if not reply.strip():
        return "Your reply was empty."
    if not blocks:
        return "Your reply contained no fenced ```python code block."
    if not _candidates(blocks):
        return "Your reply had code blocks, but none was a ```python block."
    return "The ```python block in your reply was empty."


# Stop reasons after which asking again for the same script is pointless: the node fails and says why.
_FINAL_STOPS = {
    "refusal": "the model declined to write this script (stop reason: refusal)",
    "model_context_window_exceeded": (
        "the prompt and the reply did not fit in the model's context window (stop reason: "
        "model_context_window_exceeded); lower memory_chars or preview_chars, or use a model with a larger window"
    ),
}


def final_stop(stop_reason: str | None) -> str | None:
    """Why a reply with this stop reason ends the attempt, or None when a retry may help."""
    return _FINAL_STOPS.get(stop_reason or "")
