"""The one place that talks to Anthropic: streaming text, forced tool calls, usage.

Why a wrapper: the engine needs three things the raw SDK does not give in one
shape -- (1) text deltas pushed to a callback so the UI can show code as it is
written, with cancellation that actually stops the HTTP stream; (2) token
usage *and dollars* per call for the budget; (3) failures reduced to three
outcomes the engine can act on: `LlmAuthError` (stop the run now),
`LlmError` (this step failed, one clear line), `LlmCancelled` (the user asked).

Retries and timeouts are the SDK's own (`max_retries`, `timeout`): it already
retries 408/409/429/5xx/529 and connection errors with exponential backoff and
honours `retry-after`/`retry-after-ms`; hand-written backoff would only fight
it.  Nothing retries forever: after `max_retries` the SDK raises and we map it.

Prompt caching: the stable system prompt is sent as a text block marked
`cache_control`, and callers may mark further breakpoints on message blocks
(the operators mark the end of the parent block); every marker gets the
caller's TTL ('1h' when scripts outlive the 5-minute cache).  A prompt whose
marked prefix is below the model's minimum is cached by nobody and reported by
nobody, so it is noted in engine.log (at INFO, so never on the terminal) once
per model and system prompt.  `messages.create` in anthropic 2.x has no
`temperature`, so none is sent; `thinking` and `output_config.effort` are sent
only when asked for.

What a model accepts comes from the model table (`models.py`): the review and
the task card force their tool call where the model allows it, and elsewhere
ask with `tool_choice: auto` and an instruction, once more if no call came
back.  A 400 that names a parameter the model refuses will repeat on every
call, so it is `LlmConfigError` (a `RunError` of kind `config`) naming the
setting and the fix, not a per-node failure.  Every reply, used or not, has
its tokens and dollars in the `usage` it returns or the `LlmError` it raises.

Only `aide_tui/llm/` imports anthropic (see DESIGN.md boundaries).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2

from ..errors import FatalRunError
from ..search.node import Usage
from .caching import cache_control, estimate_tokens, min_cache_tokens
from .models import model_spec
from .pricing import with_cost

log = logging.getLogger(__name__)

__all__ = [
    "LlmReply",
    "LlmError",
    "LlmAuthError",
    "LlmConfigError",
    "LlmCancelled",
    "LlmClient",
    "usage_from_sdk",
    "TOOL_INSTRUCTION",
]

# Appended to the request where forced tool choice is refused: the tool is offered, the text asks for it.
TOOL_INSTRUCTION = "Answer only by calling the `{name}` tool, exactly once; write nothing else."
TOOL_REMINDER = "You did not call the `{name}` tool. Call it now with your answer; write nothing else."


@dataclass
class LlmReply:
    text: str
    usage: Usage  # tokens of this one call (thinking included), cost filled from pricing
    stop_reason: str | None
    refusal_category: str | None = None  # `stop_details.category` of a refusal (None: none given)
    max_tokens: int = 0  # the request's limit, to tell a reply cut off by thinking from a long one
    thinking_blocks: int = 0  # thinking blocks in the reply (their text is omitted by default)


class LlmError(Exception):
    """The LLM call failed (after the SDK's retries, or for a non-retryable reason).

    The message is one line naming the status/cause; the engine records it on
    the step and moves on.  `usage` holds what the replies that did come back
    cost (a review that answered in text, a cut-off reply), so it is still counted.
    """

    def __init__(self, message: str, usage: Usage | None = None):
        super().__init__(message)
        self.usage = usage or Usage()


class LlmConfigError(FatalRunError):
    """The model refuses the request's shape (a 400 that every call would get): stop and name the fix."""

    def __init__(self, message: str):
        super().__init__(message, kind="config")


# (words in a 400's message, the setting behind that part of the request, the fix) -- first match wins.
_CONFIG_FIXES = [
    ("budget", "thinking", "set thinking = auto or adaptive and choose the depth with the *_effort settings"),
    ("thinking", "thinking", "set thinking = auto (the model's own default)"),
    ("effort", "*_effort", "set draft_effort / improve_effort / debug_effort / review_effort to low, medium or high"),
    (
        "tool_choice",
        "feedback_model",
        "use a feedback model that takes forced tool choice (e.g. claude-haiku-5-5) and report the model to aide-tui",
    ),
    ("temperature", "code_model / feedback_model", "choose another model and report this one to aide-tui"),
    ("top_p", "code_model / feedback_model", "choose another model and report this one to aide-tui"),
    ("top_k", "code_model / feedback_model", "choose another model and report this one to aide-tui"),
    ("prefill", "code_model / feedback_model", "choose another model and report this one to aide-tui"),
]


class LlmAuthError(FatalRunError):
    """The API refused our credentials (401/403) or none were found: retrying is futile, stop the run."""

    def __init__(self, message: str):
        super().__init__(message, kind="auth")


class LlmCancelled(Exception):
    """The caller set the cancel event while the call was in flight."""


class _CallbackFailed(Exception):
    """Carries an exception raised by `on_delta` past the SDK error mapping."""

    def __init__(self, original: Exception):
        super().__init__(str(original))
        self.original = original


def _one_line(text: object, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _is_thinking(block: Any) -> bool:
    return getattr(block, "type", None) in ("thinking", "redacted_thinking")


def _refusal_category(message: Any) -> str | None:
    details = getattr(message, "stop_details", None)
    return getattr(details, "category", None) if details is not None else None


def _with_instruction(messages: list[dict], note: str) -> list[dict]:
    """`messages` with `note` added to the end of the last user turn."""
    last = dict(messages[-1])
    content = last.get("content")
    if isinstance(content, list):
        last["content"] = [*content, {"type": "text", "text": note}]
    else:
        last["content"] = f"{content}\n\n{note}"
    return [*messages[:-1], last]


def _with_ttl(message: dict, marker: dict) -> dict:
    """A copy of `message` whose cache breakpoints carry `marker` (the caller's TTL)."""
    content = message.get("content")
    if not isinstance(content, list):
        return dict(message)
    blocks = [dict(b, cache_control=marker) if isinstance(b, dict) and b.get("cache_control") else b for b in content]
    return {**message, "content": blocks}


def usage_from_sdk(model: str, usage: Any, content: Any = ()) -> Usage:
    """Our `Usage` (with cost) from an SDK `Usage` object of one call.

    Thinking tokens come from `output_tokens_details`; without it, a reply with
    thinking blocks counts as thinking whatever its text does not account for.
    """
    output = int(getattr(usage, "output_tokens", 0) or 0)
    details = getattr(usage, "output_tokens_details", None)
    thinking = int(getattr(details, "thinking_tokens", 0) or 0)
    if details is None and any(_is_thinking(b) for b in content):
        text = "".join(str(getattr(b, "text", "") or "") for b in content if getattr(b, "type", None) == "text")
        thinking = max(0, output - estimate_tokens(text))
    u = Usage(
        input_tokens=int(getattr(usage, "input_tokens", 0) or 0),
        output_tokens=output,
        cache_read_tokens=int(getattr(usage, "cache_read_input_tokens", 0) or 0),
        cache_write_tokens=int(getattr(usage, "cache_creation_input_tokens", 0) or 0),
        calls=1,
        thinking_tokens=thinking,
    )
    by_ttl = getattr(usage, "cache_creation", None)
    return with_cost(model, u, int(getattr(by_ttl, "ephemeral_1h_input_tokens", 0) or 0))


class LlmClient:
    """Thin, thread-safe wrapper over `anthropic.Anthropic` for the engine's needs."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 300.0,
        max_retries: int = 4,
    ) -> None:
        # None -> the SDK reads ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL itself.
        self.timeout = timeout
        self.max_retries = max_retries
        self._noted_small_prefix: set[tuple[str, str]] = set()
        try:
            self._client = anthropic.Anthropic(
                api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
            )
        except anthropic.CredentialsError as exc:  # e.g. ANTHROPIC_CONFIG_DIR without a profile file
            raise LlmAuthError(
                f"no usable Anthropic credentials ({_one_line(exc, 200)}); set ANTHROPIC_API_KEY"
            ) from exc

    @property
    def base_url(self) -> str:
        return str(self._client.base_url)

    # -- public calls
    def stream_text(
        self,
        *,
        model: str,
        system: str,
        messages: list[dict],
        max_tokens: int,
        on_delta: Callable[[str], None],
        cancel: threading.Event | None = None,
        cache_ttl: str = "5m",
        thinking: dict | None = None,
        effort: str | None = None,
    ) -> LlmReply:
        """Stream a text reply, pushing every text delta to `on_delta`.

        If `cancel` is set mid-stream the HTTP stream is closed (a watcher
        thread shuts the socket down, so even a stalled stream stops) and
        `LlmCancelled` is raised.  Thinking is not streamed: only text is code.
        """
        if cancel is not None and cancel.is_set():
            raise LlmCancelled("cancelled before the request was sent")
        kwargs = self._common(model=model, system=system, messages=messages, max_tokens=max_tokens, ttl=cache_ttl)
        if thinking:
            kwargs["thinking"] = thinking
        if effort:
            kwargs["output_config"] = {"effort": effort}
        done = threading.Event()
        # Held while the watcher shuts the socket down, and while we mark the
        # stream done: a finished stream's connection goes back to the pool and
        # must never be shut down under the next request.
        guard = threading.Lock()
        try:
            with self._client.messages.stream(**kwargs) as stream:
                if cancel is not None:
                    threading.Thread(
                        target=self._watch_cancel,
                        args=(cancel, done, guard, stream),
                        name="llm-cancel-watch",
                        daemon=True,
                    ).start()
                try:
                    for event in stream:
                        if cancel is not None and cancel.is_set():
                            raise LlmCancelled("cancelled while streaming")
                        if event.type == "content_block_delta" and event.delta.type == "text_delta":
                            try:
                                on_delta(event.delta.text)
                            except Exception as exc:  # the caller's bug: re-raise as-is below
                                raise _CallbackFailed(exc) from exc
                    if cancel is not None and cancel.is_set():
                        raise LlmCancelled("cancelled while streaming")
                    final = stream.get_final_message()
                finally:
                    with guard:
                        done.set()
        except LlmCancelled:
            raise
        except _CallbackFailed as wrapped:
            raise wrapped.original
        except Exception as exc:
            if cancel is not None and cancel.is_set():
                raise LlmCancelled("cancelled while streaming") from exc
            raise self._map(exc, model) from exc
        finally:
            done.set()
        text = "".join(str(getattr(b, "text", "")) for b in final.content if getattr(b, "type", None) == "text")
        return LlmReply(
            text=text,
            usage=usage_from_sdk(model, final.usage, final.content),
            stop_reason=final.stop_reason,
            refusal_category=_refusal_category(final),
            max_tokens=max_tokens,
            thinking_blocks=sum(1 for b in final.content if _is_thinking(b)),
        )

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
    ) -> tuple[dict, Usage]:
        """Have the model call `tool` and return that call's input dict, with the usage of every reply.

        Where the model takes it, forced tool use (`tool_choice: {"type": "tool"}`)
        makes the reply machine-readable without parsing prose.  Where it refuses
        it (the 5.5 Sonnet and Opus), the tool is offered with `tool_choice: auto`
        and an instruction, and a reply without the call is answered once with a
        reminder.  LlmError (carrying the usage) if no call came back.
        """
        name = tool["name"]
        forced = model_spec(model).forced_tool
        if not forced:
            messages = _with_instruction(messages, TOOL_INSTRUCTION.format(name=name))
        choice: Any = {"type": "tool", "name": name} if forced else {"type": "auto"}
        total = Usage()
        stop_reason: str | None = None
        for _ in range(1 if forced else 2):
            kwargs = self._common(model=model, system=system, messages=messages, max_tokens=max_tokens, ttl=cache_ttl)
            if thinking:
                kwargs["thinking"] = thinking
            if effort:
                kwargs["output_config"] = {"effort": effort}
            try:
                offered: list[Any] = [tool]
                message = self._client.messages.create(**kwargs, tools=offered, tool_choice=choice)
            except Exception as exc:
                mapped = self._map(exc, model)
                if isinstance(mapped, LlmError):
                    mapped.usage = total
                raise mapped from exc
            total = total + usage_from_sdk(model, message.usage, message.content)
            stop_reason = message.stop_reason
            for block in message.content:
                if isinstance(block, anthropic.types.ToolUseBlock) and block.name == name:
                    data = block.input
                    if not isinstance(data, dict):
                        raise LlmError(f"tool {name!r} input was {type(data).__name__}, not an object", total)
                    return dict(data), total
            if stop_reason in ("refusal", "max_tokens"):
                break  # asking again gets the same answer
            text = "".join(getattr(b, "text", "") for b in message.content if getattr(b, "type", None) == "text")
            follow_up = [{"role": "user", "content": TOOL_REMINDER.format(name=name)}]
            messages = (
                [*messages, {"role": "assistant", "content": text.strip()}, *follow_up]
                if text.strip()
                else (_with_instruction(messages, TOOL_REMINDER.format(name=name)))
            )
        why = {"refusal": "it refused", "max_tokens": f"the reply was cut off at max_tokens = {max_tokens}"}.get(
            stop_reason or "", f"stop_reason={stop_reason}"
        )
        raise LlmError(f"model {model} returned no {name!r} tool call ({why})", total)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> LlmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals
    def _common(self, *, model: str, system: str, messages: list[dict], max_tokens: int, ttl: str) -> dict[str, Any]:
        marker = cache_control(ttl)
        messages = [_with_ttl(m, marker) for m in messages]
        kwargs: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens}
        if system:
            # The system prompt is the stable prefix: mark it for prompt caching.
            kwargs["system"] = [{"type": "text", "text": system, "cache_control": marker}]
        self._note_small_prefix(model, system, messages)
        return kwargs

    def _note_small_prefix(self, model: str, system: str, messages: list[dict]) -> None:
        """Note (in engine.log, not on the terminal) once per model and system prompt when even the
        longest marked prefix is too short to be cached: it costs money, but nothing is broken."""
        if (model, system) in self._noted_small_prefix:
            return
        longest = seen = estimate_tokens(system)
        for message in messages:
            content = message.get("content")
            for block in content if isinstance(content, list) else [{"text": str(content or "")}]:
                if isinstance(block, dict):
                    seen += estimate_tokens(str(block.get("text", "")))
                    longest = seen if block.get("cache_control") else longest
        if longest < min_cache_tokens(model):
            self._noted_small_prefix.add((model, system))
            log.info(
                "%s caches prefixes of %d tokens or more; this prompt's cacheable prefix is about %d, "
                "so it is not cached",
                model,
                min_cache_tokens(model),
                longest,
            )

    @staticmethod
    def _watch_cancel(cancel: threading.Event, done: threading.Event, guard: threading.Lock, stream: Any) -> None:
        """Unblock a stream stalled in a socket read once `cancel` is set.

        Closing a socket from another thread does not wake a blocked recv();
        shutdown() does, so shut the connection down, then close the response.
        """
        while not done.is_set():
            if cancel.wait(0.05):
                break
        with guard:
            if done.is_set():
                return
            try:
                net = stream.response.extensions.get("network_stream")
                sock = net.get_extra_info("socket") if net is not None else None
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)
            except Exception:  # best effort: the per-event check still cancels
                pass

    def _map(self, exc: BaseException, model: str = "") -> Exception:
        """SDK/transport exception -> LlmAuthError | LlmConfigError | LlmError with one clear line."""
        retries = f"after {self.max_retries} retries"
        if isinstance(exc, (anthropic.AuthenticationError, anthropic.PermissionDeniedError)):
            what = "rejected the API key" if exc.status_code == 401 else "refused access"
            return LlmAuthError(
                f"Anthropic API {what} ({exc.status_code} {exc.type or ''}: {_one_line(exc.api_message or exc)}); "
                "check ANTHROPIC_API_KEY (and ANTHROPIC_BASE_URL if set)"
            )
        if isinstance(exc, anthropic.CredentialsError):
            return LlmAuthError(f"no usable Anthropic credentials ({_one_line(exc, 200)}); set ANTHROPIC_API_KEY")
        if isinstance(exc, TypeError) and "authentication" in str(exc).lower():
            return LlmAuthError("no Anthropic API key found; set ANTHROPIC_API_KEY or run with --coder offline")
        if isinstance(exc, anthropic.BadRequestError):
            config = _config_error(model, exc)
            if config is not None:
                return config
        if isinstance(exc, anthropic.APIStatusError):
            detail = f"{exc.type or 'error'}: {_one_line(exc.api_message or exc.message)}"
            if exc.status_code < 400:  # an SSE `error` event inside a 200 stream
                return LlmError(f"Anthropic API stream failed mid-response ({detail})")
            retryable = exc.status_code in (408, 409, 429) or exc.status_code >= 500
            suffix = f" {retries}" if retryable else ""
            return LlmError(f"Anthropic API error {exc.status_code} ({detail}){suffix}")
        if isinstance(exc, anthropic.APITimeoutError):
            return LlmError(f"Anthropic API timed out (timeout {self.timeout:g}s) {retries}")
        if isinstance(exc, anthropic.APIConnectionError):
            cause = exc.__cause__ or exc
            return LlmError(f"cannot reach the Anthropic API at {self.base_url} ({_one_line(cause)}) {retries}")
        if isinstance(exc, httpx2.HTTPError):
            return LlmError(f"Anthropic API connection broke mid-response ({type(exc).__name__}: {_one_line(exc)})")
        if isinstance(exc, anthropic.AnthropicError):
            return LlmError(f"Anthropic API call failed ({type(exc).__name__}: {_one_line(exc)})")
        if isinstance(exc, ValueError) and "tool parameter JSON" in str(exc):
            return LlmError(f"model sent malformed tool JSON ({_one_line(exc, 160)})")
        if isinstance(exc, Exception):
            # Unknown failure inside the SDK: still one line, never a traceback in the UI.
            return LlmError(f"LLM call failed ({type(exc).__name__}: {_one_line(exc)})")
        return LlmError(_one_line(exc))


def _config_error(model: str, exc: Any) -> LlmConfigError | None:
    """A 400 naming a request parameter the model refuses, as the setting behind it and the fix."""
    message = str(exc.api_message or exc.message or "")
    lowered = message.lower()
    for words, setting, fix in _CONFIG_FIXES:
        if words in lowered:
            return LlmConfigError(
                f"{model or 'the model'} refuses this request (400: {_one_line(message, 200)}); "
                f"the setting behind it is {setting}: {fix}"
            )
    return None
