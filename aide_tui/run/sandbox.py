"""What a generated script may see and how its whole process tree is ended.

Generated code is untrusted.  Where bubblewrap can start, run/bwrap.py walls
it in; this module decides what it is *handed* (its environment) and makes
sure nothing it started outlives it (its process tree), with or without
bubblewrap.

Environment rule (quoted by the README)
---------------------------------------
The script's environment is built from an allow-list; nothing else of
aide-tui's environment reaches it:

* ``PATH``, ``LANG``, ``LC_*``, ``TZ``, ``TERM``, ``LD_LIBRARY_PATH``;
* the interpreter's own variables: ``VIRTUAL_ENV``, ``CONDA_*`` and
  ``PYTHON*`` except the hooks that run code the user did not write into the
  script (``PYTHONSTARTUP``, ``PYTHONINSPECT``, ``PYTHONBREAKPOINT``) and
  ``PYTHONPYCACHEPREFIX`` (caches outside the workspace);
* ``CUDA_*`` and ``NVIDIA_*`` (GPU selection);
* the names the user lists in ``env_pass``, taken as given.

A name from the patterns above that looks like a secret (contains ``KEY``,
``TOKEN``, ``SECRET``, ``PASSWORD``, ``PASSWD``, ``CREDENTIAL`` or ``AUTH``)
is still left out unless ``env_pass`` names it.  Defence in depth: the
values (6+ characters) of every secret-looking variable the script did *not*
get are replaced by ``***`` in everything it prints, so a secret it found
some other way still never reaches a log, the journal or git.

The child always gets ``PYTHONUNBUFFERED=1`` (lines arrive live),
``PYTHONHASHSEED=0`` (reproducible runs), ``MPLBACKEND=Agg`` (no display),
``PYTHONDONTWRITEBYTECODE=1`` (no ``__pycache__`` among its outputs), the
thread variables (``OMP_NUM_THREADS`` and the like) set to its share of
cores, and ``HOME`` where the executor says (a private directory in the
workspace when sandboxed).  ``ExecRequest.extra_env`` is added last: it is
chosen by aide-tui, not by the script.

Process tree
------------
``ProcessTree`` remembers every descendant it has ever sampled, because a
grandchild that calls ``setsid`` leaves the process group and, once its
parent dies, is re-parented away: only a remembered ``psutil.Process``
(which guards against PID reuse) still finds it.  Killing freezes the tree
with SIGSTOP first (a frozen process cannot fork a new escapee), widens the
set until nothing new appears, then sends SIGKILL and waits until every
process is gone or a zombie.  Under bubblewrap the tree's root is ``bwrap``
and the script lives in its own PID namespace: killing the namespace's init
takes everything in it down, setsid or not.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterable, Mapping

import psutil

SECRET_NAME_PARTS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH")
SECRET_NAME_PREFIXES = (
    "ANTHROPIC_",
    "AWS_",
    "OPENAI_",
    "AZURE_",
    "GOOGLE_",
    "GCP_",
    "HF_",
    "HUGGING",
    "GITHUB_",
    "GH_",
    "GITLAB_",
    "SLACK_",
    "STRIPE_",
)
MIN_REDACTED_LENGTH = 6
REDACTION = "***"

ALLOWED_NAMES = re.compile(
    r"^(PATH|LANG|LC_[A-Z_]+|TZ|TERM|LD_LIBRARY_PATH|VIRTUAL_ENV|CONDA_\w+|PYTHON\w*|CUDA_\w+|NVIDIA_\w+)$"
)
UNSAFE_PYTHON_HOOKS = frozenset({"PYTHONSTARTUP", "PYTHONINSPECT", "PYTHONBREAKPOINT", "PYTHONPYCACHEPREFIX"})
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def available_cpus() -> int:
    """Cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except (AttributeError, OSError):
        return max(os.cpu_count() or 1, 1)


FIXED_CHILD_ENV = {
    "PYTHONUNBUFFERED": "1",
    "PYTHONHASHSEED": "0",
    "MPLBACKEND": "Agg",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return any(part in upper for part in SECRET_NAME_PARTS) or upper.startswith(SECRET_NAME_PREFIXES)


def is_allowed_name(name: str) -> bool:
    """Whether the allow-list passes `name` on its own (without env_pass)."""
    return bool(ALLOWED_NAMES.match(name)) and name not in UNSAFE_PYTHON_HOOKS and not is_secret_name(name)


def secret_values(environ: Mapping[str, str], names: Iterable[str]) -> list[str]:
    """Values worth redacting, longest first so a secret containing another is hidden whole."""
    values = {environ[n] for n in names if n in environ and len(environ[n]) >= MIN_REDACTED_LENGTH}
    return sorted(values, key=len, reverse=True)


def redact(text: str, secret_values: Iterable[str]) -> str:
    """Replace every occurrence of each secret value (≥ 6 chars) with '***'."""
    for value in secret_values:
        if len(value) >= MIN_REDACTED_LENGTH and value in text:
            text = text.replace(value, REDACTION)
    return text


def child_env(
    environ: Mapping[str, str],
    extra_env: Mapping[str, str] | None = None,
    *,
    env_pass: Iterable[str] = (),
    cpus: int | None = None,
    home: str | None = None,
) -> tuple[dict[str, str], list[str]]:
    """The script's environment (the allow-list) and the secret values to redact from its output."""
    passed = set(env_pass)
    env = {name: value for name, value in environ.items() if name in passed or is_allowed_name(name)}
    env.update(FIXED_CHILD_ENV)
    if cpus is not None:
        env.update({name: str(max(int(cpus), 1)) for name in THREAD_VARIABLES})
    if home is not None:
        env["HOME"] = home
    env.update(extra_env or {})
    withheld = [name for name in environ if name not in env and is_secret_name(name)]
    return env, secret_values(environ, withheld)


# -- process tree -----------------------------------------------------------

_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess)


def _is_gone(proc: psutil.Process) -> bool:
    """Dead, or a zombie nobody has reaped yet (PID 1 in a container may never reap)."""
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except _GONE:
        return True
    except psutil.AccessDenied:
        return False


class ProcessTree:
    """Every process a script started, remembered across samples, and a way to end them all.

    `root_pid` must be the leader of a new session (``start_new_session=True``)
    and must not be reaped until `kill_all` has run, so that neither its PID
    nor its process-group id can be reused meanwhile.
    """

    def __init__(self, root_pid: int, count_root: bool = True):
        self.root_pid = root_pid
        self.root = psutil.Process(root_pid)
        self.count_root = count_root  # False: the root's pages are its children's too (a forked init)
        self.known: dict[int, psutil.Process] = {}  # descendants ever seen, by pid

    def sample_rss_mb(self) -> float:
        """Remember current descendants; return the summed RSS of the live tree in MiB."""
        total = 0
        try:
            children = self.root.children(recursive=True)
        except (psutil.Error, OSError):
            children = []
        for child in children:
            self.known.setdefault(child.pid, child)
        for proc in [self.root, *self.known.values()] if self.count_root else list(self.known.values()):
            try:
                total += proc.memory_info().rss
            except (psutil.Error, OSError):
                pass
        return total / (1024 * 1024)

    def _members(self) -> dict[int, psutil.Process]:
        """Everything that belongs to the tree right now: remembered, their children, the session."""
        found: dict[int, psutil.Process] = {}
        for proc in [self.root, *self.known.values()]:
            if _is_gone(proc):
                continue
            found[proc.pid] = proc
            try:
                for child in proc.children(recursive=True):
                    found.setdefault(child.pid, child)
            except (psutil.Error, OSError):
                pass
        # Orphans re-parented away between samples are still in our session or group.
        for pid in psutil.pids():
            if pid in found:
                continue
            try:
                if os.getsid(pid) == self.root_pid or os.getpgid(pid) == self.root_pid:
                    found[pid] = psutil.Process(pid)
            except (OSError, psutil.Error):
                pass
        for pid, proc in found.items():
            self.known.setdefault(pid, proc)
        return found

    def kill_all(self, timeout: float = 5.0) -> list[int]:
        """Freeze, widen, SIGKILL and wait; return pids still alive after `timeout` (normally none)."""
        stopped: dict[int, psutil.Process] = {}
        for _ in range(20):  # widen until a pass finds nothing new
            new = {pid: p for pid, p in self._members().items() if pid not in stopped}
            if not new:
                break
            for proc in new.values():
                _send(proc, signal.SIGSTOP)
            stopped.update(new)
        try:
            os.killpg(self.root_pid, signal.SIGKILL)
        except OSError:
            pass
        for proc in stopped.values():
            _send(proc, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        alive = [p for p in stopped.values() if not _is_gone(p)]
        while alive and time.monotonic() < deadline:
            time.sleep(0.01)
            for proc in alive:
                _send(proc, signal.SIGKILL)
            alive = [p for p in alive if not _is_gone(p)]
        return [p.pid for p in alive]


def _send(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)  # psutil refuses if the pid now belongs to someone else
    except (psutil.Error, OSError):
        pass
