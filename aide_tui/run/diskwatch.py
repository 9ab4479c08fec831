"""A node's disk budget: what its script leaves in the workspace, watched while it runs.

Why watched and not a quota: a size-capped tmpfs would charge the workspace
to memory and vanish with the node, a loop image needs root and ``mkfs``, and
filesystem quotas are not set up on users' machines.  So the workspace stays
on the disk and the executor measures it, killing the node when it passes the
budget (the reason lands in the node's status).  RLIMIT_FSIZE, set by the
launcher to the same budget, already stops any single file at it.

Walking a workspace every 0.1 s would cost too much, so the free space of
its filesystem (one ``statvfs``) is read each time instead: the workspace
cannot have grown by more than the filesystem shrank since the last walk,
and only when that could have crossed the budget is it walked again (and at
least every few seconds, for when other writers freed space meanwhile).
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

from .launch import PRIVATE_HOME
from .workspace import HIDDEN_DIR, INPUT_DIR, SCRIPT_NAME

WALK_EVERY = 2.0  # seconds between walks when the free space says nothing changed enough
MAX_ENTRIES = 200_000  # per walk: past that the count itself is the problem, and the total so far stands


def workspace_bytes(workspace: Path) -> int:
    """Bytes allocated under `workspace` (blocks, so a sparse file counts what it holds), without
    the node's input copy; iterative, links never followed, at most MAX_ENTRIES entries."""
    total, seen = 0, 0
    stack = [str(workspace)]
    while stack and seen < MAX_ENTRIES:
        directory = stack.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    seen += 1
                    if directory == str(workspace) and entry.name == INPUT_DIR:
                        continue
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += info.st_blocks * 512
                    if stat.S_ISDIR(info.st_mode):
                        stack.append(entry.path)
        except OSError:
            continue
    return total


def _free_bytes(path: Path) -> int:
    try:
        info = os.statvfs(path)
    except OSError:
        return 0
    return info.f_bavail * info.f_frsize


class DiskBudget:
    """Whether the node in `workspace` has written more than `limit_bytes` there."""

    def __init__(self, workspace: Path, limit_bytes: int):
        self.workspace = Path(workspace)
        self.limit = limit_bytes
        self.used = 0
        self._walk()

    def _walk(self) -> None:
        self.free_at_walk = _free_bytes(self.workspace)
        started = time.monotonic()
        self.used = workspace_bytes(self.workspace)
        took = time.monotonic() - started
        self.next_walk = time.monotonic() + max(WALK_EVERY, 20 * took)

    def exceeded(self) -> bool:
        """Measure if it could have crossed the budget since the last look; True once it has."""
        shrunk = self.free_at_walk - _free_bytes(self.workspace)
        if self.used + max(shrunk, 0) > self.limit or time.monotonic() >= self.next_walk:
            self._walk()
        return self.used > self.limit


def empty_workspace(workspace: Path) -> None:
    """After a node is killed for its disk use: remove what it wrote (its script, input and the
    launcher's area stay), so the gigabytes do not stay behind in the run."""
    workspace = Path(workspace)
    try:
        entries = list(os.scandir(workspace))
    except OSError:
        return
    for entry in entries:
        if entry.name in (SCRIPT_NAME, INPUT_DIR, HIDDEN_DIR):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            pass
    shutil.rmtree(workspace / HIDDEN_DIR / PRIVATE_HOME, ignore_errors=True)
