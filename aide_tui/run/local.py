"""`LocalExecutor`: run a solution script as a subprocess of this machine.

Each `LocalJob` owns three small threads:

* a *waiter* blocks until the script's main process exits, without reaping it
  (``waitid(WNOWAIT)``) so its PID and process-group id stay reserved until
  the tree is killed;
* a *monitor* samples the process tree every ~0.1 s (remembering every
  descendant, summing RSS), enforces the timeout, the memory cap and
  cancellation, and assembles the result once the main process is gone;
* a *reader* reads stdout and stderr with ``select`` (never blocking on EOF:
  a grandchild holding the pipe open cannot hang the result), splits on
  ``\\n`` and ``\\r``, redacts secrets, calls ``on_line`` and feeds the
  capped capture.

Whatever way the script ends, the whole tree is killed afterwards, so no
background process outlives its node: every process the kernel lists in the
node's cgroup (run/cgroup.py), where there is one, and every process the
tree sampling found.  The monitor also keeps the node's disk budget
(run/diskwatch.py) and names the kernel's own kills (the cgroup's memory cap)
in the result.
"""

from __future__ import annotations

import codecs
import concurrent.futures
import logging
import os
import re
import select
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from .cgroup import NodeCgroup
from .diskwatch import DiskBudget, empty_workspace
from .executor import ExecRequest, ExecResult, LineSink, RunningJobs
from .forkserver import ForkedWarmStart, ForkServer, ForkServerDead, fork_server_supported, server_key
from .launch import SESSION_RECORD, LauncherProcess, WarmHandle, WarmStart
from .sandbox import ProcessTree, redact
from .workspace import HIDDEN_DIR, host_record  # the launcher's area inside a workspace; not an output

SAMPLE_INTERVAL = 0.1
MAX_LINE_CHARS = 10_000  # longest line handed to on_line / kept in the capture
READ_CHUNK = 64 * 1024
PIPE_GRACE = 0.5  # after the tree is dead, how long to wait for pipes to reach EOF

log = logging.getLogger(__name__)

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class OutputCapture:
    """Interleaved output kept within a byte budget: the head, a marker, the tail.

    Lines ended by a bare ``\\r`` (progress bars) are what a terminal would
    overwrite, so only the last one of a run of them is kept, and only if no
    ``\\n`` line replaces it; ``on_line`` still sees all of them.
    """

    def __init__(self, limit_bytes: int):
        self.head_budget = max(limit_bytes // 2, 0)
        self.tail_budget = max(limit_bytes - self.head_budget, 0)
        self.head = bytearray()
        self.tail = bytearray()
        self.cut = 0  # bytes dropped between head and tail
        self.line_cut = 0  # bytes dropped from over-long lines (marked inline)
        self.lock = threading.Lock()

    def add(self, data: bytes, line_cut: int = 0) -> None:
        with self.lock:
            self.line_cut += line_cut
            room = self.head_budget - len(self.head)
            if room > 0 and not self.tail:
                self.head += data[:room]
                data = data[room:]
            if not data:
                return
            self.tail += data
            if len(self.tail) > 2 * self.tail_budget + READ_CHUNK:  # amortized trimming
                self._trim_tail()

    def _trim_tail(self) -> None:
        excess = len(self.tail) - self.tail_budget
        if excess > 0:
            del self.tail[:excess]
            self.cut += excess

    def text(self) -> tuple[str, int]:
        """The captured output and the number of bytes cut from it (middle + long lines)."""
        with self.lock:
            self._trim_tail()
            head, tail, cut, line_cut = bytes(self.head), bytes(self.tail), self.cut, self.line_cut
        if cut and tail:
            # Cut at line boundaries so neither side starts or ends mid-line.
            nl = head.rfind(b"\n")
            if nl != -1:
                cut += len(head) - nl - 1
                head = head[: nl + 1]
            nl = tail.find(b"\n")
            if nl != -1 and nl + 1 < len(tail):
                cut += nl + 1
                tail = tail[nl + 1 :]
        if not cut:
            return (head + tail).decode("utf-8", "replace"), line_cut
        if head and not head.endswith(b"\n"):
            head += b"\n"
        marker = f"[... {cut} bytes of output cut ...]\n".encode()
        return (head + marker + tail).decode("utf-8", "replace"), cut + line_cut


class _StreamSplitter:
    """Turns raw chunks of one stream into lines, never holding more than MAX_LINE_CHARS."""

    def __init__(self, name: str, emit):
        self.name = name
        self.emit = emit  # emit(stream, line, ended_by_cr, cut_bytes)
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.partial = ""
        self.partial_cut = 0  # bytes of the current line beyond MAX_LINE_CHARS
        self.after_cr = False  # last chunk ended with '\r': a leading '\n' belongs to it

    def feed(self, chunk: bytes, final: bool = False) -> None:
        text = self.decoder.decode(chunk, final)
        if self.after_cr and (text or final):
            # The previous chunk ended with '\r': only now do we know if it was '\r\n'.
            self.after_cr = False
            crlf = text.startswith("\n")
            if crlf:
                text = text[1:]
            self._flush(ended_by_cr=not crlf)
        pos = 0
        for match in _LINE_BREAK.finditer(text):
            self._append(text[pos : match.start()])
            pos = match.end()
            if match.group() == "\r" and pos == len(text) and not final:
                self.after_cr = True
                return
            self._flush(ended_by_cr=(match.group() == "\r"))
        self._append(text[pos:])
        if final and (self.partial or self.partial_cut):
            self._flush(ended_by_cr=False)

    def _append(self, piece: str) -> None:
        room = MAX_LINE_CHARS - len(self.partial)
        if len(piece) > room:
            self.partial_cut += len(piece[room:].encode("utf-8", "replace"))
            piece = piece[:room]
        self.partial += piece

    def _flush(self, ended_by_cr: bool) -> None:
        line, cut = self.partial, self.partial_cut
        self.partial, self.partial_cut = "", 0
        if cut:
            line += f" [... {cut} bytes of this line cut ...]"
        self.emit(self.name, line, ended_by_cr, cut)


class LocalJob:
    """One running script; see the module docstring for its threads."""

    def __init__(
        self, request: ExecRequest, on_line: LineSink, environ: Mapping[str, str], warm: WarmHandle | None = None
    ):
        self.request = request
        self.on_line = on_line
        self.capture = OutputCapture(request.output_limit_bytes)
        self._pending_cr: dict[str, tuple[bytes, int] | None] = {"stdout": None, "stderr": None}
        self._lock = threading.Lock()
        self._killed_reason: str | None = None
        self._cancel = threading.Event()
        self._exited = threading.Event()
        self._done = threading.Event()
        self._result: ExecResult | None = None
        self._peak_mb = 0.0
        self.wall_time: float | None = None

        # Limits count from here: when the script is handed over, warm or cold.
        self.started = time.monotonic()
        self._handed_over = time.time()
        launch = warm.take(request) if warm is not None else None
        self.warm = launch is not None
        if launch is None:
            launch = LauncherProcess(request, environ)
        self.launch = launch
        self.workspace, self.secrets, self.cgroup = launch.workspace, launch.secrets, launch.cgroup
        self.disk = DiskBudget(self.workspace, request.disk_limit_mb * 1024 * 1024) if request.disk_limit_mb else None
        self.proc = launch.proc
        self.tree = ProcessTree(self.proc.pid, count_root=launch.root_rss)
        self._reader_stop = threading.Event()
        self._reader = threading.Thread(target=self._read, name=f"aide-exec-read-{self.proc.pid}", daemon=True)
        self._waiter = threading.Thread(target=self._wait_exit, name=f"aide-exec-wait-{self.proc.pid}", daemon=True)
        self._monitor = threading.Thread(target=self._watch, name=f"aide-exec-watch-{self.proc.pid}", daemon=True)
        self._reader.start()
        self._waiter.start()
        self._monitor.start()

    # -- Job protocol -------------------------------------------------------
    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> ExecResult | None:
        self._done.wait(timeout)
        return self._result

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def pid(self) -> int:
        return self.proc.pid

    # -- threads ------------------------------------------------------------
    def _wait_exit(self) -> None:
        """Block until the main process exits, leaving it unreaped (a zombie) if possible."""
        try:
            os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOWAIT)
        except (AttributeError, ChildProcessError, OSError):
            self.proc.wait()
        if self.wall_time is None:
            self.wall_time = self._script_time()
        self._exited.set()

    def _script_time(self) -> float:
        """The script's own run time: a warm interpreter handed its script before its preloads
        were in (code came faster than the imports) starts the script when they are, which
        its ready file's time records."""
        elapsed = time.monotonic() - self.started
        ready_at = self.launch.ready_at() if self.warm else None
        waited = ready_at - self._handed_over if ready_at is not None else 0.0
        return elapsed - min(max(waited, 0.0), elapsed)

    def _watch(self) -> None:
        try:
            self._watch_until_exit()
        finally:
            self._finish()

    def _watch_until_exit(self) -> None:
        req = self.request
        deadline = self.started + req.timeout
        while not self._exited.is_set():
            rss = self.tree.sample_rss_mb()
            self._peak_mb = max(self._peak_mb, rss)
            if self._cancel.is_set():
                return self._kill("cancelled")
            over = req.memory_limit_mb is not None and rss > req.memory_limit_mb
            if over or (self.cgroup is not None and self.cgroup.oom_kills()):  # the kernel killed one of it
                return self._kill(f"memory limit exceeded: {req.memory_limit_mb} MiB")
            if self.disk is not None and self.disk.exceeded():
                return self._kill(f"disk limit exceeded: {req.disk_limit_mb} MiB written in the workspace")
            if time.monotonic() >= deadline:
                return self._kill("timeout")
            wake = min(SAMPLE_INTERVAL, max(deadline - time.monotonic(), 0.0))
            # Wake early on exit; cancel is noticed at the next tick (≤ SAMPLE_INTERVAL).
            self._exited.wait(wake)

    def _kill(self, reason: str) -> None:
        with self._lock:
            if self._killed_reason is None and not self._exited.is_set():
                self._killed_reason = reason
        if self.wall_time is None:
            self.wall_time = self._script_time()
        self._kill_tree()
        self._exited.wait(5.0)

    def _kill_tree(self) -> None:
        """Everything the kernel counts as the node's, then everything sampling found."""
        if self.cgroup is not None:
            self.cgroup.kill()
        self.tree.kill_all()

    def _finish(self) -> None:
        try:
            self._kill_tree()  # leftover background processes die with the node
            self.proc.wait()  # now reap the main process
            self._reader.join(PIPE_GRACE)
            if self._reader.is_alive():  # something we could not find still holds a pipe
                self._reader_stop.set()
                self._reader.join()
            self._result = self._build_result()
        except BaseException as exc:  # never leave wait() hanging
            self._result = ExecResult(
                exit_code=None,
                exc_type=None,
                traceback=None,
                wall_time=time.monotonic() - self.started,
                peak_memory_mb=self._peak_mb,
                killed_reason=f"executor error: {exc!r}",
                output="",
                truncated_bytes=0,
            )
            raise
        finally:
            for pipe in (self.proc.stdout, self.proc.stderr):
                try:
                    if pipe is not None:
                        pipe.close()
                except OSError:
                    pass
            if hasattr(self.proc, "close"):  # a forked child's job socket
                self.proc.close()
            self.launch.channel.poll()  # what the launcher said stays readable (failed preloads)
            self.launch.channel.close()
            if self.cgroup is not None:
                self.cgroup.remove()
            host_record(self.workspace, SESSION_RECORD).unlink(missing_ok=True)
            self._done.set()

    def _build_result(self) -> ExecResult:
        exc_type = traceback = None
        data = self.launch.exception() if self.proc.returncode != 0 else None  # the launcher's word, if it failed
        if data is not None:
            exc_type = data.get("exc_type") and str(data["exc_type"])[:200]
            traceback = data.get("traceback") and redact(str(data["traceback"]), self.secrets)
        output, cut = self.capture.text()
        refused = self.cgroup.forks_refused() if self.cgroup is not None else 0
        if refused:  # said where the review reads, next to the script's own BlockingIOError
            output += (
                f"[aide-tui: {refused} new process(es) or thread(s) refused: the node may have at most "
                f"{self.request.pids_limit} at once (pids_limit)]\n"
            )
        killed = self._killed_reason
        if killed is None and self.proc.returncode != 0 and self.cgroup is not None and self.cgroup.oom_kills():
            killed = f"memory limit exceeded: {self.request.memory_limit_mb} MiB"  # the kernel's own kill
        if killed is not None and killed.startswith("disk limit"):
            empty_workspace(self.workspace)
        if self.cgroup is not None and self.cgroup.oom_kills():  # what it held when the kernel stopped it
            self._peak_mb = max(self._peak_mb, self.cgroup.peak_memory_mb())
        return ExecResult(
            exit_code=None if killed else self.proc.returncode,
            exc_type=exc_type,
            traceback=traceback,
            wall_time=self.wall_time if self.wall_time is not None else time.monotonic() - self.started,
            peak_memory_mb=round(self._peak_mb, 1),
            killed_reason=killed,
            output=output,
            truncated_bytes=cut,
        )

    def _read(self) -> None:
        assert self.proc.stdout is not None and self.proc.stderr is not None  # always started with pipes
        streams = {self.proc.stdout.fileno(): "stdout", self.proc.stderr.fileno(): "stderr"}
        splitters = {fd: _StreamSplitter(name, self._emit) for fd, name in streams.items()}
        poller = select.poll()
        for fd in streams:
            poller.register(fd, select.POLLIN)
        open_fds = set(streams)
        while open_fds:
            if self._reader_stop.is_set():
                # Take what is already there (bounded), then give up on the pipe's holder.
                budget = 16 * READ_CHUNK
                while budget > 0 and open_fds:
                    ready = poller.poll(0)
                    if not ready:
                        break
                    for fd, _ in ready:
                        chunk = self._read_chunk(fd)
                        budget -= READ_CHUNK
                        if chunk:
                            splitters[fd].feed(chunk)
                        else:
                            poller.unregister(fd)
                            open_fds.discard(fd)
                break
            for fd, _ in poller.poll(SAMPLE_INTERVAL * 1000):
                chunk = self._read_chunk(fd)
                if chunk:
                    splitters[fd].feed(chunk)
                else:  # EOF (or POLLHUP with nothing left)
                    poller.unregister(fd)
                    open_fds.discard(fd)
        for splitter in splitters.values():
            splitter.feed(b"", final=True)
        for name in ("stdout", "stderr"):
            pending = self._pending_cr[name]
            if pending is not None:
                self.capture.add(*pending)

    @staticmethod
    def _read_chunk(fd: int) -> bytes:
        try:
            return os.read(fd, READ_CHUNK)
        except OSError:
            return b""

    def _emit(self, stream: str, line: str, ended_by_cr: bool, cut: int) -> None:
        line = redact(line, self.secrets)
        try:
            self.on_line(stream, line)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - a broken front end must not stop the script's output
            pass
        data = (line + "\n").encode("utf-8", "replace")
        if ended_by_cr:
            # A terminal would overwrite this line; keep only the latest in the capture.
            self._pending_cr[stream] = (data, cut)
            return
        self._pending_cr[stream] = None
        self.capture.add(data, cut)


# Every process is started from this one thread, which lives as long as aide-tui: the kernel's
# "die with parent" (PR_SET_PDEATHSIG, bwrap --die-with-parent) follows the *thread* that
# forked, so a warm process started by one node's thread and used by the next must not die
# when the first thread ends, nor a script when the executor object is dropped.
_SPAWNER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="aide-spawn")


class LocalExecutor:
    """Runs each request as its own `LocalJob`; several may run at once."""

    def __init__(self, environ: Mapping[str, str] | None = None):
        # The child's environment starts from ours (allow-listed); run/ is where it is built.
        self.environ = dict(os.environ if environ is None else environ)
        self._jobs: RunningJobs[LocalJob] = RunningJobs()
        self._warm: list[WarmHandle] = []
        self._servers: dict[tuple, ForkServer] = {}
        self._lock = threading.Lock()  # guards _warm and _servers

    def warm_up(self, request: ExecRequest, preload: tuple[str, ...]) -> WarmHandle | None:
        """Start `request`'s interpreter now, importing `preload`; hand it to `submit` later.

        A fork of the run's zygote when one can serve it (the imports happen once per run),
        else a fresh interpreter of its own that imports them."""
        if not preload:
            return None
        warm: WarmHandle | None = self._forked(request, preload)
        if warm is None:
            warm = _SPAWNER.submit(WarmStart, request, self.environ, preload).result()
        with self._lock:
            self._warm = [w for w in self._warm if w.pending]
            self._warm.append(warm)
        return warm

    def _forked(self, request: ExecRequest, preload: tuple[str, ...]) -> ForkedWarmStart | None:
        if not fork_server_supported(request):
            return None
        key = server_key(request, preload)
        try:
            with self._lock:
                server = self._servers.get(key)
                if server is None:  # started from the spawner thread: it dies with aide-tui, not a node's thread
                    server = self._servers[key] = _SPAWNER.submit(ForkServer, request, self.environ, preload).result()
            launch = server.fork(request, self.environ)
            if server.ready:  # a fork takes milliseconds: wait for it, so a failure shows now, not at submit
                launch.started(timeout=10)
            return ForkedWarmStart(launch)
        except ForkServerDead:
            return None
        except OSError:
            log.exception("could not fork a warm interpreter")
            return None

    def submit(self, request: ExecRequest, on_line: LineSink, warm: WarmHandle | None = None) -> LocalJob:
        return self._jobs.add(_SPAWNER.submit(LocalJob, request, on_line, self.environ, warm).result())

    def shutdown(self, timeout: float = 10.0) -> None:
        with self._lock:
            warm, self._warm = self._warm, []
        for start in warm:
            start.discard()
        self._jobs.end_all(timeout)
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.close()


__all__ = ["LocalExecutor", "LocalJob", "OutputCapture", "HIDDEN_DIR", "MAX_LINE_CHARS"]


def kill_leftovers(workspace: Path) -> int:
    """Kill what an interrupted run left behind in `workspace` (aide-tui was killed mid-node).

    The script itself died with aide-tui (PR_SET_PDEATHSIG), but processes it
    started may not have.  Nothing the script could write decides what dies:

    * every process the kernel lists in the node's cgroup (found by the
      workspace's name, not by anything in it), which is then removed;
    * a process whose working directory is inside the workspace;
    * a process in the session aide-tui recorded for the node beside the
      workspace (`host_record`, out of every script's view), unless that
      session's leader (the dead launcher's pid) is alive again as some
      unrelated process.

    Returns how many processes were killed.
    """
    import psutil

    workspace = Path(workspace).resolve()
    killed = 0
    for group in NodeCgroup.leftovers(workspace):
        killed += len(group.members())
        group.remove()
    record = host_record(workspace, SESSION_RECORD)
    try:
        session: int | None = int(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        session = None
    record.unlink(missing_ok=True)
    if session is not None and psutil.pid_exists(session):
        session = None  # the pid was reused: the recorded session no longer identifies our processes

    def ours(proc: psutil.Process) -> bool:
        cwd = proc.info.get("cwd") or ""
        if cwd == str(workspace) or cwd.startswith(str(workspace) + os.sep):
            return True
        try:
            return session is not None and os.getsid(proc.pid) == session
        except OSError:
            return False

    doomed = [p for p in psutil.process_iter(["cwd"]) if p.pid != os.getpid() and ours(p)]
    for proc in doomed:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(doomed, timeout=5)
    return killed + len(doomed)
