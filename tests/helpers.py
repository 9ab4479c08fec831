"""Small builders shared by the tests: projects, git state snapshots, event recording, waiting."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
from pathlib import Path

TASK = """# Predict house prices

Predict `sale_price` for the houses in data/test.csv.

Metric: RMSE on a validation split — lower is better.
Submit submission.csv with id,prediction.
"""


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


def make_project(root: Path, *, with_git: bool = True, dirty: bool = True) -> Path:
    """A small project: task.md, data/train.csv, data/test.csv; optionally a git repo with a dirty tree and a staged change."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "task.md").write_text(TASK)
    data = root / "data"
    data.mkdir(exist_ok=True)
    rows = ["id,area,neighborhood,sale_price"] + [
        f"{i},{50 + i},{'North' if i % 2 else 'South'},{1000 + 7 * i}" for i in range(40)
    ]
    (data / "train.csv").write_text("\n".join(rows) + "\n")
    (data / "test.csv").write_text("id,area,neighborhood\n" + "\n".join(f"{i},{60 + i},North" for i in range(5)) + "\n")
    if with_git:
        git(root, "init", "-q", "-b", "main")
        (root / "notes.txt").write_text("my notes\n")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "user's commit")
        if dirty:
            (root / "notes.txt").write_text("my notes, edited but not staged\n")
            (root / "staged.txt").write_text("staged but not committed\n")
            git(root, "add", "staged.txt")
            (root / "untracked.txt").write_text("untracked\n")
    return root


def journal_nodes(path: Path) -> list[dict]:
    """The node records of a journal (it also holds a start record per node)."""
    import json

    records = [json.loads(line) for line in Path(path).read_text().splitlines()]
    return [r["node"] for r in records if r.get("type") == "node"]


def user_state(root: Path) -> dict[str, str]:
    """HEAD, index bytes, status and every user file's hash (outside .git and .aide)."""
    state = {
        "HEAD": (root / ".git" / "HEAD").read_text(),
        "head_sha": git(root, "rev-parse", "HEAD"),
        "index": hashlib.sha256((root / ".git" / "index").read_bytes()).hexdigest(),
        "status": git(root, "status", "--porcelain", "--untracked-files=all", "--", ".", ":!.aide"),
    }
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and rel.parts[0] not in (".git", ".aide"):
            state[str(rel)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return state


class Recorder:
    """A thread-safe engine listener that keeps every event; `of(kind)` filters them."""

    def __init__(self) -> None:
        self.events: list = []
        self.lock = threading.Lock()

    def __call__(self, event) -> None:
        with self.lock:
            self.events.append(event)

    def of(self, kind) -> list:
        with self.lock:
            return [e for e in self.events if isinstance(e, kind)]


def wait_until(cond, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll `cond` until it holds: tests wait on a state, never on a fixed sleep.
    The timeout is a hang guard, generous for a loaded machine, not a speed claim."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"{what} not reached within {timeout:.0f}s")
        time.sleep(0.01)


async def pilot_wait_until(pilot, cond, timeout: float = 60.0) -> None:
    """`wait_until` for App.run_test: let the app run until `cond` holds, then one more
    pause so the screen has caught up.  The timeout is a hang guard, not a speed claim."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"condition not reached within {timeout:.0f}s")
        await pilot.pause(0.02)
    await pilot.pause()


async def settled(pilot, app) -> None:
    """Let the app catch up with what the engine said so far: every event handled, every
    streamed delta and line drained into the log, then the screen refreshed.  A state, not
    a time, so a snapshot taken after it is the same on a loaded machine."""
    await pilot_wait_until(pilot, lambda: not app._unhandled and not app._stream)
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


# One line a test script adds to write a submission that fits make_project's test file (ids 0..4):
# with a test file, a node that writes none is buggy.
WRITE_SUBMISSION = "open('submission.csv', 'w').write('id,prediction\\n' + ''.join(f'{i},1\\n' for i in range(5)))\n"
