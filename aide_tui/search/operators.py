"""The coding operator (draft / improve / debug) and the review, backed by an LLM.

This is the paper's coding operator: each operation renders one user message
from `prompts/`, under a system prompt that holds everything stable for the
run (the solution contract, the task, the data preview) so the client can
cache it as a prefix.  Improve and debug messages put the parent block first
and mark its end as a second cache breakpoint: it stays the same while one
node is improved again and again, and only the memory and hint after it
change.  The reply streams out through `on_delta`; the plan and script are
extracted, and a reply without a usable script is retried with a note saying
what was wrong, because a retry costs one LLM call while a broken script costs
a whole execution.  A refusal or an overflowing context window is not retried:
the node fails and says so.

The review reads a finished run through a tool call (`submit_review`), forced
where the model allows it, so the metric comes back as structured data, not
prose to be parsed.  How each call asks for thinking and effort comes from the
model table (`llm/models.py`, `llm/thinking.py`): coding calls use the
`thinking` setting and the operation's effort; the review and the task card
think as little as the model allows, at `review_effort`.  A reply cut off
while thinking is asked again one effort level lower (or with a larger
`max_tokens` once effort is at its lowest), and says so.  The engine
still applies the hard rules afterwards (crash, timeout, missing or non-finite
metric => buggy; direction fixed once per run); this module only turns the
model's answer into a `Review` without second-guessing it.

Errors from the client are not caught here: authentication failures and
cancellation must reach the engine unchanged.
"""

from __future__ import annotations

import logging
import math
import threading
from pathlib import Path
from typing import Any, Protocol

from ..errors import FatalRunError
from ..llm.models import model_spec
from ..llm.thinking import ThinkingShape, lower_effort, thinking_shape
from ..settings import Settings
from .card_llm import ToolClient
from .coder import CoderError, DeltaSink, Proposal, Review, TaskContext
from .extract import diagnose, extract_plan_and_code, final_stop
from .node import Direction, ExecInfo, Node, Usage
from .patch import PatchError, read_patch_reply
from .prompts import CACHE_BREAK, clip, render_prompt, split_at_cache_break
from .task_card import card_for_prompt

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # one reply plus two corrective follow-ups
MAX_CONTINUATIONS = 2  # `pause_turn` replies resumed before the reply counts as cut off
LONG_TTL_AFTER_SECONDS = 240  # scripts that may run longer outlive the 5-minute cache between two calls
DEBUG_OUTPUT_CHARS = 6000  # output excerpt shown to the debugger
TRACEBACK_CHARS = 3000
REVIEW_OUTPUT_CHARS = 8000  # output excerpt shown to the reviewer
REVIEW_MAX_TOKENS = 8192  # room for the tool call after whatever thinking the model still does

REVIEW_TOOL: dict[str, Any] = {
    "name": "submit_review",
    "description": "Report whether a solution run is a valid result, and the validation metric it printed.",
    "input_schema": {
        "type": "object",
        "properties": {
            "is_bug": {
                "type": "boolean",
                "description": "True if the run crashed, was killed, printed no valid metric, or its result cannot be trusted.",
            },
            "metric": {
                "type": ["number", "null"],
                "description": "The number on the 'Validation metric:' line; null if absent or not a number.",
            },
            "summary": {
                "type": "string",
                "description": "Two or three sentences: the approach, the outcome, and for a failure its precise cause.",
            },
            "lower_is_better": {
                "type": "boolean",
                "description": "True if lower values of this metric are better (losses, errors).",
            },
        },
        "required": ["is_bug", "metric", "summary", "lower_is_better"],
    },
}


class LlmReplyLike(Protocol):
    text: str
    usage: Usage
    stop_reason: str | None
    refusal_category: str | None
    max_tokens: int
    thinking_blocks: int


class LlmClientLike(ToolClient, Protocol):
    """The two calls of `aide_tui.llm.client.LlmClient` this module relies on (`call_tool` as the card reader's)."""

    def stream_text(
        self,
        *,
        model: str,
        system: str,
        messages: list[dict],
        max_tokens: int,
        on_delta: DeltaSink,
        cancel: threading.Event | None = None,
        cache_ttl: str = "5m",
        thinking: dict | None = None,
        effort: str | None = None,
    ) -> LlmReplyLike: ...


# ----------------------------------------------------------------- formatting


def format_timeout(seconds: float) -> str:
    """'600 seconds (10 minutes)': the model plans better with both units."""
    secs = int(round(seconds))
    if secs >= 120:
        mins = seconds / 60
        return (
            f"{secs} seconds ({mins:.0f} minutes)"
            if mins.is_integer()
            else f"{secs} seconds (about {mins:.1f} minutes)"
        )
    return f"{secs} seconds"


def format_metric(value: float | None) -> str:
    return "none" if value is None else f"{value:.6g}"


def describe_exit(info: ExecInfo) -> str:
    """One or two lines on how a run ended, for the debug and review prompts."""
    if info.killed_reason:
        reason = info.killed_reason
        if reason == "timeout":
            reason = "the time limit was reached"
        text = f"Killed after {info.wall_time:.1f} s: {reason}."
    elif info.exit_code is None:
        text = "The process did not report an exit code."
    elif info.exit_code == 0:
        text = f"Exited normally (exit code 0) after {info.wall_time:.1f} s."
    else:
        text = f"Exited with code {info.exit_code} after {info.wall_time:.1f} s."
    if info.exc_type:
        text += f" Uncaught exception: {info.exc_type}."
    if info.output_truncated_bytes:
        text += f" ({info.output_truncated_bytes} bytes of output were cut from the middle when captured.)"
    return text


def _append_text(content: str | list[dict], note: str) -> str | list[dict]:
    """`content` (a string or text blocks) with `note` added at the end."""
    if isinstance(content, str):
        return f"{content}\n\n{note}"
    return [*content[:-1], {**content[-1], "text": f"{content[-1]['text']}\n\n{note}"}]


def parse_metric(value: Any) -> float | None:
    """A finite float from a number or numeric string; anything else is None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _parse_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "yes", "1"):
            return True
        if lowered in ("false", "no", "0"):
            return False
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    return None


def parse_review(data: dict[str, Any], usage: Usage) -> Review:
    """Turn `submit_review` input into a Review, tolerating loosely typed fields.

    A missing or unreadable `is_bug` counts as a bug (an unverifiable result
    must not be ranked); a missing `lower_is_better` leaves the direction
    unknown rather than guessing.
    """
    data = data if isinstance(data, dict) else {}
    is_bug = _parse_bool(data.get("is_bug"))
    lower = _parse_bool(data.get("lower_is_better"))
    summary = data.get("summary")
    summary = summary.strip() if isinstance(summary, str) else ("" if summary is None else str(summary))
    direction: Direction | None = None if lower is None else ("minimize" if lower else "maximize")
    return Review(
        is_bug=True if is_bug is None else is_bug,
        metric=parse_metric(data.get("metric")),
        summary=summary,
        direction=direction,
        usage=usage,
    )


def machine_values(ctx: TaskContext) -> dict[str, str]:
    """The machine a script runs on, as the system prompts state it (stable for the run)."""
    if ctx.memory_mb:
        memory = (
            f"about {ctx.memory_mb / 1024:.1f} GB ({ctx.memory_mb} MB) for the script and every process it "
            "starts; above that the run is killed"
        )
    else:
        memory = "not capped by aide-tui; the machine's memory is shared with other work"
    if ctx.gpus >= 1:
        count = int(ctx.gpus)
        gpu = f"{count} NVIDIA GPU{'s' if count != 1 else ''} (CUDA) visible to the script"
    elif ctx.gpus > 0:
        gpu = "a share of one NVIDIA GPU (CUDA)"
    else:
        gpu = "none"
    return {
        "packages": ctx.packages
        or "they could not be listed (the interpreter did not answer); numpy, pandas and "
        "scikit-learn are usually there",
        "cpus": f"{ctx.cpus} core" + ("s" if ctx.cpus != 1 else ""),
        "memory": memory,
        "gpu": gpu,
        "has_gpu": "yes" if ctx.gpus > 0 else "",
        "no_gpu": "" if ctx.gpus > 0 else "yes",
        "timeout": format_timeout(ctx.timeout),
        "network": "the network is reachable, but rely on what is installed and on the data given"
        if ctx.network
        else "there is no network access",
    }


def cache_ttl_for(script_timeout: float) -> str:
    """'1h' when a script may run past the 5-minute cache lifetime, else '5m': the next
    call comes after the script has run, and an expired prefix is paid for again."""
    return "1h" if script_timeout > LONG_TTL_AFTER_SECONDS else "5m"


def cut_off_by_thinking(reply: LlmReplyLike) -> bool:
    """A `max_tokens` stop where thinking, not the script, used the room (at least half of the reply)."""
    thinking = reply.usage.thinking_tokens
    if thinking == 0:
        return bool(getattr(reply, "thinking_blocks", 0)) and not reply.text.strip()
    return thinking * 2 >= reply.usage.output_tokens


def refusal_outcome(category: str | None) -> str:
    """The status word of a refused reply: 'refused (cyber)', or 'refused' without a category."""
    return f"refused ({category})" if category else "refused"


def rewrite_request(problem: str) -> str:
    """The follow-up when a reply's edits do not apply: the whole script, this once."""
    return (
        f"Your edits could not be applied: {problem}. Reply again with the same change as a short plan followed "
        "by the complete modified script in one ```python block (all of it, not edits), and nothing after it."
    )


# ------------------------------------------------------------------- operator


class LlmCoder:
    """The Coder that asks an LLM to write, improve, fix and review scripts."""

    name = "llm"
    thread_safe = True  # no state between calls: several nodes may ask at once

    def __init__(
        self,
        client: LlmClientLike,
        settings: Settings,
        project_dir: Path | None = None,
        cancel: threading.Event | None = None,
    ):
        self.client = client
        self.settings = settings
        self.project_dir = Path(project_dir) if project_dir is not None else None
        self.cancel = cancel
        self._said: set[str] = set()  # notes about the request shape, said once per run

    # -- prompts
    def _render(self, name: str, values: dict[str, object]) -> str:
        return render_prompt(name, values, self.project_dir)

    def system_prompt(self, ctx: TaskContext) -> str:
        """Stable for the whole run (no memory, no hint) so it caches as a prefix."""
        return self._render(
            "system",
            {
                "task": ctx.task.strip(),
                "data_preview": ctx.data_preview.strip() or "(no data files were listed)",
                **machine_values(ctx),
                "n_jobs": ctx.cpus,
                "folds_file": ctx.folds_file,
                "folds_train": ctx.folds_train,
                "task_card": card_for_prompt(ctx.card) if ctx.card is not None else "",
                "patch": "yes" if self.patching else "",
                "rewrite": "" if self.patching else "yes",
            },
        )

    def _common(self, ctx: TaskContext) -> dict[str, object]:
        patch = self.patching
        return {
            "memory": ctx.memory.strip() or "Nothing has been tried yet.",
            "hint": (ctx.hint or "").strip(),
            "patch": "yes" if patch else "",  # improve/debug reply with search/replace blocks
            "rewrite": "" if patch else "yes",  # ...or with the whole script
        }

    @property
    def patching(self) -> bool:
        """Improve and debug ask for search/replace edits (`edit = "patch"`), not the whole script."""
        return getattr(self.settings, "edit", "rewrite") == "patch"

    def draft_message(self, ctx: TaskContext) -> str:
        return self._render("draft", self._common(ctx))

    def improve_message(self, ctx: TaskContext, parent: Node) -> str | list[dict]:
        direction = {"maximize": " (higher is better)", "minimize": " (lower is better)"}.get(ctx.direction or "", "")
        return split_at_cache_break(
            self._render(
                "improve",
                {
                    **self._common(ctx),
                    "cache_break": CACHE_BREAK,
                    "parent_id": parent.id,
                    "parent_plan": parent.plan.strip() or "(no plan recorded)",
                    "parent_code": parent.code.rstrip("\n"),
                    "metric": format_metric(parent.metric),
                    "direction": direction,
                    "review_summary": parent.review_summary.strip() or "(no review recorded)",
                    "siblings": "\n".join(f"- {plan}" for plan in ctx.siblings),
                },
            )
        )

    def merge_message(self, ctx: TaskContext, parent: Node, other: Node) -> str | list[dict]:
        direction = {"maximize": " (higher is better)", "minimize": " (lower is better)"}.get(ctx.direction or "", "")
        return split_at_cache_break(
            self._render(
                "merge",
                {
                    **self._common(ctx),
                    "cache_break": CACHE_BREAK,
                    "parent_id": parent.id,
                    "parent_plan": parent.plan.strip() or "(no plan recorded)",
                    "parent_code": parent.code.rstrip("\n"),
                    "metric": format_metric(parent.metric),
                    "direction": direction,
                    "other_id": other.id,
                    "other_plan": other.plan.strip() or "(no plan recorded)",
                    "other_code": other.code.rstrip("\n"),
                    "other_metric": format_metric(other.metric),
                },
            )
        )

    def debug_message(self, ctx: TaskContext, parent: Node) -> str | list[dict]:
        output = clip(parent.output.rstrip(), DEBUG_OUTPUT_CHARS) or "(the script printed nothing)"
        traceback = (parent.exec.traceback or "").strip()
        if traceback and traceback[-200:] in output:
            traceback = ""  # already visible in the output excerpt; don't pay for it twice
        return split_at_cache_break(
            self._render(
                "debug",
                {
                    **self._common(ctx),
                    "cache_break": CACHE_BREAK,
                    "parent_id": parent.id,
                    "parent_code": parent.code.rstrip("\n"),
                    "exit_status": describe_exit(parent.exec),
                    "output": output,
                    "traceback": clip(traceback, TRACEBACK_CHARS),
                    "review_summary": parent.review_summary.strip() or "(no review recorded)",
                },
            )
        )

    # -- the coding operator
    def draft(self, ctx: TaskContext, on_delta: DeltaSink) -> Proposal:
        return self._propose(ctx, self.draft_message(ctx), on_delta, "draft")

    def improve(self, ctx: TaskContext, parent: Node, on_delta: DeltaSink) -> Proposal:
        base = parent.code if self.patching else None
        return self._propose(ctx, self.improve_message(ctx, parent), on_delta, "improve", base=base)

    def debug(self, ctx: TaskContext, parent: Node, on_delta: DeltaSink) -> Proposal:
        base = parent.code if self.patching else None
        return self._propose(ctx, self.debug_message(ctx, parent), on_delta, "debug", base=base)

    def merge(self, ctx: TaskContext, parent: Node, other: Node, on_delta: DeltaSink) -> Proposal:
        """Two scripts in, one out: a merge is written whole (it is not an edit of one parent)."""
        return self._propose(ctx, self.merge_message(ctx, parent, other), on_delta, "merge")

    def _shape(self, operation: str) -> ThinkingShape:
        """Thinking and effort of one coding call: the `effort` override, else the operation's own."""
        effort = self.settings.effort or getattr(self.settings, f"{operation}_effort", "")
        return thinking_shape(self.settings.code_model, self.settings.thinking, effort)

    def _say_once(self, note: str, on_delta: DeltaSink) -> None:
        if note and note not in self._said:
            self._said.add(note)
            log.info("%s", note)
            on_delta(f"[{note}]\n\n")

    def _propose(
        self,
        ctx: TaskContext,
        user: str | list[dict],
        on_delta: DeltaSink,
        operation: str = "draft",
        base: str | None = None,
    ) -> Proposal:
        """`base`: the parent's script when the reply may be search/replace edits against it (patch mode)."""
        system = self.system_prompt(ctx)
        messages: list[dict[str, Any]] = [{"role": "user", "content": user}]
        shape = self._shape(operation)
        self._say_once(shape.note, on_delta)
        spec = model_spec(self.settings.code_model)
        max_tokens = min(self.settings.max_tokens, spec.max_output)
        total = Usage()
        problem = outcome = note = ""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            reply = self._ask(ctx, system, messages, on_delta, shape, max_tokens)
            total = total + reply.usage
            stopped = final_stop(reply.stop_reason)
            if reply.stop_reason == "refusal":
                category = getattr(reply, "refusal_category", None)
                raise CoderError(f"{stopped} (category: {category or 'none given'})", total, refusal_outcome(category))
            if stopped:
                raise CoderError(stopped, usage=total, outcome="cut off (context window)")
            if base is not None and not note:
                try:
                    patched = read_patch_reply(reply.text, base)
                except PatchError as exc:  # ask for the whole script instead, and say so on the node
                    note = f"the patch did not apply ({exc}); the model wrote the whole script instead"
                    if attempt == MAX_ATTEMPTS:
                        raise CoderError(f"the patch did not apply: {exc}", usage=total) from exc
                    on_delta(f"\n\n[{note}]\n\n")
                    messages += [
                        {"role": "assistant", "content": reply.text.rstrip() or "(no reply)"},
                        {"role": "user", "content": rewrite_request(str(exc))},
                    ]
                    continue
                if patched is not None:
                    return Proposal(plan=patched.plan, code=patched.code, usage=total)
            found = extract_plan_and_code(reply.text)
            if found is not None:
                plan, code = found
                return Proposal(plan=plan, code=code, usage=total, note=note)
            retry_note = ""
            if reply.stop_reason == "max_tokens" and cut_off_by_thinking(reply):
                outcome = "cut off (thinking)"
                problem = (
                    f"Thinking used {reply.usage.thinking_tokens:,} of the {max_tokens:,} tokens the reply may have, "
                    "leaving no room for the script."
                )
                shape, max_tokens, retry_note = self._more_room(shape, max_tokens, spec.default_effort, spec.max_output)
                correction = "Your reply ran out of room while thinking. Think briefly, then write the script."
            else:
                outcome = "cut off (length)" if reply.stop_reason == "max_tokens" else "no code"
                problem = diagnose(reply.text, reply.stop_reason)
                correction = problem
            if attempt == MAX_ATTEMPTS:
                break
            on_delta(
                f"\n\n[no usable script in the reply: {problem}{retry_note} "
                f"Asking again ({attempt + 1}/{MAX_ATTEMPTS}).]\n\n"
            )
            correction = (
                f"{correction} Reply again with a short plan followed by exactly one complete "
                "```python code block holding the whole script, and nothing after it."
            )
            if reply.text.strip():
                messages += [{"role": "assistant", "content": reply.text}, {"role": "user", "content": correction}]
            else:  # an empty assistant turn is not allowed; fold the note into the request
                messages[-1] = {"role": "user", "content": _append_text(messages[-1]["content"], correction)}
        raise CoderError(f"no usable script after {MAX_ATTEMPTS} attempts: {problem}", usage=total, outcome=outcome)

    @staticmethod
    def _more_room(
        shape: ThinkingShape, max_tokens: int, default_effort: str | None, ceiling: int
    ) -> tuple[ThinkingShape, int, str]:
        """After a reply cut off by thinking: think less (one effort level down) while it can,
        else allow a longer reply; the note says which, for the user."""
        if shape.thinks and shape.effort != "low" and (shape.effort or default_effort):
            lower = lower_effort(shape.effort, default_effort)
            if lower is not None:
                return ThinkingShape(shape.thinking, lower), max_tokens, f" Lowering effort to {lower}."
        if max_tokens < ceiling:
            raised = min(ceiling, max_tokens * 2)
            return shape, raised, f" Raising max_tokens to {raised:,}."
        return shape, max_tokens, ""

    def _ask(
        self,
        ctx: TaskContext,
        system: str,
        messages: list[dict],
        on_delta: DeltaSink,
        shape: ThinkingShape,
        max_tokens: int,
    ) -> LlmReplyLike:
        """One reply; a `pause_turn` reply is resumed by sending it back as the assistant's turn
        (on models that take a request ending with the assistant's turn; elsewhere it stands)."""
        continuations = MAX_CONTINUATIONS if model_spec(self.settings.code_model).prefill else 0
        text, usage = "", Usage()
        reply: LlmReplyLike | None = None
        for _ in range(continuations + 1):
            partial = [{"role": "assistant", "content": text.rstrip()}] if text.strip() else []
            reply = self.client.stream_text(
                model=self.settings.code_model,
                system=system,
                messages=[dict(m) for m in messages] + partial,
                max_tokens=max_tokens,
                on_delta=on_delta,
                cancel=self.cancel,
                cache_ttl=cache_ttl_for(ctx.timeout),
                thinking=shape.thinking,
                effort=shape.effort,
            )
            text = (text.rstrip() if partial else text) + reply.text
            usage = usage + reply.usage
            if reply.stop_reason != "pause_turn":
                break
        assert reply is not None
        return _Combined(text, usage, reply)

    # -- the review
    def review_messages(self, ctx: TaskContext, node: Node) -> tuple[str, str]:
        """(system, user) for the review of `node`."""
        direction = {"maximize": "higher values are better", "minimize": "lower values are better"}.get(
            ctx.direction or "", ""
        )
        # Everything stable for the run goes in the system prompt, so the reviewer's
        # prefix is as large as the content allows (a model caches nothing below its minimum).
        system = self._render(
            "review_system",
            {
                "task": ctx.task.strip(),
                "data_preview": ctx.data_preview.strip() or "(no data files were listed)",
                **machine_values(ctx),
            },
        )
        user = self._render(
            "review",
            {
                "code": node.code.rstrip("\n"),
                "exit_status": describe_exit(node.exec),
                "output": clip(node.output.rstrip(), REVIEW_OUTPUT_CHARS) or "(the script printed nothing)",
                "outputs": ", ".join(node.exec.outputs[:50]) or "(none)",
                "direction": direction,
            },
        )
        return system, user

    def review(self, ctx: TaskContext, node: Node) -> Review:
        """One review, asked again once if the call fails (after the client's own retries) or
        comes back without the tool call; a second failure reaches the engine, where the
        printed metric line decides alone.  Credentials, a configuration the model refuses
        and cancellation are never retried.  The first attempt's tokens count either way."""
        system, user = self.review_messages(ctx, node)
        try:
            return self._review_once(ctx, system, user)
        except FatalRunError:
            raise
        except Exception as exc:
            if self.cancel is not None and self.cancel.is_set():
                raise
            spent: Usage = getattr(exc, "usage", None) or Usage()
            log.warning("review of node %d failed (%s); asking once more", node.id, exc)
        try:
            review = self._review_once(ctx, system, user)
        except Exception as exc:
            if hasattr(exc, "usage"):
                exc.usage = spent + exc.usage
            raise
        review.usage = spent + review.usage
        return review

    def _review_once(self, ctx: TaskContext, system: str, user: str) -> Review:
        model = self.settings.feedback_model
        shape = thinking_shape(model, "off", self.settings.review_effort)
        data, usage = self.client.call_tool(
            model=model,
            system=system,
            messages=[{"role": "user", "content": user}],
            tool=REVIEW_TOOL,
            max_tokens=min(REVIEW_MAX_TOKENS, model_spec(model).max_output),
            cache_ttl=cache_ttl_for(ctx.timeout),
            thinking=shape.thinking,
            effort=shape.effort,
        )
        return parse_review(data, usage)


class _Combined:
    """One reply assembled from its `pause_turn` continuations (text and usage summed)."""

    def __init__(self, text: str, usage: Usage, last: LlmReplyLike):
        self.text, self.usage = text, usage
        self.stop_reason = last.stop_reason
        self.refusal_category: str | None = getattr(last, "refusal_category", None)
        self.max_tokens: int = getattr(last, "max_tokens", 0)
        self.thinking_blocks: int = getattr(last, "thinking_blocks", 0)
