"""LlmClient through the real anthropic SDK over HTTP to the local fake server.

Nothing is monkeypatched in the SDK: retries, SSE parsing and error classes are
the SDK's own, so these tests also catch SDK behaviour changes we rely on.
"""

from __future__ import annotations

import threading
import time
import warnings

import pytest
from fake_api import ErrorReply, FakeMessagesAPI, MidStreamError, TextReply, ToolReply, last_user_text, system_text
from helpers import wait_until

from aide_tui.errors import FatalRunError
from aide_tui.llm import pricing
from aide_tui.llm.client import LlmAuthError, LlmCancelled, LlmClient, LlmError
from aide_tui.search.node import Usage
from aide_tui.settings import DEFAULT_CODE_MODEL, DEFAULT_FEEDBACK_MODEL

MODEL = DEFAULT_CODE_MODEL
SYSTEM = "You are a Kaggle grandmaster. " * 160  # ~1,200 tokens: above the default model's cacheable minimum
USER = [{"role": "user", "content": "Write a solution."}]
REVIEW_TOOL = {
    "name": "submit_review",
    "description": "Report the outcome of running the script.",
    "input_schema": {
        "type": "object",
        "properties": {
            "is_bug": {"type": "boolean"},
            "metric": {"type": ["number", "null"]},
            "summary": {"type": "string"},
        },
        "required": ["is_bug", "metric", "summary"],
    },
}


@pytest.fixture
def client(fake_api):
    c = LlmClient(api_key="sk-test-not-a-real-key", base_url=fake_api.url, timeout=10, max_retries=3)
    yield c
    c.close()


def stream(client, **kw):
    deltas: list[str] = []
    args = dict(model=MODEL, system=SYSTEM, messages=USER, max_tokens=512, on_delta=deltas.append)
    args.update(kw)
    return client.stream_text(**args), deltas


# -- streaming, usage, caching -------------------------------------------------


def test_stream_delivers_deltas_usage_and_cost(client, fake_api):
    text = "import pandas as pd\nprint('Validation accuracy: 0.91')\n"
    fake_api.responder = lambda body: TextReply(text)
    reply, deltas = stream(client)
    assert len(deltas) >= 3
    assert "".join(deltas) == reply.text == text
    assert reply.stop_reason == "end_turn"
    u = reply.usage
    assert u.calls == 1 and u.input_tokens > 0 and u.output_tokens > 0
    assert u.cache_write_tokens > 0 and u.cache_read_tokens == 0  # first time this system prefix is seen
    assert u.cost == pytest.approx(pricing.cost(MODEL, u)) and u.cost > 0


def test_second_call_with_same_system_reads_the_cache(client):
    first, _ = stream(client)
    second, _ = stream(client, messages=[{"role": "user", "content": "Another task."}])
    assert first.usage.cache_write_tokens > 0
    assert second.usage.cache_read_tokens == first.usage.cache_write_tokens
    assert second.usage.cache_write_tokens == 0
    assert second.usage.cost < first.usage.cost  # cache reads are cheaper than writes


def test_request_marks_system_for_caching_and_sends_no_temperature(client, fake_api):
    stream(client)
    body = fake_api.requests[-1].body
    assert body["stream"] is True
    assert body["system"] == [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]
    assert "temperature" not in body
    assert body["model"] == MODEL and body["max_tokens"] == 512
    assert system_text(body) == SYSTEM and last_user_text(body) == "Write a solution."


def test_default_models_raise_no_deprecation_warning(client):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stream(client, model=DEFAULT_CODE_MODEL)
        client.call_tool(model=DEFAULT_FEEDBACK_MODEL, system="s", messages=USER, tool=REVIEW_TOOL)
    assert not [w for w in caught if issubclass(w.category, DeprecationWarning)]


def test_client_reads_key_and_base_url_from_environment(llm_env):
    llm_env.responder = lambda body: TextReply("from env")
    with LlmClient(max_retries=0) as c:
        reply, _ = stream(c)
    assert reply.text == "from env"
    headers = llm_env.requests[-1].headers
    # anthropic 2.12 sends the key as a bearer token (older SDKs used x-api-key).
    assert "sk-test-not-a-real-key" in (headers.get("authorization", "") + headers.get("x-api-key", ""))


def parent_turn(parent_text: str, rest: str) -> list[dict]:
    """A user turn whose first block (a parent script, say) is a second cache breakpoint."""
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": parent_text, "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": rest},
            ],
        }
    ]


def test_prefix_below_the_model_minimum_is_not_cached_and_is_logged_not_printed(client, capfd):
    """Noted once per model and prompt at INFO (engine.log, whose handler takes INFO), never on stderr,
    where it used to appear at every start of a TUI that owns the terminal."""
    import logging

    from aide_tui.llm.caching import min_cache_tokens

    class Collect(logging.Handler):  # the engine stops "aide_tui" records propagating, so caplog may not see them
        def __init__(self):
            super().__init__(logging.INFO)
            self.messages: list[str] = []

        def emit(self, record):
            self.messages.append(record.getMessage())

    short = "Be brief. " * 40  # ~100 tokens
    assert min_cache_tokens(MODEL) > 100
    collect, logger = Collect(), logging.getLogger("aide_tui.llm.client")
    logger.addHandler(collect)
    logger.setLevel(logging.INFO)  # as under the engine's engine.log handler
    try:
        first, _ = stream(client, system=short)
        second, _ = stream(client, system=short)
        third, _ = stream(client, system=short + " Be exact.")
    finally:
        logger.removeHandler(collect)
        logger.setLevel(logging.NOTSET)
    for reply in (first, second, third):  # what the service does: no error, both counters 0
        assert reply.usage.cache_write_tokens == reply.usage.cache_read_tokens == 0
    assert len([m for m in collect.messages if "not cached" in m]) == 2  # said once per model and prompt
    logging.getLogger("aide_tui").setLevel(logging.NOTSET)  # no engine handler: nothing may reach the terminal
    stream(client, system=short + " Be kind.")
    assert "not cached" not in capfd.readouterr().err


def test_minimum_differs_by_model(client):
    """The same ~700-token system prompt caches on a 512-token model and not on a 1,024 one."""
    system = "Score with RMSE. " * 170
    small_min, _ = stream(client, model="claude-opus-5", system=system)
    large_min, _ = stream(client, model="claude-sonnet-5", system=system)
    assert small_min.usage.cache_write_tokens > 0 and large_min.usage.cache_write_tokens == 0


def test_second_breakpoint_caches_the_parent_block_across_improvements(client, fake_api):
    parent = "## The solution to improve\n```python\n" + "x = 1\n" * 400 + "```\n"
    first, _ = stream(client, messages=parent_turn(parent, "memory: one node"))
    second, _ = stream(client, messages=parent_turn(parent, "memory: two nodes, a new hint"))
    other, _ = stream(client, messages=parent_turn(parent.replace("x = 1", "y = 2"), "memory"))
    assert first.usage.cache_read_tokens == 0 and first.usage.cache_write_tokens > 1000
    assert second.usage.cache_read_tokens == first.usage.cache_write_tokens  # system + parent block read
    assert second.usage.cache_write_tokens == 0
    # another parent: the system prompt is still read, the new parent block written
    assert 0 < other.usage.cache_read_tokens < second.usage.cache_read_tokens and other.usage.cache_write_tokens > 0


def test_cache_expires_after_its_ttl_and_one_hour_entries_cost_twice_input(client, fake_api):
    stream(client)
    fake_api.advance_clock(301)
    expired, _ = stream(client)
    assert expired.usage.cache_read_tokens == 0 and expired.usage.cache_write_tokens > 0

    long_lived, _ = stream(client, system=SYSTEM + " Long.", cache_ttl="1h")
    assert fake_api.requests[-1].body["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    fake_api.advance_clock(1800)
    still, _ = stream(client, system=SYSTEM + " Long.", cache_ttl="1h")
    assert still.usage.cache_read_tokens == long_lived.usage.cache_write_tokens > 0
    price = pricing.price_for(MODEL)
    u = long_lived.usage
    expected = (
        u.input_tokens * price.input + u.output_tokens * price.output + u.cache_write_tokens * price.input * 2.0
    ) / 1e6
    assert u.cost == pytest.approx(expected)


def test_every_breakpoint_gets_the_ttl_and_more_than_four_are_refused(client, fake_api):
    stream(client, messages=parent_turn("parent", "rest"), cache_ttl="1h")
    body = fake_api.requests[-1].body
    assert body["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert "cache_control" not in body["messages"][0]["content"][1]
    blocks = [{"type": "text", "text": f"b{i}", "cache_control": {"type": "ephemeral"}} for i in range(4)]
    with pytest.raises(LlmError, match="400"):
        stream(client, messages=[{"role": "user", "content": blocks}])


def test_thinking_and_effort_are_sent_only_when_asked(client, fake_api):
    stream(client)
    plain = fake_api.requests[-1].body
    assert "thinking" not in plain and "output_config" not in plain
    stream(client, thinking={"type": "adaptive"}, effort="high")
    body = fake_api.requests[-1].body
    assert body["thinking"] == {"type": "adaptive"} and body["output_config"] == {"effort": "high"}


# -- forced tool use -----------------------------------------------------------


def test_call_tool_returns_the_tool_input(client, fake_api):
    verdict = {"is_bug": False, "metric": 0.8731, "summary": "Trained a GBM; val AUC 0.8731."}
    fake_api.responder = lambda body: ToolReply("submit_review", verdict)
    data, usage = client.call_tool(model=DEFAULT_FEEDBACK_MODEL, system="Review.", messages=USER, tool=REVIEW_TOOL)
    assert data == verdict
    assert usage.calls == 1 and usage.output_tokens > 0 and usage.cost > 0
    body = fake_api.requests[-1].body
    assert body["tool_choice"] == {"type": "tool", "name": "submit_review"}
    assert body["tools"] == [REVIEW_TOOL]
    assert "temperature" not in body and not body.get("stream")


def test_call_tool_without_tool_use_is_an_llm_error(client, fake_api):
    fake_api.responder = lambda body: TextReply("I refuse to use tools.")
    with pytest.raises(LlmError, match="no 'submit_review' tool call"):
        client.call_tool(model=DEFAULT_FEEDBACK_MODEL, system="s", messages=USER, tool=REVIEW_TOOL)


def test_streamed_tool_use_text_is_only_text(client, fake_api):
    """A streamed reply with a tool_use block: input_json_delta chunks are not text."""
    fake_api.responder = lambda body: ToolReply(
        "submit_review", {"is_bug": True, "metric": None, "summary": "x" * 40}, text="Thinking it over."
    )
    reply, deltas = stream(client)
    assert "".join(deltas) == reply.text == "Thinking it over."
    assert reply.stop_reason == "tool_use"


# -- retries and failures ------------------------------------------------------


def test_injected_faults_are_retried_by_the_sdk_until_success(fake_api):
    fake_api.fail_rate = 0.3

    def responder(body):
        if body.get("tools"):
            return ToolReply("submit_review", {"is_bug": False, "metric": 1.0, "summary": last_user_text(body)})
        return TextReply(f"ok {last_user_text(body)}")

    fake_api.responder = responder
    with LlmClient(api_key="sk-test", base_url=fake_api.url, timeout=10, max_retries=8) as c:
        t0 = time.monotonic()
        for i in range(20):
            msgs = [{"role": "user", "content": f"call {i}"}]
            if i % 2:
                reply, _ = stream(c, messages=msgs)
                assert reply.text == f"ok call {i}"
            else:
                data, _ = c.call_tool(model=MODEL, system="s", messages=msgs, tool=REVIEW_TOOL)
                assert data["summary"].startswith(f"call {i}\n")
        elapsed = time.monotonic() - t0
    outcomes = [r.outcome for r in fake_api.requests]
    errors = [o for o in outcomes if o.startswith("error:")]
    assert len(outcomes) == 20 + len(errors)
    assert errors and {o for o in errors} <= {"error:429", "error:529", "error:500"}
    retried = [r for r in fake_api.requests if int(r.headers.get("x-stainless-retry-count", "0")) > 0]
    assert len(retried) == len(errors)  # every error was followed by an SDK retry
    assert elapsed < 20  # retry-after-ms kept backoff short


def test_always_500_gives_up_with_llm_error(fake_api):
    fake_api.responder = lambda body: ErrorReply(500, message="boom")
    with LlmClient(api_key="sk-test", base_url=fake_api.url, timeout=10, max_retries=2) as c:
        t0 = time.monotonic()
        with pytest.raises(LlmError) as info:
            stream(c)
    assert time.monotonic() - t0 < 10
    msg = str(info.value)
    assert "500" in msg and "api_error" in msg and "after 2 retries" in msg and "\n" not in msg
    assert len(fake_api.requests) == 3  # first try + 2 retries, then it stops


def test_overloaded_529_names_the_status(fake_api):
    fake_api.fail_next(529, n=10)
    with LlmClient(api_key="sk-test", base_url=fake_api.url, timeout=10, max_retries=1) as c:
        with pytest.raises(LlmError, match="529.*overloaded_error"):
            c.call_tool(model=MODEL, system="s", messages=USER, tool=REVIEW_TOOL)
    assert len(fake_api.requests) == 2


def test_fail_next_then_success(client, fake_api):
    fake_api.fail_next(429, n=2)
    reply, _ = stream(client)
    assert reply.text
    assert [r.outcome for r in fake_api.requests] == ["error:429", "error:429", "stream"]


def test_401_is_fatal_auth_error_without_retries(client, fake_api):
    fake_api.responder = lambda body: ErrorReply(401, message="invalid x-api-key")
    with pytest.raises(LlmAuthError) as info:
        stream(client)
    assert isinstance(info.value, FatalRunError)
    assert "ANTHROPIC_API_KEY" in str(info.value) and "401" in str(info.value)
    assert len(fake_api.requests) == 1


def test_403_is_fatal_auth_error(client, fake_api):
    fake_api.responder = lambda body: ErrorReply(403, message="no access to model")
    with pytest.raises(LlmAuthError, match="403"):
        client.call_tool(model=MODEL, system="s", messages=USER, tool=REVIEW_TOOL)
    assert len(fake_api.requests) == 1


def test_missing_api_key_is_fatal_auth_error(monkeypatch, fake_api, tmp_path):
    for var in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_PROFILE",
        "ANTHROPIC_IDENTITY_TOKEN",
        "ANTHROPIC_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("ANTHROPIC_CONFIG_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no profile on disk either
    with pytest.raises(LlmAuthError, match="ANTHROPIC_API_KEY"):
        with LlmClient(base_url=fake_api.url, max_retries=0) as c:
            stream(c)
    assert fake_api.requests == []


def test_missing_profile_file_is_fatal_auth_error(monkeypatch, fake_api, tmp_path):
    """A config dir without a profile makes the SDK fail in its constructor."""
    for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path))
    with pytest.raises(LlmAuthError, match="ANTHROPIC_API_KEY"):
        LlmClient(base_url=fake_api.url, max_retries=0)


def test_unreachable_server_is_bounded_llm_error():
    with FakeMessagesAPI() as api:
        url = api.url
    # The port is closed now: connection refused on every try.
    with LlmClient(api_key="sk-test", base_url=url, timeout=2, max_retries=1) as c:
        t0 = time.monotonic()
        with pytest.raises(LlmError, match="cannot reach the Anthropic API"):
            stream(c)
    assert time.monotonic() - t0 < 10


def test_sse_error_event_mid_stream_is_llm_error(client, fake_api):
    fake_api.responder = lambda body: MidStreamError(text_before="half a sol", type="overloaded_error")
    deltas: list[str] = []
    with pytest.raises(LlmError, match="mid-response.*overloaded_error"):
        client.stream_text(model=MODEL, system=SYSTEM, messages=USER, max_tokens=64, on_delta=deltas.append)
    assert "".join(deltas) == "half a sol"  # what arrived before the error was still delivered


def test_connection_cut_mid_stream_is_llm_error(client, fake_api):
    fake_api.responder = lambda body: MidStreamError(text_before="half a sol", drop=True)
    with pytest.raises(LlmError, match="mid-response|cannot reach") as info:
        stream(client)
    assert "\n" not in str(info.value)


def test_bad_request_is_not_retried(client, fake_api):
    fake_api.responder = lambda body: ErrorReply(400, message="max_tokens: too large")
    with pytest.raises(LlmError, match="400.*invalid_request_error.*max_tokens") as info:
        stream(client)
    assert "retries" not in str(info.value)
    assert len(fake_api.requests) == 1


def test_on_delta_exception_propagates_unchanged(client):
    class Boom(RuntimeError):
        pass

    def on_delta(text: str) -> None:
        raise Boom("ui went away")

    with pytest.raises(Boom):
        client.stream_text(model=MODEL, system=SYSTEM, messages=USER, max_tokens=64, on_delta=on_delta)


# -- cancellation ----------------------------------------------------------------


def test_cancel_mid_stream_raises_cancelled(client, fake_api):
    fake_api.responder = lambda body: TextReply("x" * 400)
    fake_api.delay_per_chunk = 0.01
    cancel = threading.Event()
    deltas: list[str] = []

    def on_delta(text: str) -> None:
        deltas.append(text)
        if len(deltas) == 3:
            cancel.set()

    with pytest.raises(LlmCancelled):
        client.stream_text(model=MODEL, system=SYSTEM, messages=USER, max_tokens=64, on_delta=on_delta, cancel=cancel)
    assert len(deltas) == 3
    # the server saw the stream closed early (it notices on its next write)
    wait_until(lambda: fake_api.requests[-1].outcome == "stream:client-closed", what="the server seeing the close")


def test_cancel_unblocks_a_stalled_stream(client, fake_api):
    fake_api.responder = lambda body: TextReply("slow " * 10)
    fake_api.delay_per_chunk = 3.0  # the server stalls between chunks
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    t0 = time.monotonic()
    with pytest.raises(LlmCancelled):
        client.stream_text(
            model=MODEL, system=SYSTEM, messages=USER, max_tokens=64, on_delta=lambda t: None, cancel=cancel
        )
    assert time.monotonic() - t0 < 2.0


def test_cancel_set_before_call_sends_nothing(client, fake_api):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(LlmCancelled):
        stream(client, cancel=cancel)
    assert fake_api.requests == []


# -- pricing ---------------------------------------------------------------------


def test_pricing_known_model():
    u = Usage(
        input_tokens=1_000_000, output_tokens=100_000, cache_read_tokens=2_000_000, cache_write_tokens=400_000, calls=1
    )
    # Sonnet 5.5: $2 in, $10 out, write 1.25x = $2.50, read $0.10.
    assert pricing.cost("claude-sonnet-5-5", u) == pytest.approx(2.0 + 1.0 + 0.2 + 1.0)
    # Opus 4.8: $5 in, $25 out, write $6.25, read 0.1x = $0.50.
    assert pricing.cost("claude-opus-4-8", u) == pytest.approx(5.0 + 2.5 + 1.0 + 2.5)
    assert not pricing.is_estimate("claude-sonnet-5-5")
    filled = pricing.with_cost("claude-sonnet-5-5", u)
    assert filled.cost == pytest.approx(4.2) and u.cost == 0.0


def test_pricing_date_suffix_and_family_fallback():
    assert pricing.price_for("claude-haiku-4-5-20251001") == pricing.price_for("claude-haiku-4-5")
    assert pricing.price_for("claude-haiku-4-5-20251001").input == 1.0
    assert pricing.is_estimate("claude-opus-9") and pricing.price_for("claude-opus-9").input == 5.0
    unknown = pricing.price_for("some-other-model")
    assert unknown.estimate and (unknown.input, unknown.output) == (3.0, 15.0)


def test_pricing_covers_every_current_sdk_model():
    from typing import get_args

    from anthropic.types.model_param import ModelParam

    names = [n for arg in get_args(ModelParam) for n in get_args(arg)]
    assert names
    for name in names:
        price = pricing.price_for(name)
        assert price.input > 0 and price.cache_write == pytest.approx(price.input * 1.25)
        assert 0 < price.cache_read <= price.input * 0.1 + 1e-9


def test_pricing_haiku_55_long_prompt_band():
    short = Usage(input_tokens=50_000, output_tokens=1_000, calls=1)
    long = Usage(input_tokens=150_000, output_tokens=1_000, calls=1)
    assert pricing.cost("claude-haiku-5-5", short) == pytest.approx((50_000 * 0.10 + 1_000 * 0.50) / 1e6)
    assert pricing.cost("claude-haiku-5-5", long) == pytest.approx((150_000 * 0.50 + 1_000 * 2.50) / 1e6)
