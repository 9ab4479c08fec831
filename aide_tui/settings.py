"""Run settings: defaults < PROJECT/aide.toml < command-line flags.

Every setting has one name: snake_case in aide.toml, kebab-case as a flag.
Errors name the file or flag and how to fix it, and raise `UserError`.
This module and `llm/client.py` are the only readers of the environment.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import psutil

from .errors import UserError
from .llm.models import EFFORTS, model_spec
from .llm.thinking import THINKING_CHOICES, thinking_setting_problem

DEFAULT_CODE_MODEL = "claude-sonnet-5-5"
DEFAULT_FEEDBACK_MODEL = "claude-haiku-5-5"


def default_workers() -> int:
    """One node per core, at most 4: beyond that the LLM's rate limits and the
    machine's memory, not the cores, are what a wider search runs into."""
    return max(1, min(os.cpu_count() or 1, 4))


@dataclass
class Settings:
    steps: int = field(
        default=20, metadata={"help": "total number of nodes in the run (a resumed run continues up to it)"}
    )
    num_drafts: int = field(default=5, metadata={"help": "drafts to write before improving or debugging"})
    debug_prob: float = field(
        default=0.5, metadata={"help": "probability of debugging a buggy leaf instead of improving the best node"}
    )
    max_debug_depth: int = field(
        default=3, metadata={"help": "give up debugging a line of fixes after this many debug steps"}
    )
    policy: str = field(
        default="aide+",
        metadata={
            "help": "search policy: aide+ (leaves a line after 4 fruitless improves, merges or drafts when all stall), "
            "aide (the paper's greedy rule) or mcts (UCT, exploring less as the steps run out)"
        },
    )
    edit: str = field(
        default="patch",
        metadata={
            "help": "how improve and debug change a script: patch (search/replace blocks; the whole script if one "
            "does not apply) or rewrite (the whole script every time)"
        },
    )
    timeout: float = field(default=600.0, metadata={"help": "seconds a solution script may run before it is killed"})
    memory_limit: str = field(
        default="", metadata={"help": "memory cap for each node's whole process tree (e.g. 2G, 512M)"}
    )
    output_limit: str = field(default="256K", metadata={"help": "output kept per node (head and tail), e.g. 256K"})
    pids_limit: int = field(
        default=1024, metadata={"help": "processes and threads each node may have at once (where cgroups can be made)"}
    )
    disk_limit: str = field(
        default="2G", metadata={"help": "bytes each node's script may leave in its workspace before it is killed"}
    )
    code_model: str = field(default=DEFAULT_CODE_MODEL, metadata={"help": "Claude model that writes code"})
    feedback_model: str = field(
        default=DEFAULT_FEEDBACK_MODEL, metadata={"help": "Claude model that reviews a run's output"}
    )
    budget: float | None = field(
        default=None, metadata={"help": "stop the run cleanly once LLM spend reaches this many dollars"}
    )
    direction: str = field(
        default="auto", metadata={"help": "maximize, minimize, or auto (the first valid review decides)"}
    )
    seed: int = field(
        default=0, metadata={"help": "seed for the search policy's random choices (and the run's folds and holdout)"}
    )
    holdout: float = field(
        default=0.1,
        metadata={
            "help": "share of training rows withheld from the scripts to score the best nodes on (0 turns it off)"
        },
    )
    coder: str = field(default="auto", metadata={"help": "llm, offline, or auto (llm when ANTHROPIC_API_KEY is set)"})
    max_tokens: int = field(
        default=32_000,
        metadata={
            "help": "largest reply the coding model may write, thinking included (the 5.5 models count their "
            "thinking in it and write up to 128k)"
        },
    )
    thinking: str = field(
        default="auto",
        metadata={
            "help": "the coding model's thinking: auto (the model's default: adaptive on the 5.5 models), off (the "
            "lowest setting the model accepts), adaptive, or a token budget where the model takes one"
        },
    )
    effort: str = field(
        default="",
        metadata={"help": "one effort for draft, improve and debug alike (low … max), overriding the three below"},
    )
    draft_effort: str = field(
        default="high", metadata={"help": "effort (thinking depth) of drafts: low, medium, high, xhigh or max"}
    )
    improve_effort: str = field(default="medium", metadata={"help": "effort of improvements (low … max)"})
    debug_effort: str = field(default="medium", metadata={"help": "effort of fixes (low … max)"})
    review_effort: str = field(default="low", metadata={"help": "effort of the review and the task card (low … max)"})
    max_refusals: int = field(
        default=3, metadata={"help": "stop the run after this many refused replies in a row (0: never stop)"}
    )
    llm_timeout: float = field(default=300.0, metadata={"help": "seconds before one LLM request gives up"})
    llm_retries: int = field(default=4, metadata={"help": "SDK retries for 429/529/5xx before the step fails"})
    memory_chars: int = field(default=6000, metadata={"help": "size budget of the 'what was tried' summary in prompts"})
    preview_chars: int = field(default=6000, metadata={"help": "size budget of the data preview in prompts"})
    python: str = field(
        default="", metadata={"help": "Python interpreter that runs solutions (default: the one running aide-tui)"}
    )
    sandbox: str = field(
        default="auto",
        metadata={
            "help": "bwrap (isolate each script; fail if bubblewrap cannot start), none, or auto (bwrap when it can start, else none, said once)"
        },
    )
    network: bool = field(
        default=False, metadata={"help": "let sandboxed scripts use the host's network (otherwise they have none)"}
    )
    sandbox_read: list[str] = field(
        default_factory=list,
        metadata={
            "help": "extra paths a sandboxed script may read, e.g. ~/.cache/huggingface (repeat the flag or separate with commas)"
        },
    )
    preload: list[str] | None = field(
        default=None,
        metadata={
            "help": "modules each node's interpreter imports while the model writes the code (warm start); [] or '' turns it off"
        },
    )
    env_pass: list[str] = field(
        default_factory=list,
        metadata={
            "help": "names of environment variables passed to scripts besides the built-in allow-list (repeat or comma-separate)"
        },
    )
    workers: int = field(
        default_factory=default_workers, metadata={"help": "nodes in flight at once (1 is the paper's sequential AIDE)"}
    )
    executor: str = field(
        default="local",
        metadata={
            "help": "where scripts run: local (this machine) or ray (a Ray cluster; pip install 'aide-tui[ray]')"
        },
    )
    ray_address: str = field(
        default="",
        metadata={"help": "with --executor ray: the cluster's HOST:PORT (default: RAY_ADDRESS, else a local cluster)"},
    )
    node_cpus: float = field(default=1.0, metadata={"help": "with --executor ray: CPUs Ray reserves for each node"})
    node_gpus: float = field(default=0.0, metadata={"help": "with --executor ray: GPUs Ray reserves for each node"})

    given_flags: frozenset = field(default=frozenset(), repr=False, compare=False, metadata={"internal": True})
    task_table: dict = field(default_factory=dict, repr=False, compare=False, metadata={"internal": True})
    """aide.toml's `[task]` table: corrections to the derived task card (search/task_card.py)."""

    # -- derived values
    @property
    def memory_limit_mb(self) -> int:
        """The setting, or half of the machine's RAM shared by the nodes that run at once,
        so that runaway scripts together cannot take the machine down."""
        if not self.memory_limit:
            return psutil.virtual_memory().total // (2 * 1024 * 1024 * self.workers)
        return parse_size(self.memory_limit, "memory_limit") // (1024 * 1024)

    @property
    def disk_limit_mb(self) -> int:
        return parse_size(self.disk_limit, "disk_limit") // (1024 * 1024)

    @property
    def output_limit_bytes(self) -> int:
        return parse_size(self.output_limit, "output_limit")

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SETTING_NAMES}


SETTING_NAMES = [f.name for f in fields(Settings) if not f.metadata.get("internal")]
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.I)


def parse_size(text: str | int, name: str) -> int:
    """'2G' -> bytes.  Plain numbers are bytes."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(str(text))
    if not m:
        raise UserError(f"{name} = {text!r} is not a size; use a number with K, M or G (e.g. 2G)")
    mult = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}[m.group(2).lower()]
    return int(float(m.group(1)) * mult)


def _coerce(name: str, value: Any, where: str) -> Any:
    f = next(f for f in fields(Settings) if f.name == name)
    typ = str(f.type)
    try:
        if value is None or (isinstance(value, str) and value.lower() in ("", "none") and "None" in typ):
            if "None" in typ:
                return None
            raise ValueError
        if typ.startswith("int"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if typ.startswith("float"):
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if typ == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text not in ("true", "false", "yes", "no", "1", "0"):
                raise ValueError
            return text in ("true", "yes", "1")
        if typ.startswith("list"):
            return _as_list(value)
        return str(value)
    except (TypeError, ValueError):
        kind = {"bool": "true/false", "list[str]": "list of strings"}.get(typ, typ.split(" ")[0])
        raise UserError(f"{where}: {name} = {value!r} is not a valid {kind}") from None


def _as_list(value: Any) -> list[str]:
    """A list from aide.toml, or from flags: each (repeated) value may hold several, comma-separated."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError
    return [item.strip() for v in value for item in v.split(",") if item.strip()]


def _validate(s: Settings, sources: dict[str, str]) -> None:
    """Check value ranges; an error names where the bad value came from (`sources[name]`:
    the aide.toml file or the flag), never another setting's origin."""

    def bad(name: str, why: str) -> None:
        where = sources.get(name, "default")
        raise UserError(f"{where}: {name} {why} (got {getattr(s, name)!r})")

    if s.steps < 1:
        bad("steps", "must be at least 1")
    if s.num_drafts < 0:
        bad("num_drafts", "must be 0 or more")
    if not 0.0 <= s.debug_prob <= 1.0:
        bad("debug_prob", "must be between 0 and 1")
    if s.max_debug_depth < 0:
        bad("max_debug_depth", "must be 0 or more")
    if s.policy not in ("aide", "aide+", "mcts"):
        bad("policy", "must be aide+, aide or mcts")
    if s.edit not in ("patch", "rewrite"):
        bad("edit", "must be patch or rewrite")
    if s.timeout <= 0:
        bad("timeout", "must be a positive number of seconds")
    if not 0.0 <= s.holdout < 0.5:
        bad("holdout", "must be at least 0 and below 0.5 (a share of the training rows)")
    if s.budget is not None and s.budget <= 0:
        bad("budget", "must be a positive number of dollars")
    if s.direction not in ("auto", "maximize", "minimize"):
        bad("direction", "must be maximize, minimize or auto")
    if s.coder not in ("auto", "llm", "offline"):
        bad("coder", "must be llm, offline or auto")
    if s.thinking not in THINKING_CHOICES and not (s.thinking.isdigit() and 1024 <= int(s.thinking) < s.max_tokens):
        bad(
            "thinking", f"must be auto, off, adaptive, or a token budget from 1024 to below max_tokens ({s.max_tokens})"
        )
    problem = thinking_setting_problem(s.code_model, s.thinking)
    if problem:
        bad("thinking", f"cannot be used: {problem}")
    for name in ("effort", "draft_effort", "improve_effort", "debug_effort", "review_effort"):
        if getattr(s, name) not in ("", *EFFORTS):
            bad(name, "must be low, medium, high, xhigh or max (or empty for the model's default)")
    longest = model_spec(s.code_model).max_output
    if not 1 <= s.max_tokens <= longest:
        bad("max_tokens", f"must be from 1 to {longest:,}, the most {s.code_model} writes in one reply")
    if s.max_refusals < 0:
        bad("max_refusals", "must be 0 or more")
    if s.sandbox not in ("auto", "bwrap", "none"):
        bad("sandbox", "must be auto, bwrap or none")
    bad_name = next((n for n in s.env_pass if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n)), None)
    if bad_name is not None:
        bad("env_pass", f"has {bad_name!r}, which is not an environment variable name")
    for name in ("memory_limit", "output_limit", "disk_limit"):
        if name == "memory_limit" and not s.memory_limit:
            continue  # the default: half of RAM / workers
        try:
            parse_size(getattr(s, name), name)
        except UserError:
            bad(name, "not a size; use a number with K, M or G (e.g. 2G)")
    if s.workers < 1:
        bad("workers", "must be at least 1")
    if s.executor not in ("local", "ray"):
        bad("executor", "must be local or ray")
    if s.node_cpus <= 0 or s.node_gpus < 0:
        bad("node_cpus" if s.node_cpus <= 0 else "node_gpus", "must be a positive number (node_gpus may be 0)")
    if s.memory_limit_mb < 16:
        bad("memory_limit", "must be at least 16M")
    if s.pids_limit < 16:
        bad("pids_limit", "must be at least 16 (a Python script alone runs a few threads)")
    if s.disk_limit_mb < 1:
        bad("disk_limit", "must be at least 1M")


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror}); check the file's permissions") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML ({exc}); fix the syntax or delete the file") from None
    # Accept a flat table or an [aide] section.
    if isinstance(data.get("aide"), dict):
        data = {**{k: v for k, v in data.items() if k != "aide"}, **data["aide"]}
    return data


def resolve(project_toml: Path | None, overrides: dict[str, Any]) -> Settings:
    """Build Settings from defaults, the project's aide.toml and flag overrides."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}  # setting -> where its value came from, for error messages
    task_table: dict[str, Any] = {}
    if project_toml is not None and project_toml.exists():
        data = load_toml(project_toml)
        if "task" in data:
            task_table = data.pop("task")
            if not isinstance(task_table, dict):
                raise UserError(f"{project_toml}: task must be a table ([task] with train_file, target, ...)")
        for key, value in data.items():
            name = key.replace("-", "_")
            if name not in SETTING_NAMES:
                close = [n for n in SETTING_NAMES if n.split("_")[0] in name or name in n]
                tip = f"; did you mean {close[0]}?" if close else f"; known settings: {', '.join(SETTING_NAMES)}"
                raise UserError(f"{project_toml}: unknown setting {key!r}{tip}")
            sources[name] = str(project_toml)
            values[name] = _coerce(name, value, str(project_toml))
    for name, value in overrides.items():
        if value is not None:
            sources[name] = f"--{name.replace('_', '-')}"
            values[name] = _coerce(name, value, sources[name])
    settings = Settings(**values)
    _validate(settings, sources)
    # Which settings the user gave on this command line: a resumed run keeps its
    # own step target unless --steps is given again.
    settings.given_flags = frozenset(n for n, v in overrides.items() if v is not None)
    settings.task_table = task_table
    return settings


def ray_address(settings: Settings) -> str:
    """The cluster to use: the setting, else Ray's own RAY_ADDRESS variable."""
    return settings.ray_address or os.environ.get("RAY_ADDRESS", "")


def api_key_present() -> bool:
    return bool(os.environ.get("ANTHROPIC_API_KEY"))
