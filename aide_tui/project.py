"""The project a user points aide-tui at, and what aide-tui keeps inside it.

PROJECT/
  task.md            goal, metric, data description (required)
  aide.toml          optional settings
  <data files>       any layout, e.g. data/train.csv
  .aide/             everything aide-tui writes (plus git refs under aide/)
    lock             held by the one running instance
    runs/<run>/      run.json, journal.jsonl, preview.md, nodes/<id>/ workspaces
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UserError

AIDE_DIR = ".aide"


def printable_path(name: str) -> str:
    """A file name as text that can always be written: bytes that are not UTF-8 as `\\xNN`.

    Names come from the filesystem as str with surrogate escapes (PEP 383);
    writing one to a UTF-8 file or a terminal raises, so every name that
    reaches a preview, a log or run.json goes through here.
    """
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def write_atomic(path: Path, data: str) -> None:
    """Write via a temp file + rename so a crash never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@dataclass
class Project:
    root: Path

    @classmethod
    def open(cls, path: str | Path) -> Project:
        root = Path(path).expanduser()
        if not root.exists():
            raise UserError(f"{root}: no such directory; give the path of a project holding task.md")
        if not root.is_dir():
            raise UserError(f"{root}: not a directory; give the project directory that holds task.md")
        root = root.resolve()
        task = root / "task.md"
        if not task.exists():
            raise UserError(f"{task}: missing; write the goal, metric and data description there (see examples/)")
        try:
            text = task.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{task}: cannot read ({exc}); make it a readable UTF-8 text file") from None
        if not text.strip():
            raise UserError(f"{task}: empty; describe the goal, the metric and the data files")
        return cls(root)

    @property
    def task_file(self) -> Path:
        return self.root / "task.md"

    @property
    def settings_file(self) -> Path:
        return self.root / "aide.toml"

    @property
    def aide_dir(self) -> Path:
        return self.root / AIDE_DIR

    @property
    def runs_dir(self) -> Path:
        return self.aide_dir / "runs"

    def task_text(self) -> str:
        return self.task_file.read_text(encoding="utf-8")

    def run_dir(self, run: str) -> Path:
        return self.runs_dir / run

    def runs(self) -> list[str]:
        if not self.runs_dir.is_dir():
            return []
        return sorted(p.name for p in self.runs_dir.iterdir() if (p / "run.json").exists())

    def read_run_info(self, run: str) -> dict[str, Any]:
        return json.loads((self.run_dir(run) / "run.json").read_text(encoding="utf-8"))

    def unfinished_run(self) -> str | None:
        """The newest run that has not reached its step count (stopped, killed or paused)."""
        for run in reversed(self.runs()):
            try:
                if self.read_run_info(run).get("status") != "completed":
                    return run
            except (OSError, ValueError):
                continue
        return None

    def finished_a_node(self, run: str) -> bool:
        """Whether the run's journal holds a finished node: a run without one has nothing to resume."""
        try:
            with (self.run_dir(run) / "journal.jsonl").open(encoding="utf-8", errors="replace") as fh:
                return any('"type": "node"' in line or '"type":"node"' in line for line in fh)
        except OSError:
            return False

    def latest_run(self) -> str | None:
        runs = self.runs()
        return runs[-1] if runs else None

    def new_run_name(self, taken: Callable[[str], bool] = lambda name: False) -> str:
        """A timestamp, with a suffix when this project or `taken` (e.g. the git refs) has it."""
        base = time.strftime("%Y%m%d-%H%M%S")
        name, n = base, 1
        while (self.runs_dir / name).exists() or taken(name):
            n += 1
            name = f"{base}-{n}"
        return name

    def ensure_aide_dir(self) -> Path:
        """Create .aide/ with a `.gitignore` of `*`, so no `git add -A` commits the run's state."""
        try:
            self.aide_dir.mkdir(parents=True, exist_ok=True)
            ignore = self.aide_dir / ".gitignore"
            if not ignore.exists():
                write_atomic(
                    ignore, "# written by aide-tui: everything here is the tool's state, not your project\n*\n"
                )
        except OSError as exc:  # a read-only project: one line with the fix, not a traceback
            raise UserError(
                f"{self.root}: cannot write {self.aide_dir.name}/ here ({exc.strerror or exc}); aide-tui keeps its "
                f"runs there: make the project writable (chmod u+w {self.root}) or copy it to a writable place"
            ) from None
        return self.aide_dir


def unfinished_run(project_dir: Path) -> str | None:
    """Name of a run that can be resumed, if any (used by front ends to offer resume)."""
    return Project.open(project_dir).unfinished_run()


class InstanceLock:
    """One aide-tui per project: an flock on .aide/lock, released when the process dies.

    flock (not a pid file) so a kill -9 never leaves a stale lock behind.  The command line
    takes it first (`shared=True`), before any question or form, so a second aide-tui is told
    at once that this one runs; the engine it then builds in this process takes the shared
    lock again (a second flock on a new descriptor would refuse its own process), and
    releasing the last holder unlocks.  A lock taken without `shared` is this process's
    alone: a second engine built beside it is refused like a second instance.
    """

    _held: dict[Path, tuple[Any, int, bool]] = {}  # lock path -> (open file, holders, shared) in this process

    def __init__(self, project: Project, shared: bool = False):
        self.project = project
        self.path = project.aide_dir / "lock"
        self.shared = shared
        self._holding = False

    def _refuse(self, holder: str) -> UserError:
        return UserError(
            f"{self.path}: another aide-tui is running on this project ({holder}); wait for it to finish or stop it"
        )

    def acquire(self) -> None:
        self.project.ensure_aide_dir()
        key = self.path.resolve()
        if key in self._held:
            fh, count, shared = self._held[key]
            if not shared:
                raise self._refuse(f"pid {os.getpid()}")
            self._held[key] = (fh, count + 1, shared)
            self._holding = True
            return
        fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise self._refuse(holder) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        self._held[key] = (fh, 1, self.shared)
        self._holding = True

    def release(self) -> None:
        if not self._holding:
            return
        self._holding = False
        key = self.path.resolve()
        fh, count, shared = self._held[key]
        if count > 1:
            self._held[key] = (fh, count - 1, shared)
            return
        del self._held[key]
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
