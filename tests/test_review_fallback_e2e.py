"""The printed metric line against the review, end to end: engine, operators, the real
SDK and the local Messages API, with review calls that disagree, fail once, or fail twice."""

from __future__ import annotations

import importlib.metadata

import pytest
from aide_script import ScriptedAide
from fake_api import ErrorReply, TextReply, ToolReply, system_text
from helpers import make_project

from aide_tui import events as ev
from aide_tui.engine import build_engine
from aide_tui.settings import resolve

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


class ReviewTrouble(ScriptedAide):
    """ScriptedAide whose n-th review call (1-based) gets the reply in `plan` instead."""

    def __init__(self, plan: dict[int, object]):
        super().__init__(crash_every=4)
        self.plan = plan
        self.review_calls = 0

    def __call__(self, body: dict):
        if any(t.get("name") == "submit_review" for t in body.get("tools") or []):  # not the task card's call
            with self.lock:
                self.review_calls += 1
                special = self.plan.get(self.review_calls)
            if special is not None:
                return special
        return super().__call__(body)


def test_printed_metric_decides_against_a_disagreeing_or_failed_review(tmp_path, llm_env):
    wrong = ToolReply(
        "submit_review", {"is_bug": False, "metric": 0.91, "summary": "Ran cleanly.", "lower_is_better": True}
    )
    overloaded = ErrorReply(529, message="Overloaded")
    responder = ReviewTrouble(
        {
            1: wrong,  # node 1: the review misreads the metric
            2: overloaded,  # node 2: fails once, the retry answers
            4: overloaded,
            5: TextReply("I cannot call tools right now."),  # node 3: fails twice
            6: overloaded,
            7: overloaded,  # node 4 (a crash): fails twice
        }
    )
    llm_env.responder = responder
    project = make_project(tmp_path / "proj", dirty=False)
    settings = resolve(
        None,
        dict(
            steps=4,
            num_drafts=4,
            debug_prob=0.0,
            timeout=60,
            memory_limit="1G",
            coder="llm",
            seed=1,
            workers=1,
            llm_retries=0,
        ),
    )
    nodes = {}

    def listener(event):
        if isinstance(event, ev.NodeFinished):
            nodes[event.node.id] = event.node

    finished = build_engine(project, settings, resume=False, listener=listener).run()
    assert finished.reason == "completed"
    assert responder.review_calls == 7

    first, second, third, fourth = (nodes[i] for i in (1, 2, 3, 4))
    assert (first.status, first.metric) == ("ok", 110.0)
    assert first.review_summary == "Ran cleanly. [review said 0.91; the script printed 110]"

    assert (second.status, second.metric) == ("ok", 120.0)
    assert second.review_summary == "Ran cleanly; validation RMSE 120.0."

    assert (third.status, third.metric) == ("ok", 130.0)
    assert third.review_summary.startswith("The review failed (LlmError:")
    assert "no 'submit_review' tool call" in third.review_summary
    assert third.review_summary.endswith("[no review; the printed metric 130 decides]")

    assert (fourth.status, fourth.metric) == ("buggy", None)
    assert "Anthropic API error 529" in fourth.review_summary and "[crashed (ValueError)]" in fourth.review_summary

    # every prompt names this interpreter's packages, probed once and kept with the run
    numpy = f"numpy {importlib.metadata.version('numpy')}"
    card_call = [r for r in llm_env.requests if (r.body.get("tool_choice") or {}).get("name") == "submit_task_card"]
    assert len(card_call) == 1  # the task card, read once at the start: its prompt is not a coder's or a reviewer's
    systems = {system_text(r.body) for r in llm_env.requests if r not in card_call}
    assert len(systems) == 2 and all(numpy in text and "CPU: " in text for text in systems)
    assert len(list((project / ".aide" / "runs").glob("*/machine.json"))) == 1
