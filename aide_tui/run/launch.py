"""Starting the launcher process for a node: cold (the script runs at once) or warm.

A warm start exists because most of a typical node's run is a fresh
interpreter importing numpy, pandas and scikit-learn again (about 2.2 s of a
2.25 s node on a 2-core machine).  The usual warm start is a fork of the
run's zygote (forkserver.py), which has imported them once.  Where that
cannot run, the node's own interpreter is started here ahead of time (while
the model writes the code) in the node's workspace, inside the node's
sandbox and environment, and imports those modules; when the code arrives,
the launcher is told the script's name and runs it as ``__main__`` exactly
as a cold start would (see launcher.py).  Either way each node gets its own
fresh process: nothing is shared between nodes, and a warm process that is
not used is killed with everything it started.  `WarmHandle` is what both
kinds of warm start hand to `LocalJob`.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .bwrap import PROBE_TIMEOUT, bwrap_command, describe_interpreter
from .cgroup import NodeCgroup
from .channel import EXCEPTION, READY, LauncherChannel
from .executor import ExecRequest
from .sandbox import ProcessTree, child_env
from .workspace import HIDDEN_DIR, host_record

LAUNCHER = Path(__file__).with_name("launcher.py").resolve()
SESSION_RECORD = "session"  # host_record(workspace, SESSION_RECORD): outside the script's view
PRIVATE_HOME = "home"  # the sandboxed script's HOME, inside the hidden area (never an output)

# What solutions usually import, heaviest first; only those the interpreter has are preloaded.
STANDARD_PRELOAD = (
    "numpy",
    "pandas",
    "scipy",
    "sklearn",
    "sklearn.model_selection",
    "sklearn.linear_model",
    "sklearn.ensemble",
    "sklearn.metrics",
    "sklearn.preprocessing",
    "lightgbm",
    "xgboost",
)


def launcher_area(workspace: Path) -> Path:
    """The workspace's hidden area (the sandboxed script's HOME lives there)."""
    hidden = workspace / HIDDEN_DIR
    hidden.mkdir(parents=True, exist_ok=True)
    return hidden


def record_session(workspace: Path, pid: int) -> None:
    """Note the node's session leader where a later aide-tui looks for leftovers if this one is
    killed (kill_leftovers): in the run's directory, where no script can write (`host_record`)."""
    record = host_record(workspace, SESSION_RECORD)
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(str(pid), encoding="utf-8")
    except OSError:
        pass


def limits_env(request: ExecRequest, counted: bool) -> str:
    """``AIDE_LIMITS`` for the launcher: the largest file (the disk budget) and, where no cgroup
    counts the node's tasks, RLIMIT_NPROC (see launcher.confine)."""
    limits = []
    if request.disk_limit_mb:
        limits.append(f"fsize={request.disk_limit_mb * 1024 * 1024}")
    if not counted and request.pids_limit:
        limits.append(f"nproc={request.pids_limit + _user_tasks()}")
    return ",".join(limits)


def _user_tasks() -> int:
    """This user's processes and threads now: RLIMIT_NPROC counts them all, not the node's."""
    import psutil

    uid, count = os.getuid(), 0
    for proc in psutil.process_iter(["uids", "num_threads"]):
        uids = proc.info.get("uids")
        if uids is not None and uids.real == uid:
            count += proc.info.get("num_threads") or 1
    return count


def tmpfs_bytes(request: ExecRequest) -> int | None:
    """Size of each private tmpfs: the node's memory cap (the kernel refuses writes past it)."""
    return request.memory_limit_mb * 1024 * 1024 if request.memory_limit_mb else None


class LauncherProcess:
    """The launcher started for `request`: running its script, or (with `preload`) warm and waiting."""

    root_rss = True  # its tree's root is bwrap or the launcher itself: its memory is the node's

    def __init__(self, request: ExecRequest, environ: Mapping[str, str], preload: tuple[str, ...] | None = None):
        self.request = request
        self.workspace = Path(request.workspace).resolve()
        hidden = launcher_area(self.workspace)
        self.channel = LauncherChannel()
        self.cgroup = NodeCgroup.create(self.workspace)
        if self.cgroup is not None:
            self.cgroup.set_limits(request.memory_limit_mb, request.pids_limit)
        fd = str(self.channel.write_fd)
        if preload is None:
            launch = [str(LAUNCHER), request.script, fd]
        else:
            launch = [str(LAUNCHER), "--warm", fd, ",".join(preload)]
        command, env = self._command(request, environ, hidden, launch)
        env["AIDE_LIMITS"] = limits_env(request, counted=self.cgroup is not None)
        if self.cgroup is not None:
            command = self.cgroup.join_command(command)
        try:
            self.proc = subprocess.Popen(
                command,
                cwd=self.workspace,
                env=env,
                stdin=subprocess.DEVNULL if preload is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
                pass_fds=(self.channel.write_fd,),
            )
        except BaseException:
            self.channel.close()
            if self.cgroup is not None:
                self.cgroup.remove()
            raise
        finally:
            self.channel.writer_given()
        record_session(self.workspace, self.proc.pid)

    def confine(self, request: ExecRequest) -> bool:
        """The script's own limits, set before it is named (a warm start was made for another)."""
        if self.cgroup is not None:
            self.cgroup.set_limits(request.memory_limit_mb, request.pids_limit)
        return True

    def is_ready(self) -> bool:
        """Its preloads are imported (the launcher said so)."""
        return self.channel.message(READY) is not None

    def ready_at(self) -> float | None:
        """When its preloads were in (the launcher's clock), None before."""
        ready = self.channel.message(READY)
        at = ready.get("at") if ready else None
        return float(at) if isinstance(at, (int, float)) else None

    def exception(self) -> dict | None:
        return self.channel.message(EXCEPTION)

    def _command(
        self, request: ExecRequest, environ: Mapping[str, str], hidden: Path, launch: list[str]
    ) -> tuple[list[str], dict[str, str]]:
        """The command line and environment: the launcher, inside bwrap when the request says so."""
        iso = request.isolation
        if iso is None:
            env, self.secrets = child_env(
                environ, request.extra_env, env_pass=request.env_pass, cpus=request.cpus, home=environ.get("HOME")
            )
            env["AIDE_PARENT_PID"] = str(os.getpid())  # the launcher dies with us (and removes this)
            return [request.python, *launch], env
        home = hidden / PRIVATE_HOME
        home.mkdir(exist_ok=True)
        env, self.secrets = child_env(
            environ, request.extra_env, env_pass=request.env_pass, cpus=request.cpus, home=str(home)
        )
        # Keyed without HOME (it differs per node), so the probe runs once per run, not per node.
        interpreter = describe_interpreter(request.python, tuple(sorted((k, v) for k, v in env.items() if k != "HOME")))
        # bwrap's --die-with-parent and PID namespace replace the launcher's own parent check.
        return bwrap_command(
            [interpreter.executable, *launch],
            self.workspace,
            home,
            iso,
            interpreter,
            (LAUNCHER,),
            tmpfs_bytes=tmpfs_bytes(request),
        ), env

    @property
    def pid(self) -> int:
        return self.proc.pid

    def exited(self) -> bool:
        """Whether the process has ended, without reaping it (its pid stays ours)."""
        try:
            return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def end(self) -> None:
        """Kill the process and everything it started, reap it, close its pipes."""
        if self.cgroup is not None:
            self.cgroup.remove()
        try:
            ProcessTree(self.proc.pid).kill_all()
        except Exception:  # noqa: BLE001 - psutil.NoSuchProcess: already gone
            pass
        self.proc.wait()
        self.channel.close()
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass


def _setup(request: ExecRequest) -> tuple:
    """What a warm process was started with; the script's request must match it to use it."""
    return (
        Path(request.workspace).resolve(),
        request.python,
        request.isolation,
        tuple(request.env_pass),
        request.cpus,
        tuple(sorted(request.extra_env.items())),
    )


class WarmHandle:
    """An interpreter started ahead for one node, waiting for its script: what `warm_up` returns.

    Subclasses say how the script is handed over (`_hand_over`) and which preloads failed."""

    def __init__(self, launch, preload: tuple[str, ...]):
        self.preload = preload
        self._launch = launch  # a LauncherProcess or a ForkedLaunch: request, is_ready(), pid, exited(), end()
        self._lock = threading.Lock()

    @property
    def pending(self) -> bool:
        """Neither taken by a job nor discarded yet."""
        return self._launch is not None

    @property
    def ready(self) -> bool:
        """Its preloads are imported (informational: a script handed over earlier just waits for them)."""
        launch = self._launch
        return launch is not None and launch.is_ready()

    @property
    def pid(self) -> int | None:
        launch = self._launch
        return launch.pid if launch is not None else None

    def failed_preloads(self) -> dict[str, str]:
        raise NotImplementedError

    def _hand_over(self, launch, script: str) -> bool:
        """Tell the waiting process its script; False if it cannot take it (it is gone)."""
        raise NotImplementedError

    def take(self, request: ExecRequest):
        """Hand the process to the job running `request`, telling it the script; None (and the
        process ended) if it was started for another setup or cannot take it."""
        with self._lock:
            launch, self._launch = self._launch, None
        if launch is None:
            return None
        if (
            _setup(launch.request) != _setup(request)
            or not launch.confine(request)
            or not self._hand_over(launch, request.script)
        ):
            launch.end()
            return None
        launch.request = request
        return launch

    def discard(self) -> None:
        """Not needed after all (plan changed, pause, stop, coder failed): end it and all it started."""
        with self._lock:
            launch, self._launch = self._launch, None
        if launch is not None:
            launch.end()


class WarmStart(WarmHandle):
    """A node's own interpreter, started ahead with its modules imported, waiting for the script."""

    def __init__(self, request: ExecRequest, environ: Mapping[str, str], preload: tuple[str, ...]):
        launch = LauncherProcess(request, environ, preload)
        super().__init__(launch, preload)
        self._started = launch

    def failed_preloads(self) -> dict[str, str]:
        """The preloads that raised on import, {module: "ExcType: message"}; empty until the
        launcher has tried them all (read it once its script has run)."""
        data = self._started.channel.message(READY) or {}
        try:
            return {str(name): str(why) for name, why in dict(data.get("failed") or {}).items()}
        except (ValueError, TypeError, AttributeError):
            return {}

    def _hand_over(self, launch, script: str) -> bool:
        if launch.exited():
            return False
        try:
            launch.proc.stdin.write((script + "\n").encode("utf-8"))
            launch.proc.stdin.close()
        except OSError:  # it died just now
            return False
        return True


_PROBE_MODULES = """
import importlib.metadata as md, importlib.util, json, sys
owners, found = None, {}
for name in sys.argv[1:]:
    top = name.split(".")[0]
    try:
        present = importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        present = False
    if not present:
        continue
    if owners is None:
        try:
            owners = md.packages_distributions()
        except Exception:
            owners = {}
    dist = (owners.get(top) or [top])[0]
    try:
        version = md.version(dist)
    except Exception:
        version = ""
    found[name] = [dist, version]
print(json.dumps({"found": found, "path": [p for p in sys.path if p]}))
"""


@dataclass(frozen=True)
class ModuleProbe:
    """What `python` can import of the names asked about, and where it looks for modules."""

    found: tuple[tuple[str, str, str], ...]  # (module name, distribution, version) of the importable ones
    path: tuple[str, ...]  # its sys.path: a package installed or removed changes one of these directories


@functools.lru_cache(maxsize=8)
def probe_modules(python: str, names: tuple[str, ...]) -> ModuleProbe | None:
    """Which of `names` `python` can import (by their top-level package), with the distribution
    and version that provide each; None if the interpreter cannot be asked."""
    try:
        done = subprocess.run(
            [python, "-c", _PROBE_MODULES, *names],
            cwd="/",
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            start_new_session=True,
        )
        answer = json.loads(done.stdout)
        found = tuple((name, str(dist), str(version)) for name, (dist, version) in answer["found"].items())
        return ModuleProbe(found, tuple(str(p) for p in answer["path"]))
    except (OSError, ValueError, TypeError, KeyError, subprocess.TimeoutExpired):
        return None


def installed_modules(python: str, names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Which of `names` `python` can import (by their top-level package), and which not."""
    probe = probe_modules(python, names)
    if probe is None:
        return (), names
    present = {name for name, _, _ in probe.found}
    return tuple(n for n in names if n in present), tuple(n for n in names if n not in present)


MAX_REASON_CHARS = 120


def without_failed(preload: tuple[str, ...], failed: dict[str, str]) -> tuple[tuple[str, ...], str | None]:
    """`preload` less the modules that raised on import, and a one-line note naming those not
    dropped before (so each failure is noted once, however many warm processes met it)."""
    dropped = {name: why for name, why in failed.items() if name in preload}
    if not dropped:
        return preload, None
    reasons = ", ".join(f"{name} ({why[:MAX_REASON_CHARS]})" for name, why in dropped.items())
    return tuple(m for m in preload if m not in dropped), f"preload skipped from now on, it failed to import: {reasons}"


def choose_preload(setting: list[str] | None, python: str) -> tuple[tuple[str, ...], str | None]:
    """The modules to preload for a run and, if some were asked for but are missing, a one-line note.

    `setting` None means the standard list, filtered silently to what `python` has installed.
    """
    if setting is not None and not setting:
        return (), None
    names = tuple(setting) if setting is not None else STANDARD_PRELOAD
    present, missing = installed_modules(python, names)
    if setting is None or not missing:
        return present, None
    return present, f"preload: {', '.join(missing)} not installed for {python}; skipped"
