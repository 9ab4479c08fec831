"""RunControl alone: what a command does to the queue and the run state, and what the user is told."""

from __future__ import annotations

import threading

from aide_tui import events as ev
from aide_tui.control import COMMAND_INFO, RunControl
from aide_tui.search.node import Node

NODES = {
    1: Node(1, None, "draft", 1, status="ok", metric=0.5),
    2: Node(2, None, "draft", 2, status="buggy", code="x = 1\n"),
    3: Node(3, None, "draft", 3, status="buggy", coder_outcome="refused (cyber)"),
}


def control() -> tuple[RunControl, list[ev.Event]]:
    seen: list[ev.Event] = []
    return RunControl(NODES.get, seen.append), seen


def answers(seen: list[ev.Event]) -> list[str]:
    return [
        e.detail if isinstance(e, ev.CommandAccepted) else f"rejected: {e.reason}"
        for e in seen
        if isinstance(e, (ev.CommandAccepted, ev.CommandRejected))
    ]


def test_every_command_is_described_once():
    assert set(COMMAND_INFO) == {
        c for c in vars(ev).values() if isinstance(c, type) and issubclass(c, ev.Command) and c is not ev.Command
    }


def test_a_node_without_code_is_no_debug_target():
    c, seen = control()
    c.submit(ev.DebugNode(3))
    assert answers(seen) == [
        "rejected: node #3 has no code (refused (cyber)); there is nothing to fix (start a new draft instead)"
    ]
    assert c.snapshot().steps == ()


def test_acceptance_says_where_the_step_is_in_the_queue():
    c, seen = control()
    c.submit(ev.DraftNext())
    c.submit(ev.RunCode(1, "print(1)"))
    c.submit(ev.ImproveNode(1))
    assert answers(seen) == [
        "a new draft runs next",
        "your code runs after 1 queued step, as a child of #1",
        "improving #1 runs after 2 queued steps",
    ]
    assert c.snapshot().steps == (ev.QueuedStep("draft", None), ev.QueuedStep("manual", 1), ev.QueuedStep("improve", 1))
    queue_events = [e for e in seen if isinstance(e, ev.QueueChanged)]
    assert [len(e.steps) for e in queue_events] == [1, 2, 3]


def test_commands_on_missing_or_unsuitable_nodes_are_rejected_and_queue_nothing():
    c, seen = control()
    c.submit(ev.ImproveNode(2))
    c.submit(ev.DebugNode(1))
    c.submit(ev.ImproveNode(9))
    c.submit(ev.RunCode(1, "  "))
    c.submit(ev.AddHint(" "))
    assert answers(seen) == [
        "rejected: node #2 is buggy; debug it instead",
        "rejected: node #1 works; there is nothing to debug (improve it instead)",
        "rejected: there is no finished node #9",
        "rejected: the code is empty",
        "rejected: the hint is empty",
    ]
    assert c.peek() is None and not any(isinstance(e, ev.QueueChanged) for e in seen)


def test_hints_wait_for_a_step_with_a_prompt_and_a_failed_step_gives_them_back():
    c, seen = control()
    c.submit(ev.RunCode(None, "print(1)"))
    c.submit(ev.AddHint("use target encoding"))
    plan, hint = c.take()
    assert plan.operation == "manual" and hint is None  # hand-written code has no prompt
    plan, hint = c.take()
    assert plan is None and hint == "use target encoding"  # the policy's step gets it
    c.submit(ev.DebugNode(2))
    plan, hint = c.take()
    c.give_back(plan, "again")
    assert c.snapshot() == ev.QueueChanged((ev.QueuedStep("debug", 2),), ("again",))
    assert seen[-1] == c.snapshot()


def test_a_second_pause_before_the_step_ends_cancels_the_pending_pause():
    c, seen = control()
    assert c.submit(ev.Pause())
    assert not c.submit(ev.Pause())  # already asked
    assert c.submit(ev.Resume())
    states = [(e.state, e.reason) for e in seen if isinstance(e, ev.RunStateChanged)]
    assert states == [("pausing", "pausing after the current step"), ("running", "pause cancelled")]
    assert answers(seen) == [
        "pausing after the current step",
        "rejected: already paused",
        "the pending pause is cancelled",
    ]
    assert c.hold_if_paused() is True  # nothing holds the loop


def test_the_loop_holds_while_paused_and_says_so():
    c, seen = control()
    c.submit(ev.Pause())
    holding = threading.Thread(target=c.hold_if_paused, kwargs={"poll": 0.01})
    holding.start()
    while not any(isinstance(e, ev.RunStateChanged) and e.state == "paused" for e in seen):
        holding.join(0.01)
    c.submit(ev.Resume())
    holding.join(5)
    assert not holding.is_alive()
    assert [e.state for e in seen if isinstance(e, ev.RunStateChanged)] == ["pausing", "paused", "running"]
    assert answers(seen)[-1] == "resuming"


def test_stop_is_announced_once_and_a_pause_after_it_is_refused():
    c, seen = control()
    assert c.submit(ev.StopAfterStep()) and c.stop_requested
    assert not c.submit(ev.StopAfterStep())
    assert not c.submit(ev.Pause())
    assert [e.state for e in seen if isinstance(e, ev.RunStateChanged)] == ["stopping"]
    assert c.hold_if_paused() is True


def test_what_is_left_in_the_queue_is_dropped_and_announced_when_the_run_ends():
    c, seen = control()
    c.drop_queue()
    assert seen == []  # nothing queued, nothing to say
    c.submit(ev.DraftNext())
    c.drop_queue()
    assert seen[-1] == ev.QueueChanged((), ())


def test_a_task_card_is_taken_only_while_the_run_waits_for_one_and_only_if_it_fits():
    from aide_tui.search.task_card import TaskCard

    card = TaskCard("train.csv", None, "y", [], "rmse", "minimize")
    c, seen = control()
    c.submit(ev.ConfirmTaskCard(card))
    c.card_check = lambda k: None if k.target == "y" else f"task card: target {k.target!r} is not a column"
    got: list = []
    waiter = threading.Thread(target=lambda: got.append(c.await_card(poll=0.01)))
    waiter.start()
    while not c._awaiting_card:
        threading.Event().wait(0.01)
    c.submit(ev.ConfirmTaskCard(TaskCard("train.csv", None, "nope", [], "rmse", "minimize")))
    c.submit(ev.ConfirmTaskCard(card))
    waiter.join(5)
    assert got == [card]
    assert answers(seen) == [
        "rejected: the run is not waiting for a task card",
        "rejected: task card: target 'nope' is not a column",
        "the run starts with the confirmed task card",
    ]


def test_a_stop_ends_the_wait_for_a_task_card_without_one():
    c, _ = control()
    got: list = []
    waiter = threading.Thread(target=lambda: got.append(c.await_card(poll=0.01)))
    waiter.start()
    c.submit(ev.CancelNow())
    waiter.join(5)
    assert got == [None]


def test_the_app_is_told_the_same_rule_with_its_keys():
    from aide_tui.control import target_problem

    assert target_problem("debug", 3, "buggy", keys={"draft": "d"}, no_code="cut off (thinking)") == (
        "node #3 has no code (cut off (thinking)); there is nothing to fix (start a new draft (d) instead)"
    )
    assert target_problem("debug", 2, "buggy", keys={"draft": "d"}) is None
