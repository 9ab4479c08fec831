"""Limits the kernel enforces, and the host's own files out of the script's reach.

Each attack is a real script through the real executor, cold and forked from
the run's zygote (the `box` fixture of test_sandbox.py).  The memory and
process caps need a cgroup: as root (these machines) or with systemd
delegation; elsewhere those tests are skipped with the reason.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
from test_sandbox import BWRAP_PROBLEM, box  # noqa: F401 - the fixture: cold and forked nodes

from aide_tui.errors import UserError
from aide_tui.run import cgroup as cgroup_module
from aide_tui.run import forkserver
from aide_tui.run.cgroup import NodeCgroup
from aide_tui.run.executor import DEFAULT_DISK_MB, DEFAULT_PIDS, ExecRequest
from aide_tui.run.launch import SESSION_RECORD
from aide_tui.run.local import kill_leftovers
from aide_tui.run.workspace import HOST_DIR, host_record
from aide_tui.settings import resolve

pytestmark = pytest.mark.timeout(180)

needs_bwrap = pytest.mark.skipif(BWRAP_PROBLEM is not None, reason=f"bwrap cannot start here: {BWRAP_PROBLEM}")
needs_cgroups = pytest.mark.skipif(cgroup_module.detect() is None, reason="no cgroup can be made here")
MiB = 1024 * 1024

# Keeps `total` MiB in `place`, 16 MiB at a time, then says HELD; prints what stopped it otherwise.
HOARD = """
import os, sys
place, total = {place!r}, {total}
chunk = b"x" * (16 * 1024 * 1024)
try:
    if place == "memfd":
        fd = os.memfd_create("hoard")
    else:
        fd = os.open(os.path.join(place, "hoard"), os.O_WRONLY | os.O_CREAT, 0o600)
    for _ in range(total // 16):
        os.write(fd, chunk)
except OSError as exc:
    print("refused:", exc, flush=True)
    sys.exit(3)
print("HELD", flush=True)
"""


@needs_bwrap
@needs_cgroups
@pytest.mark.parametrize("place", ["/dev/shm", "/tmp", "memfd"])
def test_memory_kept_in_tmpfs_or_a_memfd_counts_against_the_cap(box, place):  # noqa: F811
    result = box.run(HOARD.format(place=place, total=1024), memory_limit_mb=256, timeout=120)
    assert "HELD" not in result.output, result.output
    assert result.killed_reason == "memory limit exceeded: 256 MiB" or "refused" in result.output


@needs_bwrap
def test_without_cgroups_the_private_tmpfs_is_sized_at_the_memory_cap(box, monkeypatch):  # noqa: F811
    monkeypatch.setattr(cgroup_module, "detect", lambda: None)
    monkeypatch.setattr(forkserver, "detect", lambda: None)
    result = box.run(HOARD.format(place="/dev/shm", total=512), memory_limit_mb=128, timeout=120)
    assert "HELD" not in result.output, result.output
    assert "No space left on device" in result.output, result.output


FORK_MANY = """
import os, signal, sys, time
started = []
try:
    for _ in range({count}):
        pid = os.fork()
        if pid == 0:
            signal.pause()
            os._exit(0)
        started.append(pid)
except OSError as exc:
    print("refused after", len(started), exc, flush=True)
print("started", len(started), flush=True)
for pid in started:
    os.kill(pid, signal.SIGKILL)
"""

THREAD_MANY = """
import threading
stop = threading.Event()
started = 0
try:
    for _ in range({count}):
        threading.Thread(target=stop.wait, daemon=True).start()
        started += 1
except RuntimeError as exc:
    print("refused after", started, exc, flush=True)
print("started", started, flush=True)
stop.set()
"""


@needs_bwrap
@needs_cgroups
def test_two_thousand_processes_are_refused_at_the_default_cap(box):  # noqa: F811
    result = box.run(FORK_MANY.format(count=2000), timeout=120)
    assert "refused after" in result.output and "started 2000" not in result.output, result.output
    started = int(result.output.split("started ")[-1].split()[0])
    assert started < DEFAULT_PIDS
    assert f"may have at most {DEFAULT_PIDS} at once (pids_limit)" in result.output  # for the review to read


@needs_bwrap
@needs_cgroups
def test_five_thousand_threads_are_refused_at_the_default_cap(box):  # noqa: F811
    result = box.run(THREAD_MANY.format(count=5000), timeout=120)
    assert "refused after" in result.output and "started 5000" not in result.output, result.output
    assert int(result.output.split("started ")[-1].split()[0]) < DEFAULT_PIDS


WRITE_MANY = """
import os
chunk = b"x" * (4 * 1024 * 1024)
for i in range({files}):
    with open(f"part{{i}}.bin", "wb") as fh:
        for _ in range(4):
            fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
print("WROTE ALL", flush=True)
"""


@needs_bwrap
def test_writing_past_the_disk_budget_kills_the_node_and_its_bytes_do_not_stay(box):  # noqa: F811
    result = box.run(WRITE_MANY.format(files=16), disk_limit_mb=64, timeout=120)  # 256 MiB in 16 MiB files
    assert result.killed_reason == "disk limit exceeded: 64 MiB written in the workspace", result.output
    assert "WROTE ALL" not in result.output
    assert not list(box.workspace.glob("part*.bin"))
    assert (box.workspace / "solution.py").is_file()


@needs_bwrap
def test_one_file_past_the_disk_budget_is_refused_by_the_kernel(box):  # noqa: F811
    code = "open('big.bin', 'wb').write(b'x' * (48 * 1024 * 1024))\nprint('WROTE', flush=True)\n"
    result = box.run(code, disk_limit_mb=32, timeout=120)
    assert "WROTE" not in result.output
    assert result.exc_type == "OSError" or result.killed_reason, result.output  # EFBIG: File too large


def test_the_defaults_are_those_the_readme_names_and_the_settings_reach_the_request():
    request = ExecRequest(workspace=".")
    assert (request.pids_limit, request.disk_limit_mb) == (DEFAULT_PIDS, DEFAULT_DISK_MB) == (1024, 2048)
    defaults = resolve(None, {})
    assert (defaults.pids_limit, defaults.disk_limit_mb) == (DEFAULT_PIDS, DEFAULT_DISK_MB)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "| `pids_limit` | `--pids-limit` | 1024 |" in readme and "| `disk_limit` | `--disk-limit` | `2G` |" in readme
    with pytest.raises(UserError, match="--pids-limit"):
        resolve(None, {"pids_limit": "4"})


# -- keyrings ------------------------------------------------------------------

KEYCTL_SEARCH, KEYCTL_READ, KEY_SPEC_USER_KEYRING, KEY_SPEC_SESSION_KEYRING = 10, 11, -4, -3
_KEY_CALLS = {"x86_64": (248, 250), "aarch64": (217, 219)}.get(os.uname().machine)

PROBE_KEYRINGS = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
add_key, keyctl = {calls}
found = libc.syscall(keyctl, {search}, {user}, b"user", {name!r}.encode(), 0)
print("search", found, ctypes.get_errno(), flush=True)
added = libc.syscall(add_key, b"user", b"left-behind", b"x", 1, {session})
print("add", added, ctypes.get_errno(), flush=True)
"""


@needs_bwrap
@pytest.mark.skipif(_KEY_CALLS is None, reason="keyring call numbers known for x86_64 and aarch64 only")
def test_a_node_can_neither_read_the_hosts_keys_nor_leave_its_own(box):  # noqa: F811
    libc = ctypes.CDLL(None, use_errno=True)
    name = "aide-canary-" + uuid.uuid4().hex
    add_key, keyctl = _KEY_CALLS
    planted = libc.syscall(add_key, b"user", name.encode(), b"secret", 6, KEY_SPEC_USER_KEYRING)
    if planted < 0:
        pytest.skip(f"no kernel keyring here (errno {ctypes.get_errno()})")
    code = PROBE_KEYRINGS.format(
        calls=_KEY_CALLS, search=KEYCTL_SEARCH, user=KEY_SPEC_USER_KEYRING, name=name, session=KEY_SPEC_SESSION_KEYRING
    )
    try:
        result = box.run(code, timeout=60)
    finally:
        libc.syscall(keyctl, 21, planted, KEY_SPEC_USER_KEYRING)  # KEYCTL_UNLINK
    assert result.succeeded, result.output
    assert "search -1 1" in result.output and "add -1 1" in result.output, result.output  # errno 1: EPERM


# -- the launcher's bookkeeping ------------------------------------------------------

TRAPS = """
import os
os.makedirs(".aide-exec", exist_ok=True)
for name in ("result.json", "warm-ready", "session"):
    path = os.path.join(".aide-exec", name)
    if os.path.lexists(path):
        os.unlink(path)
os.mkfifo(".aide-exec/result.json")
os.symlink("/dev/zero", ".aide-exec/warm-ready")
with open(".aide-exec/session", "w") as fh:
    fh.write("{victim}")
try:
    os.makedirs("../../{host_dir}", exist_ok=True)
    with open("../../{host_dir}/nodes-1.session", "w") as fh:
        fh.write("{victim}")
    print("PLANTED", flush=True)
except OSError as exc:
    print("host records out of reach:", exc, flush=True)
raise ValueError("after the traps")
"""


@needs_bwrap
def test_bookkeeping_traps_neither_hang_the_run_nor_name_what_the_host_kills(box):  # noqa: F811
    victim = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True
    )  # a host process: its session id is its pid
    try:
        result = box.run(TRAPS.format(victim=victim.pid, host_dir=HOST_DIR), timeout=60)
        assert result.exc_type == "ValueError" and result.killed_reason is None, result.output
        assert "PLANTED" not in result.output
        kill_leftovers(box.workspace)  # a resumed run clears the workspace of a node that never finished
        assert victim.poll() is None, "kill_leftovers killed the process the script named"
    finally:
        victim.kill()
        victim.wait()


def test_kill_leftovers_takes_what_the_kernel_lists_in_the_nodes_cgroup(tmp_path):
    if cgroup_module.detect() is None:
        pytest.skip("no cgroup can be made here")
    workspace = tmp_path / "nodes" / "7"
    workspace.mkdir(parents=True)
    group = NodeCgroup.create(workspace)
    assert group is not None
    # Left by a killed aide-tui: its own session, its cwd elsewhere, no record anywhere.
    leftover = subprocess.Popen(
        group.join_command([sys.executable, "-c", "import time; time.sleep(600)"]), cwd="/", start_new_session=True
    )
    try:
        while leftover.pid not in group.members():  # the shell joins, then execs python
            psutil.Process(leftover.pid).status()  # raises if it died
            time.sleep(0.01)
        assert not host_record(workspace, SESSION_RECORD).exists()
        assert kill_leftovers(workspace) == 1
        assert leftover.wait(30) == -signal.SIGKILL
        assert NodeCgroup.leftovers(workspace) == []
    finally:
        leftover.kill()
        leftover.wait()


@needs_cgroups
def test_a_warm_starts_limits_can_be_raised_and_lowered_before_its_script_is_named(tmp_path):
    group = NodeCgroup.create(tmp_path / "ws")
    assert group is not None
    name = "memory.max" if group.host.version == 2 else "memory.limit_in_bytes"
    try:
        for mb in (64, 256, 128):
            group.set_limits(mb, 100)
            assert int((group.dirs[0] / name).read_text()) == mb * MiB
            assert (group.dirs[-1] / "pids.max").read_text().strip() == "100"
    finally:
        group.remove()
    assert not any(d.exists() for d in group.dirs)


@needs_cgroups
def test_empty_cgroups_left_by_a_killed_aide_tui_are_swept_and_busy_ones_kept(tmp_path):
    host = cgroup_module.detect()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is gone: what a kill -9 of aide-tui leaves is named like this
    stale = [parent / f"aide-{'0' * 20}-{dead.pid}-1" for parent in {host.memory, host.pids}]
    busy = NodeCgroup(host, f"aide-{'1' * 20}-{dead.pid}-2")
    for directory in stale + busy.dirs:
        directory.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        assert busy.adopt([sleeper.pid])
        assert cgroup_module.sweep(host) >= len(stale)
        assert not any(d.exists() for d in stale)
        assert all(d.exists() for d in busy.dirs) and busy.members() == [sleeper.pid]
    finally:
        busy.remove()
        sleeper.wait()
