"""What prompt caching needs to know: each model's minimum prefix, and the marker to send.

The service caches nothing below a model's minimum prefix and says nothing
about it (both usage counters stay 0), so the client has to know the minimum
to tell a prompt that cannot be cached from one that merely missed.  Figures
are Anthropic's published ones (see /work/shared/FACTS.md); a model not in the
table gets its family's figure, and an unknown family the largest, so an
estimate never promises caching that will not happen.
"""

from __future__ import annotations

from .pricing import normalise_model

__all__ = ["MIN_CACHE_TOKENS", "min_cache_tokens", "cache_control", "estimate_tokens"]

# Exact model ids (date suffixes stripped), then family prefixes: first match wins.
MIN_CACHE_TOKENS: dict[str, int] = {
    "claude-opus-5": 512,
    "claude-fable-5": 512,
    "claude-mythos-5": 512,
    "claude-haiku-5-5": 512,  # the Haiku 5.5 model page: 512 (4,096 on Haiku 4.5)
    "claude-sonnet-5-5": 1024,
    "claude-sonnet-5": 1024,
    "claude-sonnet-4-5": 1024,
    "claude-opus-4-8": 1024,
    "claude-opus-4-1": 1024,
    "claude-opus-4-0": 1024,
    "claude-opus-4": 1024,
    "claude-sonnet-4-0": 1024,
    "claude-sonnet-4": 1024,
    "claude-opus-4-7": 2048,
    "claude-sonnet-4-6": 2048,  # 1,024 published; 2,048 reported in practice
    "claude-haiku-4-5": 4096,
    "claude-opus-4-5": 4096,
    "claude-opus-4-6": 4096,
    "claude-3-5-haiku": 2048,
}
# Newer versions of a family (e.g. claude-sonnet-5-5) fall back to the family's newest figure.
_FAMILY_MIN = [
    ("claude-opus-5", 512),
    ("claude-fable-", 512),
    ("claude-mythos-", 512),
    ("claude-sonnet-5", 1024),
    ("claude-haiku-5", 512),
]
UNKNOWN_MIN = 4096


def min_cache_tokens(model: str) -> int:
    """The smallest prefix `model` caches, in tokens (conservative for unknown models)."""
    key = normalise_model(model)
    if key in MIN_CACHE_TOKENS:
        return MIN_CACHE_TOKENS[key]
    for prefix, tokens in _FAMILY_MIN:
        if key.startswith(prefix):
            return tokens
    return UNKNOWN_MIN


def cache_control(ttl: str = "5m") -> dict[str, str]:
    """The block marker; '5m' is the API's default, so it is left implicit."""
    return {"type": "ephemeral", "ttl": "1h"} if ttl == "1h" else {"type": "ephemeral"}


def estimate_tokens(text: str) -> int:
    """About 4 characters per token: enough to tell 800 tokens from 4,000."""
    return (len(text) + 3) // 4
