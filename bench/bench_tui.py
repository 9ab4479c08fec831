"""TUI figures: cost of adding one node to a big tree, and log throughput under load.

    .venv/bin/python bench/bench_tui.py

1. Tree: with N nodes already shown (100 / 1,000 / 5,000), time to add one node (as the
   app does on NodeStarted) and have the screen re-rendered.  Budget: <= 30 ms at 1,000.
2. Log: a fake engine streams output lines as fast as it can through the app's listener;
   lines/s shown, and the latency of a key press (open the hint modal) meanwhile.
   Budget: >= 10,000 lines/s with a key handled within 100 ms.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from textual import events  # noqa: E402

from aide_tui.app.app import AideApp  # noqa: E402
from aide_tui.app.screens.modals import HintModal  # noqa: E402
from aide_tui.events import NodeFinished, NodeStarted, OutputLine, RunStarted  # noqa: E402
from aide_tui.search.node import Node  # noqa: E402


class IdleEngine:
    """Does nothing until shut down; the bench feeds events itself."""

    def __init__(self, listener, resume):
        self.listener = listener
        self.stop = threading.Event()
        self.commands = []

    def run(self):
        self.stop.wait()

    def submit(self, command):
        self.commands.append(command)

    def shutdown(self):
        self.stop.set()


def tree_nodes(n: int) -> tuple[NodeFinished, ...]:
    """A resumed run's nodes as RunStarted carries them."""
    nodes = []
    for i in range(n):
        parent = None if i < 5 else (i - 1 if i % 7 else (i * 31) % i)
        node = Node(
            id=i,
            parent_id=parent,
            operation="draft" if parent is None else "improve",
            step=i,
            status="ok" if i % 4 else "buggy",
            metric=0.5 + (i % 100) / 1000 if i % 4 else None,
        )
        nodes.append(NodeFinished(node, None, f"{i:040x}", f"aide/bench/{i:04d}-{node.operation}", "bench", "maximize"))
    return tuple(nodes)


async def bench_tree(n: int, repeats: int = 15) -> tuple[float, float]:
    app = AideApp(IdleEngine, clock=lambda: 0.0)
    async with app.run_test(size=(140, 45)) as pilot:
        app.handle_event(RunStarted("bench", "/tmp", True, n + repeats + 1, tree_nodes(n), "maximize", "llm"))
        await pilot.pause(0.3)
        times, tree_times = [], []
        for k in range(repeats):
            node_id = n + k
            t0 = time.perf_counter()
            app.handle_event(NodeStarted(node_id, node_id - 1, "improve", node_id))
            app.tree_pane._build()  # what the tree's next render does: rebuild its lines
            tree_times.append(time.perf_counter() - t0)
            app.screen._compositor.render_update(full=True)  # and the whole 140x45 frame
            times.append(time.perf_counter() - t0)
            await pilot.pause()
        assert app.tree_pane.node_count() == n + repeats
        app.engine.shutdown()
    return statistics.median(tree_times) * 1000, statistics.median(times) * 1000


async def bench_log(total: int, rate: float | None) -> tuple[float, float, float, int]:
    """Stream `total` lines through the app's listener at `rate` lines/s (None: flat out);
    press a key after 0.3 s and time until its modal is up."""
    app = AideApp(IdleEngine, clock=lambda: 0.0)
    async with app.run_test(size=(140, 45)) as pilot:
        app.handle_event(RunStarted("bench", "/tmp", False, 10, (), "maximize", "llm"))
        app.handle_event(NodeStarted(0, None, "draft", 0))
        await pilot.pause(0.1)
        done = threading.Event()

        def produce():
            start = time.perf_counter()
            chunk = 100
            for i in range(0, total, chunk):
                for j in range(i, min(total, i + chunk)):
                    app._listener(OutputLine(0, "stdout", f"line {j}: loss {1 / (j + 1):.6f}"))
                if rate:
                    ahead = start + (i + chunk) / rate - time.perf_counter()
                    if ahead > 0:
                        time.sleep(ahead)
            done.set()

        t0 = time.perf_counter()
        threading.Thread(target=produce, daemon=True).start()
        await asyncio.sleep(0.3)  # output is flowing
        handled: list[float] = []
        original = app.action_hint

        def action_hint() -> None:
            handled.append(time.perf_counter())
            original()

        app.action_hint = action_hint  # type: ignore[method-assign]
        k0 = time.perf_counter()
        # what a terminal key press does: the driver posts a Key event to the app
        app.post_message(events.Key("h", "h"))
        while not handled:
            await asyncio.sleep(0.001)
        key_ms = (handled[0] - k0) * 1000
        while not isinstance(app.screen, HintModal):
            await asyncio.sleep(0.001)
        modal_ms = (time.perf_counter() - k0) * 1000
        await pilot.press("escape")
        while not (done.is_set() and not app._stream):
            await asyncio.sleep(0.01)
        await pilot.pause()
        elapsed = time.perf_counter() - t0
        shown = app.log_pane.line_count
        app.engine.shutdown()
    return total / elapsed, key_ms, modal_ms, shown


async def main() -> None:
    print("tree: add one node (NodeStarted) with N nodes shown, median")
    for n in (100, 1000, 5000):
        tree_ms, frame_ms = await bench_tree(n)
        budget = "  (budget 30 ms)" if n == 1000 else ""
        print(f"  {n:>5} nodes: event + tree rebuild {tree_ms:6.1f} ms; + full 140x45 frame {frame_ms:6.1f} ms{budget}")
    print("log: output lines through the app's listener, key press (open the hint modal) meanwhile")
    for total, rate in ((60_000, 20_000), (100_000, 50_000), (200_000, None)):
        got, key_ms, modal_ms, shown = await bench_log(total, rate)
        label = f"{rate:,} lines/s offered" if rate else "flat out (producer hogs the GIL)"
        print(
            f"  {label:<34} {got:9,.0f} lines/s handled, key handled in {key_ms:4.0f} ms (modal up in {modal_ms:4.0f} ms), {shown:,} lines in the log"
        )
    print("  budget: >= 10,000 lines/s with a key handled within 100 ms")


if __name__ == "__main__":
    asyncio.run(main())
