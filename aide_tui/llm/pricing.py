"""Dollar cost of LLM calls, so the run can show spend and honour `--budget`.

Prices are USD per million tokens, from Anthropic's published pricing page
(platform.claude.com/docs/en/about-claude/pricing); they live in the model
table (`models.py`) with everything else a model accepts.  Cache writes cost
1.25x input with the 5-minute TTL and 2x with the 1-hour TTL (the client asks
for it when scripts may outlive 5 minutes); cache reads are 0.1x input except
where Anthropic cut them further (Sonnet / Opus 5.5 at 0.05x, Fable / Mythos
5.1 at 0.025x).  Haiku 5.5 has a price band for prompts over 100k tokens.

A model not in the table is priced by its family (haiku / sonnet / opus /
fable / mythos), and a model of no known family at Sonnet-class rates; both
are flagged as estimates so the UI can say "~$".
"""

from __future__ import annotations

import dataclasses

from ..search.node import Usage
from .models import CACHE_WRITE_MULT, Price, model_spec, normalise_model

__all__ = ["Price", "price_for", "cost", "with_cost", "is_estimate", "normalise_model"]

CACHE_WRITE_1H_MULT = 2.0


def price_for(model: str) -> Price:
    """The price of `model`: exact id, else its family (estimate), else Sonnet-class (estimate)."""
    return model_spec(model).price


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
