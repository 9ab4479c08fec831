"""Bad input: one line naming the file or flag and the fix, exit code 2, no traceback.
Headless output: human lines and JSON lines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from helpers import git, make_project

from aide_tui.cli import main

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


def run_cli(*args, env=None, cwd=None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "aide_tui.cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=200,
    )


def one_line_error(capsys, argv, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def test_missing_project_dir(tmp_path, capsys):
    one_line_error(capsys, [str(tmp_path / "nope"), "--headless"], "nope", "no such directory")


def test_empty_project_names_task_md(tmp_path, capsys):
    one_line_error(capsys, [str(tmp_path), "--headless"], "task.md", "missing")


def test_project_without_data(tmp_path, capsys):
    (tmp_path / "task.md").write_text("predict things\n")
    one_line_error(capsys, [str(tmp_path), "--headless", "--coder", "offline"], "no data files")


def test_unknown_setting_in_aide_toml(tmp_path, capsys):
    make_project(tmp_path, with_git=False)
    (tmp_path / "aide.toml").write_text("steps = 3\nnum_draft = 4\n")
    one_line_error(capsys, [str(tmp_path), "--headless"], "aide.toml", "num_draft", "num_drafts")


def test_broken_aide_toml(tmp_path, capsys):
    make_project(tmp_path, with_git=False)
    (tmp_path / "aide.toml").write_text("steps = = 3\n")
    one_line_error(capsys, [str(tmp_path), "--headless"], "aide.toml", "not valid TOML")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_aide_toml(tmp_path, capsys):
    make_project(tmp_path, with_git=False)
    toml = tmp_path / "aide.toml"
    toml.write_text("steps = 3\n")
    toml.chmod(0)
    one_line_error(capsys, [str(tmp_path), "--headless"], "aide.toml", "cannot read")


@pytest.mark.parametrize(
    "flags,needles",
    [
        (["--steps", "ten"], ["--steps", "int"]),
        (["--memory-limit", "lots"], ["memory_limit", "2G"]),
        (["--debug-prob", "2"], ["debug_prob", "between 0 and 1"]),
        (["--bogus"], ["--bogus", "--help"]),
        (["--resume", "--new"], ["--resume", "--new"]),
        (["--coder", "gpt"], ["coder"]),
    ],
)
def test_bad_flags(tmp_path, capsys, flags, needles):
    make_project(tmp_path, with_git=False)
    one_line_error(capsys, [str(tmp_path), "--headless", *flags], *needles)


def test_llm_coder_without_key_says_how_to_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    make_project(tmp_path, with_git=False)
    one_line_error(capsys, [str(tmp_path), "--headless", "--coder", "llm"], "ANTHROPIC_API_KEY")


def test_aide_toml_values_apply_and_flags_override(tmp_path):
    from aide_tui.settings import resolve

    (tmp_path / "aide.toml").write_text('steps = 12\ntimeout = 20\nmemory_limit = "1G"\n')
    s = resolve(tmp_path / "aide.toml", {"timeout": "30", "num_drafts": "8"})
    assert (s.steps, s.timeout, s.num_drafts, s.memory_limit_mb) == (12, 30.0, 8, 1024)


def test_version_and_help_do_not_need_a_project():
    assert run_cli("--version").stdout.startswith("aide-tui ")
    out = run_cli("--help").stdout
    for flag in (
        "--steps",
        "--num-drafts",
        "--debug-prob",
        "--max-debug-depth",
        "--timeout",
        "--memory-limit",
        "--code-model",
        "--feedback-model",
        "--budget",
        "--seed",
        "--headless",
        "--json",
        "--resume",
        "--new",
        "--export",
    ):
        assert flag in out
    from aide_tui.cli import build_parser

    for action in build_parser()._actions:  # each flag's help names its default once
        assert (action.help or "").count("(default:") <= 1, action.help


def test_headless_human_and_json_output_and_export(tmp_path, llm_env):
    from aide_script import ScriptedAide

    llm_env.responder = ScriptedAide(crash_every=2)
    project = make_project(tmp_path / "proj", dirty=False)
    env = {"ANTHROPIC_BASE_URL": llm_env.url, "ANTHROPIC_API_KEY": "sk-test-not-a-real-key"}
    res = run_cli(
        project,
        "--headless",
        "--steps",
        "3",
        "--num-drafts",
        "2",
        "--timeout",
        "20",
        "--memory-limit",
        "1G",
        "--coder",
        "llm",
        "--workers",
        "1",
        env=env,
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("run ") and "new run" in lines[0]
    assert any("#1 draft: ok, metric 110" in line for line in lines)
    assert any("#2 draft: buggy (ValueError)" in line for line in lines)
    assert lines[-1].startswith("run completed: 3 nodes; best #")
    spent = re.search(r"; spent \$(\d+\.\d{4}) in (\d+) model calls", lines[-1])
    assert spent and float(spent.group(1)) > 0 and int(spent.group(2)) >= 6, lines[-1]  # card + 3 codes + reviews
    assert "Traceback" not in res.stderr

    # a finished run is not offered for resume; --json prints one event per line
    res = run_cli(
        project,
        "--headless",
        "--json",
        "--steps",
        "2",
        "--num-drafts",
        "2",
        "--timeout",
        "20",
        "--coder",
        "llm",
        "--workers",
        "1",
        env=env,
    )
    assert res.returncode == 0, res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"
    finished = [e for e in events if e["event"] == "NodeFinished"]
    assert len(finished) == 2 and finished[0]["node"]["operation"] == "draft"
    for event in finished:  # the node as its node.json has it (plus code and output)
        node = event["node"]
        on_disk = json.loads(git(project, "show", f"{event['commit']}:node.json"))  # holdout scores are git notes
        assert {key: node[key] for key in on_disk} == on_disk and {"run", "branch", "direction"} <= set(on_disk)
        assert event["commit"] == git(project, "rev-parse", node["branch"]).strip()  # the branch is the node
    assert kinds.count("DirectionFixed") == 1 and kinds.index("DirectionFixed") < kinds.index("RunFinished")
    best = next(e["node"] for e in finished if e["node"]["id"] == events[-1]["best_id"])
    assert (events[-1]["best_metric"], events[-1]["best_branch"]) == (best["metric"], best["branch"])

    out = tmp_path / "best"
    res = run_cli(project, "--export", "best", out)
    assert res.returncode == 0, res.stderr
    assert (out / "solution.py").read_text().startswith('"""Draft')
    assert (out / "submission.csv").exists()
    assert json.loads((out / "node.json").read_text())["status"] == "ok"


def test_headless_without_a_tty_asks_for_resume_or_new(tmp_path):
    project = make_project(tmp_path / "proj", with_git=False)
    run = project / ".aide" / "runs" / "20260101-000000"
    run.mkdir(parents=True)
    (run / "run.json").write_text('{"status": "stopped"}')
    (run / "journal.jsonl").write_text('{"type":"node","node":{"id":1}}\n')  # it finished a node: resumable
    res = run_cli(project, "--headless", "--coder", "offline")
    assert res.returncode == 2
    assert "--resume" in res.stderr and "--new" in res.stderr and "20260101-000000" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_resume_without_an_unfinished_run_is_an_error(tmp_path, capsys):
    make_project(tmp_path, with_git=False)
    one_line_error(
        capsys, [str(tmp_path), "--headless", "--resume", "--coder", "offline"], "no unfinished run", "--new"
    )


def test_a_bad_value_in_aide_toml_is_blamed_on_the_file_not_on_an_unrelated_flag(tmp_path, capsys):
    make_project(tmp_path, with_git=False)
    (tmp_path / "aide.toml").write_text("timeout = -5\n")
    err = one_line_error(capsys, [str(tmp_path), "--headless", "--seed", "3"], "aide.toml", "timeout", "positive", "-5")
    assert "--seed" not in err


def test_a_bad_flag_value_is_blamed_on_the_flag_even_with_an_aide_toml(tmp_path, capsys):
    make_project(tmp_path, with_git=False)
    (tmp_path / "aide.toml").write_text("steps = 4\n")
    err = one_line_error(capsys, [str(tmp_path), "--headless", "--timeout", "-5"], "--timeout", "positive")
    assert "aide.toml" not in err


HOLD_LOCK = (
    "import sys\n"
    "from aide_tui.project import InstanceLock, Project\n"
    "InstanceLock(Project.open(sys.argv[1])).acquire()\n"
    "print('held', flush=True)\n"
    "sys.stdin.read()\n"
)


def test_a_project_locked_by_another_instance_says_so_instead_of_advising_resume(tmp_path, capsys):
    project = make_project(tmp_path / "proj", with_git=False)
    run = project / ".aide" / "runs" / "20260101-000000"
    run.mkdir(parents=True)
    (run / "run.json").write_text('{"status": "running"}')
    other = subprocess.Popen(  # the other instance, running that run
        [sys.executable, "-c", HOLD_LOCK, str(project)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert other.stdout.readline() == "held\n"
        for extra in ([], ["--resume"]):
            err = one_line_error(
                capsys, [str(project), "--headless", "--coder", "offline", *extra], "another aide-tui is running"
            )
            assert "--resume" not in err and f"(pid {other.pid})" in err
    finally:
        other.stdin.close()
        other.wait()


def test_the_lock_is_held_from_start_up_so_a_second_instance_is_told_while_the_first_still_asks(tmp_path, monkeypatch):
    """The first instance may sit on a question (no key, resume?) before it builds its engine:
    a second one must still hear that it runs, not be advised to resume its run."""
    import aide_tui.app.app

    project = make_project(tmp_path / "proj", with_git=False)
    run = project / ".aide" / "runs" / "20260101-000000"
    run.mkdir(parents=True)
    (run / "run.json").write_text('{"status": "stopped"}')
    seen = {}

    def front_end_asking_a_question(project_dir, settings, resume):
        seen["second"] = run_cli(project, "--headless", "--coder", "offline")
        return 0

    monkeypatch.setattr(aide_tui.app.app, "run_app", front_end_asking_a_question)
    assert main([str(project), "--coder", "offline"]) == 0
    second = seen["second"]
    assert second.returncode == 2
    assert f"another aide-tui is running on this project (pid {os.getpid()})" in second.stderr
    assert "--resume" not in second.stderr


def test_headless_says_what_the_run_cost():
    from aide_tui.headless import spent_text
    from aide_tui.search.node import Usage

    assert spent_text(Usage()) == "spent $0.00 (no model calls)"
    used = Usage(input_tokens=12_345, output_tokens=678, cost=0.04213, calls=3)
    assert spent_text(used) == "spent $0.0421 in 3 model calls (12,345 tokens in, 678 out)"
