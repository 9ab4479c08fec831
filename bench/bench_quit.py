"""How long a quit takes: from `Engine.shutdown()` (the TUI's `y`, headless ctrl+c) to `run()`
returning with the journal closed, at three moments of a 2-worker run against the local
Messages API stand-in: while the model streams a reply, while scripts run, and while the best
node is re-run on the hidden holdout.  Goal (issue 19): at most 2 s each.

Run: .venv/bin/python bench/bench_quit.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fake_api import FakeMessagesAPI, TextReply, default_responder  # noqa: E402
from helpers import WRITE_SUBMISSION, make_project  # noqa: E402

from aide_tui import events as ev  # noqa: E402
from aide_tui.engine import build_engine  # noqa: E402
from aide_tui.settings import resolve  # noqa: E402

SLEEPY = (
    "import time\nprint('working', flush=True)\ntime.sleep(SECONDS)\n"
    + WRITE_SUBMISSION
    + "print('Validation metric: METRIC')\n"
)


def responder_for(seconds: float):
    calls = [0]

    def respond(body: dict):
        if body.get("tool_choice"):
            return default_responder(body)
        calls[0] += 1
        code = SLEEPY.replace("SECONDS", str(seconds)).replace("METRIC", str(100 - calls[0]))
        return TextReply(f"Sleep, then report.\n\n```python\n{code}```\n")

    return respond


def quit_when(root: Path, api: FakeMessagesAPI, label: str, moment, script_seconds: float) -> float:
    """Start a run, call shutdown() once `moment(engine, events)` holds, return seconds to run()'s end."""
    api.responder = responder_for(script_seconds)
    project = make_project(root / label, dirty=False)
    settings = resolve(None, dict(steps=8, num_drafts=8, workers=2, timeout=120, coder="llm", memory_limit="1G"))
    events: list = []
    engine = build_engine(project, settings, resume=False, listener=events.append)
    done = threading.Event()
    threading.Thread(target=lambda: (engine.run(), done.set()), daemon=True).start()
    deadline = time.monotonic() + 120
    while not moment(engine, events):
        if time.monotonic() > deadline:
            raise SystemExit(f"{label}: the moment never came")
        time.sleep(0.01)
    t0 = time.perf_counter()
    engine.shutdown()
    done.wait(120)
    return time.perf_counter() - t0


def main() -> int:
    load = os.getloadavg()[0]
    with FakeMessagesAPI() as api, tempfile.TemporaryDirectory() as tmp:
        os.environ["ANTHROPIC_BASE_URL"] = api.url
        os.environ["ANTHROPIC_API_KEY"] = "sk-bench-not-a-real-key"
        root = Path(tmp)
        api.delay_per_chunk = 0.5  # a reply that takes a while to stream
        streaming = quit_when(
            root, api, "streaming", lambda e, evs: sum(isinstance(x, ev.LlmDelta) for x in evs) >= 2, 0.0
        )
        api.delay_per_chunk = 0.0
        running = quit_when(
            root,
            api,
            "scripts",
            lambda e, evs: sum(isinstance(x, ev.OutputLine) for x in evs) >= 2,
            60.0,
        )
        holdout = quit_when(root, api, "holdout", lambda e, evs: e.holdout.busy, 20.0)
    for label, seconds in (("model streaming", streaming), ("2 scripts running", running), ("holdout re-run", holdout)):
        print(f"quit while {label:18s} {seconds:5.2f} s   (goal <= 2 s)")
    print(f"load average at start: {load:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
