"""Run a solution script as ``__main__`` and record an uncaught exception to a file.

Executed by path in the child (``python /abs/launcher.py solution.py FD``),
so it imports nothing from aide_tui and keeps to syntax old interpreters
understand (the user may point ``python`` at another version).

Why a launcher instead of ``python solution.py``: the review needs the
exception *type* and traceback reliably, not parsed from a flood of output.
Why ``runpy`` instead of ``exec``: ``if __name__ == "__main__"`` must run and
``sys.exit(0)`` must count as success, exactly as with ``python solution.py``.
It also makes itself a Linux "child subreaper": a daemonizing grandchild
(fork, setsid, fork, parent exits) is then re-parented to the launcher
instead of to PID 1, so the executor's next sample of the tree still finds
it however fast it escaped.

FD is the write end of aide-tui's pipe (run/channel.py): the launcher's
messages go there as lines ``KIND JSON``, never to a file in the workspace,
which the script could replace with a FIFO or a link.  Writes are
non-blocking and capped, so a script that fills the pipe cannot hang the
launcher.

Warm start (``python /abs/launcher.py --warm FD MODULE,MODULE``): the
launcher imports the modules first, with its stdout and stderr pointed at
/dev/null (a module's import chatter is not the script's output; one that
fails to import, with any exception, is skipped), sends ``ready`` (JSON
``{"failed": {module: "ExcType: message"}, "at": time}`` for aide-tui to
note once), and then waits for one line on stdin naming the script.  Stdin is then /dev/null,
exactly as in a cold start, and the script runs the same way.  EOF instead of
a line means the warm process was not needed: it exits quietly.

Before the script runs (`confine`), the process joins a new, empty session
keyring and a seccomp filter refuses the keyring system calls (``add_key``,
``request_key``, ``keyctl``) to it and everything it starts: no node reads
or leaves keys in the host's keyrings or another node's.  It also takes the
limits aide-tui passes in ``AIDE_LIMITS`` (``fsize=N,nproc=M``): ``fsize`` (RLIMIT_FSIZE,
the largest file it may write) and, where no cgroup counts its processes,
``nproc`` (RLIMIT_NPROC).  The hard limits are lowered too, and the script
has no capability to raise them again.

SystemExit passes through untouched.  On any other uncaught exception the
launcher sends ``exception {"exc_type", "traceback"}``, prints the
traceback (without the launcher's own frames) to stderr and exits with 1,
like Python does.
"""

import os
import runpy
import sys
import time

MAX_MESSAGE = 60 * 1024  # below a pipe's buffer: a message is written whole or not at all


def _script_frames(tb, script_path):
    """Skip the launcher's and runpy's frames so the traceback starts in the script."""
    first = tb
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename  # "<frozen runpy>" is not a path: no getcwd (it may be gone)
        if os.path.isabs(name) and os.path.normpath(name) == script_path:
            return tb
        tb = tb.tb_next
    return first


def _become_subreaper():
    """prctl(PR_SET_CHILD_SUBREAPER, 1); best effort, Linux only."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
    except Exception:  # noqa: BLE001 - without it the executor still samples the tree
        pass


def _die_with_parent():
    """prctl(PR_SET_PDEATHSIG, SIGKILL): if aide-tui itself is killed (kill -9, OOM),
    nobody is left to end the script, so the kernel does it.  The parent's pid comes
    in AIDE_PARENT_PID; if it is already gone, exit at once."""
    expected = os.environ.pop("AIDE_PARENT_PID", "")
    if not sys.platform.startswith("linux") or not expected.isdigit():
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0)
    except Exception:  # noqa: BLE001 - best effort
        return
    if os.getppid() != int(expected):
        os._exit(137)


def _preload(modules):
    """Import `modules` with stdout/stderr at /dev/null; failures are skipped (the script meets
    them itself) and returned, {module: "ExcType: first line of the message"}."""
    failed = {}
    saved = os.dup(1), os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    try:
        for name in modules:
            try:
                __import__(name)
            except BaseException as exc:  # noqa: BLE001 - ImportError, or a module that calls exit() on import
                message = str(exc).strip().splitlines()
                failed[name] = type(exc).__name__ + (": " + message[0] if message else "")
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (null, *saved):
            os.close(fd)
    return failed


def send(channel_fd, kind, payload):
    """One ``KIND JSON`` line to aide-tui; dropped rather than blocking (or cut to fit)."""
    import json

    if channel_fd is None or channel_fd < 0:
        return
    data = (kind + " " + json.dumps(payload) + "\n").encode("utf-8", "replace")
    if len(data) > MAX_MESSAGE and "traceback" in payload:
        payload = dict(payload, traceback=payload["traceback"][-MAX_MESSAGE // 2 :])
        data = (kind + " " + json.dumps(payload) + "\n").encode("utf-8", "replace")
    if len(data) > MAX_MESSAGE:
        return
    try:
        os.set_blocking(channel_fd, False)
        os.write(channel_fd, data)
    except OSError:
        pass


def _wait_for_script(channel_fd, modules):
    """Warm start: preload, say so, and block until aide-tui names the script (None: not needed)."""
    sys.path[0] = os.getcwd()  # imports resolve as the script's will, not next to this launcher
    failed = _preload([m for m in modules.split(",") if m])
    send(channel_fd, "ready", {"failed": failed, "at": time.time()})
    line = sys.stdin.readline()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # the script's stdin is /dev/null, as in a cold start
    os.close(null)
    return line.strip() or None


# Keyring system calls by architecture (add_key, request_key, keyctl) and its seccomp audit id.
_KEYRING_CALLS = {
    "x86_64": (0xC000003E, (248, 249, 250), 317),
    "aarch64": (0xC00000B7, (217, 218, 219), 277),
}
KEYCTL_JOIN_SESSION_KEYRING = 1
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, EPERM = 0x7FFF0000, 0x00050000, 1


def _keyring_filter(arch, numbers):
    """A seccomp program: the keyring calls (and any call of a foreign ABI: i386, x32) fail with
    EPERM; everything else is allowed."""
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    deny = SECCOMP_RET_ERRNO | EPERM
    add_key, request_key, keyctl = numbers
    return [
        (ld, 0, 0, 4),  # seccomp_data.arch
        (jeq, 0, 6, arch),
        (ld, 0, 0, 0),  # seccomp_data.nr
        (jge, 4, 0, 0x40000000),  # x32 on x86_64
        (jeq, 3, 0, add_key),
        (jeq, 2, 0, request_key),
        (jeq, 1, 0, keyctl),
        (ret, 0, 0, SECCOMP_RET_ALLOW),
        (ret, 0, 0, deny),
    ]


def _shut_keyrings():
    """A new, empty session keyring, then no keyring calls at all (all threads, all children)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    machine = os.uname().machine
    libc = ctypes.CDLL(None, use_errno=True)
    known = _KEYRING_CALLS.get(machine)
    if known is None:
        return
    arch, numbers, seccomp_nr = known
    libc.syscall(numbers[2], KEYCTL_JOIN_SESSION_KEYRING, None)

    class Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]

    instructions = _keyring_filter(arch, numbers)
    table = (Filter * len(instructions))(*[Filter(*i) for i in instructions])
    program = Program(len(instructions), table)
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    # seccomp(SET_MODE_FILTER, TSYNC): threads a preload started are filtered too.
    if libc.syscall(seccomp_nr, 1, 1, ctypes.byref(program)) != 0:
        libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0)


def confine(limits):
    """What the kernel enforces on the script from here on (see the module docstring)."""
    import resource

    for name, which in (("fsize", resource.RLIMIT_FSIZE), ("nproc", getattr(resource, "RLIMIT_NPROC", None))):
        value = (limits or {}).get(name)
        if value and which is not None:
            try:
                resource.setrlimit(which, (int(value), int(value)))
            except (OSError, ValueError):
                pass
    try:
        _shut_keyrings()
    except Exception:  # noqa: BLE001 - no ctypes or an old kernel: the rest still holds
        pass


def parse_limits(text):
    """``fsize=N,nproc=M`` as a dict (what aide-tui passes in AIDE_LIMITS or a fork's job)."""
    limits = {}
    for item in (text or "").split(","):
        name, _, value = item.partition("=")
        if value.isdigit():
            limits[name] = int(value)
    return limits


def run_script(script, channel_fd, extra, limits=None):
    """Run `script` as ``__main__`` the way ``python script`` would; send an uncaught
    exception over `channel_fd`.  Shared by the cold and warm starts and the fork server."""
    if channel_fd is not None and channel_fd >= 0:
        os.set_inheritable(channel_fd, False)  # the script's subprocesses do not get it
    confine(limits)
    script_path = os.path.abspath(script)
    sys.argv = [script] + extra
    sys.path[0] = os.path.dirname(script_path)  # as `python solution.py` would set it
    launcher_pid = os.getpid()
    try:
        runpy.run_path(script_path, run_name="__main__")
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt is worth recording too
        if os.getpid() != launcher_pid:  # a forked child of the script raised: not ours to record
            raise
        import traceback  # imported only when needed: every run pays for the launcher's imports

        tb = _script_frames(exc.__traceback__, script_path)
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        send(channel_fd, "exception", {"exc_type": type(exc).__name__, "traceback": text})
        sys.stderr.write(text)
        sys.stderr.flush()
        sys.exit(1)


def main():
    warm = sys.argv[1] == "--warm"
    _die_with_parent()
    _become_subreaper()
    limits = _limits_from_env()
    if warm:
        channel_fd, extra = int(sys.argv[2]), []
        script = _wait_for_script(channel_fd, sys.argv[3] if len(sys.argv) > 3 else "")
        if script is None:
            os._exit(0)
    else:
        script, channel_fd, extra = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    run_script(script, channel_fd, extra, limits)


def _limits_from_env():
    """AIDE_LIMITS, removed from the script's environment."""
    return parse_limits(os.environ.pop("AIDE_LIMITS", ""))


if __name__ == "__main__":
    main()
