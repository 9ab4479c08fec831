"""Nothing lost: names git refuses, failed commits, damaged journals, colliding run
names, a user branch named `aide`, non-UTF-8 data names, a deleted run directory.

Real engine runs (offline coder, hand-written scripts through RunCode so each
step is one short script) in real git repositories.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import git, journal_nodes, make_project

from aide_tui import events as ev
from aide_tui.engine import build_engine
from aide_tui.errors import UserError
from aide_tui.project import Project
from aide_tui.records import recover_run
from aide_tui.settings import resolve

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

# A submission that fits the test file (ids 0-4): one that does not makes the node buggy.
GOOD = "open('submission.csv', 'w').write('id,prediction\\n' + ''.join('%d,1\\n' % i for i in range(5)))\nprint('Validation metric: {m}')\n"
# A sandbox (where there is one) keeps a script from deleting the run directory; this test needs it to try.
UNSANDBOXED = {"sandbox": "none"}


def run(project, codes: list[str], *, resume: str | None = None, steps: int | None = None):
    """Run `codes` (one RunCode step each) in a new run or the run named `resume`; (engine, finished, events)."""
    events: list[ev.Event] = []
    # holdout=0: these tests count journal lines and commits; holdout re-runs add their own (tests/test_evaluation.py)
    settings = resolve(
        None, dict(steps=steps or len(codes), num_drafts=1, timeout=30, coder="offline", workers=1, holdout=0)
    )
    engine = build_engine(project, settings, resume=resume is not None, listener=events.append, run_name=resume)
    for code in codes:
        engine.submit(ev.RunCode(None, code))
    finished = engine.run()
    return engine, finished, events


def notices(events) -> str:
    return "\n".join(e.message for e in events if isinstance(e, ev.Notice))


def branches(project, run_name) -> list[str]:
    return git(project, "for-each-ref", "--format=%(refname:short)", f"refs/heads/aide/{run_name}/").split()


def journal_ids(engine) -> list[int]:
    return [n["id"] for n in journal_nodes(engine.paths.journal)]


def cli(project, *args):
    return subprocess.run(
        [sys.executable, "-m", "aide_tui.cli", str(project), *args], capture_output=True, text=True, timeout=120
    )


def test_names_git_cannot_hold_are_skipped_and_listed(tmp_path):
    project = make_project(tmp_path / "p", dirty=False)
    code = (
        "import os\n"
        "os.makedirs(b'out', exist_ok=True)\n"
        "open(b'out/bad\\xffbyte.txt', 'w').write('x')\n"
        "os.makedirs('.git', exist_ok=True)\n"
        "open('.git/config', 'w').write('[core]\\n')\n"
        "open('kept.csv', 'w').write('id\\n')\n" + GOOD.format(m=1)
    )
    engine, finished, events = run(project, [code])
    assert finished.reason == "completed"
    done = [e for e in events if isinstance(e, ev.NodeFinished)][0]
    assert done.commit and done.node.status == "ok"
    branch = done.branch
    meta = json.loads(git(project, "show", f"{branch}:node.json"))
    assert meta["skipped_files"] == ["out/bad\\xffbyte.txt"]  # .git is never collected: it is deleted
    assert "1 .git entry deleted" in notices(events) and not (engine.paths.workspace(1) / ".git").exists()
    assert "out/bad\\xffbyte.txt" in done.node.exec.outputs  # escaped, so front ends can print it
    assert git(project, "show", f"{branch}:outputs/kept.csv") == "id\n"
    assert "not committed" in notices(events) and "skipped_files" in notices(events)
    assert git(project, "fsck", "--strict", "--no-dangling").strip() == ""


def test_a_failed_commit_keeps_the_node_and_the_next_resume_commits_it(tmp_path):
    project = make_project(tmp_path / "p", dirty=False)
    events: list[ev.Event] = []
    engine = build_engine(
        project,
        resolve(None, dict(steps=1, timeout=30, coder="offline", workers=1)),
        resume=False,
        listener=events.append,
    )
    lock = project / ".git" / "refs" / "heads" / "aide" / engine.run_name / "0001-manual.lock"
    lock.write_text("")  # another git holds the ref: update-ref fails
    engine.submit(ev.RunCode(None, GOOD.format(m=1)))
    assert engine.run().reason == "completed"
    done = [e for e in events if isinstance(e, ev.NodeFinished)][0]
    assert done.commit is None and done.branch is None
    assert "could not be committed to git" in notices(events)
    assert journal_ids(engine) == [1]

    lock.unlink()
    resumed, finished, events = run(project, [GOOD.format(m=2)], resume=engine.run_name, steps=2)
    assert finished.reason == "completed" and journal_ids(resumed) == [1, 2]
    assert sorted(branches(project, engine.run_name)) == [
        f"aide/{engine.run_name}/{b}" for b in ("0001-manual", "0002-manual", "root")
    ]


def test_a_torn_last_line_is_cut_with_a_notice_and_its_id_is_not_reused(tmp_path):
    project = make_project(tmp_path / "p", dirty=False)
    engine, _, _ = run(project, [GOOD.format(m=1), GOOD.format(m=2)])
    data = engine.paths.journal.read_bytes()
    engine.paths.journal.write_bytes(data[:-40])  # node 2's line torn; its branch exists
    resumed, finished, events = run(project, [GOOD.format(m=3)], resume=engine.run_name, steps=2)
    assert finished.reason == "completed"
    text = notices(events)
    assert (
        "line 4 was torn" in text and "#2" in text and "--recover-journal" in text
    )  # start 1, node 1, start 2, node 2
    assert journal_ids(resumed) == [1, 3]
    names = [b.rsplit("/", 1)[1] for b in branches(project, engine.run_name)]
    assert sorted(names) == ["0001-manual", "0002-manual", "0003-manual", "root"]  # one branch per id


def test_a_damaged_middle_line_stops_with_exit_2_and_recovery_rebuilds_from_git(tmp_path):
    project = make_project(tmp_path / "p", dirty=False)
    engine, _, _ = run(project, [GOOD.format(m=m) for m in (1, 2, 3)])
    lines = engine.paths.journal.read_bytes().splitlines(keepends=True)  # start and node record per node
    engine.paths.journal.write_bytes(
        b"".join(lines[:3]) + b'{"type": "node", "node": {"id": 2, "garbage\n' + b"".join(lines[4:])
    )

    with pytest.raises(UserError) as err:
        build_engine(
            project,
            resolve(None, dict(steps=4, coder="offline")),
            resume=True,
            listener=lambda e: None,
            run_name=engine.run_name,
        )
    assert f"{engine.paths.journal}: line 4 is damaged" in str(err.value) and "--recover-journal" in str(err.value)
    res = cli(project, "--headless", "--resume", "--run", engine.run_name, "--coder", "offline")
    assert res.returncode == 2 and "line 4 is damaged" in res.stderr and "Traceback" not in res.stderr

    res = cli(project, "--recover-journal", "--run", engine.run_name)
    assert res.returncode == 0, res.stderr
    assert "3 node(s), 2 from the old journal and 1 from git" in res.stdout and "line(s) 4" in res.stdout
    assert journal_ids(engine) == [1, 2, 3]
    recovered = journal_nodes(engine.paths.journal)[1]
    assert recovered["code"] == GOOD.format(m=2) and "Validation metric: 2" in recovered["output"]
    resumed, finished, _ = run(project, [GOOD.format(m=4)], resume=engine.run_name, steps=4)
    assert finished.reason == "completed" and journal_ids(resumed) == [1, 2, 3, 4]


def test_two_projects_in_one_repo_started_in_the_same_second_get_different_runs(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    first, second = make_project(repo / "a", with_git=False), make_project(repo / "b", with_git=False)
    git(repo, "init", "-q", "-b", "main")
    monkeypatch.setattr("aide_tui.project.time.strftime", lambda fmt: "20261124-120000")
    a, _, _ = run(first, [GOOD.format(m=1)])
    b, _, _ = run(second, [GOOD.format(m=2)])
    assert a.run_name == "20261124-120000" and b.run_name == "20261124-120000-2"
    assert [x.rsplit("/", 1)[1] for x in branches(repo, b.run_name)] == ["0001-manual", "root"]
    assert git(repo, "show", f"aide/{b.run_name}/0001-manual:solution.py") == GOOD.format(m=2)


def test_a_branch_named_aide_is_refused_before_node_1(tmp_path):
    project = make_project(tmp_path / "p", dirty=False)
    git(project, "branch", "aide")
    res = cli(project, "--headless", "--coder", "offline", "--steps", "1")
    assert res.returncode == 2 and "branch named 'aide'" in res.stderr and "git branch -m aide" in res.stderr
    assert not list((project / ".aide").glob("runs/*/journal.jsonl"))


def test_a_data_file_name_that_is_not_utf8_is_previewed_with_escapes(tmp_path):
    project = make_project(tmp_path / "p", dirty=False)
    (project / os.fsdecode(b"data/we\xffird.csv")).write_text("a,b\n1,2\n")
    engine, finished, _ = run(project, ["import os\nprint(sorted(os.listdir('input/data')))\n" + GOOD.format(m=1)])
    assert finished.reason == "completed"
    assert "./input/data/we\\xffird.csv" in engine.paths.preview.read_text(encoding="utf-8")
    manifest = json.loads(git(project, "show", f"aide/{engine.run_name}/root:data-manifest.json"))
    assert "data/we\\xffird.csv" in [f["path"] for f in manifest["files"]]


def test_a_script_deleting_the_run_directory_stops_the_run_with_an_error(tmp_path):
    project = make_project(tmp_path / "p", dirty=False)
    code = "import shutil\nshutil.rmtree('../..')\n" + GOOD.format(m=1)
    events: list[ev.Event] = []
    # No warm starts: a successor's workspace prepared meanwhile would race the rmtree (and make it
    # fail half-way with "Directory not empty"), which is not what this test is about.
    settings = resolve(None, dict(steps=3, timeout=30, coder="offline", workers=1, preload=[], **UNSANDBOXED))
    engine = build_engine(project, settings, resume=False, listener=events.append)
    engine.submit(ev.RunCode(None, code))
    finished = engine.run()
    assert finished.reason == "error"
    errors = [e.message for e in events if isinstance(e, ev.RunError)]
    assert errors and "disappeared while node #1 ran" in errors[0] and "--recover-journal" in errors[0]
    # the node reached git, so the journal can be rebuilt from it
    print(recover_run(Project.open(project), engine.run_name))
    assert journal_ids(engine) == [1]


def test_journal_cuts_only_a_torn_last_line_and_names_any_other_damage(tmp_path):
    from aide_tui.search.journal import Journal, JournalDamaged, node_line
    from aide_tui.search.node import Node

    path = tmp_path / "journal.jsonl"
    one, two = node_line(Node(1, None, "draft", 1)), node_line(Node(2, 1, "improve", 2))
    path.write_bytes(one + two[:-10])
    journal = Journal(path)
    assert [n.id for n in journal.load()] == [1] and "line 2 was torn" in journal.torn_tail
    assert path.read_bytes() == one  # cut, so the next append starts a clean line
    assert journal.load() and journal.torn_tail is None

    for damaged, line in ((one + b"{not json\n" + two, 2), (one + one + two, 2), (b"[1]\n" + one, 1)):
        path.write_bytes(damaged)
        with pytest.raises(JournalDamaged) as err:
            Journal(path).load()
        assert err.value.line == line and str(path) in str(err.value)
        assert path.read_bytes() == damaged  # nothing is cut on the way
