"""A local stand-in for the Anthropic Messages API, spoken over real HTTP.

Why: the LLM client must be tested through the real `anthropic` SDK (its
retries, SSE parsing, error classes) without network access or monkeypatching.
This server speaks the same wire format as `POST /v1/messages` -- JSON
messages, SSE streams with text and tool_use blocks, Anthropic-shaped errors,
prompt-caching usage counters -- and lets tests decide every reply and inject
faults.

Prompt caching is modelled the way the service documents it, so tests and
benches measure the cached share honestly: entries are written only at
breakpoints (blocks with `cache_control`, or the last block with top-level
`cache_control`; at most 4), only when the prefix reaches the model's minimum
(below it both counters stay 0 and nothing says why), per model; a later
request reads the longest cached prefix ending at a block boundary up to 20
blocks before one of its breakpoints; entries live 5 minutes (or 1 hour with
`ttl: "1h"`) from their last use, on a clock tests can advance.

Strict mode (`strict=True`) keeps the 5.5 generation's published contract
(the models' "What's new" pages; /work/shared/FACTS.md), written out here on
its own so that a wrong model table in aide-tui fails against it:
- a request to a 5.5 model without `thinking` (or with `adaptive`) thinks:
  a thinking block of `thinking_tokens[effort]` tokens comes first and counts
  toward `max_tokens`; what does not fit is cut off (`stop_reason:
  "max_tokens"`, a tool call that does not fit is not sent);
  `usage.output_tokens_details.thinking_tokens` says how many;
- the documented 400s: thinking budgets (every 5.5 model), `disabled` on
  Sonnet/Opus 5.5, `between_tools` at effort xhigh/max (and on Opus/Haiku),
  forced tool choice on Sonnet/Opus 5.5, sampling parameters, assistant
  prefill, max_tokens above 128k, an unknown effort;
- `RefusalReply(category)` answers `stop_reason: "refusal"` with
  `stop_details` (in lenient mode too).
Lenient mode (the default) stays as it was, for the tests written against it.

Usage:
    with FakeMessagesAPI(responder=lambda body: TextReply("hi")) as api:
        client = anthropic.Anthropic(base_url=api.url, api_key="sk-test")
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aide_tui.llm.caching import min_cache_tokens

__all__ = [
    "FakeMessagesAPI",
    "TextReply",
    "ToolReply",
    "ErrorReply",
    "RefusalReply",
    "STRICT_MODELS",
    "HEAVY_THINKING",
    "contract_violation",
    "MidStreamError",
    "Reply",
    "last_user_text",
    "system_text",
    "ERROR_TYPES",
    "default_responder",
    "example_input",
]

# The error `type` the real API sends for each status.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass
class TextReply:
    text: str
    stop_reason: str = "end_turn"


@dataclass
class ToolReply:
    name: str
    input: dict
    text: str = ""  # optional text block before the tool_use block


@dataclass
class ErrorReply:
    status: int
    type: str = ""  # default: the real API's type for `status`
    message: str = "simulated error"
    retry_after_ms: int | None = 10  # short, so SDK retries are quick in tests

    def __post_init__(self) -> None:
        if not self.type:
            self.type = ERROR_TYPES.get(self.status, "api_error")


@dataclass
class MidStreamError:
    """HTTP 200 stream that starts, sends `text_before`, then an SSE `error` event.

    For a non-streaming request it behaves like a 529 overloaded error.
    """

    text_before: str = "partial "
    type: str = "overloaded_error"
    message: str = "Overloaded"
    drop: bool = False  # True: cut the connection instead of sending an `error` event


@dataclass
class RefusalReply:
    """The safety classifier declined: `stop_reason: "refusal"` with a category in `stop_details`."""

    category: str | None = "cyber"
    explanation: str | None = "The request could enable cyber harm."
    text: str = ""


Reply = TextReply | ToolReply | ErrorReply | MidStreamError | RefusalReply

# The 5.5 contract, as published (not read from aide-tui's model table, which it checks):
# accepted thinking types, whether forced tool choice is accepted, the API's default effort.
STRICT_MODELS: dict[str, dict[str, Any]] = {
    "claude-sonnet-5-5": {"thinking": {"adaptive", "between_tools"}, "forced_tool": False, "effort": "high"},
    "claude-opus-5-5": {"thinking": {"adaptive"}, "forced_tool": False, "effort": "medium"},
    "claude-haiku-5-5": {"thinking": {"adaptive", "disabled"}, "forced_tool": True, "effort": "medium"},
}
STRICT_EFFORTS = ("low", "medium", "high", "xhigh", "max")
MAX_OUTPUT = 128_000
# Thinking tokens per effort of a model that thinks heavily: what crowded out the script at max_tokens 8192.
HEAVY_THINKING = {"low": 1_500, "medium": 4_000, "high": 9_000, "xhigh": 16_000, "max": 30_000}


def contract_violation(body: dict) -> str | None:
    """The 400 message a 5.5 model answers this request with, or None if it accepts it."""
    rules = STRICT_MODELS.get(str(body.get("model", "")))
    if rules is None:
        return None
    for name in ("temperature", "top_p", "top_k"):
        if name in body:
            return f"`{name}` is not supported for this model; omit sampling parameters"
    messages = body.get("messages") or []
    if messages and messages[-1].get("role") == "assistant":
        return "This model does not support assistant message prefill; the conversation must end with a user turn"
    if int(body.get("max_tokens") or 0) > MAX_OUTPUT:
        return f"max_tokens: {body.get('max_tokens')} > {MAX_OUTPUT}, the maximum allowed for this model"
    effort = (body.get("output_config") or {}).get("effort")
    if effort is not None and effort not in STRICT_EFFORTS:
        return f"output_config.effort: {effort!r} is not one of {', '.join(STRICT_EFFORTS)}"
    kind = (body.get("thinking") or {}).get("type", "adaptive")
    if kind == "enabled":
        return "thinking.type.enabled (budget_tokens) is not supported for this model; use adaptive thinking and output_config.effort"
    if kind not in rules["thinking"]:
        lowest = "between_tools" if "between_tools" in rules["thinking"] else None
        hint = f"; use thinking.type.{lowest}" if lowest else "; thinking cannot be turned off on this model"
        return f"thinking.type.{kind} is not supported for this model{hint}"
    if kind == "between_tools" and effort in ("xhigh", "max"):
        return f"thinking.type.between_tools is not supported with effort {effort}; use adaptive thinking"
    choice = (body.get("tool_choice") or {}).get("type")
    if choice in ("tool", "any") and not rules["forced_tool"]:
        return f"tool_choice.type {choice!r} (forced tool use) is not supported for this model; use tool_choice auto"
    return None


def thinking_budget_used(body: dict, levels: dict[str, int]) -> int:
    """Tokens a strict 5.5 model thinks for this request (0 where thinking is off, or not a 5.5 model)."""
    rules = STRICT_MODELS.get(str(body.get("model", "")))
    kind = (body.get("thinking") or {}).get("type", "adaptive")
    if rules is None or kind != "adaptive":
        return 0
    effort = (body.get("output_config") or {}).get("effort") or rules["effort"]
    return int(levels.get(effort, 0))


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if isinstance(block, dict) and block.get("type") == "text":
            parts.append(block.get("text", ""))
    return "\n".join(parts)


def last_user_text(body: dict) -> str:
    """Text of the last user message of a request body ('' if none)."""
    for msg in reversed(body.get("messages") or []):
        if msg.get("role") == "user":
            return _text_of(msg.get("content"))
    return ""


def system_text(body: dict) -> str:
    """The system prompt of a request body as plain text (string or blocks)."""
    return _text_of(body.get("system"))


def _tokens(text: str) -> int:
    """A rough token count (4 characters per token), never 0 for non-empty text."""
    return (len(text) + 3) // 4


_EXAMPLE = {"boolean": False, "number": 0.0, "integer": 0, "string": "", "array": [], "object": {}, "null": None}


def example_input(schema: dict) -> dict:
    """A minimal object satisfying the `required` fields of a tool's input_schema."""
    out: dict[str, Any] = {}
    props = schema.get("properties") or {}
    for name in schema.get("required") or []:
        typ = (props.get(name) or {}).get("type", "string")
        if isinstance(typ, list):
            typ = typ[0] if typ else "string"
        out[name] = _EXAMPLE.get(typ, "")
    return out


def default_responder(body: dict) -> Reply:
    """Echo the last user message; a forced tool call gets a minimal valid input."""
    choice = body.get("tool_choice") or {}
    if choice.get("type") == "tool":
        tool = next((t for t in body.get("tools") or [] if t.get("name") == choice.get("name")), {})
        return ToolReply(choice["name"], example_input(tool.get("input_schema") or {}))
    return TextReply(f"Echo: {last_user_text(body)}")


def _block_tokens(block: dict) -> int:
    if block["type"] == "text":
        return _tokens(block.get("text") or "")
    return _tokens(json.dumps(block.get("input", {})))


def _stop_details(reply: Reply) -> dict | None:
    if isinstance(reply, RefusalReply):
        return {"type": "refusal", "category": reply.category, "explanation": reply.explanation}
    return None


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


@dataclass
class RequestRecord:
    path: str
    headers: dict[str, str]
    body: dict
    # What the server did: "error:<status>", "ok", "stream", "midstream-error".
    outcome: str = ""
    usage: dict = field(default_factory=dict)  # input-side usage reported for it (caching counters)
    time: float = field(default_factory=time.monotonic)

    def __getitem__(self, key: str) -> Any:  # dict-style access for convenience
        return getattr(self, key)


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up mid-stream (cancel tests do it on purpose) are not errors."""

    def handle_error(self, request, client_address) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class FakeMessagesAPI:
    """Threaded HTTP server on 127.0.0.1 speaking the Messages API wire format."""

    def __init__(
        self,
        responder: Callable[[dict], Reply] | None = None,
        *,
        fail_rate: float = 0.0,
        seed: int = 0,
        delay_per_chunk: float = 0.0,
        chunk_chars: int = 4,
        json_chunk_chars: int = 6,
        strict: bool = False,
        thinking_tokens: dict[str, int] | None = None,
    ) -> None:
        self.responder: Callable[[dict], Reply] = responder or default_responder
        self.strict = strict
        self.thinking_tokens = dict(HEAVY_THINKING if thinking_tokens is None else thinking_tokens)
        self.fail_rate = fail_rate
        self.delay_per_chunk = delay_per_chunk
        self.chunk_chars = chunk_chars
        self.json_chunk_chars = json_chunk_chars
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._requests: list[RequestRecord] = []
        self._forced: deque[ErrorReply] = deque()
        self._cache: dict[str, tuple[float, float]] = {}  # prefix key -> (expires at, ttl seconds)
        self._clock_offset = 0.0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeMessagesAPI:
        api = self

        class Handler(_Handler):
            server_api = api

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-messages-api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeMessagesAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inspection and fault injection
    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def fail_next(self, status: int, n: int = 1, *, type: str = "", message: str = "forced error") -> None:
        """Queue `n` forced error replies, sent before the responder is consulted."""
        with self._lock:
            for _ in range(n):
                self._forced.append(ErrorReply(status, type, message))

    def advance_clock(self, seconds: float) -> None:
        """Let `seconds` pass for the cache's TTLs, without sleeping."""
        with self._lock:
            self._clock_offset += seconds

    def _now(self) -> float:
        return time.monotonic() + self._clock_offset

    # -- internals used by the handler
    def _record(self, rec: RequestRecord) -> None:
        with self._lock:
            self._requests.append(rec)

    def _pick_fault(self) -> ErrorReply | None:
        with self._lock:
            if self._forced:
                return self._forced.popleft()
            if self.fail_rate > 0 and self._rng.random() < self.fail_rate:
                status = self._rng.choice([429, 529, 500])
                return ErrorReply(status, message=f"injected {status}")
        return None

    def _usage_in(self, body: dict) -> dict[str, Any]:
        """Input-side usage of one request under the caching rules in the module docstring."""
        units = _prompt_units(body)
        marks = [i for i, (_, mark) in enumerate(units) if mark]
        ends, total = [], 0
        for text, _ in units:
            total += _tokens(text)
            ends.append(total)
        model = str(body.get("model", ""))
        keys = [json.dumps([model, [text for text, _ in units[: i + 1]]]) for i in range(len(units))]
        now, read_end, written = self._now(), 0, []
        with self._lock:
            for mark in marks:  # the longest live prefix at or up to 20 blocks before a breakpoint
                for i in range(mark, max(mark - 20, -1), -1):
                    entry = self._cache.get(keys[i])
                    if entry and entry[0] > now:
                        read_end = max(read_end, ends[i])
                        self._cache[keys[i]] = (now + entry[1], entry[1])
                        break
            for mark in marks:
                ttl = 3600.0 if units[mark][1].get("ttl") == "1h" else 300.0
                if ends[mark] >= min_cache_tokens(model):
                    self._cache[keys[mark]] = (now + ttl, ttl)
                    if ends[mark] > read_end:
                        written.append((ends[mark], ttl))
        by_ttl = {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}
        start = read_end
        for end, ttl in written:  # each breakpoint's new segment is billed at its own TTL
            by_ttl["ephemeral_1h_input_tokens" if ttl == 3600.0 else "ephemeral_5m_input_tokens"] += end - start
            start = end
        return {
            "input_tokens": total - start,
            "cache_creation_input_tokens": start - read_end,
            "cache_read_input_tokens": read_end,
            "cache_creation": by_ttl,
        }


def _prompt_units(body: dict) -> list[tuple[str, dict]]:
    """The prompt as (text, cache_control or {}) blocks in cache order: tools, system, messages."""
    units: list[tuple[str, dict]] = []
    if body.get("tools"):
        units.append((json.dumps(body["tools"], sort_keys=True), {}))
    system = body.get("system")
    for block in [{"type": "text", "text": system}] if isinstance(system, str) else list(system or []):
        units.append((str(block.get("text", "")), block.get("cache_control") or {}))
    for message in body.get("messages") or []:
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        for block in blocks:
            text = block.get("text") if block.get("type") == "text" else json.dumps(block, sort_keys=True)
            units.append((f"{message.get('role')}: {text}", block.get("cache_control") or {}))
    if body.get("cache_control") and units:  # automatic caching: a breakpoint on the last block
        units[-1] = (units[-1][0], body["cache_control"])
    return units


def too_many_breakpoints(body: dict) -> bool:
    return sum(1 for _, mark in _prompt_units(body) if mark) > 4


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_api: FakeMessagesAPI

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    # -- helpers
    def _send_json(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:16]}")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_error_reply(self, err: ErrorReply) -> None:
        headers = {}
        if err.retry_after_ms is not None:
            headers["retry-after-ms"] = str(err.retry_after_ms)
            headers["retry-after"] = f"{err.retry_after_ms / 1000:.3f}"
        payload = {"type": "error", "error": {"type": err.type, "message": err.message}}
        self._send_json(err.status, payload, headers)

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _sse(self, event: str, payload: dict, delay: float = 0.0) -> None:
        if delay:
            time.sleep(delay)
        self._write_chunk(f"event: {event}\ndata: {json.dumps(payload)}\n\n".encode())

    # -- routes
    def do_GET(self) -> None:
        self._send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "not found"}})

    def do_POST(self) -> None:
        api = self.server_api
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = {}
        rec = RequestRecord(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        api._record(rec)
        if self.path.split("?")[0] != "/v1/messages":
            rec.outcome = "error:404"
            self._send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "no such route"}})
            return
        fault = api._pick_fault()
        if fault is None and too_many_breakpoints(body):
            fault = ErrorReply(
                400, message="A maximum of 4 blocks with cache_control may be provided.", retry_after_ms=None
            )
        if fault is None and api.strict and (violation := contract_violation(body)):
            fault = ErrorReply(400, message=violation, retry_after_ms=None)
        if fault is not None:
            rec.outcome = f"error:{fault.status}"
            self._send_error_reply(fault)
            return
        reply = api.responder(body)
        if isinstance(reply, ErrorReply):
            rec.outcome = f"error:{reply.status}"
            self._send_error_reply(reply)
            return
        if isinstance(reply, MidStreamError) and not body.get("stream"):
            rec.outcome = "error:529"
            self._send_error_reply(ErrorReply(529, reply.type, reply.message))
            return
        usage_in = rec.usage = api._usage_in(body)
        try:
            if body.get("stream"):
                rec.outcome = "midstream-error" if isinstance(reply, MidStreamError) else "stream"
                self._stream(body, reply, usage_in)
            else:
                rec.outcome = "ok"
                self._send_json(200, self._message(body, reply, usage_in))
        except (BrokenPipeError, ConnectionResetError):
            rec.outcome += ":client-closed"
            self.close_connection = True

    # -- message construction
    @staticmethod
    def _blocks(reply: Reply) -> tuple[list[dict], str]:
        if isinstance(reply, TextReply):
            return [{"type": "text", "text": reply.text}], reply.stop_reason
        if isinstance(reply, ToolReply):
            blocks: list[dict] = []
            if reply.text:
                blocks.append({"type": "text", "text": reply.text})
            blocks.append(
                {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:20]}", "name": reply.name, "input": reply.input}
            )
            return blocks, "tool_use"
        if isinstance(reply, MidStreamError):
            return [{"type": "text", "text": reply.text_before}], "end_turn"
        if isinstance(reply, RefusalReply):
            return ([{"type": "text", "text": reply.text}] if reply.text else []), "refusal"
        raise TypeError(f"responder returned {reply!r}; expected TextReply, ToolReply, ErrorReply or MidStreamError")

    @staticmethod
    def _output_tokens(blocks: list[dict]) -> int:
        return max(1, sum(_block_tokens(b) for b in blocks if b["type"] != "thinking"))

    def _shaped(self, body: dict, reply: Reply) -> tuple[list[dict], str, int, int]:
        """(blocks, stop_reason, output_tokens, thinking_tokens): in strict mode, thinking comes
        first and counts toward max_tokens, and what does not fit after it is cut off."""
        blocks, stop = self._blocks(reply)
        api = self.server_api
        thinking = thinking_budget_used(body, api.thinking_tokens) if api.strict else 0
        if not thinking:
            return blocks, stop, self._output_tokens(blocks), 0
        limit = int(body.get("max_tokens") or 0)
        room, kept, used = limit - thinking, [], 0
        for block in blocks:
            need = _block_tokens(block)
            if used + need <= room:
                kept.append(block)
                used += need
                continue
            stop = "max_tokens"
            if block["type"] == "text" and room - used > 0:  # the text is cut where the room ends
                kept.append({"type": "text", "text": block["text"][: (room - used) * 4]})
                used = room
            break
        thought = min(thinking, limit)
        signature = {"type": "thinking", "thinking": "", "signature": f"sig_{uuid.uuid4().hex[:16]}"}
        return [signature, *kept], stop, max(1, thought + used), thought

    def _message(self, body: dict, reply: Reply, usage_in: dict) -> dict:
        blocks, stop, output, thinking = self._shaped(body, reply)
        usage = {**usage_in, "output_tokens": output, "service_tier": "standard"}
        if self.server_api.strict:
            usage["output_tokens_details"] = {"thinking_tokens": thinking}
        return {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "unknown"),
            "content": blocks,
            "stop_reason": stop,
            "stop_details": _stop_details(reply),
            "stop_sequence": None,
            "usage": usage,
        }

    def _stream(self, body: dict, reply: Reply, usage_in: dict) -> None:
        api = self.server_api
        delay = api.delay_per_chunk
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:16]}")
        self.end_headers()
        message = self._message(body, reply, usage_in)
        blocks, stop = message["content"], message["stop_reason"]
        start = dict(
            message, content=[], stop_reason=None, stop_details=None, usage={**message["usage"], "output_tokens": 1}
        )
        self._sse("message_start", {"type": "message_start", "message": start})
        self._sse("ping", {"type": "ping"})
        for index, block in enumerate(blocks):
            if block["type"] == "thinking":  # display omitted: no thinking text, only its signature
                self._sse(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                    },
                )
                self._sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "signature_delta", "signature": block["signature"]},
                    },
                    delay,
                )
            elif block["type"] == "text":
                self._sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
                )
                for piece in _chunks(block["text"], api.chunk_chars):
                    self._sse(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}},
                        delay,
                    )
            else:
                self._sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}},
                )
                for piece in _chunks(json.dumps(block["input"]), api.json_chunk_chars):
                    self._sse(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": piece},
                        },
                        delay,
                    )
            if isinstance(reply, MidStreamError) and reply.drop:
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(2)  # socket.SHUT_RDWR: no terminating chunk
                return
            if isinstance(reply, MidStreamError):
                self._sse("error", {"type": "error", "error": {"type": reply.type, "message": reply.message}}, delay)
                self._write_chunk(b"")
                return
            self._sse("content_block_stop", {"type": "content_block_stop", "index": index})
        self._sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None, "stop_details": message["stop_details"]},
                "usage": {k: v for k, v in message["usage"].items() if k in ("output_tokens", "output_tokens_details")},
            },
        )
        self._sse("message_stop", {"type": "message_stop"})
        self._write_chunk(b"")
