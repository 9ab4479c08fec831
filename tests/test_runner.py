"""The runner against hostile and sloppy scripts, with real subprocesses.

Each test says what a generated script may do and what must still hold:
the result arrives, limits are named, nothing outlives the node, secrets and
input data are safe.
"""

from __future__ import annotations

import os
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from aide_tui.run.executor import ExecRequest, ExecResult
from aide_tui.run.local import MAX_LINE_CHARS, LocalExecutor, OutputCapture, _StreamSplitter
from aide_tui.run.sandbox import FIXED_CHILD_ENV, THREAD_VARIABLES, child_env, redact
from aide_tui.run.workspace import collect_outputs, list_data_files, prepare_workspace

pytestmark = [pytest.mark.timeout(60), pytest.mark.slow]


def run_script(
    tmp_path: Path, code: str, environ: dict[str, str] | None = None, **request_args
) -> tuple[ExecResult, list[tuple[str, str]]]:
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    (workspace / "solution.py").write_text(textwrap.dedent(code))
    lines: list[tuple[str, str]] = []
    executor = LocalExecutor(environ=environ if environ is not None else dict(os.environ))
    request_args.setdefault("timeout", 30)
    job = executor.submit(ExecRequest(workspace=workspace, **request_args), lambda s, l: lines.append((s, l)))
    result = job.wait(45)
    assert result is not None, "the job never finished"
    assert job.done
    return result, lines


def still_running(pid: int) -> bool:
    """Alive and not a zombie (PID 1 in a container may never reap orphans)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def read_pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()]


# Writes its own pid to pids.txt, then starts (a) a plain child and (b) a child that
# calls setsid and forks a grandchild; all sleep forever holding stdout open.
# One os.write per line: three processes share the pipe, and print() may split a line.
SPAWN_SLEEPERS = """
import os, subprocess, sys, time
sleeper = "import os, sys, time\\nif 'setsid' in sys.argv: os.setsid()\\nif 'fork' in sys.argv and os.fork() == 0:\\n    pass\\nwith open('pids.txt', 'a') as f: f.write(f'{os.getpid()}\\\\n')\\nos.write(1, b'sleeping\\\\n')\\ntime.sleep(3600)\\n"
subprocess.Popen([sys.executable, "-c", sleeper])
subprocess.Popen([sys.executable, "-c", sleeper, "setsid", "fork"])
deadline = time.time() + 10
while time.time() < deadline:
    try:
        if len(open("pids.txt").read().split()) >= 3:
            break
    except FileNotFoundError:
        pass
    time.sleep(0.05)
time.sleep(0.5)  # let the monitor sample the tree
"""


# -- exit codes and exceptions ---------------------------------------------


def test_success_streams_lines_and_exit_code_zero(tmp_path):
    result, lines = run_script(
        tmp_path,
        """
        import sys
        print("hello")
        print("warn", file=sys.stderr)
    """,
    )
    assert result.succeeded and result.exit_code == 0
    assert result.exc_type is None and result.killed_reason is None
    assert ("stdout", "hello") in lines and ("stderr", "warn") in lines
    assert "hello\n" in result.output and "warn\n" in result.output
    assert result.truncated_bytes == 0
    assert result.wall_time > 0 and result.peak_memory_mb >= 0


def test_main_guard_runs_and_sys_exit_zero_is_success(tmp_path):
    result, lines = run_script(
        tmp_path,
        """
        import sys
        def main():
            print("name", __name__, "argv0", sys.argv[0].split("/")[-1])
            sys.exit(0)
        if __name__ == "__main__":
            main()
        print("not reached")
    """,
    )
    assert result.succeeded, result.output
    assert ("stdout", "name __main__ argv0 solution.py") in lines
    assert "not reached" not in result.output


def test_sys_exit_code_passes_through_without_exception(tmp_path):
    result, _ = run_script(tmp_path, "import sys\nsys.exit(3)\n")
    assert result.exit_code == 3 and not result.succeeded
    assert result.exc_type is None and result.traceback is None


def test_script_dir_is_importable_like_python_solution_py(tmp_path):
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "helper.py").write_text("VALUE = 42\n")
    result, lines = run_script(tmp_path, "import helper\nprint(helper.VALUE)\n")
    assert result.succeeded and ("stdout", "42") in lines


def test_uncaught_exception_records_type_and_script_traceback(tmp_path):
    result, lines = run_script(
        tmp_path,
        """
        def load():
            raise KeyError("target")
        if __name__ == "__main__":
            load()
    """,
    )
    assert result.exit_code == 1 and not result.succeeded
    assert result.exc_type == "KeyError"
    assert "solution.py" in result.traceback and "in load" in result.traceback
    assert "launcher.py" not in result.traceback and "runpy" not in result.traceback
    assert "KeyError: 'target'" in result.output
    assert any("KeyError" in line for _, line in lines)


# -- limits ------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_hanging_script_is_killed_on_timeout(tmp_path):
    result, _ = run_script(tmp_path, "import time\nprint('start', flush=True)\ntime.sleep(3600)\n", timeout=1.5)
    assert result.killed_reason == "timeout"
    assert result.exit_code is None and not result.succeeded
    assert "start" in result.output


def test_background_processes_die_with_the_node_and_cannot_hang_it(tmp_path):
    """Sleepers (one behind setsid + fork) keep stdout open; the result still arrives and they are dead."""
    result, lines = run_script(tmp_path, SPAWN_SLEEPERS)
    assert result.succeeded, result.output
    pids = read_pids(tmp_path / "ws" / "pids.txt")
    assert len(pids) >= 3
    assert not [pid for pid in pids if still_running(pid)]
    assert ("stdout", "sleeping") in lines


def test_timeout_kills_setsid_grandchildren_too(tmp_path):
    result, _ = run_script(tmp_path, SPAWN_SLEEPERS + "\ntime.sleep(3600)\n", timeout=3)
    assert result.killed_reason == "timeout"
    pids = read_pids(tmp_path / "ws" / "pids.txt")
    assert len(pids) >= 3
    assert not [pid for pid in pids if still_running(pid)]


def test_memory_cap_counts_the_whole_tree_and_names_the_reason(tmp_path):
    result, _ = run_script(
        tmp_path,
        """
        import time
        chunks = []
        for _ in range(40):  # up to 800 MiB, 20 MiB at a time
            chunks.append(b"x" * (20 * 1024 * 1024))
            time.sleep(0.05)
        print("survived")
    """,
        memory_limit_mb=150,
    )
    assert result.killed_reason == "memory limit exceeded: 150 MiB"
    assert result.exit_code is None
    assert result.peak_memory_mb >= 150  # where a cgroup holds the node, the kernel stops it at the cap
    assert "survived" not in result.output


def test_memory_of_children_counts(tmp_path):
    result, _ = run_script(
        tmp_path,
        """
        import subprocess, sys, time
        hog = "import time\\nx = b'y' * (100 * 1024 * 1024)\\ntime.sleep(3600)\\n"
        procs = [subprocess.Popen([sys.executable, "-c", hog]) for _ in range(2)]
        time.sleep(3600)
    """,
        memory_limit_mb=150,
        timeout=20,
    )
    assert result.killed_reason == "memory limit exceeded: 150 MiB"


def test_output_flood_is_capped_head_and_tail_without_deadlock(tmp_path):
    limit = 64 * 1024
    result, lines = run_script(
        tmp_path,
        """
        import sys
        print("FIRST LINE")
        for i in range(40000):
            print(f"out {i:06d} " + "x" * 50)
            if i % 10 == 0:
                print(f"err {i:06d}", file=sys.stderr)
        print("L" * 200_000)
        for p in range(20000):
            sys.stderr.write(f"\\rprogress {p}")
        sys.stderr.write("\\n")
        print("LAST LINE")
    """,
        output_limit_bytes=limit,
    )
    assert result.succeeded
    out = result.output
    assert out.startswith("FIRST LINE\n")
    assert "LAST LINE\n" in out[-200:]  # stdout and stderr may interleave at the very end
    assert "bytes of output cut ...]" in out
    assert result.truncated_bytes > 2_000_000
    assert len(out.encode()) <= limit + 200
    # The front end still saw every line, each one capped.
    stdout_lines = [l for s, l in lines if s == "stdout" and l.startswith("out ")]
    assert len(stdout_lines) == 40000
    assert sum(1 for s, l in lines if s == "stderr" and l.startswith("progress ")) == 20000
    longest = max(len(l) for _, l in lines)
    assert MAX_LINE_CHARS <= longest <= MAX_LINE_CHARS + 100
    assert any("bytes of this line cut" in l for _, l in lines)


def test_progress_bars_collapse_in_the_capture(tmp_path):
    result, lines = run_script(
        tmp_path,
        """
        import sys
        for p in range(5):
            sys.stdout.write(f"\\r{p * 25}%")
        print()
        print("done")
    """,
    )
    assert result.output == "100%\ndone\n"
    assert [l for _, l in lines if l.endswith("%")] == ["0%", "25%", "50%", "75%", "100%"]


# -- secrets -----------------------------------------------------------------


def test_secrets_are_not_in_the_environment_nor_in_any_output(tmp_path):
    api_key = "sk-ant-fake-0123456789abcdef"
    token = "tok-fake-secret-98765"
    environ = dict(
        os.environ,
        ANTHROPIC_API_KEY=api_key,
        MY_TOKEN=token,
        HARMLESS="visible-value",
        DATABASE_URL="postgres://u:pw@db/x",
        PASSED_BY_USER="chosen",
    )
    (tmp_path / "leak.txt").write_text(f"{api_key}\n{token}\n")
    result, lines = run_script(
        tmp_path,
        f"""
        import os
        for name, value in sorted(os.environ.items()):
            print(f"{{name}}={{value}}")
        print(open({str(tmp_path / "leak.txt")!r}).read())  # found it elsewhere: still redacted
        print("hash seed", os.environ["PYTHONHASHSEED"], os.environ["MPLBACKEND"], os.environ["EXTRA"])
        raise RuntimeError({api_key!r})
    """,
        environ=environ,
        extra_env={"EXTRA": "yes"},
        env_pass=("PASSED_BY_USER",),
        cpus=3,
    )
    everything = result.output + (result.traceback or "") + "\n".join(l for _, l in lines)
    for leaked in ("ANTHROPIC_API_KEY", "MY_TOKEN", api_key, token):
        assert leaked not in everything
    assert "HARMLESS" not in result.output and "DATABASE_URL" not in result.output  # not on the allow-list
    assert "PASSED_BY_USER=chosen" in result.output and "PATH=" in result.output
    assert "PYTHONUNBUFFERED=1" in result.output
    assert "OMP_NUM_THREADS=3" in result.output and "OPENBLAS_NUM_THREADS=3" in result.output
    assert "hash seed 0 Agg yes" in result.output
    assert result.exc_type == "RuntimeError" and "***" in result.traceback


def test_environment_allow_list_rule():
    env = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "LC_ALL": "C",
        "TZ": "UTC",
        "TERM": "xterm",
        "VIRTUAL_ENV": "/v",
        "CONDA_PREFIX": "/c",
        "PYTHONPATH": "/p",
        "CUDA_VISIBLE_DEVICES": "0",
        "NVIDIA_VISIBLE_DEVICES": "all",
        "PYTHONSTARTUP": "/evil.py",
        "PYTHONBREAKPOINT": "os.system",
        "PYTHONINSPECT": "1",
        "CONDA_TOKEN": "t",
        "ANTHROPIC_BASE_URL": "http://x",
        "DATABASE_URL": "pg://",
        "SENTRY_DSN": "https://k@s",
        "CI_JOB_JWT": "j",
        "PGPASS": "p",
        "SSH_AUTH_SOCK": "/s",
        "MY_DATA": "d",
    }
    clean, secrets = child_env(env, {"EXTRA": "1"}, env_pass=["MY_DATA"], cpus=2, home="/ws/.aide-exec/home")
    passed = {
        "PATH",
        "LANG",
        "LC_ALL",
        "TZ",
        "TERM",
        "VIRTUAL_ENV",
        "CONDA_PREFIX",
        "PYTHONPATH",
        "CUDA_VISIBLE_DEVICES",
        "NVIDIA_VISIBLE_DEVICES",
        "MY_DATA",
    }
    assert {k: clean[k] for k in passed} == {k: env[k] for k in passed}
    assert clean["HOME"] == "/ws/.aide-exec/home" and clean["EXTRA"] == "1"
    assert all(clean[name] == "2" for name in THREAD_VARIABLES)
    assert set(clean) == passed | {"HOME", "EXTRA", *THREAD_VARIABLES, *FIXED_CHILD_ENV}
    assert secrets == ["http://x"]  # withheld, secret-looking, 6+ characters: redacted


def test_redact_skips_short_values():
    assert redact("key=abcdef12 x=ab", ["abcdef12", "ab"]) == "key=*** x=ab"


# -- output plumbing units -----------------------------------------------------


def test_splitter_handles_crlf_split_across_chunks():
    got = []
    splitter = _StreamSplitter("stdout", lambda s, line, cr, cut: got.append((line, cr)))
    for chunk in (b"a\r", b"\nb\r", b"c\n\n", "é".encode()[:1], "é".encode()[1:] + b"\n", b"tail"):
        splitter.feed(chunk)
    splitter.feed(b"", final=True)
    assert got == [("a", False), ("b", True), ("c", False), ("", False), ("é", False), ("tail", False)]


def test_output_capture_keeps_head_and_tail():
    capture = OutputCapture(100)
    for i in range(1000):
        capture.add(f"line {i:04d}\n".encode())
    text, cut = capture.text()
    assert text.startswith("line 0000\n") and text.endswith("line 0999\n")
    assert "bytes of output cut ...]" in text
    kept = text.replace(text[text.index("[...") : text.index("]\n") + 2], "")
    assert cut == 10 * 1000 - len(kept)


# -- cancel and shutdown ---------------------------------------------------------


def test_cancel_kills_the_tree_and_reports_cancelled(tmp_path):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "solution.py").write_text(SPAWN_SLEEPERS + "\ntime.sleep(3600)\n")
    executor = LocalExecutor()
    job = executor.submit(ExecRequest(workspace=workspace, timeout=60), lambda s, l: None)
    pids_file = workspace / "pids.txt"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (pids_file.exists() and len(read_pids(pids_file)) >= 3):
        time.sleep(0.05)
    time.sleep(0.3)
    assert not job.done
    job.cancel()
    result = job.wait(20)
    assert result is not None and result.killed_reason == "cancelled" and result.exit_code is None
    assert not [pid for pid in read_pids(pids_file) + [job.pid] if still_running(pid)]
    job.cancel()  # after the end: harmless
    assert job.wait(0).killed_reason == "cancelled"


def test_shutdown_kills_all_running_jobs(tmp_path):
    executor = LocalExecutor()
    jobs = []
    for i in range(2):
        ws = tmp_path / f"ws{i}"
        ws.mkdir()
        (ws / "solution.py").write_text("import time\nprint('up', flush=True)\ntime.sleep(3600)\n")
        started = threading.Event()
        jobs.append((executor.submit(ExecRequest(workspace=ws, timeout=60), lambda s, l, e=started: e.set()), started))
    for _, started in jobs:
        assert started.wait(20)
    executor.shutdown()
    for job, _ in jobs:
        assert job.done and job.wait(0).killed_reason == "cancelled"
        assert not still_running(job.pid)


# -- workspaces -------------------------------------------------------------------


def make_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / ".git").mkdir()
    (project / ".aide" / "runs").mkdir(parents=True)
    (project / "train.csv").write_text("a,b\n1,2\n")
    (project / "sub" / "extra.txt").write_bytes(b"\x00\x01binary")
    (project / "task.md").write_text("predict b")
    (project / "aide.toml").write_text("steps = 3\n")
    (project / ".hidden").write_text("no")
    (project / ".git" / "HEAD").write_text("ref")
    (project / ".aide" / "runs" / "journal.jsonl").write_text("{}")
    return project


def test_list_data_files_skips_task_settings_and_hidden(tmp_path):
    assert list_data_files(make_project(tmp_path)) == ["sub/extra.txt", "train.csv"]


def test_a_script_that_destroys_its_inputs_harms_no_other_node(tmp_path):
    project = make_project(tmp_path)
    data = list_data_files(project)
    originals = {rel: (project / rel).read_bytes() for rel in data}
    vandal = """
        import os, stat
        os.chmod("input/train.csv", stat.S_IWUSR | stat.S_IRUSR)
        open("input/train.csv", "w").write("garbage")
        os.remove("input/sub/extra.txt")
        print("done")
    """
    ws1 = tmp_path / "node1"
    prepare_workspace(ws1, project, data, textwrap.dedent(vandal))
    assert not os.access(ws1 / "input" / "train.csv", os.W_OK) or os.geteuid() == 0
    job = LocalExecutor().submit(ExecRequest(workspace=ws1, timeout=30), lambda s, l: None)
    result = job.wait(45)
    assert result.succeeded, result.output
    assert (ws1 / "input" / "train.csv").read_text() == "garbage"

    ws2 = tmp_path / "node2"
    prepare_workspace(ws2, project, data, "print('hi')\n")
    for rel, content in originals.items():
        assert (ws2 / "input" / rel).read_bytes() == content
        assert (project / rel).read_bytes() == content
    assert (ws2 / "solution.py").read_text() == "print('hi')\n"
    # Re-preparing the vandalised workspace restores it too.
    prepare_workspace(ws1, project, data, "pass\n")
    assert (ws1 / "input" / "train.csv").read_bytes() == originals["train.csv"]


def test_prepare_workspace_rejects_paths_outside_the_project(tmp_path):
    project = make_project(tmp_path)
    with pytest.raises(ValueError):
        prepare_workspace(tmp_path / "ws", project, ["../secret.txt"], "pass\n")


def test_collect_outputs_returns_written_files_within_caps(tmp_path):
    project = make_project(tmp_path)
    ws = tmp_path / "ws"
    prepare_workspace(
        ws,
        project,
        list_data_files(project),
        textwrap.dedent("""
        import os
        open("submission.csv", "w").write("id,b\\n1,2\\n")
        os.makedirs("models", exist_ok=True)
        open("models/big.bin", "wb").write(b"0" * 5000)
        os.symlink("/etc/hostname", "link.txt")
    """),
    )
    result = LocalExecutor().submit(ExecRequest(workspace=ws, timeout=30), lambda s, l: None).wait(45)
    assert result.succeeded, result.output
    outputs, skipped = collect_outputs(ws, max_file_bytes=1000, max_total_bytes=10_000)
    assert outputs == {"submission.csv": b"id,b\n1,2\n"}
    assert skipped == ["models/big.bin"]
    outputs, skipped = collect_outputs(ws, max_file_bytes=10_000, max_total_bytes=5_005)
    assert list(outputs) == ["submission.csv"] and skipped == ["models/big.bin"]  # a directory's files first


def test_the_exception_comes_over_the_launchers_pipe_and_leaves_no_file_or_output(tmp_path):
    result, _ = run_script(tmp_path, "raise ValueError('x')\n")
    assert result.exc_type == "ValueError"
    hidden = tmp_path / "ws" / ".aide-exec"
    assert {p.name for p in hidden.iterdir()} <= {"home"}  # the script's HOME when sandboxed, no bookkeeping
    assert collect_outputs(tmp_path / "ws", 10**6, 10**6) == ({}, [])


def test_a_second_run_in_the_same_workspace_does_not_inherit_the_old_exception(tmp_path):
    run_script(tmp_path, "raise ValueError('x')\n")
    result, _ = run_script(tmp_path, "print('fixed')\n")
    assert result.succeeded and result.exc_type is None


def test_runs_under_another_interpreter_path(tmp_path):
    result, lines = run_script(tmp_path, "import sys\nprint(sys.executable)\n", python=sys.executable)
    assert result.succeeded and lines


def test_a_fast_double_fork_daemon_is_still_killed(tmp_path):
    """The classic daemonize (fork, setsid, fork, parent exits) between two samples."""
    result, _ = run_script(
        tmp_path,
        """
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                with open("pids.txt", "a") as f:
                    f.write(f"{os.getpid()}\\n")
                time.sleep(3600)
            os._exit(0)
        os.wait()
        while not os.path.exists("pids.txt"):
            time.sleep(0.01)
        time.sleep(0.5)
    """,
    )
    assert result.succeeded, result.output
    pids = read_pids(tmp_path / "ws" / "pids.txt")
    assert pids and not [pid for pid in pids if still_running(pid)]
