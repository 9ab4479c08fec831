"""Shared pytest fixtures and the suite's conventions.

Keep one section per area; each fixture's docstring says why it exists.

Conventions (the suite runs with `-n auto` under pytest-xdist, see README):
- Every test gets its own tmp_path, server port (port 0) and process markers;
  nothing may depend on a fixed port, directory, or on being alone on the machine
  (a process scan must look for a marker unique to the test, not `time.sleep`).
- Wait on a state (helpers.wait_until, a threading.Event, the engine's events),
  never on a fixed sleep; a timeout is a hang guard, not a speed claim.
- Expensive end-to-end runs are session fixtures shared by several small tests;
  tests that share one mark themselves `pytest.mark.xdist_group(<name>)` so the run
  happens once, on one worker (`--dist loadgroup` is in pyproject's addopts).
- A hung test fails after pyproject's default timeout (60 s); a test that is slow
  by nature says so with its own `pytest.mark.timeout`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from fake_api import FakeMessagesAPI  # tests/ is on sys.path (rootdir conftest, no __init__)
from helpers import Recorder, make_project

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# --- Processes: one thread per generated script ------------------------------
# Scripts inherit this environment.  With the BLAS/OpenMP default of a thread per
# core, two xdist workers (or other suites on the machine) oversubscribe the cores
# and OpenMP's spinning threads made one 10-step example run take 430 s instead of
# 68 s at a load average of 10.  Set before any test starts a process.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")


# --- Projects ------------------------------------------------------------------


@pytest.fixture
def project(tmp_path) -> Path:
    """A small project (task.md, data/, one user commit) in a git repo with a clean
    tree; use helpers.make_project directly for a dirty tree or no git."""
    return make_project(tmp_path / "proj", dirty=False)


# --- LLM: a local Messages API server ---------------------------------------


@pytest.fixture
def fake_api():
    """A fresh local Messages API server per test, so request logs, caches and
    injected faults never leak between tests."""
    with FakeMessagesAPI() as api:
        yield api


@pytest.fixture
def llm_env(monkeypatch, fake_api):
    """Point the anthropic SDK (via its own environment variables) at `fake_api`
    with a dummy key, so code that builds `LlmClient()` without arguments talks
    to the local server and never to the real API."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_api.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    return fake_api


# --- End-to-end runs shared by several tests -----------------------------------


@dataclass
class FinishedRun:
    """A run that went to completion; read it, never change it (other tests share it)."""

    project: Path
    run_name: str
    finished: object  # events.RunFinished
    events: Recorder


@pytest.fixture(scope="session")
def offline_example_run(tmp_path_factory):
    """`offline_example_run(example, steps)`: the bundled example copied and run with no
    API key (the offline coder, real scripts, real git), once per session for each
    (example, steps).  Tests that share a run mark themselves
    `pytest.mark.xdist_group(example)` so it runs once, on one worker."""
    from aide_tui.engine import build_engine
    from aide_tui.settings import resolve

    runs: dict[tuple[str, int], FinishedRun] = {}

    def run(example: str, steps: int) -> FinishedRun:
        if (example, steps) not in runs:
            project = tmp_path_factory.mktemp(example) / example
            shutil.copytree(EXAMPLES / example, project)
            recorder = Recorder()
            settings = resolve(project / "aide.toml", dict(steps=steps, timeout=120, memory_limit="2G", workers=1))
            with pytest.MonkeyPatch.context() as mp:
                mp.delenv("ANTHROPIC_API_KEY", raising=False)  # the newcomer's situation: no key
                engine = build_engine(project, settings, resume=False, listener=recorder)
                finished = engine.run()
            runs[example, steps] = FinishedRun(project, engine.run_name, finished, recorder)
        return runs[example, steps]

    return run
