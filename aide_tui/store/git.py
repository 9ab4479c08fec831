"""Commit every search node to its own git branch without touching the user's checkout.

Why this shape (see /work/shared/FACTS.md for the measurements):

* The user's HEAD, index and working tree are never read for writing and never
  modified.  Going through an index (even GitPython's ``IndexFile.from_tree``)
  either leaks the user's staged changes into our commits or moves
  ``.git/index`` aside during the call, so we don't use an index at all: blobs,
  trees and commits are written as loose objects in-process (gitdb's
  ``LooseObjectDB``, no subprocess per object), trees are serialised by hand.
* The branch ref is created by one ``git update-ref <ref> <sha> ""`` call: the
  empty old value makes creation atomic (it fails if the ref already exists)
  and with ``core.hooksPath=/dev/null`` no hook runs (update-ref would
  otherwise run a ``reference-transaction`` hook).  That subprocess is the only one per node.
* Author and committer are always ``aide-tui <aide-tui@localhost>`` with the
  current time, so it works without ``user.name``/``user.email`` configured.
* GitPython is not thread-safe (a shared ``Repo`` deadlocks on its
  ``cat-file --batch`` pipe).  Each ``GitStore`` owns its own ``Repo``; create
  one store per thread.  A lock serialises calls in case one is shared anyway.

Only sha1 repositories are supported (gitdb writes sha1 objects); a sha256
repository is refused with a UserError rather than silently corrupted.

Node files are committed at the *tree root* of the node commit, even when
``project_dir`` is a subdirectory of the repository: a node commit is a
snapshot of the node's workspace, not of the user's project.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import threading
import time
from pathlib import Path

import git
from gitdb import IStream
from gitdb.db.loose import LooseObjectDB

from aide_tui.errors import UserError
from aide_tui.terminal_text import terminal_safe

IDENT_NAME = "aide-tui"
IDENT_EMAIL = "aide-tui@localhost"
NOTES_REF = "refs/notes/aide"  # later facts about node commits (holdout scores): `git log --notes=aide`

_BLOB_MODE = b"100644"
_TREE_MODE = b"40000"
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
# Characters git forbids anywhere in a ref name (git check-ref-format(1)).
_BAD_REF_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")
_TRAILER_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
# Environment that would redirect our plumbing at another repo or index.
_SCRUBBED_ENV = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_PREFIX",
    "GIT_NAMESPACE",
    "GIT_COMMON_DIR",
)
SUBJECT_MAX = 72


class GitStoreError(RuntimeError):
    """A git operation failed for a reason other than bad input."""


class BranchConflict(GitStoreError):
    """The branch exists and holds another node: returning it would mix two nodes up."""


def _describe_node(node_json: bytes | None) -> str:
    """'run R node #N (operation, created T)' from a node.json, for conflict messages."""
    try:
        data = json.loads(node_json or b"")
        return f"run {data.get('run')} node #{data.get('id')} ({data.get('operation')}, created at {data.get('created_at')})"
    except (ValueError, AttributeError):
        return "no readable node.json"


def validate_branch(branch: str) -> None:
    """Raise ValueError unless ``refs/heads/<branch>`` passes git check-ref-format --branch.

    Done in Python (no subprocess) because it runs on every commit.
    """
    if not isinstance(branch, str) or not branch:
        raise ValueError("branch name must be a non-empty string")
    problems = []
    if _BAD_REF_CHARS.search(branch):
        problems.append("contains a space, control character or one of ~^:?*[\\")
    if branch.startswith("/") or branch.endswith("/") or "//" in branch:
        problems.append("has an empty path component")
    if ".." in branch:
        problems.append("contains '..'")
    if "@{" in branch or branch == "@":
        problems.append("contains '@{' or is '@'")
    if branch.endswith("."):
        problems.append("ends with '.'")
    if branch.startswith("-"):
        problems.append("starts with '-'")
    for part in branch.split("/"):
        if part.startswith(".") or part.endswith(".lock"):
            problems.append(f"component {part!r} starts with '.' or ends with '.lock'")
            break
    if problems:
        raise ValueError(f"invalid branch name {branch!r}: " + "; ".join(problems))


# Zero-width characters HFS+ ignores in names (git's is_hfs_dotgit list).
_HFS_IGNORED = re.compile("[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]")
# Names git gives a meaning (or fsck checks): `.git` makes the tree unusable, the
# other two change how checkouts behave.  NTFS 8.3 short names alias them.
_SPECIAL_NAMES = (".git", ".gitmodules", ".gitattributes")
_NTFS_SHORT = re.compile(r"^(git~1|gitmod~[1-4]|gi7eba~\d|gitatt~[1-4]|gi7d29~\d)$")


def _is_special_name(part: str) -> bool:
    """True for `.git` and the names filesystems treat as it (git's fsck hasDotgit rules)."""
    for piece in part.split("\\"):  # NTFS takes a backslash as a separator
        folded = _HFS_IGNORED.sub("", piece).casefold()
        folded = folded.split(":", 1)[0].rstrip(". ")  # NTFS: trailing dots/spaces, streams
        if folded in _SPECIAL_NAMES or _NTFS_SHORT.match(folded):
            return True
    return False


def refusal(path: str) -> str | None:
    """Why git cannot hold a node file at ``path`` ('a/b.txt'), or None when it can.

    A script can write any name its filesystem allows; git refuses some
    (``.git`` components, `..`) and cannot store a name that is not UTF-8
    text here (it arrives as surrogate escapes from ``os.walk``).  Callers skip
    such files and say so instead of failing the commit.
    """
    if not isinstance(path, str) or not path:
        return "empty file path"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "name is not UTF-8"
    for part in path.split("/"):
        if part in ("", ".", ".."):
            return "empty, '.' or '..' path component"
        if "\x00" in part:
            return "NUL in name"
        if _is_special_name(part):
            return f"{part!r} is a name git reserves"
    return None


def _validate_path(path: str) -> list[str]:
    """Split a node file path into components, rejecting anything git would not store."""
    reason = refusal(path)
    if reason is not None:
        raise ValueError(f"invalid file path {path!r}: {reason}")
    return path.split("/")


def split_committable(files: dict[str, bytes]) -> tuple[dict[str, bytes], list[str]]:
    """The files git can hold, and the paths it cannot (sorted), for the caller to report."""
    kept = {path: data for path, data in files.items() if refusal(path) is None}
    return kept, sorted(path for path in files if path not in kept)


def commit_message(subject_and_body: str, trailers: dict[str, str]) -> str:
    """Turn a node's plan text into a commit message with ``Aide-*`` trailers.

    The first non-empty line becomes the subject, cut to ~72 characters; when it
    is cut the full line is repeated in the body so nothing is lost.  Trailers
    go in a final paragraph of their own so ``git interpret-trailers`` and
    ``%(contents:trailers:key=...)`` parse them.  Lines of the body that are a
    ``---`` divider would make git treat the rest as a patch and hide the
    trailers, so they are indented by one space.
    """
    text = terminal_safe(subject_and_body or "")  # `git log` prints it to the user's terminal as it is
    lines = [line.rstrip() for line in text.strip().splitlines()]
    subject = lines[0].strip() if lines else ""
    body_lines = lines[1:]
    while body_lines and not body_lines[0]:
        body_lines.pop(0)
    if not subject:
        subject = "(no plan)"
    if len(subject) > SUBJECT_MAX:
        cut = subject[: SUBJECT_MAX - 1]
        if " " in cut[SUBJECT_MAX // 2 :]:
            cut = cut[: cut.rfind(" ")]
        body_lines = [subject, ""] + body_lines if body_lines else [subject]
        subject = cut.rstrip() + "…"
    body_lines = [" " + line if line.startswith("---") else line for line in body_lines]

    trailer_lines = []
    for key, value in trailers.items():
        if not _TRAILER_KEY.match(key):
            raise ValueError(f"invalid trailer key {key!r}")
        flat = " ".join(terminal_safe(str(value)).split())
        trailer_lines.append(f"{key}: {flat}")

    parts = [subject]
    body = "\n".join(body_lines).strip("\n")
    if body:
        parts.append(body)
    if trailer_lines:
        parts.append("\n".join(trailer_lines))
    return "\n\n".join(parts) + "\n"


class GitStore:
    """Objects-and-refs-only writer for node commits in one repository.

    Not to be shared across threads: construct one per thread (cheap).
    """

    def __init__(self, project_dir: Path):
        project_dir = Path(project_dir).resolve()
        project_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._repo = git.Repo(project_dir, search_parent_directories=True)
        except git.InvalidGitRepositoryError:
            self._repo = git.Repo.init(project_dir)
        with self._repo.config_reader("repository") as cfg:
            object_format = str(cfg.get_value("extensions", "objectformat", "sha1")).lower()
        if object_format != "sha1":
            self._repo.close()
            raise UserError(f"{self._repo.git_dir}: {object_format} repositories are not supported (sha1 only)")
        self._git_dir = Path(self._repo.git_dir)
        self._common_dir = Path(self._repo.common_dir)
        self._loose = LooseObjectDB(str(self._common_dir / "objects"))
        self._packed: dict[str, str] = {}
        self._packed_sig: tuple | None = None
        work = self._repo.working_tree_dir
        self._repo_dir = Path(work) if work else self._git_dir
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        env.update(
            GIT_AUTHOR_NAME=IDENT_NAME,
            GIT_AUTHOR_EMAIL=IDENT_EMAIL,
            GIT_COMMITTER_NAME=IDENT_NAME,
            GIT_COMMITTER_EMAIL=IDENT_EMAIL,
            GIT_TERMINAL_PROMPT="0",
            LC_ALL="C",
        )
        self._env = env
        self._lock = threading.Lock()
        self._closed = False
        self._base_cache: tuple[str | None, object] = (None, None)

    # -- reading -----------------------------------------------------------

    @property
    def repo_dir(self) -> Path:
        """Top of the working tree (the git dir for a bare repository)."""
        return self._repo_dir

    def head_commit(self) -> str | None:
        """The user's HEAD commit sha, or None on an unborn branch. Read-only."""
        with self._lock:
            try:
                return self._repo.head.commit.hexsha
            except ValueError:
                return None

    def branch_sha(self, branch: str) -> str | None:
        """Sha that ``refs/heads/<branch>`` points at, or None if it doesn't exist."""
        validate_branch(branch)
        with self._lock:
            return self._branch_sha(branch)

    def list_branches(self, prefix: str) -> dict[str, str]:
        """All branches whose name starts with ``prefix``, as {branch: sha}.

        for-each-ref matches patterns only up to a slash, so the directory part
        of the prefix narrows the scan and the rest is filtered here.
        """
        with self._lock:
            directory = prefix[: prefix.rfind("/") + 1] if "/" in prefix else ""
            out = self._run(
                "for-each-ref",
                "--format=%(objectname) %(refname)",
                "refs/heads/" + directory,
            )
        result = {}
        for line in out.splitlines():
            sha, _, ref = line.partition(" ")
            name = ref[len("refs/heads/") :]
            if name.startswith(prefix):
                result[name] = sha
        return result

    # -- writing -----------------------------------------------------------

    def delete_branch(self, branch: str, expected: str) -> None:
        """Delete `branch` if it still points at `expected` (never someone else's newer commit)."""
        self._check_open()
        validate_branch(branch)
        self._run("update-ref", "-d", f"refs/heads/{branch}", expected)

    def commit_node(
        self,
        branch: str,
        parent: str | None,
        files: dict[str, bytes],
        message: str,
        base: str | None = None,
        exclusive: bool = False,
        merged: tuple[str, ...] = (),
    ) -> str:
        """Create ``refs/heads/<branch>`` at a new commit holding ``files``.

        ``merged``: further parents after ``parent`` (a merge node's second parent), so the commit is
        a merge commit and ``git log --graph`` shows both lines joining.

        ``parent`` None makes a root commit.  ``base`` (a commit) lends its tree:
        ``files`` are laid over it, so a node's tree can carry its run's root
        files and ``git show`` of the node shows only what the node changed.

        If the branch already exists (a resumed run re-committing a node) and
        holds the same ``node.json`` (the same tree when there is none), its sha
        is returned and nothing is written; holding another node is a
        ``BranchConflict`` naming both, never a silent success.  ``exclusive``
        makes any existing branch a conflict (claiming a name).  Returns the sha.
        """
        validate_branch(branch)
        with self._lock:
            self._check_open()
            existing = self._branch_sha(branch)
            if existing is not None:
                return self._same_or_conflict(branch, existing, files, base, exclusive)
            for sha_ in (parent, *merged) if parent is not None else ():
                self._check_commit(sha_)
            tree = self._write_tree(self._nest(files), self._base_tree(base))
            sha = self._write_commit(tree, parent, message, merged)
            ref = "refs/heads/" + branch
            proc = self._popen_run("update-ref", "-m", "aide-tui: node", ref, sha, "")
            if proc.returncode != 0:
                existing = self._branch_sha(branch)
                if existing is not None:  # lost a race with another writer
                    return self._same_or_conflict(branch, existing, files, base, exclusive)
                raise GitStoreError(f"git update-ref {ref} failed: {proc.stderr.strip()}")
            return sha

    def set_note(self, commit: str, text: str) -> None:
        """Attach ``text`` to ``commit`` under ``refs/notes/aide`` (replacing an older note).

        A later fact about a node (its holdout score) lives beside its commit, not on top
        of it: the node's branch keeps pointing at the node's own change, so ``git show``
        shows what the node did, and ``git log --notes=aide`` shows the facts with it.
        ``git notes`` writes only that notes ref (no index, no HEAD, no working tree).
        """
        with self._lock:
            self._check_open()
            self._check_commit(commit)
            proc = self._popen_run("notes", "--ref", NOTES_REF, "add", "--force", "--file", "-", commit, input=text)
        if proc.returncode != 0:
            raise GitStoreError(f"git notes add {commit[:12]} failed: {proc.stderr.strip()}")

    def note(self, commit: str) -> str | None:
        """The ``refs/notes/aide`` note on ``commit``, or None when it has none."""
        with self._lock:
            proc = self._popen_run("notes", "--ref", NOTES_REF, "show", commit)
        return proc.stdout if proc.returncode == 0 else None

    def read_files(self, commit: str, names: tuple[str, ...]) -> dict[str, bytes]:
        """The top-level files ``names`` of ``commit`` that exist, as bytes."""
        with self._lock:
            tree = self._repo.commit(commit).tree
            found = {}
            for name in names:
                try:
                    found[name] = tree[name].data_stream.read()
                except KeyError:
                    continue
            return found

    def read_tree(self, commit: str, prefix: str) -> dict[str, bytes]:
        """Every file under the directory `prefix` of `commit` ({path below prefix: bytes}); {} without one.

        What a node committed, read from git's objects: never from the workspace the script wrote."""
        with self._lock:
            try:
                top = self._repo.commit(commit).tree / prefix
            except KeyError:
                return {}
            found = {}
            for item in top.traverse():  # GitPython walks with a stack: no recursion limit
                if item.type == "blob":  # type: ignore[union-attr]
                    found[item.path.removeprefix(f"{prefix}/")] = item.data_stream.read()  # type: ignore[union-attr]
            return found

    def close(self) -> None:
        """Stop GitPython's persistent cat-file processes."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._repo.close()

    def __enter__(self) -> GitStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals ---------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise GitStoreError("GitStore is closed")

    def _popen_run(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            # hooksPath=/dev/null: update-ref would otherwise run the user's
            # reference-transaction hook.
            ["git", "-c", "core.hooksPath=/dev/null", "--git-dir", str(self._git_dir), *args],
            cwd=self._git_dir,
            env=self._env,
            input=input,
            stdin=subprocess.DEVNULL if input is None else None,
            capture_output=True,
            text=True,
        )

    def _run(self, *args: str) -> str:
        proc = self._popen_run(*args)
        if proc.returncode != 0:
            raise GitStoreError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def _branch_sha(self, branch: str) -> str | None:
        """Resolve in-process to avoid a subprocess per commit.

        A loose ref file wins over packed-refs (as in git).  packed-refs is
        parsed once and cached by its stat signature: git rewrites it by
        rename, so any change shows as a new inode/size/mtime.  Rescanning
        5,000 packed refs in Python each time cost ~3 ms per commit.
        """
        ref = "refs/heads/" + branch
        try:
            content = (self._common_dir / ref).read_text().strip()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            content = None
        if content is not None:
            if _HEX40.match(content):
                return content
            try:  # symbolic or odd ref: let GitPython follow it
                return git.SymbolicReference.dereference_recursive(self._repo, ref)
            except ValueError:
                return None
        return self._packed_refs().get(ref)

    def _packed_refs(self) -> dict[str, str]:
        path = self._common_dir / "packed-refs"
        try:
            st = path.stat()
        except FileNotFoundError:
            return {}
        signature = (st.st_ino, st.st_size, st.st_mtime_ns)
        if signature != self._packed_sig:
            refs = {}
            with open(path, encoding="utf-8", errors="surrogateescape") as fh:
                for line in fh:
                    if line[:1] in ("#", "^"):
                        continue
                    sha, _, name = line.rstrip("\n").partition(" ")
                    refs[name] = sha
            self._packed, self._packed_sig = refs, signature
        return self._packed

    def _check_commit(self, sha: str) -> None:
        if not isinstance(sha, str) or not _HEX40.match(sha):
            raise ValueError(f"parent must be a full 40-hex commit sha, got {sha!r}")
        try:
            info = self._repo.odb.info(bytes.fromhex(sha))
        except Exception as exc:  # gitdb/GitPython raise several types
            raise ValueError(f"parent {sha} is not an object in this repository") from exc
        if info.type != b"commit":
            raise ValueError(f"parent {sha} is a {info.type.decode()}, not a commit")

    def _same_or_conflict(
        self, branch: str, existing: str, files: dict[str, bytes], base: str | None, exclusive: bool
    ) -> str:
        """An existing branch is this commit only if it holds the same node (see commit_node)."""
        if exclusive:
            raise BranchConflict(f"branch {branch} already exists at {existing[:12]}")
        if "node.json" in files:
            theirs = self._blob_at(existing, "node.json")
            if theirs == bytes(files["node.json"]):
                return existing
            raise BranchConflict(
                f"branch {branch} already exists at {existing[:12]} holding {_describe_node(theirs)}, "
                f"not {_describe_node(bytes(files['node.json']))}"
            )
        if self._repo.commit(existing).tree.binsha == self._tree_sha(files, base):
            return existing
        raise BranchConflict(f"branch {branch} already exists at {existing[:12]} with other files")

    def _blob_at(self, commit: str, name: str) -> bytes | None:
        try:
            return self._repo.commit(commit).tree[name].data_stream.read()
        except (KeyError, ValueError):
            return None

    def _tree_sha(self, files: dict[str, bytes], base: str | None) -> bytes:
        """The tree sha ``files`` would get, written (objects are content-addressed, so harmless)."""
        return self._write_tree(self._nest(files), self._base_tree(base))

    def _base_tree(self, base: str | None):
        """The base commit's tree; the last one is kept, since every node of a run shares its root."""
        if base is None:
            return None
        if self._base_cache[0] != base:
            self._check_commit(base)
            self._base_cache = (base, self._repo.commit(base).tree)
        return self._base_cache[1]

    @staticmethod
    def _nest(files: dict[str, bytes]) -> dict:
        """{'a/b.txt': data} -> {'a': {'b.txt': data}}; a name can't be both file and dir."""
        root: dict = {}
        for path, data in files.items():
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise ValueError(f"content of {path!r} must be bytes")
            parts = _validate_path(path)
            node = root
            for part in parts[:-1]:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise ValueError(f"{path!r} needs {part!r} to be a directory and a file")
            if parts[-1] in node:
                raise ValueError(f"{path!r} conflicts with another file path")
            node[parts[-1]] = bytes(data)
        return root

    def _store(self, kind: bytes, data: bytes) -> bytes:
        return self._loose.store(IStream(kind, len(data), io.BytesIO(data))).binsha

    def _write_tree(self, node: dict, base=None) -> bytes:
        """Write a tree (recursively) over ``base`` (a GitPython tree or None); return its binary sha.

        git sorts entries by name bytes with directories compared as 'name/'.
        """
        entries = {}
        if base is not None:
            for item in base:
                raw = item.name.encode("utf-8", "surrogateescape")
                if item.name not in node:
                    is_tree = item.type == "tree"
                    mode = _TREE_MODE if is_tree else b"%o" % item.mode
                    entries[raw] = (raw + b"/" if is_tree else raw, mode, raw, item.binsha)
        for name, value in node.items():
            raw = name.encode("utf-8")
            if isinstance(value, dict):
                sub = None
                if base is not None:
                    try:
                        sub = base[name] if base[name].type == "tree" else None
                    except KeyError:
                        sub = None
                entries[raw] = (raw + b"/", _TREE_MODE, raw, self._write_tree(value, sub))
            else:
                entries[raw] = (raw, _BLOB_MODE, raw, self._store(b"blob", value))
        ordered = sorted(entries.values(), key=lambda e: e[0])
        data = b"".join(mode + b" " + raw + b"\0" + sha for _, mode, raw, sha in ordered)
        return self._store(b"tree", data)

    def _write_commit(self, tree: bytes, parent: str | None, message: str, merged: tuple[str, ...] = ()) -> str:
        now = int(time.time())
        offset = time.localtime(now).tm_gmtoff // 60
        sign = "+" if offset >= 0 else "-"
        tz = f"{sign}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"
        ident = f"{IDENT_NAME} <{IDENT_EMAIL}> {now} {tz}"
        lines = [f"tree {tree.hex()}"]
        if parent is not None:
            lines += [f"parent {p}" for p in (parent, *merged)]
        lines += [f"author {ident}", f"committer {ident}", ""]
        if not message.endswith("\n"):
            message += "\n"
        data = ("\n".join(lines) + "\n" + message).encode("utf-8")
        return self._store(b"commit", data).hex()

    # -- worktrees: only on the user's request ----------------------------

    def add_worktree(self, path: Path, branch: str, commit: str) -> Path:
        """``git worktree add -b <branch> <path> <commit>``: check a node out beside the project.

        The one write outside ``refs/heads/aide/`` (a branch of the user's naming plus git's
        ``worktrees/`` bookkeeping), made only when the user asks for it, so a person can carry
        a solution into their own code.  Bad requests raise UserError with the fix.
        """
        try:
            validate_branch(branch)
        except ValueError as exc:
            raise UserError(f"{exc}; pick another branch name") from None
        if branch == "aide" or branch.startswith("aide/"):
            raise UserError(f"branch {branch!r}: aide/ holds the runs' own branches; pick another name")
        path = Path(path).expanduser().resolve()
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise UserError(f"{path}: already exists and is not empty; pick another directory")
        with self._lock:
            self._check_open()
            self._check_commit(commit)
            if self._branch_sha(branch) is not None:
                raise UserError(f"branch {branch!r} already exists; pick another name")
            proc = self._popen_run("worktree", "add", "--quiet", "-b", branch, str(path), commit)
        if proc.returncode != 0:
            raise GitStoreError(f"git worktree add {path} failed: {proc.stderr.strip()}")
        return path
