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

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from .. import events as ev
from ..control import RunControl
from ..errors import FatalRunError
from ..evaluation.run_setup import RunEvaluation, setup_evaluation
from ..project import InstanceLock, Project, write_atomic
from ..records import RunPaths, RunRecords, branch_name
from ..run.executor import Executor, Isolation
from ..run.inputs import DEFAULT_COPY_LIMIT, InputData
from ..run.local import kill_leftovers
from ..run.machine import Machine, probe_machine
from ..run.workspace import remove_tree
from ..search.coder import Coder
from ..search.node import Node, Usage
from ..search.offline.task_reader import card_problem
from ..search.policy import Policy, make_policy
from ..search.refusals import model_notices
from ..search.task_card import TaskCard, card_to_dict
from ..search.tree import SearchTree
from ..settings import Settings
from ..store.git import GitStore
from .holdout import HoldoutScoring
from .loop import Cancelled, Scheduler
from .step import StepRunner, StepTimings
from .warm import WarmStarts

log = logging.getLogger("aide_tui.engine")

Listener = Callable[[ev.Event], None]


@dataclass
class Engine:
    """The face the front ends hold: construct (or `build_engine`), `run()` in one thread, `submit()` from any.

    The work is done by its parts, each owning its state: `loop` (the scheduler and the nodes in
    flight), `steps` (one node: code, run, review, commit), `warm` (warm-start interpreters),
    `holdout` (holdout scoring and the final pick).  What they share (the tree, the usage) is
    guarded by `run_lock`; git is written under `store_lock`."""

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
    lock: InstanceLock | None = None  # the project's InstanceLock, released when run() ends
    card: TaskCard | None = None  # the task card (None: the data is not a table the card can describe)
    card_source: str = "derived"
    evaluation: RunEvaluation | None = None  # folds, holdout, submission checks (set up at start from the card)
    confirm_card: bool = False  # a new run's card waits for ConfirmTaskCard (the TUI's form) before node 1
    card_error: FatalRunError | None = None  # the LLM refused the key when asked for the card: stop at the start
    usage: Usage = field(default_factory=Usage)  # the run's spend so far (a new run's: the LLM's task card call)

    def __post_init__(self) -> None:
        self.records = RunRecords(self.project, self.run_name, self.store, self.emit, self.card)
        self.paths: RunPaths = self.records.paths
        self.tree = SearchTree()
        if self.policy is None:
            s = self.settings
            self.policy = make_policy(s.policy, s.num_drafts, s.debug_prob, s.max_debug_depth, s.seed, s.steps)
        self.run_lock = threading.RLock()  # the tree, the usage, the nodes in flight
        self.store_lock = threading.Lock()  # GitPython is not thread-safe: one writer
        self._emit_lock = threading.RLock()  # events from several node threads never interleave
        self.control = RunControl(self._finished_node, self.emit, self.cancel, self.run_lock)
        self.loop = Scheduler(self)
        self.steps = StepRunner(self)
        self.warm = WarmStarts(self, self.steps.prepare_empty_workspace, self.steps.exec_request)
        self.holdout = HoldoutScoring(self)
        self.inputs: InputData | None = None  # what every node's ./input holds (set at start)
        self._abandoned = False  # a new run whose task card form was left: removed when run() ends
        self.machine: Machine | None = None  # probed at start for the LLM coder's prompts

    # ------------------------------------------------------------ commands

    def submit(self, command: ev.Command) -> None:
        """Thread-safe.  Answered with CommandAccepted / CommandRejected events (see control.py)."""
        if not self.control.submit(command):
            return
        if isinstance(command, ev.CancelNow):
            self.loop.cancel_running()
        else:
            self.loop.announce_next(replan=True)  # e.g. while paused: the status shows the new next step at once

    def _finished_node(self, node_id: int) -> Node | None:
        with self.run_lock:
            return self.tree.get(node_id) if node_id in self.tree else None

    def shutdown(self) -> None:
        """Cancel now from any thread: kill the running script, interrupt the LLM."""
        self.submit(ev.CancelNow())

    # ------------------------------------------------------------ the loop

    def run(self) -> ev.RunFinished:
        """Run until the step count is reached, the user stops, or a fatal error."""
        finished: ev.RunFinished | None = None
        handler = self._attach_log()
        try:
            self._start()
            finished = self.loop.run()
        except FatalRunError as exc:
            kind = exc.kind if exc.kind in ("auth", "budget", "llm", "config", "refused") else "fatal"
            self.emit(ev.RunError(kind, str(exc)))  # type: ignore[arg-type]
            finished = self.finish("error", "failed", str(exc))
        except Exception as exc:  # a bug must end the run cleanly, resumable, with a reason
            log.exception("engine crashed")
            self.emit(ev.RunError("fatal", f"internal error: {type(exc).__name__}: {exc}"))
            finished = self.finish("error", "failed", str(exc))
        finally:
            self.loop.drain()
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
        self.tree = SearchTree(direction)  # type: ignore[arg-type]  # "maximize"/"minimize" from settings or run.json
        nodes = self.records.load() if self.resume else []
        for node in nodes:
            self.tree.add(node)
            self.policy.observe(node)  # type: ignore[union-attr]
            self.usage = self.usage + node.usage
        restore = getattr(self.coder, "restore", None)  # optional: coders that keep state across steps
        if nodes and callable(restore):
            restore(nodes)
        self.records.reconcile(self.tree)
        self._clear_stale_workspaces()
        self.write_info(status="running")
        self.machine = probe_machine(self.settings, self.paths.root) if self.coder.name == "llm" else None
        self.emit(
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
        if nodes or self.usage.calls:  # a resumed run's spend, or the LLM's task card call
            self.emit(ev.UsageUpdated(self.usage, self.settings.budget))
        for note in model_notices(self.settings) if self.coder.name == "llm" else ():
            self.emit(ev.Notice(note, "warning"))
        self._settle_card()  # first: the folds, the holdout and the checks are built on the confirmed card
        self._prepare_inputs()
        self.emit(ev.RunStateChanged("running"))

    def _settle_card(self) -> None:
        """Saved with the run (once confirmed, when asked), so a resumed run keeps the card it started with."""
        if self.card_error is not None:
            raise self.card_error
        if self.card is None:
            return
        confirm = self.confirm_card and self.card_source != "saved"
        self.emit(ev.TaskCardReady(self.card, self.card_source, confirm=confirm))
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
            self.emit(ev.TaskCardReady(card, "confirmed"))
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
            self.evaluation.attach_scorer(self.paths.root, self.inputs, self.steps.exec_request_in)
        if self.paths.preview.exists():
            self.data_preview = self.paths.preview.read_text(encoding="utf-8")
        else:
            if self.evaluation is not None and self.evaluation.evaluation.has_holdout:  # the rows the scripts see
                from ..search.preview import build_preview

                self.data_preview = build_preview(
                    self.project.root, self.data_files, self.settings.preview_chars, sources
                )
            write_atomic(self.paths.preview, self.data_preview)
        for notice in notices:
            self.emit(ev.Notice(notice))

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

    def finished_event(self, node: Node, sha: str | None, branch: str | None) -> ev.NodeFinished:
        return ev.NodeFinished(node, self.tree.best_id, sha, branch, self.run_name, self.tree.direction)

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
                remove_tree(ws, ignore_errors=True)

    # ------------------------------------------------------------ run info

    def _read_info(self) -> dict:
        return self.records.read_info()

    def write_info(self, status: str) -> None:
        self.records.write_info(
            status=status,
            direction=self.tree.direction,
            coder=self.coder.name,
            settings=self.settings.to_dict(),
        )

    def finish(self, reason: str, status: str, detail: str = "") -> ev.RunFinished:
        log.info("run %s finished: %s %s", self.run_name, reason, detail)
        self.loop.end_warm_starts()
        try:
            self.write_info(status=status)
        except (OSError, FatalRunError):
            pass
        self.control.drop_queue()
        if reason in ("completed", "stopped", "budget"):
            self.holdout.wait()
            self.holdout.score_final_candidates()
        state = "failed" if status == "failed" else "finished"
        self.emit(ev.RunStateChanged(state, detail or reason))  # type: ignore[arg-type]
        best = self.holdout.final_pick()
        finished = ev.RunFinished(
            reason,  # type: ignore[arg-type]
            len(self.tree),
            best_id=best.id if best else None,
            best_metric=best.metric if best else None,
            best_branch=branch_name(self.run_name, best) if best else None,
            best_holdout=best.holdout_metric if best else None,
        )
        self.emit(finished)
        return finished

    def emit(self, event: ev.Event) -> None:
        try:
            with self._emit_lock:
                self.listener(event)
        except Cancelled:
            raise
        except Exception:  # a front-end bug must not kill the search
            log.exception("listener failed on %s", type(event).__name__)
