"""API faults and crash recovery: the run survives 429/529/500, stops cleanly on
401, and a SIGKILLed run resumes with every finished node exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from aide_script import ScriptedAide
from helpers import git, journal_nodes, make_project

from aide_tui import events as ev
from aide_tui.engine import build_engine
from aide_tui.settings import resolve

pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]


def collect():
    events = []
    return events, events.append


def test_thirty_percent_injected_errors_still_complete_the_run(tmp_path, llm_env):
    llm_env.responder = ScriptedAide(crash_every=3)
    llm_env.fail_rate = 0.3
    project = make_project(tmp_path / "p", dirty=False)
    events, listener = collect()
    settings = resolve(None, dict(steps=8, num_drafts=3, timeout=30, coder="llm", llm_retries=6, workers=1))
    finished = build_engine(project, settings, resume=False, listener=listener).run()
    assert finished.reason == "completed" and finished.nodes == 8
    outcomes = [r.outcome for r in llm_env.requests]
    injected = [o for o in outcomes if o.startswith("error:")]
    assert len(injected) >= 3, outcomes  # the SDK really retried through them
    assert not [e for e in events if isinstance(e, ev.RunError)]


def test_401_stops_at_once_with_a_clear_message(tmp_path, llm_env):
    llm_env.responder = ScriptedAide()
    llm_env.fail_next(401, n=50)
    project = make_project(tmp_path / "p", dirty=False)
    env = {**os.environ, "ANTHROPIC_BASE_URL": llm_env.url, "ANTHROPIC_API_KEY": "sk-test-bad"}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "aide_tui.cli",
            str(project),
            "--headless",
            "--steps",
            "4",
            "--coder",
            "llm",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert res.returncode == 1
    assert "error (auth)" in res.stderr and "ANTHROPIC_API_KEY" in res.stderr
    assert "Traceback" not in res.stderr
    assert len(llm_env.requests) == 1  # no retries on a bad key
    assert all(journal_nodes(j) == [] for j in (project / ".aide" / "runs").glob("*/journal.jsonl"))  # no node recorded


def _run_until_killed(project, env, after_nodes, extra_delay):
    """Start a headless run and SIGKILL it once `after_nodes` nodes finished (+ a delay)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aide_tui.cli",
            str(project),
            "--headless",
            "--json",
            "--steps",
            "8",
            "--num-drafts",
            "3",
            "--timeout",
            "30",
            "--coder",
            "llm",
            "--new",
            "--workers",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    seen = 0
    for line in proc.stdout:
        if json.loads(line)["event"] == "NodeFinished":
            seen += 1
            if seen >= after_nodes:
                break
    time.sleep(extra_delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    return seen


@pytest.mark.parametrize("after_nodes,delay", [(2, 0.0), (3, 0.35)])
def test_sigkill_mid_run_then_resume_loses_and_duplicates_nothing(tmp_path, llm_env, after_nodes, delay):
    llm_env.responder = ScriptedAide(crash_every=3)
    llm_env.delay_per_chunk = 0.002  # a streamed reply takes a moment, so the kill can land mid-step
    project = make_project(tmp_path / "p", dirty=False)
    env = {**os.environ, "ANTHROPIC_BASE_URL": llm_env.url, "ANTHROPIC_API_KEY": "sk-test-not-a-real-key"}
    _run_until_killed(project, env, after_nodes, delay)
    run = sorted(p.name for p in (project / ".aide" / "runs").iterdir())[-1]
    journal = project / ".aide" / "runs" / run / "journal.jsonl"
    before = [n["id"] for n in journal_nodes(journal)]
    assert before[:after_nodes] == list(range(1, after_nodes + 1))

    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "aide_tui.cli",
            str(project),
            "--headless",
            "--json",
            "--resume",
            "--steps",
            "8",
            "--timeout",
            "30",
            "--coder",
            "llm",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert res.returncode == 0, res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    started = next(e for e in events if e["event"] == "RunStarted")
    assert started["resumed"] and started["run"] == run
    assert [n["node"]["id"] for n in started["nodes"]] == before
    ids = [n["id"] for n in journal_nodes(journal)]
    lost = sorted(
        set(json.loads(line)["id"] for line in journal.read_text().splitlines() if '"start"' in line) - set(ids)
    )
    assert len(ids) == 8 and ids == sorted(set(ids))  # every node exactly once, in order
    assert len(lost) <= 1 and set(ids) | set(lost) == set(
        range(1, 9 + len(lost))
    )  # the id killed mid-step is never reused
    refs = git(project, "for-each-ref", "--format=%(refname:short)", f"refs/heads/aide/{run}/").split()
    assert f"aide/{run}/root" in refs
    assert sorted(int(r.rsplit("/", 1)[1][:4]) for r in refs if not r.endswith("/root")) == ids
    # nothing half-built is left behind
    workspaces = sorted(p.name for p in (project / ".aide" / "runs" / run / "nodes").iterdir())
    assert workspaces == [f"{i:04d}" for i in ids]
    assert json.loads((project / ".aide" / "runs" / run / "run.json").read_text())["status"] == "completed"


def test_secrets_never_reach_journal_git_or_output(tmp_path, llm_env, monkeypatch):
    secret = "sk-test-super-secret-value-123"
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-another-secret-456")
    llm_env.responder = ScriptedAide(crash_every=0)
    project = make_project(tmp_path / "p", dirty=False)
    events, listener = collect()
    engine = build_engine(
        project,
        resolve(None, dict(steps=2, num_drafts=1, timeout=30, coder="llm", workers=1)),
        resume=False,
        listener=listener,
    )
    engine.submit(
        ev.RunCode(None, "import os\nfor k, v in os.environ.items():\n    print(k, v)\nprint('Validation metric: 1')\n")
    )
    engine.run()
    blobs = [(project / ".aide").rglob("*")]
    text = "".join(p.read_text(errors="replace") for p in (project / ".aide").rglob("*") if p.is_file())
    text += git(project, "log", "--all", "-p")
    text += "".join(e.line for e in events if isinstance(e, ev.OutputLine))
    assert "PATH" in text  # the environment really was printed
    for needle in (secret, "tok-another-secret-456", "MY_SERVICE_TOKEN", "ANTHROPIC_API_KEY "):
        assert needle not in text
    del blobs


def test_a_failed_llm_call_keeps_the_users_override_and_hint_for_the_retry(tmp_path, llm_env):
    aide = ScriptedAide(crash_every=0)
    llm_env.responder = aide
    project = make_project(tmp_path / "p", dirty=False)
    events = []
    settings = resolve(None, dict(steps=3, num_drafts=1, timeout=30, coder="llm", llm_retries=0, workers=1))
    engine = build_engine(project, settings, resume=False, listener=None)

    def listener(event):
        events.append(event)
        if isinstance(event, ev.NodeFinished) and event.node.id == 1:
            engine.submit(ev.AddHint("use ridge regression"))
            engine.submit(ev.DraftNext())
            llm_env.fail_next(500, n=1)  # the next request fails for good (no SDK retries)

    engine.listener = listener
    assert engine.run().reason == "completed"
    nodes = [e.node for e in events if isinstance(e, ev.NodeFinished)]
    assert nodes[1].operation == "draft" and nodes[1].hint == "use ridge regression"
    assert any(isinstance(e, ev.Notice) and "retrying the step" in e.message for e in events)


def test_nothing_outlives_a_sigkilled_aide_tui_once_the_run_resumes(tmp_path, llm_env):
    """kill -9 leaves nobody to kill the script, so the kernel must (PR_SET_PDEATHSIG)."""
    import psutil
    from fake_api import TextReply

    hang = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print('sleeping', flush=True)\ntime.sleep(600)\n"
    )
    llm_env.responder = lambda body: TextReply(f"Sleep.\n\n```python\n{hang}```\n")
    project = make_project(tmp_path / "p", dirty=False)
    env = {**os.environ, "ANTHROPIC_BASE_URL": llm_env.url, "ANTHROPIC_API_KEY": "sk-test-not-a-real-key"}
    # Unsandboxed and cold: the launcher's own parent-death signal is what is tested (bwrap:
    # tests/test_sandbox.py; a warm successor's process: tests/test_warm.py).
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aide_tui.cli",
            str(project),
            "--headless",
            "--verbose",
            "--steps",
            "2",
            "--timeout",
            "300",
            "--coder",
            "llm",
            "--sandbox",
            "none",
            "--preload",
            "",
            "--workers",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    for line in proc.stdout:
        if line.rstrip().endswith("| sleeping"):
            break

    running = [
        p
        for p in psutil.process_iter(["cmdline", "cwd", "name"])  # git's own helpers are not the script's
        if (p.info["cwd"] or "").startswith(str(project)) and p.info["name"] != "git"
    ]
    assert running, "the script should be running"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    script = [p for p in running if any("launcher.py" in a for a in (p.info["cmdline"] or []))]
    assert len(running) == 2 and len(script) == 1  # the script and the child it started
    gone, alive = psutil.wait_procs(script, timeout=10)
    assert alive == []  # the kernel ended the script with aide-tui
    # its child may have outlived it; resuming the run cleans it up before anything else
    llm_env.responder = ScriptedAide(crash_every=0)
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "aide_tui.cli",
            str(project),
            "--headless",
            "--resume",
            "--coder",
            "llm",
            "--timeout",
            "60",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    gone, alive = psutil.wait_procs(running, timeout=10)
    assert alive == []


def test_ctrl_c_in_headless_cancels_cleanly_and_leaves_the_run_resumable(tmp_path):
    """SIGINT (Ctrl-C) while nodes run: the engine is cancelled, says so, and marks the run stopped.

    It used to die with the process: a Thread.join interrupted by Ctrl-C marks the thread as
    stopped on Python < 3.13, so the run ended mid-step with run.json still saying "running"."""
    project = make_project(tmp_path / "p", dirty=False)
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aide_tui.cli",
            str(project),
            "--headless",
            "--coder",
            "offline",
            "--steps",
            "500",
            "--workers",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        for line in proc.stdout:
            if ": ok, metric" in line or ": buggy" in line:  # a node has finished: the run is under way
                break
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "run cancelled:" in rest, rest
    run = sorted((project / ".aide" / "runs").iterdir())[-1]
    assert json.loads((run / "run.json").read_text())["status"] == "stopped"
