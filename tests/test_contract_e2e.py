"""Runs against the strict stand-in of the 5.5 contract: the default settings get code and a
tool-call review for every node; refusals stop the run; `--thinking 2048` stops at the start."""

from __future__ import annotations

import json

import pytest
from aide_script import ScriptedAide
from card_reader import card_reply, is_card_call
from fake_api import HEAVY_THINKING, RefusalReply
from helpers import Recorder, git, make_project, user_state

from aide_tui import events as ev
from aide_tui.cli import main
from aide_tui.engine import build_engine
from aide_tui.settings import resolve

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


@pytest.fixture
def strict_env(llm_env):
    llm_env.strict = True
    llm_env.thinking_tokens = dict(HEAVY_THINKING)  # thousands of tokens at high effort
    return llm_env


def settings(**over):
    base = dict(steps=4, num_drafts=2, debug_prob=1.0, timeout=30, memory_limit="1G", coder="llm", workers=1)
    return resolve(None, {**base, **over})


@pytest.mark.parametrize("feedback_model", ["claude-haiku-5-5", "claude-sonnet-5-5"])
def test_a_default_run_gets_code_and_a_tool_call_review_for_every_node(tmp_path, strict_env, feedback_model):
    strict_env.responder = ScriptedAide(crash_every=2)
    rec = Recorder()
    engine = build_engine(
        make_project(tmp_path / "proj"), settings(feedback_model=feedback_model), resume=False, listener=rec
    )
    finished = engine.run()
    assert finished.reason == "completed" and not rec.of(ev.RunError)
    nodes = [e.node for e in rec.of(ev.NodeFinished)]
    assert len(nodes) == 4 and all(n.code for n in nodes)
    assert all("review failed" not in n.review_summary for n in nodes)
    assert [n.status for n in nodes].count("ok") >= 2 and nodes[1].status == "buggy"  # the crash, reviewed as one
    assert not [r for r in strict_env.requests if r.outcome.startswith("error")]  # no 400 at any point
    reviews = [r for r in strict_env.requests if any(t["name"] == "submit_review" for t in r.body.get("tools", []))]
    assert len(reviews) == 4  # one call per node: the tool call came back the first time
    for node in nodes:  # every call counted, thinking included
        assert node.usage.calls == 2 and node.usage.thinking_tokens > 0 and node.usage.cost > 0


def test_refusals_in_a_row_stop_the_run_and_each_node_says_refused(tmp_path, strict_env):
    def refuse_code(body):
        return card_reply(body) if is_card_call(body) else RefusalReply("frontier_llm")

    strict_env.responder = refuse_code
    project = make_project(tmp_path / "proj")
    before = user_state(project)
    rec = Recorder()
    engine = build_engine(project, settings(steps=8, max_refusals=3), resume=False, listener=rec)
    engine.run()
    errors = rec.of(ev.RunError)
    assert [e.kind for e in errors] == ["refused"] and "refused 3 replies in a row" in errors[0].message
    nodes = [e.node for e in rec.of(ev.NodeFinished)]
    assert [n.coder_outcome for n in nodes] == ["refused (frontier_llm)"] * 3
    assert [n.operation for n in nodes] == ["draft"] * 3  # a node without code is never a debug target
    assert all(n.usage.calls == 1 and n.usage.cost > 0 for n in nodes)  # a refusal is still paid for
    branch = [b for b in git(project, "for-each-ref", "--format=%(refname:short)", "refs/heads/aide/").split()][-2]
    assert branch.endswith("0003-draft")
    node_json = json.loads(git(project, "show", f"{branch}:node.json"))
    assert node_json["status_word"] == "refused (frontier_llm)"
    assert user_state(project) == before


def test_a_thinking_budget_the_model_refuses_stops_at_the_start_in_one_line(tmp_path, capsys, strict_env):
    project = make_project(tmp_path / "proj")
    assert main([str(project), "--headless", "--coder", "llm", "--thinking", "2048"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--thinking" in err and "does not accept a thinking budget" in err
    assert not (project / ".aide").exists() and not strict_env.requests  # nothing created, nothing asked
