"""What aide-tui reads back from a workspace once the script has ended (issue #17, reading back).

Every attack is a real script run by the real executor, cold and forked from the
run's zygote (test_sandbox's `box`), and then read back by the code the engine
uses: output collection, the submission check, the holdout scorer and export.
"""

from __future__ import annotations

import io
import os
import stat
import subprocess
import textwrap
import tracemalloc
from pathlib import Path

import pytest
from helpers import Recorder, git, make_project
from test_sandbox import CANARY, Box, needs_bwrap

from aide_tui import events as ev
from aide_tui.engine import build_engine
from aide_tui.evaluation import submission_check
from aide_tui.evaluation.holdout import HoldoutScorer
from aide_tui.evaluation.holdout_policy import disagreement, final_pick, holdout_candidates
from aide_tui.evaluation.staging import stage
from aide_tui.evaluation.submission_check import check_submission
from aide_tui.export import export_node
from aide_tui.headless import HeadlessPrinter
from aide_tui.project import Project
from aide_tui.run import safe_read
from aide_tui.run.bwrap import isolation_for
from aide_tui.run.executor import ExecRequest
from aide_tui.run.inputs import InputData
from aide_tui.run.local import LocalExecutor
from aide_tui.run.workspace import MAX_OUTPUT_FILES, list_data_files, read_back, remove_tree
from aide_tui.search.node import Node
from aide_tui.search.task_card import TaskCard
from aide_tui.settings import resolve
from aide_tui.state import NodeView

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(autouse=True)
def _no_deep_trees_left(tmp_path):
    """pytest's own clean-up of old temporary directories recurses: leave it no 1,200-deep tree."""
    yield
    remove_tree(tmp_path, ignore_errors=True)


HONEST = textwrap.dedent("""
    import csv
    rows = list(csv.DictReader(open("input/data/test.csv")))
    with open("submission.csv", "w") as fh:
        fh.write("id,prediction\\n")
        for row in rows:  # off by exactly 1 everywhere: RMSE 1 on any rows, validation and holdout alike
            fh.write(f"{row['id']},{1000 + 7 * (int(row['area']) - 50) + 1}\\n")
    print("Validation metric: 1.0")
""")
FAKE = textwrap.dedent("""
    import csv
    rows = list(csv.DictReader(open("input/data/test.csv")))
    with open("submission.csv", "w") as fh:
        fh.write("id,prediction\\n" + "".join(f"{row['id']},1000\\n" for row in rows))
    print("Validation metric: 0.0001")
""")
# On its holdout re-run (its workspace is under holdout-runs/), the submission becomes a link to the labels.
STEER = textwrap.dedent("""
    import csv, os
    rows = list(csv.DictReader(open("input/data/test.csv")))
    if "holdout-runs" in os.getcwd():
        os.symlink("../../evaluation/holdout_labels.csv", "submission.csv")
    else:
        with open("submission.csv", "w") as fh:
            fh.write("id,prediction\\n" + "".join(f"{row['id']},1000\\n" for row in rows))
    print("Validation metric: 0.00001")
""")


def planted_git(marker: Path) -> str:
    """Script lines that plant a repository whose config and hook run `touch marker` under git."""
    return f"""
        os.makedirs(".git/objects", exist_ok=True)
        os.makedirs(".git/refs/heads", exist_ok=True)
        os.makedirs(".git/hooks", exist_ok=True)
        open(".git/HEAD", "w").write("ref: refs/heads/main\\n")
        open(".git/config", "w").write('[core]\\n\\trepositoryformatversion = 0\\n\\tfsmonitor = "touch {marker}; false"\\n')
        for hook in ("pre-commit", "post-checkout", "fsmonitor-watchman"):
            open(".git/hooks/" + hook, "w").write("#!/bin/sh\\ntouch {marker}\\n")
            os.chmod(".git/hooks/" + hook, 0o755)
    """


# -- the opener itself ----------------------------------------------------------------------


@pytest.fixture(params=["openat2", "per-component", "without O_PATH"])
def opener(request, monkeypatch):
    """Every way of resolving beneath a directory: the kernel's openat2, O_NOFOLLOW per component
    (kernels before 5.6), and that without O_PATH (macOS), where files are opened O_NONBLOCK."""
    monkeypatch.setattr(safe_read, "_openat2_works", None if request.param == "openat2" else False)
    if request.param == "without O_PATH":
        monkeypatch.setattr(safe_read, "_PATH", 0)
        monkeypatch.setattr(safe_read, "_LOOK", os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    return request.param


def test_the_opener_takes_regular_files_and_refuses_what_a_script_can_plant(tmp_path, opener):
    ws = tmp_path / "ws"
    (ws / "sub").mkdir(parents=True)
    (ws / "sub" / "ok.csv").write_text("a,b\n")
    outside = tmp_path / "labels.csv"
    outside.write_text("secret\n")
    os.symlink(outside, ws / "link.csv")
    os.symlink("sub", ws / "dirlink")
    os.link(outside, ws / "hard.csv")
    os.mkfifo(ws / "pipe.csv")
    with open(ws / "sparse.bin", "wb") as fh:
        fh.truncate(1 << 30)
    assert safe_read.read_bytes(ws, "sub/ok.csv", 100) == b"a,b\n"
    refused = {
        "link.csv": "symlink",
        "dirlink/ok.csv": "symlink",
        "hard.csv": "hard link",
        "pipe.csv": "not a regular file",
        "sparse.bin": "over the 100-byte cap",
        "../labels.csv": "not a path inside",
    }
    for name, why in refused.items():
        with pytest.raises(safe_read.RefusedRead, match=why):
            safe_read.read_bytes(ws, name, 100)
    found = safe_read.collect(ws, max_file_bytes=100, max_total_bytes=1000, max_files=10)
    assert found.files == {"sub/ok.csv": b"a,b\n"} and found.too_large == ["sparse.bin"]
    assert opener != "openat2" or safe_read._openat2_works is True  # the kernel's way was the one used


def test_a_file_that_grows_past_its_cap_while_read_is_cut_off(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "f").write_bytes(b"x" * 10)
    with safe_read.open_regular(ws, "f", 10) as stream:
        (ws / "f").write_bytes(b"x" * 1000)  # same inode, now over the cap
        with pytest.raises(safe_read.RefusedRead, match="grew past its cap"):
            stream.read()


# -- output collection and the workspace's .git, through the real executor -------------------


@pytest.fixture(params=["cold", "forked"])
def box(tmp_path, monkeypatch, request):
    """test_sandbox's project, HOME with a canary and workspace; the node starts cold or forked."""
    made = Box(tmp_path, request.param)
    monkeypatch.setenv("HOME", str(made.home))
    yield made
    for executor in made.executors:
        executor.shutdown()


@needs_bwrap
def test_a_hostile_workspace_is_read_back_within_caps_and_its_planted_git_runs_nothing(box, tmp_path):
    marker = tmp_path / "PWNED"
    result = box.run(
        f"""
        import os
        d = "deep"
        os.makedirs(d)
        fd = os.open(d, os.O_RDONLY)
        for _ in range(1200):  # deeper than any recursion aide-tui could do
            os.mkdir("d", dir_fd=fd)
            nxt = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        os.close(fd)
        os.makedirs("many")
        for i in range(2000):
            open(f"many/{{i:05d}}.txt", "w").write("x")
        os.symlink({str(box.home / "canary.txt")!r}, "canary.txt")
        os.symlink("../../evaluation/holdout_labels.csv", "labels.csv")
        os.mkfifo("result.csv")
        with open("model.bin", "wb") as fh:
            fh.truncate(1 << 30)
        {textwrap.indent(textwrap.dedent(planted_git(marker)), "        ").strip()}
        open("submission.csv", "w").write("id,prediction\\n1,2\\n")
        print("Validation metric: 0.5")
        """,
        timeout=120,
    )
    assert result.succeeded, result.output
    files, too_large, notice = read_back(box.workspace, 1)
    assert files["submission.csv"] == b"id,prediction\n1,2\n"
    assert len(files) == MAX_OUTPUT_FILES and too_large == ["model.bin"]
    assert not [name for name in files if name.startswith((".git", "deep/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d"))]
    assert not any(CANARY.encode() in data for data in files.values())
    assert "nested deeper than 32 levels" in notice and "beyond the first 500 not kept" in notice
    assert "canary.txt: a symlink" in notice and "labels.csv: a symlink" in notice
    status = subprocess.run(["git", "status"], cwd=box.workspace, capture_output=True, text=True)
    assert not marker.exists(), "git status in the workspace ran the planted fsmonitor"
    assert status.returncode == 0 and not (box.workspace / ".git").exists(), status.stderr  # the project's repo
    remove_tree(box.workspace)  # a resume clears such a workspace: no RecursionError
    assert not box.workspace.exists()


# -- the submission check -----------------------------------------------------------------


def test_a_30mb_submission_is_capped_and_streamed_not_loaded(tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    ws.mkdir()
    test = tmp_path / "test.csv"
    test.write_text("id,x\n" + "".join(f"{i},1\n" for i in range(1000)))
    request = _script_request(ws, "open('submission.csv', 'w').write('id,prediction\\n' + '123456,0.5\\n' * 2_800_000)")
    result = LocalExecutor().submit(request, lambda s, line: None).wait(90)
    assert result is not None and result.exit_code == 0, result
    assert (ws / "submission.csv").stat().st_size > 30_000_000
    assert _peak_of(check_submission, ws / "submission.csv", test, ["id"]) == (
        "submission.csv is not read: 30800014 bytes, over the 1425856-byte cap"
    )
    monkeypatch.setattr(submission_check, "submission_cap", lambda test: submission_check.MAX_SUBMISSION_BYTES)
    assert _peak_of(check_submission, ws / "submission.csv", test, ["id"]) == (
        "submission.csv has 2800000 rows, the test file has 1000"  # read to the end, a few rows at a time
    )


def _peak_of(check, *args):
    """What `check` returned; fails when it held more than 8 MB of Python memory at once."""
    tracemalloc.start()
    try:
        returned = check(*args)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"the check held {peak / 1e6:.0f} MB"
    return returned


def _script_request(ws: Path, code: str) -> ExecRequest:
    (ws / "solution.py").write_text(code + "\n")
    return ExecRequest(workspace=ws, timeout=60)


# -- the holdout scorer --------------------------------------------------------------------


def _scorer(tmp_path: Path, sandbox: bool):
    project = make_project(tmp_path / "proj", dirty=False)
    run_dir = project / ".aide" / "runs" / "r1"
    card = TaskCard(
        train_file="data/train.csv",
        test_file="data/test.csv",
        target="sale_price",
        id_columns=["id"],
        metric="rmse",
        direction="minimize",
    )
    evaluation, _ = stage(run_dir, project, card, seed=1, holdout_share=0.2)
    inputs = InputData(
        project, list_data_files(project), run_dir, read_only_mount=sandbox, sources=evaluation.input_sources()
    )
    isolation = isolation_for(project, Path.home(), [], False) if sandbox else None
    scorer = HoldoutScorer(
        evaluation, card, run_dir, inputs, lambda ws: ExecRequest(workspace=ws, timeout=60, isolation=isolation)
    )
    return scorer, evaluation


def _score(scorer, code: str, start: str):
    executors = []

    def run(request):
        executor = LocalExecutor()
        executors.append(executor)
        warm = executor.warm_up(request, ("decimal",)) if start == "forked" else None
        job = executor.submit(request, lambda s, line: None, warm=warm)
        assert job.warm == (start == "forked")
        result = job.wait(90)
        assert result is not None
        return result

    try:
        return scorer.score(Node(7, None, "draft", 7, code=textwrap.dedent(code)), run)
    finally:
        for executor in executors:
            executor.shutdown()


@needs_bwrap
@pytest.mark.parametrize("start", ["cold", "forked"])
def test_a_holdout_submission_linked_to_the_labels_or_a_hidden_file_is_refused_and_leaks_nothing(
    tmp_path, monkeypatch, start
):
    home = tmp_path / "home"
    home.mkdir()
    (home / "canary.txt").write_text(f"id,prediction\n{CANARY},1\n")
    monkeypatch.setenv("HOME", str(home))
    scorer, evaluation = _scorer(tmp_path, sandbox=True)
    stolen = _score(scorer, STEER, start)
    assert stolen.metric is None and "is not read: a symlink" in stolen.note, stolen
    leaked = _score(scorer, f"import os\nos.symlink({str(home / 'canary.txt')!r}, 'submission.csv')\n", start)
    assert leaked.metric is None and CANARY not in leaked.note and "symlink" in leaked.note, leaked
    honest = _score(scorer, HONEST, start)
    assert honest.metric == pytest.approx(1.0) and honest.spread is not None, honest


@pytest.mark.parametrize("start", ["cold", "forked"])
def test_unsandboxed_a_hard_link_to_the_labels_is_refused(tmp_path, start):
    scorer, evaluation = _scorer(tmp_path, sandbox=False)
    code = f"import os\nos.link({str(evaluation.holdout_labels)!r}, 'submission.csv')\n"
    outcome = _score(scorer, code, start)
    assert outcome.metric is None and "hard link" in outcome.note, outcome
    assert (evaluation.holdout_labels.stat().st_nlink, outcome.note.count("sale_price")) == (1, 0)


# -- what the holdout scores, flags and picks ----------------------------------------------------


def _node(node_id: int, metric: float, parent: int | None = None, holdout: float | None = None, spread=None) -> Node:
    node = Node(node_id, parent, "draft" if parent is None else "improve", node_id, status="ok", metric=metric)
    node.holdout_metric, node.holdout_spread = holdout, spread
    return node


def test_three_fake_metrics_do_not_keep_the_honest_nodes_from_being_scored_or_picked():
    fakes = [_node(i, 0.0001) for i in (1, 2, 3)]
    honest = [_node(4, 20.0), _node(5, 19.0, parent=4), _node(6, 25.0)]
    chosen = holdout_candidates(fakes + honest, "minimize")
    assert [n.id for n in chosen[:3]] == [1, 2, 3] and {5, 6} <= {n.id for n in chosen[3:]}
    for node, holdout in zip(fakes + honest, (77.7, 78.0, 77.9, 21.0, 20.0, 26.0), strict=True):
        node.holdout_metric, node.holdout_spread = holdout, 1.5
        node.holdout_flag = disagreement(node, "minimize")
    assert [bool(n.holdout_flag) for n in fakes + honest] == [True, True, True, False, False, False]
    assert "validation 0.0001 but holdout 77.7" in fakes[0].holdout_flag
    assert final_pick(fakes + honest, "minimize", fakes[0]).id == 5
    # only the fakes scored so far: the answer is still an unflagged node, by its validation metric
    for node in honest:
        node.holdout_metric = None
    assert final_pick(fakes + honest, "minimize", fakes[0]).id == 5
    steered = _node(7, 0.00001)
    steered.holdout_note = "submission.csv is not read: a symlink, not a file"
    assert final_pick([steered, *fakes, *honest], "minimize", steered).id == 5  # a refused re-run comes last
    # every working node flagged: the best holdout among them (there is nothing better to say)
    assert final_pick(fakes, "minimize", fakes[0]).id == 1


def test_the_flag_allows_what_the_spread_explains_and_never_flags_a_better_holdout():
    assert disagreement(_node(1, 0.80, holdout=0.74, spread=0.03), "maximize") == ""  # 3 spreads
    assert disagreement(_node(1, 0.99, holdout=0.60, spread=0.03), "maximize") != ""
    assert disagreement(_node(1, 0.50, holdout=0.90, spread=0.01), "maximize") == ""  # better on the holdout
    assert disagreement(_node(1, 10.0, holdout=10.9, spread=None), "minimize") == ""  # a tenth of the size
    assert disagreement(_node(1, 10.0, holdout=12.0, spread=None), "minimize") != ""


def test_a_flag_is_a_headless_line_even_without_verbose_and_a_mark_in_the_tree():
    from aide_tui.app.widgets.node_tree import Palette, node_label

    out, err = io.StringIO(), io.StringIO()
    printer = HeadlessPrinter(out=out, err=err)
    printer(ev.HoldoutScored(2, 77.7, "", 5, None, "validation 0.0001 but holdout 77.7: worse by 77.7"))
    assert "#2 on the hidden holdout: 77.7" in out.getvalue()
    assert "#2 flagged, never the answer while an unflagged node exists: validation 0.0001" in err.getvalue()
    view = NodeView(2, None, "draft", 2, status="ok", metric=0.0001, holdout=77.7)
    assert "⚠" not in node_label(view, None, Palette()).plain
    view.holdout_flag = "validation 0.0001 but holdout 77.7"
    assert "⚠ disagrees" in node_label(view, None, Palette()).plain


# -- a whole run: fakes, a steered holdout, honest nodes; then export --------------------------------


@needs_bwrap
@pytest.mark.timeout(300)
def test_a_run_answers_with_an_honest_node_and_its_export_runs_nothing_planted(tmp_path, llm_env):
    from aide_script import ScriptedAide

    llm_env.responder = ScriptedAide()  # its review passes any script that prints a metric
    marker = tmp_path / "PWNED"
    project = make_project(tmp_path / "p", dirty=False)
    planting = (
        "import os, stat\n"
        + textwrap.dedent(planted_git(marker))
        + ("open('run.sh', 'w').write('echo hi\\n')\nos.chmod('run.sh', 0o755)\n")
    )
    events = Recorder()
    settings = resolve(None, dict(steps=6, coder="llm", workers=1, timeout=60, holdout=0.2))
    engine = build_engine(project, settings, resume=False, listener=events)
    for code in (STEER, FAKE, FAKE, FAKE, planting + HONEST, HONEST):
        engine.submit(ev.RunCode(None, code))
    finished = engine.run()
    nodes = {e.node.id: e.node for e in events.events if isinstance(e, ev.NodeFinished)}
    assert [nodes[i].status for i in sorted(nodes)] == ["ok"] * 6, [n.review_summary for n in nodes.values()]
    scored = {e.node_id: e for e in events.events if isinstance(e, ev.HoldoutScored)}
    assert {5, 6} & set(scored), scored  # an honest node was scored despite four better-looking ones
    assert "is not read: a symlink" in scored[1].note and scored[1].metric is None
    assert all(scored[i].flag for i in (2, 3, 4) if i in scored) and {2, 3, 4} & set(scored)
    assert not any(scored[i].flag for i in (5, 6) if i in scored)
    assert finished.best_id in (5, 6) and finished.best_holdout == pytest.approx(1.0)

    for ws in (engine.paths.workspace(5),):  # a planted .git is gone from the workspace after the run
        assert not (ws / ".git").exists()
        subprocess.run(["git", "status"], cwd=ws, capture_output=True)
    (engine.paths.workspace(5) / "submission.csv").write_text("tampered after the commit\n")

    fresh = tmp_path / "fresh"
    repo = tmp_path / "mine"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "keep.txt").write_text("mine\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "mine")
    before = {name: (repo / ".git" / name).read_bytes() for name in ("config", "HEAD")}
    for dest in (fresh, repo):
        export_node(Project.open(project), "5", dest)
        assert not (dest / ".git" / "hooks" / "pre-commit").exists()
        assert (dest / "submission.csv").read_text().startswith("id,prediction\n")  # the commit's, not the workspace's
        modes = {p.name: p.stat().st_mode for p in dest.rglob("*") if p.is_file() and ".git" not in p.parts}
        assert "run.sh" in modes and not any(
            mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH) for mode in modes.values()
        )
        subprocess.run(["git", "status"], cwd=dest, capture_output=True)
        subprocess.run(
            ["git", "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-qam", "x"], cwd=dest, capture_output=True
        )
    assert {name: (repo / ".git" / name).read_bytes() for name in ("config", "HEAD")} == before
    assert not marker.exists()
