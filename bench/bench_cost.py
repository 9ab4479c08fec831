"""What a node and a 20-step run cost on the 5.5 models, with thinking at several levels.

The coder, the review, the task card call, the prompts, the client and the SDK
are real; the model is the strict Messages API stand-in (tests/fake_api.py),
which keeps the 5.5 contract: adaptive thinking unless turned off, its tokens
counted in `max_tokens` and billed as output, the documented 400s.  How much a
model thinks is not something a stand-in can know, so it is emulated: each
level gives the thinking tokens per effort (low … max), and every figure is
printed per level.  Replies are sized like real ones (a ~2,000-token script
with a short plan; a review's tool call), the memory summary grows node by
node, and the stand-in's clock advances `--script-minutes` per node so the
cache lives and expires as it would between real script runs.

The run is AIDE's usual shape: 5 drafts, then improvements of the best node
and fixes of buggy ones (one in three scripts crashes), one review per node,
one task-card call per run.  Token counts are the stand-in's estimate (4
characters per token); dollars come from the model table's prices.

Run: .venv/bin/python bench/bench_cost.py [--steps 20] [--script-minutes 4]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from card_reader import card_reply, is_card_call  # noqa: E402
from fake_api import HEAVY_THINKING, FakeMessagesAPI, TextReply, ToolReply, last_user_text  # noqa: E402

from aide_tui.llm.client import LlmClient  # noqa: E402
from aide_tui.run.workspace import list_data_files  # noqa: E402
from aide_tui.search.card_llm import llm_task_card  # noqa: E402
from aide_tui.search.coder import CoderError, TaskContext  # noqa: E402
from aide_tui.search.node import ExecInfo, Node, Usage  # noqa: E402
from aide_tui.search.operators import LlmCoder  # noqa: E402
from aide_tui.search.preview import build_preview  # noqa: E402
from aide_tui.settings import Settings  # noqa: E402

EXAMPLE = ROOT / "examples" / "house-prices"
SCRIPT_LINES = 160  # ~2,000 tokens: a typical generated solution


def script(tag: str, crash: bool) -> str:
    body = "\n".join(f"    features_{i} = frame['col_{i % 40}'].fillna(0) * {i}  # {tag}" for i in range(SCRIPT_LINES))
    tail = "    raise KeyError('SalePrice_log')" if crash else "    print('Validation metric: 0.1312')"
    return f"import pandas as pd\n\n\ndef main():\n    frame = pd.read_csv('./input/train.csv')\n{body}\n{tail}\n\n\nmain()\n"


class Responder:
    """Answers like the model would, at realistic sizes; every third script crashes."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, body: dict):
        if is_card_call(body):
            return card_reply(body)
        if body.get("tools"):
            crashed = "KeyError" in last_user_text(body)
            summary = "Crashed with KeyError on the log target." if crashed else "Gradient boosting, RMSE 0.1312."
            review = {"is_bug": crashed, "metric": None if crashed else 0.1312, "summary": summary}
            return ToolReply("submit_review", {**review, "lower_is_better": True})
        self.n += 1
        plan = "Plan: gradient boosting on log SalePrice with target-encoded neighbourhoods, 5-fold CV. " * 3
        return TextReply(f"{plan}\n\n```python\n{script(f'n{self.n}', self.n % 3 == 0)}```\n")


@dataclass
class Tally:
    by_op: dict[str, Usage] = field(default_factory=lambda: defaultdict(Usage))
    nodes: int = 0
    no_code: int = 0
    retries: int = 0

    def add(self, op: str, usage: Usage) -> None:
        self.by_op[op] = self.by_op[op] + usage

    @property
    def total(self) -> Usage:
        out = Usage()
        for usage in self.by_op.values():
            out = out + usage
        return out


def one_run(settings: Settings, levels: dict[str, int], steps: int, script_minutes: float) -> Tally:
    tally = Tally()
    data_files = list_data_files(EXAMPLE)
    preview = build_preview(EXAMPLE, data_files, settings.preview_chars)
    task = (EXAMPLE / "task.md").read_text()
    with FakeMessagesAPI(Responder(), strict=True, thinking_tokens=levels, chunk_chars=4000) as api:
        with LlmClient(api_key="sk-bench", base_url=api.url, timeout=60, max_retries=0) as client:
            _, usage = llm_task_card(
                client, settings.feedback_model, EXAMPLE, data_files, task, preview, settings.review_effort
            )
            tally.add("card", usage)
            coder = LlmCoder(client, settings)
            nodes: list[Node] = []
            memory: list[str] = []
            for step in range(1, steps + 1):
                ctx = TaskContext(
                    task=task, data_preview=preview, memory="\n".join(memory[-30:]), timeout=settings.timeout
                )
                buggy = [n for n in nodes if n.status == "buggy" and n.code and not n.metric]
                best = next((n for n in nodes if n.status == "ok"), None)
                said: list[str] = []
                try:
                    if step <= 5 or best is None:
                        op, proposal = "draft", coder.draft(ctx, said.append)
                    elif buggy and step % 2:
                        op, proposal = "debug", coder.debug(ctx, buggy.pop(), said.append)
                    else:
                        op, proposal = "improve", coder.improve(ctx, best, said.append)
                except CoderError as exc:
                    tally.add("no code", exc.usage)
                    tally.no_code += 1
                    continue
                tally.retries += proposal.usage.calls - 1
                tally.add(op, proposal.usage)
                crashed = "raise KeyError" in proposal.code
                node = Node(step, None, op, step, plan=proposal.plan, code=proposal.code)  # type: ignore[arg-type]
                node.output = "KeyError: 'SalePrice_log'" if crashed else "fold 1 ... fold 5\nValidation metric: 0.1312"
                node.exec = ExecInfo(exit_code=1 if crashed else 0, exc_type="KeyError" if crashed else None)
                review = coder.review(ctx, node)
                tally.add("review", review.usage)
                node.status = "buggy" if review.is_bug else "ok"
                node.metric = review.metric
                nodes.append(node)
                memory.append(f"- node {step} ({op}): {node.status}; {proposal.plan[:160]}")
                tally.nodes += 1
                api.advance_clock(script_minutes * 60)
    return tally


def level(scale: float) -> dict[str, int]:
    return {effort: int(tokens * scale) for effort, tokens in HEAVY_THINKING.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--script-minutes", type=float, default=4.0)
    args = parser.parse_args()
    base = dict(memory_limit="1G", timeout=600.0)
    scenarios: list[tuple[str, Settings, dict[str, int]]] = [
        ("defaults, light thinking (x0.25)", Settings(**base), level(0.25)),
        ("defaults, moderate thinking (x0.5)", Settings(**base), level(0.5)),
        ("defaults, heavy thinking (x1)", Settings(**base), level(1.0)),
        ("defaults, very heavy thinking (x2)", Settings(**base), level(2.0)),
        ("thinking = off (between_tools)", Settings(**base, thinking="off"), level(1.0)),
        ("effort = high everywhere, heavy", Settings(**base, effort="high"), level(1.0)),
        ("effort = low everywhere, heavy", Settings(**base, effort="low", review_effort="low"), level(1.0)),
        ("old limits: max_tokens 8192, heavy", Settings(**base, max_tokens=8192), level(1.0)),
    ]
    print(f"{args.steps}-step runs, code claude-sonnet-5-5, review claude-haiku-5-5; thinking per effort at x1:")
    print("  " + ", ".join(f"{k} {v:,}" for k, v in HEAVY_THINKING.items()))
    header = (
        f"{'scenario':38} {'$/node':>7} {'$/run':>7} {'cached':>7} {'retries':>7} {'no code':>7} "
        f"{'draft out':>9} {'improve':>8} {'debug':>8} {'review':>7} {'think %':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, settings, levels in scenarios:
        t = one_run(settings, levels, args.steps, args.script_minutes)
        total = t.total
        prompt = total.input_tokens + total.cache_read_tokens + total.cache_write_tokens
        cached = total.cache_read_tokens / prompt if prompt else 0.0

        def per_call(op: str, t: Tally = t) -> str:
            u = t.by_op.get(op)
            return f"{u.output_tokens / u.calls:,.0f}" if u and u.calls else "-"

        think = total.thinking_tokens / total.output_tokens if total.output_tokens else 0.0
        per_node = total.cost / max(args.steps, 1)
        print(
            f"{name:38} {per_node:7.3f} {total.cost:7.2f} {cached:7.0%} {t.retries:7d} {t.no_code:7d} "
            f"{per_call('draft'):>9} {per_call('improve'):>8} {per_call('debug'):>8} {per_call('review'):>7} "
            f"{think:7.0%}"
        )
    print("(output tokens are per call, thinking included; $/node counts every call of the run over its steps)")


if __name__ == "__main__":
    main()
