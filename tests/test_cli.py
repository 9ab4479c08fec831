"""Bad input: one line naming the file or flag and the fix, exit code 2, no traceback.
Headless output: human lines and JSON lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import git, make_project

from aide_tui.cli import main

pytestmark = pytest.mark.timeout(120)


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
        on_disk = json.loads(git(project, "show", f"{event['commit']}:node.json"))  # the tip may add a holdout score
        assert {key: node[key] for key in on_disk} == on_disk and {"run", "branch", "direction"} <= set(on_disk)
        assert (
            event["commit"] in git(project, "rev-list", node["branch"]).split()
        )  # the tip, or under its holdout commit
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


def test_a_project_locked_by_another_instance_says_so_instead_of_advising_resume(tmp_path, capsys):
    from aide_tui.project import InstanceLock, Project

    project = make_project(tmp_path / "proj", with_git=False)
    run = project / ".aide" / "runs" / "20260101-000000"
    run.mkdir(parents=True)
    (run / "run.json").write_text('{"status": "running"}')
    with InstanceLock(Project.open(project)):  # the other instance, running that run
        for extra in ([], ["--resume"]):
            err = one_line_error(
                capsys, [str(project), "--headless", "--coder", "offline", *extra], "another aide-tui is running"
            )
            assert "--resume" not in err
