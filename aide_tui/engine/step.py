"""One node: the coder writes code -> it runs in the node's workspace -> the review fixes status
and metric -> the node is journaled and committed.  Runs in the node's own thread.

This part owns what only a step touches: the coder's guard (for coders that are not
thread-safe) and the count of consecutive LLM failures.  Shared run state (the tree, the usage)
is changed under `engine.run_lock`; git is written under `engine.store_lock`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import events as ev
from ..control import Plan
from ..errors import FatalRunError
from ..evaluation.holdout import HOLDOUT_RUNS
from ..records import committable_outputs
from ..run.executor import ExecRequest, ExecResult
from ..run.sandbox import available_cpus
from ..run.workspace import prepare_workspace, read_back, remove_tree, write_script
from ..search.coder import CoderError, Proposal, Review, TaskContext
from ..search.memory import summarize
from ..search.metric_line import validation_folds
from ..search.node import ExecInfo, Node, Usage
from ..search.operations import OPERATIONS
from ..search.refusals import RefusalStreak
from ..search.verdict import decide, fix_direction
from .loop import Cancelled, InFlight
from .reuse import earlier_same_code, reuse_result

if TYPE_CHECKING:
    from .core import Engine

log = logging.getLogger("aide_tui.engine")

MAX_CONSECUTIVE_LLM_FAILURES = 3


@dataclass
class StepTimings:
    """Where a step's wall time went; the benchmark subtracts LLM and script time."""

    total: float = 0.0
    coder: float = 0.0
    execute: float = 0.0


class StepRunner:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._coder_lock = threading.Lock()  # for coders that keep state and are not thread-safe
        self._llm_failures = 0
        self._refusals = RefusalStreak(engine.settings.max_refusals)

    def run(self, flight: InFlight, hint: str | None) -> None:
        engine = self._engine
        t0 = time.perf_counter()
        timings = StepTimings()
        plan, node_id, step = flight.plan, flight.node_id, flight.step
        parent = engine.tree.get(plan.parent_id) if plan.parent_id is not None else None
        engine.emit(ev.NodeStarted(node_id, plan.parent_id, plan.operation, step, hint))
        node = Node(
            id=node_id,
            parent_id=plan.parent_id,
            operation=plan.operation,
            step=step,
            hint=hint,
            created_at=time.time(),
            debug_depth=(parent.debug_depth + 1) if (parent is not None and plan.operation == "debug") else 0,
            parent_ids=[i for i in (plan.parent_id, plan.other_id) if i is not None],
        )
        ctx = self.context(hint, flight)
        engine.warm.start(node_id)
        try:
            proposal = self._write_code(node, plan, parent, ctx, timings)
            if proposal is None:  # LLM failure: the step is retried, nothing recorded
                engine.loop.give_back_id(node_id)  # ... under its own id
                engine.control.give_back(plan, hint)  # ...and the user's command and hint apply to the retry
                return
            node.plan, node.code = proposal.plan, proposal.code
            flight.proposed_plan = node.plan
            node.usage = node.usage + proposal.usage
            outputs: dict[str, bytes] = {}
            if node.code:
                engine.emit(ev.CodeReady(node_id, node.plan, node.code, node.usage))
                with engine.run_lock:
                    earlier = earlier_same_code(list(engine.tree.nodes.values()), node)
                if earlier is not None:  # identical code, same inputs: its result, not a second run
                    warm = engine.warm.take(node_id)  # waits for one being prepared, then ends it
                    if warm is not None:
                        warm.discard()
                    outputs = reuse_result(
                        node, earlier, engine.paths.workspace(earlier.id), engine.paths.workspace(node_id)
                    )
                else:
                    result, tampered = self._execute(node, flight, timings)
                    outputs = self._record_exec(node, result)
                    self._review(node, ctx, tampered)
                    self._check_submission(node)
            if proposal.note:
                node.review_summary = f"{node.review_summary} [{proposal.note}]".strip()
            self._finish_node(node, outputs)
            if stop := self._refusals.observe(node):
                raise FatalRunError(stop, "refused")
            if engine.tree.best_id == node.id:
                engine.holdout.queue(node)
        except Cancelled:
            remove_tree(engine.paths.workspace(node_id), ignore_errors=True)
            engine.emit(ev.PhaseChanged(None, "idle", "cancelled"))
            raise
        finally:
            engine.warm.discard(node_id)  # unused: the coder gave no code, or the step failed
            flight.job = None
        timings.total = time.perf_counter() - t0
        engine.timings.append(timings)

    def context(self, hint: str | None, flight: InFlight | None = None) -> TaskContext:
        """What the coder's prompt is built from (the siblings: only an improve's prompt shows them)."""
        engine = self._engine
        parent_id = flight.plan.parent_id if flight is not None else None
        siblings = engine.loop.siblings(flight) if flight is not None and flight.plan.operation == "improve" else []
        with engine.run_lock:
            nodes = list(engine.tree.nodes.values())
        return TaskContext(
            siblings=siblings,
            task=engine.project.task_text(),
            data_preview=engine.data_preview,
            memory=summarize(
                nodes, engine.tree.direction, engine.settings.memory_chars, focus=parent_id, query=hint or ""
            ),
            direction=engine.tree.direction,
            hint=hint,
            timeout=engine.settings.timeout,
            network=engine.isolation is None or engine.isolation.network,
            cpus=self.node_cpus(),
            memory_mb=engine.settings.memory_limit_mb,
            gpus=engine.machine.gpus if engine.machine else 0.0,
            packages=engine.machine.packages.describe() if engine.machine else "",
            card=engine.card,
            **(engine.evaluation.prompt_values() if engine.evaluation else {}),
        )

    def node_cpus(self) -> int:
        """Each node's share of the cores (its thread variables are set to it)."""
        return max(1, available_cpus() // self._engine.settings.workers)

    def _write_code(
        self, node: Node, plan: Plan, parent: Node | None, ctx: TaskContext, timings: StepTimings
    ) -> Proposal | None:
        engine = self._engine
        operation = OPERATIONS[plan.operation]
        if operation.coder_method is None:  # the user brought the code
            return Proposal(plan.plan or "Edited by hand.", plan.code or "")
        engine.emit(ev.PhaseChanged(node.id, "llm", f"{engine.coder.name} coder writing a {plan.operation}"))

        def on_delta(text: str) -> None:
            if engine.cancel.is_set():
                raise Cancelled()
            engine.emit(ev.LlmDelta(node.id, text))

        t0 = time.perf_counter()
        try:
            with self._coder_guard():
                write = getattr(engine.coder, operation.coder_method)
                if operation.parents == 2:
                    other = engine.tree.get(plan.other_id) if plan.other_id is not None else None
                    proposal = write(ctx, parent, other, on_delta)
                else:
                    proposal = write(ctx, on_delta) if operation.parents == 0 else write(ctx, parent, on_delta)
        except CoderError as exc:
            node.coder_outcome = exc.outcome
            node.plan = f"(no usable code) {exc}"
            node.usage = node.usage + exc.usage
            node.review_summary = f"The coder gave no usable code: {exc}"
            node.status = "buggy"
            return Proposal(node.plan, "", Usage())
        except Cancelled:
            raise
        except Exception as exc:
            if engine.cancel.is_set():
                raise Cancelled() from exc
            if isinstance(exc, FatalRunError):
                raise
            self._llm_failed(node, exc)
            return None
        finally:
            timings.coder = time.perf_counter() - t0
        self._llm_failures = 0
        return proposal

    def _coder_guard(self) -> contextlib.AbstractContextManager[Any]:
        """Coders that keep state between calls (the offline one) are called one at a time."""
        return contextlib.nullcontext() if getattr(self._engine.coder, "thread_safe", False) else self._coder_lock

    def _llm_failed(self, node: Node, exc: Exception) -> None:
        engine = self._engine
        self._llm_failures += 1
        message = f"{type(exc).__name__}: {exc}"
        if self._llm_failures >= MAX_CONSECUTIVE_LLM_FAILURES:
            raise FatalRunError(
                f"the LLM failed {self._llm_failures} times in a row ({message}); the run is resumable", "llm"
            )
        engine.emit(ev.Notice(f"LLM call failed, retrying the step: {message}", "warning"))
        engine.emit(ev.PhaseChanged(node.id, "idle", "LLM failed"))
        return None

    def prepare_empty_workspace(self, node_id: int) -> None:
        """A workspace with the input in place and no script yet (for a warm start)."""
        engine = self._engine
        workspace = engine.paths.workspace(node_id)
        remove_tree(workspace)
        prepare_workspace(workspace, engine.project.root, engine.data_files, "", inputs=engine.inputs)

    def _execute(self, node: Node, flight: InFlight, timings: StepTimings) -> tuple[ExecResult, list[str]]:
        """Run the node's script; also returns the input files it wrote into (restored since)."""
        engine = self._engine
        workspace = engine.paths.workspace(node.id)
        warm = engine.warm.take(node.id)
        if warm is not None:
            write_script(workspace, node.code)  # the warm interpreter waits there, input in place
        else:
            remove_tree(workspace)
            prepare_workspace(workspace, engine.project.root, engine.data_files, node.code, inputs=engine.inputs)
        engine.emit(ev.PhaseChanged(node.id, "executing", f"running node #{node.id}"))
        request = self.exec_request(node.id)

        def on_line(stream: str, line: str) -> None:
            engine.emit(ev.OutputLine(node.id, stream, line))  # type: ignore[arg-type]

        t0 = time.perf_counter()
        if engine.cancel.is_set():
            if warm is not None:
                warm.discard()
            raise Cancelled()
        if warm is not None:
            job = flight.job = engine.executor.submit(request, on_line, warm=warm)
        else:
            job = flight.job = engine.executor.submit(request, on_line)
        engine.loop.warm_successors()
        if engine.cancel.is_set():
            job.cancel()
        result = job.wait()
        assert result is not None  # waited without a timeout
        timings.execute = time.perf_counter() - t0
        if warm is not None:
            engine.warm.drop_failed_preloads(warm.failed_preloads())
        if result.killed_reason == "cancelled" or engine.cancel.is_set():
            raise Cancelled()
        remove_tree(workspace / "input", ignore_errors=True)  # the per-node data copy is no longer needed
        inputs = engine.inputs
        assert inputs is not None  # prepared at the run's start
        with engine.run_lock:  # one check at a time; a repair must not race another node's
            try:
                tampered = inputs.verify_and_repair()
            except FileNotFoundError:
                if engine.paths.root.exists():
                    raise
                tampered = []  # the script deleted the run directory: recording the node says so and stops
        if tampered:
            engine.loop.end_warm_starts()  # one prepared meanwhile may link the tampered files
            engine.emit(
                ev.Notice(
                    f"node #{node.id} wrote into its input files ({', '.join(tampered)}); "
                    "they were restored from the originals",
                    "warning",
                )
            )
        return result, tampered

    def exec_request(self, node_id: int) -> ExecRequest:
        return self.exec_request_in(self._engine.paths.workspace(node_id))

    def exec_request_in(self, workspace: Path) -> ExecRequest:
        """How every script of the run is run: limits and sandbox (a node's, or a holdout re-run's)."""
        engine = self._engine
        settings = engine.settings
        request = ExecRequest(
            workspace=workspace,
            timeout=settings.timeout,
            memory_limit_mb=settings.memory_limit_mb,
            pids_limit=settings.pids_limit,
            disk_limit_mb=settings.disk_limit_mb,
            output_limit_bytes=settings.output_limit_bytes,
            env_pass=tuple(settings.env_pass),
            cpus=self.node_cpus(),
            isolation=engine.isolation,
            workspace_roots=(engine.paths.nodes, engine.paths.root / HOLDOUT_RUNS),  # one zygote for both
        )
        if settings.python:
            request.python = settings.python
        return request

    def _record_exec(self, node: Node, result: ExecResult) -> dict[str, bytes]:
        """Put the run's facts on the node; return the files it wrote (for the commit)."""
        workspace = self._engine.paths.workspace(node.id)
        written, skipped, notice = read_back(
            workspace, node.id
        )  # through run/safe_read, after disarming a planted .git
        if notice:
            self._engine.emit(ev.Notice(notice, "warning"))
        outputs, node.skipped_files = committable_outputs(written)  # known before the journal has the node
        node.output = result.output
        node.validation_folds = validation_folds(result.output)
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
        engine = self._engine
        engine.emit(ev.PhaseChanged(node.id, "reviewing", f"reviewing node #{node.id}"))
        review: Review | None = None
        try:
            with self._coder_guard():
                review = engine.coder.review(ctx, node)
            node.usage = node.usage + review.usage
        except FatalRunError:
            raise
        except Exception as exc:  # a failed review must not lose the execution
            if engine.cancel.is_set():
                raise Cancelled() from exc
            node.usage = node.usage + getattr(exc, "usage", Usage())  # replies that came back still cost
            node.review_summary = f"The review failed ({type(exc).__name__}: {exc})."
        status, metric, reason = decide(node.exec, review, node.output)
        if review is not None:
            node.review_summary = review.summary.strip()
            if status == "ok":
                direction = fix_direction(engine.tree.direction, review.direction)
                with engine.run_lock:
                    fixed = direction is not None and engine.tree.direction is None
                    if fixed:
                        engine.tree.set_direction(direction)  # type: ignore[arg-type]
                        engine.write_info(status="running")
                if fixed:
                    engine.emit(ev.DirectionFixed(direction, engine.tree.best_id))  # type: ignore[arg-type]
        if reason and reason not in node.review_summary:
            node.review_summary = f"{node.review_summary} [{reason}]".strip()
        if tampered:
            node.review_summary += f" [it modified its input files {', '.join(tampered)}; they were restored]"
        node.status, node.metric = status, (metric if status == "ok" else None)

    def _check_submission(self, node: Node) -> None:
        """A working node whose submission does not fit the test file is buggy, saying what is wrong."""
        engine = self._engine
        if engine.evaluation is None or node.status != "ok":
            return
        problem = engine.evaluation.check_submission(engine.paths.workspace(node.id))
        if problem:
            node.status, node.metric = "buggy", None
            node.review_summary = f"{node.review_summary} [{problem}]".strip()

    def _finish_node(self, node: Node, outputs: dict[str, bytes]) -> None:
        """Durable first (the journal is the truth), then git, then NodeFinished."""
        engine = self._engine
        node.finished_at = time.time()
        engine.emit(ev.PhaseChanged(node.id, "committing", f"saving node #{node.id}"))
        with engine.run_lock:
            engine.records.append(node, engine.tree)
            engine.tree.add(node)
            engine.policy.observe(node)  # type: ignore[union-attr]
            engine.usage = engine.usage + node.usage
        with engine.store_lock:
            sha, ref = engine.records.commit(node, outputs, engine.tree)
        engine.emit(engine.finished_event(node, sha, ref.removeprefix("refs/heads/") if ref else None))
        engine.emit(ev.UsageUpdated(engine.usage, engine.settings.budget))
        engine.emit(ev.PhaseChanged(None, "idle"))
