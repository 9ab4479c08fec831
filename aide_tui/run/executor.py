"""The executor interface: submit a script, stream its lines, cancel, get a result.

Only `run/` starts processes.  The engine talks to an `Executor`, never to a
subprocess, so a cluster backend (e.g. Ray Jobs) can replace `LocalExecutor`
and several nodes can run at once: every job is its own object, there is no
global "current node".
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Literal, Protocol, TypeVar

DEFAULT_PIDS = 1024  # far above what ML scripts start, far below a fork bomb
DEFAULT_DISK_MB = 2048  # a node's workspace (models, predictions, caches)

LineSink = Callable[[Literal["stdout", "stderr"], str], None]


class ExecutorUnavailable(Exception):
    """The executor cannot run anything (no cluster at that address, Ray missing): a
    one-line reason for the user, raised before the first node."""


@dataclass(frozen=True)
class Isolation:
    """What the sandbox must enforce for a request (see run/bwrap.py for how).

    Everything outside the workspace is read-only; `hide` are directories the
    script must not see at all (the project, its git repository, the run's
    records), `read_only` are paths the user opened to it (``sandbox_read``).
    """

    hide: tuple[Path, ...] = ()
    read_only: tuple[Path, ...] = ()
    network: bool = False
    home: Path | None = None  # the user's real home (one of `hide`); sandbox_read paths under it
    # are also shown under the script's private HOME


@dataclass
class ExecRequest:
    workspace: Path  # the node's own directory; the script's cwd
    script: str = "solution.py"  # relative to workspace
    timeout: float = 600.0  # wall-clock seconds
    memory_limit_mb: int | None = None  # cap on the whole process tree's RSS (and its cgroup's memory)
    pids_limit: int | None = DEFAULT_PIDS  # processes + threads of the node (cgroup pids.max)
    disk_limit_mb: int | None = DEFAULT_DISK_MB  # bytes the script may leave in its workspace
    output_limit_bytes: int = 256 * 1024  # captured output kept (head + tail)
    python: str = field(default_factory=lambda: sys.executable)
    extra_env: dict[str, str] = field(default_factory=dict)  # added after the allow-list
    env_pass: tuple[str, ...] = ()  # names of the caller's variables the user lets through (env_pass)
    cpus: int | None = None  # the node's share of cores: sets OMP_NUM_THREADS and the like
    isolation: Isolation | None = None  # None: run unsandboxed
    # Every directory the run makes workspaces in (this one's parent among them): one fork
    # server can then serve them all.  Empty: just this workspace's parent.
    workspace_roots: tuple[Path, ...] = ()


@dataclass
class ExecResult:
    exit_code: int | None  # None when killed
    exc_type: str | None  # e.g. "ValueError" for an uncaught exception
    traceback: str | None
    wall_time: float
    peak_memory_mb: float  # peak RSS of the whole tree, sampled
    killed_reason: str | None  # None, "timeout", "memory limit exceeded: N MiB", "disk limit exceeded: N MiB",
    # "cancelled"
    output: str  # interleaved stdout+stderr as captured, capped (head + marker + tail)
    truncated_bytes: int  # how much was cut from the middle

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and self.killed_reason is None


class Job(Protocol):
    def cancel(self) -> None:
        """Kill the job's whole process tree; result() then reports 'cancelled'."""

    def wait(self, timeout: float | None = None) -> ExecResult | None:
        """Block until finished (or `timeout`), returning the result or None."""

    @property
    def done(self) -> bool: ...


J = TypeVar("J", bound=Job)


class RunningJobs(Generic[J]):
    """The jobs an executor has started and not yet seen finish, so that its `shutdown`
    can end every one of them (several nodes run at once)."""

    def __init__(self) -> None:
        self._jobs: list[J] = []
        self._lock = threading.Lock()

    def add(self, job: J) -> J:
        with self._lock:
            self._jobs = [j for j in self._jobs if not j.done]
            self._jobs.append(job)
        return job

    def end_all(self, timeout: float) -> None:
        """Cancel them all at once, then wait for each (up to `timeout` apiece)."""
        with self._lock:
            jobs, self._jobs = self._jobs, []
        for job in jobs:
            job.cancel()
        for job in jobs:
            job.wait(timeout)


class Executor(Protocol):
    def warm_up(self, request: ExecRequest, preload: tuple[str, ...]) -> object | None:
        """Start `request`'s interpreter ahead, importing `preload`, before the script exists.

        Returns a handle for `submit(..., warm=handle)` (which must then be
        given the same request apart from the script's limits), or None when
        this executor does not warm up.  The handle's ``discard()`` ends an
        unused one.
        """

    def submit(self, request: ExecRequest, on_line: LineSink, warm: object | None = None) -> Job: ...

    def shutdown(self) -> None:
        """Kill everything still running (called on quit)."""
