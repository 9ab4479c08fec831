"""The offline coder: AIDE's operators without an LLM, for tabular CSV tasks.

It is the baseline that makes aide-tui usable (and testable) with no API key:
drafts come from a rotation of scikit-learn recipes, improvements change one
recipe field, debugging classifies the traceback and regenerates a robust
script, and the review parses the metric line.  It never starts processes
(the engine's runner executes the scripts) and imports neither anthropic nor
Textual.  Everything is deterministic for a given seed.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import FatalRunError
from ..coder import DeltaSink, Proposal, Review, TaskContext
from ..node import Direction, Node
from .debugging import diagnose, family_in_code, fixed_recipe
from .improvements import choose, family_in_hint
from .merging import merge_recipes
from .recipe import MODELS, Recipe, parse_recipe, recipe_changes
from .review import last_metric, review_node
from .sizing import fits_in_time, size_recipe
from .task_reader import TaskCard, TaskReadError, TaskSpec, derive_task_card, read_task
from .templates import describe, render, validation_words

__all__ = [
    "OfflineCoder",
    "Recipe",
    "TaskCard",
    "TaskSpec",
    "derive_task_card",
    "parse_recipe",
    "recipe_changes",
    "read_task",
    "last_metric",
]

DRAFT_ORDER = ["linear", "random_forest", "hist_gradient_boosting", "extra_trees", "knn", "gradient_boosting"]
CHUNK = 240  # characters per on_delta call, so front ends show the code being "written"


def base_recipe(family: str, task_type: str) -> Recipe:
    """The starting recipe for a family: preprocessing chosen to suit the model."""
    spec = MODELS[family]
    return Recipe(
        model=family,
        params=spec.defaults(task_type),
        scaler="standard" if spec.scale_sensitive else None,
        encoding="ordinal" if family in ("hist_gradient_boosting", "gradient_boosting") else "onehot",
        validation="cv" if family in ("linear", "hist_gradient_boosting", "knn") else "holdout",
    )


class OfflineCoder:
    name = "offline"

    def __init__(self, project_dir: Path, data_files: list[str], seed: int = 0, card: TaskCard | None = None):
        self.project_dir = Path(project_dir)
        self.data_files = list(data_files)
        self.seed = seed
        self.card = card  # the confirmed task card; None: derive it from task.md and the data
        self._spec: tuple[str, TaskSpec] | None = None
        self._drafted: list[str] = []  # families drafted so far, in order
        self._proposed: dict[int, set[str]] = {}  # parent id -> change keys proposed for it

    # -- the Coder protocol
    def draft(self, ctx: TaskContext, on_delta: DeltaSink) -> Proposal:
        spec = self._task(ctx)
        recipe, why = self._next_draft(ctx)
        for _ in DRAFT_ORDER:  # a family predicted to overrun the timeout is not drafted
            if fits_in_time(recipe, spec, ctx.cpus, ctx.timeout) or family_in_hint(ctx.hint):
                break
            skipped = MODELS[recipe.model].display
            recipe, why = self._next_draft(ctx)
            why += f" (A {skipped} on {spec.n_rows:,} rows is predicted to overrun the {ctx.timeout:.0f} s limit.)"
        recipe = size_recipe(recipe, spec, ctx.cpus, ctx.timeout)
        plan = (
            f"Draft: {describe(recipe)}, validated with "
            f"{validation_words(recipe, spec)} "
            f"on {spec.metric_name} ({'higher' if spec.direction == 'maximize' else 'lower'} is better). "
            f"{why}"
        )
        return self._propose(plan, render(spec, recipe, self.seed), on_delta)

    def improve(self, ctx: TaskContext, parent: Node, on_delta: DeltaSink) -> Proposal:
        spec = self._task(ctx)
        recipe = parse_recipe(parent.code)
        if recipe is None:
            family = family_in_hint(ctx.hint) or family_in_code(parent.code) or "hist_gradient_boosting"
            recipe = size_recipe(base_recipe(family, spec.task_type), spec, ctx.cpus, ctx.timeout)
            recipe.history = [f"rewrite:{family}"]
            plan = (
                f"Node {parent.id}'s script was not written by the offline coder, so I cannot change it one "
                f"step at a time; this is a fresh, structured version: {describe(recipe)}. Later improvements "
                "will then change one thing at a time."
            )
            return self._propose(plan, render(spec, recipe, self.seed), on_delta)
        exclude = self._proposed.setdefault(parent.id, set())
        child, change = choose(recipe, spec, exclude, ctx.hint)
        exclude.add(change.key)
        # The change first: the memory shows a plan's start as "what changed".
        plan = f"{change.plan} (Improves node {parent.id}: {describe(recipe)}.)"
        child = size_recipe(child, spec, ctx.cpus, ctx.timeout)
        return self._propose(plan, render(spec, child, self.seed), on_delta)

    def debug(self, ctx: TaskContext, parent: Node, on_delta: DeltaSink) -> Proposal:
        spec = self._task(ctx)
        diagnosis = diagnose(parent)
        recipe = parse_recipe(parent.code)
        evidence = f" (`{diagnosis.evidence}`)" if diagnosis.evidence else ""
        if diagnosis.kind == "unknown":
            base, why = self._next_draft(ctx)
            fixed = fixed_recipe(recipe or base, diagnosis)
            plan = (
                f"I could not recognise why node {parent.id} failed{evidence}, so this is a fresh draft "
                f"rather than a targeted fix: {describe(fixed)}."
            )
            fixed = size_recipe(fixed, spec, ctx.cpus, ctx.timeout)
            return self._propose(plan, render(spec, fixed, self.seed), on_delta)
        if recipe is None:
            family = family_in_code(parent.code) or "hist_gradient_boosting"
            base = base_recipe(family, spec.task_type)
            keep = "keeping its model family" if family_in_code(parent.code) else "written afresh"
        else:
            base, keep = recipe, "keeping the same recipe"
        fixed = fixed_recipe(base, diagnosis)
        plan = (
            f"Node {parent.id} failed{evidence}: {diagnosis.cause}. The fixed script {diagnosis.fix}, "
            f"{keep}: {describe(fixed)}."
        )
        fixed = size_recipe(fixed, spec, ctx.cpus, ctx.timeout)
        return self._propose(plan, render(spec, fixed, self.seed), on_delta)

    def merge(self, ctx: TaskContext, parent: Node, other: Node, on_delta: DeltaSink) -> Proposal:
        spec = self._task(ctx)
        first, second = parse_recipe(parent.code), parse_recipe(other.code)
        if first is None or second is None:  # not scripts it wrote: improve the first instead
            return self.improve(ctx, parent, on_delta)
        merged, took = merge_recipes(first, second)
        if not took:
            return self.improve(ctx, parent, on_delta)
        plan = (
            f"Merge node {other.id} into node {parent.id}: take {', '.join(took)}. "
            f"(Builds on node {parent.id}: {describe(first)}; node {other.id}: {describe(second)}.)"
        )
        return self._propose(plan, render(spec, merged, self.seed), on_delta)

    def review(self, ctx: TaskContext, node: Node) -> Review:
        direction: Direction | None
        try:
            spec = self._task(ctx)
            direction, name, expects = ctx.direction or spec.direction, spec.metric_name, spec.test_path is not None
        except FatalRunError:
            direction, name, expects = ctx.direction, "metric", False
        return review_node(node, direction, name, expects_submission=expects)

    def restore(self, nodes: list[Node]) -> None:
        """Rebuild what this coder remembers from a resumed run's nodes, so it does not
        redraft the same model families or repeat an improvement already proposed."""
        self._drafted = []
        self._proposed = {}
        for node in sorted(nodes, key=lambda n: n.id):
            recipe = parse_recipe(node.code)
            if recipe is None:
                continue
            if node.operation == "draft":
                self._drafted.append(recipe.model)
            elif node.operation == "improve" and node.parent_id is not None and recipe.history:
                self._proposed.setdefault(node.parent_id, set()).add(recipe.history[-1])

    # -- helpers
    def _task(self, ctx: TaskContext) -> TaskSpec:
        """The task as the scripts need it.  A task the offline coder cannot read stops the
        run: every later step would fail the same way, so it says why once, at the first step."""
        if self._spec is None or self._spec[0] != ctx.task:
            try:
                self._spec = (ctx.task, read_task(self.project_dir, self.data_files, ctx.task, self.card))
            except (TaskReadError, OSError, ValueError) as exc:
                raise FatalRunError(f"offline coder: {exc}") from exc
        self._spec[1].folds_path = ctx.folds_file or None  # the run's fixed folds, when it has them
        return self._spec[1]

    def _next_draft(self, ctx: TaskContext) -> tuple[Recipe, str]:
        """The hinted family, else the next family not drafted yet, else a variant of one."""
        spec = self._task(ctx)
        wanted = family_in_hint(ctx.hint)
        rounds = len(self._drafted) // len(DRAFT_ORDER)
        if wanted:
            family, why = wanted, "The hint asks for this model family."
        else:
            family = next(
                (f for f in DRAFT_ORDER if f not in self._drafted), DRAFT_ORDER[len(self._drafted) % len(DRAFT_ORDER)]
            )
            why = f"{MODELS[family].display[0].upper()}{MODELS[family].display[1:]}: {MODELS[family].why}."
        recipe = base_recipe(family, spec.task_type)
        if rounds and not wanted:
            # Every family has been drafted: vary the preprocessing instead of repeating a draft.
            recipe.validation = "holdout" if recipe.validation == "cv" else "cv"
            recipe.missing_indicators = rounds % 2 == 1
            recipe.encoding = "onehot" if recipe.encoding == "ordinal" or rounds % 2 == 0 else "ordinal"
            recipe.history = [f"variant:{rounds}"]
            why += " Every model family has had a draft, so this one varies the preprocessing."
        if ctx.timeout < 60:
            recipe.validation = "holdout"
        self._drafted.append(family)
        return recipe, why

    @staticmethod
    def _propose(plan: str, code: str, on_delta: DeltaSink) -> Proposal:
        """Stream the reply the way the LLM coder does (plan, then a fenced block), then return it."""
        reply = f"{plan}\n\n```python\n{code}```\n"
        for i in range(0, len(reply), CHUNK):
            on_delta(reply[i : i + CHUNK])
        return Proposal(plan=plan, code=code)
