"""Launch overhead of LocalExecutor vs a bare `python -c pass` subprocess, and of the sandbox.

What it costs to run a trivial solution through the launcher, the process-tree
monitor, the reader and the final tree kill, compared with the cheapest way to
start the same interpreter.  Budget: median overhead <= 60 ms.

Then the same trivial run inside bubblewrap (the default on Linux) against the
unsandboxed run: the sandbox's start-up cost per node.  Budget: <= 30 ms.
Where cgroups can be made, the kernel limits (making the node's cgroup,
joining it, removing it) are measured the same way, and the budget then holds
for the sandbox and the limits together, against an unsandboxed run without
them.

Then a script importing pandas and scikit-learn, cold and warm (its
interpreter started ahead with the preloads imported, as the engine does while
the model writes): the time from handing over the script to the line it prints
right after its imports.  Goal: warm <= 50 ms.

Run: .venv/bin/python bench/bench_runner.py [runs]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aide_tui.run import cgroup  # noqa: E402
from aide_tui.run.bwrap import bwrap_problem, isolation_for  # noqa: E402
from aide_tui.run.executor import ExecRequest, Isolation  # noqa: E402
from aide_tui.run.local import LocalExecutor  # noqa: E402

BUDGET_MS = 60.0
SANDBOX_BUDGET_MS = 30.0
WARM_GOAL_MS = 50.0
PANDAS_SCRIPT = "import pandas, sklearn.linear_model, sklearn.model_selection\nprint('imported', flush=True)\n"
PRELOAD = ("numpy", "pandas", "sklearn", "sklearn.linear_model", "sklearn.model_selection")


def bare(runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def executor(runs: int, workspace: Path, isolation: Isolation | None = None) -> list[float]:
    (workspace / "solution.py").write_text("pass\n")
    ex = LocalExecutor()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        request = ExecRequest(workspace=workspace, timeout=30, isolation=isolation)
        result = ex.submit(request, lambda s, l: None).wait()
        times.append((time.perf_counter() - t0) * 1000)
        assert result is not None and result.succeeded, result
    return times


FLOOD = """
import sys
for i in range(250_000):
    print(f"out {i}")
    print(f"err {i}", file=sys.stderr)
"""


def flood(workspace: Path) -> tuple[float, int, int]:
    """Informational: 250k lines on each stream through on_line and the capped capture."""
    (workspace / "solution.py").write_text(FLOOD)
    count = [0]

    def on_line(stream, line):
        count[0] += 1

    t0 = time.perf_counter()
    result = LocalExecutor().submit(ExecRequest(workspace=workspace, timeout=120), on_line).wait()
    assert result is not None and result.succeeded, result
    return (time.perf_counter() - t0) * 1000, count[0], result.truncated_bytes


def without_cgroups(run):
    """`run()` with node cgroups off (as on a host where none can be made)."""
    saved = cgroup.detect
    cgroup.detect = lambda: None  # type: ignore[assignment]
    try:
        return run()
    finally:
        cgroup.detect = saved


def sandbox_overhead(runs: int, root: Path) -> tuple[float, float, float] | None:
    """Median trivial run unsandboxed without cgroups, inside bwrap without them, and inside
    bwrap with them, in a project-like layout; None without bwrap."""
    problem = bwrap_problem()
    if problem is not None:
        print(f"sandbox: not measured ({problem})")
        return None
    project = root / "project"
    workspace = project / ".aide" / "runs" / "bench" / "nodes" / "1"
    (workspace / "input").mkdir(parents=True)
    isolation = isolation_for(project, Path.home(), [], network=False)
    executor(3, workspace, isolation)  # warm caches (and the interpreter probe)
    plain, boxed, limited = [], [], []
    for _ in range(runs):  # interleaved, so load changes hit all alike
        plain += without_cgroups(lambda: executor(1, workspace))
        boxed += without_cgroups(lambda: executor(1, workspace, isolation))
        limited += executor(1, workspace, isolation)
    return statistics.median(plain), statistics.median(boxed), statistics.median(limited)


def first_line_ms(runs: int, root: Path, warm: bool) -> float:
    """Median time from submitting the pandas/sklearn script to the line after its imports (sandboxed if possible)."""
    project = root / "warm-project"
    workspace = project / ".aide" / "runs" / "bench" / "nodes" / "1"
    (workspace / "input").mkdir(parents=True, exist_ok=True)
    isolation = isolation_for(project, Path.home(), [], network=False) if bwrap_problem() is None else None
    ex = LocalExecutor()
    times = []
    for _ in range(runs):
        request = ExecRequest(workspace=workspace, timeout=120, isolation=isolation)
        handle = None
        if warm:
            handle = ex.warm_up(request, PRELOAD)
            while not handle.ready:  # the engine overlaps this with the model writing the code
                time.sleep(0.01)
        (workspace / "solution.py").write_text(PANDAS_SCRIPT)
        first: list[float] = []
        t0 = time.perf_counter()
        result = ex.submit(
            request, lambda s, l, first=first: first.append(time.perf_counter()) if not first else None, warm=handle
        ).wait()
        assert result is not None and result.succeeded, result
        times.append((first[0] - t0) * 1000)
    return statistics.median(times)


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    with tempfile.TemporaryDirectory() as tmp:
        bare(3), executor(3, Path(tmp))  # warm caches
        b = statistics.median(bare(runs))
        e = statistics.median(executor(runs, Path(tmp)))
        flood_ms, flood_lines, flood_cut = flood(Path(tmp))
        sandbox = sandbox_overhead(runs, Path(tmp))
        start_runs = max(runs // 4, 3)
        cold_start = first_line_ms(start_runs, Path(tmp), warm=False)
        warm_start = first_line_ms(start_runs, Path(tmp), warm=True)
    overhead = e - b
    print(f"bare `python -c pass`      median {b:7.1f} ms  ({runs} runs)")
    print(f"LocalExecutor trivial run  median {e:7.1f} ms  ({runs} runs)")
    print(f"flood: {flood_lines} lines in {flood_ms:.0f} ms, {flood_cut} bytes cut from the capture (informational)")
    verdict = "PASS" if overhead <= BUDGET_MS else "FAIL"
    print(f"overhead                          {overhead:7.1f} ms  budget {BUDGET_MS:.0f} ms  {verdict}")
    ok = verdict == "PASS"
    if sandbox is not None:
        plain, boxed, limited = sandbox
        has_cgroups = cgroup.detect() is not None
        extra = (limited if has_cgroups else boxed) - plain
        sandbox_verdict = "PASS" if extra <= SANDBOX_BUDGET_MS else "FAIL"
        print(f"unsandboxed trivial node   median {plain:7.1f} ms  ({runs} runs, no cgroup)")
        print(f"bwrap-sandboxed node       median {boxed:7.1f} ms  ({runs} runs, no cgroup)")
        if has_cgroups:
            print(f"bwrap + node cgroup        median {limited:7.1f} ms  ({runs} runs)")
            print(f"kernel limits per node            {limited - boxed:7.1f} ms  (cgroup made, joined, removed)")
        else:
            print("kernel limits: no cgroup can be made here (RLIMIT_NPROC and sized tmpfs instead)")
        label = "sandbox + limits per node" if has_cgroups else "sandbox start-up per node"
        print(f"{label:<34}{extra:7.1f} ms  budget {SANDBOX_BUDGET_MS:.0f} ms  {sandbox_verdict}")
        ok = ok and sandbox_verdict == "PASS"
    warm_verdict = "PASS" if warm_start <= WARM_GOAL_MS else "FAIL"
    print(
        f"pandas+sklearn script, cold: submit to line after imports  median {cold_start:7.1f} ms  ({start_runs} runs)"
    )
    print(
        f"pandas+sklearn script, warm: submit to line after imports  median {warm_start:7.1f} ms  goal {WARM_GOAL_MS:.0f} ms  {warm_verdict}"
    )
    return 0 if ok and warm_verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
