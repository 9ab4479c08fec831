"""The one way aide-tui takes anything out of a workspace once the script has ended.

A workspace is written by untrusted code, and aide-tui reads it back outside the
sandbox with the user's rights.  Whatever the script left there may be a
symlink to a file the sandbox hid (the holdout labels, a canary in the home
directory), a hard link to one, a FIFO that blocks a reader forever, a sparse
file of a gigabyte, a directory 1,200 levels deep or 100,000 tiny files.  So
every read here:

* resolves the path *beneath* a directory fd without following any symlink:
  ``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`` where the kernel has it
  (5.6+), else one ``openat(O_NOFOLLOW)`` per component;
* opens non-blocking (a FIFO cannot hang the open) and decides on ``fstat`` of
  the open fd, never on a ``stat`` before the open: regular files only, no
  second hard link (a link would name a file outside the workspace), size
  capped before a byte is read, and the read itself stops at the cap;
* walks directories iteratively with a depth cap and a count cap, never into
  ``.git`` (a name git refuses to hold, and one that gives a planted config
  power over git commands run there).

Nothing here follows the script's claims: what is refused is named, so a caller
can say why a file was not taken.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import io
import os
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

# openat2(2): Linux 5.6+.  The syscall number is the same on every architecture (the unified table).
_SYS_OPENAT2 = 437
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_openat2_works: bool | None = None if sys.platform.startswith("linux") else False  # probed on first use
# O_PATH (Linux): an fd that names a file without opening it for reading, so a FIFO or device is
# judged by fstat before anything touches it.  Elsewhere (macOS) the file is opened O_NONBLOCK instead.
_PATH: int = getattr(os, "O_PATH", 0)
_LOOK = _PATH if _PATH else os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY

MAX_WALK_DEPTH = 32  # directories deeper than this are not walked (noted), never recursed into
GIT_DIR_NAMES = frozenset({".git"})  # compared case-folded: git refuses `.GIT` on case-insensitive systems too


class RefusedRead(OSError):
    """A workspace entry aide-tui will not read; the message says what it is instead."""


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)  # loaded once: per call it cost more than the open itself


def _openat2(dir_fd: int, rel: str, flags: int) -> int:
    libc = _libc()
    how = _OpenHow(flags, 0, _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS)
    fd = libc.syscall(_SYS_OPENAT2, dir_fd, os.fsencode(rel), ctypes.byref(how), ctypes.sizeof(how))
    if fd < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), rel)
    return int(fd)


def _parts(rel: str) -> list[str]:
    parts = [p for p in PurePosixPath(rel).parts if p not in ("", ".")]
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
        raise RefusedRead(errno.EINVAL, "not a path inside the directory", rel)
    return parts


def _open_by_components(dir_fd: int, parts: list[str], flags: int) -> int:
    """openat(O_NOFOLLOW) one component at a time: no symlink is followed anywhere on the way."""
    current = dir_fd
    try:
        for part in parts[:-1]:
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=current)
            if current != dir_fd:
                os.close(current)
            current = nxt
        return os.open(parts[-1], flags | os.O_NOFOLLOW, dir_fd=current)
    finally:
        if current != dir_fd:
            os.close(current)


def open_beneath(dir_fd: int, rel: str, flags: int = os.O_RDONLY) -> int:
    """An fd for `rel` under `dir_fd`, refusing symlinks anywhere on the path and any `..`.

    ELOOP (or ENOTDIR from O_DIRECTORY|O_NOFOLLOW) means a symlink stood in the way."""
    global _openat2_works
    parts = _parts(rel)
    flags |= os.O_CLOEXEC if _PATH and flags & _PATH else os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
    if _openat2_works is not False:
        try:
            fd = _openat2(dir_fd, "/".join(parts), flags)
            _openat2_works = True
            return fd
        except OSError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EPERM) or _openat2_works:  # EPERM: a seccomp filter
                raise
            _openat2_works = False
    return _open_by_components(dir_fd, parts, flags)


def _check_regular(info: os.stat_result, rel: str, max_bytes: int) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise RefusedRead(errno.ELOOP, "a symlink, not a file", rel)
    if not stat.S_ISREG(info.st_mode):
        raise RefusedRead(errno.EINVAL, "not a regular file (a FIFO, socket, device or directory)", rel)
    if info.st_nlink > 1:
        raise RefusedRead(
            errno.EMLINK, "a file with a second hard link (it may name a file outside the workspace)", rel
        )
    if info.st_size > max_bytes:
        raise RefusedRead(errno.EFBIG, f"{info.st_size} bytes, over the {max_bytes}-byte cap", rel)


def _reopen(path_fd: int, flags: int = os.O_RDONLY) -> int:
    """A readable fd for the very inode `path_fd` holds (no path is looked up again)."""
    if not _PATH:
        return os.dup(path_fd)  # already opened for reading (O_NONBLOCK) where there is no O_PATH
    return os.open(f"/proc/self/fd/{path_fd}", flags | os.O_CLOEXEC | os.O_NOCTTY)


def _open_regular(dir_fd: int, rel: str, max_bytes: int) -> tuple[int, os.stat_result]:
    """Opened as O_PATH first: a FIFO or a device is judged by fstat without ever being opened for reading."""
    try:
        path_fd = open_beneath(dir_fd, rel, _LOOK)
    except RefusedRead:
        raise
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EXDEV, errno.ENOTDIR):
            raise RefusedRead(errno.ELOOP, "a symlink, not a file", rel) from None
        raise
    try:
        info = os.fstat(path_fd)
        _check_regular(info, rel, max_bytes)
        return _reopen(path_fd), info
    finally:
        os.close(path_fd)


class _CappedReader(io.RawIOBase):
    """Reads an fd, failing once more than `cap` bytes came (the file grew after fstat)."""

    def __init__(self, fd: int, cap: int, rel: str):
        self._fd, self._left, self._rel = fd, cap, rel

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        view = memoryview(buffer).cast("B")
        count = os.readv(self._fd, [view[: min(len(view), self._left + 1)]])
        self._left -= count
        if self._left < 0:
            raise RefusedRead(errno.EFBIG, "grew past its cap while being read", self._rel)
        return count

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


@contextmanager
def _dir_fd(root: Path) -> Iterator[int]:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def open_regular(root: Path, rel: str, max_bytes: int) -> Iterator[BinaryIO]:
    """A buffered binary stream of the regular file `rel` under `root`, read at most `max_bytes`."""
    with _dir_fd(root) as dir_fd:
        fd, _info = _open_regular(dir_fd, rel, max_bytes)
    with io.BufferedReader(_CappedReader(fd, max_bytes, rel)) as stream:
        yield stream  # type: ignore[misc]


@contextmanager
def open_text(root: Path, rel: str, max_bytes: int, encoding: str = "utf-8-sig") -> Iterator[io.TextIOWrapper]:
    """`open_regular` decoded as text, for streaming a CSV through csv.reader without a copy in memory."""
    with open_regular(root, rel, max_bytes) as raw:
        yield io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")


def read_bytes(root: Path, rel: str, max_bytes: int) -> bytes:
    """The whole regular file `rel` under `root` (at most `max_bytes`), or RefusedRead saying why not."""
    with open_regular(root, rel, max_bytes) as stream:
        return stream.read()


def fingerprint(root: Path, rel: str) -> tuple[int, int] | None:
    """(device, inode) of `rel` under `root` without following a symlink; None when absent or refused."""
    try:
        with _dir_fd(root) as dir_fd:
            fd = open_beneath(dir_fd, rel, _LOOK)
        try:
            info = os.fstat(fd)
        finally:
            os.close(fd)
    except OSError:
        return None
    return info.st_dev, info.st_ino


# ---------------------------------------------------------------- walking a workspace


@dataclass
class Collected:
    """What a walk took (relative posix path -> bytes) and what it left, in words for the user."""

    files: dict[str, bytes] = field(default_factory=dict)
    too_large: list[str] = field(default_factory=list)  # over the per-file or total byte cap
    refused: list[str] = field(default_factory=list)  # "name: why" (symlink, FIFO, hard link, ...)
    notes: list[str] = field(default_factory=list)  # depth and count caps reached

    @property
    def bytes(self) -> int:
        return sum(len(data) for data in self.files.values())


def _is_git_dir_name(name: str) -> bool:
    return name.casefold().rstrip(". ") in GIT_DIR_NAMES


def collect(
    root: Path,
    *,
    max_file_bytes: int,
    max_total_bytes: int,
    max_files: int,
    max_depth: int = MAX_WALK_DEPTH,
    skip: Callable[[str], bool] = lambda rel: False,
) -> Collected:
    """Every regular file under `root` (a directory's files, then its subdirectories, each sorted;
    depth-first and iterative), within the caps.

    `skip(rel)` leaves out an entry (file or directory) by its relative path.  A file
    over `max_file_bytes`, or one that would push the total past `max_total_bytes`, is
    listed in `too_large` (a smaller later file may still fit).  Past `max_files`
    files, or below `max_depth` directories, the walk stops taking and says so once.
    At most `max_depth` directory fds are open at a time."""
    walk = _Walk(Collected(), max_file_bytes, max_total_bytes, max_files)
    if not os.path.isdir(root):  # e.g. the script deleted its own workspace: nothing to take
        return walk.found
    with _dir_fd(Path(root)) as top:
        stack: list[tuple[int, str, int, Iterator[str]]] = [(top, "", 0, _files_first(top))]
        try:
            while stack:
                dir_fd, prefix, depth, names = stack[-1]
                name = next(names, None)
                if name is None:
                    stack.pop()
                    if dir_fd != top:
                        os.close(dir_fd)
                    continue
                rel = f"{prefix}{name}"
                if skip(rel) or _is_git_dir_name(name):
                    continue
                try:
                    path_fd = os.open(name, _LOOK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
                except OSError:
                    continue  # gone meanwhile, or unreadable: not an output
                try:
                    info = os.fstat(path_fd)
                    if not stat.S_ISDIR(info.st_mode):
                        walk.take(path_fd, info, rel)
                    elif depth + 1 >= max_depth:
                        walk.too_deep += 1
                    else:
                        sub = _reopen(path_fd, os.O_RDONLY | os.O_DIRECTORY)
                        try:
                            entries = _files_first(sub)
                        except OSError:
                            os.close(sub)
                            continue
                        stack.append((sub, f"{rel}/", depth + 1, entries))
                finally:
                    os.close(path_fd)
        finally:
            for dir_fd, _prefix, _depth, _names in stack:
                if dir_fd != top:
                    os.close(dir_fd)
    return walk.finish(max_depth)


def _files_first(dir_fd: int) -> Iterator[str]:
    """A directory's names, its files before its subdirectories (each sorted): the count cap then
    keeps the top-level outputs (submission.csv) over thousands of files in a subdirectory.
    The type here only orders; what is read is decided by fstat after the open."""
    with os.scandir(dir_fd) as entries:
        ordered = sorted((entry.is_dir(follow_symlinks=False), entry.name) for entry in entries)
    return iter([name for _is_dir, name in ordered])


@dataclass
class _Walk:
    """The running totals of one `collect`."""

    found: Collected
    max_file_bytes: int
    max_total_bytes: int
    max_files: int
    total: int = 0
    too_deep: int = 0
    too_many: int = 0

    def take(self, path_fd: int, info: os.stat_result, rel: str) -> None:
        if len(self.found.files) >= self.max_files and stat.S_ISREG(info.st_mode):
            self.too_many += 1
            return
        try:
            _check_regular(info, rel, self.max_file_bytes)
        except RefusedRead as exc:
            if exc.errno == errno.EFBIG:
                self.found.too_large.append(rel)
            else:
                self.found.refused.append(f"{rel}: {exc.strerror}")
            return
        if self.total + info.st_size > self.max_total_bytes:
            self.found.too_large.append(rel)
            return
        try:
            with io.BufferedReader(_CappedReader(_reopen(path_fd), self.max_file_bytes, rel)) as reader:
                data = reader.read()
        except RefusedRead:
            self.found.too_large.append(rel)
            return
        except OSError:
            return
        if self.total + len(data) > self.max_total_bytes:
            self.found.too_large.append(rel)
            return
        self.found.files[rel] = data
        self.total += len(data)

    def finish(self, max_depth: int) -> Collected:
        if self.too_deep:
            self.found.notes.append(
                f"{self.too_deep} director{'y' if self.too_deep == 1 else 'ies'} nested deeper than {max_depth} levels not read"
            )
        if self.too_many:
            self.found.notes.append(f"{self.too_many} file(s) beyond the first {self.max_files} not kept")
        return self.found
