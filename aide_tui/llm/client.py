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
nobody, so it is logged once per model.  `messages.create` in anthropic 2.x has
no `temperature`, so none is sent; `thinking` and `output_config.effort` are
sent only when asked for.

Only `aide_tui/llm/` imports anthropic (see DESIGN.md boundaries).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import anthropic
import httpx2
from anthropic.types import ToolParam

from ..errors import FatalRunError
from ..search.node import Usage
from .caching import cache_control, estimate_tokens, min_cache_tokens
from .pricing import with_cost

log = logging.getLogger(__name__)

__all__ = ["LlmReply", "LlmError", "LlmAuthError", "LlmCancelled", "LlmClient", "usage_from_sdk"]


@dataclass
class LlmReply:
    text: str
    usage: Usage  # tokens of this one call, cost filled from pricing
    stop_reason: str | None


class LlmError(Exception):
    """The LLM call failed (after the SDK's retries, or for a non-retryable reason).

    The message is one line naming the status/cause; the engine records it on
    the step and moves on.
    """


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


def _with_ttl(message: dict, marker: dict) -> dict:
    """A copy of `message` whose cache breakpoints carry `marker` (the caller's TTL)."""
    content = message.get("content")
    if not isinstance(content, list):
        return dict(message)
    blocks = [dict(b, cache_control=marker) if isinstance(b, dict) and b.get("cache_control") else b for b in content]
    return {**message, "content": blocks}


def usage_from_sdk(model: str, usage: Any) -> Usage:
    """Our `Usage` (with cost) from an SDK `Usage` object of one call."""
    u = Usage(
        input_tokens=int(getattr(usage, "input_tokens", 0) or 0),
        output_tokens=int(getattr(usage, "output_tokens", 0) or 0),
        cache_read_tokens=int(getattr(usage, "cache_read_input_tokens", 0) or 0),
        cache_write_tokens=int(getattr(usage, "cache_creation_input_tokens", 0) or 0),
        calls=1,
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
        self._warned_small_prefix: set[str] = set()
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
            raise self._map(exc) from exc
        finally:
            done.set()
        text = "".join(b.text for b in final.content if b.type == "text")
        return LlmReply(text=text, usage=usage_from_sdk(model, final.usage), stop_reason=final.stop_reason)

    def call_tool(
        self,
        *,
        model: str,
        system: str,
        messages: list[dict],
        tool: dict,
        max_tokens: int = 1024,
        cache_ttl: str = "5m",
    ) -> tuple[dict, Usage]:
        """Force the model to call `tool` and return that call's input dict.

        Forced tool use (`tool_choice: {"type": "tool"}`) makes the reply
        machine-readable without parsing prose; LlmError if no tool_use came back.
        """
        kwargs = self._common(model=model, system=system, messages=messages, max_tokens=max_tokens, ttl=cache_ttl)
        try:
            message = self._client.messages.create(
                **kwargs, tools=[cast(ToolParam, tool)], tool_choice={"type": "tool", "name": tool["name"]}
            )
        except Exception as exc:
            raise self._map(exc) from exc
        usage = usage_from_sdk(model, message.usage)
        for block in message.content:
            if getattr(block, "type", None) == "tool_use" and block.name == tool["name"]:
                data = block.input
                if not isinstance(data, dict):
                    raise LlmError(f"tool {tool['name']!r} input was {type(data).__name__}, not an object")
                return dict(data), usage
        raise LlmError(f"model {model} returned no {tool['name']!r} tool call (stop_reason={message.stop_reason})")

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
        """Log once per model when even the longest marked prefix is too short to be cached."""
        if model in self._warned_small_prefix:
            return
        longest = seen = estimate_tokens(system)
        for message in messages:
            content = message.get("content")
            for block in content if isinstance(content, list) else [{"text": str(content or "")}]:
                if isinstance(block, dict):
                    seen += estimate_tokens(str(block.get("text", "")))
                    longest = seen if block.get("cache_control") else longest
        if longest < min_cache_tokens(model):
            self._warned_small_prefix.add(model)
            log.warning(
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

    def _map(self, exc: BaseException) -> Exception:
        """SDK/transport exception -> LlmAuthError | LlmError with one clear line."""
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
