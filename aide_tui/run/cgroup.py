"""Kernel-enforced limits for one node: a cgroup that holds its whole process tree.

Why a cgroup and not only the sampled RSS cap: RSS misses what a script keeps
in tmpfs (its private ``/dev/shm`` and ``/tmp``) or in a memfd, and nothing
sampled stops 2,000 processes or 5,000 threads before they exist.  A memory
cgroup charges those pages to the node and the kernel stops the node at its
cap; a pids cgroup refuses the fork or thread past `DEFAULT_PIDS` (threads
count).  Killing "the node" means killing every process the kernel lists in
its cgroup: never a pid or session id the script could have written.

Where the node's cgroup is made: below aide-tui's own cgroup of each
controller (as ``/proc/self/cgroup`` names it), so whatever limits aide-tui
runs under still hold for its nodes.

* cgroup v1 (``/sys/fs/cgroup/memory/…`` and ``/sys/fs/cgroup/pids/…``):
  creating a child needs write access there, i.e. root.
  ``memory.limit_in_bytes`` (and ``memory.memsw.limit_in_bytes`` where swap
  is accounted) and ``pids.max``.
* cgroup v2: ``memory.max`` (``memory.swap.max`` 0) and ``pids.max`` in a
  child of aide-tui's cgroup, which works as root or where systemd delegated
  that cgroup to the user (``systemd-run --user --scope -p Delegate=yes``)
  and the memory and pids controllers are enabled for its children.

Where neither works, `detect` returns None and the launcher falls back to
RLIMIT_NPROC and size-capped tmpfs mounts (see launcher.py and the README).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import os
import shlex
import signal
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")

KILL_TIMEOUT = 5.0
_SERIAL = itertools.count(1)


@dataclass(frozen=True)
class CgroupHost:
    """Where this process may make node cgroups: the parent directory per controller."""

    version: int  # 1 or 2
    memory: Path  # parent directory for the memory controller (v2: the one directory)
    pids: Path  # parent directory for the pids controller (v2: the same directory)


def _own_paths() -> dict[str, str]:
    """/proc/self/cgroup as {controller: path}; v2's entry is under the key ''."""
    paths: dict[str, str] = {}
    try:
        text = Path("/proc/self/cgroup").read_text(encoding="utf-8")
    except OSError:
        return paths
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(","):
                paths[controller] = parts[2]
    return paths


def _can_make_children(parent: Path) -> bool:
    probe = parent / f"aide-probe-{os.getpid()}"
    try:
        probe.mkdir()
    except OSError:
        return False
    with contextlib.suppress(OSError):
        probe.rmdir()
    return True


def _v2_host(own: dict[str, str]) -> CgroupHost | None:
    if not (CGROUP_FS / "cgroup.controllers").is_file() or "" not in own:
        return None
    parent = CGROUP_FS / own[""].lstrip("/")
    control = parent / "cgroup.subtree_control"
    try:
        enabled = control.read_text(encoding="utf-8").split()
        if not {"memory", "pids"} <= set(enabled):
            control.write_text("+memory +pids", encoding="utf-8")  # EBUSY where processes sit in `parent`
    except OSError:
        return None
    return CgroupHost(2, parent, parent) if _can_make_children(parent) else None


def _v1_host(own: dict[str, str]) -> CgroupHost | None:
    if "memory" not in own or "pids" not in own:
        return None
    memory = CGROUP_FS / "memory" / own["memory"].lstrip("/")
    pids = CGROUP_FS / "pids" / own["pids"].lstrip("/")
    if not (memory / "memory.limit_in_bytes").is_file():
        return None
    return CgroupHost(1, memory, pids) if _can_make_children(memory) and _can_make_children(pids) else None


@functools.lru_cache(maxsize=1)
def detect() -> CgroupHost | None:
    """Where node cgroups can be made on this machine, or None (probed once per process)."""
    own = _own_paths()
    return _v2_host(own) or _v1_host(own)


def sweep(host: CgroupHost) -> int:
    """Remove the empty node cgroups an aide-tui killed outright left behind (the pid in their
    name is gone).  Only empty ones: the kernel refuses to remove a cgroup with a process in it,
    so this never touches a running node.  Returns how many went."""
    removed = 0
    for parent in {host.memory, host.pids}:
        try:
            names = [p for p in parent.iterdir() if p.name.startswith("aide-") and p.is_dir()]
        except OSError:
            continue
        for directory in names:
            parts = directory.name.split("-")
            if len(parts) == 4 and parts[2].isdigit() and not os.path.exists(f"/proc/{parts[2]}"):
                with contextlib.suppress(OSError):
                    directory.rmdir()
                    removed += 1
    return removed


def cgroup_prefix(workspace: Path) -> str:
    """The start of the names of the workspace's cgroups: a resumed run finds what a killed
    aide-tui left running there by name, with nothing read from the workspace."""
    digest = hashlib.sha256(str(Path(workspace).resolve()).encode()).hexdigest()[:20]
    return f"aide-{digest}-"


class NodeCgroup:
    """One node's cgroup (one directory per controller on v1)."""

    def __init__(self, host: CgroupHost, name: str):
        self.host = host
        self.name = name
        self.dirs = [host.memory / name] if host.version == 2 else [host.memory / name, host.pids / name]

    @classmethod
    def create(cls, workspace: Path) -> NodeCgroup | None:
        """A new cgroup for one start of the node in `workspace` (each start its own: ending
        one never touches another); None where cgroups cannot be made."""
        host = detect()
        if host is None:
            return None
        serial = next(_SERIAL)
        if serial == 1:
            sweep(host)
        group = cls(host, f"{cgroup_prefix(workspace)}{os.getpid()}-{serial}")
        try:
            for directory in group.dirs:
                directory.mkdir()
        except OSError:
            group.remove()
            return None
        return group

    @classmethod
    def leftovers(cls, workspace: Path) -> list[NodeCgroup]:
        """The cgroups made for `workspace` that are still there (left by a killed aide-tui)."""
        host = detect()
        if host is None:
            return []
        prefix = cgroup_prefix(workspace)
        names: set[str] = set()
        for parent in {host.memory, host.pids}:
            with contextlib.suppress(OSError):
                names.update(p.name for p in parent.iterdir() if p.name.startswith(prefix) and p.is_dir())
        return [cls(host, name) for name in sorted(names)]

    # -- files
    @property
    def _memory(self) -> Path:
        return self.dirs[0]

    @property
    def _pids(self) -> Path:
        return self.dirs[-1]

    def _write(self, path: Path, value: str) -> bool:
        try:
            path.write_text(value, encoding="utf-8")
            return True
        except OSError:
            return False

    def _read(self, path: Path) -> str:
        try:
            return path.read_text(encoding="utf-8")
        except OSError:
            return ""

    def set_limits(self, memory_mb: int | None, pids_max: int | None) -> None:
        """Cap the node's memory (tmpfs and memfd pages included, no swap) and its tasks."""
        if memory_mb is not None:
            limit = str(int(memory_mb) * 1024 * 1024)
            if self.host.version == 2:
                self._write(self._memory / "memory.max", limit)
                self._write(self._memory / "memory.swap.max", "0")
            else:
                # memory <= memory+swap at every step: raising needs memsw first, lowering memory first
                memory, memsw = self._memory / "memory.limit_in_bytes", self._memory / "memory.memsw.limit_in_bytes"
                self._write(memory, limit)
                if memsw.exists():
                    self._write(memsw, limit)
                    self._write(memory, limit)
        self._write(self._pids / "pids.max", str(pids_max) if pids_max else "max")

    def join_command(self, command: list[str]) -> list[str]:
        """`command` started so that it is inside the cgroup before it runs: a shell joins
        it, then execs the command (it cannot fork before it is in)."""
        joins = " && ".join(f"echo $$ > {shlex.quote(str(d / 'cgroup.procs'))}" for d in self.dirs)
        return ["/bin/sh", "-c", f'{joins} && exec "$@"', "aide-node", *command]

    def adopt(self, pids: list[int]) -> bool:
        """Move already-started processes in (a forked warm node, before its script is named)."""
        ok = True
        for directory in self.dirs:
            for pid in pids:
                ok = self._write(directory / "cgroup.procs", str(pid)) and ok
        return ok

    def members(self) -> list[int]:
        """The processes the kernel counts in the node (those of every controller's directory)."""
        found: set[int] = set()
        for directory in self.dirs:
            found.update(int(p) for p in self._read(directory / "cgroup.procs").split() if p.isdigit())
        return sorted(found)

    # -- what happened
    def oom_kills(self) -> int:
        """How many processes the kernel killed at the memory cap."""
        text = self._read(self._memory / ("memory.events" if self.host.version == 2 else "memory.oom_control"))
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill" and value.strip().isdigit():
                return int(value)
        return 0

    def forks_refused(self) -> int:
        """How many forks or threads the pids cap refused."""
        for line in self._read(self._pids / "pids.events").splitlines():
            key, _, value = line.partition(" ")
            if key == "max" and value.strip().isdigit():
                return int(value)
        return 0

    def peak_memory_mb(self) -> float:
        name = "memory.peak" if self.host.version == 2 else "memory.max_usage_in_bytes"
        text = self._read(self._memory / name).strip()
        return int(text) / (1024 * 1024) if text.isdigit() else 0.0

    # -- ending it
    def kill(self, timeout: float = KILL_TIMEOUT) -> bool:
        """SIGKILL everything in the node until the kernel lists nothing; True when empty."""
        if self.host.version == 2 and (self._memory / "cgroup.kill").exists():
            self._write(self._memory / "cgroup.kill", "1")
        deadline = time.monotonic() + timeout
        while True:
            members = self.members()
            if not members:
                return True
            for pid in members:  # listed by the kernel as the node's: a process of the node
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)

    def remove(self) -> None:
        """Kill what is left and remove the cgroup (its counters go with it)."""
        self.kill()
        for directory in self.dirs:
            for _ in range(100):  # rmdir is refused while a killed task is still exiting
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)
