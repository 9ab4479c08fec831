"""A node's workspace: its script, a private copy of the data, and what it wrote.

Every node gets a **fresh copy** of each input file under ``input/``.  Not a
hardlink or symlink: the script runs as the same user as aide-tui (possibly
root), so permissions cannot protect shared files, and one script that
overwrote a shared input once made every later node fail.  The copies are
made read-only as well, which stops accidents for non-root users; directories
stay writable so the workspace can always be deleted.

Outputs are whatever else the script left in the workspace (e.g.
``submission.csv``), minus the launcher's hidden area, read back through
`safe_read`: no symlink is followed, no FIFO opened, no hard link taken, and the
count, size and depth are capped, so a script can neither smuggle an outside
file into the run's history nor stall or swell aide-tui.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path, PurePosixPath

from . import safe_read
from .safe_read import Collected

SCRIPT_NAME = "solution.py"
INPUT_DIR = "input"
HIDDEN_DIR = ".aide-exec"  # the launcher's area (the script's private HOME); never an output
HOST_DIR = ".aide-host"  # next to the workspaces' directory: aide-tui's records of each node, out of scripts' view
PROJECT_FILES = {"task.md", "aide.toml"}  # the task itself, not data
READ_ONLY_FILE = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
MAX_OUTPUT_FILE_BYTES = 5 * 1024 * 1024  # one output file kept in the node's commit
MAX_OUTPUT_TOTAL_BYTES = 20 * 1024 * 1024  # all of a node's outputs
MAX_OUTPUT_FILES = 500  # 100,000 tiny files must not become 100,000 loose objects in the user's .git


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


def _not_an_output(rel: str) -> bool:
    top = rel.split("/", 1)[0]
    return rel == SCRIPT_NAME or top in (INPUT_DIR, HIDDEN_DIR) or "__pycache__" in rel.split("/")


def collect(
    workspace: Path,
    max_file_bytes: int = MAX_OUTPUT_FILE_BYTES,
    max_total_bytes: int = MAX_OUTPUT_TOTAL_BYTES,
    max_files: int = MAX_OUTPUT_FILES,
) -> Collected:
    """What the script left in its workspace, read through `safe_read` (see there for what is refused)."""
    return safe_read.collect(
        Path(workspace),
        max_file_bytes=max_file_bytes,
        max_total_bytes=max_total_bytes,
        max_files=max_files,
        skip=_not_an_output,
    )


def collect_outputs(
    workspace: Path, max_file_bytes: int, max_total_bytes: int, max_files: int = MAX_OUTPUT_FILES
) -> tuple[dict[str, bytes], list[str]]:
    """Files the script wrote, with their bytes, and the names skipped for exceeding a byte cap.

    Files are taken in sorted order; one that would push the total past
    `max_total_bytes` is skipped (smaller later files may still fit).
    """
    found = collect(workspace, max_file_bytes, max_total_bytes, max_files)
    return found.files, found.too_large


def read_back(workspace: Path, node_id: int) -> tuple[dict[str, bytes], list[str], str]:
    """After a node's run: disarm any planted `.git`, then take its outputs within the caps.

    Returns the files, the names too large to keep, and a notice for the user ("" when
    nothing was left out but oversized files, which the node lists itself)."""
    planted = remove_git_dirs(workspace)
    found = collect(workspace)
    if planted:
        found.notes.append(
            f"{planted} .git entr{'y' if planted == 1 else 'ies'} deleted (a planted config or hook would run)"
        )
    left = (
        found.notes
        + [_printable(r) for r in found.refused[:5]]
        + ([f"{len(found.refused) - 5} more"] if len(found.refused) > 5 else [])
    )
    notice = f"node #{node_id}: outputs not kept: {'; '.join(left)}" if left else ""
    return found.files, found.too_large, notice


def _printable(text: str) -> str:
    """A script-chosen name as plain text: control characters (terminal escapes) become '?'."""
    return "".join(c if c.isprintable() else "?" for c in text)


def remove_tree(path: Path, ignore_errors: bool = False) -> None:
    """Delete `path` and everything under it, however deep, never following a symlink.

    shutil.rmtree recurses (a 1,200-deep directory raises RecursionError) and
    needs the whole path (names of 255 characters overflow PATH_MAX long before
    that); this holds one directory fd at a time and goes up through `..` of
    the directory itself.  Directories the script made unreadable are opened up
    first.  Missing `path`: nothing to do."""
    try:
        _remove_tree(Path(path))
    except OSError:
        if not ignore_errors:
            raise


def _remove_tree(path: Path) -> None:
    try:
        parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        _remove_entry(parent, path.name)
    finally:
        os.close(parent)


def _unlink_or_descend(dir_fd: int, name: str) -> int | None:
    """Unlink `name`, or open it (a real directory) for emptying; None when it is gone."""
    try:
        os.unlink(name, dir_fd=dir_fd)
        return None
    except FileNotFoundError:
        return None
    except (IsADirectoryError, PermissionError) as exc:
        info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if not stat.S_ISDIR(info.st_mode):
            raise exc from None  # a file we may not unlink: the directory is not writable
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except PermissionError:
        os.chmod(name, stat.S_IRWXU, dir_fd=dir_fd)
        return os.open(name, flags, dir_fd=dir_fd)


def _remove_entry(parent: int, name: str) -> None:
    top = _unlink_or_descend(parent, name)
    if top is None:
        return
    current = top
    os.fchmod(current, stat.S_IRWXU)
    # (name in parent, names left), reversed so that pop() unlinks in directory order: in reverse
    # order 30,000 files took 25 s instead of 5 s on ext4's hashed directories.
    pending: list[tuple[str, list[str]]] = [(name, os.listdir(current)[::-1])]
    try:
        while pending:
            own_name, left = pending[-1]
            if left:
                entry = left.pop()
                child = _unlink_or_descend(current, entry)
                if child is not None:
                    os.fchmod(child, stat.S_IRWXU)
                    os.close(current)
                    current = child
                    pending.append((entry, os.listdir(child)[::-1]))
                continue
            pending.pop()
            if not pending:
                break
            up = os.open("..", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=current)
            os.close(current)
            current = up
            os.rmdir(own_name, dir_fd=current)
    finally:
        os.close(current)
    os.rmdir(name, dir_fd=parent)


def remove_git_dirs(workspace: Path, max_depth: int = safe_read.MAX_WALK_DEPTH) -> int:
    """Delete every `.git` the script planted in its workspace (at any depth the walk reaches).

    A `.git/config` with `core.fsmonitor` or a hook would run its command as the user the
    moment anyone runs `git status` inside the workspace; git never holds such a name, so
    nothing is lost.  Called after the script's processes are gone.  Returns how many."""
    removed = 0
    stack = [(Path(workspace), 0)]
    if not os.path.isdir(workspace):
        return 0
    while stack:
        directory, depth = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            if entry.name.casefold().rstrip(". ") in safe_read.GIT_DIR_NAMES:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, onerror=_force_remove)  # fd-based: never follows a link out
                else:
                    os.unlink(entry.path)
                removed += 1
            elif entry.is_dir(follow_symlinks=False) and depth + 1 < max_depth and entry.name != INPUT_DIR:
                stack.append((Path(entry.path), depth + 1))
    return removed
