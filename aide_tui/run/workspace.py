"""A node's workspace: its script, a private copy of the data, and what it wrote.

Every node gets a **fresh copy** of each input file under ``input/``.  Not a
hardlink or symlink: the script runs as the same user as aide-tui (possibly
root), so permissions cannot protect shared files, and one script that
overwrote a shared input once made every later node fail.  The copies are
made read-only as well, which stops accidents for non-root users; directories
stay writable so the workspace can always be deleted.

Outputs are whatever else the script left in the workspace (e.g.
``submission.csv``), minus the launcher's hidden area.  Symlinks are never
followed when collecting, so a script cannot smuggle an outside file into
the run's history by linking to it.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path, PurePosixPath

SCRIPT_NAME = "solution.py"
INPUT_DIR = "input"
HIDDEN_DIR = ".aide-exec"  # the launcher's area (the script's private HOME); never an output
HOST_DIR = ".aide-host"  # next to the workspaces' directory: aide-tui's records of each node, out of scripts' view
PROJECT_FILES = {"task.md", "aide.toml"}  # the task itself, not data
READ_ONLY_FILE = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


def list_data_files(project_dir: Path) -> list[str]:
    """Relative posix paths of the project's data: everything but task.md, aide.toml and hidden entries."""
    project_dir = Path(project_dir)
    found: list[str] = []
    for root, dirs, files in os.walk(project_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # .git/, .aide/ and other hidden dirs
        rel_root = Path(root).relative_to(project_dir)
        for name in files:
            if name.startswith("."):
                continue
            rel = (rel_root / name).as_posix()
            if rel in PROJECT_FILES:
                continue
            if (Path(root) / name).is_file():
                found.append(rel)
    return sorted(found)


def host_record(workspace: Path, name: str) -> Path:
    """Where aide-tui keeps its record `name` about the node in `workspace`: in a directory next
    to the one the workspaces are made in (the run's, for ``runs/R/nodes/0001``), which no node's
    sandbox shows (a cold node sees only its workspace, a forked one not even the other
    workspaces), so the script cannot plant what the host trusts."""
    workspace = Path(workspace).resolve()
    return workspace.parent.parent / HOST_DIR / f"{workspace.parent.name}-{workspace.name}.{name}"


def _safe_relative(rel: str) -> PurePosixPath:
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ValueError(f"data file {rel!r} must be a relative path inside the project")
    return path


def _force_remove(func, path, _exc_info) -> None:
    """rmtree helper: a script may have made something read-only; undo that and retry."""
    try:
        os.chmod(os.path.dirname(path), stat.S_IRWXU)
        os.chmod(path, stat.S_IRWXU)
    except OSError:
        pass
    func(path)


def prepare_workspace(workspace: Path, project_dir: Path, data_files: list[str], code: str, inputs=None) -> None:
    """Create `workspace` with `solution.py` = `code` and the data in input/.

    Without `inputs` (an `InputData`), the data is copied fresh and read-only;
    with it, `inputs` decides (copies for small data, snapshot links for large).
    """
    workspace = Path(workspace)
    project_dir = Path(project_dir)
    workspace.mkdir(parents=True, exist_ok=True)
    input_dir = workspace / INPUT_DIR
    if input_dir.exists() or input_dir.is_symlink():
        if input_dir.is_dir() and not input_dir.is_symlink():
            shutil.rmtree(input_dir, onerror=_force_remove)
        else:
            input_dir.unlink()
    input_dir.mkdir()
    if inputs is not None:
        inputs.populate(input_dir)
        data_files = []
    for rel in data_files:
        rel_path = _safe_relative(rel)
        target = input_dir.joinpath(*rel_path.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(project_dir.joinpath(*rel_path.parts), target)
        os.chmod(target, READ_ONLY_FILE)
    write_script(workspace, code)


def write_script(workspace: Path, code: str) -> None:
    """(Re)write the node's `solution.py`; a symlink left in its place is replaced, never followed."""
    script = Path(workspace) / SCRIPT_NAME
    if script.is_symlink():
        script.unlink()
    script.write_text(code, encoding="utf-8")


def collect_outputs(workspace: Path, max_file_bytes: int, max_total_bytes: int) -> tuple[dict[str, bytes], list[str]]:
    """Files the script wrote, with their bytes, and the names skipped for exceeding a cap.

    Files are taken in sorted order; one that would push the total past
    `max_total_bytes` is skipped (smaller later files may still fit).
    """
    workspace = Path(workspace)
    outputs: dict[str, bytes] = {}
    skipped: list[str] = []
    total = 0
    candidates: list[tuple[str, Path]] = []
    for root, dirs, files in os.walk(workspace):  # os.walk does not follow directory symlinks
        rel_root = Path(root).relative_to(workspace)
        if rel_root == Path("."):
            dirs[:] = [d for d in dirs if d not in (INPUT_DIR, HIDDEN_DIR)]
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            rel = (rel_root / name).as_posix()
            if rel == SCRIPT_NAME:
                continue
            candidates.append((rel, Path(root) / name))
    for rel, path in sorted(candidates):
        try:
            info = path.lstat()
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):  # symlinks, fifos, sockets: not outputs
            continue
        if info.st_size > max_file_bytes or total + info.st_size > max_total_bytes:
            skipped.append(rel)
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if len(data) > max_file_bytes or total + len(data) > max_total_bytes:  # grew meanwhile
            skipped.append(rel)
            continue
        outputs[rel] = data
        total += len(data)
    return outputs, skipped
