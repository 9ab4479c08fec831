"""The scheduler: start nodes while workers are free, each in its own thread, until the run ends.

With one worker this is the paper's sequential AIDE: the next node is planned only once the
previous one is durable.  This part owns the nodes in flight, the ids given back by steps that
recorded nothing, the errors worker threads hand to the main thread, and the announced plan;
they are guarded by the run's lock (`engine.run_lock`), which also guards the tree they are
counted against.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import events as ev
from ..control import Plan
from ..errors import FatalRunError
from ..run.sandbox import available_cpus
from ..search.policy import Decision
from .warm import WARM_AHEAD

if TYPE_CHECKING:
    from .core import Engine

log = logging.getLogger("aide_tui.engine")


class Cancelled(Exception):
    """The user cancelled mid-step: the unfinished node is discarded."""


@dataclass
class InFlight:
    """A node between its start and its durable finish, run by its own thread."""

    node_id: int
    step: int
    plan: Plan
    thread: threading.Thread | None = None
    job: object | None = None  # the executor's Job while the script runs
    proposed_plan: str = ""  # the coder's plan once its code is ready (siblings' prompts show it)


class Scheduler:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.in_flight: dict[int, InFlight] = {}  # under engine.run_lock
        self._spare_ids: list[int] = []  # heap of ids given back by steps that recorded nothing
        self._worker_errors: list[BaseException] = []
        self._announced: ev.NextPlanned | None = None

    def run(self) -> ev.RunFinished:
        """Start nodes while workers are free; returns when the run ends (steps reached, stop, budget)."""
        engine = self._engine
        control, settings = engine.control, engine.settings
        while True:
            with engine.run_lock:
                self._raise_worker_error()
                ending = engine.cancel.is_set() or control.stop_requested or self.started() >= settings.steps
                busy = len(self.in_flight)
                full = busy >= settings.workers or (busy and (ending or control.paused or self.over_budget()))
            if full:  # pausing, stopping or out of budget: running nodes finish, none starts
                control.wait(0.5)  # woken when a node ends or a command arrives
                continue
            if ending:  # events are never emitted under the lock: a listener may call submit()
                return self._end()
            if self.over_budget():
                engine.emit(
                    ev.RunError(
                        "budget",
                        f"budget of ${settings.budget:.2f} reached (spent ${engine.usage.cost:.2f}); "
                        "raise --budget to continue",
                    )
                )
                return engine.finish("budget", "stopped")
            self.announce_next()
            if control.paused:
                self.end_warm_starts()  # nothing idles in the background while paused (not under the lock: it kills)
            if not control.hold_if_paused():
                continue
            self._start_node(*self._next_plan())

    def started(self) -> int:
        """Nodes finished or in flight: what counts toward `steps`."""
        tree = self._engine.tree
        return len(tree) + sum(1 for node_id in self.in_flight if node_id not in tree)  # finished, committing: both

    def _end(self) -> ev.RunFinished:
        engine = self._engine
        if len(engine.tree) >= engine.settings.steps:
            return engine.finish("completed", "completed")
        if engine.cancel.is_set():
            return engine.finish("cancelled", "stopped")
        return engine.finish("stopped", "stopped")

    def fail(self, exc: BaseException) -> None:
        """A worker thread (a node's, the holdout scorer's) hit a fatal error: the main thread ends the run."""
        with self._engine.run_lock:
            self._worker_errors.append(exc)
        self._engine.control.notify()

    def _raise_worker_error(self) -> None:
        """A node thread hit a fatal error (rejected key, repeated LLM failures, a bug):
        the run ends from the main thread, which owns the run's end."""
        if self._worker_errors:
            raise self._worker_errors[0]

    def announce_next(self, replan: bool = False) -> None:
        """Say what the next step will do before it starts (and while paused), once per change
        of plan: a queued command, or the policy's choice, exact because its draw is seeded per step.

        `replan`: a command may have changed the plan already announced; nothing is announced
        before the loop has announced its first step, or while it starts one."""
        engine = self._engine
        with engine.run_lock:
            if replan and self._announced is None:
                return
            step = self.started() + 1
            queued = engine.control.peek()
            if queued is not None:
                plan = ev.NextPlanned(step, queued.operation, queued.parent_id, "command")
            else:
                decision = engine.policy.choose(engine.tree, step, self._pending())  # type: ignore[union-attr]
                plan = ev.NextPlanned(step, decision.operation, decision.parent_id, "policy")
            if plan == self._announced:
                return
            self._announced = plan
        engine.emit(plan)

    def _pending(self) -> tuple[Decision, ...]:
        """Nodes in flight as the policy sees them (drafts count, debug targets are taken)."""
        return tuple(
            Decision(f.plan.operation, f.plan.parent_id, "in flight", f.plan.other_id)  # type: ignore[arg-type]
            for f in self.in_flight.values()
        )

    def _next_plan(self) -> tuple[Plan, str | None]:
        """The step to run now and the hints for its prompt."""
        engine = self._engine
        with engine.run_lock:  # from here on the announced plan is being carried out
            self._announced = None
            queued, hint = engine.control.take()  # targets were validated on submit; nodes are never removed
        if queued is not None:
            return queued, hint
        with engine.run_lock:
            decision: Decision = engine.policy.choose(engine.tree, self.started() + 1, self._pending())  # type: ignore[union-attr]
        return Plan(
            decision.operation, decision.parent_id, "policy", plan=decision.reason, other_id=decision.other_id
        ), hint

    def _start_node(self, plan: Plan, hint: str | None) -> None:
        """Give the node its id and step now (journaled; ids are never reused) and run it in its own thread."""
        engine = self._engine
        with engine.run_lock:
            if self._spare_ids:  # a step whose LLM call failed is retried under its own id
                node_id = heapq.heappop(self._spare_ids)
            else:
                node_id = engine.tree.next_id
                engine.tree.reserve_id(node_id)
                engine.records.started(node_id)
            flight = InFlight(node_id, self.started() + 1, plan)
            self.in_flight[node_id] = flight
        flight.thread = threading.Thread(
            target=self._run_flight, args=(flight, hint), name=f"aide-node-{node_id}", daemon=True
        )
        flight.thread.start()

    def give_back_id(self, node_id: int) -> None:
        """A step that recorded nothing (LLM failure) is retried under its own id."""
        with self._engine.run_lock:
            heapq.heappush(self._spare_ids, node_id)

    def _run_flight(self, flight: InFlight, hint: str | None) -> None:
        engine = self._engine
        try:
            engine.steps.run(flight, hint)
        except Cancelled:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which ends the run
            if not isinstance(exc, FatalRunError):
                log.exception("node #%d failed inside the engine", flight.node_id)
            with engine.run_lock:
                self._worker_errors.append(exc)
        finally:
            with engine.run_lock:
                self.in_flight.pop(flight.node_id, None)
            engine.control.notify()

    def cancel_running(self) -> None:
        """Kill the scripts of the nodes in flight (CancelNow)."""
        with self._engine.run_lock:
            jobs = [f.job for f in self.in_flight.values() if f.job is not None]
        for job in jobs:
            job.cancel()  # type: ignore[attr-defined]

    def drain(self, timeout: float = 30.0) -> None:
        """Before the journal and git close: cancel what still runs and wait for its thread."""
        engine = self._engine
        with engine.run_lock:
            flights = list(self.in_flight.values())
        scoring = engine.holdout.busy
        if not flights and not scoring:
            return
        engine.cancel.set()
        self.cancel_running()
        deadline = time.monotonic() + timeout
        for flight in flights:
            if flight.thread is not None:
                flight.thread.join(max(deadline - time.monotonic(), 0.1))
        engine.holdout.wait(max(deadline - time.monotonic(), 0.1))

    def over_budget(self) -> bool:
        budget = self._engine.settings.budget
        return budget is not None and self._engine.usage.cost >= budget

    def siblings(self, flight: InFlight) -> list[str]:
        """The plans of the other nodes improving the same parent right now (the improve prompt shows them)."""
        with self._engine.run_lock:
            return [
                f"#{f.node_id}: {f.proposed_plan}"
                for f in self.in_flight.values()
                if f is not flight
                and f.plan.operation == flight.plan.operation
                and f.plan.parent_id == flight.plan.parent_id
                and f.proposed_plan
            ]

    def warm_successors(self) -> None:
        """Warm the nodes that start next, as many as there are cores (at most WARM_AHEAD), so their
        imports overlap this script's run and each other instead of waiting in line: when code comes
        faster than a cold interpreter imports pandas, one successor alone leaves a core idle."""
        engine = self._engine
        with engine.run_lock:
            left = engine.settings.steps - self.started()
            if left <= 0 or engine.control.paused or engine.control.stop_requested:
                return
            depth = min(left, max(1, min(available_cpus(), WARM_AHEAD)))
            next_id = engine.tree.next_id
            upcoming = sorted(self._spare_ids) + list(range(next_id, next_id + depth))
            successors = [nid for nid in upcoming if nid not in self.in_flight][:depth]
        for node_id in successors:
            engine.warm.start(node_id)

    def end_warm_starts(self) -> None:
        """End every warm interpreter of a node that has not started (pause, stop, tampered inputs)."""
        with self._engine.run_lock:
            running = set(self.in_flight)
        self._engine.warm.end_idle(running)
