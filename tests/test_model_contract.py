"""The 5.5 generation's API contract, end to end through the real SDK against the strict stand-in.

The strict mode of tests/fake_api.py answers as the models' published pages say
(adaptive thinking by default, counted in max_tokens; 400s for budgets,
`disabled` on Sonnet 5.5, forced tool choice on Sonnet/Opus 5.5, prefill,
sampling; refusals with `stop_details`).  These tests hold the model table, the
client and the coder to it: the default settings must pass, a configuration
the model refuses must stop with one clear `config` error, and every reply,
used or not, must be counted.
"""

from __future__ import annotations

import io

import pytest
from aide_script import ScriptedAide
from fake_api import (
    HEAVY_THINKING,
    STRICT_MODELS,
    FakeMessagesAPI,
    RefusalReply,
    TextReply,
    ToolReply,
    contract_violation,
)

from aide_tui.llm.client import LlmClient, LlmConfigError, LlmError
from aide_tui.llm.models import model_spec
from aide_tui.llm.thinking import thinking_shape
from aide_tui.search.coder import CoderError, TaskContext
from aide_tui.search.node import ExecInfo, Node
from aide_tui.search.operators import REVIEW_TOOL, LlmCoder
from aide_tui.settings import Settings

GOOD = "Plan: a ridge baseline.\n\n```python\nprint('Validation metric: 0.5')\n```\n"
USER = [{"role": "user", "content": "Write a solution."}]
REVIEW = {"is_bug": False, "metric": 0.5, "summary": "ran", "lower_is_better": True}


@pytest.fixture
def strict():
    with FakeMessagesAPI(strict=True) as api:
        yield api


@pytest.fixture
def client(strict):
    with LlmClient(api_key="sk-test", base_url=strict.url, timeout=10, max_retries=2) as c:
        yield c


def ctx() -> TaskContext:
    return TaskContext(task="Predict SalePrice (RMSE).", data_preview="train.csv: 1460 rows", memory="", timeout=60)


def ran(node_id: int = 3) -> Node:
    return Node(
        id=node_id,
        parent_id=None,
        operation="draft",
        step=node_id,
        plan="ridge",
        code="print('Validation metric: 0.5')\n",
        output="Validation metric: 0.5\n",
        exec=ExecInfo(exit_code=0, wall_time=1.0),
    )


# ----------------------------------------------------------------- the stand-in keeps the contract


@pytest.mark.parametrize(
    "body, words",
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 2048}}, "budget_tokens"),
        ({"thinking": {"type": "disabled"}}, "between_tools"),
        ({"thinking": {"type": "between_tools"}, "output_config": {"effort": "max"}}, "effort max"),
        ({"tool_choice": {"type": "tool", "name": "x"}}, "forced tool use"),
        ({"temperature": 0.2}, "temperature"),
        ({"messages": [*USER, {"role": "assistant", "content": "Plan:"}]}, "prefill"),
        ({"max_tokens": 200_000}, "max_tokens"),
    ],
)
def test_the_strict_stand_in_refuses_what_sonnet_55_refuses(body, words):
    request = {"model": "claude-sonnet-5-5", "max_tokens": 1000, "messages": USER, **body}
    assert words in (contract_violation(request) or "")
    assert contract_violation({"model": "claude-sonnet-5-5", "max_tokens": 1000, "messages": USER}) is None


def test_the_model_table_agrees_with_the_published_contract():
    """What aide-tui believes each 5.5 model accepts is what the contract says (no 400 from our shapes)."""
    for model, rules in STRICT_MODELS.items():
        spec = model_spec(model)
        assert spec.thinks_by_default and "enabled" not in spec.thinking_modes
        assert spec.forced_tool == rules["forced_tool"] and spec.default_effort == rules["effort"]
        assert spec.thinking_modes == rules["thinking"] and not spec.prefill
        for setting in ("auto", "off", "adaptive"):
            for effort in ("low", "medium", "high", "xhigh", "max"):
                shape = thinking_shape(model, setting, effort)
                request = {"model": model, "max_tokens": 1000, "messages": USER}
                if shape.thinking:
                    request["thinking"] = shape.thinking
                if shape.effort:
                    request["output_config"] = {"effort": shape.effort}
                assert contract_violation(request) is None, (model, setting, effort)


# ----------------------------------------------------------------- the client


def test_adaptive_thinking_by_default_fills_max_tokens_and_is_counted(client, strict):
    strict.responder = lambda body: TextReply(GOOD)
    reply = client.stream_text(model="claude-sonnet-5-5", system="s", messages=USER, max_tokens=8192, on_delta=print)
    assert reply.stop_reason == "max_tokens" and reply.text == ""  # high effort thought 9,000 > 8,192
    assert reply.usage.thinking_tokens == reply.usage.output_tokens == 8192 and reply.usage.cost > 0
    roomy = client.stream_text(
        model="claude-sonnet-5-5", system="s", messages=USER, max_tokens=32_000, on_delta=lambda t: None
    )
    assert roomy.stop_reason == "end_turn" and roomy.text == GOOD
    assert roomy.usage.thinking_tokens == HEAVY_THINKING["high"] < roomy.usage.output_tokens


@pytest.mark.parametrize(
    "thinking, effort",
    [({"type": "enabled", "budget_tokens": 2048}, None), ({"type": "disabled"}, None), (None, "extreme")],
)
def test_a_refused_configuration_is_one_config_error_naming_the_setting_not_retried(client, strict, thinking, effort):
    with pytest.raises(LlmConfigError) as err:
        client.stream_text(
            model="claude-sonnet-5-5",
            system="s",
            messages=USER,
            max_tokens=4096,
            on_delta=lambda t: None,
            thinking=thinking,
            effort=effort,
        )
    assert err.value.kind == "config" and "claude-sonnet-5-5" in str(err.value)
    assert ("thinking" if thinking else "effort") in str(err.value) and "\n" not in str(err.value)
    assert len(strict.requests) == 1  # a 400 is never retried


def test_a_refusal_comes_back_with_its_category(client, strict):
    strict.responder = lambda body: RefusalReply("cyber")
    reply = client.stream_text(model="claude-sonnet-5-5", system="s", messages=USER, max_tokens=32_000, on_delta=print)
    assert reply.stop_reason == "refusal" and reply.refusal_category == "cyber"


def test_review_on_a_model_that_refuses_forced_tool_choice_asks_with_auto_and_reminds_once(client, strict):
    replies = iter([TextReply("The run looks fine, metric 0.5."), ToolReply("submit_review", REVIEW)])
    strict.responder = lambda body: next(replies)
    data, usage = client.call_tool(
        model="claude-sonnet-5-5", system="s", messages=USER, tool=REVIEW_TOOL, max_tokens=8192, effort="low"
    )
    assert data == REVIEW and usage.calls == 2  # the text-only reply is counted too
    first, second = (r.body for r in strict.requests)
    assert first["tool_choice"] == {"type": "auto"} and "submit_review" in first["messages"][-1]["content"]
    assert second["messages"][-1]["role"] == "user" and "did not call" in second["messages"][-1]["content"]


def test_a_review_that_never_calls_the_tool_fails_with_its_usage(client, strict):
    strict.responder = lambda body: TextReply("Looks fine to me.")
    with pytest.raises(LlmError, match="no 'submit_review' tool call") as err:
        client.call_tool(
            model="claude-sonnet-5-5", system="s", messages=USER, tool=REVIEW_TOOL, max_tokens=8192, effort="low"
        )
    assert err.value.usage.calls == 2 and err.value.usage.cost > 0


def test_haiku_55_is_forced_to_call_the_tool_with_thinking_off(client, strict):
    strict.responder = lambda body: ToolReply("submit_review", REVIEW)
    shape = thinking_shape("claude-haiku-5-5", "off", "low")
    data, usage = client.call_tool(
        model="claude-haiku-5-5",
        system="s",
        messages=USER,
        tool=REVIEW_TOOL,
        max_tokens=8192,
        thinking=shape.thinking,
        effort=shape.effort,
    )
    body = strict.requests[0].body
    assert data == REVIEW and usage.calls == 1 and usage.thinking_tokens == 0
    assert body["tool_choice"] == {"type": "tool", "name": "submit_review"} and body["thinking"] == {"type": "disabled"}


# ----------------------------------------------------------------- the coder with the default settings


@pytest.mark.parametrize("feedback_model", ["claude-haiku-5-5", "claude-sonnet-5-5"])
def test_default_settings_get_code_and_a_tool_call_review_from_a_heavily_thinking_model(client, strict, feedback_model):
    aide = ScriptedAide(crash_every=0)
    strict.responder = aide
    coder = LlmCoder(client, Settings(memory_limit="1G", feedback_model=feedback_model))
    draft = coder.draft(ctx(), lambda t: None)
    node = ran()
    node.code = draft.code
    review = coder.review(ctx(), node)
    assert draft.code and draft.usage.calls == 1 and draft.usage.thinking_tokens == HEAVY_THINKING["high"]
    improved = coder.improve(ctx(), node, lambda t: None)
    assert improved.usage.calls == 1 and improved.usage.thinking_tokens == HEAVY_THINKING["medium"]
    assert review.usage.calls == 1 and not review.is_bug and review.metric is not None
    assert all(r.outcome == "stream" or r.outcome == "ok" for r in strict.requests)  # no 400 anywhere


def test_a_reply_cut_off_by_thinking_is_asked_again_at_lower_effort_and_the_user_is_told(client, strict):
    strict.responder = lambda body: TextReply(GOOD)
    said: list[str] = []
    coder = LlmCoder(client, Settings(memory_limit="1G", max_tokens=8192))
    proposal = coder.draft(ctx(), said.append)
    efforts = [r.body.get("output_config", {}).get("effort") for r in strict.requests]
    assert efforts == ["high", "medium"] and proposal.code
    assert proposal.usage.calls == 2 and proposal.usage.thinking_tokens == 8192 + HEAVY_THINKING["medium"]
    note = "".join(said)
    assert "Thinking used 8,192 of the 8,192 tokens" in note and "Lowering effort to medium" in note


def test_at_the_lowest_effort_the_retry_raises_max_tokens_instead(client, strict):
    strict.thinking_tokens = {"low": 6_000}
    strict.responder = lambda body: TextReply(GOOD)
    said: list[str] = []
    coder = LlmCoder(client, Settings(memory_limit="1G", max_tokens=4096, draft_effort="low"))
    assert coder.draft(ctx(), said.append).code
    assert [r.body["max_tokens"] for r in strict.requests] == [4096, 8192]
    assert "Raising max_tokens to 8,192" in "".join(said)


@pytest.mark.parametrize(
    "reply, outcome",
    [
        (RefusalReply("cyber"), "refused (cyber)"),
        (RefusalReply(None, None), "refused"),
        (TextReply("I would fit a GBM but will not write it."), "no code"),
        (TextReply("Plan.\n```python\n" + "x = 1\n" * 40_000), "cut off (length)"),
    ],
)
def test_replies_without_code_say_why_in_a_status_word_and_are_counted(client, strict, reply, outcome):
    strict.responder = lambda body: reply
    with pytest.raises(CoderError) as err:
        LlmCoder(client, Settings(memory_limit="1G")).draft(ctx(), lambda t: None)
    assert err.value.outcome == outcome
    assert err.value.usage.calls == len(strict.requests) and err.value.usage.cost > 0
    assert len(strict.requests) == (1 if outcome.startswith("refused") else 3)


def test_thinking_that_never_leaves_room_is_cut_off_thinking(client, strict):
    strict.thinking_tokens = {level: 50_000 for level in HEAVY_THINKING}
    strict.responder = lambda body: TextReply(GOOD)
    with pytest.raises(CoderError) as err:
        LlmCoder(client, Settings(memory_limit="1G", max_tokens=8192)).draft(ctx(), lambda t: None)
    assert err.value.outcome == "cut off (thinking)"


# ----------------------------------------------------------------- what the user reads


def test_the_status_word_is_the_same_in_the_tree_the_headless_line_and_node_json():
    from aide_tui.app.widgets.node_tree import Palette, node_label
    from aide_tui.events import NodeFinished
    from aide_tui.headless import HeadlessPrinter
    from aide_tui.search.node import status_word
    from aide_tui.state import RunModel

    refused = Node(3, None, "draft", 3, status="buggy", coder_outcome="refused (cyber)")
    crashed = Node(4, None, "draft", 4, status="buggy", code="x\n", exec=ExecInfo(exit_code=1, exc_type="KeyError"))
    assert [status_word(refused), status_word(crashed)] == ["refused (cyber)", "buggy (KeyError)"]
    model = RunModel()
    out = io.StringIO()
    printer = HeadlessPrinter(out=out, err=out)
    for node in (refused, crashed):
        event = NodeFinished(node, None, "c", f"aide/r/{node.id:04d}-draft", "r", None)
        model.apply(event)
        printer(event)
        assert event.to_json()["node"]["status_word"] == status_word(node)
    assert node_label(model.nodes[3], None, Palette()).plain == "#3 draft ✗ refused (cyber)"
    lines = out.getvalue().splitlines()
    assert "#3 draft: refused (cyber)  [no code" in lines[0] and "#4 draft: buggy (KeyError)" in lines[1]


def test_an_unknown_model_gets_safe_defaults_and_one_notice():
    from aide_tui.llm.models import unknown_model_notice
    from aide_tui.search.refusals import model_notices

    spec = model_spec("claude-sonnet-9-1")
    assert not spec.known and not spec.forced_tool and spec.thinks_by_default and not spec.efforts
    assert spec.price.estimate and spec.cache_min == 1024  # the family's figures, flagged as estimates
    same = Settings(memory_limit="1G", code_model="claude-sonnet-9-1", feedback_model="claude-sonnet-9-1")
    assert model_notices(same) == [unknown_model_notice("claude-sonnet-9-1")]
    assert model_notices(Settings(memory_limit="1G")) == []  # the defaults are in the table


def test_a_request_for_an_unknown_model_is_one_the_contract_accepts(client, strict):
    """No forced tool choice, no thinking field, no effort: nothing a newer model could refuse."""
    strict.responder = lambda body: ToolReply("submit_review", REVIEW)
    shape = thinking_shape("claude-sonnet-9-1", "off", "low")
    assert shape.thinking is None and shape.effort is None
    client.call_tool(model="claude-sonnet-9-1", system="s", messages=USER, tool=REVIEW_TOOL, max_tokens=8192)
    assert strict.requests[0].body["tool_choice"] == {"type": "auto"}
