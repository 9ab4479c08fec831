"""Two-line status: run, step, phase, elapsed, tokens and cost, next operation, queued override."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from ...state import RunModel, step_text
from .node_tree import Palette

SPINNER = "◐◓◑◒"  # geometric shapes: present in common monospace fonts, unlike braille


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def format_tokens(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return str(n)


class StatusBar(Static):
    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.palette = Palette()
        self.frame = 0  # spinner frame; advanced by the app's ticker (frozen in tests)

    def update_from(self, model: RunModel) -> None:
        p = self.palette
        line1 = Text(no_wrap=True, overflow="ellipsis")
        line1.append(model.run_name or "starting…", style="bold")
        if model.resumed:
            line1.append(" (resumed)", style=p.muted)
        line1.append("  step ")
        line1.append(f"{model.step_now}/{model.steps_total or '?'}", style="bold")
        line1.append("  ")
        if model.state == "paused":
            line1.append("‖ paused", style=f"bold {p.warning}")
        elif model.state in ("pausing", "stopping") and model.running_id is None:
            line1.append(f"· {model.phase_text()}", style=p.warning)
        elif model.state == "failed":
            line1.append("✗ " + model.phase_text(), style=f"bold {p.error}")
        elif model.state == "finished":
            line1.append("■ " + model.phase_text(), style=f"bold {p.success}")
        else:
            spin = SPINNER[self.frame % len(SPINNER)] if model.running_id is not None else "·"
            line1.append(f"{spin} {model.phase_text()}", style=p.warning if model.running_id is not None else "")
            if len(model.running) > 1:
                line1.append(f" · {len(model.running)} running", style=f"bold {p.warning}")

        line2 = Text(no_wrap=True, overflow="ellipsis")
        u = model.accrued_usage  # nodes in flight count from their first model call, not only once finished
        line2.append(format_duration(model.elapsed), style="bold")
        line2.append("  ")
        line2.append(f"{format_tokens(u.input_tokens + u.output_tokens)} tok")
        line2.append(f"  ${u.cost:.2f}", style="bold")
        if model.budget:
            share = u.cost / model.budget
            style = p.error if share >= 0.9 else (p.warning if share >= 0.7 else "")
            line2.append(f" of ${model.budget:.2f}", style=style)
        if model.coder == "offline":
            line2.append("  offline coder", style=p.warning)
        if model.active:  # a finished run plans nothing
            self._append_plan(line2, model)
        both = Text("\n", no_wrap=True, overflow="ellipsis").join([line1, line2])
        both.no_wrap = True
        both.overflow = "ellipsis"
        self.update(both)

    def _append_plan(self, line2: Text, model: RunModel) -> None:
        """What runs next, what the user queued behind it, and hints waiting for a prompt."""
        p = self.palette
        nxt = model.next_planned
        if nxt is not None:
            who = "you" if nxt.source == "command" else "policy"
            line2.append("  next: ", style=p.muted)
            line2.append(step_text(nxt.operation, nxt.parent_id), style="bold")
            line2.append(f" ({who})", style=p.muted)
        if model.waiting:
            line2.append("  queued: ", style=p.muted)
            line2.append(
                ", ".join(step_text(s.operation, s.parent_id) for s in model.waiting), style=f"bold {p.accent}"
            )
        if model.hints:
            line2.append(f"  +{len(model.hints)} hint{'s' if len(model.hints) > 1 else ''}", style=p.accent)
