"""Issue 11's comparison: the same 20-step search run by aide-tui and by the reference aideml.

Both talk to the same local Messages API stand-in with no LLM latency and get the
same replies (bench_steps.py's pandas + scikit-learn script, review by forced tool
call), so what is compared is each tool's own overhead per node: starting the
script's interpreter, running it, reviewing, recording.  The runs alternate
(aideml, aide-tui with one worker, aide-tui with the default workers) for
`--rounds` rounds and the medians are printed; goal: aide-tui at most 0.8x aideml.

aideml is not a dependency: install it in a venv of its own and point `--aideml` at
its `aide` command.  aideml 0.2.2 passes `temperature`, which the anthropic 2.x SDK
no longer accepts, so pin the older SDK there:

    python -m venv /tmp/aideml && /tmp/aideml/bin/pip install aideml "anthropic<0.50"
    .venv/bin/python bench/bench_vs_aideml.py --aideml /tmp/aideml/bin/aide

Without `--aideml` only aide-tui's figures are printed.  An idle machine gives
honest figures; the load average at start is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

import bench_steps  # noqa: E402
from fake_api import FakeMessagesAPI  # noqa: E402
from helpers import make_project  # noqa: E402

from aide_tui.engine import build_engine  # noqa: E402
from aide_tui.settings import default_workers, resolve  # noqa: E402


def run_aideml(aide: str, api_url: str, steps: int, scratch: Path) -> float:
    project = make_project(scratch / "project", with_git=False)
    env = {**os.environ, "ANTHROPIC_BASE_URL": api_url, "ANTHROPIC_API_KEY": "sk-bench", "OPENAI_API_KEY": "sk-unused"}
    cmd = [
        aide,
        f"data_dir={project}",
        f"desc_file={project / 'task.md'}",
        f"agent.steps={steps}",
        "agent.code.model=claude-sonnet-4-5",
        "agent.feedback.model=claude-haiku-4-5",
        "generate_report=False",
        f"log_dir={scratch / 'logs'}",
        f"workspace_dir={scratch / 'ws'}",
        "exec.timeout=120",
    ]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=scratch, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    journals = list((scratch / "logs").glob("*/journal.json"))
    nodes = json.loads(journals[0].read_text())["nodes"] if journals else []
    if done.returncode != 0 or len(nodes) != steps or any(n.get("is_buggy") for n in nodes):
        raise SystemExit(
            f"aideml did not complete {steps} working steps (exit {done.returncode}):\n{done.stderr[-2000:]}"
        )
    return wall


def run_aide_tui(workers: int, steps: int, scratch: Path) -> float:
    project = make_project(scratch / "project", dirty=False)
    settings = resolve(None, dict(steps=steps, num_drafts=5, timeout=120, coder="llm", workers=workers))
    engine = build_engine(project, settings, resume=False, listener=lambda e: None)
    t0 = time.perf_counter()
    finished = engine.run()
    wall = time.perf_counter() - t0
    buggy = [n.id for n in engine.tree.nodes.values() if n.status != "ok"]
    if finished.reason != "completed" or buggy:
        raise SystemExit(f"aide-tui did not complete {steps} working steps: {finished}, buggy {buggy}")
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aideml", help="path to aideml's `aide` command (in its own venv)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, load average at start: {os.getloadavg()[0]:.1f}")
    contenders = ([("aideml", None)] if args.aideml else []) + [("aide-tui, 1 worker", 1)]
    if default_workers() != 1:
        contenders.append((f"aide-tui, {default_workers()} workers (default)", default_workers()))
    walls: dict[str, list[float]] = {name: [] for name, _ in contenders}
    with FakeMessagesAPI() as api:
        os.environ["ANTHROPIC_BASE_URL"] = api.url
        os.environ["ANTHROPIC_API_KEY"] = "sk-bench"
        api.responder = bench_steps.responder
        for _ in range(args.rounds):
            for name, workers in contenders:
                with tempfile.TemporaryDirectory(prefix="aide-bench-vs-") as tmp:
                    wall = (
                        run_aideml(args.aideml, api.url, args.steps, Path(tmp))
                        if workers is None
                        else run_aide_tui(workers, args.steps, Path(tmp))
                    )
                walls[name].append(wall)
    reference = statistics.median(walls["aideml"]) if args.aideml else None
    for name, values in walls.items():
        median = statistics.median(values)
        ratio = f"  ({median / reference:.2f}x aideml)" if reference and name != "aideml" else ""
        runs = ", ".join(f"{v:.1f}" for v in values)
        print(f"{name:34s} {args.steps} steps: median {median:5.1f} s  [{runs}]{ratio}")
    print("goal: aide-tui at most 0.8x aideml's wall time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
