"""What makes a run durable: its journal, its git history and run.json.

The journal is the truth a resumed run replays; git is the person's view of
the same nodes and must agree with it.  This module keeps the two together:

* a finished node is appended (fsynced) to the journal first, then committed;
  a commit that fails is a notice, never a failed run: the node stays in the
  journal and a later resume commits it (`reconcile`);
* node ids are never reused: a resumed run numbers on from the highest id in
  the journal *or* among the run's branches;
* a journal damaged anywhere but its last line stops the run before it starts
  (exit 2) and `recover_journal` rebuilds it from the node commits, which
  carry node.json, solution.py and output.txt;
* each new run claims a name no other run in the repository has, by creating
  its root commit `aide/<run>/root` atomically.

Git layout (see README "Browsing solutions with git"): the root commit holds
task.md, aide.toml, task_card.json (when settled before the run starts), data-manifest.json and the prompts used; it has no parent
(the user's HEAD at the start is its Aide-Base trailer), so a run is a tree of its own.  A node's tree is the root's files plus the node's own
(solution.py, node.json, output.txt, outputs/), and its parent is its parent
node's commit (the root for drafts), so `git show` of a node is exactly what
that node changed.  Runs made before root commits existed keep their old shape
when resumed: drafts hang off the user's HEAD and hold only the node's files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import events as ev
from .errors import FatalRunError, UserError
from .project import Project, printable_path, write_atomic
from .run.workspace import MAX_OUTPUT_FILE_BYTES, MAX_OUTPUT_TOTAL_BYTES, collect_outputs, remove_tree
from .search.journal import Journal, JournalDamaged, node_line, parse_line, start_line, started_id
from .search.node import Node, status_word
from .search.task_card import METRIC_NAMES, TaskCard, card_to_dict
from .search.tree import SearchTree
from .store.git import SUBJECT_MAX, BranchConflict, GitStore, GitStoreError, commit_message, split_committable

log = logging.getLogger("aide_tui.records")

NODE_FILES = ("node.json", "solution.py", "output.txt")  # what recovery reads back from a node commit

_NODE_BRANCH = re.compile(r"^(\d{4,})-[a-z]+$")
_METRIC_LINE = re.compile(r"(?im)^[\W_]*metric[\W_]*[:=-]\s*([A-Za-z][A-Za-z0-9_-]{0,19})")

Emit = Callable[[ev.Event], None]
_UNKNOWN = object()


@dataclass
class RunPaths:
    root: Path

    @property
    def info(self) -> Path:
        return self.root / "run.json"

    @property
    def journal(self) -> Path:
        return self.root / "journal.jsonl"

    @property
    def preview(self) -> Path:
        return self.root / "preview.md"

    @property
    def task_card(self) -> Path:
        return self.root / "task_card.json"

    @property
    def nodes(self) -> Path:
        """Where the nodes' workspaces are made."""
        return self.root / "nodes"

    def workspace(self, node_id: int) -> Path:
        return self.nodes / f"{node_id:04d}"


def committable_outputs(outputs: dict[str, bytes]) -> tuple[dict[str, bytes], list[str]]:
    """The files a script wrote that git can hold, and the (printable) names of those it cannot."""
    kept, refused = split_committable({f"outputs/{name}": data for name, data in outputs.items()})
    return (
        {path.removeprefix("outputs/"): data for path, data in kept.items()},
        [printable_path(path.removeprefix("outputs/")) for path in refused],
    )


def branch_name(run: str, node: Node) -> str:
    """Flat per run: aide/<run>/<NNNN>-<operation> (nested names would conflict)."""
    return f"aide/{run}/{node.id:04d}-{node.operation}"


def root_branch(run: str) -> str:
    return f"aide/{run}/root"


def node_ids_in_git(store: GitStore, run: str) -> dict[int, str]:
    """{node id: branch} for the run's node branches (the root and strays are left out)."""
    found = {}
    for branch in store.list_branches(f"aide/{run}/"):
        m = _NODE_BRANCH.match(branch.rsplit("/", 1)[1])
        if m:
            found[int(m.group(1))] = branch
    return found


def check_repository(store: GitStore) -> None:
    """A branch named `aide` makes every aide/... ref impossible: refuse before node 1."""
    if store.branch_sha("aide") is not None:
        raise UserError(
            f"{store.repo_dir}: a branch named 'aide' exists, so git cannot create aide-tui's aide/<run>/... "
            "branches; rename it (git branch -m aide aide-old) and start again"
        )


def metric_name(task_text: str) -> str:
    """The metric's short name from task.md ('Metric: RMSE ...' -> 'rmse'), for commit subjects."""
    m = _METRIC_LINE.search(task_text)
    return m.group(1).lower() if m else "metric"


def subject_metric(card: TaskCard | None, task_text: str) -> str:
    """The metric as commit subjects name it: the task card's (what the run evaluates),
    else a `Metric: <name>` line of task.md, else just "metric"."""
    if card is not None:
        return METRIC_NAMES.get(card.metric, card.metric)
    return metric_name(task_text)


# ------------------------------------------------------------------ new runs


def claim_run(
    project: Project, store: GitStore, data_files: list[str], prompts: dict[str, str], card: TaskCard | None = None
) -> str:
    """Pick a run name no run in this project or repository has, and make its root commit
    (with the task card when it is settled before the run starts).

    The root branch is created with an atomic create-only ref update, so two
    projects of one repository started in the same second cannot both win a name.
    """
    for _ in range(100):
        name = project.new_run_name(taken=lambda n: bool(store.list_branches(f"aide/{n}/")))
        try:
            project.run_dir(name).mkdir(parents=True)
        except FileExistsError:
            continue
        try:
            store.commit_node(
                root_branch(name),
                None,
                _root_files(project, data_files, prompts, card),
                _root_message(project, name, store.head_commit()),
                exclusive=True,
            )
        except BranchConflict:
            project.run_dir(name).rmdir()
            continue
        return name
    raise FatalRunError(f"{project.root}: could not find a free run name")


def _root_files(
    project: Project, data_files: list[str], prompts: dict[str, str], card: TaskCard | None
) -> dict[str, bytes]:
    files = {"task.md": project.task_file.read_bytes()}
    if card is not None:
        files["task_card.json"] = json.dumps(card_to_dict(card), indent=2).encode("utf-8") + b"\n"
    if project.settings_file.is_file():
        files["aide.toml"] = project.settings_file.read_bytes()
    manifest = [_manifest_entry(project.root, rel) for rel in data_files]
    files["data-manifest.json"] = json.dumps({"files": manifest}, indent=2).encode("utf-8") + b"\n"
    for name, text in prompts.items():
        files[f"prompts/{name}.md"] = text.encode("utf-8")
    return files


def _manifest_entry(root: Path, rel: str) -> dict:
    digest = hashlib.sha256()
    size = 0
    with open(root / rel, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return {"path": printable_path(rel), "size": size, "sha256": digest.hexdigest()}


def _root_message(project: Project, run: str, base: str | None) -> str:
    """The root has no parent, so `git show` of it lists the run's inputs and nothing else;
    the user's HEAD when the run started is kept as the Aide-Base trailer."""
    title = next((line.strip("# ").strip() for line in project.task_text().splitlines() if line.strip()), "")
    subject = _fit(f"run {run}: {title}" if title else f"run {run}", SUBJECT_MAX)
    body = (
        "The run's inputs: task.md, aide.toml (when present), task_card.json (when settled at the start; "
        "a card confirmed in the TUI is in the run directory), data-manifest.json (each data file's size "
        "and sha256) and the prompts used. Its drafts are children of this commit."
    )
    trailers = {"Aide-Run": run, "Aide-Node": "root", "Aide-Base": base or "none"}
    return commit_message(f"{subject}\n\n{body}", trailers)


# ------------------------------------------------------------------ one run


class RunRecords:
    """Journal + git + run.json of one run; the engine's only way to make anything durable."""

    def __init__(self, project: Project, run: str, store: GitStore, emit: Emit, card: TaskCard | None = None):
        self.project = project
        self.run = run
        self.store = store
        self.emit = emit
        self.paths = RunPaths(project.run_dir(run))
        self.journal = Journal(self.paths.journal)
        self._loaded: list[Node] | None = None
        self._draft_parent: object = _UNKNOWN
        self._root: str | None = None
        self._identity: tuple[int, int] | None = None  # the run directory's (device, inode), once seen
        self.use_card(card)

    def _run_dir_intact(self) -> bool:
        """The run directory is still the one this run made: a script may delete it and a warm-up
        may then create a directory of the same name (which usually has another inode)."""
        try:
            st = os.stat(self.paths.root)
        except OSError:
            return False
        if self._identity is None:
            self._identity = (st.st_dev, st.st_ino)
        return self._identity == (st.st_dev, st.st_ino)

    def use_card(self, card: TaskCard | None) -> None:
        """Commit subjects name the metric of the card the run evaluates with (the confirmed one)."""
        try:
            self._metric = subject_metric(card, self.project.task_text())
        except OSError:
            self._metric = subject_metric(card, "")

    # -- resume --------------------------------------------------------------

    def load(self) -> list[Node]:
        """The journaled nodes (read once).  Damage before the last line is a UserError with the fix."""
        if self._loaded is None:
            try:
                self._loaded = self.journal.load()
            except JournalDamaged as exc:
                raise UserError(
                    f"{exc}; the nodes after it would be lost, so the run stops here. Rebuild the journal from the "
                    f"run's git commits with: aide-tui {self.project.root} --recover-journal --run {self.run}"
                ) from None
        return self._loaded

    def reconcile(self, tree: SearchTree) -> None:
        """After a crash between journal and git, commit the journaled nodes git lacks;
        and never reuse an id a branch already has (a torn last line can leave one)."""
        if self.journal.torn_tail:
            self.emit(ev.Notice(self.journal.torn_tail, "warning"))
        lost = sorted(i for i in self.journal.started if i not in tree)
        for node_id in lost:
            tree.reserve_id(node_id)
        if lost:
            self.emit(
                ev.Notice(
                    f"node(s) {', '.join(f'#{i}' for i in lost)} were still running when the run was interrupted; "
                    "their steps are planned again under new ids"
                )
            )
        in_git = node_ids_in_git(self.store, self.run)
        for node_id in sorted(in_git):
            if node_id not in tree:
                tree.reserve_id(node_id)
        strays = [f"#{i} ({in_git[i]})" for i in sorted(in_git) if i not in tree]
        if strays:
            self.emit(
                ev.Notice(
                    f"node(s) {', '.join(strays)} are committed to git but not in the journal; their ids are not reused. "
                    f"aide-tui {self.project.root} --recover-journal --run {self.run} brings them back",
                    "warning",
                )
            )
        for node in sorted(tree.nodes.values(), key=lambda n: n.id):
            if node.id not in in_git:
                self.commit(node, None, tree)

    # -- one node ------------------------------------------------------------

    def started(self, node_id: int) -> None:
        """A node got its id (journaled before its work starts)."""
        self.journal.record_start(node_id)

    def append(self, node: Node, tree: SearchTree) -> None:
        """Journal the node (fsynced): from here on it survives anything.  Stops the run when
        its directory has gone (a script may delete ../../): nothing recorded there would last."""
        node.exec.outputs = [printable_path(name) for name in node.exec.outputs]
        self._check_run_dir(node, tree)
        self.journal.append(node)

    def commit(self, node: Node, outputs: dict[str, bytes] | None, tree: SearchTree) -> tuple[str | None, str | None]:
        """Commit the node to its branch; (sha, ref), or (None, None) with a notice when git fails.

        A failed commit never fails the run: the node is safe in the journal and
        the next resume tries again.
        """
        try:
            sha, branch = self._commit(node, outputs, tree)
        except Exception as exc:  # noqa: BLE001 - git trouble must not lose the run
            log.exception("commit of node #%s failed", node.id)
            self.emit(
                ev.Notice(
                    f"node #{node.id} is saved in the journal but could not be committed to git ({exc}); "
                    "a later --resume tries again",
                    "warning",
                )
            )
            return None, None
        return sha, f"refs/heads/{branch}"

    def _commit(self, node: Node, outputs: dict[str, bytes] | None, tree: SearchTree) -> tuple[str, str]:
        branch = branch_name(self.run, node)
        if outputs is None:  # resume: rebuild the file set from the workspace on disk
            workspace = self.paths.workspace(node.id)
            outputs = (
                collect_outputs(workspace, MAX_OUTPUT_FILE_BYTES, MAX_OUTPUT_TOTAL_BYTES)[0]
                if workspace.exists()
                else {}
            )
        files = {
            "solution.py": node.code.encode("utf-8", "surrogateescape"),
            "output.txt": node.output.encode("utf-8", "replace"),
        }
        outputs, skipped = committable_outputs(outputs)  # the engine filtered them already, except on resume
        skipped = node.skipped_files = sorted(set(node.skipped_files) | set(skipped))
        files.update((f"outputs/{name}", data) for name, data in outputs.items())
        files["node.json"] = json.dumps(self.node_json(node, tree), indent=2, default=str).encode("utf-8") + b"\n"
        if skipped:
            self.emit(
                ev.Notice(
                    f"node #{node.id}: {len(skipped)} file(s) not committed, git cannot hold their names "
                    f"({', '.join(skipped[:5])}); listed in node.json as skipped_files",
                    "warning",
                )
            )
        parent = tree.nodes.get(node.parent_id) if node.parent_id is not None else None
        trailers = {
            "Aide-Run": self.run,
            "Aide-Node": str(node.id),
            "Aide-Operation": node.operation,
            "Aide-Parent": " ".join(map(str, node.parent_ids)) or "none",
            "Aide-Status": node.status,
            "Aide-Metric": f"{node.metric:.6g}" if node.metric is not None else "none",
        }
        subject = node_subject(node, parent, self._metric)
        message = commit_message(f"{subject}\n\n{node.plan or ''}", trailers)
        others = (self.store.branch_sha(branch_name(self.run, tree.get(i))) for i in node.parent_ids[1:] if i in tree)
        merged = tuple(other for other in others if other is not None)
        sha = self.store.commit_node(
            branch, self._parent_commit(node, tree), files, message, base=self._root_commit(), merged=merged
        )
        return sha, branch

    def record_holdout(self, node: Node, tree: SearchTree) -> str | None:
        """The node's holdout score, journaled (fsynced) and noted on its commit in git
        (`git log --notes=aide`); returns that commit (None when git failed: the journal has it).

        A note, not a commit: the node's branch keeps pointing at the node's own change."""
        self.journal.record_holdout(node)
        try:
            commit = self.store.branch_sha(branch_name(self.run, node))
            if commit is None:
                raise GitStoreError(f"no branch {branch_name(self.run, node)}")
            self.store.set_note(commit, holdout_note_text(node, self.run, self._metric))
            return commit
        except Exception as exc:  # noqa: BLE001 - the journal has it; git trouble must not stop the run
            log.exception("holdout note of node #%s failed", node.id)
            self.emit(
                ev.Notice(f"node #{node.id}: its holdout score is in the journal but not in git ({exc})", "warning")
            )
            return None

    def node_json(self, node: Node, tree: SearchTree) -> dict:
        data = node.to_dict()
        data.pop("code", None)
        data.pop("output", None)
        for later in HOLDOUT_FIELDS:  # known only after the commit: in its note (a resume re-commits the same tree)
            data.pop(later, None)
        data["direction"] = tree.direction
        data["status_word"] = status_word(node)  # 'refused (cyber)', 'cut off (thinking)', 'buggy (KeyError)' ...
        data["run"] = self.run
        data["branch"] = branch_name(self.run, node)
        return data

    def _root_commit(self) -> str | None:
        if self._root is None:
            self._root = self.store.branch_sha(root_branch(self.run))
        return self._root

    def _parent_commit(self, node: Node, tree: SearchTree) -> str | None:
        if node.parent_id is not None and node.parent_id in tree:
            sha = self.store.branch_sha(branch_name(self.run, tree.get(node.parent_id)))
            if sha is not None:
                return sha
        root = self._root_commit()
        if root is not None:
            return root
        if self._draft_parent is _UNKNOWN:  # a run from before root commits: the user's HEAD, read once
            self._draft_parent = self.store.head_commit()
        return self._draft_parent  # type: ignore[return-value]

    def _check_run_dir(self, node: Node, tree: SearchTree) -> None:
        if self._run_dir_intact() and self.paths.info.exists() and self.journal.is_intact():
            return
        self._commit_lost(node, tree)
        raise FatalRunError(
            f"{self.paths.root} disappeared while node #{node.id} ran (did its script delete it?); "
            f"the run cannot record anything and stops. Its committed nodes rebuild the journal: "
            f"aide-tui {self.project.root} --recover-journal --run {self.run}"
        )

    def _commit_lost(self, node: Node, tree: SearchTree) -> None:
        """The journal is gone: git is the only place left for this node (recovery reads it back)."""
        try:
            self._commit(node, {}, tree)
        except Exception:  # noqa: BLE001 - best effort on the way out
            log.exception("could not commit node #%s after the run directory disappeared", node.id)

    def discard(self) -> None:
        """Remove a run that never started (its task card form was left): its root branch
        and its directory.  Nothing else of it exists yet; a failure leaves it resumable."""
        self.journal.close()
        sha = self.store.branch_sha(root_branch(self.run))
        try:
            if sha is not None:
                self.store.delete_branch(root_branch(self.run), sha)
        except GitStoreError:
            log.exception("could not delete the root branch of the abandoned run %s", self.run)
            return
        remove_tree(self.paths.root, ignore_errors=True)

    # -- run.json ------------------------------------------------------------

    def read_info(self) -> dict:
        try:
            return json.loads(self.paths.info.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def write_info(self, **fields: object) -> None:
        if not self._run_dir_intact():
            raise FatalRunError(f"{self.paths.root} disappeared (did a script delete it?); the run stops")
        info = self.read_info()
        info.update(run=self.run, updated_at=time.time(), **fields)
        info.setdefault("created_at", time.time())
        write_atomic(self.paths.info, json.dumps(info, indent=2, default=str))

    def close(self) -> None:
        self.journal.close()


# ------------------------------------------------------------------ subjects


def _num(x: float) -> str:
    return format(x, ",.5g")


def _fit(text: str, limit: int) -> str:
    """Cut at a word boundary with an ellipsis so `text` fits `limit` characters."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:") + "…"


_OPERATION_PREFIX = re.compile(r"^(?:draft|improve(?:ment)?|debug|fix|plan)\s*:\s*", re.IGNORECASE)


HOLDOUT_FIELDS = ("holdout_metric", "holdout_note", "holdout_spread", "holdout_flag")
_NOTE_TRAILER = re.compile(r"^Aide-(Holdout(?:-Spread|-Flag)?): (.*)$", re.MULTILINE)


def holdout_note_text(node: Node, run: str, metric: str = "metric") -> str:
    """The git note on a node's commit once it is scored on the hidden holdout: a line to
    read in `git log --notes=aide`, and trailers `--recover-journal` reads back."""
    if node.holdout_metric is not None:
        line = f"#{node.id} holdout {metric} {_num(node.holdout_metric)} (re-run on the hidden holdout rows)"
        value = f"{node.holdout_metric!r}"
    else:
        line = f"#{node.id} holdout: not scored ({node.holdout_note})"
        value = f"none ({node.holdout_note})"
    trailers = [f"Aide-Run: {run}", f"Aide-Node: {node.id}", f"Aide-Holdout: {value}"]
    if node.holdout_spread is not None:
        trailers.append(f"Aide-Holdout-Spread: {node.holdout_spread!r}")
    if node.holdout_flag:
        trailers.append("Aide-Holdout-Flag: " + " ".join(node.holdout_flag.split()))
    return f"{line}\n\n" + "\n".join(trailers) + "\n"


def parse_holdout_note(text: str) -> dict | None:
    """The holdout fields of a node (`HOLDOUT_FIELDS`) from a note written by `holdout_note_text`;
    None when it has no score."""
    found = dict(_NOTE_TRAILER.findall(text or ""))
    value = found.get("Holdout", "").strip()
    if not value:
        return None
    fields: dict = {"holdout_metric": None, "holdout_note": "", "holdout_spread": None, "holdout_flag": ""}
    if value.startswith("none"):
        fields["holdout_note"] = value.removeprefix("none").strip().removeprefix("(").removesuffix(")")
    else:
        try:
            fields["holdout_metric"] = float(value)
        except ValueError:
            return None
    try:
        fields["holdout_spread"] = float(found["Holdout-Spread"]) if "Holdout-Spread" in found else None
    except ValueError:
        pass
    fields["holdout_flag"] = found.get("Holdout-Flag", "").strip()
    return fields


def node_subject(node: Node, parent: Node | None, metric: str = "metric") -> str:
    """What a reader scans first: '#7 improve #3: rmse 18,502 -> 18,210, target encoding'."""
    head = f"#{node.id} {node.operation}" + "".join(
        f"{' +' if i else ''} #{parent_id}" for i, parent_id in enumerate(node.parent_ids)
    )
    if node.status == "ok" and node.metric is not None:
        outcome = f"{metric} {_num(node.metric)}"
        if parent is not None and parent.status == "ok" and parent.metric is not None:
            outcome = f"{metric} {_num(parent.metric)} -> {_num(node.metric)}"
        if node.operation == "debug" and parent is not None:
            fault = parent.exec.exc_type or {"timeout": "the timeout", "memory": "the memory use"}.get(parent.status)
            outcome = f"fixed {fault}, {outcome}" if fault else f"fixed, {outcome}"
    else:
        outcome = status_word(node)
    subject = f"{head}: {outcome}"
    plan = next((line.strip() for line in (node.plan or "").splitlines() if line.strip()), "")
    plan = _OPERATION_PREFIX.sub("", plan)  # "Draft: ..." would repeat the head
    if plan[:1].isupper() and plan[1:2].islower():
        plan = plan[0].lower() + plan[1:]
    room = SUBJECT_MAX - len(subject) - 2
    if plan and room >= 10:
        subject += ", " + _fit(plan, room)
    return _fit(subject, SUBJECT_MAX)


# ------------------------------------------------------------------ recovery


def recover_run(project: Project, run: str | None) -> str:
    """`--recover-journal`: lock the project, then `recover_journal` the run (default: the newest)."""
    from .project import InstanceLock

    run = run or project.latest_run() or _newest_run_dir(project)
    if run is None:
        raise UserError(f"{project.root}: no runs to recover; name one with --run")
    with InstanceLock(project), GitStore(project.root) as store:
        return recover_journal(project, run, store)


def _newest_run_dir(project: Project) -> str | None:
    """A run whose run.json is gone too (its directory was deleted) still has a directory name or branches."""
    names = sorted(p.name for p in project.runs_dir.iterdir() if p.is_dir()) if project.runs_dir.is_dir() else []
    return names[-1] if names else None


def recover_journal(project: Project, run: str, store: GitStore) -> str:
    """Rebuild a run's journal from its readable lines and its node commits; say what was done.

    Lines that parse are kept as they are (they hold the exact code and
    output); nodes only git has are read back from node.json, solution.py and
    output.txt.  The old file is kept beside the new one.
    """
    paths = RunPaths(project.run_dir(run))
    kept: dict[int, Node] = {}
    started: set[int] = set()  # kept too, so ids of nodes lost in flight are never given again
    bad_lines: list[int] = []
    if paths.journal.exists():
        for number, raw in enumerate(paths.journal.read_bytes().splitlines(keepends=True), start=1):
            try:
                node = parse_line(raw)
            except ValueError:
                bad_lines.append(number)
                continue
            if node is not None and node.id not in kept:
                kept[node.id] = node
            elif node is None:
                start = started_id(raw)
                if start is not None:
                    started.add(start)
    from_journal = len(kept)
    direction = None
    fields = {f.name for f in dataclasses.fields(Node)}
    for node_id, branch in sorted(node_ids_in_git(store, run).items()):
        commit = store.branch_sha(branch)
        if commit is None:  # deleted since it was listed (GitPython would read HEAD for None)
            continue
        files = store.read_files(commit, NODE_FILES)
        try:
            meta = json.loads(files["node.json"])
        except (KeyError, ValueError):
            continue
        direction = direction or meta.get("direction")
        if node_id not in kept:
            data = {k: v for k, v in meta.items() if k in fields}
            data["code"] = files.get("solution.py", b"").decode("utf-8", "replace")
            data["output"] = files.get("output.txt", b"").decode("utf-8", "replace")
            kept[node_id] = Node.from_dict(data)
        node = kept[node_id]
        scored = parse_holdout_note(store.note(commit) or "") if node.holdout_metric is None else None
        if scored is not None:  # the holdout score is a note on the node's commit
            for name, value in scored.items():
                setattr(node, name, value)
    if not kept:
        raise UserError(f"--run {run}: neither {paths.journal} nor git (aide/{run}/...) holds a node to recover")
    paths.root.mkdir(parents=True, exist_ok=True)
    backup = None
    if paths.journal.exists():
        backup = paths.journal.with_name(f"journal.jsonl.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(paths.journal, backup)
    tmp = paths.journal.with_name(".journal.jsonl.tmp")
    with open(tmp, "wb") as fh:
        for node_id in sorted(started - set(kept)):
            fh.write(start_line(node_id))
        for node_id in sorted(kept):
            fh.write(node_line(kept[node_id]))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, paths.journal)
    if not paths.info.exists():
        write_atomic(
            paths.info,
            json.dumps({"run": run, "status": "stopped", "direction": direction, "created_at": time.time()}, indent=2),
        )
    parts = [
        f"run {run}: journal rebuilt with {len(kept)} node(s), {from_journal} from the old journal "
        f"and {len(kept) - from_journal} from git"
    ]
    if bad_lines:
        parts.append(f"unreadable line(s) {', '.join(map(str, bad_lines))} of the old journal were left out")
    if backup is not None:
        parts.append(f"the old file is kept as {backup}")
    parts.append(f"continue with: aide-tui {project.root} --resume --run {run}")
    return "; ".join(parts)
