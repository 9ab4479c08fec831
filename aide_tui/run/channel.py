"""The launcher's messages to aide-tui, over a pipe instead of files in the workspace.

Why not files: anything in the workspace is the script's to replace.  A
``result.json`` turned into a FIFO hung the run; a symlink to ``/dev/zero``
grew aide-tui to gigabytes.  A pipe made by aide-tui cannot be swapped for
anything else: the launcher inherits its write end (marked close-on-exec, so
the script's own subprocesses do not), the host reads the other end without
blocking and stops at `MAX_BYTES`.

The script runs in the launcher's process, so it can write to the pipe too:
what comes over it is only ever believed about the script itself (its
exception type, whether its imports are in), never used to decide what the
host opens or kills.  Messages are lines ``KIND JSON``; the first of each
kind counts.
"""

from __future__ import annotations

import contextlib
import json
import os
import time

MAX_BYTES = 1 << 20  # what the host reads at most over the node's life
READY, EXCEPTION = "ready", "exception"


class LauncherChannel:
    """The host's end of one node's launcher pipe."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        self._buffer = bytearray()
        self._taken = 0
        self.messages: dict[str, dict] = {}
        self.received_at: dict[str, float] = {}

    def writer_given(self) -> None:
        """The child holds the write end now: close ours, so EOF means the child is gone."""
        if self.write_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.write_fd)
            self.write_fd = -1

    def poll(self) -> None:
        """Take what has arrived (never blocks, never more than MAX_BYTES in all)."""
        while self.read_fd >= 0 and self._taken < MAX_BYTES:
            try:
                chunk = os.read(self.read_fd, min(64 * 1024, MAX_BYTES - self._taken))
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            if not chunk:
                break
            self._taken += len(chunk)
            self._buffer += chunk
        while b"\n" in self._buffer:
            line, _, rest = bytes(self._buffer).partition(b"\n")
            self._buffer = bytearray(rest)
            kind, _, payload = line.decode("utf-8", "replace").partition(" ")
            if kind in self.messages:
                continue
            try:
                data = json.loads(payload)
            except ValueError:
                continue
            if isinstance(data, dict):
                self.messages[kind] = data
                self.received_at[kind] = time.time()

    def message(self, kind: str) -> dict | None:
        self.poll()
        return self.messages.get(kind)

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.read_fd = self.write_fd = -1
