"""Start-up and the whole-run speed-up, against the local Messages API stand-in (issue 19).

* time to card: from launching `aide-tui PROJECT --headless` (a new process) to the first
  line of its task card, with no model latency;
* time to first node: from launch to the line of node #1's result (the headless card is
  confirmed by itself, so this is "after confirmation" plus the card);
* 1 vs 4 workers: the wall time of a 12-step run in which every model request takes 1 s
  (default settings, hidden holdout on), as a ratio (goal <= 0.45).

Scripts are small pandas + scikit-learn solutions (what most nodes are).
Run: .venv/bin/python bench/bench_start.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from bench_steps import responder as ridge_responder  # noqa: E402
from fake_api import FakeMessagesAPI  # noqa: E402
from helpers import make_project  # noqa: E402

from aide_tui.engine import build_engine  # noqa: E402
from aide_tui.settings import resolve  # noqa: E402


def launch_times(project: Path, env: dict[str, str]) -> tuple[float, float]:
    """Seconds from launch to the task card's first line, and to node #1's result line."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aide_tui.cli", str(project), "--headless", "--steps", "1", "--coder", "llm"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    card = node = float("nan")
    assert proc.stdout is not None
    for line in proc.stdout:
        now = time.perf_counter() - t0
        if line.startswith("task card") and card != card:
            card = now
        if line.startswith("[1/1] #1 ") and ":" in line:
            node = now
    proc.wait()
    return card, node


def run_wall(project: Path, workers: int) -> float:
    settings = resolve(None, dict(steps=12, num_drafts=5, workers=workers, timeout=120, coder="llm"))
    engine = build_engine(project, settings, resume=False, listener=lambda e: None)
    t0 = time.perf_counter()
    finished = engine.run()
    assert finished.reason == "completed", finished
    return time.perf_counter() - t0


def main() -> int:
    load = os.getloadavg()[0]
    with FakeMessagesAPI() as api, tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "ANTHROPIC_BASE_URL": api.url, "ANTHROPIC_API_KEY": "sk-bench-not-a-real-key"}
        os.environ.update(ANTHROPIC_BASE_URL=api.url, ANTHROPIC_API_KEY="sk-bench-not-a-real-key")
        api.responder = ridge_responder
        card, node = launch_times(make_project(Path(tmp) / "start", dirty=False), env)
        print(f"time to card      {card:5.2f} s   (goal <= 1 s)")
        print(f"time to node #1   {node:5.2f} s   (goal: <= 2 s after confirmation)")

        def slow(body: dict):
            time.sleep(1.0)
            return ridge_responder(body)

        api.responder = slow
        one = run_wall(make_project(Path(tmp) / "w1", dirty=False), 1)
        four = run_wall(make_project(Path(tmp) / "w4", dirty=False), 4)
        print(f"12 steps, 1 s per model request: 1 worker {one:5.1f} s, 4 workers {four:5.1f} s ({four / one:.2f}x)")
        print("  goal: 4 workers <= 0.45x one worker")
    print(f"load average at start: {load:.1f} (figures are only comparable on an idle machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
