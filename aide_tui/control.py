"""The user's hold on a run: the commands an engine accepts, their queue, pause and stop.

Each command is described once, here (`COMMAND_INFO`): what it does (key help) and what the
user is told when it is accepted.  `RunControl` checks a command against the tree,
queues it, and announces every change (CommandAccepted/Rejected, QueueChanged,
RunStateChanged) so a front end only shows what it is told.  Both the real engine and the
app tests' scripted engine steer through it, so they cannot disagree on what a command means.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import events as ev
from .search.node import Node, Operation, Status
from .search.operations import BY_COMMAND, OPERATIONS
from .search.task_card import TaskCard


@dataclass
class Plan:
    """What one step will do: the policy's choice or a queued command."""

    operation: Operation
    parent_id: int | None
    source: ev.PlanSource
    code: str | None = None  # manual nodes bring their own code
    plan: str = ""
    other_id: int | None = None  # a merge's second parent


@dataclass(frozen=True)
class Situation:
    """What an acceptance message depends on."""

    ahead: int  # queued steps that run before this command's step
    holding: bool  # the run is paused between steps (not merely asked to pause)


@dataclass(frozen=True)
class CommandInfo:
    does: str  # what the command does, for key help
    accepted: Callable[[Any, Situation], str]  # what the user is told when it is accepted


def _when(s: Situation) -> str:
    if s.ahead == 0:
        return "next"
    return f"after {s.ahead} queued step{'s' if s.ahead > 1 else ''}"


def _child_of(parent_id: int | None) -> str:
    return f"as a child of #{parent_id}" if parent_id is not None else "as a new root"


COMMAND_INFO: dict[type[ev.Command], CommandInfo] = {
    ev.DraftNext: CommandInfo("Next step writes a new draft solution", lambda c, s: f"a new draft runs {_when(s)}"),
    ev.ImproveNode: CommandInfo(
        "Next step improves the selected node", lambda c, s: f"improving #{c.node_id} runs {_when(s)}"
    ),
    ev.DebugNode: CommandInfo(
        "Next step debugs the selected buggy node", lambda c, s: f"debugging #{c.node_id} runs {_when(s)}"
    ),
    ev.RunCode: CommandInfo(
        "Edit the selected node's code and run it as a child",
        lambda c, s: f"your code runs {_when(s)}, {_child_of(c.parent_id)}",
    ),
    ev.MergeNodes: CommandInfo(
        "Next step merges the selected node with the marked one",
        lambda c, s: f"merging #{c.node_id} with #{c.other_id} runs {_when(s)}",
    ),
    ev.AddHint: CommandInfo("Add advice to the next prompt", lambda c, s: "the next prompt includes your hint"),
    ev.Pause: CommandInfo(
        "Pause after the current step; again resumes, or cancels a pause not yet reached",
        lambda c, s: "pausing after the current step",
    ),
    ev.Resume: CommandInfo(
        "Resume a paused run", lambda c, s: "resuming" if s.holding else "the pending pause is cancelled"
    ),
    ev.StopAfterStep: CommandInfo(
        "Stop cleanly after the current step (resumable)", lambda c, s: "stopping after the current step"
    ),
    ev.ConfirmTaskCard: CommandInfo(
        "Start the run with this task card", lambda c, s: "the run starts with the confirmed task card"
    ),
    ev.CancelNow: CommandInfo("Stop now: the running step is discarded (resumable)", lambda c, s: "cancelling now"),
}


def command_target(command: ev.Command) -> int | None:
    """The node a step command builds on (None: a new root)."""
    return getattr(command, "node_id", getattr(command, "parent_id", None))


def queued_step_plan(command: ev.Command) -> Plan:
    spec = BY_COMMAND.get(command.name)
    if spec is None:
        raise TypeError(f"{command!r} queues no step")
    if spec.coder_method is None:  # the user's own code
        return Plan(spec.name, command_target(command), "command", code=command.code, plan=command.plan)  # type: ignore[attr-defined]
    return Plan(spec.name, command_target(command), "command", other_id=getattr(command, "other_id", None))


def target_problem(
    operation: Operation,
    node_id: int,
    status: Status | None,
    *,
    running: bool = False,
    keys: dict[str, str] | None = None,
    no_code: str = "",
) -> str | None:
    """Why node `node_id` cannot be the parent of a step of `operation` now; None when it can.

    The one rule for "can this command run now?": the engine's `RunControl` applies it to every
    command it receives, and the app to dim its keys and say why (passing its `keys`, e.g.
    {"debug": "b"}, so the advice names them).  `status` is the finished node's (None: no
    finished node of that id; `running`: it exists but has not finished).  `no_code`: why a
    finished node has no script ('refused (cyber)', 'no code'; empty when it has one): such a
    node has nothing to fix, so it is never a debug target."""

    def named(op: str) -> str:
        return f"{op} it ({keys[op]})" if keys and op in keys else f"{op} it"

    if status is None:
        if running:
            return f"node #{node_id} is still running; {named(operation)} once it has finished"
        return f"there is no finished node #{node_id}"
    spec = OPERATIONS[operation]
    buggy = status != "ok"
    if spec.parent_kind == "working" and buggy:
        return f"node #{node_id} is {status}; {named(spec.instead or 'debug')} instead"
    if spec.parent_kind == "buggy" and not buggy:
        return f"node #{node_id} works; there is nothing to {operation} ({named(spec.instead or 'improve')} instead)"
    if spec.parent_kind == "buggy" and no_code:
        draft = f"start a new draft ({keys['draft']})" if keys and "draft" in keys else "start a new draft"
        return f"node #{node_id} has no code ({no_code}); there is nothing to fix ({draft} instead)"
    return None


class RunControl:
    """Thread-safe: `submit` is called from any thread, the rest from the run's own loop.

    `lookup(node_id)` gives a finished node or None; `emit` sends an event to the front end.
    """

    def __init__(
        self,
        lookup: Callable[[int], Node | None],
        emit: Callable[[ev.Event], None],
        cancel: threading.Event | None = None,
        lock: threading.RLock | None = None,
    ) -> None:
        self._lookup = lookup
        self._emit = emit
        self.cancel = cancel or threading.Event()
        self._lock = lock or threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._queue: collections.deque[Plan] = collections.deque()
        self._hints: list[str] = []
        self._paused = False  # asked to pause (pending until the loop holds)
        self._holding = False  # the loop is waiting in hold_if_paused
        self._stop = False
        self._awaiting_card = False  # the loop waits in await_card for ConfirmTaskCard
        self._card: TaskCard | None = None
        self.card_check: Callable[[TaskCard], str | None] | None = None  # why a card does not fit the data

    # ------------------------------------------------------------ front end side

    def submit(self, command: ev.Command) -> bool:
        """Check, apply and announce a command; True when accepted."""
        with self._lock:
            reason = self._check(command)
            if reason is None:
                situation = Situation(len(self._queue), self._holding)
                follow_up = self._apply(command)
                self._wake.notify_all()
        if reason is not None:
            self._emit(ev.CommandRejected(command.name, reason))
            return False
        self._emit(ev.CommandAccepted(command.name, COMMAND_INFO[type(command)].accepted(command, situation)))
        for event in follow_up:
            self._emit(event)
        return True

    def _check(self, command: ev.Command) -> str | None:
        spec = BY_COMMAND.get(command.name)
        target = command_target(command) if spec is not None else None
        if spec is not None and target is not None:
            node = self._lookup(target)
            no_code = (node.coder_outcome or "no code") if node is not None and not node.code.strip() else ""
            problem = target_problem(spec.name, target, node.status if node is not None else None, no_code=no_code)
            if problem:
                return problem
        if isinstance(command, ev.MergeNodes):
            if command.other_id == command.node_id:
                return f"node #{command.node_id} cannot be merged with itself; mark another node (m)"
            other = self._lookup(command.other_id)
            problem = target_problem("merge", command.other_id, other.status if other is not None else None)
            if problem:
                return problem
        match command:
            case ev.RunCode(code=code):
                if not code.strip():
                    return "the code is empty"
            case ev.AddHint(text=text):
                if not text.strip():
                    return "the hint is empty"
            case ev.Pause():
                if self._stop:
                    return "the run is stopping after this step"
                if self._paused:
                    return "already paused"
            case ev.Resume():
                if not self._paused:
                    return "not paused"
            case ev.StopAfterStep():
                if self._stop:
                    return "already stopping after this step"
            case ev.ConfirmTaskCard(card=card):
                if not self._awaiting_card:
                    return "the run is not waiting for a task card"
                if self.card_check is not None:
                    return self.card_check(card)
            case ev.DraftNext() | ev.ImproveNode() | ev.DebugNode() | ev.MergeNodes() | ev.CancelNow():
                pass
            case _:
                return f"unknown command {command!r}"
        return None

    def _apply(self, command: ev.Command) -> list[ev.Event]:
        """Change the control state (under the lock); returns the events that announce it."""
        if command.name in BY_COMMAND:  # a step command: queued
            self._queue.append(queued_step_plan(command))
            return [self.snapshot()]
        match command:
            case ev.AddHint(text=text):
                self._hints.append(text.strip())
                return [self.snapshot()]
            case ev.Pause():
                self._paused = True
                return [ev.RunStateChanged("pausing", "pausing after the current step")]
            case ev.Resume():
                self._paused = False
                if self._holding:
                    return []  # the loop wakes and says "running"
                return [ev.RunStateChanged("running", "pause cancelled")]
            case ev.StopAfterStep():
                self._stop = True
                return [ev.RunStateChanged("stopping", "stopping after the current step")]
            case ev.CancelNow():
                self._stop = True
                self.cancel.set()
                return [ev.RunStateChanged("stopping", "cancelling")]
            case ev.ConfirmTaskCard(card=card):
                self._card, self._awaiting_card = card, False
        return []

    def snapshot(self) -> ev.QueueChanged:
        """The queue as QueueChanged announces it."""
        steps = tuple(ev.QueuedStep(p.operation, p.parent_id) for p in self._queue)
        return ev.QueueChanged(steps, tuple(self._hints))

    # ------------------------------------------------------------ loop side

    @property
    def stop_requested(self) -> bool:
        return self._stop

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def holding(self) -> bool:
        """The loop is blocked in `hold_if_paused` right now (not merely told to pause)."""
        return self._holding

    def wait(self, timeout: float) -> None:
        """Block the loop until a command arrives, `notify` is called, or `timeout` passes."""
        with self._lock:
            self._wake.wait(timeout)

    def notify(self) -> None:
        """Wake the loop (a node finished, so a worker is free)."""
        with self._lock:
            self._wake.notify_all()

    def hold_if_paused(self, poll: float = 0.5) -> bool:
        """Block while paused; False when woken by stop/cancel, so the loop re-checks."""
        with self._lock:
            if not self._paused:
                return True
            self._holding = True
        self._emit(ev.RunStateChanged("paused"))
        with self._lock:
            while self._paused and not self.cancel.is_set() and not self._stop:
                self._wake.wait(timeout=poll)
            self._holding = False
            resumed = not self._paused
        if resumed:
            self._emit(ev.RunStateChanged("running"))
        return resumed and not self.cancel.is_set() and not self._stop

    def await_card(self, poll: float = 0.5) -> TaskCard | None:
        """Block until ConfirmTaskCard brings the card; None when stopped or cancelled first."""
        with self._lock:
            self._card, self._awaiting_card = None, True
            while self._card is None and not self.cancel.is_set() and not self._stop:
                self._wake.wait(timeout=poll)
            self._awaiting_card = False
            return self._card

    def peek(self) -> Plan | None:
        with self._lock:
            return self._queue[0] if self._queue else None

    def take(self) -> tuple[Plan | None, str | None]:
        """The next queued step (or None: the policy decides) and the hints for its prompt.

        A hand-written step has no prompt, so the hints wait for the next one."""
        with self._lock:
            plan = self._queue.popleft() if self._queue else None
            hint = None
            if self._hints and (plan is None or OPERATIONS[plan.operation].prompt is not None):
                hint = "\n".join(self._hints)
                self._hints.clear()
            changed = plan is not None or hint is not None
            event = self.snapshot()
        if changed:
            self._emit(event)
        return plan, hint

    def give_back(self, plan: Plan | None, hint: str | None) -> None:
        """A step that recorded nothing (LLM failure): its command and hint apply to the retry."""
        with self._lock:
            if plan is not None and plan.source == "command":
                self._queue.appendleft(plan)
            if hint:
                self._hints.insert(0, hint)
            changed = (plan is not None and plan.source == "command") or bool(hint)
            event = self.snapshot()
        if changed:
            self._emit(event)

    def drop_queue(self) -> None:
        """The run ends: what is still queued will not run (a resumed run starts with none)."""
        with self._lock:
            had = bool(self._queue or self._hints)
            self._queue.clear()
            self._hints.clear()
            event = self.snapshot()
        if had:
            self._emit(event)
