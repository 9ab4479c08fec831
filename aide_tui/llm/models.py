"""What each Claude model accepts, in one table: thinking modes, forced tool choice, effort, cache floor, output, prices.

Why one table: the 5.5 generation answers 400 to request shapes that earlier
models took (a thinking budget, `thinking: disabled`, forced tool choice), thinks
by default, and counts its thinking in `max_tokens`.  Every caller that builds
a request (the coder, the review, the task card), the cache-floor check and the
price of a call ask this module, so a new model is one row here, not a hunt
through the code.

Figures are the published ones (the models' "What's new" pages and pricing
page, summarised in /work/shared/FACTS.md).  An id not in the table gets safe
defaults (no forced tool choice, adaptive thinking assumed on, its family's
price and cache floor as estimates) and `unknown_model_notice` says so once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

__all__ = [
    "EFFORTS",
    "ModelSpec",
    "Price",
    "MODELS",
    "model_spec",
    "normalise_model",
    "unknown_model_notice",
]

EFFORTS = ("low", "medium", "high", "xhigh", "max")  # lowest first
CACHE_WRITE_MULT = 1.25
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


@dataclass(frozen=True)
class ModelSpec:
    """What one model accepts on a Messages API request."""

    price: Price
    cache_min: int  # smallest prefix it caches, in tokens (below it nothing is cached, silently)
    max_output: int = 64_000  # largest `max_tokens` it takes (thinking included)
    # Accepted `thinking.type` values: "adaptive", "between_tools", "disabled", "enabled" (a budget).
    thinking_modes: frozenset[str] = frozenset({"enabled", "disabled"})
    thinks_by_default: bool = False  # a request without `thinking` thinks adaptively
    forced_tool: bool = True  # accepts tool_choice {"type": "tool"} / {"type": "any"}
    efforts: tuple[str, ...] = ()  # accepted `output_config.effort` values (empty: do not send one)
    default_effort: str | None = None  # the API's effort when none is sent
    # Efforts at which the lowest thinking setting (`between_tools`) is refused.
    off_refused_at: frozenset[str] = frozenset()
    prefill: bool = True  # accepts a request ending with an assistant turn (continuing a reply)
    known: bool = True  # False: an id not in the table, described by safe defaults

    @property
    def lowest_thinking(self) -> str | None:
        """The `thinking.type` that thinks least ("disabled" where allowed), or None if it cannot be turned off."""
        for mode in ("disabled", "between_tools"):
            if mode in self.thinking_modes:
                return mode
        return None


_ALL = frozenset({"adaptive", "between_tools", "disabled", "enabled"})
_HAIKU_55_LONG = _p(0.50, 2.50)

# The 5.5 generation: thinks adaptively by default, budgets refused, 128k output.
_SONNET_55 = ModelSpec(
    price=_p(2.0, 10.0, 0.05),
    cache_min=512,  # its comparison page: 512 (1,024 on Sonnet 5)
    max_output=128_000,
    thinking_modes=frozenset({"adaptive", "between_tools"}),
    thinks_by_default=True,
    forced_tool=False,
    efforts=EFFORTS,
    default_effort="high",
    off_refused_at=frozenset({"xhigh", "max"}),
    prefill=False,
)
_OPUS_55 = replace(
    _SONNET_55, price=_p(4.0, 20.0, 0.05), thinking_modes=frozenset({"adaptive"}), default_effort="medium"
)
_HAIKU_55 = ModelSpec(
    price=_p(0.10, 0.50, long_prompt_threshold=100_000, long_prompt=_HAIKU_55_LONG),
    cache_min=512,  # not published where we looked; the generation's floor
    max_output=128_000,
    thinking_modes=frozenset({"adaptive", "disabled"}),
    thinks_by_default=True,
    forced_tool=True,  # its breaking changes list budgets, sampling and prefill, not forced tool choice
    efforts=EFFORTS,
    default_effort="medium",
    prefill=False,
)
# Fable / Mythos 5.1: always thinking, no forced tool choice.
_FABLE_51 = replace(_OPUS_55, price=_p(10.0, 50.0, 0.025), default_effort="high")
# Earlier generations: thinking off unless asked, budgets and forced tool choice accepted.
_ADAPTIVE_ERA = ModelSpec(
    price=_p(5.0, 25.0),
    cache_min=1024,
    max_output=128_000,
    thinking_modes=_ALL - {"between_tools"},
    efforts=EFFORTS,
    default_effort="high",
)
_LEGACY = ModelSpec(price=_p(3.0, 15.0), cache_min=1024)

# Exact model ids (date suffixes and "[1m]" are stripped before lookup).
MODELS: dict[str, ModelSpec] = {
    "claude-sonnet-5-5": _SONNET_55,
    "claude-opus-5-5": _OPUS_55,
    "claude-haiku-5-5": _HAIKU_55,
    "claude-fable-5-1": _FABLE_51,
    "claude-mythos-5-1": _FABLE_51,
    # 5.2 and the preview had no published rate when this table was written: estimates.
    "claude-fable-5-2": replace(_FABLE_51, price=_p(10.0, 50.0, 0.025, estimate=True)),
    "claude-mythos-5-2": replace(_FABLE_51, price=_p(10.0, 50.0, 0.025, estimate=True)),
    "claude-mythos-preview": replace(_FABLE_51, price=_p(10.0, 50.0, estimate=True), cache_min=512),
    "claude-fable-5": replace(_ADAPTIVE_ERA, price=_p(10.0, 50.0), cache_min=512),
    "claude-mythos-5": replace(_ADAPTIVE_ERA, price=_p(10.0, 50.0), cache_min=512),
    "claude-opus-5": replace(_ADAPTIVE_ERA, cache_min=512),
    "claude-sonnet-5": replace(_ADAPTIVE_ERA, price=_p(2.0, 10.0)),
    "claude-opus-4-8": _ADAPTIVE_ERA,
    "claude-opus-4-7": replace(_ADAPTIVE_ERA, cache_min=2048),
    "claude-opus-4-6": replace(_ADAPTIVE_ERA, cache_min=4096),
    "claude-sonnet-4-6": replace(_ADAPTIVE_ERA, price=_p(3.0, 15.0), cache_min=2048),  # 1,024 published
    "claude-opus-4-5": replace(_LEGACY, price=_p(5.0, 25.0), cache_min=4096, efforts=EFFORTS[:3]),
    "claude-opus-4-1": replace(_LEGACY, price=_p(15.0, 75.0), max_output=32_000),
    "claude-opus-4-0": replace(_LEGACY, price=_p(15.0, 75.0), max_output=32_000),
    "claude-opus-4": replace(_LEGACY, price=_p(15.0, 75.0), max_output=32_000),
    "claude-sonnet-4-5": _LEGACY,
    "claude-sonnet-4-0": _LEGACY,
    "claude-sonnet-4": _LEGACY,
    "claude-haiku-4-5": replace(_LEGACY, price=_p(1.0, 5.0), cache_min=4096),
    "claude-3-5-haiku": replace(_LEGACY, price=_p(0.80, 4.0), cache_min=2048, max_output=8192),
}

# Ids not in MODELS: the family's price and cache floor (estimates), and the safe
# request shape -- no forced tool choice, adaptive thinking assumed on.
_UNKNOWN = ModelSpec(
    price=_p(3.0, 15.0, estimate=True),
    cache_min=4096,  # the largest floor: an estimate never promises caching that will not happen
    max_output=64_000,
    thinking_modes=frozenset({"adaptive"}),
    thinks_by_default=True,
    forced_tool=False,
    efforts=(),
    prefill=False,
    known=False,
)
FAMILIES: list[tuple[str, ModelSpec]] = [
    ("fable", replace(_UNKNOWN, price=_p(10.0, 50.0, estimate=True), cache_min=512)),
    ("mythos", replace(_UNKNOWN, price=_p(10.0, 50.0, estimate=True), cache_min=512)),
    ("opus", replace(_UNKNOWN, price=_p(5.0, 25.0, estimate=True), cache_min=512)),
    ("sonnet", replace(_UNKNOWN, cache_min=1024)),
    ("haiku", replace(_UNKNOWN, price=_p(1.0, 5.0, estimate=True), cache_min=512)),
]

_SUFFIX = re.compile(r"(-\d{8}|-latest|\[1m\])+$")


def normalise_model(model: str) -> str:
    """The table key of a model id: lower case, no provider prefix, no date or [1m] suffix."""
    model = model.strip().lower()
    if "/" in model:  # e.g. "anthropic/claude-..." from a settings file
        model = model.rsplit("/", 1)[1]
    return _SUFFIX.sub("", model)


def model_spec(model: str) -> ModelSpec:
    """The row of `model`: exact id, else its family's safe defaults, else Sonnet-class safe defaults."""
    key = normalise_model(model)
    if key in MODELS:
        return MODELS[key]
    for family, spec in FAMILIES:
        if family in key:
            return spec
    return _UNKNOWN


def unknown_model_notice(model: str) -> str | None:
    """One line for a model id the table does not know (None for a known one)."""
    if model_spec(model).known:
        return None
    return (
        f"{model} is not in aide-tui's model table: assuming adaptive thinking, no forced tool choice, "
        "no effort setting, and estimated prices"
    )
