"""Holdout scoring: each new best is re-run on the hidden rows in the background, and the final pick.

The re-run takes as long as the script, and holding the node's worker for it would stall the
search (with one worker, every new best would run twice in a row).  This part owns the queue
(one waiting node: a best superseded before its turn is not re-run) and the scorer thread.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from .. import events as ev
from ..evaluation.holdout import HoldoutOutcome
from ..evaluation.holdout_policy import disagreement, final_pick, holdout_candidates
from ..run.executor import ExecRequest, ExecResult
from ..search.node import Direction, Node

if TYPE_CHECKING:
    from .core import Engine

log = logging.getLogger("aide_tui.engine")


class HoldoutScoring:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine  # its tree (under run_lock), evaluation, executor, records and events
        self._lock = threading.Lock()
        self._next: Node | None = None  # the newest best waiting for its holdout re-run
        self._thread: threading.Thread | None = None  # the background scorer, while it runs

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._thread is not None

    def queue(self, node: Node) -> None:
        """Score a new best on the holdout in the background; the final top 3 are scored at the end anyway."""
        evaluation = self._engine.evaluation
        if evaluation is None or evaluation.scorer is None:
            return
        with self._lock:
            self._next = node
            if self._thread is not None:
                return  # the running scorer takes it next
            self._thread = threading.Thread(target=self._worker, name="aide-holdout", daemon=True)
            self._thread.start()

    def _worker(self) -> None:
        engine = self._engine
        try:
            while True:
                with self._lock:
                    node, self._next = self._next, None
                    if node is None or engine.cancel.is_set():
                        self._thread = None
                        return
                with engine.run_lock:
                    current = engine.tree.best_id == node.id
                if current:
                    self.score(node)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which ends the run
            log.exception("holdout scoring failed inside the engine")
            with self._lock:
                self._thread = None
            engine.loop.fail(exc)

    def wait(self, timeout: float | None = None) -> None:
        """Let the background scorer finish (at the end of a run, or before the journal closes)."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def score(self, node: Node) -> None:
        """Re-run the node on the hidden holdout (same sandbox and limits), score it, make it durable."""
        engine = self._engine
        scorer = engine.evaluation.scorer if engine.evaluation is not None else None
        if scorer is None or engine.cancel.is_set():
            return
        engine.emit(ev.PhaseChanged(None, "executing", f"re-running node #{node.id} on the hidden holdout"))

        def run(request: ExecRequest) -> ExecResult:
            # Forked from the run's zygote where there is one: a re-run then starts in milliseconds.
            preload = engine.warm.preload
            warm = engine.executor.warm_up(request, preload) if preload else None
            job = engine.executor.submit(request, lambda _stream, _line: None, warm=warm)
            result = None
            while result is None:  # CancelNow (the user's quit) kills it like a node's own run
                if engine.cancel.is_set():
                    job.cancel()
                result = job.wait(0.5)
            return result

        try:
            outcome = scorer.score(node, run)
        except Exception as exc:  # noqa: BLE001 - a failed re-run must not end the search
            log.exception("holdout re-run of node #%d failed", node.id)
            outcome = HoldoutOutcome(None, f"the holdout re-run failed inside aide-tui ({type(exc).__name__}: {exc})")
        if engine.cancel.is_set() and outcome.metric is None:
            return  # cancelled mid-way: not a fact about the node
        with engine.run_lock:
            node.holdout_metric, node.holdout_note, node.holdout_spread = outcome.metric, outcome.note, outcome.spread
            node.holdout_flag = disagreement(node, self.direction())
            pick = self.final_pick()
        with engine.store_lock:
            commit = engine.records.record_holdout(node, engine.tree)
        engine.emit(
            ev.HoldoutScored(
                node.id, outcome.metric, outcome.note, pick.id if pick else None, commit, node.holdout_flag
            )
        )
        engine.emit(ev.PhaseChanged(None, "idle"))

    def final_pick(self) -> Node | None:
        """The node the run hands over: the holdout's choice among the best, where there is one."""
        engine = self._engine
        return final_pick(list(engine.tree.nodes.values()), self.direction(), engine.tree.best)

    def direction(self) -> Direction | None:
        """The run's direction: the tree's once a review fixed it, else the task card's."""
        engine = self._engine
        return engine.tree.direction or (engine.card.direction if engine.card else None)

    def score_final_candidates(self) -> None:
        """The top 3 by validation metric and a sample across the tree get a holdout score too, so the
        final pick compares like with like and fake metrics cannot hide every honest node
        (evaluation/holdout_policy.py)."""
        engine = self._engine
        if engine.evaluation is None or engine.evaluation.scorer is None:
            return
        direction = engine.tree.direction or engine.evaluation.card.direction
        for node in holdout_candidates(list(engine.tree.nodes.values()), direction):
            if engine.cancel.is_set():
                return
            if node.holdout_metric is None and not node.holdout_note:
                self.score(node)
