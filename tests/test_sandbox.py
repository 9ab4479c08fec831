"""The bubblewrap sandbox and the environment allow-list, tried as a hostile script would.

Every test runs a real script through the real bwrap (no mocks).  When bwrap
cannot start on this machine the bwrap tests are skipped with the probe's
reason; the `--sandbox none` and settings tests still run.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path

import psutil
import pytest
from fake_api import TextReply, default_responder
from helpers import make_project

from aide_tui.cli import main as cli_main
from aide_tui.run.bwrap import bwrap_problem, choose_isolation, isolation_for
from aide_tui.run.executor import ExecRequest, ExecResult
from aide_tui.run.forkserver import fork_server_supported
from aide_tui.run.inputs import InputData
from aide_tui.run.local import LocalExecutor
from aide_tui.run.workspace import HIDDEN_DIR, collect_outputs, list_data_files, prepare_workspace
from aide_tui.settings import resolve

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

BWRAP_PROBLEM = bwrap_problem()
needs_bwrap = pytest.mark.skipif(BWRAP_PROBLEM is not None, reason=f"bwrap cannot start here: {BWRAP_PROBLEM}")
CANARY = "canary-" + uuid.uuid4().hex


class Box:
    """A project in a git repository, a HOME with a canary file, and one node's workspace."""

    def __init__(self, root: Path, start: str = "cold"):
        self.start = start  # "cold": a launcher in a bwrap of its own; "forked": a child of the run's zygote
        self.executors: list[LocalExecutor] = []
        self.home = root / "home"
        self.home.mkdir()
        (self.home / "canary.txt").write_text(CANARY)
        self.project = make_project(root / "proj", dirty=False)
        self.run_dir = self.project / ".aide" / "runs" / "r1"
        self.workspace = self.run_dir / "nodes" / "1"

    def run(
        self,
        code: str,
        *,
        sandbox: bool = True,
        network: bool = False,
        read: tuple[str, ...] = (),
        copy_limit: int | None = None,
        environ: dict[str, str] | None = None,
        on_line=None,
        **request_args,
    ) -> ExecResult:
        job = self.submit(
            code,
            sandbox=sandbox,
            network=network,
            read=read,
            copy_limit=copy_limit,
            environ=environ,
            on_line=on_line,
            **request_args,
        )
        result = job.wait(90)
        assert result is not None, "the job never finished"
        return result

    def submit(
        self,
        code: str,
        *,
        sandbox: bool = True,
        network: bool = False,
        read: tuple[str, ...] = (),
        copy_limit: int | None = None,
        environ: dict[str, str] | None = None,
        on_line=None,
        **request_args,
    ):
        data = list_data_files(self.project)
        self.inputs = InputData(self.project, data, self.run_dir, copy_limit or 1 << 30, read_only_mount=sandbox)
        prepare_workspace(self.workspace, self.project, data, textwrap.dedent(code), inputs=self.inputs)
        isolation = isolation_for(self.project, Path.home(), list(read), network) if sandbox else None
        request_args.setdefault("timeout", 60)
        request = ExecRequest(workspace=self.workspace, isolation=isolation, **request_args)
        executor = LocalExecutor(environ=environ if environ is not None else dict(os.environ))
        self.executors.append(executor)
        warm = executor.warm_up(request, ("decimal",)) if self.start == "forked" else None
        forkable = fork_server_supported(request)  # not with sandbox_read under the home: a warm launcher then
        if warm is not None:
            assert (type(warm).__name__ == "ForkedWarmStart") == forkable, "the forked start must be the one tried"
        job = executor.submit(request, on_line or (lambda s, l: None), warm=warm)
        assert job.warm == (self.start == "forked"), "a forked start fell back to a cold one"
        return job


@pytest.fixture(params=["cold", "forked"])
def box(tmp_path, monkeypatch, request):
    """Every escape is tried against both ways a node starts: cold, and forked from the zygote."""
    box = Box(tmp_path, request.param)
    monkeypatch.setenv("HOME", str(box.home))
    yield box
    for executor in box.executors:
        executor.shutdown()


def tree_hash(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".aide" not in p.relative_to(root).parts
    }


def processes_with(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(proc.info["cmdline"] or []) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            pass
    return found


# -- what the script can see and touch -------------------------------------------


@needs_bwrap
def test_home_is_replaced_by_an_empty_private_one(box):
    result = box.run(f"""
        import os
        try:
            print("READ", open({str(box.home / "canary.txt")!r}).read())
        except OSError as exc:
            print("canary hidden:", type(exc).__name__)
        print("home listing:", os.listdir({str(box.home)!r}))
        with open(os.path.expanduser("~/settings.txt"), "w") as fh:
            fh.write("mine")
        print("HOME is", os.environ["HOME"])
    """)
    assert result.succeeded, result.output
    assert CANARY not in result.output
    assert "canary hidden: FileNotFoundError" in result.output and "home listing: []" in result.output
    private = box.workspace / HIDDEN_DIR / "home"
    assert f"HOME is {private}" in result.output and (private / "settings.txt").read_text() == "mine"
    outputs, _ = collect_outputs(box.workspace, 1 << 20, 1 << 20)
    assert not [name for name in outputs if "settings.txt" in name]  # the private home is no output


@needs_bwrap
def test_sandbox_read_opens_a_path_read_only_also_under_the_private_home(box):
    cache = box.home / ".cache" / "models"
    cache.mkdir(parents=True)
    (cache / "weights.bin").write_text("weights")
    result = box.run(
        f"""
        import os
        print("abs:", open({str(cache / "weights.bin")!r}).read())
        print("home:", open(os.path.expanduser("~/.cache/models/weights.bin")).read())
        try:
            open({str(cache / "new.bin")!r}, "w")
        except OSError as exc:
            print("write refused:", exc.errno)
        print("canary:", os.path.exists({str(box.home / "canary.txt")!r}))
    """,
        read=("~/.cache/models",),
    )
    assert result.succeeded, result.output
    assert "abs: weights" in result.output and "home: weights" in result.output
    assert "write refused: 30" in result.output and "canary: False" in result.output
    assert not (cache / "new.bin").exists()


def _listener() -> tuple[socket.socket, threading.Event]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(20)
    accepted = threading.Event()

    def accept():
        try:
            conn, _ = server.accept()
            accepted.set()
            conn.close()
        except OSError:
            pass

    threading.Thread(target=accept, daemon=True).start()
    return server, accepted


CONNECT = """
    import socket
    try:
        socket.create_connection(("127.0.0.1", {port}), timeout=5).close()
        print("connected")
    except OSError as exc:
        print("refused:", type(exc).__name__)
"""


@needs_bwrap
def test_no_network_by_default(box):
    server, accepted = _listener()
    with server:
        result = box.run(CONNECT.format(port=server.getsockname()[1]))
    assert result.succeeded, result.output
    assert "refused: ConnectionRefusedError" in result.output and not accepted.is_set()


@needs_bwrap
def test_network_setting_shares_the_host_network(box):
    server, accepted = _listener()
    with server:
        result = box.run(CONNECT.format(port=server.getsockname()[1]), network=True)
        assert accepted.wait(10)
    assert "connected" in result.output, result.output


@needs_bwrap
def test_project_git_task_and_data_are_out_of_reach(box):
    (box.run_dir / "nodes" / "2").mkdir(parents=True)
    (box.run_dir / "nodes" / "2" / "model.pkl").write_text("another node's output")
    (box.run_dir / "journal.jsonl").write_text("{}\n")
    before = tree_hash(box.project)
    git_before = tree_hash(box.project / ".git")
    result = box.run(f"""
        import os, pathlib
        here = pathlib.Path.cwd()
        print("run records:", sorted(os.listdir(here.parent.parent)), sorted(os.listdir(here.parent)))
        print("git found:", [str(p) for p in [here, *here.parents] if (p / ".git").exists()])
        project = pathlib.Path({str(box.project)!r})
        print("project listing:", sorted(os.listdir(project)))
        attempts = {{
            "hook": project / ".git" / "hooks" / "post-checkout",
            "ref": project / ".git" / "refs" / "heads" / "evil",
            "task": project / "task.md",
            "data": project / "data" / "new.csv",
            "train": project / "data" / "train.csv",
            "input": here / "input" / "data" / "extra.csv",
        }}
        for name, path in attempts.items():
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "a") as fh:
                    fh.write("evil\\n")
                print(name, "WRITTEN")
            except OSError as exc:
                print(name, "refused")
    """)
    assert result.succeeded, result.output
    assert "git found: []" in result.output
    assert "run records: ['nodes'] ['1']" in result.output  # no journal, no other node
    assert "project listing: ['.aide']" in result.output  # only the way down to the workspace
    for name in ("hook", "ref", "task", "data", "train", "input"):
        assert f"{name} refused" in result.output
    assert tree_hash(box.project) == before
    assert tree_hash(box.project / ".git") == git_before
    assert not (box.project / ".git" / "hooks" / "post-checkout").exists()


@needs_bwrap
def test_files_left_in_tmp_dirs_vanish_with_the_node(box):
    name = "aide-left-" + uuid.uuid4().hex
    result = box.run(f"""
        for d in ("/tmp", "/var/tmp", "/dev/shm"):
            with open(d + "/{name}", "w") as fh:
                fh.write("left behind")
            print("wrote", d)
    """)
    assert result.succeeded, result.output
    assert result.output.count("wrote") == 3
    for d in ("/tmp", "/var/tmp", "/dev/shm"):
        assert not os.path.exists(f"{d}/{name}")


@needs_bwrap
def test_root_cannot_remount_the_filesystem_writable(box):
    target = f"/etc/aide-remount-{uuid.uuid4().hex}"
    result = box.run(f"""
        import subprocess
        subprocess.run(["mount", "-o", "remount,rw", "/"], capture_output=True)
        subprocess.run(["umount", "-l", {str(box.home)!r}], capture_output=True)
        try:
            open({target!r}, "w").write("x")
            print("WROTE")
        except OSError as exc:
            print("refused", exc.errno)
        print("canary:", open({str(box.home / "canary.txt")!r}).read() if __import__("os").path.exists({str(box.home / "canary.txt")!r}) else "hidden")
    """)
    assert "refused" in result.output and "canary: hidden" in result.output, result.output
    assert not os.path.exists(target)


@needs_bwrap
def test_linked_big_data_cannot_be_changed_in_place(box):
    train = box.project / "data" / "train.csv"
    original = train.read_bytes()
    result = box.run(
        """
        import os
        path = "input/data/train.csv"
        print("linked:", os.stat(path).st_nlink > 1)
        st = os.stat(path)
        for how in ("chmod", "write"):
            try:
                if how == "chmod":
                    os.chmod(path, 0o644)
                else:
                    with open(path, "r+b") as fh:
                        fh.write(b"TAMPERED")
                    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
                print(how, "DONE")
            except OSError as exc:
                print(how, "refused", exc.errno)
    """,
        copy_limit=1,
    )
    assert box.inputs.mode == "link"
    assert "linked: True" in result.output, result.output
    assert "chmod refused 30" in result.output and "write refused" in result.output  # EACCES or EROFS
    assert (box.run_dir / "input-snapshot" / "data" / "train.csv").read_bytes() == original
    assert train.read_bytes() == original


@needs_bwrap
def test_proc_shows_only_the_sandbox(box):
    secret = "ghp_" + uuid.uuid4().hex
    environ = dict(os.environ, GITHUB_TOKEN=secret, DATABASE_URL=f"postgres://u:{secret}@db/x")
    result = box.run(
        f"""
        import os
        pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
        print("pids:", pids)
        print("ppid:", os.getppid())
        for pid in pids:
            try:
                print(pid, open(f"/proc/{{pid}}/environ", "rb").read().hex())
            except OSError:
                pass
        print("host pid visible:", os.path.exists("/proc/{os.getpid()}/environ"))
    """,
        environ=environ,
    )
    assert result.succeeded, result.output
    for leaked in (secret, secret.encode().hex(), b"GITHUB_TOKEN".hex(), b"DATABASE_URL".hex()):
        assert leaked not in result.output
    pids = json.loads(result.output.split("pids: ")[1].splitlines()[0])
    assert len(pids) <= 4  # bwrap's init, the launcher, and at most the transient readers
    if os.getpid() not in pids:
        assert "host pid visible: False" in result.output


# -- nothing outlives the node ---------------------------------------------------------

DOUBLE_FORK = """
import os, subprocess, sys, time
up = os.path.abspath("escapee-up")
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.chdir("/")
        code = "import sys, time; open(sys.argv[1], 'w').close(); time.sleep(600)"
        os.execv(sys.executable, [sys.executable, "-c", code, up, "{marker}"])
    os._exit(0)
os.wait()
while not os.path.exists(up):  # the daemon is up, under its own name
    time.sleep(0.01)
print("ready", flush=True)
"""


@needs_bwrap
def test_a_setsid_double_fork_grandchild_dies_with_the_node(box):
    marker = "aide-escapee-" + uuid.uuid4().hex
    result = box.run(DOUBLE_FORK.format(marker=marker) + "time.sleep(0.5)\n")
    assert result.succeeded and "ready" in result.output, result.output
    gone, alive = psutil.wait_procs(processes_with(marker), timeout=10)
    assert alive == [] and processes_with(marker) == []


@needs_bwrap
def test_a_setsid_double_fork_grandchild_dies_with_a_cancel(box):
    marker = "aide-escapee-" + uuid.uuid4().hex
    ready = threading.Event()
    job = box.submit(
        DOUBLE_FORK.format(marker=marker) + "time.sleep(600)\n",
        on_line=lambda s, l: ready.set() if l == "ready" else None,
    )
    assert ready.wait(60)
    assert processes_with(marker), "the grandchild should be running before the cancel"
    job.cancel()
    result = job.wait(60)
    assert result is not None and result.killed_reason == "cancelled"
    assert processes_with(marker) == []


DRIVER = """
import sys
from pathlib import Path
from aide_tui.run.bwrap import isolation_for
from aide_tui.run.executor import ExecRequest
from aide_tui.run.local import LocalExecutor
workspace, project, home = map(Path, sys.argv[1:4])
job = LocalExecutor().submit(ExecRequest(workspace=workspace, timeout=300,
                                         isolation=isolation_for(project, home, [], False)),
                             lambda s, l: print(l, flush=True))
job.wait()
"""


@needs_bwrap
def test_a_setsid_double_fork_grandchild_dies_with_a_kill_9_of_aide_tui(box):
    marker = "aide-escapee-" + uuid.uuid4().hex
    box.workspace.mkdir(parents=True)
    (box.workspace / "solution.py").write_text(DOUBLE_FORK.format(marker=marker) + "time.sleep(600)\n")
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(box.workspace), str(box.project), str(box.home)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert driver.stdout.readline().strip() == "ready"
        escapees = processes_with(marker)
        assert escapees, "the grandchild should be running before the kill"
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
        gone, alive = psutil.wait_procs(escapees, timeout=20)
        assert alive == []
    finally:
        driver.kill()
        driver.wait()
        driver.stdout.close()


@needs_bwrap
def test_limits_and_peak_memory_still_count_the_scripts_processes(box):
    result = box.run(
        """
        import subprocess, sys, time
        hog = "import time\\nx = b'y' * (100 * 1024 * 1024)\\ntime.sleep(3600)\\n"
        procs = [subprocess.Popen([sys.executable, "-c", hog]) for _ in range(2)]
        time.sleep(3600)
    """,
        memory_limit_mb=150,
        timeout=30,
    )
    assert result.killed_reason == "memory limit exceeded: 150 MiB"
    assert result.peak_memory_mb >= 150  # where a cgroup holds the node, the kernel stops it at the cap
    timed = box.run("import time\nprint('start', flush=True)\ntime.sleep(3600)\n", timeout=2)
    assert timed.killed_reason == "timeout" and "start" in timed.output


@needs_bwrap
def test_traceback_exit_code_and_threads_as_unsandboxed(box):
    code = """
        import os, sys
        print("threads", os.environ["OMP_NUM_THREADS"], os.environ["MKL_NUM_THREADS"])
        if __name__ == "__main__":
            raise KeyError("missing column")
    """
    inside = box.run(code, cpus=3)
    outside = box.run(code, sandbox=False, cpus=3)
    for result in (inside, outside):
        assert result.exit_code == 1 and result.exc_type == "KeyError"
        assert "threads 3 3" in result.output
        assert f'File "{box.workspace / "solution.py"}", line 5' in result.traceback


# -- the interpreter ---------------------------------------------------------------------


@needs_bwrap
def test_a_venv_under_home_still_imports_its_packages(box):
    venv = box.home / "venvs" / "ml"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "aide_venv_only.py").write_text("VALUE = 'from the venv'\n")
    result = box.run(
        """
        import sys, aide_venv_only
        print(aide_venv_only.VALUE, sys.prefix)
    """,
        python=str(venv / "bin" / "python"),
    )
    assert result.succeeded, result.output
    assert f"from the venv {venv}" in result.output


# -- without the sandbox, and the settings ---------------------------------------------


def test_sandbox_none_behaves_as_before(box):
    name = "/tmp/aide-unsandboxed-" + uuid.uuid4().hex
    try:
        result = box.run(
            f"""
            print(open({str(box.home / "canary.txt")!r}).read())
            open({name!r}, "w").write("x")
        """,
            sandbox=False,
        )
        assert result.succeeded, result.output
        assert CANARY in result.output and os.path.exists(name)  # nothing walls it in
    finally:
        if os.path.exists(name):
            os.unlink(name)
    assert choose_isolation("none", box.project, box.home, [], False) == (None, None)


@needs_bwrap
def test_auto_and_bwrap_choose_the_sandbox_when_bwrap_starts(box):
    for mode in ("auto", "bwrap"):
        isolation, notice = choose_isolation(mode, box.project, box.home, ["~/x"], True)
        assert notice is None and isolation is not None and isolation.network
        assert box.project.resolve() in isolation.hide and box.home in isolation.hide
        assert isolation.read_only == ((box.home / "x").resolve(),)


def test_sandbox_settings_from_toml_and_flags(tmp_path, capsys):
    toml = tmp_path / "aide.toml"
    toml.write_text(
        'sandbox = "none"\nnetwork = true\nsandbox_read = ["~/.cache/huggingface"]\nenv_pass = ["A", "B"]\n'
    )
    s = resolve(toml, {})
    assert (s.sandbox, s.network, s.sandbox_read, s.env_pass) == ("none", True, ["~/.cache/huggingface"], ["A", "B"])
    s = resolve(toml, {"sandbox": "bwrap", "network": False, "env_pass": ["C,D", "E"]})
    assert (s.sandbox, s.network, s.env_pass) == ("bwrap", False, ["C", "D", "E"])
    project = make_project(tmp_path / "p", with_git=False)
    assert cli_main([str(project), "--headless", "--sandbox", "jail"]) == 2
    assert "sandbox must be auto, bwrap or none" in capsys.readouterr().err
    assert cli_main([str(project), "--headless", "--env-pass", "NOT-A-NAME"]) == 2
    assert "env_pass" in capsys.readouterr().err
    toml.write_text("network = 'maybe'\n")
    with pytest.raises(Exception, match="network = 'maybe' is not a valid true/false"):
        resolve(toml, {})


# -- end to end: a hostile script in a default run ----------------------------------------

HOSTILE = """
import os, pathlib
found = []
for pid in os.listdir("/proc"):
    try:
        found.append(open(f"/proc/{pid}/environ", "rb").read())
    except OSError:
        pass
found.append(repr(dict(os.environ)).encode())
home = pathlib.Path(HOME_PATH)
try:
    found.append(open(home / "canary.txt", "rb").read())
except OSError:
    pass
blob = b"\\n".join(found)
open("loot.txt", "wb").write(blob)
print(blob.hex())
print(blob.decode("latin-1"))
print("Validation metric: 1.0")
"""


@needs_bwrap
def test_a_default_run_keeps_secrets_and_home_out_of_journal_and_git(tmp_path, llm_env, monkeypatch):
    box = Box(tmp_path)
    code = HOSTILE.replace("HOME_PATH", repr(str(box.home)))
    llm_env.responder = lambda body: (
        default_responder(body) if body.get("tool_choice") else TextReply(f"Loot.\n\n```python\n{code}```\n")
    )
    secrets = {
        "GITHUB_TOKEN": "ghp_" + uuid.uuid4().hex,
        "AWS_SECRET_ACCESS_KEY": uuid.uuid4().hex,
        "DATABASE_URL": f"postgres://app:{uuid.uuid4().hex}@db/prod",
        "SENTRY_DSN": "https://" + uuid.uuid4().hex,
    }
    env = {
        **os.environ,
        **secrets,
        "HOME": str(box.home),
        "ANTHROPIC_BASE_URL": llm_env.url,
        "ANTHROPIC_API_KEY": "sk-ant-" + uuid.uuid4().hex,
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "aide_tui.cli",
            str(box.project),
            "--headless",
            "--json",
            "--steps",
            "1",
            "--coder",
            "llm",
            "--timeout",
            "60",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "unsandboxed" not in done.stdout  # bwrap starts here, so no fallback notice
    system = next(r.body["system"] for r in llm_env.requests if not r.body.get("tools"))  # the coder's, not the card's
    system = system if isinstance(system, str) else " ".join(b.get("text", "") for b in system)
    assert "Network: there is no network access" in system and "CPU: " in system
    everything = done.stdout + done.stderr
    for path in (box.project / ".aide").rglob("*"):
        if path.is_file():
            everything += path.read_bytes().decode("latin-1")
    commits = subprocess.run(["git", "log", "--all", "-p", "--binary"], cwd=box.project, capture_output=True).stdout
    everything += commits.decode("latin-1")
    assert "loot.txt" in commits.decode("latin-1")  # the node's output was committed...
    for value in [*secrets.values(), env["ANTHROPIC_API_KEY"], CANARY]:  # ...without anything worth stealing
        assert value not in everything
        assert value.encode().hex() not in everything


def test_a_reused_big_data_snapshot_is_checked_by_content_once_per_run(tmp_path):
    """What an earlier unsandboxed run wrote in place, timestamps restored, is found on resume."""
    project = make_project(tmp_path / "p", with_git=False)
    data = list_data_files(project)
    run_dir = project / ".aide" / "runs" / "r1"
    InputData(project, data, run_dir, copy_limit=1, read_only_mount=True)
    snap = run_dir / "input-snapshot" / "data" / "train.csv"
    st = snap.stat()
    os.chmod(snap, 0o644)
    original = snap.read_bytes()
    snap.write_bytes(b"X" * len(original))  # same size
    os.utime(snap, ns=(st.st_atime_ns, st.st_mtime_ns))
    InputData(project, data, run_dir, copy_limit=1, read_only_mount=True)  # the resumed run
    assert snap.read_bytes() == original == (project / "data" / "train.csv").read_bytes()


# -- forked nodes (the run's zygote): siblings share nothing, no way back to privileges ------------


ESCALATE = r"""
import ctypes, os, socket, sys
libc = ctypes.CDLL(None, use_errno=True)
status = open("/proc/self/status").read()
print("caps", [line.split()[1] for line in status.splitlines() if line.startswith(("CapEff", "CapPrm", "CapBnd", "CapAmb"))])
nodes = os.path.dirname(os.getcwd())
print("siblings", sorted(os.listdir(nodes)))
print("zygote tmp", os.listdir("/tmp"))  # the sibling's file must not be there
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1] if len(sys.argv) > 1 else PORT)), timeout=2)
    print("CONNECTED to the sibling")
except OSError as exc:
    print("sibling port refused", exc.errno)
# A user namespace of its own gives capabilities again, but over copies of locked mounts only.
CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x00020000
if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) == 0:
    print("umount cover", libc.umount2(nodes.encode(), 2), ctypes.get_errno())
    print("remount rw", libc.mount(None, b"/", None, 32 | 4096, None), ctypes.get_errno())
    print("siblings after", sorted(os.listdir(nodes)))
try:
    open(os.path.join(nodes, "0001", "planted.txt"), "w").write("x")
    print("PLANTED in the sibling")
except OSError as exc:
    print("sibling write refused", exc.errno)
"""


@needs_bwrap
def test_forked_siblings_share_nothing_and_cannot_regain_privileges(tmp_path):
    project = make_project(tmp_path / "proj", dirty=False)
    nodes = project / ".aide" / "runs" / "r1" / "nodes"
    isolation = isolation_for(project, None, [], False)
    executor = LocalExecutor()
    try:
        requests = []
        for n in (1, 2):
            (nodes / f"{n:04d}" / "input").mkdir(parents=True)
            requests.append(ExecRequest(workspace=nodes / f"{n:04d}", timeout=60, isolation=isolation))
        warm = [executor.warm_up(r, ("decimal",)) for r in requests]
        (nodes / "0001" / "solution.py").write_text(
            textwrap.dedent("""
            import os, socket, time
            open("/tmp/secret-of-node-1", "w").write("mine")
            server = socket.socket()
            server.bind(("127.0.0.1", 0))
            server.listen()
            print("listening", server.getsockname()[1], flush=True)
            while not os.path.exists("go"):
                time.sleep(0.02)
        """)
        )
        port: list[int] = []
        listening = threading.Event()

        def first_line(_stream, line):
            if line.startswith("listening"):
                port.append(int(line.split()[1]))
                listening.set()

        first = executor.submit(requests[0], first_line, warm=warm[0])
        assert listening.wait(60) and first.warm
        (nodes / "0002" / "solution.py").write_text(ESCALATE.replace("PORT", str(port[0])))
        second = executor.submit(requests[1], lambda s, l: None, warm=warm[1])
        result = second.wait(60)
        (nodes / "0001" / "go").write_text("")
        assert first.wait(60).succeeded
    finally:
        executor.shutdown()
    out = result.output
    assert second.warm and result.succeeded, out
    assert "caps ['0000000000000000', '0000000000000000', '0000000000000000', '0000000000000000']" in out, out
    assert "siblings ['0002']" in out and "zygote tmp" in out and "secret-of-node-1" not in out, out
    assert "sibling port refused" in out and "CONNECTED" not in out, out
    assert "siblings after ['0002']" in out or "umount cover" not in out, out
    assert "sibling write refused" in out and not (nodes / "0001" / "planted.txt").exists(), out
    assert "remount rw 0" not in out and "umount cover 0" not in out, out


@needs_bwrap
def test_kernel_knobs_in_proc_are_read_only_and_a_forked_nodes_init_is_out_of_reach(box):
    """As uid 0 on the host (aide-tui run as root), file permissions are all that guard /proc/sys:
    a writable kernel.core_pattern runs any program as host root.  A forked node's PID 1 (its
    init) holds the job socket that reports the exit status: the script must not take it
    (ptrace, pidfd_getfd, /proc/1/fd), nor stop it with SIGINT.  (A cold node's PID 1 is bwrap's
    own init, which holds nothing the script lacks.)"""
    probe_init = box.start == "forked"
    result = box.run(f"""
        import ctypes, os, signal
        libc = ctypes.CDLL(None, use_errno=True)
        for path in ("/proc/sys/kernel/core_pattern", "/proc/sys/kernel/hostname", "/proc/sys/vm/drop_caches"):
            try:
                with open(path, "w") as fh:
                    fh.write(open(path).read())
                print("WRITABLE", path)
            except OSError as exc:
                print("refused", path, exc.errno)
        if {probe_init!r}:
            try:
                os.open("/proc/1/fd/2", os.O_RDWR)
                print("OPENED init's fd")
            except OSError as exc:
                print("init fd refused", exc.errno)
            taken = libc.syscall(438, os.pidfd_open(1), 3, 0)  # pidfd_getfd
            print("pidfd_getfd", "TAKEN" if taken >= 0 else "refused")
            print("ptrace", "ATTACHED" if libc.ptrace(16, 1, None, None) == 0 else "refused")  # PTRACE_ATTACH
            os.kill(1, signal.SIGINT)
        print("done")
    """)
    out = result.output
    assert result.succeeded and "done" in out, out
    assert "WRITABLE" not in out and out.count("refused /proc/sys") == 3, out
    assert "OPENED" not in out and "TAKEN" not in out and "ATTACHED" not in out, out
