"""Nodes per minute with several workers, against the local Messages API stand-in.

Two scenarios, each a real engine run (real SDK over HTTP, real script execution,
real git) in a scratch project:

* waiting-bound: every LLM request takes 1 s and every script sleeps 1 s, at 1, 2,
  4 and 8 workers (goal: 4 workers >= 3x one worker);
* CPU-bound: every script burns 1.5 s of one core, at 1 and 2 workers on a 2-core
  machine (goal: 2 workers >= 1.8x one worker).  These scripts import nothing, so
  the goal is measured with `preload = []`.  The figure with the default preload is
  printed too: the run's fork server imports pandas and scikit-learn once (a second
  or two of one core, which one worker gets free on the idle second core and two
  workers take from the scripts), and every node is then a fork of it.

Both run with `holdout = 0`: these scripts print a constant metric and write a
constant submission, so re-running new bests on the hidden holdout would only add
work that says nothing about how nodes are scheduled.

Run: .venv/bin/python bench/bench_parallel.py   (a quiet machine gives honest figures)
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fake_api import FakeMessagesAPI, TextReply, ToolReply  # noqa: E402
from helpers import WRITE_SUBMISSION, make_project  # noqa: E402

from aide_tui.engine import build_engine  # noqa: E402
from aide_tui.settings import resolve  # noqa: E402

SLEEPING = '"""Wait."""\nimport time\ntime.sleep(1.0)\nprint("Validation metric: 1.0")\n' + WRITE_SUBMISSION
BURNING = (
    '"""Burn one core."""\nimport time\nt = time.process_time()\nx = 0\nwhile time.process_time() - t < 1.5:\n'
    '    x += 1\nprint("Validation metric: 1.0")\n' + WRITE_SUBMISSION
)


def responder(script: str, llm_seconds: float):
    def answer(body):
        time.sleep(llm_seconds)
        if body.get("tools"):
            return ToolReply(
                "submit_review", {"is_bug": False, "metric": 1.0, "summary": "ran", "lower_is_better": True}
            )
        return TextReply(f"Plan: wait.\n\n```python\n{script}```\n")

    return answer


def nodes_per_minute(
    workers: int, steps: int, script: str, llm_seconds: float, preload: list[str] | None = None
) -> float:
    scratch = Path(tempfile.mkdtemp(prefix="aide-bench-par-", dir=ROOT / "bench"))
    try:
        project = make_project(scratch / "p")
        with FakeMessagesAPI(responder=responder(script, llm_seconds)) as api:
            os.environ["ANTHROPIC_BASE_URL"] = api.url
            os.environ["ANTHROPIC_API_KEY"] = "sk-bench"
            settings = resolve(
                None,
                dict(
                    steps=steps,
                    num_drafts=steps,
                    timeout=120,
                    coder="llm",
                    workers=workers,
                    memory_limit="1G",
                    preload=preload,
                    holdout=0.0,
                ),
            )
            engine = build_engine(project, settings, resume=False, listener=lambda e: None)
            t0 = time.perf_counter()
            finished = engine.run()
            elapsed = time.perf_counter() - t0
        assert finished.reason == "completed", finished
        return steps / elapsed * 60
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.1f}")
    print("waiting-bound (1 s per LLM request, two requests per node; 1 s scripts):")
    base = None
    for workers in (1, 2, 4, 8):
        rate = nodes_per_minute(workers, steps=max(8, 3 * workers), script=SLEEPING, llm_seconds=1.0)
        base = base or rate
        print(f"  {workers} worker(s): {rate:5.1f} nodes/min  ({rate / base:.2f}x)")
    print("  goal: 4 workers >= 3.0x one worker")
    print("CPU-bound (1.5 s of CPU per script, no LLM wait):")
    for preload, label in (([], "preload = []"), (None, "default preload")):
        one = nodes_per_minute(1, steps=8, script=BURNING, llm_seconds=0.0, preload=preload)
        two = nodes_per_minute(2, steps=8, script=BURNING, llm_seconds=0.0, preload=preload)
        print(f"  {label}: 1 worker {one:5.1f} nodes/min; 2 workers {two:5.1f} nodes/min ({two / one:.2f}x)")
    print("  goal: 2 workers >= 1.8x one worker on 2 cores (preload = [], as these scripts import nothing)")


if __name__ == "__main__":
    main()
