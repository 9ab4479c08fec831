"""`RayExecutor`: run each node's script on a Ray cluster instead of this machine.

For users who outgrow one machine.  The engine does not change: it prepares
the node's workspace locally as always and hands the executor an
`ExecRequest`; this executor ships that workspace to a Ray worker, runs it
there with the *same* `LocalExecutor` (so the time, memory and output caps,
the environment allow-list and the sandbox apply on the worker exactly as they
do here), streams the output lines back, and unpacks the files the script wrote
(regular files only, within the output caps: `pack_outputs`) into the local workspace, so the journal, git and ``--export`` see a node that
ran on the cluster as if it had run here.

Why a streaming generator task and not Ray Jobs: a task needs only Ray's core
package (no dashboard on the head), carries the workspace as an object, and its
yielded items are the line stream; `ray.cancel(force=True)` kills the worker
process, and with it the script (the launcher dies with its parent, bwrap with
``--die-with-parent``).  Ray knows no per-task deadline, so the worker's own
`LocalExecutor` enforces the script's timeout and this side adds a backstop.

The input data is packed once per run and put in the object store (keyed by
the files' names, sizes and mtimes), so N nodes do not upload it N times.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
import os
import queue
import socket
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

from .executor import ExecRequest, ExecResult, ExecutorUnavailable, LineSink, RunningJobs
from .workspace import HIDDEN_DIR, INPUT_DIR, collect

LINE_BATCH_SECONDS = 0.1  # lines are sent in batches: one Ray object per line would be slow
CONNECT_PROBE_SECONDS = 5.0
FINGERPRINT_SAMPLE = 1024 * 1024
BACKSTOP_GRACE = 30.0  # beyond the script's own timeout, measured from its start on the worker


# ---------------------------------------------------------------- packing


def pack_dir(root: Path, *, exclude_top: tuple[str, ...] = ()) -> bytes:
    """A gzip-free tar of `root` (data is often already compressed; speed matters more)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for entry in sorted(Path(root).iterdir()):
            if entry.name in exclude_top:
                continue
            tar.add(entry, arcname=entry.name, recursive=True)
    return buf.getvalue()


def pack_outputs(workspace: Path) -> bytes:
    """What the script wrote, as a tar of regular files only, read through `safe_read` on the
    worker: a symlink, FIFO or device is left out (it would make the host's extraction fail
    and throw the node's result away), and so is a file over the output caps (a sparse 1 GiB
    file is never read, let alone shipped)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in collect(workspace).files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def pack_empty() -> bytes:
    buf = io.BytesIO()
    tarfile.open(fileobj=buf, mode="w").close()
    return buf.getvalue()


def unpack_into(blob: bytes, target: Path) -> None:
    """Extract with tarfile's 'data' filter: no absolute paths, no `..`, no links out, no devices."""
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as tar:
        tar.extractall(target, filter="data")


def _input_fingerprint(input_dir: Path) -> tuple:
    """Names, sizes and a sampled hash: every node's input is a fresh copy (new mtimes)
    of the same data, and hashing gigabytes per node would cost what the cache saves."""
    items = []
    for root, _dirs, files in os.walk(input_dir):
        for name in files:
            path = Path(root) / name
            size = path.stat().st_size
            digest = hashlib.sha256()
            with path.open("rb") as fh:
                digest.update(fh.read(FINGERPRINT_SAMPLE))
                if size > 2 * FINGERPRINT_SAMPLE:
                    fh.seek(-FINGERPRINT_SAMPLE, os.SEEK_END)
                    digest.update(fh.read())
            items.append((path.relative_to(input_dir).as_posix(), size, digest.hexdigest()))
    return tuple(sorted(items))


# ---------------------------------------------------------------- the worker side


def run_on_worker(request: ExecRequest, workspace_blob: bytes, input_blob: bytes):
    """Generator run as a Ray task: yields ("started",), ("lines", [...])..., ("result", dict, outputs)."""
    import sys
    import tempfile

    from .local import LocalExecutor

    with tempfile.TemporaryDirectory(prefix="aide-node-") as tmp:
        workspace = Path(tmp) / "workspace"
        unpack_into(workspace_blob, workspace)
        unpack_into(input_blob, workspace / INPUT_DIR)
        python = request.python if request.python and Path(request.python).exists() else sys.executable
        local_request = dataclasses.replace(request, workspace=workspace, python=python)
        lines: queue.SimpleQueue = queue.SimpleQueue()
        executor = LocalExecutor()
        job = executor.submit(local_request, lambda stream, line: lines.put((stream, line)))
        yield ("started",)
        try:
            while True:
                finished = job.wait(LINE_BATCH_SECONDS) is not None
                batch = []
                while not lines.empty():
                    batch.append(lines.get())
                if batch:
                    yield ("lines", batch)
                if finished:
                    break
        finally:
            executor.shutdown()
        result = job.wait()
        assert result is not None  # wait() without a timeout returns once the result is set
        yield ("result", dataclasses.asdict(result), pack_outputs(workspace))


# ---------------------------------------------------------------- the driver side


class RayJob:
    """One node on the cluster; the same `Job` protocol as `LocalJob`."""

    def __init__(self, executor: RayExecutor, request: ExecRequest, on_line: LineSink):
        self.request = request
        self.on_line = on_line
        self._cancelled = threading.Event()
        self._done = threading.Event()
        self._result: ExecResult | None = None
        self._started_at: float | None = None
        workspace = Path(request.workspace)
        blob = pack_dir(workspace, exclude_top=(INPUT_DIR, HIDDEN_DIR))
        input_ref = executor.input_ref(workspace / INPUT_DIR)
        self._generator = executor.remote_task.remote(request, blob, input_ref)
        self._thread = threading.Thread(target=self._follow, name="aide-ray-job", daemon=True)
        self._thread.start()

    # -- Job protocol
    def cancel(self) -> None:
        if self._cancelled.is_set() or self._done.is_set():
            return
        self._cancelled.set()
        self._kill()

    def wait(self, timeout: float | None = None) -> ExecResult | None:
        self._done.wait(timeout)
        return self._result

    @property
    def done(self) -> bool:
        return self._done.is_set()

    # -- internals
    def _kill(self) -> None:
        import ray

        try:
            ray.cancel(self._generator, force=True)
        except Exception:  # noqa: BLE001 - already finished or the cluster is gone
            pass

    def _follow(self) -> None:
        import ray

        watchdog = threading.Thread(target=self._backstop, name="aide-ray-backstop", daemon=True)
        watchdog.start()
        reason: str | None = None
        try:
            # num_returns="streaming" makes .remote() return an ObjectRefGenerator; Ray's types say ObjectRef.
            for ref in self._generator:  # type: ignore[attr-defined]
                item = ray.get(ref)
                kind = item[0]
                if kind == "started":
                    self._started_at = time.monotonic()
                elif kind == "lines":
                    for stream, line in item[1]:
                        try:
                            self.on_line(stream, line)
                        except Exception:  # noqa: BLE001 - a broken front end must not lose the node
                            pass
                elif kind == "result":
                    unpack_into(item[2], Path(self.request.workspace))
                    self._result = ExecResult(**item[1])
        except Exception as exc:  # noqa: BLE001 - cancelled, worker died, cluster lost
            reason = "cancelled" if self._cancelled.is_set() else f"executor error: {type(exc).__name__}: {exc}"
        if self._result is None or self._cancelled.is_set():
            reason = reason or (
                "cancelled" if self._cancelled.is_set() else "executor error: no result from the worker"
            )
            started = self._started_at
            self._result = ExecResult(
                exit_code=None,
                exc_type=None,
                traceback=None,
                wall_time=time.monotonic() - started if started else 0.0,
                peak_memory_mb=0.0,
                killed_reason=reason,
                output="",
                truncated_bytes=0,
            )
        self._done.set()

    def _backstop(self) -> None:
        """Ray has no task deadline: if the worker's own timeout never fires, end the task here."""
        while not self._done.wait(1.0):
            started = self._started_at
            if started is not None and time.monotonic() - started > self.request.timeout + BACKSTOP_GRACE:
                self._kill()
                return


class RayExecutor:
    """Connects once per run; every `submit` is one Ray task with `node_cpus`/`node_gpus`."""

    def __init__(self, address: str | None, node_cpus: float = 1.0, node_gpus: float = 0.0):
        try:
            import ray
        except ImportError:
            raise ExecutorUnavailable("the ray executor needs Ray: pip install 'aide-tui[ray]'") from None
        if address:
            _probe(address)
        try:
            ray.init(
                address=address or "auto", log_to_driver=False, logging_level=logging.ERROR, ignore_reinit_error=True
            )
        except Exception as exc:  # noqa: BLE001 - ConnectionError, RuntimeError, ...
            where = address or "RAY_ADDRESS / a local cluster"
            raise ExecutorUnavailable(f"cannot connect to the Ray cluster at {where} ({exc})") from None
        self.remote_task = ray.remote(num_returns="streaming", num_cpus=node_cpus, num_gpus=node_gpus, max_retries=0)(
            run_on_worker
        )
        self._inputs: dict[tuple, Any] = {}
        self._jobs: RunningJobs[RayJob] = RunningJobs()
        self._lock = threading.Lock()  # guards _inputs

    def input_ref(self, input_dir: Path):
        """The run's input data as one object in the cluster's store, uploaded once."""
        import ray

        key = _input_fingerprint(input_dir) if input_dir.is_dir() else ()
        with self._lock:
            ref = self._inputs.get(key)
            if ref is None:
                ref = ray.put(pack_dir(input_dir) if input_dir.is_dir() else pack_empty())
                self._inputs[key] = ref
        return ref

    def warm_up(self, request: ExecRequest, preload: tuple[str, ...]) -> None:
        """No warm starts on a cluster: the worker's interpreter starts when the task does."""
        return None

    def submit(self, request: ExecRequest, on_line: LineSink, warm: object | None = None) -> RayJob:
        return self._jobs.add(RayJob(self, request, on_line))

    def shutdown(self, timeout: float = 10.0) -> None:
        import ray

        self._jobs.end_all(timeout)
        ray.shutdown()


def _probe(address: str) -> None:
    """Fail in seconds, not minutes: ray.init retries an unreachable address for a long time."""
    host, _, port = address.rpartition(":")
    if address.startswith(("ray://", "http://", "https://")):
        return  # a client or dashboard URL: let Ray say what is wrong
    if not host or not port.isdigit():
        raise ExecutorUnavailable(f"ray address {address!r} is not HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_PROBE_SECONDS).close()
    except OSError as exc:
        raise ExecutorUnavailable(
            f"nothing answers at the Ray address {address} ({exc.strerror or exc}); start the head with `ray start --head` or fix --ray-address"
        ) from None
