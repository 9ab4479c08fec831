"""Run a solution script as ``__main__`` and record an uncaught exception to a file.

Executed by path in the child (``python /abs/launcher.py solution.py RESULT``),
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

Warm start (``python /abs/launcher.py --warm RESULT MODULE,MODULE``): the
launcher imports the modules first, with its stdout and stderr pointed at
/dev/null (a module's import chatter is not the script's output; one that
fails to import, with any exception, is skipped), writes ``warm-ready`` next
to RESULT (empty, or JSON ``{"failed": {module: "ExcType: message"}}`` for
aide-tui to note once), and then waits for one line on stdin naming the script.  Stdin is then /dev/null,
exactly as in a cold start, and the script runs the same way.  EOF instead of
a line means the warm process was not needed: it exits quietly.

SystemExit passes through untouched.  On any other uncaught exception the
launcher writes ``{"exc_type", "traceback"}`` as JSON to RESULT, prints the
traceback (without the launcher's own frames) to stderr and exits with 1,
like Python does.
"""

import os
import runpy
import sys


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


def _wait_for_script(result_file, modules):
    """Warm start: preload, say so, and block until aide-tui names the script (None: not needed)."""
    sys.path[0] = os.getcwd()  # imports resolve as the script's will, not next to this launcher
    failed = _preload([m for m in modules.split(",") if m])
    with open(os.path.join(os.path.dirname(result_file), "warm-ready"), "w") as ready:
        if failed:
            import json

            json.dump({"failed": failed}, ready)
    line = sys.stdin.readline()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # the script's stdin is /dev/null, as in a cold start
    os.close(null)
    return line.strip() or None


def run_script(script, result_file, extra):
    """Run `script` as ``__main__`` the way ``python script`` would; record an uncaught
    exception in `result_file`.  Shared by the cold and warm starts and the fork server."""
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
        import json  # imported only when needed: every run pays for the launcher's imports
        import traceback

        tb = _script_frames(exc.__traceback__, script_path)
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        try:
            with open(result_file, "w", encoding="utf-8") as fh:
                json.dump({"exc_type": type(exc).__name__, "traceback": text}, fh)
        except OSError:
            pass
        sys.stderr.write(text)
        sys.stderr.flush()
        sys.exit(1)


def main():
    warm = sys.argv[1] == "--warm"
    _die_with_parent()
    _become_subreaper()
    if warm:
        result_file, extra = sys.argv[2], []
        script = _wait_for_script(result_file, sys.argv[3] if len(sys.argv) > 3 else "")
        if script is None:
            os._exit(0)
    else:
        script, result_file, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
    run_script(script, result_file, extra)


if __name__ == "__main__":
    main()
