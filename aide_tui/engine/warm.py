"""Warm starts: an interpreter per upcoming node, its heavy imports done before its code exists.

The fork server (run/) makes a warm interpreter cheap; this part decides which node ids get
one, hands it to the node that runs, and ends the ones nobody will use.  It owns its handles
and their lock; it never takes the run's lock, so it can be called with or without it.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any

from .. import events as ev
from ..run.executor import ExecRequest
from ..run.launch import choose_preload, without_failed
from ..run.workspace import remove_tree

if TYPE_CHECKING:
    from .core import Engine

log = logging.getLogger("aide_tui.engine")

WARM_AHEAD = 4  # warm interpreters waiting for code at most (each holds its imports' memory)


class WarmStarts:
    """The run's warm interpreters, by node id (the executor's handles, opaque here)."""

    def __init__(self, engine: Engine, prepare_workspace: Callable[[int], None], request: Callable[[int], ExecRequest]):
        self._engine = engine  # its settings, paths, executor (a test may swap it) and events
        self._prepare_workspace = prepare_workspace  # an empty workspace for the node, input in place
        self._request = request  # how the node's script will be run
        self._lock = threading.Lock()
        self._ready: dict[int, Any] = {}  # node id -> the executor's warm start for it
        self._warming: dict[int, threading.Event] = {}  # node ids being prepared, set when ready
        self._preload: tuple[str, ...] | None = None  # chosen at the first warm-up (probes the interpreter)

    @property
    def preload(self) -> tuple[str, ...]:
        """The modules every warm interpreter imports (empty before the first warm-up or when none work)."""
        with self._lock:
            return self._preload or ()

    def start(self, node_id: int) -> None:
        """Start the node's interpreter now (input in place, heavy modules importing), so that the
        imports overlap the model writing the code (and, for a successor, the running node);
        `take` hands it to the step.  Only the node id matters, not the plan."""
        note = None
        with self._lock:
            if node_id in self._ready or node_id in self._warming:
                return  # already warming (started while another node ran, or before a retried step)
            # Reserved: with several workers, two may pick the same successor; the second one
            # must not delete the workspace the first is preparing (its interpreter would run
            # the script in a deleted directory).
            ready = self._warming[node_id] = threading.Event()
            if self._preload is None:  # once per run, under the lock: the note is given once
                settings = self._engine.settings
                self._preload, note = choose_preload(settings.preload, settings.python or sys.executable)
            preload = self._preload
        if note:
            self._engine.emit(ev.Notice(note, "warning"))
        try:
            if preload:
                self._prepare(node_id, preload)
        finally:
            with self._lock:
                del self._warming[node_id]
            ready.set()

    def _prepare(self, node_id: int, preload: tuple[str, ...]) -> None:
        try:
            self._prepare_workspace(node_id)
            warm = self._engine.executor.warm_up(self._request(node_id), preload)
        except Exception:  # the node then starts cold; a warm start is only ever an optimisation
            log.exception("could not warm up node %d", node_id)
            return
        if warm is not None:
            with self._lock:
                self._ready[node_id] = warm

    def take(self, node_id: int) -> Any | None:
        """The node's warm interpreter (None: it starts cold); waits while another worker prepares it."""
        with self._lock:
            preparing = self._warming.get(node_id)
        if preparing is not None:
            preparing.wait()  # another worker is warming this node: take it, never prepare over it
        with self._lock:
            return self._ready.pop(node_id, None)

    def drop_failed_preloads(self, failed: dict[str, str]) -> None:
        """A preload that raised on import is noted once and not imported again this run."""
        with self._lock:
            self._preload, note = without_failed(self._preload or (), failed)
        if note:
            self._engine.emit(ev.Notice(note, "warning"))

    def discard(self, node_id: int) -> None:
        """End a warm interpreter nobody will use: it and all it started, and its workspace."""
        with self._lock:
            warm = self._ready.pop(node_id, None)
        if warm is not None:
            warm.discard()
            remove_tree(self._engine.paths.workspace(node_id), ignore_errors=True)  # a node that never ran

    def end_idle(self, running: Collection[int]) -> None:
        """End every warm interpreter of a node that has not started (pause, stop, tampered inputs)."""
        with self._lock:
            idle = [nid for nid in self._ready if nid not in running]
        # All at once: each end waits for its process tree to die, and a quit waits for them all.
        enders = [threading.Thread(target=self.discard, args=(nid,), name="aide-warm-end") for nid in idle]
        for ender in enders:
            ender.start()
        for ender in enders:
            ender.join()
