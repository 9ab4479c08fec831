"""A scripted stand-in for `aide_tui.engine.Engine`, for the app's tests, snapshots and bench.

Same surface as the real engine (`run`, `submit`, `shutdown`, `settings`) and the same
event vocabulary (`aide_tui.events`), emitted from the thread that calls `run()`.
The run follows a fixed script (drafts, a buggy draft, a debug, improvements, a timeout)
with LLM deltas, output lines and usage.  Commands go through the real engine's
`RunControl`, so they are checked, queued, described and announced exactly as in a real run.

Determinism for snapshots: `hold_at=k` makes the engine start node k, stream part of it,
and then wait (still answering commands) until `release()` or `shutdown()`.
Every command received is recorded in `self.commands`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from aide_tui.control import Plan, RunControl
from aide_tui.events import (
    CodeReady,
    Command,
    DirectionFixed,
    Event,
    LlmDelta,
    NextPlanned,
    NodeFinished,
    NodeStarted,
    Notice,
    OutputLine,
    PhaseChanged,
    RunError,
    RunFinished,
    RunStarted,
    RunStateChanged,
    TaskCardReady,
    UsageUpdated,
)
from aide_tui.search.node import ExecInfo, Node, Usage
from aide_tui.search.task_card import TaskCard
from aide_tui.settings import Settings


@dataclass
class Step:
    operation: str
    parent_id: int | None
    status: str  # ok / buggy / timeout / memory
    metric: float | None
    plan: str
    review: str


SCRIPT: list[Step] = [
    Step(
        "draft",
        None,
        "ok",
        0.7412,
        "Baseline: logistic regression on one-hot encoded categoricals.",
        "Ran cleanly; validation accuracy 0.7412.",
    ),
    Step(
        "draft",
        None,
        "buggy",
        None,
        "Gradient boosting with target encoding of 'cabin'.",
        "KeyError: 'cabin' — the column is named 'Cabin'.",
    ),
    Step(
        "draft",
        None,
        "ok",
        0.7689,
        "Random forest with median imputation and 300 trees.",
        "Ran cleanly; validation accuracy 0.7689.",
    ),
    Step(
        "debug",
        1,
        "ok",
        0.7935,
        "Fix the column name and fill missing cabins with 'U'.",
        "Fixed; gradient boosting reaches 0.7935.",
    ),
    Step(
        "improve",
        3,
        "ok",
        0.8112,
        "Add family-size and title features extracted from the name.",
        "Better: 0.8112 with the new features.",
    ),
    Step(
        "improve",
        4,
        "timeout",
        None,
        "Grid-search 400 hyper-parameter combinations with 10-fold CV.",
        "Killed after the time limit; search space too large.",
    ),
    Step(
        "improve", 4, "ok", 0.8203, "Tune learning rate and depth with a 24-point grid, 5-fold CV.", "Better: 0.8203."
    ),
    Step("draft", None, "ok", 0.7521, "k-nearest neighbours on standardised numeric columns.", "Ran cleanly; 0.7521."),
    Step(
        "improve",
        6,
        "buggy",
        None,
        "Stack the forest and boosting models with a logistic meta-model.",
        "ValueError: shapes (712,2) and (891,2) not aligned.",
    ),
    Step("improve", 6, "ok", 0.8257, "Average the probabilities of boosting and the forest.", "Better: 0.8257."),
]

CODE = """import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.{module} import {model}

train = pd.read_csv("input/train.csv")
y = train.pop("Survived")
X = pd.get_dummies(train[["Pclass", "Sex", "Age", "Fare"]].fillna(0))
X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.2, random_state={seed})
model = {model}({args})
model.fit(X_tr, y_tr)
score = model.score(X_va, y_va)
print(f"validation accuracy: {{score:.4f}}")
"""

MODELS = [
    ("linear_model", "LogisticRegression", "max_iter=1000"),
    ("ensemble", "GradientBoostingClassifier", ""),
    ("ensemble", "RandomForestClassifier", "n_estimators=300"),
    ("ensemble", "GradientBoostingClassifier", "n_estimators=200"),
    ("ensemble", "GradientBoostingClassifier", "n_estimators=200, max_depth=4"),
]


def code_for(node_id: int) -> str:
    module, model, args = MODELS[node_id % len(MODELS)]
    return CODE.format(module=module, model=model, args=args, seed=node_id)


class FakeEngine:
    """Emits a plausible scripted run through `listener` from the thread calling `run()`."""

    def __init__(
        self,
        listener: Callable[[Event], None],
        settings: Settings | None = None,
        *,
        resume: bool = False,
        steps: int | None = None,
        delay: float = 0.0,
        hold_at: int | None = None,
        deltas: int = 12,
        output_lines: int = 6,
        run_name: str = "titanic-1",
        coder: str = "llm",
        budget: float | None = 2.0,
        direction: str = "maximize",
        replay: int = 0,
        error: RunError | None = None,
        crash: bool = False,
        project: str = "/tmp/titanic",
        card: TaskCard | None = None,
        card_source: str = "derived",
        confirm_card: bool = False,
    ) -> None:
        self._listener = listener
        self._settings = settings or Settings(steps=steps or 12, budget=budget)
        self.steps = steps or self._settings.steps
        self.resume = resume
        self.delay = delay
        self.hold_at = hold_at
        self.deltas = deltas
        self.output_lines = output_lines
        self.run_name = run_name
        self.coder = coder
        self.budget = budget
        self.direction = direction
        self.replay = replay
        self.error = error
        self.crash = crash
        self.project = project
        self.card, self.card_source, self.confirm_card = card, card_source, confirm_card
        self.confirmed: TaskCard | None = None  # what ConfirmTaskCard brought
        self.commands: list[Command] = []
        self.nodes: dict[int, Node] = {}
        self.best_id: int | None = None
        self.usage = Usage()
        self.ran = False
        self.finished = threading.Event()
        self._shutdown = threading.Event()
        self._release = threading.Event()
        self.control = RunControl(self.nodes.get, self.emit, cancel=self._shutdown)
        self._running: int | None = None
        self._announced: NextPlanned | None = None
        self._announce_lock = threading.Lock()  # commands announce from the caller's thread
        self._direction_known = False

    # ------------------------------------------------------------------ API
    @property
    def settings(self) -> Settings:
        return self._settings

    def submit(self, command: Command) -> None:
        self.commands.append(command)
        if self.control.submit(command) and self._running is None:
            self._announce(len(self.nodes))

    def shutdown(self) -> None:
        self._shutdown.set()

    def release(self) -> None:
        """Let a run held at `hold_at` continue."""
        self._release.set()

    # ------------------------------------------------------------- helpers
    def emit(self, event: Event) -> None:
        self._listener(event)

    def _sleep(self, seconds: float) -> bool:
        """Sleep; False when shut down."""
        return not self._shutdown.wait(seconds)

    def _policy(self, node_id: int) -> Plan:
        if node_id < len(SCRIPT):
            s = SCRIPT[node_id]
            return Plan(s.operation, s.parent_id, "policy")  # type: ignore[arg-type]
        return Plan("improve", self.best_id, "policy")

    def _announce(self, node_id: int) -> None:
        """What the real engine does: one NextPlanned per change of plan."""
        with self._announce_lock:
            plan = self.control.peek() or self._policy(node_id)
            event = NextPlanned(node_id, plan.operation, plan.parent_id, plan.source)
            if event == self._announced:
                return
            self._announced = event
        self.emit(event)

    def _outcome(self, node_id: int, op: str) -> Step:
        if node_id < len(SCRIPT) and SCRIPT[node_id].operation == op:
            return SCRIPT[node_id]
        base = self.nodes[self.best_id].metric if self.best_id is not None else 0.75
        metric = round((base or 0.75) + 0.002 * ((node_id * 7) % 5 - 1), 4)
        return Step(
            op, None, "ok", metric, f"{op.capitalize()} step {node_id}: tweak the features.", f"Ran cleanly; {metric}."
        )

    def _is_better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "maximize" else a < b

    # ----------------------------------------------------------------- run
    def run(self) -> None:
        self.ran = True
        try:
            self._run()
        finally:
            self.finished.set()

    def _run(self) -> None:
        if self.crash:
            raise RuntimeError("fake engine crashed")
        replayed = []
        for i in range(self.replay):
            op, parent, code = self._script_parent(i)
            replayed.append(self._finished_event(self._finished_node(i, op, parent, code, None)))
        self._direction_known = bool(replayed)  # a new run learns it from its first working node
        direction = self.direction if self._direction_known else None
        self.emit(
            RunStarted(self.run_name, self.project, self.resume, self.steps, tuple(replayed), direction, self.coder)
        )
        if self.card is not None and not self._settle_card():
            self.emit(RunStateChanged("finished", "cancelled"))
            self.emit(RunFinished("cancelled", 0))
            return
        if self.coder == "offline":
            self.emit(Notice("offline baseline coder, not an LLM — set ANTHROPIC_API_KEY to use Claude", "warning"))
        self.emit(RunStateChanged("running"))
        if self.error is not None:
            self.emit(self.error)
            self.emit(RunStateChanged("failed", self.error.message))
            self.emit(RunFinished("error", len(self.nodes)))
            return
        reason = "completed"
        while len(self.nodes) < self.steps:
            if self._shutdown.is_set():
                reason = "cancelled"
                break
            if self.control.stop_requested:
                reason = "stopped"
                break
            self._announce(len(self.nodes))
            if not self.control.hold_if_paused(poll=0.01):
                continue
            if not self._step(len(self.nodes), *self.control.take()):
                reason = "cancelled"
                break
        self.control.drop_queue()
        self.emit(PhaseChanged(None, "idle"))
        self.emit(RunStateChanged("finished", reason))
        best = self.nodes.get(self.best_id) if self.best_id is not None else None
        self.emit(
            RunFinished(
                reason,
                len(self.nodes),
                self.best_id,
                best.metric if best else None,  # type: ignore[arg-type]
                self._branch(best) if best else None,
            )
        )

    def _settle_card(self) -> bool:
        """As the real engine: announce the card and, when asked, wait for ConfirmTaskCard; False if stopped first."""
        confirm = self.confirm_card and self.card_source != "saved"
        self.emit(TaskCardReady(self.card, self.card_source, confirm=confirm))
        if not confirm:
            return True
        self.confirmed = self.control.await_card(poll=0.01)
        if self.confirmed is None:
            return False
        self.emit(TaskCardReady(self.confirmed, "confirmed"))
        return True

    def _branch(self, node: Node) -> str:
        return f"aide/{self.run_name}/{node.id:04d}-{node.operation}"

    def _finished_event(self, node: Node) -> NodeFinished:
        return NodeFinished(
            node,
            self.best_id,
            f"{node.id:040x}",
            self._branch(node),
            self.run_name,
            self.direction if self._direction_known else None,
        )

    def _script_parent(self, i: int) -> tuple[str, int | None, str | None]:
        s = SCRIPT[i % len(SCRIPT)]
        parent = s.parent_id if s.parent_id is None or s.parent_id < i else None
        return s.operation if parent is not None or s.operation == "draft" else "draft", parent, None

    def _finished_node(self, node_id: int, op: str, parent: int | None, code: str | None, hint: str | None) -> Node:
        outcome = self._outcome(node_id, op)
        status = outcome.status if code is None else "ok"
        metric = outcome.metric if code is None else 0.8
        code = code if code is not None else code_for(node_id)
        wall = 2.0 + (node_id * 37 % 11)
        ex = ExecInfo(
            exit_code=0 if status == "ok" else 1,
            exc_type={"buggy": "KeyError", "timeout": None}.get(status),
            wall_time=wall if status != "timeout" else 600.0,
            peak_memory_mb=180.0 + node_id * 13 % 90,
            killed_reason="timeout" if status == "timeout" else None,
        )
        usage = Usage(
            input_tokens=3200 + 100 * node_id, output_tokens=900 + 10 * node_id, cost=0.021 + 0.001 * node_id, calls=2
        )
        node = Node(
            id=node_id,
            parent_id=parent,
            operation=op,  # type: ignore[arg-type]
            step=node_id,
            plan=outcome.plan if op != "manual" else "Edited by hand.",
            code=code,
            status=status,  # type: ignore[arg-type]
            metric=metric,
            review_summary=outcome.review,
            output="\n".join(self._output(node_id, status)),
            exec=ex,
            usage=usage,
            hint=hint,
            created_at=1_700_000_000.0 + node_id * 60,
            finished_at=1_700_000_000.0 + node_id * 60 + wall,
        )
        self.nodes[node_id] = node
        self.usage = self.usage + usage
        if status == "ok" and metric is not None:
            if self.best_id is None or self._is_better(metric, self.nodes[self.best_id].metric or 0.0):
                self.best_id = node_id
        return node

    def _output(self, node_id: int, status: str) -> list[str]:
        lines = [f"epoch {k + 1}: loss {0.9 - 0.05 * k:.3f}" for k in range(self.output_lines)]
        if status == "buggy":
            lines += [
                "Traceback (most recent call last):",
                '  File "solution.py", line 7, in <module>',
                "KeyError: 'cabin'",
            ]
        elif status == "timeout":
            lines += ["[killed: timeout]"]
        else:
            lines += ["validation accuracy: done"]
        return lines

    def _step(self, node_id: int, queued: Plan | None, hint: str | None) -> bool:
        plan = queued or self._policy(node_id)
        op, parent, code = plan.operation, plan.parent_id, plan.code
        self._running, self._announced = node_id, None
        try:
            return self._run_step(node_id, op, parent, code, hint)
        finally:
            self._running = None

    def _run_step(self, node_id: int, op: str, parent: int | None, code: str | None, hint: str | None) -> bool:
        self.emit(NodeStarted(node_id, parent, op, node_id, hint))  # type: ignore[arg-type]
        self.emit(PhaseChanged(node_id, "llm", "asking the LLM"))
        outcome = self._outcome(node_id, op)
        text = f"{outcome.plan}\n\n```python\n{code or code_for(node_id)}```\n"
        n = max(1, self.deltas)
        size = max(1, len(text) // n)
        chunks = [text[i : i + size] for i in range(0, len(text), size)]
        holding = self.hold_at == node_id
        if holding:
            chunks = chunks[: max(1, len(chunks) // 2)]
        for chunk in chunks:
            self.emit(LlmDelta(node_id, chunk))
            if self.delay and not self._sleep(self.delay / n):
                return False
        if holding:
            self.emit(UsageUpdated(self.usage, self.budget))
            while not self._release.is_set():
                if not self._sleep(0.01):
                    return False
            for chunk in [text[i : i + size] for i in range(0, len(text), size)][len(chunks) :]:
                self.emit(LlmDelta(node_id, chunk))
        self.emit(CodeReady(node_id, outcome.plan, code or code_for(node_id)))
        self.emit(PhaseChanged(node_id, "executing", f"running node {node_id}"))
        for line in self._output(node_id, outcome.status if code is None else "ok"):
            self.emit(
                OutputLine(
                    node_id, "stderr" if line.startswith(("Traceback", "  File", "KeyError")) else "stdout", line
                )
            )
            if self.delay and not self._sleep(self.delay / max(1, self.output_lines)):
                return False
        self.emit(PhaseChanged(node_id, "reviewing", "reviewing the output"))
        node = self._finished_node(node_id, op, parent, code, hint)
        if not self._direction_known and node.status == "ok":
            self._direction_known = True
            self.emit(DirectionFixed(self.direction, self.best_id))  # type: ignore[arg-type]
        self.emit(self._finished_event(node))
        self.emit(UsageUpdated(self.usage, self.budget))
        if self.delay and not self._sleep(self.delay):
            return False
        return not self._shutdown.is_set()


def factory(**kwargs) -> Callable:
    """An `engine_factory` for `AideApp`: `factory(hold_at=5)(listener, resume)`; keeps the instance."""
    holder: dict[str, FakeEngine] = {}

    def make(listener: Callable[[Event], None], resume: bool) -> FakeEngine:
        engine = FakeEngine(listener, resume=resume, **kwargs)
        holder["engine"] = engine
        make.engine = engine  # type: ignore[attr-defined]
        return engine

    make.holder = holder  # type: ignore[attr-defined]
    return make


class OverlappingEngine:
    """Two nodes in flight at once, the way `--workers 2` streams them.

    The real engine emits every running node's reply and output lines as they come, so they
    interleave in the one event stream, and a node's start is followed at once by a burst of
    its reply.  This engine emits such a stream in three stages and holds after each until
    `release()`: (1) #1 runs, #2 starts, their lines alternate; (2) more alternating lines;
    (3) #1 finishes, #2 prints on and finishes.  Output lines say whose they are
    ("#2 line 4"), so a test can tell whose lines the log shows.
    """

    def __init__(self, listener: Callable[[Event], None], lines_per_stage: int = 4) -> None:
        self._listener = listener
        self.lines_per_stage = lines_per_stage
        self.commands: list[Command] = []
        self.stage = 0  # the last stage emitted in full
        self._release = threading.Event()
        self._shutdown = threading.Event()
        self._counts = {1: 0, 2: 0}
        self.settings = Settings(steps=2, workers=2)

    def submit(self, command: Command) -> None:
        self.commands.append(command)

    def shutdown(self) -> None:
        self._shutdown.set()

    def release(self) -> None:
        self._release.set()

    def _hold(self, stage: int) -> bool:
        self.stage = stage
        while not self._release.wait(0.01):
            if self._shutdown.is_set():
                return False
        self._release.clear()
        return True

    def _start(self, node_id: int) -> None:
        emit = self._listener
        emit(NodeStarted(node_id, None, "draft", node_id))
        emit(PhaseChanged(node_id, "llm", "writing a draft"))
        for piece in (f"Plan of #{node_id}: a baseline.\n\n", "```python\n", f"print('#{node_id}')\n", "```\n"):
            emit(LlmDelta(node_id, piece))
        emit(CodeReady(node_id, f"Plan of #{node_id}", f"print('#{node_id}')\n"))
        emit(PhaseChanged(node_id, "executing", f"running node #{node_id}"))

    def _line(self, node_id: int) -> None:
        self._counts[node_id] += 1
        self._listener(OutputLine(node_id, "stdout", f"#{node_id} line {self._counts[node_id]}"))

    def _finish(self, node_id: int) -> None:
        node = Node(
            id=node_id,
            parent_id=None,
            operation="draft",
            step=node_id,
            plan=f"Plan of #{node_id}",  # type: ignore[arg-type]
            code=f"print('#{node_id}')\n",
            status="ok",
            metric=0.5 + node_id / 10,
            review_summary="Ran cleanly.",
            exec=ExecInfo(exit_code=0, wall_time=1.0),
        )
        self._listener(
            NodeFinished(node, node_id, f"{node_id:040x}", f"aide/two/{node_id:04d}-draft", "two", "maximize")
        )

    def run(self) -> None:
        emit = self._listener
        emit(RunStarted("two", "/tmp/two", False, 2, (), "maximize", "llm"))
        emit(RunStateChanged("running"))
        self._start(1)
        self._line(1)
        self._start(2)
        for _ in range(self.lines_per_stage):
            self._line(1)
            self._line(2)
        if not self._hold(1):
            return
        for _ in range(self.lines_per_stage):
            self._line(1)
            self._line(2)
        if not self._hold(2):
            return
        self._finish(1)
        for _ in range(self.lines_per_stage):
            self._line(2)
        if not self._hold(3):
            return
        self._finish(2)
        emit(RunStateChanged("finished", "completed"))
        emit(RunFinished("completed", 2, 2, 0.7, "aide/two/0002-draft"))
