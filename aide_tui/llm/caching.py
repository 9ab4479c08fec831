"""What prompt caching needs to know: each model's minimum prefix, and the marker to send.

The service caches nothing below a model's minimum prefix and says nothing
about it (both usage counters stay 0), so the client has to know the minimum
to tell a prompt that cannot be cached from one that merely missed.  Figures
live in the model table (`models.py`); a model not in the table gets its
family's figure, and an unknown family the largest, so an estimate never
promises caching that will not happen.
"""

from __future__ import annotations

from .models import MODELS, model_spec

__all__ = ["MIN_CACHE_TOKENS", "min_cache_tokens", "cache_control", "estimate_tokens"]

# Each known model's floor, read from the model table (exact ids, date suffixes stripped).
MIN_CACHE_TOKENS: dict[str, int] = {name: spec.cache_min for name, spec in MODELS.items()}


def min_cache_tokens(model: str) -> int:
    """The smallest prefix `model` caches, in tokens (its family's, or the largest, for unknown models)."""
    return model_spec(model).cache_min


def cache_control(ttl: str = "5m") -> dict[str, str]:
    """The block marker; '5m' is the API's default, so it is left implicit."""
    return {"type": "ephemeral", "ttl": "1h"} if ttl == "1h" else {"type": "ephemeral"}


def estimate_tokens(text: str) -> int:
    """About 4 characters per token: enough to tell 800 tokens from 4,000."""
    return (len(text) + 3) // 4
