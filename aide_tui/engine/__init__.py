"""The engine: the step loop that chooses, writes code, runs it, reviews it and makes it durable.

The front ends import `Engine` and `build_engine` from here; the parts live in their own modules:
core (the `Engine` face: start, finish, events), loop (the scheduler, nodes in flight),
step (one node: code -> run -> review -> commit), warm (warm-start interpreters),
holdout (holdout scoring and the final pick), build (assembly from a project and settings).
"""

from ..records import branch_name
from .build import build_engine, build_executor, choose_coder_name
from .core import Engine, Listener
from .loop import Cancelled, InFlight
from .step import MAX_CONSECUTIVE_LLM_FAILURES, StepTimings
from .warm import WARM_AHEAD

__all__ = [
    "MAX_CONSECUTIVE_LLM_FAILURES",
    "WARM_AHEAD",
    "Cancelled",
    "Engine",
    "InFlight",
    "Listener",
    "StepTimings",
    "branch_name",
    "build_engine",
    "build_executor",
    "choose_coder_name",
]
