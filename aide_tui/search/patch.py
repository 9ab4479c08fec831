"""Patch edits: the model answers an improve or debug with search/replace blocks, not a whole script.

Output tokens are most of a run's bill, and an improve changes a few lines of a script of a few
hundred: writing the whole script again pays for every unchanged line.  A reply in patch form is

    <plan: the one change and why>

    <<<<<<< SEARCH
    lines copied exactly from the parent's script
    =======
    the lines that replace them
    >>>>>>> REPLACE

with one block per place that changes.  Each SEARCH text must occur once in the script; it is
found exactly, else line by line ignoring trailing whitespace, else ignoring indentation (the
replacement is then shifted by the same amount).  Blocks apply in order, each to the result of the
ones before.  A block that matches nowhere or in several places is a `PatchError` saying which
and why, so the coder can ask for the whole script instead.  The node keeps the full patched
script; its diff against the parent is what the model changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .extract import PLAN_LIMIT

_SEARCH = re.compile(r"^\s*<{5,9}\s*SEARCH\s*$")
_DIVIDER = re.compile(r"^\s*={5,9}\s*$")
_REPLACE = re.compile(r"^\s*>{5,9}\s*REPLACE\s*$")
_FENCE = re.compile(r"^\s*`{3,}[\w+.-]*\s*$")


@dataclass(frozen=True)
class Edit:
    search: str
    replace: str


class PatchError(ValueError):
    """The edits do not apply to the script; the message says which one and why."""


def has_edits(reply: str) -> bool:
    return any(_SEARCH.match(line) for line in reply.splitlines())


def parse_edits(reply: str) -> tuple[str, list[Edit]]:
    """(plan, edits) from a reply: the plan is the text before the first block (fences dropped).

    An unfinished block (cut off, or a SEARCH without its divider or REPLACE) is a PatchError."""
    lines = reply.splitlines(keepends=True)
    plan_lines: list[str] = []
    edits: list[Edit] = []
    i = 0
    while i < len(lines):
        if not _SEARCH.match(lines[i]):
            if not edits:
                plan_lines.append(lines[i])
            i += 1
            continue
        search: list[str] = []
        replace: list[str] = []
        i += 1
        while i < len(lines) and not _DIVIDER.match(lines[i]):
            search.append(lines[i])
            i += 1
        if i == len(lines):
            raise PatchError(f"edit {len(edits) + 1} has no ======= line after its SEARCH text")
        i += 1
        while i < len(lines) and not _REPLACE.match(lines[i]):
            replace.append(lines[i])
            i += 1
        if i == len(lines):
            raise PatchError(f"edit {len(edits) + 1} has no >>>>>>> REPLACE line (the reply may have been cut off)")
        i += 1
        edits.append(Edit("".join(search), "".join(replace)))
    while plan_lines and (_FENCE.match(plan_lines[-1]) or not plan_lines[-1].strip()):
        plan_lines.pop()  # the fence opening the first block
    plan = "".join(plan_lines).strip()
    if len(plan) > PLAN_LIMIT:
        plan = plan[: PLAN_LIMIT - 1].rstrip() + "…"
    return plan, edits


def apply_edits(code: str, edits: list[Edit]) -> str:
    """`code` with every edit applied in order, or a PatchError naming the first that does not apply."""
    for number, edit in enumerate(edits, 1):
        code = _apply_one(code, edit, f"edit {number} of {len(edits)}")
    return code


def _apply_one(code: str, edit: Edit, which: str) -> str:
    if not edit.search.strip():
        raise PatchError(f"{which} has an empty SEARCH text; copy the lines to change from the script")
    search = edit.search if edit.search.endswith("\n") else edit.search + "\n"
    replace = edit.replace if (edit.replace.endswith("\n") or not edit.replace) else edit.replace + "\n"
    text = code if code.endswith("\n") else code + "\n"
    count = text.count(search)
    if count == 1:
        return text.replace(search, replace, 1)
    if count > 1:
        raise PatchError(f"{which}: its SEARCH text occurs {count} times; include more lines so it is unique")
    return _apply_loosely(text, search, replace, which)


def _apply_loosely(code: str, search: str, replace: str, which: str) -> str:
    """Match line by line: first ignoring trailing whitespace, then indentation too."""
    lines = code.splitlines(keepends=True)
    wanted = _trim_blank_edges(search.splitlines())
    if not wanted:
        raise PatchError(f"{which} has an empty SEARCH text")
    for key in (str.rstrip, str.strip):
        target = [key(w) for w in wanted]
        keyed = [key(line.rstrip("\n")) for line in lines]
        hits = [i for i in range(len(lines) - len(target) + 1) if keyed[i : i + len(target)] == target]
        if len(hits) > 1:
            raise PatchError(f"{which}: its SEARCH text matches {len(hits)} places; include more lines so it is unique")
        if hits:
            start = hits[0]
            found = lines[start : start + len(target)]
            new = _reindent(replace, _indent(found), _indent(wanted)) if key is str.strip else replace
            return "".join(lines[:start]) + new + "".join(lines[start + len(target) :])
    raise PatchError(f"{which}: its SEARCH text is not in the script (copy the lines exactly as they are)")


def _trim_blank_edges(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def _indent(lines: list[str]) -> str:
    first = next((line for line in lines if line.strip()), "")
    return first[: len(first) - len(first.lstrip())]


def _reindent(text: str, have: str, had: str) -> str:
    """Shift `text` from the SEARCH text's indentation (`had`) to the script's (`have`)."""
    if have == had:
        return text
    out = []
    for line in text.splitlines(keepends=True):
        if line.strip() and line.startswith(had):
            line = have + line[len(had) :]
        elif line.strip() and not had:
            line = have + line
        out.append(line)
    return "".join(out)


@dataclass(frozen=True)
class PatchedReply:
    plan: str
    code: str


def read_patch_reply(reply: str, base: str) -> PatchedReply | None:
    """The plan and the patched script from a reply in patch form; None when it holds no edits.

    Raises PatchError when edits are there but do not apply."""
    if not has_edits(reply):
        return None
    plan, edits = parse_edits(reply)
    if not edits:
        return None
    code = apply_edits(base, edits)
    if code == (base if base.endswith("\n") else base + "\n"):
        raise PatchError("the edits leave the script unchanged")
    return PatchedReply(plan, code)
