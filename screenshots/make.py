"""Screenshots of a real search: writes SVG + PNG into screenshots/.

    .venv/bin/python screenshots/make.py

What runs is the product, not a mock: the real engine, the real anthropic SDK
talking over HTTP to the Messages API stand-in the tests use (tests/fake_api.py),
real execution of every script and a real git repository.  The stand-in's
"Claude" (tests/sklearn_claude.py) answers with genuine scikit-learn solutions,
so the metrics, the buggy draft and its fix are real.  The search runs on a
copy of examples/house-prices; only the clock in the status bar is frozen.

PNGs are converted with cairosvg (`rsvg-convert` drops code indentation) in
DejaVu Sans Mono, which has every glyph the app draws (Debian's fonts-dejavu-core).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from aide_tui.app.app import AideApp  # noqa: E402
from aide_tui.app.screens.compare import CompareScreen  # noqa: E402
from aide_tui.app.screens.lineage import LineageScreen, lineage  # noqa: E402
from aide_tui.app.screens.node_detail import NodeDetailScreen  # noqa: E402
from aide_tui.app.screens.task_card import TaskCardScreen  # noqa: E402
from aide_tui.engine import build_engine  # noqa: E402
from aide_tui.settings import resolve  # noqa: E402
from fake_api import FakeMessagesAPI  # noqa: E402
from sklearn_claude import SklearnClaude  # noqa: E402


class FrozenClock:
    """The status bar's clock: still while the search runs, then set to read 04:12."""

    now = 1000.0

    def __call__(self) -> float:
        return self.now


async def wait_for(pilot, cond, timeout: float = 1800.0) -> None:  # a loaded machine runs the search slowly
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            m = pilot.app.model
            raise RuntimeError(f"the search did not reach the expected state in time: state {m.state}, "
                               f"{m.done} done, running {m.running_id}, phase {m.phase}, error {m.error}")
        await pilot.pause(0.05)


def shoot(app: AideApp, name: str) -> None:
    import cairosvg

    app.save_screenshot(filename=f"{name}.svg", path=str(HERE))
    # cairo does no per-glyph font fallback, and Fira Code lacks ✓ ✗ ★; DejaVu Sans Mono has them
    svg = (HERE / f"{name}.svg").read_text().replace('"Fira Code"', '"DejaVu Sans Mono"').replace("Fira Code,", "DejaVu Sans Mono,")
    cairosvg.svg2png(bytestring=svg.encode("utf-8"), write_to=str(HERE / f"{name}.png"))
    print(f"wrote {name}.svg and {name}.png")


async def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="aide-shots-", dir=os.environ.get("AIDE_SHOTS_DIR")))
    project = work / "house-prices"
    shutil.copytree(ROOT / "examples" / "house-prices", project)
    claude = SklearnClaude(project)
    api = FakeMessagesAPI(responder=claude, delay_per_chunk=0.002).start()
    os.environ["ANTHROPIC_BASE_URL"] = api.url
    os.environ["ANTHROPIC_API_KEY"] = "sk-screenshots-not-a-real-key"
    settings = resolve(None, dict(steps=14, num_drafts=3, debug_prob=1.0, timeout=120, budget=2.0, coder="llm", seed=0, workers=1))
    clock = FrozenClock()
    app = AideApp(lambda listener, resume: build_engine(project, settings, resume=resume, listener=listener, confirm_card=True),
                  clock=clock, tick_interval=3600)
    try:
        async with app.run_test(size=(120, 36), notifications=True) as pilot:
            # the task card, as the LLM read it, waiting for confirmation before the first node
            await wait_for(pilot, lambda: isinstance(app.screen, TaskCardScreen), 60)
            await pilot.pause(0.3)
            app.clear_notifications()
            shoot(app, "task-card")
            await pilot.press("ctrl+s")
            # mid-run: nine nodes done, the tenth being written by the "LLM"
            await wait_for(pilot, lambda: app.model.done >= 9 and app.model.running_id == 10)
            await wait_for(pilot, lambda: app.model.phase == "llm")
            await pilot.pause(1.2)
            clock.now += 252
            app._refresh_status()
            await pilot.pause(0.2)
            shoot(app, "main")
            await pilot.resize_terminal(160, 48)
            await pilot.pause(0.4)
            shoot(app, "main-160x48")
            await pilot.resize_terminal(80, 24)
            await pilot.pause(0.4)
            shoot(app, "main-80x24")
            await pilot.resize_terminal(120, 36)
            await pilot.pause(0.3)
            await pilot.press("ctrl+q")
            await pilot.pause(0.3)
            shoot(app, "quit-confirm")
            await pilot.press("n")
            # hold the search still for the remaining pictures
            await pilot.press("space")
            await wait_for(pilot, lambda: app.model.state == "paused")
            app._refresh_status()
            best = app.model.best_id
            app.goto_node(best)
            await pilot.pause(0.3)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, NodeDetailScreen), 10)
            await pilot.pause(0.3)
            shoot(app, "details-overview")
            for key, name in (("2", "details-code"), ("3", "details-diff"), ("4", "details-output")):
                await pilot.press(key)
                await pilot.pause(0.3)
                shoot(app, name)
            await pilot.press("escape")
            await pilot.pause(0.2)
            # history: the lineage of the deepest node, then the best node against another
            # improvement of the same parent (or another draft)
            deepest = max(app.model.nodes, key=lambda i: (len(lineage(app.model, i)), app.model.nodes[i].status == "ok", i))
            app.goto_node(deepest)
            await pilot.pause(0.3)
            await pilot.press("l")
            await wait_for(pilot, lambda: isinstance(app.screen, LineageScreen), 10)
            await pilot.pause(0.3)
            shoot(app, "lineage")
            await pilot.press("escape")
            parent = app.model.nodes[best].parent_id
            others = [v.id for v in app.model.children(parent) if v.id != best and v.code] or [
                v.id for v in app.model.children(None) if v.id != lineage(app.model, best)[0].id]
            other = others[-1]
            app.goto_node(other)
            await pilot.pause(0.3)
            await pilot.press("m")
            app.goto_node(best)
            await pilot.pause(0.3)
            await pilot.press("c")
            await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), 10)
            app.clear_notifications()
            await pilot.pause(0.3)
            shoot(app, "compare")
            await pilot.press("escape")
            app.goto_node(other)
            await pilot.pause(0.3)
            await pilot.press("m")  # unmark, for the pictures after this one
            app.clear_notifications()
            await pilot.pause(0.2)
            app.goto_node(1)
            await pilot.pause(0.3)
            await pilot.press("b")
            await pilot.pause(0.3)
            shoot(app, "debug-refused")
            await pilot.press("h")
            await pilot.pause(0.2)
            await pilot.press(*"try a log transform of the target")
            await pilot.pause(0.2)
            shoot(app, "hint-modal")
            await pilot.press("escape")
            await pilot.press("ctrl+p")
            await pilot.pause(0.3)
            await pilot.press(*"improve")
            await pilot.pause(0.5)
            shoot(app, "palette")
            await pilot.press("escape")
            app.engine.shutdown()
    finally:
        api.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
