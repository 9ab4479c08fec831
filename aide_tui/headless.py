"""The headless front end: engine events as human-readable lines or JSON lines.

JSON mode prints one object per event, `{"event": "<EventClass>", ...fields}`
(see README "JSON lines"), except the high-rate LlmDelta and OutputLine events,
which appear only with --verbose.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import TextIO

from . import events as ev
from .engine import Engine, branch_name


class HeadlessPrinter:
    def __init__(self, json_lines: bool = False, verbose: bool = False, out: TextIO | None = None, err: TextIO | None = None):
        self.json_lines = json_lines
        self.verbose = verbose
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._lock = threading.Lock()  # output lines arrive from runner threads
        self._steps = 0
        self._metrics: dict[int, float] = {}
        self._branches: dict[int, str] = {}

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, (ev.LlmDelta, ev.OutputLine)) and not self.verbose:
            return
        with self._lock:
            if self.json_lines:
                print(event.to_json_line(), file=self.out, flush=True)
            else:
                self._human(event)

    def _say(self, text: str, err: bool = False) -> None:
        print(text, file=self.err if err else self.out, flush=True)

    def _human(self, e: ev.Event) -> None:
        match e:
            case ev.RunStarted():
                self._steps = e.steps
                how = f"resumed with {len(e.nodes)} nodes" if e.resumed else "new run"
                self._say(f"run {e.run} ({how}) in {e.project}: {e.steps} steps, {e.coder} coder")
                for node in e.nodes:
                    self._remember(node)
                    self._branches[node.id] = branch_name(e.run, node)
            case ev.NodeStarted():
                of = f" of #{e.parent_id}" if e.parent_id is not None else ""
                hint = " (with your hint)" if e.hint else ""
                self._say(f"[{e.step}/{self._steps}] #{e.node_id} {e.operation}{of}{hint} ...")
            case ev.LlmDelta():
                self.out.write(e.text)
            case ev.OutputLine():
                self._say(f"    | {e.line}")
            case ev.NodeFinished():
                n = e.node
                if e.ref:
                    self._branches[n.id] = e.ref.removeprefix("refs/heads/")
                if n.status == "ok":
                    verdict = f"ok, metric {n.metric:.6g}"
                else:
                    why = n.exec.killed_reason or n.exec.exc_type or n.status
                    verdict = f"{n.status} ({why})"
                star = " *new best*" if e.best_id == n.id else ""
                took = f"{n.exec.wall_time:.1f}s" if n.code else "no code"
                spent = f", ${n.usage.cost:.3f}" if n.usage.calls else ""  # the offline coder spends nothing
                self._say(f"[{n.step}/{self._steps}] #{n.id} {n.operation}: {verdict}{star}  [{took}{spent}]")
                self._remember(n)
            case ev.Notice():
                self._say(f"note: {e.message}", err=e.level == "warning")
            case ev.CommandRejected():
                self._say(f"command {e.command} rejected: {e.reason}", err=True)
            case ev.RunError():
                self._say(f"error ({e.kind}): {e.message}", err=True)
            case ev.RunFinished():
                best = ""
                if e.best_id is not None and e.best_id in self._metrics:
                    branch = self._branches.get(e.best_id)
                    best = f"; best #{e.best_id} metric {self._metrics[e.best_id]:.6g}" + (f" on branch {branch}" if branch else "")
                self._say(f"run {e.reason}: {e.nodes} nodes{best}")
            case _:
                pass

    def _remember(self, node) -> None:
        if node.status == "ok" and node.metric is not None:
            self._metrics[node.id] = node.metric


def run_headless(engine: Engine) -> int:
    """Run in a worker thread so Ctrl-C / SIGTERM cancel cleanly (resumable)."""
    result: list[ev.RunFinished] = []
    worker = threading.Thread(target=lambda: result.append(engine.run()), name="aide-engine", daemon=True)

    def on_signal(signum, frame):  # noqa: ARG001
        engine.shutdown()

    previous = signal.signal(signal.SIGTERM, on_signal)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
    except KeyboardInterrupt:
        engine.shutdown()
        worker.join(30)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not result:
        return 1
    return 1 if result[0].reason == "error" else 0
