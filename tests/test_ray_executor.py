"""The Ray executor against a real local Ray head started by this module.

The head is started once (`ray start --head --block` on 127.0.0.1 with 2 CPUs,
its own temp dir) and ended by killing that process group, so nothing else on
the machine that uses Ray is touched.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'aide-tui[ray]')")

from helpers import make_project  # noqa: E402

from aide_tui.run.executor import ExecRequest, ExecutorUnavailable  # noqa: E402
from aide_tui.run.ray_executor import RayExecutor  # noqa: E402
from aide_tui.run.workspace import prepare_workspace  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300), pytest.mark.xdist_group("ray")]  # one local head, one worker


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the Ray head did not open its port")


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    port = _free_port()
    temp_dir = tmp_path_factory.mktemp("ray")
    ray_cli = Path(sys.executable).with_name("ray")
    proc = subprocess.Popen(
        [
            str(ray_cli),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--num-cpus=2",
            "--num-gpus=0",
            "--node-ip-address=127.0.0.1",
            "--disable-usage-stats",
            "--include-dashboard=false",
            f"--temp-dir={temp_dir}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for_port(port, proc, time.monotonic() + 120)
        yield f"127.0.0.1:{port}"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        members = (
            [psutil.Process(proc.pid)] + psutil.Process(proc.pid).children(recursive=True)
            if proc.poll() is None
            else []
        )
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)  # `ray start --block` takes its time to stop its children; they are killed below
        except subprocess.TimeoutExpired:
            pass
        for p in members:  # raylet/gcs children that outlived the blocking parent
            try:
                p.kill()
            except psutil.Error:
                pass


@pytest.fixture
def executor(ray_head):
    ex = RayExecutor(ray_head, node_cpus=1)
    yield ex
    ex.shutdown()


def _workspace(tmp_path: Path, code: str) -> Path:
    project = make_project(tmp_path / "project", with_git=False)
    ws = tmp_path / "ws"
    prepare_workspace(ws, project, ["data/train.csv", "data/test.csv"], textwrap.dedent(code))
    return ws


class Lines:
    """Collects streamed lines and lets a test wait for one to arrive (no sleeps)."""

    def __init__(self):
        self.lines: list[tuple[str, str]] = []
        self._cond = threading.Condition()

    def __call__(self, stream, line):
        with self._cond:
            self.lines.append((stream, line))
            self._cond.notify_all()

    def wait_for(self, predicate, timeout=60.0):
        with self._cond:
            assert self._cond.wait_for(lambda: any(predicate(s, l) for s, l in self.lines), timeout), self.lines


def test_script_runs_on_the_cluster_streams_lines_and_returns_its_files(tmp_path, executor):
    ws = _workspace(
        tmp_path,
        """
        import sys
        rows = open("input/data/train.csv").read().splitlines()
        print("rows", len(rows))
        print("to stderr", file=sys.stderr)
        open("submission.csv", "w").write("id,prediction\\n1,2\\n")
        print("Validation metric: 0.5")
    """,
    )
    lines = Lines()
    result = executor.submit(ExecRequest(workspace=ws, timeout=60), lines).wait(120)
    assert result is not None and result.exit_code == 0, result
    assert ("stdout", "rows 41") in lines.lines and ("stderr", "to stderr") in lines.lines
    assert "Validation metric: 0.5" in result.output
    assert (ws / "submission.csv").read_text() == "id,prediction\n1,2\n"  # came back from the worker


def test_a_sparse_giant_a_symlink_and_a_fifo_do_not_cost_a_good_nodes_result(tmp_path, executor):
    """Packed on the worker through safe_read: regular files within the caps only (#17)."""
    ws = _workspace(
        tmp_path,
        """
        import os
        with open("huge.bin", "wb") as fh:
            fh.truncate(1 << 30)  # 1 GiB, sparse: nothing on disk, everything for a reader
        os.symlink("/etc/passwd", "passwd")
        os.mkfifo("pipe")
        open("submission.csv", "w").write("id,prediction\\n1,2\\n")
        print("Validation metric: 0.5")
    """,
    )
    peak = psutil.Process().memory_info().rss
    result = executor.submit(ExecRequest(workspace=ws, timeout=60), Lines()).wait(120)
    assert result is not None and result.exit_code == 0 and result.killed_reason is None, result
    assert (ws / "submission.csv").read_text() == "id,prediction\n1,2\n"
    assert not any((ws / name).exists() or (ws / name).is_symlink() for name in ("huge.bin", "passwd", "pipe"))
    assert psutil.Process().memory_info().rss - peak < 200 * 1024 * 1024  # the gigabyte was never read here


def test_exception_type_and_traceback_come_back(tmp_path, executor):
    ws = _workspace(
        tmp_path,
        """
        def load():
            raise KeyError("target")
        load()
    """,
    )
    result = executor.submit(ExecRequest(workspace=ws, timeout=60), Lines()).wait(120)
    assert result.exit_code == 1 and result.exc_type == "KeyError"
    assert "load()" in result.traceback


def test_cancel_kills_the_script_on_the_worker(tmp_path, executor):
    ws = _workspace(
        tmp_path,
        """
        import os, time
        print("pid", os.getpid(), flush=True)
        time.sleep(300)
    """,
    )
    lines = Lines()
    job = executor.submit(ExecRequest(workspace=ws, timeout=600), lines)
    lines.wait_for(lambda s, l: l.startswith("pid "))
    pid = int(next(l for s, l in lines.lines if l.startswith("pid ")).split()[1])
    job.cancel()
    result = job.wait(60)
    assert result is not None and result.killed_reason == "cancelled"
    gone = psutil.wait_procs([psutil.Process(pid)], timeout=30)[1] == [] if psutil.pid_exists(pid) else True
    assert gone, "the script outlived the cancel"


def test_the_worker_enforces_the_timeout(tmp_path, executor):
    ws = _workspace(tmp_path, "import time\ntime.sleep(300)\n")
    result = executor.submit(ExecRequest(workspace=ws, timeout=1.0), Lines()).wait(120)
    assert result.killed_reason == "timeout" and result.exit_code is None


def test_input_data_is_uploaded_once_per_run(tmp_path, executor):
    first = _workspace(tmp_path / "a", "print('a')\n")
    second = _workspace(tmp_path / "b", "print('b')\n")
    assert executor.input_ref(first / "input") is executor.input_ref(second / "input")


def test_unreachable_address_is_a_quick_clear_error():
    port = _free_port()  # nothing listens there
    t0 = time.monotonic()
    with pytest.raises(ExecutorUnavailable, match=f"127.0.0.1:{port}"):
        RayExecutor(f"127.0.0.1:{port}")
    assert time.monotonic() - t0 < 30


def test_cli_bad_address_is_one_line_and_exit_2(tmp_path):
    project = make_project(tmp_path / "p")
    port = _free_port()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "aide_tui.cli",
            str(project),
            "--headless",
            "--executor",
            "ray",
            "--ray-address",
            f"127.0.0.1:{port}",
            "--coder",
            "offline",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "--executor ray" in proc.stderr and "Traceback" not in proc.stderr


def test_headless_run_on_the_cluster_commits_nodes(tmp_path, ray_head):
    project = make_project(tmp_path / "p")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "aide_tui.cli",
            str(project),
            "--headless",
            "--executor",
            "ray",
            "--ray-address",
            ray_head,
            "--coder",
            "offline",
            "--steps",
            "2",
            "--timeout",
            "120",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "run completed: 2 nodes" in proc.stdout, proc.stdout
    branches = subprocess.run(["git", "branch", "--list", "aide/*"], cwd=project, capture_output=True, text=True).stdout
    assert len(branches.split()) >= 2, branches
