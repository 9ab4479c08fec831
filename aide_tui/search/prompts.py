"""Load the prompt files and fill them in.

Prompts live as Markdown in the package (`aide_tui/prompts/`, also visible as
the top-level `prompts/` folder) so that the wording can be read and changed
without touching code.  A project can override any of them by placing a file
of the same name in `PROJECT/.aide/prompts/`.

Template syntax (kept tiny on purpose, so an override cannot do surprising
things):

- ``{{name}}`` is replaced by the value `name`.  Values are inserted in one
  pass, so a task or script that itself contains ``{{...}}`` is left alone.
- ``{{#name}} ... {{/name}}`` is a section: kept (with its placeholders
  filled) when `name` is non-empty, dropped entirely otherwise.  Sections do
  not nest.

A placeholder or section that the caller did not provide is an error naming
the file, so a typo in an override fails loudly instead of sending the model a
literal ``{{typo}}``.

``{{cache_break}}`` in improve.md and debug.md marks where the part that stays
the same for one parent node ends; `split_at_cache_break` turns the rendered
text into two message blocks there, so the client can cache the first one.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from ..errors import UserError

PROMPT_NAMES = ("system", "draft", "improve", "debug", "merge", "review_system", "review", "task_card")

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_SECTION = re.compile(r"\{\{#\s*(" + _NAME + r")\s*\}\}(.*?)\{\{/\s*\1\s*\}\}[ \t]*\n?", re.S)
_PLACEHOLDER = re.compile(r"\{\{\s*(" + _NAME + r")\s*\}\}")
_STRAY = re.compile(r"\{\{\s*[#/]\s*(" + _NAME + r")\s*\}\}")
CACHE_BREAK = "\x00cache-break\x00"  # the value of {{cache_break}}: no task or script contains it


def _override_path(name: str, project_dir: Path | None) -> Path | None:
    if project_dir is None:
        return None
    path = Path(project_dir) / ".aide" / "prompts" / f"{name}.md"
    return path if path.is_file() else None


def prompt_source(name: str, project_dir: Path | None = None) -> str:
    """Where `name` comes from, for messages: the override's path or the packaged file."""
    path = _override_path(name, project_dir)
    return str(path) if path else f"aide_tui/prompts/{name}.md"


def load_prompt(name: str, project_dir: Path | None = None) -> str:
    """The raw template: PROJECT/.aide/prompts/<name>.md if present, else the packaged one."""
    path = _override_path(name, project_dir)
    if path is not None:
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: cannot read prompt override ({exc})") from None
    packaged = resources.files("aide_tui").joinpath("prompts", f"{name}.md")
    try:
        return packaged.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"no prompt named {name!r}; known prompts: {', '.join(PROMPT_NAMES)}") from None


def render(template: str, values: dict[str, object], source: str = "prompt") -> str:
    """Fill `template`; unknown names raise UserError naming `source`."""

    def unknown(name: str) -> UserError:
        known = ", ".join("{{" + k + "}}" for k in sorted(values))
        return UserError(f"{source}: unknown placeholder {{{{{name}}}}}; available: {known}")

    def section(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in values:
            raise unknown(name)
        return m.group(2) if str(values[name] or "").strip() else ""

    text = _SECTION.sub(section, template)
    stray = _STRAY.search(text)
    if stray:
        raise UserError(
            f"{source}: section {stray.group(0)} is not closed or not opened; "
            f"write {{{{#{stray.group(1)}}}}} ... {{{{/{stray.group(1)}}}}}"
        )

    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in values:
            raise unknown(name)
        value = values[name]
        return "" if value is None else str(value)

    # Dropped sections can leave runs of blank lines; tidy the template only,
    # before filling, so values (scripts, output) are inserted untouched.
    text = re.sub(r"\n{3,}", "\n\n", text)
    return _PLACEHOLDER.sub(fill, text).strip() + "\n"


def render_prompt(name: str, values: dict[str, object], project_dir: Path | None = None) -> str:
    """Load and render prompt `name` (with the project's override, if any)."""
    return render(load_prompt(name, project_dir), values, prompt_source(name, project_dir))


def clip(text: str, limit: int, head_share: float = 0.25) -> str:
    """Bound `text` to about `limit` characters, keeping its head and (mostly) its tail.

    Tail-biased because the end of a run's output is where the error and the
    metric line are; the head keeps the first lines that set the context.
    """
    if len(text) <= limit:
        return text
    head = int(limit * head_share)
    tail = max(limit - head - 60, 0)
    cut = len(text) - head - tail
    return f"{text[:head]}\n[... {cut} characters cut ...]\n{text[len(text) - tail :]}"


def split_at_cache_break(text: str) -> str | list[dict]:
    """`text` as message content: two text blocks, the first marked as a cache
    breakpoint, when it holds CACHE_BREAK; the plain string otherwise."""
    head, found, tail = text.partition(CACHE_BREAK)
    if not found or not head.strip() or not tail.strip():
        return text.replace(CACHE_BREAK, "")
    return [
        {"type": "text", "text": head.rstrip() + "\n", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": tail.lstrip()},
    ]
