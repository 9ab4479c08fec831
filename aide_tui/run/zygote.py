"""The fork server's process: import the heavy modules once, then fork one walled-in child per node.

Executed by path inside the run's zygote sandbox (see forkserver.py for the
host side and for why), so, like launcher.py, it imports nothing from
aide_tui.  Usage::

    python /abs/zygote.py CONTROL_FD SANDBOXED NETWORK MODULE,MODULE

It preloads the modules (stdout and stderr at /dev/null; one that fails is
skipped and reported), sends ``ready {"failed": {...}}`` on the control
socket, then serves requests until the socket closes.  A request is one JSON
message with four descriptors attached: the node's stdout and stderr pipes,
its job socket and the write end of its launcher pipe (run/channel.py).  For each, the zygote forks:

* an *intermediate* that starts a new session and, when sandboxed, unshares
  mount, PID, IPC and (without network) network namespaces, forks the node's
  init and exits at once;
* the node's *init* (PID 1 of the new PID namespace): it mounts the node's
  view -- an empty read-only tmpfs over every workspace root, the node's own
  workspace bound back writable and its ``input`` read-only, fresh private
  ``/tmp``, ``/var/tmp`` and ``/dev/shm``, its own ``/proc`` -- brings up a
  private loopback, drops every capability for good (bounding set, ambient,
  effective, permitted, inheritable; no_new_privs), tells aide-tui it is
  there (the kernel attaches its real pid to that message), and forks:
* the *script process*, which holds nothing but its stdio: it waits for the
  script's name, then runs it as ``__main__`` exactly as the launcher does.

init reaps orphans, reports the script's exit status on the job socket and
exits; the kernel then kills whatever the script left in its namespace.  If
aide-tui closes the job socket first (the warm process was not needed), init
ends the script process and exits.

Only this file's code runs with capabilities, and only in namespaces bwrap
created for the zygote (a user namespace of its own): generated code never
does.  Unsandboxed (``sandbox = none``) there are no namespaces to set up,
and the processes die with their parents instead.
"""

import ctypes
import gc
import importlib.util
import json
import os
import signal
import socket
import struct
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 1, 4, 24, 38, 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
MAX_MESSAGE = 1 << 20

_libc = ctypes.CDLL(None, use_errno=True)
_in_script = False  # set in the script's process: its SystemExit must reach the interpreter's own exit


def _check(result, what):
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, "%s: %s" % (what, os.strerror(errno)))


def _mount(source, target, fstype, flags, data=None):
    enc = lambda v: None if v is None else v.encode()  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), "mount %s" % target)


# statvfs flag -> mount flag, for the per-mount flags a remount must keep: in a user namespace
# the kernel refuses (EPERM) a remount that would drop one the mount had when it was made.
_KEPT_FLAGS = (
    (os.ST_NOSUID, MS_NOSUID),
    (os.ST_NODEV, MS_NODEV),
    (os.ST_NOEXEC, MS_NOEXEC),
    (os.ST_NOATIME, 1024),
    (os.ST_NODIRATIME, 2048),
    (os.ST_RELATIME, 1 << 21),
)


def _remount_read_only(target):
    current = os.statvfs(target).f_flag
    kept = 0
    for st_flag, ms_flag in _KEPT_FLAGS:
        if current & st_flag:
            kept |= ms_flag
    _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept)


def _load_launcher():
    """launcher.py, next to this file, as a module (its run_script is the one way scripts run)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launcher.py")
    spec = importlib.util.spec_from_file_location("_aide_launcher", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _drop_capabilities():
    """No capability now or after any exec: bounding set, ambient set, then all three sets."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as fh:
            last = int(fh.read())
    except (OSError, ValueError):
        last = 63
    for cap in range(last + 1):
        _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "drop capability %d" % cap)
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)  # EINVAL on old kernels: nothing to clear
    header = struct.pack("Ii", LINUX_CAPABILITY_VERSION_3, 0)
    data = bytes(24)  # two zeroed {effective, permitted, inheritable}
    _check(_libc.capset(ctypes.c_char_p(header), ctypes.c_char_p(data)), "capset")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def _loopback_up():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        import fcntl

        request = struct.pack("16sh", b"lo", 0) + bytes(22)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, SIOCGIFFLAGS, request)[:18])[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP) + bytes(22))


def _mount_node_view(job):
    """The node's filesystem: only its own workspace of all those the zygote can reach, and
    otherwise exactly what bwrap showed the zygote (and shows a cold node)."""
    workspace = job["workspace"]
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing below propagates back to the zygote
    held = os.open(workspace, os.O_PATH)
    # What bwrap put inside /tmp and the like: held now, before the fresh private ones hide it.
    shown = {target: os.open(target, os.O_PATH) for kind, target in job["replay"] if kind == "ro-bind"}
    size = ",size=%d" % job["tmpfs_size"] if job.get("tmpfs_size") else ""  # the node's memory cap
    for path in job["private_tmp"]:
        _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" + size)
    covered = [root for root in job["roots"] if os.path.isdir(root)]  # not gone with a private tmp
    for root in covered:
        _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    bound = False
    for kind, target in job["replay"]:
        if kind == "tmpfs":
            os.makedirs(target, exist_ok=True)
            _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
        elif kind == "ro-bind":
            _bind(shown.pop(target), target, read_only=True)
        elif kind == "workspace":  # a workspace root: only the node's own workspace shows in it
            if not bound and workspace.startswith(target.rstrip("/") + "/"):
                _bind_workspace(held, workspace)
                bound = True
        elif kind == "remount-ro":
            _remount_read_only(target)
    if not bound:
        _bind_workspace(held, workspace)
    for root in covered:
        _remount_read_only(root)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for path in job["proc_read_only"]:  # the script may be uid 0 on the host: no kernel knob may be writable
        if os.path.exists(path):
            _mount(path, path, None, MS_BIND | MS_REC)
            _remount_read_only(path)
    if not job["network"]:
        _loopback_up()


def _bind(held, target, read_only):
    """Bind what the descriptor `held` names at `target` (made as a directory or file)."""
    if os.path.isdir("/proc/self/fd/%d" % held):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o644))
    _mount("/proc/self/fd/%d" % held, target, None, MS_BIND | MS_REC)
    os.close(held)
    if read_only:
        _remount_read_only(target)


def _bind_workspace(held, workspace):
    _bind(held, workspace, read_only=False)
    input_dir = os.path.join(workspace, "input")
    if os.path.isdir(input_dir):
        _mount(input_dir, input_dir, None, MS_BIND | MS_REC)
        _remount_read_only(input_dir)


def _close_other_fds(keep):
    top = os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 4096
    low = 3
    for fd in sorted(set(keep)):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, top)


def _script_process(job, stdout_fd, stderr_fd, name_fd, channel_fd, launcher):
    """The process the script runs in: stdio, workspace, environment; then wait for the script."""
    os.dup2(stdout_fd, 1)
    os.dup2(stderr_fd, 2)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    _close_other_fds([name_fd, channel_fd])
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a cold interpreter
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.chdir(job["workspace"])
    os.environ.clear()
    os.environ.update(job["env"])
    with os.fdopen(name_fd, "r") as names:
        script = names.readline().strip()
    if not script:
        os._exit(0)
    numpy = sys.modules.get("numpy")
    if numpy is not None:  # a cold interpreter seeds numpy's global generator afresh; so must a fork
        try:
            numpy.random.seed()
        except Exception:  # noqa: BLE001
            pass
    launcher._become_subreaper()
    launcher.run_script(script, channel_fd, [], launcher.parse_limits(job.get("limits")))


def _node_init(job, fds, sandboxed, launcher):
    """PID 1 of the node: set up its view, drop privileges, run and reap the script process."""
    stdout_fd, stderr_fd, job_fd, channel_fd = fds
    job_sock = socket.socket(fileno=job_fd)
    status = None
    try:
        # Nothing of the zygote's is left open in the node: its stdio (a host temp file) and any
        # other descriptor would be a channel to siblings through /proc/1/fd.
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        _close_other_fds([stdout_fd, stderr_fd, job_fd, channel_fd])
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # PID 1 gets only the signals it handles
        if sandboxed:
            _mount_node_view(job)
            _drop_capabilities()
        os.chdir(job["workspace"])  # where kill_leftovers looks for what a killed aide-tui left behind
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the zygote reaps by handler; init and script must not
        name_read, name_write = os.pipe()
        child = os.fork()
        if child == 0:
            global _in_script
            _in_script = True
            job_sock.close()
            os.close(name_write)
            _script_process(job, stdout_fd, stderr_fd, name_read, channel_fd, launcher)
            # Leave through the interpreter's own exit, as `python solution.py` does: atexit
            # handlers run, non-daemon threads are joined, SystemExit sets the exit code.
            raise SystemExit(0)
        # The script (same uid) must not ptrace init or take its job socket with pidfd_getfd:
        # init is non-dumpable from here on; the script process, forked before, is not.
        _libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
        os.close(name_read)
        os.close(stdout_fd)
        os.close(stderr_fd)
        os.close(channel_fd)
        job_sock.send(b"started")  # the kernel attaches our pid, as aide-tui sees it
        message = job_sock.recv(MAX_MESSAGE)
        os.write(name_write, message.strip() + b"\n" if message else b"\n")
        os.close(name_write)
        while True:  # reap orphans too (we are their init) until the script process is gone
            pid, wait_status = os.wait()
            if pid == child:
                status = os.waitstatus_to_exitcode(wait_status)
                break
    except BaseException as exc:  # noqa: BLE001 - said to aide-tui, which shows it as the node's failure
        if _in_script:
            raise
        try:
            job_sock.send(("error " + "%s: %s" % (type(exc).__name__, exc)).encode("utf-8", "replace"))
        except OSError:
            pass
        os._exit(1)
    try:
        job_sock.send(b"exit %d" % status)
    except OSError:
        pass
    os._exit(0)


def _serve_one(control, launcher, sandboxed, network):
    try:
        message, fds, _flags, _addr = socket.recv_fds(control, MAX_MESSAGE, 4)
    except OSError:
        return False
    if not message:
        return False
    job = json.loads(message.decode("utf-8"))
    job["network"] = network
    if len(fds) != 4:
        for fd in fds:
            os.close(fd)
        return True
    intermediate = os.fork()
    if intermediate == 0:
        try:
            control.close()
            os.setsid()
            if sandboxed:
                flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | (0 if network else CLONE_NEWNET)
                _check(_libc.unshare(flags), "unshare")
                if os.fork() == 0:
                    _node_init(job, fds, True, launcher)
            else:  # no namespaces: init is this process, dying with the zygote
                _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                _node_init(job, fds, False, launcher)
        except BaseException as exc:  # noqa: BLE001
            if _in_script:
                raise
            try:
                socket.socket(fileno=fds[2]).send(("error %s: %s" % (type(exc).__name__, exc)).encode())
            except OSError:
                pass
        os._exit(0)
    for fd in fds:
        os.close(fd)
    if sandboxed:
        os.waitpid(intermediate, 0)  # it exits as soon as init exists; init is reparented to our PID 1
    return True


def main():
    control = socket.socket(fileno=int(sys.argv[1]))
    sandboxed, network = sys.argv[2] == "1", sys.argv[3] == "1"
    if not sandboxed:  # unsandboxed children are ours: reap them as they end
        signal.signal(signal.SIGCHLD, lambda *_: _reap())
    launcher = _load_launcher()
    launcher._die_with_parent()
    sys.path[0] = "/nonexistent-aide-zygote"  # preloads resolve as installed packages, not next to this file
    modules = [m for m in (sys.argv[4] if len(sys.argv) > 4 else "").split(",") if m]
    failed = launcher._preload(modules)
    # What the imports made is never garbage: frozen, no child's collections walk it again. They
    # would touch every page (copying it) and make a child's exit about 3x slower (280 -> 80 ms).
    gc.freeze()
    control.send(b"ready " + json.dumps({"failed": failed}).encode("utf-8"))
    while _serve_one(control, launcher, sandboxed, network):
        pass
    os._exit(0)


def _reap():
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


if __name__ == "__main__":
    main()
