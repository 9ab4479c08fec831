"""Patch edits and merges end to end: engine, operators, the real SDK against the local Messages
API, real scripts, real git, and a resumed run."""

from __future__ import annotations

import pytest
from aide_script import ScriptedAide
from helpers import git, make_project

from aide_tui import events as ev
from aide_tui.engine import build_engine
from aide_tui.settings import resolve

pytestmark = pytest.mark.timeout(240)


def settings(**kw):
    base = dict(
        steps=5,
        num_drafts=2,
        debug_prob=0.0,
        timeout=60,
        memory_limit="1G",
        coder="llm",
        seed=1,
        workers=1,
        llm_retries=0,
        policy="aide",
        edit="patch",
        holdout=0.0,
    )
    base.update(kw)
    return resolve(None, base)


def run(project, s, resume=False, on_finished=None, run_name=None):
    finished: dict[int, ev.NodeFinished] = {}
    engine = None

    def listener(event):
        if isinstance(event, ev.NodeFinished):
            finished[event.node.id] = event
            if on_finished is not None:
                on_finished(engine, event)

    engine = build_engine(project, s, resume=resume, listener=listener, run_name=run_name)
    done = engine.run()
    assert done.reason == "completed"
    return finished


def test_patch_edits_become_whole_scripts_in_git_fall_back_when_they_do_not_apply_and_resume(tmp_path, llm_env):
    llm_env.responder = ScriptedAide(crash_every=0, patch=True, bad_patch=2)
    project = make_project(tmp_path / "proj", dirty=False)
    nodes = run(project, settings())
    draft, patched, fallback = nodes[1], nodes[3], nodes[4]
    assert patched.node.operation == "improve" and patched.node.parent_id == 1
    # the node's code is the whole patched script: the parent's with the one line changed
    assert patched.node.code == draft.node.code.replace("METRIC = 110.0", "METRIC = 106.5")
    assert patched.node.status == "ok" and patched.node.metric == 106.5
    assert git(project, "show", f"{patched.branch}:solution.py") == patched.node.code
    diff = git(project, "diff", "--unified=0", draft.branch, patched.branch, "--", "solution.py").splitlines()
    assert [line for line in diff if line[:1] in "+-" and line[:3] not in ("+++", "---")] == [
        "-METRIC = 110.0",
        "+METRIC = 106.5",
    ]
    assert "the patch did not apply" in fallback.node.review_summary
    assert "not in the script" in fallback.node.review_summary
    assert fallback.node.status == "ok" and fallback.node.metric == 1.0  # the whole script the model wrote instead
    assert "the patch did not apply" not in patched.node.review_summary

    llm_env.responder = ScriptedAide(crash_every=0, patch=True)
    more = run(project, settings(steps=6), resume=True, run_name=draft.run)
    resumed = more[6].node
    assert (resumed.operation, resumed.parent_id) == ("improve", 5)  # the best node after node 5's patch
    assert resumed.code == nodes[5].node.code.replace("METRIC = -2.5", "METRIC = -6.0")


def test_a_merge_command_makes_a_node_with_two_parents_and_a_git_merge_commit(tmp_path, llm_env):
    responder = ScriptedAide(crash_every=0, patch=True)
    llm_env.responder = responder

    def merge_after_two(engine, event):
        if event.node.id == 2:
            engine.submit(ev.MergeNodes(1, 2))

    project = make_project(tmp_path / "proj", dirty=False)
    nodes = run(project, settings(steps=3), on_finished=merge_after_two)
    merged = nodes[3]
    assert merged.node.operation == "merge"
    assert (merged.node.parent_id, merged.node.parent_ids) == (1, [1, 2])
    assert merged.node.status == "ok" and merged.node.metric == 109.0  # below both parents (110, 120)
    parents = git(project, "log", "-1", "--format=%P", merged.branch).split()
    assert parents == [git(project, "rev-parse", nodes[i].branch).strip() for i in (1, 2)]
    prompt = next(text for op, text in responder.prompts if op == "merge")
    assert "METRIC = 110.0" in prompt and "METRIC = 120.0" in prompt  # both scripts
    trailer = git(project, "log", "-1", "--format=%(trailers:key=Aide-Parent,valueonly)", merged.branch).strip()
    assert trailer == "1 2"


@pytest.mark.parametrize("policy", ["aide+", "mcts"])
def test_every_policy_runs_nodes_in_flight_takes_steering_and_resumes(tmp_path, llm_env, policy):
    llm_env.responder = ScriptedAide(crash_every=3, patch=True)
    project = make_project(tmp_path / "proj", dirty=False)

    def steer(engine, event):
        if event.node.id == 2:
            engine.submit(ev.ImproveNode(2))  # a steering key overrides whatever the policy chose

    first = run(project, settings(steps=6, workers=2, policy=policy, debug_prob=0.5), on_finished=steer)
    assert sorted(first) == [1, 2, 3, 4, 5, 6]
    steered = [f.node for f in first.values() if f.node.operation == "improve" and f.node.parent_id == 2]
    assert steered, "the queued improve of #2 ran"
    more = run(project, settings(steps=9, workers=2, policy=policy), resume=True, run_name=first[1].run)
    assert sorted(more) == [7, 8, 9]
    for finished in more.values():
        assert all(parent in [*first, *more] for parent in finished.node.parent_ids)
