"""Warm starts: a node's interpreter started ahead, its modules imported, then handed the script.

A warm run must be indistinguishable from a cold one (output, exit code,
traceback, files, `__main__`, relative paths) apart from being faster; an
unused warm process must leave nothing behind.  Runs inside bwrap when it can
start here (the default), else unsandboxed.
"""

from __future__ import annotations

import itertools
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest
from fake_api import TextReply, default_responder
from helpers import WRITE_SUBMISSION, make_project

from aide_tui import events as ev
from aide_tui.engine import build_engine
from aide_tui.run.bwrap import bwrap_problem, isolation_for
from aide_tui.run.executor import ExecRequest, ExecResult
from aide_tui.run.launch import STANDARD_PRELOAD, choose_preload
from aide_tui.run.local import LocalExecutor
from aide_tui.run.sandbox import available_cpus
from aide_tui.run.workspace import collect_outputs
from aide_tui.settings import resolve

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

# Light stand-ins for numpy/pandas: the mechanism is the same, the tests stay fast.
PRELOAD = ("xml.dom.minidom", "decimal")


def _isolation(project: Path):
    return isolation_for(project, None, [], False) if bwrap_problem() is None else None


@pytest.fixture
def node(tmp_path):
    project = tmp_path / "proj"
    workspace = project / ".aide" / "runs" / "r" / "nodes" / "1"
    (workspace / "input").mkdir(parents=True)
    (workspace / "input" / "train.csv").write_text("a,b\n1,2\n")
    return project, workspace


def run(
    workspace: Path, project: Path, code: str, *, preload: tuple[str, ...] = (), executor: LocalExecutor | None = None
) -> tuple[ExecResult, list[str], bool]:
    executor = executor or LocalExecutor()
    request = ExecRequest(workspace=workspace, timeout=60, isolation=_isolation(project), cpus=1)
    for leftover in ("solution.py", "out.txt", "sub"):
        path = workspace / leftover
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    warm = executor.warm_up(request, preload) if preload else None
    (workspace / "solution.py").write_text(textwrap.dedent(code))
    lines: list[str] = []
    job = executor.submit(request, lambda s, l: lines.append(f"{s}: {l}"), warm=warm)
    result = job.wait(90)
    assert result is not None
    return result, lines, job.warm


SCRIPT = """
    import os, sys
    print("main?", __name__, os.path.basename(__file__), os.path.basename(sys.argv[0]))
    print("cwd is workspace:", os.path.exists("input/train.csv"))
    print("stdin:", repr(sys.stdin.read()))
    os.makedirs("sub", exist_ok=True)
    with open("sub/out.txt", "w") as fh:
        fh.write("written\\n")
    print("to stderr", file=sys.stderr)

    def fail():
        raise ValueError("bad value in column b")

    if __name__ == "__main__":
        fail()
"""


def test_warm_and_cold_give_the_same_output_exit_code_traceback_and_files(node):
    project, workspace = node
    cold, cold_lines, was_warm = run(workspace, project, SCRIPT)
    assert not was_warm
    cold_files, _ = collect_outputs(workspace, 1 << 20, 1 << 20)
    warm, warm_lines, was_warm = run(workspace, project, SCRIPT, preload=PRELOAD)
    assert was_warm
    warm_files, _ = collect_outputs(workspace, 1 << 20, 1 << 20)
    assert (warm.exit_code, warm.exc_type, warm.traceback) == (cold.exit_code, cold.exc_type, cold.traceback)
    assert warm.exit_code == 1 and warm.exc_type == "ValueError"
    assert f'File "{workspace / "solution.py"}", line 15, in <module>' in warm.traceback
    assert "line 12, in fail" in warm.traceback
    assert warm.output == cold.output and warm_lines == cold_lines
    assert "main? __main__ solution.py solution.py" in warm.output  # the __main__ block ran
    assert "cwd is workspace: True" in warm.output and "stdin: ''" in warm.output
    assert warm_files == cold_files == {"sub/out.txt": b"written\n"}


def test_the_preloaded_modules_are_already_imported_and_sys_exit_passes_through(node):
    project, workspace = node
    code = """
        import sys
        print("preloaded:", all(m in sys.modules for m in ("xml.dom.minidom", "decimal")))
        sys.exit(3)
    """
    result, _, was_warm = run(workspace, project, code, preload=PRELOAD)
    assert was_warm and "preloaded: True" in result.output
    assert result.exit_code == 3 and result.exc_type is None
    cold, _, _ = run(workspace, project, code)
    assert "preloaded: False" in cold.output  # the check above can fail


def test_a_preload_that_does_not_exist_is_skipped(node):
    project, workspace = node
    result, _, was_warm = run(
        workspace,
        project,
        "import sys\nprint('ran', 'decimal' in sys.modules)\n",
        preload=("no_such_module_" + uuid.uuid4().hex[:8], "decimal"),
    )
    assert was_warm and result.succeeded and "ran True" in result.output
    present, note = choose_preload(["no_such_module_xyz", "json"], "python3")
    assert present == ("json",) and "no_such_module_xyz not installed" in note
    assert choose_preload([], "python3") == ((), None)
    standard, note = choose_preload(None, "python3")
    assert note is None and set(standard) <= set(STANDARD_PRELOAD)


def _processes_in(workspace: Path) -> list[psutil.Process]:
    """Started for `workspace`: by command line (a launcher) or working directory (a forked child)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        try:
            named = any(str(workspace) in arg for arg in proc.info["cmdline"] or [])
            inside = (proc.info["cwd"] or "").startswith(str(workspace))
            if (named or inside) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            pass
    return found


def test_a_discarded_warm_process_leaves_nothing_behind(node):
    project, workspace = node
    executor = LocalExecutor()
    request = ExecRequest(workspace=workspace, timeout=60, isolation=_isolation(project))
    warm = executor.warm_up(request, PRELOAD)
    while not warm.ready:  # a forked one appears once the run's zygote has imported the preloads
        time.sleep(0.01)
    assert _processes_in(workspace), "the warm process should be running"
    warm.discard()
    assert _processes_in(workspace) == []
    assert warm.take(request) is None  # a discarded warm start is never used
    other = executor.warm_up(request, PRELOAD)
    executor.shutdown()  # quitting ends warm processes too
    assert not other.pending and _processes_in(workspace) == []


def test_a_cancelled_warm_job_kills_what_the_script_started(node):
    project, workspace = node
    executor = LocalExecutor()
    request = ExecRequest(workspace=workspace, timeout=60, isolation=_isolation(project))
    warm = executor.warm_up(request, PRELOAD)
    (workspace / "solution.py").write_text(
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print('started', flush=True)\ntime.sleep(600)\n"
    )
    started = threading.Event()
    job = executor.submit(request, lambda s, l: started.set() if l == "started" else None, warm=warm)
    assert started.wait(60) and job.warm
    job.cancel()
    result = job.wait(60)
    assert result is not None and result.killed_reason == "cancelled"
    assert _processes_in(workspace) == []


def test_time_limit_counts_from_the_script_start(node):
    project, workspace = node
    result, _, was_warm = run(workspace, project, "print('hello')\n", preload=PRELOAD)
    assert was_warm and result.succeeded and result.wall_time < 60


# -- in a run ------------------------------------------------------------------------------


def test_a_run_warms_each_node_and_a_failed_coder_leaves_no_warm_process(tmp_path, llm_env):
    code = (
        "import sys\nprint('warm:', 'xml.dom.minidom' in sys.modules)\n"
        "if __name__ == '__main__':\n    print('Validation metric: 0.5')\n"
    )
    calls = {"n": 0}

    def responder(body):
        if body.get("tool_choice"):
            return default_responder(body)
        calls["n"] += 1
        if calls["n"] == 1:
            return TextReply("No code this time.")  # the coder fails: the warm process must go
        # each script differs, so none is a rerun of an earlier one (identical code is reused, not run)
        return TextReply(f"Plan.\n\n```python\n# reply {calls['n']}\n{code}```\n")

    llm_env.responder = responder
    project = make_project(tmp_path / "p", dirty=False)
    events: list = []
    settings = resolve(
        None, dict(steps=2, num_drafts=2, timeout=30, coder="llm", preload=["xml.dom.minidom"], workers=1)
    )
    engine = build_engine(project, settings, resume=False, listener=events.append)
    assert engine.run().reason == "completed"
    outputs = [e.line for e in events if isinstance(e, ev.OutputLine)]
    assert outputs.count("warm: True") == 2, outputs
    runs = project / ".aide" / "runs"
    assert _processes_in(runs) == []

    events.clear()
    off = resolve(None, dict(steps=1, num_drafts=1, timeout=30, coder="llm", preload=[], workers=1))
    build_engine(project, off, resume=False, listener=events.append).run()
    assert "warm: False" in [e.line for e in events if isinstance(e, ev.OutputLine)]


def test_a_missing_preload_is_noted_once_and_never_fails_a_node(tmp_path, llm_env):
    llm_env.responder = lambda body: (
        default_responder(body)
        if body.get("tool_choice")
        else TextReply(f"Plan.\n\n```python\n{WRITE_SUBMISSION}print('Validation metric: 0.5')\n```\n")
    )
    project = make_project(tmp_path / "p", dirty=False)
    events: list = []
    settings = resolve(
        None,
        dict(
            steps=2, num_drafts=2, timeout=30, coder="llm", workers=1, preload=["decimal", "surely_not_installed_mod"]
        ),
    )
    assert build_engine(project, settings, resume=False, listener=events.append).run().reason == "completed"
    notes = [e.message for e in events if isinstance(e, ev.Notice) and "surely_not_installed_mod" in e.message]
    assert len(notes) == 1
    assert all(e.node.status == "ok" for e in events if isinstance(e, ev.NodeFinished))


def test_a_preload_that_raises_on_import_is_noted_once_skipped_after_and_never_fails_a_node(
    tmp_path, llm_env, monkeypatch
):
    """Installed but broken (ImportError from a missing library, any exception at import):
    the warm process skips it, the run says so once, and later nodes no longer import it."""
    modules = tmp_path / "site"
    modules.mkdir()
    for name, error in (
        ("broken_import_mod", 'ImportError("needs libfoo.so.1")'),
        ("raising_mod", 'RuntimeError("bad config")'),
    ):
        (modules / f"{name}.py").write_text(f"import builtins\nbuiltins.{name}_tried = True\nraise {error}\n")
    monkeypatch.setenv("PYTHONPATH", str(modules))  # the solution interpreter finds them (and the probe)
    code = (
        "import builtins\nprint('tried:', getattr(builtins, 'broken_import_mod_tried', False))\n"
        "print('Validation metric: 0.5')\n" + WRITE_SUBMISSION
    )
    replies = itertools.count(1)  # each script differs: identical code would be reused, not run again
    llm_env.responder = lambda body: (
        default_responder(body)
        if body.get("tool_choice")
        else TextReply(f"Plan.\n\n```python\n# reply {next(replies)}\n{code}```\n")
    )
    project = make_project(tmp_path / "p", dirty=False)
    events: list = []
    ahead = min(available_cpus(), 4)  # successors warmed while node 1 runs
    steps = ahead + 2
    settings = resolve(
        None,
        dict(
            steps=steps,
            num_drafts=steps,
            timeout=30,
            coder="llm",
            workers=1,
            sandbox_read=[str(modules)],
            preload=["decimal", "broken_import_mod", "raising_mod"],
        ),
    )
    assert build_engine(project, settings, resume=False, listener=events.append).run().reason == "completed"
    notes = [e.message for e in events if isinstance(e, ev.Notice) and "preload" in e.message]
    assert len(notes) == 1, notes
    assert (
        "broken_import_mod (ImportError: needs libfoo.so.1)" in notes[0]
        and "raising_mod (RuntimeError: bad config)" in notes[0]
    )
    finished = [e.node for e in events if isinstance(e, ev.NodeFinished)]
    assert [n.status for n in finished] == ["ok"] * steps
    # Node 1 and its successors were warming before node 1's report came back; the last node started without it.
    tried = [e.line for e in events if isinstance(e, ev.OutputLine) and e.line.startswith("tried:")]
    assert tried == ["tried: True"] * (1 + ahead) + ["tried: False"]


class _HeldWarmUp:
    """The engine's executor, but the first warm_up waits until the test lets it go."""

    def __init__(self, executor):
        self.executor, self.calls = executor, 0
        self.inside, self.go = threading.Event(), threading.Event()

    def warm_up(self, request, preload):
        self.calls += 1
        if self.calls == 1:
            self.inside.set()
            self.go.wait(30)
        return self.executor.warm_up(request, preload)

    def __getattr__(self, name):
        return getattr(self.executor, name)


def test_two_workers_warming_the_same_successor_prepare_it_once(tmp_path, llm_env):
    """Seen with --workers 2: both running nodes warmed the next id; the second deleted the
    workspace the first was preparing, and the node's script ran in a deleted directory
    (FileNotFoundError for its input)."""
    project = make_project(tmp_path / "p", dirty=False)
    settings = resolve(None, dict(steps=4, num_drafts=4, timeout=30, coder="llm", workers=2, preload=["decimal"]))
    engine = build_engine(project, settings, resume=False, listener=lambda e: None)
    held = engine.executor = _HeldWarmUp(engine.executor)
    try:
        engine._start()
        first = threading.Thread(target=engine.warm.start, args=(3,))
        first.start()
        assert held.inside.wait(30)
        engine.warm.start(3)  # the other worker, while the first prepares
        held.go.set()
        first.join(30)
        assert held.calls == 1
        warm = engine.warm.take(3)
        assert (engine.paths.workspace(3) / "input").is_dir()
        warm.discard()
    finally:
        held.go.set()
        held.executor.shutdown()
        engine.records.close()
        engine.store.close()
        if engine.lock is not None:
            engine.lock.release()


def test_preload_setting_from_flags(tmp_path):
    assert resolve(None, {}).preload is None  # the standard list, as installed
    assert resolve(None, {"preload": [""]}).preload == []  # --preload '' turns it off
    assert resolve(None, {"preload": ["numpy,pandas", "torch"]}).preload == ["numpy", "pandas", "torch"]
    toml = tmp_path / "aide.toml"
    toml.write_text("preload = []\n")
    assert resolve(toml, {}).preload == []


def test_a_successor_warmed_while_its_predecessor_ran_is_ended_when_the_run_stops(tmp_path, llm_env):
    code = "import time\ntime.sleep(0.5)\nprint('Validation metric: 0.5')\n"
    llm_env.responder = lambda body: (
        default_responder(body) if body.get("tool_choice") else TextReply(f"Plan.\n\n```python\n{code}```\n")
    )
    project = make_project(tmp_path / "p", dirty=False)
    engine = None
    warming_at_finish: list[list[int]] = []
    ahead = min(available_cpus(), 4)  # one successor per core, so imports don't wait in line

    def listener(event):
        if isinstance(event, ev.NodeFinished):
            nodes = project / ".aide" / "runs" / engine.run_name / "nodes"
            warming_at_finish.append([len(_processes_in(nodes / f"{n:04d}")) for n in range(2, 2 + ahead + 1)])
            engine.submit(ev.StopAfterStep())

    settings = resolve(None, dict(steps=5, num_drafts=5, timeout=30, coder="llm", preload=["decimal"], workers=1))
    engine = build_engine(project, settings, resume=False, listener=listener)
    assert engine.run().reason == "stopped"
    first = warming_at_finish[0]
    assert all(first[:ahead]), f"nodes 2..{1 + ahead} should be warming as node 1 finishes: {first}"
    assert first[ahead] == 0, "no more than one warm successor per core"
    nodes = project / ".aide" / "runs" / engine.run_name / "nodes"
    assert _processes_in(nodes) == []
    assert not (nodes / "0002").exists()  # the never-run nodes leave no workspace either


DRIVER = """
import sys, time
from pathlib import Path
from aide_tui.run.bwrap import bwrap_problem, isolation_for
from aide_tui.run.executor import ExecRequest
from aide_tui.run.local import LocalExecutor
workspace, project, sandbox = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "box"
isolation = isolation_for(project, None, [], False) if sandbox else None
warm = LocalExecutor().warm_up(ExecRequest(workspace=workspace, isolation=isolation), ("decimal",))
while not warm.ready:
    time.sleep(0.01)
print("warm", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("sandbox", ["box", "none"])
def test_a_warm_process_dies_with_a_kill_9_of_aide_tui(node, sandbox):
    if sandbox == "box" and bwrap_problem() is not None:
        pytest.skip(f"bwrap cannot start here: {bwrap_problem()}")
    project, workspace = node
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(workspace), str(project), sandbox], stdout=subprocess.PIPE, text=True
    )
    try:
        assert driver.stdout.readline().strip() == "warm"
        warm = _processes_in(workspace)
        assert warm, "the warm process should be running"
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
        gone, alive = psutil.wait_procs(warm, timeout=20)
        assert alive == []
    finally:
        driver.kill()
        driver.wait()
        driver.stdout.close()


def test_wall_time_is_the_scripts_own_when_the_code_comes_before_the_imports_are_in(node):
    """Code that arrives while the preloads still import waits for them; the node's wall_time
    counts from when the script starts, not from the hand-over."""
    project, workspace = node
    modules = project.parent / "modules"  # an installed package, as preloads are: on the interpreter's path
    modules.mkdir()
    (modules / "slow_import.py").write_text("import time\ntime.sleep(2.0)\n")
    isolation = isolation_for(project, None, [str(modules)], False) if bwrap_problem() is None else None
    executor = LocalExecutor()
    request = ExecRequest(
        workspace=workspace, timeout=60, isolation=isolation, cpus=1, extra_env={"PYTHONPATH": str(modules)}
    )
    warm = executor.warm_up(request, ("slow_import",))
    (workspace / "solution.py").write_text("print('started')\n")
    handed_over = time.monotonic()
    job = executor.submit(request, lambda s, l: None, warm=warm)  # at once: the import is still sleeping
    result = job.wait(90)
    assert job.warm and result.exit_code == 0, result
    assert time.monotonic() - handed_over >= 2.0  # it did wait for the import
    assert result.wall_time < 1.5, result.wall_time  # ... which is not the script's time


# -- the fork server ---------------------------------------------------------------------


def test_warm_starts_are_forks_of_the_runs_zygote_and_each_seeds_numpy_afresh(tmp_path):
    project = tmp_path / "proj"
    nodes = project / ".aide" / "runs" / "r" / "nodes"
    executor = LocalExecutor()
    code = "import numpy, os\nprint('draw', numpy.random.rand(), 'pid', os.getpid())\n"
    outputs = []
    try:
        for n in (1, 2):
            (nodes / f"{n:04d}" / "input").mkdir(parents=True)
            request = ExecRequest(workspace=nodes / f"{n:04d}", timeout=60, isolation=_isolation(project), cpus=1)
            warm = executor.warm_up(request, ("numpy", "numpy.random"))  # as scikit-learn loads it
            assert type(warm).__name__ == "ForkedWarmStart"
            (nodes / f"{n:04d}" / "solution.py").write_text(code)
            job = executor.submit(request, lambda s, l: None, warm=warm)
            result = job.wait(60)
            assert job.warm and result.succeeded, result.output
            outputs.append(result.output.split())
        assert len(executor._servers) == 1  # both forked from one zygote: the imports happened once
    finally:
        executor.shutdown()
    assert outputs[0][1] != outputs[1][1], "each fork must draw from a freshly seeded generator"


def test_a_zygote_that_cannot_start_leaves_nodes_to_start_the_old_way(node, monkeypatch, tmp_path):
    import aide_tui.run.forkserver as forkserver

    broken = tmp_path / "zygote.py"
    broken.write_text("import sys\nsys.exit(3)\n")
    monkeypatch.setattr(forkserver, "ZYGOTE", broken)
    project, workspace = node
    executor = LocalExecutor()
    try:
        first, _, _ = run(workspace, project, "print('ran')\n", preload=PRELOAD, executor=executor)
        assert first.succeeded and "ran" in first.output  # the fork never came: it started cold
        second, _, was_warm = run(workspace, project, "print('ran again')\n", preload=PRELOAD, executor=executor)
        assert second.succeeded and "ran again" in second.output
        assert was_warm  # the dead zygote is noticed: a launcher of its own was warmed instead
    finally:
        executor.shutdown()


@pytest.fixture(params=["under-tmp", "outside-tmp"])
def base_dir(request, tmp_path):
    """Where the project lives: under /tmp, whose private copy a forked child mounts afresh (and
    replays what bwrap put there), or elsewhere, where the workspace roots are covered in place."""
    if request.param == "under-tmp":
        yield tmp_path
        return
    base = Path.home() / ".cache" / f"aide-test-{uuid.uuid4().hex[:8]}"
    base.mkdir(parents=True)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_one_zygote_serves_every_workspace_root_of_a_run(base_dir):
    """Nodes and holdout re-runs live in two directories of the run: one zygote serves both,
    and a child in one still sees nothing of the other's workspaces."""
    project = base_dir / "proj"
    run = project / ".aide" / "runs" / "r"
    roots = (run / "nodes", run / "holdout-runs")
    executor = LocalExecutor()
    seen = []
    try:
        for root in roots:
            workspace = root / "0001"
            (workspace / "input").mkdir(parents=True)
            (workspace / f"mine-{root.name}").write_text("")
            request = ExecRequest(
                workspace=workspace, timeout=60, isolation=_isolation(project), cpus=1, workspace_roots=roots
            )
            warm = executor.warm_up(request, PRELOAD)
            (workspace / "solution.py").write_text(
                "import os\nfound = []\n"
                f"for root in {[str(r) for r in roots]!r}:\n"
                "    for top, dirs, files in os.walk(root):\n"
                "        found += [f for f in files if f.startswith('mine-')]\n"
                "print(sorted(found))\n"
            )
            job = executor.submit(request, lambda s, l: None, warm=warm)
            result = job.wait(60)
            assert job.warm and result.succeeded, result.output
            seen.append(result.output.strip())
        assert len(executor._servers) == 1  # the holdout re-run did not need a zygote of its own
    finally:
        executor.shutdown()
    if _isolation(project) is not None:
        assert seen == ["['mine-nodes']", "['mine-holdout-runs']"]
