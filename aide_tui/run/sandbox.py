"""What a generated script may see and how its whole process tree is ended.

Generated code is untrusted: it runs as the same user as aide-tui, so the
protections here are about *not handing it things* (secrets in the
environment) and *not letting anything outlive it* (its process tree).

Environment rule (quoted by the README)
---------------------------------------
A variable is removed from the script's environment when its name,
compared case-insensitively,

* contains ``KEY``, ``TOKEN``, ``SECRET``, ``PASSWORD``, ``PASSWD``,
  ``CREDENTIAL`` or ``AUTH``, or
* starts with ``ANTHROPIC_``, ``AWS_``, ``OPENAI_``, ``AZURE_``, ``GOOGLE_``,
  ``GCP_``, ``HF_``, ``HUGGING``, ``GITHUB_``, ``GH_``, ``GITLAB_``,
  ``SLACK_`` or ``STRIPE_``.

The values of removed variables that are at least 6 characters long are then
replaced by ``***`` in everything the script prints, so a secret the script
found some other way (a dotfile, ``/proc``) still never reaches a log, the
journal or git.  The child always gets ``PYTHONUNBUFFERED=1`` (lines arrive
live), ``PYTHONHASHSEED=0`` (reproducible runs), ``MPLBACKEND=Agg`` (no
display) and ``PYTHONDONTWRITEBYTECODE=1`` (no ``__pycache__`` among its
outputs); ``ExecRequest.extra_env`` is added after scrubbing, so it is
trusted to be chosen by aide-tui, not by the script.

Process tree
------------
``ProcessTree`` remembers every descendant it has ever sampled, because a
grandchild that calls ``setsid`` leaves the process group and, once its
parent dies, is re-parented away: only a remembered ``psutil.Process``
(which guards against PID reuse) still finds it.  Killing freezes the tree
with SIGSTOP first (a frozen process cannot fork a new escapee), widens the
set until nothing new appears, then sends SIGKILL and waits until every
process is gone or a zombie.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Iterable, Mapping

import psutil

SECRET_NAME_PARTS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH")
SECRET_NAME_PREFIXES = (
    "ANTHROPIC_", "AWS_", "OPENAI_", "AZURE_", "GOOGLE_", "GCP_", "HF_", "HUGGING",
    "GITHUB_", "GH_", "GITLAB_", "SLACK_", "STRIPE_",
)
MIN_REDACTED_LENGTH = 6
REDACTION = "***"

FIXED_CHILD_ENV = {
    "PYTHONUNBUFFERED": "1",
    "PYTHONHASHSEED": "0",
    "MPLBACKEND": "Agg",
    "PYTHONDONTWRITEBYTECODE": "1",
}


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return any(part in upper for part in SECRET_NAME_PARTS) or upper.startswith(SECRET_NAME_PREFIXES)


def scrub_env(environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """Split `environ` into what the script may see and the sorted names removed."""
    clean: dict[str, str] = {}
    removed: list[str] = []
    for name, value in environ.items():
        if is_secret_name(name):
            removed.append(name)
        else:
            clean[name] = value
    return clean, sorted(removed)


def secret_values(environ: Mapping[str, str], removed: Iterable[str]) -> list[str]:
    """Values worth redacting, longest first so a secret containing another is hidden whole."""
    values = {environ[n] for n in removed if n in environ and len(environ[n]) >= MIN_REDACTED_LENGTH}
    return sorted(values, key=len, reverse=True)


def redact(text: str, secret_values: Iterable[str]) -> str:
    """Replace every occurrence of each secret value (≥ 6 chars) with '***'."""
    for value in secret_values:
        if len(value) >= MIN_REDACTED_LENGTH and value in text:
            text = text.replace(value, REDACTION)
    return text


def child_env(
    environ: Mapping[str, str], extra_env: Mapping[str, str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """The script's environment and the secret values to redact from its output."""
    clean, removed = scrub_env(environ)
    clean.update(FIXED_CHILD_ENV)
    clean.update(extra_env or {})
    return clean, secret_values(environ, removed)


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

    def __init__(self, root_pid: int):
        self.root_pid = root_pid
        self.root = psutil.Process(root_pid)
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
        for proc in [self.root, *self.known.values()]:
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
