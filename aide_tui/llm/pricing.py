"""Dollar cost of LLM calls, so the run can show spend and honour `--budget`.

Prices are USD per million tokens, from Anthropic's published pricing page
(platform.claude.com/docs/en/about-claude/pricing) for the models the
installed SDK lists in `anthropic/types/model_param.py`.  Cache writes cost
1.25x input with the 5-minute TTL and 2x with the 1-hour TTL (the client asks
for it when scripts may outlive 5 minutes); cache reads are 0.1x input except where Anthropic cut them further (Sonnet /
Opus 5.5 at 0.05x, Fable / Mythos 5.1 at 0.025x).  Haiku 5.5 has a price band
for prompts over 100k tokens.

A model not in the table is priced by its family (haiku / sonnet / opus /
fable / mythos), and a model of no known family at Sonnet-class rates; both
are flagged as estimates so the UI can say "~$".
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from ..search.node import Usage

__all__ = ["Price", "price_for", "cost", "with_cost", "is_estimate"]

CACHE_WRITE_MULT = 1.25
CACHE_WRITE_1H_MULT = 2.0
CACHE_READ_MULT = 0.10


@dataclass(frozen=True)
class Price:
    """$/million tokens for one model."""

    input: float
    output: float
    cache_write: float
    cache_read: float
    estimate: bool = False  # True when the model was not in the table
    # Haiku 5.5: prompts (input + cache reads + cache writes) above this many
    # tokens are billed entirely at `long_prompt` rates.
    long_prompt_threshold: int | None = None
    long_prompt: Price | None = None


def _p(inp: float, out: float, read_mult: float = CACHE_READ_MULT, **kw: object) -> Price:
    return Price(inp, out, round(inp * CACHE_WRITE_MULT, 6), round(inp * read_mult, 6), **kw)  # type: ignore[arg-type]


_HAIKU_55_LONG = _p(0.50, 2.50)

# Exact model ids (date suffixes and "[1m]" are stripped before lookup).
PRICES: dict[str, Price] = {
    # 5.2 and the preview had no published rate when this table was written:
    # priced like their predecessors and flagged as estimates.
    "claude-fable-5-2": _p(10.0, 50.0, 0.025, estimate=True),
    "claude-mythos-5-2": _p(10.0, 50.0, 0.025, estimate=True),
    "claude-fable-5-1": _p(10.0, 50.0, 0.025),
    "claude-mythos-5-1": _p(10.0, 50.0, 0.025),
    "claude-fable-5": _p(10.0, 50.0),
    "claude-mythos-5": _p(10.0, 50.0),
    "claude-mythos-preview": _p(10.0, 50.0, estimate=True),
    "claude-opus-5-5": _p(4.0, 20.0, 0.05),
    "claude-opus-5": _p(5.0, 25.0),
    "claude-opus-4-8": _p(5.0, 25.0),
    "claude-opus-4-7": _p(5.0, 25.0),
    "claude-opus-4-6": _p(5.0, 25.0),
    "claude-opus-4-5": _p(5.0, 25.0),
    "claude-opus-4-1": _p(15.0, 75.0),
    "claude-opus-4-0": _p(15.0, 75.0),
    "claude-opus-4": _p(15.0, 75.0),
    "claude-sonnet-5-5": _p(2.0, 10.0, 0.05),
    "claude-sonnet-5": _p(2.0, 10.0),
    "claude-sonnet-4-6": _p(3.0, 15.0),
    "claude-sonnet-4-5": _p(3.0, 15.0),
    "claude-sonnet-4-0": _p(3.0, 15.0),
    "claude-sonnet-4": _p(3.0, 15.0),
    "claude-haiku-5-5": _p(0.10, 0.50, long_prompt_threshold=100_000, long_prompt=_HAIKU_55_LONG),
    "claude-haiku-4-5": _p(1.0, 5.0),
    "claude-3-5-haiku": _p(0.80, 4.0),
}

# Family fallbacks for ids not in PRICES (e.g. a model newer than this table).
FAMILY_PRICES: dict[str, Price] = {
    "fable": _p(10.0, 50.0, estimate=True),
    "mythos": _p(10.0, 50.0, estimate=True),
    "opus": _p(5.0, 25.0, estimate=True),
    "sonnet": _p(3.0, 15.0, estimate=True),
    "haiku": _p(1.0, 5.0, estimate=True),
}
UNKNOWN_PRICE = FAMILY_PRICES["sonnet"]

_SUFFIX = re.compile(r"(-\d{8}|-latest|\[1m\])+$")


def normalise_model(model: str) -> str:
    """The table key of a model id: lower case, no provider prefix, no date or [1m] suffix."""
    model = model.strip().lower()
    if "/" in model:  # e.g. "anthropic/claude-..." from a settings file
        model = model.rsplit("/", 1)[1]
    return _SUFFIX.sub("", model)


def price_for(model: str) -> Price:
    """The price of `model`: exact id, else its family (estimate), else Sonnet-class (estimate)."""
    key = normalise_model(model)
    if key in PRICES:
        return PRICES[key]
    for family, price in FAMILY_PRICES.items():
        if family in key:
            return price
    return UNKNOWN_PRICE


def is_estimate(model: str) -> bool:
    return price_for(model).estimate


def cost(model: str, usage: Usage, long_ttl_writes: int = 0) -> float:
    """Dollars for `usage` (uncached input, output, cache writes, cache reads).

    `long_ttl_writes` of the cache-write tokens were 1-hour writes, billed at 2x
    input instead of 1.25x.  `usage` may aggregate several calls; the Haiku 5.5
    long-prompt band is then judged on the average prompt per call.
    """
    price = price_for(model)
    if price.long_prompt is not None and price.long_prompt_threshold is not None:
        prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
        if prompt / max(usage.calls, 1) > price.long_prompt_threshold:
            price = price.long_prompt
    total = (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_write_tokens * price.cache_write
        + usage.cache_read_tokens * price.cache_read
        + long_ttl_writes * price.input * (CACHE_WRITE_1H_MULT - CACHE_WRITE_MULT)
    )
    return total / 1_000_000


def with_cost(model: str, usage: Usage, long_ttl_writes: int = 0) -> Usage:
    """A copy of `usage` with `cost` filled from the price table."""
    return dataclasses.replace(usage, cost=cost(model, usage, long_ttl_writes))
