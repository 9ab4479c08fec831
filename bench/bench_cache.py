"""Share of input tokens read from the prompt cache over a 20-step LLM run.

Goal (issue #10): at least 60 % of input tokens read from cache.

The run is real except for the model: the engine, prompts, client and SDK talk
over HTTP to the local Messages API stand-in (tests/fake_api.py), which models
the service's caching rules -- each model's minimum cacheable prefix, at most
four breakpoints, reads at block boundaries, the 5-minute / 1-hour TTL -- and
answers with scikit-learn scripts that really run on the house-prices example
(tests/sklearn_claude.py).  Token counts are the stand-in's estimate (4
characters per token), the same for cached and uncached text, so the share is
fair even though the absolute counts are approximate.

The cached share depends on what is stable: the system prompts (tools, then
the instructions, the machine, the task and the data preview) and, for an
improve or a debug, the parent block.  The code and output a review reads and
the memory summary change every call, so they are never read from cache.
With several workers, nodes that start together each write the same prefix,
so the figure varies by a point or two from run to run.

Scripts here take seconds; in real runs they take minutes, which is what lets
a 5-minute cache expire between two calls.  `--script-minutes` advances the
stand-in's clock by that much after every node to model it.

Run: .venv/bin/python bench/bench_cache.py [--steps 20] [--timeout 600] [--script-minutes 6]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fake_api import FakeMessagesAPI  # noqa: E402
from sklearn_claude import SklearnClaude  # noqa: E402

from aide_tui import events as ev  # noqa: E402
from aide_tui.engine import build_engine  # noqa: E402
from aide_tui.llm.caching import MIN_CACHE_TOKENS, min_cache_tokens  # noqa: E402
from aide_tui.llm.pricing import CACHE_WRITE_1H_MULT, normalise_model, price_for  # noqa: E402
from aide_tui.settings import DEFAULT_CODE_MODEL, DEFAULT_FEEDBACK_MODEL, resolve  # noqa: E402


def share(rows: list[dict]) -> tuple[int, int, int, float]:
    read = sum(r.get("cache_read_input_tokens", 0) for r in rows)
    write = sum(r.get("cache_creation_input_tokens", 0) for r in rows)
    plain = sum(r.get("input_tokens", 0) for r in rows)
    total = read + write + plain
    return total, read, write, (read / total if total else 0.0)


def input_dollars(model: str, rows: list[dict]) -> tuple[float, float]:
    """(what the input side cost with caching, what it would have cost without)."""
    price = price_for(model)
    paid = plain = 0.0
    for r in rows:
        long_writes = (r.get("cache_creation") or {}).get("ephemeral_1h_input_tokens", 0)
        paid += (
            r["input_tokens"] * price.input
            + r["cache_read_input_tokens"] * price.cache_read
            + (r["cache_creation_input_tokens"] - long_writes) * price.cache_write
            + long_writes * price.input * CACHE_WRITE_1H_MULT
        )
        plain += (r["input_tokens"] + r["cache_read_input_tokens"] + r["cache_creation_input_tokens"]) * price.input
    return paid / 1e6, plain / 1e6


def run(steps: int, timeout: float, script_minutes: float, code_model: str, feedback_model: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "house-prices"
        shutil.copytree(ROOT / "examples" / "house-prices", project)
        with FakeMessagesAPI(responder=SklearnClaude(project)) as api:
            os.environ["ANTHROPIC_BASE_URL"] = api.url
            os.environ["ANTHROPIC_API_KEY"] = "sk-bench-not-a-real-key"
            settings = resolve(
                project / "aide.toml",
                dict(
                    steps=steps,
                    timeout=timeout,
                    coder="llm",
                    code_model=code_model,
                    feedback_model=feedback_model,
                    memory_limit="2G",
                ),
            )

            def listener(event: ev.Event) -> None:
                if isinstance(event, ev.NodeFinished):
                    api.advance_clock(script_minutes * 60)

            finished = build_engine(project, settings, resume=False, listener=listener).run()
            calls = [r for r in api.requests if r.usage]
    by_model: dict[str, list[dict]] = defaultdict(list)
    for r in calls:
        by_model[r.body.get("model", "?")].append(r.usage)
    print(
        f"run: {finished.reason}, {finished.nodes} nodes, {len(calls)} LLM calls, {settings.workers} workers; "
        f"script timeout {timeout:g} s (cache TTL {'1h' if timeout > 240 else '5m'}), "
        f"{script_minutes:g} simulated minutes per node"
    )
    paid_all = plain_all = 0.0
    for model, rows in sorted(by_model.items()):
        total, read, write, ratio = share(rows)
        paid, plain = input_dollars(model, rows)
        paid_all, plain_all = paid_all + paid, plain_all + plain
        known = "    " if normalise_model(model) in MIN_CACHE_TOKENS else "est."
        print(
            f"  {model:<22} min prefix {min_cache_tokens(model):>5} {known} calls {len(rows):>3}  input {total:>8,}  "
            f"read {read:>8,}  written {write:>7,}  cached share {ratio:6.1%}  "
            f"input ${paid:.4f} (${plain:.4f} uncached)"
        )
    total, read, write, ratio = share([r.usage for r in calls])
    print(
        f"  {'all calls':<22} {'':>21}  calls {len(calls):>3}  input {total:>8,}  read {read:>8,}  "
        f"written {write:>7,}  cached share {ratio:6.1%}  input ${paid_all:.4f} (${plain_all:.4f} uncached, "
        f"{1 - paid_all / plain_all if plain_all else 0:.0%} saved)  -- goal: cached share >= 60 %"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=600.0, help="script timeout in seconds (sets the TTL)")
    parser.add_argument("--script-minutes", type=float, default=6.0, help="simulated minutes each node's script runs")
    parser.add_argument("--code-model", default=DEFAULT_CODE_MODEL)
    parser.add_argument("--feedback-model", default=DEFAULT_FEEDBACK_MODEL)
    args = parser.parse_args()
    run(args.steps, args.timeout, args.script_minutes, args.code_model, args.feedback_model)


if __name__ == "__main__":
    main()
