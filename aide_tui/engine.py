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

import logging
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import events as ev
from .control import Plan, RunControl
from .errors import FatalRunError
from .project import Project, write_atomic
from .run.executor import ExecRequest, ExecResult, Executor, Isolation
from .run.inputs import DEFAULT_COPY_LIMIT, InputData
from .run.launch import choose_preload
from .run.local import kill_leftovers
from .run.sandbox import available_cpus
from .run.workspace import collect_outputs, prepare_workspace, write_script
from .search.coder import Coder, CoderError, Proposal, Review, TaskContext
from .search.memory import summarize
from .search.node import ExecInfo, Node, Usage
from .search.policy import AidePolicy, Decision, Policy
from .search.tree import SearchTree
from .search.verdict import decide, fix_direction
from .settings import Settings
from .records import MAX_OUTPUT_FILE_BYTES, MAX_OUTPUT_TOTAL_BYTES, RunPaths, RunRecords, committable_outputs
from .records import branch_name as branch_name  # the front ends import it from here
from .store.git import GitStore

log = logging.getLogger("aide_tui.engine")

Listener = Callable[[ev.Event], None]

MAX_CONSECUTIVE_LLM_FAILURES = 3


class _Cancelled(Exception):
    """The user cancelled mid-step: the unfinished node is discarded."""


@dataclass
class StepTimings:
    """Where a step's wall time went; the benchmark subtracts LLM and script time."""

    total: float = 0.0
    coder: float = 0.0
    execute: float = 0.0


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

    def __post_init__(self) -> None:
        self.records = RunRecords(self.project, self.run_name, self.store, self._emit)
        self.paths: RunPaths = self.records.paths
        self.tree = SearchTree()
        if self.policy is None:
            s = self.settings
            self.policy = AidePolicy(s.num_drafts, s.debug_prob, s.max_debug_depth, s.seed)
        self._lock = threading.RLock()
        self._cancel = self.cancel
        self.control = RunControl(self._finished_node, self._emit, self.cancel, self._lock)
        self._announced: ev.NextPlanned | None = None
        self._job = None
        self._usage = Usage()
        self._llm_failures = 0
        self._preload: tuple[str, ...] | None = None  # chosen at the first step (probes the interpreter)
        self._warm: tuple[int, object] | None = None  # (node id, the executor's warm start for it)

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
        job = self._job
        if job is not None:
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
            self.records.close()
            self.executor.shutdown()
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
        self.inputs = InputData(self.project.root, self.data_files, self.paths.root, self.input_copy_limit,
                                read_only_mount=self.isolation is not None)
        if self.paths.preview.exists():
            self.data_preview = self.paths.preview.read_text(encoding="utf-8")
        else:
            write_atomic(self.paths.preview, self.data_preview)
        self._write_info(status="running")
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
        if nodes:
            self._emit(ev.UsageUpdated(self._usage, self.settings.budget))
        self._emit(ev.RunStateChanged("running"))

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
            replayed.append(ev.NodeFinished(node, so_far.best_id, sha, branch if sha else None, self.run_name, so_far.direction))
        return tuple(replayed)

    def _finished_event(self, node: Node, sha: str | None, branch: str | None) -> ev.NodeFinished:
        return ev.NodeFinished(node, self.tree.best_id, sha, branch, self.run_name, self.tree.direction)

    def _loop(self) -> ev.RunFinished:
        while True:
            with self._lock:
                if len(self.tree) >= self.settings.steps:
                    return self._finish("completed", "completed")
                if self._cancel.is_set():
                    return self._finish("cancelled", "stopped")
                if self.control.stop_requested:
                    return self._finish("stopped", "stopped")
            if self._over_budget():
                self._emit(ev.RunError("budget", f"budget of ${self.settings.budget:.2f} reached (spent ${self._usage.cost:.2f}); raise --budget to continue"))
                return self._finish("budget", "stopped")
            self._announce_next()
            if self.control.paused:
                self._end_warm_start()  # nothing idles in the background while paused (not under the lock: it kills)
            if not self.control.hold_if_paused():
                continue
            try:
                self._step(*self._next_plan())
            except _Cancelled:
                continue

    def _announce_next(self, replan: bool = False) -> None:
        """Say what the next step will do before it starts (and while paused), once per change
        of plan: a queued command, or the policy's choice, exact because its draw is seeded per step.

        `replan`: a command may have changed the plan already announced; nothing is announced
        while a step runs or before the loop has announced its first step."""
        with self._lock:
            if replan and self._announced is None:
                return
            step = len(self.tree) + 1
            queued = self.control.peek()
            if queued is not None:
                plan = ev.NextPlanned(step, queued.operation, queued.parent_id, "command")
            else:
                decision = self.policy.choose(self.tree, step)
                plan = ev.NextPlanned(step, decision.operation, decision.parent_id, "policy")
            if plan == self._announced:
                return
            self._announced = plan
        self._emit(plan)

    def _next_plan(self) -> tuple[Plan, str | None]:
        """The step to run now and the hints for its prompt."""
        with self._lock:  # from here on the announced plan is being carried out
            self._announced = None
            queued, hint = self.control.take()  # targets were validated on submit; nodes are never removed
        if queued is not None:
            return queued, hint
        with self._lock:
            step = len(self.tree) + 1
            decision: Decision = self.policy.choose(self.tree, step)
        return Plan(decision.operation, decision.parent_id, "policy", plan=decision.reason), hint

    def _over_budget(self) -> bool:
        budget = self.settings.budget
        return budget is not None and self._usage.cost >= budget

    # ------------------------------------------------------------ one step

    def _step(self, plan: Plan, hint: str | None) -> None:
        t0 = time.perf_counter()
        timings = StepTimings()
        node_id = self.tree.next_id
        step = len(self.tree) + 1
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
        ctx = self._context(hint, plan.parent_id)
        self._start_warming(node_id)
        try:
            proposal = self._write_code(node, plan, parent, ctx, timings)
            if proposal is None:  # LLM failure: the step is retried, nothing recorded
                self.control.give_back(plan, hint)  # ...and the user's command and hint apply to the retry
                return
            node.plan, node.code = proposal.plan, proposal.code
            node.usage = node.usage + proposal.usage
            outputs: dict[str, bytes] = {}
            if node.code:
                self._emit(ev.CodeReady(node_id, node.plan, node.code))
                result, tampered = self._execute(node, timings)
                outputs = self._record_exec(node, result)
                self._review(node, ctx, tampered)
            self._finish_node(node, outputs)
        except _Cancelled:
            shutil.rmtree(self.paths.workspace(node_id), ignore_errors=True)
            self._emit(ev.PhaseChanged(None, "idle", "cancelled"))
            raise
        finally:
            self._end_warm_start(unless_for=self.tree.next_id)  # kept: the successor's, or a retry's
            self._job = None
        timings.total = time.perf_counter() - t0
        self.timings.append(timings)

    def _context(self, hint: str | None, parent_id: int | None = None) -> TaskContext:
        nodes = list(self.tree.nodes.values())
        return TaskContext(
            task=self.project.task_text(),
            data_preview=self.data_preview,
            memory=summarize(nodes, self.tree.direction, self.settings.memory_chars, focus=parent_id),
            direction=self.tree.direction,
            hint=hint,
            timeout=self.settings.timeout,
            network=self.isolation is None or self.isolation.network,
            cpus=available_cpus(),
        )

    def _write_code(self, node: Node, plan: Plan, parent: Node | None, ctx: TaskContext, timings: StepTimings) -> Proposal | None:
        if plan.operation == "manual":
            return Proposal(plan.plan or "Edited by hand.", plan.code or "")
        self._emit(ev.PhaseChanged(node.id, "llm", f"{self.coder.name} coder writing a {plan.operation}"))

        def on_delta(text: str) -> None:
            if self._cancel.is_set():
                raise _Cancelled()
            self._emit(ev.LlmDelta(node.id, text))

        t0 = time.perf_counter()
        try:
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

    def _llm_failed(self, node: Node, exc: Exception) -> None:
        self._llm_failures += 1
        message = f"{type(exc).__name__}: {exc}"
        if self._llm_failures >= MAX_CONSECUTIVE_LLM_FAILURES:
            raise FatalRunError(f"the LLM failed {self._llm_failures} times in a row ({message}); the run is resumable", "llm")
        self._emit(ev.Notice(f"LLM call failed, retrying the step: {message}", "warning"))
        self._emit(ev.PhaseChanged(node.id, "idle", "LLM failed"))
        return None

    def _execute(self, node: Node, timings: StepTimings) -> tuple[ExecResult, list[str]]:
        """Run the node's script; also returns the input files it wrote into (restored since)."""
        workspace = self.paths.workspace(node.id)
        warm = self._warm if self._warm is not None and self._warm[0] == node.id else None
        if warm is not None:
            self._warm = None
            write_script(workspace, node.code)  # the warm interpreter waits there, input in place
        else:
            self._end_warm_start()
            if workspace.exists():
                shutil.rmtree(workspace)
            prepare_workspace(workspace, self.project.root, self.data_files, node.code, inputs=self.inputs)
        self._emit(ev.PhaseChanged(node.id, "executing", f"running node #{node.id}"))
        request = self._exec_request(node.id)

        def on_line(stream: str, line: str) -> None:
            self._emit(ev.OutputLine(node.id, stream, line))  # type: ignore[arg-type]

        t0 = time.perf_counter()
        if self._cancel.is_set():
            raise _Cancelled()
        if warm is not None:
            self._job = self.executor.submit(request, on_line, warm=warm[1])
        else:
            self._job = self.executor.submit(request, on_line)
        if len(self.tree) + 1 < self.settings.steps:
            self._start_warming(node.id + 1)  # the successor's imports overlap this script's run
        if self._cancel.is_set():
            self._job.cancel()
        result = self._job.wait()
        timings.execute = time.perf_counter() - t0
        if result.killed_reason == "cancelled" or self._cancel.is_set():
            raise _Cancelled()
        shutil.rmtree(workspace / "input", ignore_errors=True)  # the per-node data copy is no longer needed
        tampered = self.inputs.verify_and_repair()
        if tampered:
            self._end_warm_start()  # a successor prepared meanwhile may link the tampered files
            self._emit(ev.Notice(f"node #{node.id} wrote into its input files ({', '.join(tampered)}); they were restored from the originals", "warning"))
        return result, tampered

    def _exec_request(self, node_id: int) -> ExecRequest:
        request = ExecRequest(
            workspace=self.paths.workspace(node_id),
            timeout=self.settings.timeout,
            memory_limit_mb=self.settings.memory_limit_mb,
            output_limit_bytes=self.settings.output_limit_bytes,
            env_pass=tuple(self.settings.env_pass),
            cpus=available_cpus(),  # one node at a time gets every core
            isolation=self.isolation,
        )
        if self.settings.python:
            request.python = self.settings.python
        return request

    def _start_warming(self, node_id: int) -> None:
        """Start the node's interpreter now (input in place, heavy modules importing), so that the
        imports overlap the model writing the code (and, for a successor, the running node);
        `_execute` hands the script to it.  Only the node id matters, not the plan."""
        if self._warm is not None and self._warm[0] == node_id:
            return  # already warming (started while its predecessor ran, or before a retried step)
        self._end_warm_start()
        if self._preload is None:
            self._preload, note = choose_preload(self.settings.preload, self.settings.python or sys.executable)
            if note:
                self._emit(ev.Notice(note, "warning"))
        if not self._preload:
            return
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
            self._warm = (node_id, warm)

    def _end_warm_start(self, unless_for: int | None = None) -> None:
        """End a warm interpreter nobody will use (cancel, pause, stop): it and all it started."""
        warm = self._warm
        if warm is not None and warm[0] != unless_for:
            self._warm = None
            warm[1].discard()
            shutil.rmtree(self.paths.workspace(warm[0]), ignore_errors=True)  # a node that never ran

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
            review = self.coder.review(ctx, node)
            node.usage = node.usage + review.usage
        except FatalRunError:
            raise
        except Exception as exc:  # a failed review must not lose the execution
            if self._cancel.is_set():
                raise _Cancelled() from exc
            node.review_summary = f"The review failed ({type(exc).__name__}: {exc})."
        status, metric, reason = decide(node.exec, review)
        if review is not None:
            node.review_summary = review.summary.strip()
            if status == "ok":
                direction = fix_direction(self.tree.direction, review.direction)
                if direction is not None and self.tree.direction is None:
                    with self._lock:
                        self.tree.set_direction(direction)
                    self._write_info(status="running")
                    self._emit(ev.DirectionFixed(direction, self.tree.best_id))
        if reason and reason not in node.review_summary:
            node.review_summary = f"{node.review_summary} [{reason}]".strip()
        if tampered:
            node.review_summary += f" [it modified its input files {', '.join(tampered)}; they were restored]"
        node.status, node.metric = status, (metric if status == "ok" else None)

    # ------------------------------------------------------------ durability

    def _finish_node(self, node: Node, outputs: dict[str, bytes]) -> None:
        node.finished_at = time.time()
        self._emit(ev.PhaseChanged(node.id, "committing", f"saving node #{node.id}"))
        with self._lock:
            self.records.append(node, self.tree)  # durable first: the journal is the truth
            self.tree.add(node)
            self._usage = self._usage + node.usage
        sha, ref = self.records.commit(node, outputs, self.tree)
        self._emit(self._finished_event(node, sha, ref.removeprefix("refs/heads/") if ref else None))
        self._emit(ev.UsageUpdated(self._usage, self.settings.budget))
        self._emit(ev.PhaseChanged(None, "idle"))

    def _clear_stale_workspaces(self) -> None:
        """Workspaces of nodes that never finished (killed run) are half-built: drop them."""
        nodes_dir = self.paths.root / "nodes"
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
        self._end_warm_start()
        try:
            self._write_info(status=status)
        except (OSError, FatalRunError):
            pass
        self.control.drop_queue()
        state = "failed" if status == "failed" else "finished"
        self._emit(ev.RunStateChanged(state, detail or reason))  # type: ignore[arg-type]
        best = self.tree.best
        finished = ev.RunFinished(
            reason,  # type: ignore[arg-type]
            len(self.tree),
            best_id=best.id if best else None,
            best_metric=best.metric if best else None,
            best_branch=branch_name(self.run_name, best) if best else None,
        )
        self._emit(finished)
        return finished

    def _emit(self, event: ev.Event) -> None:
        try:
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


def build_engine(
    project_dir: Path,
    settings: Settings,
    *,
    resume: bool,
    listener: Listener,
    run_name: str | None = None,
) -> Engine:
    """Wire a ready-to-run engine: project, lock, run directory, coder, runner, git.

    Raises UserError (one line, exit code 2) for anything the user can fix.
    The instance lock is held until the process exits or `release_lock()`.
    """
    from .errors import UserError
    from .project import InstanceLock
    from .run.bwrap import choose_isolation
    from .run.local import LocalExecutor
    from .run.workspace import list_data_files
    from .records import check_repository, claim_run
    from .search.preview import build_preview
    from .search.prompts import PROMPT_NAMES, load_prompt

    project = Project.open(project_dir)
    data_files = list_data_files(project.root)
    if not data_files:
        raise UserError(f"{project.root}: no data files next to task.md; put the data in the project (e.g. data/train.csv)")
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

            coder = OfflineCoder(project.root, data_files, settings.seed)
        isolation, sandbox_notice = choose_isolation(settings.sandbox, project.root, Path.home(),
                                                     settings.sandbox_read, settings.network)
        if not resume:  # last, so a refusal above leaves no root commit behind
            prompts = {name: load_prompt(name, project.root) for name in PROMPT_NAMES} if coder_name == "llm" else {}
            run_name = claim_run(project, store, data_files, prompts)
        preview_path = project.run_dir(run_name) / "preview.md"
        preview = "" if preview_path.exists() else build_preview(project.root, data_files, settings.preview_chars)
        engine = Engine(
            project=project,
            settings=settings,
            run_name=run_name,
            coder=coder,
            executor=LocalExecutor(),
            store=store,
            data_files=data_files,
            listener=listener,
            resume=resume,
            data_preview=preview,
            cancel=cancel,
            isolation=isolation,
        )
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
    if coder_name == "offline":
        # `auto` picks Claude by itself once the key is set; only an explicit `offline` needs changing.
        fix = ("Set ANTHROPIC_API_KEY to let Claude write the code." if settings.coder == "auto"
               else "Set ANTHROPIC_API_KEY and drop --coder offline (or coder in aide.toml) to let Claude write the code.")
        listener(ev.Notice(f"Offline baseline coder in use: scikit-learn templates, not an LLM. {fix}"))
    return engine
