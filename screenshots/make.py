"""Drive the app headless and write SVG + PNG screenshots into screenshots/.

    .venv/bin/python screenshots/make.py

Uses the scripted fake engine (tests/fake_engine.py) so the pictures are deterministic;
PNGs are converted with cairosvg (install fonts-firacode for faithful glyphs).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from aide_tui.app.app import AideApp  # noqa: E402
from fake_engine import factory  # noqa: E402


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def held(pilot, app: AideApp, node: int) -> None:
    end = time.monotonic() + 15
    while not (app.model.running_id == node and app.model.done == node):
        if time.monotonic() > end:
            raise RuntimeError("the fake engine did not reach the held node")
        await pilot.pause(0.02)
    await pilot.pause(0.2)


async def shoot(name: str, size: tuple[int, int], steps, **engine) -> Path:
    clock = Clock()
    engine.setdefault("hold_at", 9)
    app = AideApp(factory(**engine), clock=clock, tick_interval=3600)
    async with app.run_test(size=size, notifications=True) as pilot:
        await held(pilot, app, engine["hold_at"])
        clock.now += 133
        app._refresh_status()
        for step in steps:
            await step(app, pilot)
            await pilot.pause(0.15)
        await pilot.pause(0.4)
        path = HERE / f"{name}.svg"
        app.save_screenshot(filename=path.name, path=str(HERE))
        app.engine.shutdown()
    return path


def select(node_id: int):
    async def run(app, pilot):
        app.goto_node(node_id)

    return run


def press(*keys: str):
    async def run(app, pilot):
        await pilot.press(*keys)

    return run


SHOTS = {
    "main-120x36": ((120, 36), []),
    "main-160x48": ((160, 48), []),
    "main-80x24": ((80, 24), []),
    "details-overview": ((120, 36), [select(4), press("enter")]),
    "details-diff": ((120, 36), [select(4), press("enter"), press("3")]),
    "debug-refused": ((120, 36), [select(4), press("b")]),
    "hint-modal": ((120, 36), [press("h"), press(*"try target encoding")]),
    "quit-confirm": ((120, 36), [press("ctrl+q")]),
    "palette": ((120, 36), [press("ctrl+p"), press(*"improve")]),
}


async def main() -> None:
    only = set(sys.argv[1:])
    import cairosvg

    for name, (size, steps) in SHOTS.items():
        if only and name not in only:
            continue
        svg = await shoot(name, size, steps)
        png = svg.with_suffix(".png")
        cairosvg.svg2png(url=str(svg), write_to=str(png))
        print(f"wrote {svg.name} and {png.name}")


if __name__ == "__main__":
    asyncio.run(main())
