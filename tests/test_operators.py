"""The coding operator, the review and reply extraction, against a stub LLM client.

The stub implements the two calls `LlmCoder` relies on (stream_text, call_tool),
records what it was asked and replays scripted replies, so these tests check
what goes into the prompts and what comes out, offline and fast.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from aide_tui.errors import FatalRunError, UserError
from aide_tui.search.coder import CoderError, TaskContext
from aide_tui.search.extract import diagnose, extract_plan_and_code
from aide_tui.search.node import ExecInfo, Node, Usage
from aide_tui.search.operators import REVIEW_TOOL, LlmCoder, parse_metric
from aide_tui.search.prompts import load_prompt, render
from aide_tui.settings import Settings

GOOD = "Fit a ridge regression on numeric columns.\n\n```python\nprint('Validation metric: 0.5')\n```\n"


@dataclass
class Reply:
    text: str
    usage: Usage = field(default_factory=lambda: Usage(input_tokens=10, output_tokens=5, cost=0.01, calls=1))
    stop_reason: str | None = "end_turn"


class AuthFailed(FatalRunError):
    """Stands in for llm.client.LlmAuthError (a FatalRunError)."""


class StubClient:
    def __init__(self, replies=(), tool_input=None, raise_exc=None):
        self.replies = list(replies)
        self.tool_input = tool_input
        self.raise_exc = raise_exc
        self.stream_calls: list[dict] = []
        self.tool_calls: list[dict] = []

    def stream_text(self, *, model, system, messages, max_tokens, on_delta, cancel=None, **options):
        self.stream_calls.append(
            dict(model=model, system=system, messages=messages, max_tokens=max_tokens, cancel=cancel, **options)
        )
        if self.raise_exc:
            raise self.raise_exc
        reply = self.replies.pop(0)
        on_delta(reply.text)
        return reply

    def call_tool(self, *, model, system, messages, tool, max_tokens=1024, cache_ttl="5m", **options):
        self.tool_calls.append(
            dict(model=model, system=system, messages=messages, tool=tool, cache_ttl=cache_ttl, **options)
        )
        if self.raise_exc:
            raise self.raise_exc
        return self.tool_input, Usage(input_tokens=7, output_tokens=3, calls=1)


def settings() -> Settings:
    return Settings(memory_limit="1G", code_model="code-m", feedback_model="review-m", max_tokens=1234)


def ctx(**kw) -> TaskContext:
    base = dict(
        task="Predict SalePrice. Metric: RMSE on log price.",
        data_preview="train.csv: 1460 rows, 81 columns",
        memory="- node 0 (draft): metric 0.2; plan: gradient boosting",
        timeout=300,
    )
    base.update(kw)
    return TaskContext(**base)


def parent(**kw) -> Node:
    base = dict(
        id=4,
        parent_id=1,
        operation="draft",
        step=4,
        plan="Random forest on all columns.",
        code="import pandas as pd\nprint('Validation metric: 0.1432')\n",
        status="ok",
        metric=0.1432,
        review_summary="Random forest reached RMSE 0.1432.",
    )
    base.update(kw)
    return Node(**base)


def user_text(call: dict) -> str:
    content = call["messages"][-1]["content"]
    return content if isinstance(content, str) else "".join(block["text"] for block in content)


# ---------------------------------------------------------------- extraction


def test_extract_single_block():
    assert extract_plan_and_code(GOOD) == (
        "Fit a ridge regression on numeric columns.",
        "print('Validation metric: 0.5')\n",
    )


def test_extract_takes_longest_python_block_and_ignores_other_languages():
    reply = (
        "Plan text.\n```bash\npip install x\nmore shell lines here\n```\n"
        "```python\nx = 1\n```\nThen:\n```python\nimport os\nprint(os.getcwd())\n```\n"
    )
    plan, code = extract_plan_and_code(reply)
    assert code == "import os\nprint(os.getcwd())\n"
    assert plan.startswith("Plan text.")


@pytest.mark.parametrize("fence", ["```py", "```", "```python3", "```Python"])
def test_extract_accepts_py_and_bare_fences(fence):
    plan, code = extract_plan_and_code(f"Plan.\n{fence}\nprint(1)\n```")
    assert (plan, code) == ("Plan.", "print(1)\n")


def test_extract_prefers_tagged_python_over_bare_block():
    reply = "Plan.\n```\nsome long output sample that is not code at all\n```\n```python\nprint(2)\n```\n"
    assert extract_plan_and_code(reply)[1] == "print(2)\n"


@pytest.mark.parametrize(
    "reply",
    [
        "Just a plan, no code.",
        "",
        "Plan.\n```python\n\n   \n```\n",
        "Plan.\n```json\n{}\n```\n",
        "Plan.\n```python\nimport numpy as np\nx = np.arange(",  # cut at max_tokens
        "Plan.\n```python\nprint(1)\n```\nAnd more:\n```python\nprint(2",  # final fence unterminated
    ],
)
def test_extract_rejects_unusable_replies(reply):
    assert extract_plan_and_code(reply) is None


def test_diagnose_names_the_problem():
    assert "cut off" in diagnose("Plan.\n```python\nx = (", "max_tokens")
    assert "no fenced" in diagnose("Only words.")
    assert "empty" in diagnose("")


def test_plan_is_bounded():
    plan, _ = extract_plan_and_code("word " * 2000 + "\n```python\nprint(1)\n```")
    assert len(plan) <= 2000


# ---------------------------------------------------------------- prompts


def test_render_sections_and_unknown_placeholder():
    assert render("a\n{{#hint}}\nHINT: {{hint}}\n{{/hint}}\nb", {"hint": ""}) == "a\nb\n"
    assert "HINT: go" in render("a\n{{#hint}}\nHINT: {{hint}}\n{{/hint}}\nb", {"hint": "go"})
    with pytest.raises(UserError, match=r"draft\.md.*\{\{nope\}\}"):
        render("x {{nope}}", {"memory": ""}, "draft.md")


def test_render_does_not_expand_placeholders_inside_values():
    assert render("{{code}}", {"code": "s = '{{memory}}'"}) == "s = '{{memory}}'\n"


def test_packaged_prompts_have_the_operation_headings():
    for name, first in [("draft", "# Draft"), ("improve", "# Improve"), ("debug", "# Debug")]:
        assert load_prompt(name).splitlines()[0] == first


def test_project_override_is_used(tmp_path: Path):
    override = tmp_path / ".aide" / "prompts" / "draft.md"
    override.parent.mkdir(parents=True)
    override.write_text("# Draft\nCUSTOM DRAFT PROMPT\n{{memory}}\n")
    client = StubClient([Reply(GOOD)])
    LlmCoder(client, settings(), project_dir=tmp_path).draft(ctx(), lambda s: None)
    assert "CUSTOM DRAFT PROMPT" in user_text(client.stream_calls[0])
    # without an override the packaged prompt is used
    other = StubClient([Reply(GOOD)])
    LlmCoder(other, settings(), project_dir=tmp_path / "elsewhere").draft(ctx(), lambda s: None)
    assert "CUSTOM DRAFT PROMPT" not in user_text(other.stream_calls[0])


def test_override_with_unknown_placeholder_names_the_file(tmp_path: Path):
    override = tmp_path / ".aide" / "prompts" / "draft.md"
    override.parent.mkdir(parents=True)
    override.write_text("# Draft\n{{memroy}}\n")
    with pytest.raises(UserError, match="draft.md.*memroy"):
        LlmCoder(StubClient([Reply(GOOD)]), settings(), project_dir=tmp_path).draft(ctx(), lambda s: None)


# ---------------------------------------------------------------- coding operator


def test_draft_prompt_and_call():
    client = StubClient([Reply(GOOD)])
    deltas: list[str] = []
    cancel = threading.Event()
    proposal = LlmCoder(client, settings(), cancel=cancel).draft(ctx(), deltas.append)
    call = client.stream_calls[0]
    assert call["model"] == "code-m" and call["max_tokens"] == 1234 and call["cancel"] is cancel
    assert "Predict SalePrice" in call["system"] and "1460 rows" in call["system"]
    assert "300 seconds" in call["system"] and "Validation metric: <number>" in call["system"]
    text = user_text(call)
    assert text.splitlines()[0] == "# Draft"
    assert "gradient boosting" in text  # memory
    assert "Hint from the user" not in text  # no hint, no hint section
    assert proposal.plan.startswith("Fit a ridge") and "Validation metric" in proposal.code
    assert proposal.usage.calls == 1 and deltas == [GOOD]


def test_system_prompt_is_stable_across_steps():
    client = StubClient([Reply(GOOD), Reply(GOOD)])
    coder = LlmCoder(client, settings())
    coder.draft(ctx(memory="one"), lambda s: None)
    coder.improve(ctx(memory="two", hint="h"), parent(), lambda s: None)
    assert client.stream_calls[0]["system"] == client.stream_calls[1]["system"]


def test_system_prompts_state_the_machine():
    machine = dict(
        packages="numpy 2.1.3, scikit-learn 1.5.2, lightgbm 4.5.0",
        cpus=3,
        memory_mb=3072,
        gpus=0,
        network=False,
        timeout=300,
    )
    coder = LlmCoder(StubClient(), settings())
    system = coder.system_prompt(ctx(**machine))
    for fact in (
        "numpy 2.1.3, scikit-learn 1.5.2, lightgbm 4.5.0",
        "CPU: 3 cores",
        "n_jobs=3",
        "about 3.0 GB (3072 MB) for the script and every process it starts",
        "GPU: none. Use CPU-only",
        "killed after 300 seconds (5 minutes)",
        "Network: there is no network access",
        "`./input/` is read-only",
    ):
        assert fact in system
    assert "the usual ones" not in system
    with_gpu = coder.system_prompt(ctx(**{**machine, "gpus": 2, "network": True}))
    assert "GPU: 2 NVIDIA GPUs (CUDA) visible to the script. Use the GPU" in with_gpu and "CPU-only" not in with_gpu
    assert "Network: the network is reachable" in with_gpu
    unknown = coder.system_prompt(ctx(**{**machine, "packages": ""}))
    assert "could not be listed" in unknown
    review_system, _ = coder.review_messages(ctx(**machine), parent())
    for fact in (
        "numpy 2.1.3, scikit-learn 1.5.2, lightgbm 4.5.0",
        "CPU: 3 cores",
        "GPU: none.",
        "killed after 300 seconds (5 minutes)",
    ):
        assert fact in review_system


def test_hint_goes_into_the_user_message():
    client = StubClient([Reply(GOOD)])
    LlmCoder(client, settings()).draft(ctx(hint="Try LightGBM with target encoding"), lambda s: None)
    text = user_text(client.stream_calls[0])
    assert "Try LightGBM with target encoding" in text and "Hint from the user" in text
    assert "LightGBM" not in client.stream_calls[0]["system"]


def test_improve_includes_parent_code_metric_and_review():
    client = StubClient([Reply(GOOD)])
    LlmCoder(client, settings()).improve(ctx(direction="minimize"), parent(), lambda s: None)
    text = user_text(client.stream_calls[0])
    assert text.splitlines()[0] == "# Improve"
    assert "import pandas as pd" in text and "0.1432" in text and "lower is better" in text
    assert "Random forest reached RMSE" in text and "ONE atomic change" in text


def test_debug_includes_output_and_traceback():
    tb = "Traceback (most recent call last):\n  File \"solution.py\", line 3\nKeyError: 'SalePrice'"
    node = parent(
        status="buggy",
        metric=None,
        output="loading data\n" + "x" * 20000 + "\nboom at the end",
        exec=ExecInfo(exit_code=1, exc_type="KeyError", traceback=tb),
        review_summary="KeyError on column.",
    )
    client = StubClient([Reply(GOOD)])
    LlmCoder(client, settings()).debug(ctx(), node, lambda s: None)
    text = user_text(client.stream_calls[0])
    assert text.splitlines()[0] == "# Debug"
    assert "KeyError: 'SalePrice'" in text and "boom at the end" in text and "exited with code 1" in text.lower()
    assert "loading data" in text  # head kept too
    assert len(text) < 15000  # output bounded


def test_debug_of_timeout_says_so():
    node = parent(
        status="timeout",
        metric=None,
        output="epoch 1\n",
        exec=ExecInfo(exit_code=None, killed_reason="timeout", wall_time=300.0),
    )
    client = StubClient([Reply(GOOD)])
    LlmCoder(client, settings()).debug(ctx(), node, lambda s: None)
    assert "time limit" in user_text(client.stream_calls[0])


def test_no_code_retries_then_raises_with_summed_usage():
    client = StubClient(
        [Reply("I would use a GBM."), Reply(""), Reply("Plan\n```python\nx = (", stop_reason="max_tokens")]
    )
    deltas: list[str] = []
    with pytest.raises(CoderError) as err:
        LlmCoder(client, settings()).draft(ctx(), deltas.append)
    assert len(client.stream_calls) == 3
    assert err.value.usage.calls == 3 and err.value.usage.input_tokens == 30
    assert err.value.usage.cost == pytest.approx(0.03)
    assert "cut off" in str(err.value)
    second = client.stream_calls[1]["messages"]
    assert [m["role"] for m in second] == ["user", "assistant", "user"]
    assert second[1]["content"] == "I would use a GBM." and "no fenced" in second[2]["content"]
    # the empty reply is not echoed as an (invalid) empty assistant turn
    assert all(m["content"].strip() for m in client.stream_calls[2]["messages"])


def test_improve_and_debug_mark_the_end_of_the_parent_block_as_a_breakpoint():
    """The parent block stays byte-identical across improvements of one node while
    the memory after the breakpoint changes, so the client can cache it."""
    client = StubClient([Reply(GOOD)] * 3)
    coder = LlmCoder(client, settings())
    coder.improve(ctx(memory="first memory"), parent(), lambda s: None)
    coder.improve(ctx(memory="second memory", hint="try lags"), parent(), lambda s: None)
    coder.debug(ctx(), parent(status="buggy", exec=ExecInfo(exit_code=1)), lambda s: None)
    blocks = [c["messages"][0]["content"] for c in client.stream_calls]
    for content in blocks:
        assert [b.get("cache_control") for b in content] == [{"type": "ephemeral"}, None]
        assert "import pandas as pd" in content[0]["text"] and "What has been tried" in content[1]["text"]
        assert "\x00" not in content[0]["text"] + content[1]["text"]
    assert blocks[0][0] == blocks[1][0] and blocks[0][1] != blocks[1][1]
    assert "first memory" in blocks[0][1]["text"] and "try lags" in blocks[1][1]["text"]


def test_an_override_without_the_break_sends_one_plain_message(tmp_path):
    (tmp_path / ".aide" / "prompts").mkdir(parents=True)
    (tmp_path / ".aide" / "prompts" / "improve.md").write_text("Improve node {{parent_id}}.\n{{memory}}\n")
    client = StubClient([Reply(GOOD)])
    LlmCoder(client, settings(), project_dir=tmp_path).improve(ctx(), parent(), lambda s: None)
    assert client.stream_calls[0]["messages"][0]["content"].startswith("Improve node 4.")


@pytest.mark.parametrize("timeout, ttl", [(600, "1h"), (241, "1h"), (240, "5m"), (60, "5m")])
def test_cache_ttl_follows_the_script_timeout(timeout, ttl):
    client = StubClient(
        [Reply(GOOD)], tool_input={"is_bug": False, "metric": 1.0, "summary": "ok", "lower_is_better": True}
    )
    coder = LlmCoder(client, settings())
    coder.draft(ctx(timeout=timeout), lambda s: None)
    coder.review(ctx(timeout=timeout), parent())
    assert client.stream_calls[0]["cache_ttl"] == client.tool_calls[0]["cache_ttl"] == ttl


@pytest.mark.parametrize(
    "model, thinking, effort, sent_thinking, sent_effort",
    [
        # auto: the model's own default (the 5.5 models think adaptively), at the draft's effort
        ("claude-sonnet-5-5", "auto", "", None, "high"),
        # off: the lowest setting each model accepts
        ("claude-sonnet-5-5", "off", "", {"type": "between_tools"}, "high"),
        ("claude-sonnet-5-5", "off", "max", {"type": "between_tools"}, "high"),  # refused at xhigh/max
        ("claude-haiku-5-5", "off", "", {"type": "disabled"}, "high"),
        ("claude-opus-5-5", "off", "", None, "low"),  # cannot turn thinking off: least effort instead
        ("claude-sonnet-5-5", "adaptive", "xhigh", {"type": "adaptive"}, "xhigh"),
        ("claude-opus-4-8", "2048", "low", {"type": "enabled", "budget_tokens": 2048}, "low"),
        ("claude-sonnet-4-5", "auto", "", None, None),  # takes no effort: none is sent
    ],
)
def test_thinking_and_effort_settings_reach_the_coder_call(model, thinking, effort, sent_thinking, sent_effort):
    client = StubClient([Reply(GOOD)])
    configured = Settings(memory_limit="1G", code_model=model, max_tokens=4096, thinking=thinking, effort=effort)
    LlmCoder(client, configured).draft(ctx(), lambda s: None)
    assert client.stream_calls[0]["thinking"] == sent_thinking and client.stream_calls[0]["effort"] == sent_effort


@pytest.mark.parametrize("operation, effort", [("draft", "high"), ("improve", "medium"), ("debug", "medium")])
def test_each_operation_asks_for_its_own_effort(operation, effort):
    client = StubClient([Reply(GOOD)])
    coder = LlmCoder(client, Settings(memory_limit="1G"))
    if operation == "draft":
        coder.draft(ctx(), lambda s: None)
    else:
        getattr(coder, operation)(ctx(), parent(status="buggy", metric=None), lambda s: None)
    assert client.stream_calls[0]["effort"] == effort and client.stream_calls[0]["thinking"] is None
    assert client.stream_calls[0]["max_tokens"] == 32_000  # room for thinking and the script


@pytest.mark.parametrize(
    "feedback_model, sent_thinking",
    [("claude-haiku-5-5", {"type": "disabled"}), ("claude-sonnet-5-5", {"type": "between_tools"})],
)
def test_the_review_thinks_least_at_review_effort_with_room_for_the_call(feedback_model, sent_thinking):
    client = StubClient(tool_input={"is_bug": False, "metric": 1.0, "summary": "ok", "lower_is_better": True})
    LlmCoder(client, Settings(memory_limit="1G", feedback_model=feedback_model)).review(ctx(), parent())
    call = client.tool_calls[0]
    assert call["thinking"] == sent_thinking and call["effort"] == "low"


def test_a_budget_on_a_model_that_refuses_budgets_is_an_error_at_start_naming_the_fix():
    from aide_tui.settings import resolve

    with pytest.raises(
        UserError, match=r"^--thinking: thinking .*claude-sonnet-5-5 does not accept a thinking budget.*adaptive"
    ):
        resolve(None, {"thinking": "2048"})
    assert resolve(None, {"thinking": "2048", "code_model": "claude-opus-4-8"}).thinking == "2048"


@pytest.mark.parametrize(
    "bad, needle",
    [
        ({"thinking": "500"}, "thinking"),
        ({"thinking": "9000"}, "below max_tokens"),
        ({"effort": "extreme"}, "effort"),
        ({"review_effort": "huge"}, "review_effort"),
        ({"max_tokens": 200_000}, "128,000"),
        ({"max_refusals": -1}, "max_refusals"),
    ],
)
def test_bad_thinking_or_effort_is_one_line_naming_the_setting(bad, needle):
    from aide_tui.settings import resolve

    with pytest.raises(UserError, match=needle):
        resolve(None, {"max_tokens": 8192, **bad})


@pytest.mark.parametrize("stop, needle", [("refusal", "declined"), ("model_context_window_exceeded", "context window")])
def test_refusal_and_full_context_fail_the_node_without_asking_again(stop, needle):
    client = StubClient([Reply("I can't help with that.", stop_reason=stop), Reply(GOOD)])
    with pytest.raises(CoderError, match=needle) as err:
        LlmCoder(client, settings()).draft(ctx(), lambda s: None)
    assert len(client.stream_calls) == 1 and err.value.usage.calls == 1


def test_pause_turn_is_resumed_from_where_it_stopped():
    first, rest = GOOD[:40], GOOD[40:]
    client = StubClient([Reply(first + "  ", stop_reason="pause_turn"), Reply(rest)])
    takes_prefill = Settings(memory_limit="1G", code_model="claude-sonnet-4-5", max_tokens=1234)
    proposal = LlmCoder(client, takes_prefill).draft(ctx(), lambda s: None)
    assert "Validation metric" in proposal.code and proposal.usage.calls == 2
    resumed = client.stream_calls[1]["messages"]
    assert [m["role"] for m in resumed] == ["user", "assistant"] and resumed[1]["content"] == first.rstrip()


def test_retry_succeeds_and_sums_usage():
    client = StubClient([Reply("No code, sorry."), Reply(GOOD)])
    proposal = LlmCoder(client, settings()).draft(ctx(), lambda s: None)
    assert proposal.usage.calls == 2 and proposal.usage.output_tokens == 10
    assert "Validation metric" in proposal.code


def test_auth_error_propagates():
    client = StubClient(raise_exc=AuthFailed("invalid x-api-key", kind="auth"))
    coder = LlmCoder(client, settings())
    with pytest.raises(AuthFailed):
        coder.draft(ctx(), lambda s: None)
    with pytest.raises(AuthFailed):
        coder.review(ctx(), parent())


def test_cancellation_propagates():
    class Cancelled(Exception):
        pass

    with pytest.raises(Cancelled):
        LlmCoder(StubClient(raise_exc=Cancelled()), settings()).improve(ctx(), parent(), lambda s: None)


# ---------------------------------------------------------------- review


def test_review_call_and_parse():
    client = StubClient(tool_input={"is_bug": False, "metric": 0.1432, "summary": "RF ok.", "lower_is_better": True})
    node = parent(
        output="Validation metric: 0.1432\n", exec=ExecInfo(exit_code=0, wall_time=3.0, outputs=["submission.csv"])
    )
    review = LlmCoder(client, settings()).review(ctx(), node)
    call = client.tool_calls[0]
    assert "## Files it wrote in its working directory\n\nsubmission.csv" in user_text(call)
    assert call["model"] == "review-m" and call["tool"] is REVIEW_TOOL
    assert "Predict SalePrice" in call["system"]
    assert "Validation metric: 0.1432" in user_text(call) and "submit_review" in user_text(call)
    assert (review.is_bug, review.metric, review.summary, review.direction) == (False, 0.1432, "RF ok.", "minimize")
    assert review.usage.calls == 1


def test_review_tool_schema():
    schema = REVIEW_TOOL["input_schema"]
    assert REVIEW_TOOL["name"] == "submit_review"
    assert set(schema["required"]) == {"is_bug", "metric", "summary", "lower_is_better"}
    assert "null" in schema["properties"]["metric"]["type"]


@pytest.mark.parametrize(
    "raw, want",
    [
        ("0.91", 0.91),
        (" 1e-3 ", 0.001),
        (3, 3.0),
        ("nan", None),
        ("NaN", None),
        ("inf", None),
        (float("nan"), None),
        ("garbage", None),
        (None, None),
        (True, None),
    ],
)
def test_parse_metric(raw, want):
    assert parse_metric(raw) == want


def test_review_tolerates_loose_types():
    client = StubClient(tool_input={"is_bug": "false", "metric": "0.91", "summary": "fine", "lower_is_better": "false"})
    review = LlmCoder(client, settings()).review(ctx(), parent())
    assert (review.is_bug, review.metric, review.direction) == (False, 0.91, "maximize")
    client = StubClient(tool_input={"summary": "?"})
    review = LlmCoder(client, settings()).review(ctx(), parent())
    assert review.is_bug is True and review.metric is None and review.direction is None


def test_review_output_is_bounded_and_tail_biased():
    node = parent(output="start\n" + "noise\n" * 50000 + "Validation metric: 0.77\n")
    client = StubClient(tool_input={"is_bug": False, "metric": 0.77, "summary": "", "lower_is_better": False})
    LlmCoder(client, settings()).review(ctx(), node)
    text = user_text(client.tool_calls[0])
    assert "Validation metric: 0.77" in text and len(text) < 12000


# ---------------------------------------------------------------- through the real client


def test_llm_coder_through_the_real_client_and_local_api(fake_api):
    """The prompts, retry turns and review tool survive the real SDK and wire format."""
    from fake_api import TextReply, ToolReply, last_user_text

    from aide_tui.llm.client import LlmClient

    seen: list[dict] = []

    def responder(body: dict):
        seen.append(body)
        if body.get("tool_choice"):
            return ToolReply(
                "submit_review", {"is_bug": False, "metric": "0.25", "summary": "ok", "lower_is_better": True}
            )
        if len(seen) == 1:
            return TextReply("Thinking about it, no code yet.")
        assert last_user_text(body).startswith("Your reply contained no fenced")
        return TextReply(GOOD)

    fake_api.responder = responder
    client = LlmClient(api_key="sk-test", base_url=fake_api.url, max_retries=0, timeout=10)
    coder = LlmCoder(client, settings())
    deltas: list[str] = []
    proposal = coder.draft(ctx(hint="be quick"), deltas.append)
    assert proposal.code == "print('Validation metric: 0.5')\n" and proposal.usage.calls == 2
    assert "".join(deltas).endswith(GOOD)
    assert [m["role"] for m in seen[1]["messages"]] == ["user", "assistant", "user"]
    assert json_text(seen[0]["messages"][0]).startswith("# Draft")
    review = coder.review(ctx(), parent())
    assert (review.metric, review.direction, review.is_bug) == (0.25, "minimize", False)
    assert seen[-1]["tools"][0]["name"] == "submit_review"


def json_text(message: dict) -> str:
    content = message["content"]
    return content if isinstance(content, str) else "".join(b.get("text", "") for b in content)


def test_a_failed_review_is_asked_once_more_then_the_failure_reaches_the_engine():
    class Overloaded(Exception):
        pass

    client = StubClient(raise_exc=Overloaded("529 after retries"))
    with pytest.raises(Overloaded):
        LlmCoder(client, settings()).review(ctx(), parent())
    assert len(client.tool_calls) == 2
    assert client.tool_calls[0]["system"] == client.tool_calls[1]["system"]


def test_credentials_and_cancellation_are_not_retried_by_the_review():
    client = StubClient(raise_exc=AuthFailed("invalid x-api-key", kind="auth"))
    with pytest.raises(AuthFailed):
        LlmCoder(client, settings()).review(ctx(), parent())
    assert len(client.tool_calls) == 1
    cancel = threading.Event()
    cancel.set()
    client = StubClient(raise_exc=RuntimeError("stream closed"))
    with pytest.raises(RuntimeError):
        LlmCoder(client, settings(), cancel=cancel).review(ctx(), parent())
    assert len(client.tool_calls) == 1


def test_the_stable_prefixes_clear_the_default_models_cache_minimums_even_for_an_empty_task():
    """Tools, then the system prompt, form the cached prefix; below a model's minimum nothing is cached."""
    import json

    from aide_tui.llm.caching import MIN_CACHE_TOKENS, estimate_tokens, min_cache_tokens
    from aide_tui.llm.pricing import normalise_model
    from aide_tui.settings import DEFAULT_CODE_MODEL, DEFAULT_FEEDBACK_MODEL

    assert {normalise_model(DEFAULT_CODE_MODEL), normalise_model(DEFAULT_FEEDBACK_MODEL)} <= set(MIN_CACHE_TOKENS)
    coder = LlmCoder(StubClient(), Settings())
    bare = ctx(task="", data_preview="", packages="numpy 2.1.3")
    assert estimate_tokens(coder.system_prompt(bare)) >= min_cache_tokens(DEFAULT_CODE_MODEL)
    review_system, _ = coder.review_messages(bare, parent())
    review_prefix = estimate_tokens(json.dumps([REVIEW_TOOL])) + estimate_tokens(review_system)
    assert review_prefix >= min_cache_tokens(DEFAULT_FEEDBACK_MODEL)
