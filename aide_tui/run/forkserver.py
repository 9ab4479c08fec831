"""A fork server per run: the heavy imports happen once, and every node is a fork walled in afresh.

Why: a fresh interpreter per node imports numpy, pandas and scikit-learn
again, about a second of CPU each time.  Warm starts (launch.py) hide that
behind the model's writing, but with a fast model, several workers or two
cores the imports themselves become the bottleneck.  aideml forks each
script from its own process, which has the libraries loaded but also holds
its memory and secrets.  Here the process forked from is a *zygote*
(zygote.py) that holds nothing but imported modules: it runs in a sandbox
like a node's (same read-only view, same hidden project, home and records,
same allow-listed environment), except that it sees the directories where
workspaces are made and keeps the capabilities to build one node's view.
Each child then gets new mount, PID, IPC and network namespaces showing only
its own workspace, fresh private temp directories and its own ``/proc``, and
drops every capability before the script is named.  So a forked node is as
walled in as a cold one, and as separate from the others: its own process,
its own namespaces, nothing of another node's.

The host side hands each child its stdout and stderr pipes, a job socket
(the child's real pid arrives with its first message, as the kernel reports
it) and its launcher pipe (channel.py); the result is a `ForkedLaunch`, which
`LocalJob` uses like a started launcher.  When the script is named, the host
first moves the child's init and script process (nothing else exists yet)
into a cgroup of the node's own (cgroup.py), so the kernel's memory and
process caps hold its whole tree, as for a cold node.  Anything that goes wrong here (no fork support, a zygote that
cannot start) makes the node start the old way: a fork server is only an
optimisation.
"""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path

import psutil

from .bwrap import PRIVATE_TMP, PROC_READ_ONLY, bwrap_command, describe_interpreter, mounts_under
from .cgroup import NodeCgroup, detect
from .channel import EXCEPTION, LauncherChannel
from .executor import ExecRequest
from .launch import LAUNCHER, PRIVATE_HOME, WarmHandle, launcher_area, limits_env, record_session, tmpfs_bytes
from .sandbox import ProcessTree, child_env

log = logging.getLogger(__name__)

ZYGOTE = Path(__file__).with_name("zygote.py").resolve()
START_TIMEOUT = 60.0  # how long a take() waits for a forked child to report (the zygote may still import)
MAX_MESSAGE = 1 << 16
ZYGOTE_CAPS = (
    "CAP_SYS_ADMIN",
    "CAP_SETPCAP",
    "CAP_NET_ADMIN",
)  # mounts and unshare; drop the bounding set; loopback up
_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class ForkServerDead(Exception):
    """The zygote is gone (it could not start, or died): start nodes the old way."""


def fork_server_supported(request: ExecRequest) -> bool:
    """Whether a node like `request` can be forked: Linux, descriptor passing, and no
    ``sandbox_read`` path under the home (those are shown under each node's own HOME,
    which only a sandbox started for that node can arrange)."""
    if not sys.platform.startswith("linux") or not hasattr(socket, "send_fds"):
        return False
    iso = request.isolation
    if iso is not None and iso.home is not None:
        home = os.path.realpath(iso.home)
        if any(os.path.realpath(p).startswith(home.rstrip("/") + "/") for p in iso.read_only):
            return False
    return True


def workspace_roots(request: ExecRequest) -> tuple[str, ...]:
    """The directories a zygote for `request` sees: where the run makes workspaces."""
    parent = Path(request.workspace).resolve().parent
    roots = [Path(r).resolve() for r in request.workspace_roots]
    return tuple(str(r) for r in (roots if parent in roots else [parent, *roots]))


def server_key(request: ExecRequest, preload: tuple[str, ...]) -> tuple:
    """Requests with the same key can be forked from the same zygote."""
    return (
        workspace_roots(request),
        request.python,
        request.isolation,
        tuple(request.env_pass),
        request.cpus,
        tuple(sorted(request.extra_env.items())),
        preload,
    )


class ForkServer:
    """The zygote for one run setup (see `server_key`), and the way to ask it for a child."""

    def __init__(self, request: ExecRequest, environ: Mapping[str, str], preload: tuple[str, ...]):
        self.preload = preload
        self.environ = dict(environ)
        self.roots = workspace_roots(request)
        for root in self.roots:  # bound into the zygote's sandbox, so they must exist
            Path(root).mkdir(parents=True, exist_ok=True)
        self.sandboxed = request.isolation is not None
        self.failed: dict[str, str] = {}
        self.private_tmp = [p for p in PRIVATE_TMP if os.path.isdir(p) and not os.path.islink(p)]
        self.replay: list[list[str]] = []  # what bwrap mounted inside the private temp dirs (see mounts_under)
        self._ready = threading.Event()
        self._dead = threading.Event()
        self._send_lock = threading.Lock()
        self._control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._errors = tempfile.TemporaryFile()
        command, env = self._command(request, theirs.fileno())
        try:
            self.proc = subprocess.Popen(
                command,
                env=env,
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._errors,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )
        finally:
            theirs.close()
        threading.Thread(target=self._await_ready, name="aide-zygote-ready", daemon=True).start()

    def _command(self, request: ExecRequest, control_fd: int) -> tuple[list[str], dict[str, str]]:
        iso = request.isolation
        args = [
            str(ZYGOTE),
            str(control_fd),
            "1" if iso is not None else "0",
            "1" if iso is not None and iso.network else "0",
            ",".join(self.preload),
        ]
        if iso is None:
            env, _ = child_env(
                self.environ,
                request.extra_env,
                env_pass=request.env_pass,
                cpus=request.cpus,
                home=self.environ.get("HOME"),
            )
            env["AIDE_PARENT_PID"] = str(os.getpid())
            return [request.python, *args], env
        env, _ = child_env(self.environ, request.extra_env, env_pass=request.env_pass, cpus=request.cpus, home="/tmp")
        interpreter = describe_interpreter(request.python, tuple(sorted((k, v) for k, v in env.items() if k != "HOME")))
        command = bwrap_command(
            [interpreter.executable, *args],
            Path(self.roots[0]),
            Path("/tmp"),
            iso,
            interpreter,
            (ZYGOTE, LAUNCHER),
            also_writable=tuple(Path(r) for r in self.roots[1:]),
            cover_proc=False,
        )
        # The zygote alone keeps the capabilities to build each child's view, inside a user
        # namespace of its own; the children drop them all before any generated code runs.
        caps = ["--unshare-user", "--uid", str(os.getuid()), "--gid", str(os.getgid())]
        for cap in ZYGOTE_CAPS:
            caps += ["--cap-add", cap]
        at = command.index("--cap-drop")
        command = command[:at] + caps + command[at + 2 :]
        self.replay = mounts_under(command, self.private_tmp, list(self.roots))
        return command, env

    def _await_ready(self) -> None:
        try:
            message = self._control.recv(MAX_MESSAGE)
        except OSError:
            message = b""
        if message.startswith(b"ready "):
            try:
                self.failed = {str(k): str(v) for k, v in json.loads(message[6:]).get("failed", {}).items()}
            except (ValueError, AttributeError):
                pass
            self._ready.set()
            return
        if self._dead.is_set():  # closed before it was ready: nothing went wrong
            return
        self._dead.set()
        try:
            self._errors.seek(0)
            why = self._errors.read().decode("utf-8", "replace").strip()[-2000:]
        except (OSError, ValueError):
            why = "(its error output is gone)"
        log.warning("the fork server did not start; nodes start cold: %s", why)

    @property
    def ready(self) -> bool:
        """Its preloads are imported: from now on a fork is a matter of milliseconds."""
        return self._ready.is_set()

    @property
    def alive(self) -> bool:
        return not self._dead.is_set() and self.proc.poll() is None

    def fork(self, request: ExecRequest, environ: Mapping[str, str]) -> ForkedLaunch:
        """Ask for a child for `request` (it waits for its script); raises ForkServerDead."""
        if not self.alive:
            raise ForkServerDead()
        return ForkedLaunch(self, request, environ)

    def send(self, message: bytes, fds: list[int]) -> None:
        with self._send_lock:
            try:
                socket.send_fds(self._control, [message], fds)
            except OSError as exc:
                self._dead.set()
                raise ForkServerDead() from exc

    def close(self) -> None:
        """End the zygote and, with it, every child it forked (their namespaces are inside its own)."""
        self._dead.set()
        try:
            self._control.close()
        except OSError:
            pass
        try:
            ProcessTree(self.proc.pid).kill_all()
        except Exception:  # noqa: BLE001 - already gone
            pass
        self.proc.wait()
        self._errors.close()


class ForkedProcess:
    """The host's view of a forked child: enough of `subprocess.Popen` for `LocalJob`."""

    def __init__(self, job: socket.socket, stdout_fd: int, stderr_fd: int):
        self._job = job
        self.stdin = None
        self.stdout = os.fdopen(stdout_fd, "rb", buffering=0)
        self.stderr = os.fdopen(stderr_fd, "rb", buffering=0)
        self.returncode: int | None = None
        self.error: str | None = None
        self._pid: int | None = None
        self.started_at: float | None = None  # when its pid arrived: the zygote's imports are in by then
        self._ended = False  # the job socket said exit/error or reached EOF
        self._lock = threading.Lock()

    def _receive(self, timeout: float | None) -> bool:
        """Take one message (under the lock); False if none came within `timeout`."""
        if self._ended:
            return True
        if timeout is not None and not select.select([self._job], [], [], timeout)[0]:
            return False
        try:
            message, ancillary, _flags, _addr = self._job.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(_CRED.size))
        except OSError:
            message, ancillary = b"", []
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and self._pid is None:
                self._pid = _CRED.unpack(data[: _CRED.size])[0]
                self.started_at = time.time()
        if message.startswith(b"exit "):
            try:
                self.returncode = int(message[5:])
            except ValueError:
                self.error = "the node's init reported a malformed exit status"
            self._ended = True
        elif message.startswith(b"error "):
            self.error = message[6:].decode("utf-8", "replace")
            self._ended = True
        elif not message:  # EOF: the child died without a word (killed)
            self._ended = True
        return True

    def started(self, timeout: float) -> bool:
        """Wait until the child has reported (its pid known); False if it failed or took too long."""
        with self._lock:
            while self._pid is None and not self._ended:
                if not self._receive(timeout):
                    return False
            return self._pid is not None and self.error is None

    @property
    def pid(self) -> int:
        if self._pid is None:
            raise ProcessLookupError("the forked child has not started")
        return self._pid

    @property
    def ended(self) -> bool:
        """Whether the child has said its last (exit, error) or is gone; never blocks."""
        with self._lock:
            while not self._ended and self._receive(0):
                pass
        return self._ended

    def wait(self, timeout: float | None = None) -> int | None:
        with self._lock:
            while not self._ended:
                if not self._receive(timeout):
                    return None
            if self.returncode is None:
                self.returncode = -9  # killed: the job socket closed without an exit status
            return self.returncode

    def send(self, data: bytes) -> bool:
        try:
            self._job.send(data)
            return True
        except OSError:
            return False

    def close(self) -> None:
        try:
            self._job.close()
        except OSError:
            pass


class ForkedLaunch:
    """A node's forked child, waiting for its script: what `LocalJob` needs of a started launcher."""

    root_rss = False  # the child's init is a fork of the zygote: its pages are the script's, not extra memory

    def __init__(self, server: ForkServer, request: ExecRequest, environ: Mapping[str, str]):
        self.server = server
        self.request = request
        self.workspace = Path(request.workspace).resolve()
        hidden = launcher_area(self.workspace)
        self.channel = LauncherChannel()
        self.cgroup: NodeCgroup | None = None  # made when the script is named (confine)
        home = hidden / PRIVATE_HOME if request.isolation is not None else None
        if home is not None:
            home.mkdir(exist_ok=True)
        env, self.secrets = child_env(
            environ,
            request.extra_env,
            env_pass=request.env_pass,
            cpus=request.cpus,
            home=str(home) if home is not None else environ.get("HOME"),
        )
        job = {
            "workspace": str(self.workspace),
            "roots": list(server.roots),
            "private_tmp": server.private_tmp,
            "replay": server.replay,
            "proc_read_only": list(PROC_READ_ONLY),
            "tmpfs_size": tmpfs_bytes(request),
            # RLIMIT_NPROC only where no cgroup will count the node's tasks (see confine)
            "limits": limits_env(request, counted=detect() is not None),
            "env": env,
        }
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        mine.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        try:
            server.send(json.dumps(job).encode("utf-8"), [out_w, err_w, theirs.fileno(), self.channel.write_fd])
        except ForkServerDead:
            for fd in (out_r, err_r):
                os.close(fd)
            mine.close()
            self.channel.close()
            raise
        finally:
            for fd in (out_w, err_w):
                os.close(fd)
            theirs.close()
            self.channel.writer_given()
        self.proc = ForkedProcess(mine, out_r, err_r)

    def started(self, timeout: float = START_TIMEOUT) -> bool:
        ok = self.proc.started(timeout)
        if ok:  # where a later aide-tui looks for leftovers (kill_leftovers), as for a cold start
            record_session(self.workspace, self.proc.pid)
        elif self.proc.error:
            log.warning("a forked node did not start (%s); it starts cold", self.proc.error)
        return ok

    def confine(self, request: ExecRequest) -> bool:
        """Put the child (its init and the waiting script process: nothing else exists yet, and
        nothing forks before the script is named) into a cgroup of its own with the request's
        limits; False if it cannot be held there (it is then ended and the node starts cold)."""
        if not self.started():
            return False
        self.cgroup = NodeCgroup.create(self.workspace)
        if self.cgroup is None:
            return True  # no cgroups here: RLIMIT_NPROC and sized tmpfs, set at fork time, hold
        self.cgroup.set_limits(request.memory_limit_mb, request.pids_limit)
        try:
            init = psutil.Process(self.proc.pid)
            pids = [init.pid, *(child.pid for child in init.children(recursive=True))]
        except psutil.Error:
            return False
        return self.cgroup.adopt(pids) and set(self.cgroup.members()) >= set(pids)

    def is_ready(self) -> bool:
        """The child has reported (it is a fork of a zygote whose imports are in)."""
        self.proc.ended  # noqa: B018 - takes the messages already there, never blocks
        return self.proc.started_at is not None

    def ready_at(self) -> float | None:
        return self.proc.started_at

    def exception(self) -> dict | None:
        return self.channel.message(EXCEPTION)

    def hand_over(self, script: str) -> bool:
        """Name the script to the waiting child; False if it is gone."""
        return self.proc.send(script.encode("utf-8"))

    @property
    def pid(self) -> int | None:
        """Its init's pid as aide-tui sees it; None until it has reported."""
        return self.proc._pid

    def exited(self) -> bool:
        return self.proc.ended

    def end(self) -> None:
        """Kill the child and everything it started, close its pipes and socket.

        A child that has not reported yet has run nothing of the script: closing its socket
        makes it exit.  One that marked itself ready reports a moment later; its pid is
        taken first, so that it is killed now rather than soon."""
        if self.pid is None:  # a report already sent is taken, so a child that is there dies now
            self.proc.started(timeout=0)
        if self.cgroup is not None:
            self.cgroup.remove()
        if self.pid is not None:
            try:
                ProcessTree(self.pid).kill_all()
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.proc.close()
        self.channel.close()
        for pipe in (self.proc.stdout, self.proc.stderr):
            try:
                pipe.close()
            except OSError:
                pass


class ForkedWarmStart(WarmHandle):
    """A warm start served by a fork server: the same handle `LocalExecutor.warm_up` returns."""

    def __init__(self, launch: ForkedLaunch):
        super().__init__(launch, launch.server.preload)
        self._server = launch.server

    def failed_preloads(self) -> dict[str, str]:
        return dict(self._server.failed)

    def _hand_over(self, launch: ForkedLaunch, script: str) -> bool:
        return launch.started() and not launch.exited() and launch.hand_over(script)
