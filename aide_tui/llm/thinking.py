"""The `thinking` and `effort` fields of a request, from the settings and the model table.

Why a module: "off" is not one request shape.  Sonnet 5.5 turns thinking off
with `between_tools` (and refuses it at effort xhigh/max), Haiku 5.5 with
`disabled`, Opus 5.5 not at all; every 5.5 model refuses a thinking budget and
thinks adaptively when no `thinking` field is sent.  The settings say what the
user means (`auto | off | adaptive`, or a budget where the model takes one);
this module says how to ask the model for it, and what it had to change.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models import EFFORTS, model_spec

__all__ = ["ThinkingShape", "thinking_shape", "thinking_setting_problem", "lower_effort", "THINKING_CHOICES"]

THINKING_CHOICES = ("auto", "off", "adaptive")


@dataclass(frozen=True)
class ThinkingShape:
    thinking: dict | None  # the request's `thinking` field (None: not sent)
    effort: str | None  # `output_config.effort` (None: not sent)
    note: str = ""  # what was changed from the settings, to say once

    @property
    def thinks(self) -> bool:
        return self.thinking is None or self.thinking.get("type") in ("adaptive", "enabled")


def thinking_setting_problem(model: str, setting: str) -> str | None:
    """Why `thinking = setting` cannot work on `model` (one line with the fix), or None."""
    spec = model_spec(model)
    if setting.isdigit():
        if "enabled" not in spec.thinking_modes:
            return (
                f"{model} does not accept a thinking budget ({setting} tokens); use thinking = adaptive "
                "(or auto) and set its depth with draft_effort / improve_effort / debug_effort (low … max)"
            )
        return None
    if setting == "adaptive" and "adaptive" not in spec.thinking_modes:
        return f"{model} has no adaptive thinking; use thinking = off, auto, or a token budget (e.g. 4096)"
    return None


def lower_effort(effort: str | None, default: str | None = None) -> str | None:
    """The next effort down from `effort` (or from the model's default), None below 'low'."""
    current = effort or default or "high"
    index = EFFORTS.index(current) if current in EFFORTS else 2
    return EFFORTS[index - 1] if index > 0 else None


def thinking_shape(model: str, setting: str, effort: str | None) -> ThinkingShape:
    """How to ask `model` for thinking `setting` at `effort` (empty: the model's default).

    auto: the model's own default (no `thinking` field; 5.5 models then think adaptively).
    off: the lowest setting the model accepts; where `between_tools` is refused at the
      requested effort, the effort is lowered to 'high'; where thinking cannot be turned
      off (Opus 5.5), effort 'low' instead.
    adaptive: `{"type": "adaptive"}`.
    a number: a thinking budget (settings refuse it at start where the model does not take one).
    """
    spec = model_spec(model)
    effort = effort or None
    note = ""
    if effort is not None and effort not in spec.efforts:
        # An unknown model's notice (said at the start) already says no effort is sent.
        note = f"{model} takes no effort {effort!r}; sent without one" if spec.known else ""
        effort = None
    thinking: dict | None = None
    if setting == "off":
        lowest = spec.lowest_thinking
        if lowest is None:
            thinking, effort = None, "low" if "low" in spec.efforts else None
            note = f"{model} cannot turn thinking off; asking for effort low instead"
        else:
            thinking = {"type": lowest}
            if lowest == "between_tools" and effort in spec.off_refused_at:
                note = f"{model} cannot turn thinking off at effort {effort}; using effort high"
                effort = "high"
    elif setting == "adaptive":
        thinking = {"type": "adaptive"}
    elif setting.isdigit():
        thinking = {"type": "enabled", "budget_tokens": int(setting)}
    return ThinkingShape(thinking, effort, note)
