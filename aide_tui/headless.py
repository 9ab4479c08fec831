"""The headless front end: engine events as human-readable lines or JSON lines.

JSON mode prints one object per event, `{"event": "<EventClass>", ...fields}`
(see README "Headless output"), except the high-rate LlmDelta and OutputLine events,
which appear only with --verbose.  Human mode folds every event into the same run state
the TUI shows (`aide_tui.state`) and prints a line for those of note.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

from . import events as ev
from .engine import Engine
from .search.node import Usage, status_word
from .state import RunModel
from .terminal_text import terminal_safe


def spent_text(usage: Usage) -> str:
    """What the run cost in dollars, the last thing a headless run says (`spent $0.0421 in 9 model calls`)."""
    if not usage.calls:
        return "spent $0.00 (no model calls)"
    calls = f"{usage.calls} model call{'s' if usage.calls != 1 else ''}"
    return f"spent ${usage.cost:.4f} in {calls} ({usage.input_tokens:,} tokens in, {usage.output_tokens:,} out)"


class HeadlessPrinter:
    def __init__(
        self, json_lines: bool = False, verbose: bool = False, out: TextIO | None = None, err: TextIO | None = None
    ):
        self.json_lines = json_lines
        self.verbose = verbose
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._lock = threading.Lock()  # output lines arrive from runner threads
        self.state = RunModel()
        self._reply: dict[int, str] = {}  # per node, the model's reply not yet ended by a newline

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, (ev.LlmDelta, ev.OutputLine)) and not self.verbose:
            return
        with self._lock:
            self.state.apply(event)
            if self.json_lines:
                print(event.to_json_line(), file=self.out, flush=True)
            else:
                say = self._SAY.get(type(event))
                if say is not None:
                    say(self, event)

    def _say(self, text: str, err: bool = False) -> None:
        # Every human line passes here; much of it was written by a script or a model.
        print(terminal_safe(text), file=self.err if err else self.out, flush=True)

    def _run_started(self, e: ev.RunStarted) -> None:
        how = f"resumed with {len(e.nodes)} nodes" if e.resumed else "new run"
        self._say(f"run {e.run} ({how}) in {e.project}: {e.steps} steps, {e.coder} coder")

    def _task_card_ready(self, e: ev.TaskCardReady) -> None:
        where = {
            "saved": "kept from the run's start",
            "aide.toml": "derived, corrected by aide.toml [task]",
            "llm": "read by the LLM from task.md and the data; correct it in aide.toml [task]",
        }
        self._say(
            f"task card ({where.get(e.source, 'derived from task.md and the data; correct it in aide.toml [task]')}):"
        )
        self._say("\n".join(f"  {line}" for line in e.card.describe().splitlines()))

    def _direction_fixed(self, e: ev.DirectionFixed) -> None:
        self._say(f"metric direction: {e.direction} ({'lower' if e.direction == 'minimize' else 'higher'} is better)")

    def _node_started(self, e: ev.NodeStarted) -> None:
        of = f" of #{e.parent_id}" if e.parent_id is not None else ""
        hint = " (with your hint)" if e.hint else ""
        self._say(f"[{e.step}/{self.state.steps_total}] #{e.node_id} {e.operation}{of}{hint} ...")

    # With several nodes in flight their replies and outputs interleave: every line names its node.
    def _llm_delta(self, e: ev.LlmDelta) -> None:
        *lines, rest = (self._reply.get(e.node_id, "") + e.text).split("\n")
        self._reply[e.node_id] = rest
        for line in lines:
            self._say(f"  #{e.node_id} > {line}")

    def _flush_reply(self, node_id: int) -> None:
        rest = self._reply.pop(node_id, "")
        if rest:
            self._say(f"  #{node_id} > {rest}")

    def _code_ready(self, e: ev.CodeReady) -> None:
        self._flush_reply(e.node_id)

    def _output_line(self, e: ev.OutputLine) -> None:
        self._say(f"  #{e.node_id} | {e.line}")

    def _node_finished(self, e: ev.NodeFinished) -> None:
        n = e.node
        self._flush_reply(n.id)
        if n.status == "ok":
            verdict = f"ok, metric {n.metric:.6g}"
        elif n.status in ("timeout", "memory") and n.exec.killed_reason:
            verdict = f"{n.status} ({n.exec.killed_reason})"
        else:
            verdict = status_word(n)  # buggy (KeyError), refused (cyber), cut off (thinking), no code
        star = " *new best*" if e.best_id == n.id else ""
        took = f"{n.exec.wall_time:.1f}s" if n.code else "no code"
        spent = f", ${n.usage.cost:.3f}" if n.usage.calls else ""  # the offline coder spends nothing
        self._say(f"[{n.step}/{self.state.steps_total}] #{n.id} {n.operation}: {verdict}{star}  [{took}{spent}]")

    def _holdout_scored(self, e: ev.HoldoutScored) -> None:
        what = f"{e.metric:.6g}" if e.metric is not None else f"not scored ({e.note})"
        self._say(f"#{e.node_id} on the hidden holdout: {what}")
        if e.flag:  # said even without --verbose: the node's own metric is not to be believed
            self._say(f"#{e.node_id} flagged, never the answer while an unflagged node exists: {e.flag}", err=True)

    def _notice(self, e: ev.Notice) -> None:
        self._say(f"note: {e.message}", err=e.level == "warning")

    def _command_rejected(self, e: ev.CommandRejected) -> None:
        self._say(f"command {e.command} rejected: {e.reason}", err=True)

    def _run_error(self, e: ev.RunError) -> None:
        self._say(f"error ({e.kind}): {e.message}", err=True)

    def _run_finished(self, e: ev.RunFinished) -> None:
        best = ""
        if e.best_id is not None and e.best_metric is not None:
            holdout = f", holdout {e.best_holdout:.6g}" if e.best_holdout is not None else ""
            best = f"; best #{e.best_id} metric {e.best_metric:.6g}{holdout}" + (
                f" on branch {e.best_branch}" if e.best_branch else ""
            )
        self._say(f"run {e.reason}: {e.nodes} nodes{best}; {spent_text(self.state.usage)}")

    _SAY: dict[type[ev.Event], Callable[[HeadlessPrinter, Any], None]] = {
        ev.RunStarted: _run_started,
        ev.TaskCardReady: _task_card_ready,
        ev.DirectionFixed: _direction_fixed,
        ev.NodeStarted: _node_started,
        ev.LlmDelta: _llm_delta,
        ev.CodeReady: _code_ready,
        ev.OutputLine: _output_line,
        ev.NodeFinished: _node_finished,
        ev.HoldoutScored: _holdout_scored,
        ev.Notice: _notice,
        ev.CommandRejected: _command_rejected,
        ev.RunError: _run_error,
        ev.RunFinished: _run_finished,
    }


def run_headless(engine: Engine) -> int:
    """Run in a worker thread so Ctrl-C / SIGTERM cancel cleanly (resumable)."""
    result: list[ev.RunFinished] = []
    # An Event, not Thread.join: a join interrupted by Ctrl-C marks the thread as stopped on
    # Python < 3.13, so the next join returned at once and the engine died with the process,
    # mid-step, with no "run stopped" and its run.json still saying "running".
    done = threading.Event()

    def work() -> None:
        try:
            result.append(engine.run())
        finally:
            done.set()

    worker = threading.Thread(target=work, name="aide-engine", daemon=True)

    def on_signal(signum, frame):  # noqa: ARG001
        engine.shutdown()

    previous = signal.signal(signal.SIGTERM, on_signal)
    worker.start()
    try:
        while not done.wait(0.2):
            pass
    except KeyboardInterrupt:
        engine.shutdown()
        done.wait(30)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not result:
        return 1
    return 1 if result[0].reason == "error" else 0
