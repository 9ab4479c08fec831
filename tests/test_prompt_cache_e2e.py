"""One real run through engine, prompts, client, SDK and the caching stand-in:
improving one node again and again re-reads its parent block from the cache, and
each improve prompt says what was already tried on that node."""

from __future__ import annotations

import pytest
from aide_script import ScriptedAide
from fake_api import last_user_text
from helpers import make_project

from aide_tui import events as ev
from aide_tui.engine import build_engine
from aide_tui.settings import resolve

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


def test_repeated_improvements_of_one_node_read_its_parent_block_from_cache(tmp_path, llm_env):
    llm_env.responder = ScriptedAide(crash_every=100)
    project = make_project(tmp_path / "proj", dirty=False)
    settings = resolve(
        None,
        dict(steps=5, num_drafts=2, debug_prob=0.0, timeout=600, memory_limit="1G", coder="llm", seed=1, workers=1),
    )
    nodes: list = []
    engine = None

    def listener(event):
        if isinstance(event, ev.NodeFinished):
            nodes.append(event.node)
            if event.node.id == 2:  # the user asks to improve node 1 three times in a row
                for _ in range(3):
                    engine.submit(ev.ImproveNode(1))

    engine = build_engine(project, settings, resume=False, listener=listener)
    finished = engine.run()
    assert finished.reason == "completed"

    assert [n.parent_id for n in nodes] == [None, None, 1, 1, 1]
    coder_calls = [r for r in llm_env.requests if r.body.get("stream")]
    improves = [r for r, n in zip(coder_calls, nodes) if n.operation == "improve"]
    for request in improves:  # two breakpoints, both with the 1-hour TTL (timeout 600 s > 4 min)
        marks = [
            b["cache_control"]
            for b in request.body["system"] + request.body["messages"][0]["content"]
            if b.get("cache_control")
        ]
        assert marks == [{"type": "ephemeral", "ttl": "1h"}] * 2

    first, again, third = improves
    parent_block = again.body["messages"][0]["content"][0]["text"]
    assert parent_block == first.body["messages"][0]["content"][0]["text"]
    # the second improvement of the same parent reads system + parent block, not just the system prompt
    assert again.usage["cache_read_input_tokens"] > first.usage["cache_read_input_tokens"] + len(parent_block) // 8
    assert third.usage["cache_read_input_tokens"] == again.usage["cache_read_input_tokens"]
    assert "has not been changed before" in last_user_text(first.body)
    assert "Already tried on node 1" in last_user_text(again.body)
    assert "(2, newest first)" in last_user_text(third.body)
