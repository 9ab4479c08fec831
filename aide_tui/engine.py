"""The step loop: choose, write code, run it, review it, make it durable.

The engine runs in one thread (the caller of `run()`), emits events to a
listener and takes commands from any thread through `submit()`.  It imports no
UI code: the Textual app and the headless printer are interchangeable.

One step:
  policy (or a queued command) picks an operation and a parent
  -> the coder writes code (reply streamed out as LlmDelta events)
  -> the executor runs it in the node's own workspace (OutputLine events)
  -> the review and the hard rules fix status and metric
  -> the node is appended to the journal and committed to git
  -> NodeFinished.  Only then does the next step start.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from . import events as ev
from .control import Plan, RunControl
from .errors import FatalRunError
from .evaluation.holdout import HOLDOUT_RUNS, HoldoutOutcome, final_pick, holdout_candidates
from .evaluation.run_setup import RunEvaluation, setup_evaluation
from .project import Project, write_atomic
from .records import MAX_OUTPUT_FILE_BYTES, MAX_OUTPUT_TOTAL_BYTES, RunPaths, RunRecords, committable_outputs
from .records import branch_name as branch_name  # the front ends import it from here
from .run.executor import ExecRequest, ExecResult, Executor, Isolation
from .run.inputs import DEFAULT_COPY_LIMIT, InputData
from .run.launch import choose_preload, without_failed
from .run.local import kill_leftovers
from .run.machine import Machine, probe_machine
from .run.sandbox import available_cpus
from .run.workspace import collect_outputs, prepare_workspace, write_script
from .search.coder import Coder, CoderError, Proposal, Review, TaskContext
from .search.memory import summarize
from .search.node import ExecInfo, Node, Usage
from .search.offline.task_reader import card_problem
from .search.policy import AidePolicy, Decision, Policy
from .search.task_card import TaskCard, card_to_dict
from .search.tree import SearchTree
from .search.verdict import decide, fix_direction
from .settings import Settings
from .store.git import GitStore

log = logging.getLogger("aide_tui.engine")

Listener = Callable[[ev.Event], None]

MAX_CONSECUTIVE_LLM_FAILURES = 3


WARM_AHEAD = 4  # warm interpreters waiting for code at most (each holds its imports' memory)


class _Cancelled(Exception):
    """The user cancelled mid-step: the unfinished node is discarded."""


@dataclass
class StepTimings:
    """Where a step's wall time went; the benchmark subtracts LLM and script time."""

    total: float = 0.0
    coder: float = 0.0
    execute: float = 0.0


@dataclass
class _InFlight:
    """A node between its start and its durable finish, run by its own thread."""

    node_id: int
    step: int
    plan: Plan
    thread: threading.Thread | None = None
    job: object | None = None  # the executor's Job while the script runs
    proposed_plan: str = ""  # the coder's plan once its code is ready (siblings' prompts show it)


@dataclass
class Engine:
    project: Project
    settings: Settings
    run_name: str
    coder: Coder
    executor: Executor
    store: GitStore
    data_files: list[str]
    listener: Listener
    resume: bool = False
    policy: Policy | None = None
    data_preview: str = ""
    cancel: threading.Event = field(default_factory=threading.Event)  # shared with the coder
    input_copy_limit: int = DEFAULT_COPY_LIMIT  # above this much data, nodes link a verified snapshot
    isolation: Isolation | None = None  # the sandbox every node runs in (None: unsandboxed)
    timings: list[StepTimings] = field(default_factory=list)
    lock: object | None = None  # the project's InstanceLock, released when run() ends
    card: TaskCard | None = None  # the task card (None: the data is not a table the card can describe)
    card_source: str = "derived"
    evaluation: RunEvaluation | None = None  # folds, holdout, submission checks (set up at start from the card)
    confirm_card: bool = False  # a new run's card waits for ConfirmTaskCard (the TUI's form) before node 1
    card_error: FatalRunError | None = None  # the LLM refused the key when asked for the card: stop at the start

    def __post_init__(self) -> None:
        self.records = RunRecords(self.project, self.run_name, self.store, self._emit, self.card)
        self.paths: RunPaths = self.records.paths
        self.tree = SearchTree()
        if self.policy is None:
            s = self.settings
            self.policy = AidePolicy(s.num_drafts, s.debug_prob, s.max_debug_depth, s.seed)
        self._lock = threading.RLock()
        self._cancel = self.cancel
        self.control = RunControl(self._finished_node, self._emit, self.cancel, self._lock)
        self._announced: ev.NextPlanned | None = None
        self._in_flight: dict[int, _InFlight] = {}
        self._spare_ids: list[int] = []  # heap of ids given back by steps that recorded nothing
        self._worker_errors: list[BaseException] = []
        self._emit_lock = threading.RLock()  # events from several node threads never interleave
        self._coder_lock = threading.Lock()  # for coders that keep state and are not thread-safe
        self._store_lock = threading.Lock()  # GitPython is not thread-safe: one writer
        self._usage = Usage()
        self._abandoned = False  # a new run whose task card form was left: removed when run() ends
        self._llm_failures = 0
        self._preload: tuple[str, ...] | None = None  # chosen at the first step (probes the interpreter)
        self._warm: dict[int, object] = {}  # node id -> the executor's warm start for it
        self._holdout_next: Node | None = None  # the newest best waiting for its holdout re-run
        self._holdout_thread: threading.Thread | None = None  # the background scorer, while it runs
        self._warming: dict[int, threading.Event] = {}  # node ids whose warm start is being prepared, set when ready
        self.machine: Machine | None = None  # probed at start for the LLM coder's prompts

    # ------------------------------------------------------------ commands

    def submit(self, command: ev.Command) -> None:
        """Thread-safe.  Answered with CommandAccepted / CommandRejected events (see control.py)."""
        if not self.control.submit(command):
            return
        if isinstance(command, ev.CancelNow):
            self._cancel_running()
        else:
            self._announce_next(replan=True)  # e.g. while paused: the status shows the new next step at once

    def _finished_node(self, node_id: int) -> Node | None:
        with self._lock:
            return self.tree.get(node_id) if node_id in self.tree else None

    def shutdown(self) -> None:
        """Cancel now from any thread: kill the running script, interrupt the LLM."""
        self.submit(ev.CancelNow())

    def _cancel_running(self) -> None:
        with self._lock:
            jobs = [f.job for f in self._in_flight.values() if f.job is not None]
        for job in jobs:
            job.cancel()

    # ------------------------------------------------------------ the loop

    @property
    def usage(self) -> Usage:
        return self._usage

    def run(self) -> ev.RunFinished:
        """Run until the step count is reached, the user stops, or a fatal error."""
        finished: ev.RunFinished | None = None
        handler = self._attach_log()
        try:
            self._start()
            finished = self._loop()
        except FatalRunError as exc:
            self._emit(ev.RunError(exc.kind if exc.kind in ("auth", "budget", "llm", "config") else "fatal", str(exc)))
            finished = self._finish("error", "failed", str(exc))
        except Exception as exc:  # a bug must end the run cleanly, resumable, with a reason
            log.exception("engine crashed")
            self._emit(ev.RunError("fatal", f"internal error: {type(exc).__name__}: {exc}"))
            finished = self._finish("error", "failed", str(exc))
        finally:
            self._drain()
            self.records.close()
            self.executor.shutdown()
            if self._abandoned:  # nothing to resume: the next start must not offer it
                self.records.discard()
            self.store.close()
            if self.lock is not None:
                self.lock.release()
            logging.getLogger("aide_tui").removeHandler(handler)
            handler.close()
        return finished

    def _attach_log(self) -> logging.Handler:
        """Internal errors go to .aide/runs/<run>/engine.log, never to the terminal the TUI owns."""
        self.paths.root.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.paths.root / "engine.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger("aide_tui")
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
        return handler

    def _start(self) -> None:
        log.info("run %s starting (resume=%s, coder=%s)", self.run_name, self.resume, self.coder.name)
        info = self._read_info()
        direction = self.settings.direction if self.settings.direction != "auto" else None
        direction = info.get("direction") or direction
        saved_steps = (info.get("settings") or {}).get("steps")
        if self.resume and saved_steps and "steps" not in self.settings.given_flags:
            self.settings.steps = int(saved_steps)  # the run keeps its own target
        self.tree = SearchTree(direction)
        nodes = self.records.load() if self.resume else []
        for node in nodes:
            self.tree.add(node)
            self._usage = self._usage + node.usage
        restore = getattr(self.coder, "restore", None)  # optional: coders that keep state across steps
        if nodes and callable(restore):
            restore(nodes)
        self.records.reconcile(self.tree)
        self._clear_stale_workspaces()
        self._write_info(status="running")
        self.machine = probe_machine(self.settings, self.paths.root) if self.coder.name == "llm" else None
        self._emit(
            ev.RunStarted(
                run=self.run_name,
                project=str(self.project.root),
                resumed=self.resume,
                steps=self.settings.steps,
                nodes=self._replayed(nodes),
                direction=self.tree.direction,
                coder=self.coder.name,
            )
        )
        if nodes or self._usage.calls:  # a resumed run's spend, or the LLM's task card call
            self._emit(ev.UsageUpdated(self._usage, self.settings.budget))
        self._settle_card()  # first: the folds, the holdout and the checks are built on the confirmed card
        self._prepare_inputs()
        self._emit(ev.RunStateChanged("running"))

    def _settle_card(self) -> None:
        """Saved with the run (once confirmed, when asked), so a resumed run keeps the card it started with."""
        if self.card_error is not None:
            raise self.card_error
        if self.card is None:
            return
        confirm = self.confirm_card and self.card_source != "saved"
        self._emit(ev.TaskCardReady(self.card, self.card_source, confirm=confirm))
        if confirm:
            self.control.card_check = partial(card_problem, self.project.root, self.data_files)
            card = self.control.await_card()
            if card is None:  # stopped or cancelled in the form: no node runs, nothing is saved
                self._abandoned = not self.resume and len(self.tree) == 0
                return
            self.card, self.card_source = card, "confirmed"
            self.records.use_card(card)
            if hasattr(self.coder, "card"):  # the offline coder builds its scripts from the card
                self.coder.card = card  # type: ignore[attr-defined]
            self._emit(ev.TaskCardReady(card, "confirmed"))
        if not self.paths.task_card.exists():
            write_atomic(self.paths.task_card, json.dumps(card_to_dict(self.card), indent=2) + "\n")

    def _prepare_inputs(self) -> None:
        """What every node's ./input holds (the folds; the training rows less the holdout) and the preview of it."""
        self.evaluation, notices = setup_evaluation(
            self.card, self.paths.root, self.project.root, self.data_files, self.settings.seed, self.settings.holdout
        )
        sources = self.evaluation.input_sources if self.evaluation else None
        self.inputs = InputData(
            self.project.root,
            self.data_files,
            self.paths.root,
            self.input_copy_limit,
            read_only_mount=self.isolation is not None,
            sources=sources,
        )
        if self.evaluation is not None:
            self.evaluation.attach_scorer(self.paths.root, self.inputs, self._exec_request_in)
        if self.paths.preview.exists():
            self.data_preview = self.paths.preview.read_text(encoding="utf-8")
        else:
            if self.evaluation is not None and self.evaluation.evaluation.has_holdout:  # the rows the scripts see
                from .search.preview import build_preview

                self.data_preview = build_preview(
                    self.project.root, self.data_files, self.settings.preview_chars, sources
                )
            write_atomic(self.paths.preview, self.data_preview)
        for notice in notices:
            self._emit(ev.Notice(notice))

    def _replayed(self, nodes: list[Node]) -> tuple[ev.NodeFinished, ...]:
        """A resumed run's nodes as their NodeFinished said: with branch, commit and the best so far."""
        if not nodes:
            return ()
        shas = self.store.list_branches(f"aide/{self.run_name}/")
        so_far = SearchTree(self.tree.direction)
        replayed = []
        for node in nodes:
            so_far.add(node)
            branch = branch_name(self.run_name, node)
            sha = shas.get(branch)  # None: not committed yet (git failed); the reconcile before this commits it
            replayed.append(
                ev.NodeFinished(node, so_far.best_id, sha, branch if sha else None, self.run_name, so_far.direction)
            )
        return tuple(replayed)

    def _finished_event(self, node: Node, sha: str | None, branch: str | None) -> ev.NodeFinished:
        return ev.NodeFinished(node, self.tree.best_id, sha, branch, self.run_name, self.tree.direction)

    def _loop(self) -> ev.RunFinished:
        """Start nodes while workers are free; each runs in its own thread.

        With one worker this is the paper's sequential AIDE: the next node is
        planned only once the previous one is durable."""
        while True:
            with self._lock:
                self._raise_worker_error()
                ending = self._cancel.is_set() or self.control.stop_requested or self._started() >= self.settings.steps
                busy = len(self._in_flight)
                full = busy >= self.settings.workers or (
                    busy and (ending or self.control.paused or self._over_budget())
                )
            if full:  # pausing, stopping or out of budget: running nodes finish, none starts
                self.control.wait(0.5)  # woken when a node ends or a command arrives
                continue
            if ending:  # events are never emitted under the lock: a listener may call submit()
                return self._end()
            if self._over_budget():
                self._emit(
                    ev.RunError(
                        "budget",
                        f"budget of ${self.settings.budget:.2f} reached (spent ${self._usage.cost:.2f}); raise --budget to continue",
                    )
                )
                return self._finish("budget", "stopped")
            self._announce_next()
            if self.control.paused:
                self._end_warm_starts()  # nothing idles in the background while paused (not under the lock: it kills)
            if not self.control.hold_if_paused():
                continue
            self._start_node(*self._next_plan())

    def _started(self) -> int:
        """Nodes finished or in flight: what counts toward `steps`."""
        return len(self.tree) + sum(
            1 for node_id in self._in_flight if node_id not in self.tree
        )  # finished but still committing: both

    def _end(self) -> ev.RunFinished:
        if len(self.tree) >= self.settings.steps:
            return self._finish("completed", "completed")
        if self._cancel.is_set():
            return self._finish("cancelled", "stopped")
        return self._finish("stopped", "stopped")

    def _raise_worker_error(self) -> None:
        """A node thread hit a fatal error (rejected key, repeated LLM failures, a bug):
        the run ends from the main thread, which owns the run's end."""
        if self._worker_errors:
            raise self._worker_errors[0]

    def _announce_next(self, replan: bool = False) -> None:
        """Say what the next step will do before it starts (and while paused), once per change
        of plan: a queued command, or the policy's choice, exact because its draw is seeded per step.

        `replan`: a command may have changed the plan already announced; nothing is announced
        before the loop has announced its first step, or while it starts one."""
        with self._lock:
            if replan and self._announced is None:
                return
            step = self._started() + 1
            queued = self.control.peek()
            if queued is not None:
                plan = ev.NextPlanned(step, queued.operation, queued.parent_id, "command")
            else:
                decision = self.policy.choose(self.tree, step, self._pending())
                plan = ev.NextPlanned(step, decision.operation, decision.parent_id, "policy")
            if plan == self._announced:
                return
            self._announced = plan
        self._emit(plan)

    def _pending(self) -> tuple[Decision, ...]:
        """Nodes in flight as the policy sees them (drafts count, debug targets are taken)."""
        return tuple(Decision(f.plan.operation, f.plan.parent_id, "in flight") for f in self._in_flight.values())  # type: ignore[arg-type]

    def _next_plan(self) -> tuple[Plan, str | None]:
        """The step to run now and the hints for its prompt."""
        with self._lock:  # from here on the announced plan is being carried out
            self._announced = None
            queued, hint = self.control.take()  # targets were validated on submit; nodes are never removed
        if queued is not None:
            return queued, hint
        with self._lock:
            decision: Decision = self.policy.choose(self.tree, self._started() + 1, self._pending())
        return Plan(decision.operation, decision.parent_id, "policy", plan=decision.reason), hint

    def _start_node(self, plan: Plan, hint: str | None) -> None:
        """Give the node its id and step now (journaled; ids are never reused) and run it in its own thread."""
        with self._lock:
            if self._spare_ids:  # a step whose LLM call failed is retried under its own id
                node_id = heapq.heappop(self._spare_ids)
            else:
                node_id = self.tree.next_id
                self.tree.reserve_id(node_id)
                self.records.started(node_id)
            flight = _InFlight(node_id, self._started() + 1, plan)
            self._in_flight[node_id] = flight
        flight.thread = threading.Thread(
            target=self._run_flight, args=(flight, hint), name=f"aide-node-{node_id}", daemon=True
        )
        flight.thread.start()

    def _run_flight(self, flight: _InFlight, hint: str | None) -> None:
        try:
            self._step(flight, hint)
        except _Cancelled:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which ends the run
            if not isinstance(exc, FatalRunError):
                log.exception("node #%d failed inside the engine", flight.node_id)
            with self._lock:
                self._worker_errors.append(exc)
        finally:
            with self._lock:
                self._in_flight.pop(flight.node_id, None)
            self.control.notify()

    def _drain(self, timeout: float = 30.0) -> None:
        """Before the journal and git close: cancel what still runs and wait for its thread."""
        with self._lock:
            flights = list(self._in_flight.values())
            scoring = self._holdout_thread is not None
        if not flights and not scoring:
            return
        self._cancel.set()
        self._cancel_running()
        deadline = time.monotonic() + timeout
        for flight in flights:
            if flight.thread is not None:
                flight.thread.join(max(deadline - time.monotonic(), 0.1))
        self._wait_for_holdout(max(deadline - time.monotonic(), 0.1))

    def _over_budget(self) -> bool:
        budget = self.settings.budget
        return budget is not None and self._usage.cost >= budget

    # ------------------------------------------------------------ one step

    def _step(self, flight: _InFlight, hint: str | None) -> None:
        t0 = time.perf_counter()
        timings = StepTimings()
        plan, node_id, step = flight.plan, flight.node_id, flight.step
        parent = self.tree.get(plan.parent_id) if plan.parent_id is not None else None
        self._emit(ev.NodeStarted(node_id, plan.parent_id, plan.operation, step, hint))
        node = Node(
            id=node_id,
            parent_id=plan.parent_id,
            operation=plan.operation,
            step=step,
            hint=hint,
            created_at=time.time(),
            debug_depth=(parent.debug_depth + 1) if (parent is not None and plan.operation == "debug") else 0,
        )
        ctx = self._context(hint, flight)
        self._start_warming(node_id)
        try:
            proposal = self._write_code(node, plan, parent, ctx, timings)
            if proposal is None:  # LLM failure: the step is retried, nothing recorded
                with self._lock:
                    heapq.heappush(self._spare_ids, node_id)  # ... under its own id
                self.control.give_back(plan, hint)  # ...and the user's command and hint apply to the retry
                return
            node.plan, node.code = proposal.plan, proposal.code
            flight.proposed_plan = node.plan
            node.usage = node.usage + proposal.usage
            outputs: dict[str, bytes] = {}
            if node.code:
                self._emit(ev.CodeReady(node_id, node.plan, node.code))
                result, tampered = self._execute(node, flight, timings)
                outputs = self._record_exec(node, result)
                self._review(node, ctx, tampered)
                self._check_submission(node)
            self._finish_node(node, outputs)
            if self.tree.best_id == node.id:
                self._queue_holdout(node)
        except _Cancelled:
            shutil.rmtree(self.paths.workspace(node_id), ignore_errors=True)
            self._emit(ev.PhaseChanged(None, "idle", "cancelled"))
            raise
        finally:
            self._discard_warm(node_id)  # unused: the coder gave no code, or the step failed
            flight.job = None
        timings.total = time.perf_counter() - t0
        self.timings.append(timings)

    def _context(self, hint: str | None, flight: _InFlight | None = None) -> TaskContext:
        parent_id = flight.plan.parent_id if flight is not None else None
        with self._lock:
            nodes = list(self.tree.nodes.values())
            siblings = (
                []
                if flight is None or flight.plan.operation != "improve"
                else [
                    f"#{f.node_id}: {f.proposed_plan}"
                    for f in self._in_flight.values()
                    if f is not flight
                    and f.plan.operation == "improve"
                    and f.plan.parent_id == parent_id
                    and f.proposed_plan
                ]
            )
        return TaskContext(
            siblings=siblings,
            task=self.project.task_text(),
            data_preview=self.data_preview,
            memory=summarize(nodes, self.tree.direction, self.settings.memory_chars, focus=parent_id),
            direction=self.tree.direction,
            hint=hint,
            timeout=self.settings.timeout,
            network=self.isolation is None or self.isolation.network,
            cpus=self._node_cpus(),
            memory_mb=self.settings.memory_limit_mb,
            gpus=self.machine.gpus if self.machine else 0.0,
            packages=self.machine.packages.describe() if self.machine else "",
            card=self.card,
            **(self.evaluation.prompt_values() if self.evaluation else {}),
        )

    def _node_cpus(self) -> int:
        """Each node's share of the cores (its thread variables are set to it)."""
        return max(1, available_cpus() // self.settings.workers)

    def _write_code(
        self, node: Node, plan: Plan, parent: Node | None, ctx: TaskContext, timings: StepTimings
    ) -> Proposal | None:
        if plan.operation == "manual":
            return Proposal(plan.plan or "Edited by hand.", plan.code or "")
        self._emit(ev.PhaseChanged(node.id, "llm", f"{self.coder.name} coder writing a {plan.operation}"))

        def on_delta(text: str) -> None:
            if self._cancel.is_set():
                raise _Cancelled()
            self._emit(ev.LlmDelta(node.id, text))

        t0 = time.perf_counter()
        try:
            with self._coder_guard():
                if plan.operation == "draft":
                    proposal = self.coder.draft(ctx, on_delta)
                elif plan.operation == "improve":
                    proposal = self.coder.improve(ctx, parent, on_delta)  # type: ignore[arg-type]
                else:
                    proposal = self.coder.debug(ctx, parent, on_delta)  # type: ignore[arg-type]
        except CoderError as exc:
            node.plan = f"(no usable code) {exc}"
            node.usage = node.usage + exc.usage
            node.review_summary = f"The coder gave no usable code: {exc}"
            node.status = "buggy"
            return Proposal(node.plan, "", Usage())
        except _Cancelled:
            raise
        except Exception as exc:
            if self._cancel.is_set():
                raise _Cancelled() from exc
            if isinstance(exc, FatalRunError):
                raise
            return self._llm_failed(node, exc)
        finally:
            timings.coder = time.perf_counter() - t0
        self._llm_failures = 0
        return proposal

    def _coder_guard(self):
        """Coders that keep state between calls (the offline one) are called one at a time."""
        return contextlib.nullcontext() if getattr(self.coder, "thread_safe", False) else self._coder_lock

    def _llm_failed(self, node: Node, exc: Exception) -> None:
        self._llm_failures += 1
        message = f"{type(exc).__name__}: {exc}"
        if self._llm_failures >= MAX_CONSECUTIVE_LLM_FAILURES:
            raise FatalRunError(
                f"the LLM failed {self._llm_failures} times in a row ({message}); the run is resumable", "llm"
            )
        self._emit(ev.Notice(f"LLM call failed, retrying the step: {message}", "warning"))
        self._emit(ev.PhaseChanged(node.id, "idle", "LLM failed"))
        return None

    def _execute(self, node: Node, flight: _InFlight, timings: StepTimings) -> tuple[ExecResult, list[str]]:
        """Run the node's script; also returns the input files it wrote into (restored since)."""
        workspace = self.paths.workspace(node.id)
        with self._lock:
            preparing = self._warming.get(node.id)
        if preparing is not None:
            preparing.wait()  # another worker is warming this node: take it, never prepare over it
        with self._lock:
            warm = self._warm.pop(node.id, None)
        if warm is not None:
            write_script(workspace, node.code)  # the warm interpreter waits there, input in place
        else:
            if workspace.exists():
                shutil.rmtree(workspace)
            prepare_workspace(workspace, self.project.root, self.data_files, node.code, inputs=self.inputs)
        self._emit(ev.PhaseChanged(node.id, "executing", f"running node #{node.id}"))
        request = self._exec_request(node.id)

        def on_line(stream: str, line: str) -> None:
            self._emit(ev.OutputLine(node.id, stream, line))  # type: ignore[arg-type]

        t0 = time.perf_counter()
        if self._cancel.is_set():
            if warm is not None:
                warm.discard()
            raise _Cancelled()
        if warm is not None:
            job = flight.job = self.executor.submit(request, on_line, warm=warm)
        else:
            job = flight.job = self.executor.submit(request, on_line)
        self._warm_successors()
        if self._cancel.is_set():
            job.cancel()
        result = job.wait()
        timings.execute = time.perf_counter() - t0
        if warm is not None:
            self._drop_failed_preloads(warm.failed_preloads())
        if result.killed_reason == "cancelled" or self._cancel.is_set():
            raise _Cancelled()
        shutil.rmtree(workspace / "input", ignore_errors=True)  # the per-node data copy is no longer needed
        with self._lock:  # one check at a time; a repair must not race another node's
            try:
                tampered = self.inputs.verify_and_repair()
            except FileNotFoundError:
                if self.paths.root.exists():
                    raise
                tampered = []  # the script deleted the run directory: recording the node says so and stops
        if tampered:
            self._end_warm_starts()  # one prepared meanwhile may link the tampered files
            self._emit(
                ev.Notice(
                    f"node #{node.id} wrote into its input files ({', '.join(tampered)}); they were restored from the originals",
                    "warning",
                )
            )
        return result, tampered

    def _exec_request(self, node_id: int) -> ExecRequest:
        return self._exec_request_in(self.paths.workspace(node_id))

    def _exec_request_in(self, workspace: Path) -> ExecRequest:
        """How every script of the run is run: limits and sandbox (a node's, or a holdout re-run's)."""
        request = ExecRequest(
            workspace=workspace,
            timeout=self.settings.timeout,
            memory_limit_mb=self.settings.memory_limit_mb,
            output_limit_bytes=self.settings.output_limit_bytes,
            env_pass=tuple(self.settings.env_pass),
            cpus=self._node_cpus(),
            isolation=self.isolation,
            workspace_roots=(self.paths.nodes, self.paths.root / HOLDOUT_RUNS),  # one zygote for both
        )
        if self.settings.python:
            request.python = self.settings.python
        return request

    def _warm_successors(self) -> None:
        """Warm the nodes that start next, as many as there are cores (at most WARM_AHEAD), so their
        imports overlap this script's run and each other instead of waiting in line: when code comes
        faster than a cold interpreter imports pandas, one successor alone leaves a core idle."""
        with self._lock:
            left = self.settings.steps - self._started()
            if left <= 0 or self.control.paused or self.control.stop_requested:
                return
            depth = min(left, max(1, min(available_cpus(), WARM_AHEAD)))
            upcoming = sorted(self._spare_ids) + list(range(self.tree.next_id, self.tree.next_id + depth))
            successors = [nid for nid in upcoming if nid not in self._in_flight][:depth]
        for node_id in successors:
            self._start_warming(node_id)

    def _start_warming(self, node_id: int) -> None:
        """Start the node's interpreter now (input in place, heavy modules importing), so that the
        imports overlap the model writing the code (and, for a successor, the running node);
        `_execute` hands the script to it.  Only the node id matters, not the plan."""
        with self._lock:
            if node_id in self._warm or node_id in self._warming:
                return  # already warming (started while another node ran, or before a retried step)
            # Reserved: with several workers, two may pick the same successor; the second one
            # must not delete the workspace the first is preparing (its interpreter would run
            # the script in a deleted directory).
            ready = self._warming[node_id] = threading.Event()
            if self._preload is None:  # once per run, under the lock: the note is given once
                self._preload, note = choose_preload(self.settings.preload, self.settings.python or sys.executable)
                if note:
                    self._emit(ev.Notice(note, "warning"))
        try:
            if self._preload:
                self._prepare_warm(node_id)
        finally:
            with self._lock:
                del self._warming[node_id]
            ready.set()

    def _prepare_warm(self, node_id: int) -> None:
        workspace = self.paths.workspace(node_id)
        try:
            if workspace.exists():
                shutil.rmtree(workspace)
            prepare_workspace(workspace, self.project.root, self.data_files, "", inputs=self.inputs)
            warm = self.executor.warm_up(self._exec_request(node_id), self._preload)
        except Exception:  # the node then starts cold; a warm start is only ever an optimisation
            log.exception("could not warm up node %d", node_id)
            return
        if warm is not None:
            with self._lock:
                self._warm[node_id] = warm

    def _drop_failed_preloads(self, failed: dict[str, str]) -> None:
        """A preload that raised on import is noted once and not imported again this run."""
        with self._lock:
            self._preload, note = without_failed(self._preload or (), failed)
        if note:
            self._emit(ev.Notice(note, "warning"))

    def _discard_warm(self, node_id: int) -> None:
        """End a warm interpreter nobody will use: it and all it started, and its workspace."""
        with self._lock:
            warm = self._warm.pop(node_id, None)
        if warm is not None:
            warm.discard()
            shutil.rmtree(self.paths.workspace(node_id), ignore_errors=True)  # a node that never ran

    def _end_warm_starts(self) -> None:
        """End every warm interpreter of a node that has not started (pause, stop, tampered inputs)."""
        with self._lock:
            idle = [nid for nid in self._warm if nid not in self._in_flight]
        for node_id in idle:
            self._discard_warm(node_id)

    def _record_exec(self, node: Node, result: ExecResult) -> dict[str, bytes]:
        """Put the run's facts on the node; return the files it wrote (for the commit)."""
        workspace = self.paths.workspace(node.id)
        written, skipped = collect_outputs(workspace, MAX_OUTPUT_FILE_BYTES, MAX_OUTPUT_TOTAL_BYTES)
        outputs, node.skipped_files = committable_outputs(written)  # known before the journal has the node
        node.output = result.output
        node.exec = ExecInfo(
            exit_code=result.exit_code,
            exc_type=result.exc_type,
            traceback=result.traceback,
            wall_time=round(result.wall_time, 3),
            peak_memory_mb=round(result.peak_memory_mb, 1),
            killed_reason=result.killed_reason,
            output_truncated_bytes=result.truncated_bytes,
            outputs=sorted(written) + [f"{name} (not kept: too large)" for name in skipped],
        )
        return outputs

    def _review(self, node: Node, ctx: TaskContext, tampered: list[str]) -> None:
        self._emit(ev.PhaseChanged(node.id, "reviewing", f"reviewing node #{node.id}"))
        review: Review | None = None
        try:
            with self._coder_guard():
                review = self.coder.review(ctx, node)
            node.usage = node.usage + review.usage
        except FatalRunError:
            raise
        except Exception as exc:  # a failed review must not lose the execution
            if self._cancel.is_set():
                raise _Cancelled() from exc
            node.review_summary = f"The review failed ({type(exc).__name__}: {exc})."
        status, metric, reason = decide(node.exec, review, node.output)
        if review is not None:
            node.review_summary = review.summary.strip()
            if status == "ok":
                direction = fix_direction(self.tree.direction, review.direction)
                with self._lock:
                    fixed = direction is not None and self.tree.direction is None
                    if fixed:
                        self.tree.set_direction(direction)
                        self._write_info(status="running")
                if fixed:
                    self._emit(ev.DirectionFixed(direction, self.tree.best_id))
        if reason and reason not in node.review_summary:
            node.review_summary = f"{node.review_summary} [{reason}]".strip()
        if tampered:
            node.review_summary += f" [it modified its input files {', '.join(tampered)}; they were restored]"
        node.status, node.metric = status, (metric if status == "ok" else None)

    # ------------------------------------------------------------ evaluation (evaluation/)

    def _check_submission(self, node: Node) -> None:
        """A working node whose submission does not fit the test file is buggy, saying what is wrong."""
        if self.evaluation is None or node.status != "ok":
            return
        problem = self.evaluation.check_submission(self.paths.workspace(node.id))
        if problem:
            node.status, node.metric = "buggy", None
            node.review_summary = f"{node.review_summary} [{problem}]".strip()

    def _queue_holdout(self, node: Node) -> None:
        """Score a new best on the holdout in the background: the re-run takes as long as the script,
        and holding the node's worker for it would stall the search (with one worker, every new best
        would run twice in a row).  A best superseded before its turn is not re-run; the final top 3
        are scored at the end anyway."""
        if self.evaluation is None or self.evaluation.scorer is None:
            return
        with self._lock:
            self._holdout_next = node
            if self._holdout_thread is not None:
                return  # the running scorer takes it next
            self._holdout_thread = threading.Thread(target=self._holdout_worker, name="aide-holdout", daemon=True)
            self._holdout_thread.start()

    def _holdout_worker(self) -> None:
        try:
            while True:
                with self._lock:
                    node, self._holdout_next = self._holdout_next, None
                    if node is None or self._cancel.is_set():
                        self._holdout_thread = None
                        return
                    current = self.tree.best_id == node.id
                if current:
                    self._score_holdout(node)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which ends the run
            log.exception("holdout scoring failed inside the engine")
            with self._lock:
                self._worker_errors.append(exc)
                self._holdout_thread = None
            self.control.notify()

    def _wait_for_holdout(self, timeout: float | None = None) -> None:
        """Let the background scorer finish (at the end of a run, or before the journal closes)."""
        with self._lock:
            thread = self._holdout_thread
        if thread is not None:
            thread.join(timeout)

    def _score_holdout(self, node: Node) -> None:
        """Re-run the node on the hidden holdout (same sandbox and limits), score it, make it durable."""
        scorer = self.evaluation.scorer if self.evaluation is not None else None
        if scorer is None or self._cancel.is_set():
            return
        self._emit(ev.PhaseChanged(None, "executing", f"re-running node #{node.id} on the hidden holdout"))

        def run(request: ExecRequest) -> ExecResult:
            # Forked from the run's zygote where there is one: a re-run then starts in milliseconds.
            with self._lock:
                preload = self._preload or ()
            warm = self.executor.warm_up(request, preload) if preload else None
            job = self.executor.submit(request, lambda _stream, _line: None, warm=warm)
            result = None
            while result is None:  # CancelNow (the user's quit) kills it like a node's own run
                if self._cancel.is_set():
                    job.cancel()
                result = job.wait(0.5)
            return result

        try:
            outcome = scorer.score(node, run)
        except Exception as exc:  # noqa: BLE001 - a failed re-run must not end the search
            log.exception("holdout re-run of node #%d failed", node.id)
            outcome = HoldoutOutcome(None, f"the holdout re-run failed inside aide-tui ({type(exc).__name__}: {exc})")
        if self._cancel.is_set() and outcome.metric is None:
            return  # cancelled mid-way: not a fact about the node
        with self._lock:
            node.holdout_metric, node.holdout_note = outcome.metric, outcome.note
            pick = self._final_pick()
        with self._store_lock:
            commit = self.records.record_holdout(node, self.tree)
        self._emit(ev.HoldoutScored(node.id, outcome.metric, outcome.note, pick.id if pick else None, commit))
        self._emit(ev.PhaseChanged(None, "idle"))

    def _final_pick(self) -> Node | None:
        return final_pick(
            list(self.tree.nodes.values()),
            self.tree.direction or (self.card.direction if self.card else None),
            self.tree.best,
        )

    def _score_final_candidates(self) -> None:
        """The top 3 by validation metric get a holdout score too, so the final pick compares like with like."""
        if self.evaluation is None or self.evaluation.scorer is None:
            return
        direction = self.tree.direction or self.evaluation.card.direction
        for node in holdout_candidates(list(self.tree.nodes.values()), direction):
            if self._cancel.is_set():
                return
            if node.holdout_metric is None and not node.holdout_note:
                self._score_holdout(node)

    # ------------------------------------------------------------ durability

    def _finish_node(self, node: Node, outputs: dict[str, bytes]) -> None:
        node.finished_at = time.time()
        self._emit(ev.PhaseChanged(node.id, "committing", f"saving node #{node.id}"))
        with self._lock:
            self.records.append(node, self.tree)  # durable first: the journal is the truth
            self.tree.add(node)
            self._usage = self._usage + node.usage
        with self._store_lock:
            sha, ref = self.records.commit(node, outputs, self.tree)
        self._emit(self._finished_event(node, sha, ref.removeprefix("refs/heads/") if ref else None))
        self._emit(ev.UsageUpdated(self._usage, self.settings.budget))
        self._emit(ev.PhaseChanged(None, "idle"))

    def _clear_stale_workspaces(self) -> None:
        """Workspaces of nodes that never finished (killed run) are half-built: drop them."""
        nodes_dir = self.paths.nodes
        if not nodes_dir.is_dir():
            return
        for ws in nodes_dir.iterdir():
            if ws.name.isdigit() and int(ws.name) not in self.tree:
                killed = kill_leftovers(ws)
                if killed:
                    log.warning("killed %d process(es) left running in %s by an interrupted run", killed, ws)
                shutil.rmtree(ws, ignore_errors=True)

    # ------------------------------------------------------------ run info

    def _read_info(self) -> dict:
        return self.records.read_info()

    def _write_info(self, status: str) -> None:
        self.records.write_info(
            status=status,
            direction=self.tree.direction,
            coder=self.coder.name,
            settings=self.settings.to_dict(),
        )

    def _finish(self, reason: str, status: str, detail: str = "") -> ev.RunFinished:
        log.info("run %s finished: %s %s", self.run_name, reason, detail)
        self._end_warm_starts()
        try:
            self._write_info(status=status)
        except (OSError, FatalRunError):
            pass
        self.control.drop_queue()
        if reason in ("completed", "stopped", "budget"):
            self._wait_for_holdout()
            self._score_final_candidates()
        state = "failed" if status == "failed" else "finished"
        self._emit(ev.RunStateChanged(state, detail or reason))  # type: ignore[arg-type]
        best = self._final_pick()
        finished = ev.RunFinished(
            reason,  # type: ignore[arg-type]
            len(self.tree),
            best_id=best.id if best else None,
            best_metric=best.metric if best else None,
            best_branch=branch_name(self.run_name, best) if best else None,
            best_holdout=best.holdout_metric if best else None,
        )
        self._emit(finished)
        return finished

    def _emit(self, event: ev.Event) -> None:
        try:
            with self._emit_lock:
                self.listener(event)
        except _Cancelled:
            raise
        except Exception:  # a front-end bug must not kill the search
            log.exception("listener failed on %s", type(event).__name__)


# ---------------------------------------------------------------- assembly


def choose_coder_name(settings: Settings) -> str:
    from .settings import api_key_present

    if settings.coder == "auto":
        return "llm" if api_key_present() else "offline"
    return settings.coder


def build_executor(settings: Settings) -> Executor:
    """This machine, or a Ray cluster (connected now, so a bad address fails before node 1)."""
    from .errors import UserError
    from .run.executor import ExecutorUnavailable

    if settings.executor == "ray":
        from .run.ray_executor import RayExecutor
        from .settings import ray_address

        try:
            return RayExecutor(ray_address(settings), settings.node_cpus, settings.node_gpus)
        except ExecutorUnavailable as exc:
            raise UserError(f"--executor ray: {exc}") from None
    from .run.local import LocalExecutor

    return LocalExecutor()


def build_engine(
    project_dir: Path,
    settings: Settings,
    *,
    resume: bool,
    listener: Listener,
    run_name: str | None = None,
    confirm_card: bool = False,
) -> Engine:
    """Wire a ready-to-run engine: project, lock, run directory, coder, runner, git.

    Raises UserError (one line, exit code 2) for anything the user can fix.
    The instance lock is held until the process exits or `release_lock()`.
    """
    from .card_resolution import resolve_card
    from .errors import UserError
    from .project import InstanceLock
    from .records import check_repository, claim_run
    from .run.bwrap import choose_isolation
    from .run.workspace import list_data_files
    from .search.preview import build_preview
    from .search.prompts import PROMPT_NAMES, load_prompt

    project = Project.open(project_dir)
    data_files = list_data_files(project.root)
    if not data_files:
        raise UserError(
            f"{project.root}: no data files next to task.md; put the data in the project (e.g. data/train.csv)"
        )
    lock = InstanceLock(project)
    lock.acquire()
    store: GitStore | None = None
    try:
        store = GitStore(project.root)
        check_repository(store)
        coder_name = choose_coder_name(settings)
        if resume:
            run_name = run_name or project.unfinished_run()
            if run_name is None:
                raise UserError(f"{project.root}: no unfinished run to resume; start a new one with --new")
            if not (project.run_dir(run_name) / "run.json").exists():
                raise UserError(f"{project.root}: no run named {run_name!r} under .aide/runs/")
        cancel = threading.Event()
        if coder_name == "llm":
            from .llm.client import LlmClient
            from .search.operators import LlmCoder
            from .settings import api_key_present

            if not api_key_present():
                raise UserError("ANTHROPIC_API_KEY is not set; export your key, or use --coder offline")
            client = LlmClient(timeout=settings.llm_timeout, max_retries=settings.llm_retries)
            coder = LlmCoder(client, settings, project_dir=project.root, cancel=cancel)
        else:
            from .search.offline import OfflineCoder

            coder = OfflineCoder(project.root, data_files, settings.seed)  # given the card below
        isolation, sandbox_notice = choose_isolation(
            settings.sandbox, project.root, Path.home(), settings.sandbox_read, settings.network
        )
        executor = build_executor(settings)  # a cluster that cannot be reached fails here, before the root commit
        preview_path = project.run_dir(run_name) / "preview.md" if resume else None
        preview = (
            ""
            if preview_path and preview_path.exists()
            else build_preview(project.root, data_files, settings.preview_chars)
        )
        ask_llm = None
        if coder_name == "llm" and not resume:
            from .search.card_llm import llm_task_card

            ask_llm = partial(
                llm_task_card, client, settings.feedback_model, project.root, data_files, project.task_text(), preview
            )
        card = resolve_card(
            project,
            data_files,
            settings,
            project.run_dir(run_name) if resume else None,
            ask_llm,
            confirm=confirm_card,
            offline=coder_name == "offline",
        )
        if not resume:  # last, so a refusal above leaves no root commit behind
            prompts = {name: load_prompt(name, project.root) for name in PROMPT_NAMES} if coder_name == "llm" else {}
            # A card still to be confirmed is recorded in the run directory only, once confirmed.
            run_name = claim_run(project, store, data_files, prompts, None if confirm_card else card.card)
        engine = Engine(
            project=project,
            settings=settings,
            run_name=run_name,
            coder=coder,
            executor=executor,
            store=store,
            data_files=data_files,
            listener=listener,
            resume=resume,
            data_preview=preview,
            cancel=cancel,
            isolation=isolation,
            card=card.card,
            card_source=card.source,
            confirm_card=confirm_card,
            card_error=card.fatal,
        )
        engine._usage = card.usage  # the LLM's card call counts toward the run's cost
        if card.card is not None and coder_name == "offline":
            coder.card = card.card
        if resume:
            engine.records.load()  # a damaged journal stops here, before anything runs (exit 2)
    except BaseException:
        if store is not None:
            store.close()
        lock.release()
        raise
    engine.lock = lock
    if sandbox_notice:
        listener(ev.Notice(sandbox_notice, "warning"))
    for notice in ([card.notice] if card.notice else []) + card.warnings:
        listener(ev.Notice(notice, "warning"))
    if coder_name == "offline":
        # `auto` picks Claude by itself once the key is set; only an explicit `offline` needs changing.
        fix = (
            "Set ANTHROPIC_API_KEY to let Claude write the code."
            if settings.coder == "auto"
            else "Set ANTHROPIC_API_KEY and drop --coder offline (or coder in aide.toml) to let Claude write the code."
        )
        listener(ev.Notice(f"Offline baseline coder in use: scikit-learn templates, not an LLM. {fix}"))
    return engine
