"""GitStore writes node commits and branches and never touches the user's checkout.

Real git repositories in tmp dirs; no user.name/user.email anywhere (HOME is
a temp dir and global/system config are disabled), so the store's explicit
identity is what makes commits work.
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from aide_tui.errors import UserError
from aide_tui.store.git import BranchConflict, GitStore, commit_message, refusal, split_committable, validate_branch

USER_ID = ["-c", "user.name=User", "-c", "user.email=user@example.com"]


@pytest.fixture(autouse=True)
def isolated_git_env(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in (
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
        "EMAIL",
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
    ):
        monkeypatch.delenv(var, raising=False)


def git(cwd: Path, *args: str, input: bytes | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, input=input, check=True)
    return proc.stdout.decode()


def snapshot(repo: Path) -> dict:
    """Everything of the user's state that the store must leave byte-identical."""
    files = {}
    for path in sorted(repo.rglob("*")):
        if ".git" in path.relative_to(repo).parts or not path.is_file():
            continue
        files[str(path.relative_to(repo))] = path.read_bytes()
    return {
        "HEAD file": (repo / ".git" / "HEAD").read_bytes(),
        "HEAD sha": git(repo, "rev-parse", "HEAD"),
        "index": (repo / ".git" / "index").read_bytes(),
        "status": git(repo, "status", "--porcelain=v1", "--untracked-files=all"),
        "files": files,
        "heads": git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/main"),
    }


@pytest.fixture
def dirty_repo(tmp_path) -> Path:
    """A repo with a commit, a staged change, a modified tracked file and an untracked file."""
    repo = tmp_path / "proj"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "tracked.py").write_bytes(b"print('v1')\n")
    (repo / "staged.txt").write_bytes(b"old\n")
    git(repo, "add", ".")
    git(repo, *USER_ID, "commit", "-q", "-m", "user commit")
    (repo / "staged.txt").write_bytes(b"STAGED SECRET\n")
    git(repo, "add", "staged.txt")
    (repo / "tracked.py").write_bytes(b"print('modified, unstaged')\n")
    (repo / "untracked.log").write_bytes(b"scratch\n")
    return repo


def node_files(code: str) -> dict[str, bytes]:
    return {
        "solution.py": code.encode(),
        "node.json": b'{"id": 0}\n',
        "outputs/sub/x.csv": b"id,y\n1,0.5\n",
    }


def test_user_state_untouched_and_chain_of_parents(dirty_repo):
    before = snapshot(dirty_repo)
    user_head = before["HEAD sha"].strip()
    store = GitStore(dirty_repo)
    try:
        assert store.repo_dir == dirty_repo.resolve()
        assert store.head_commit() == user_head
        a = store.commit_node("aide/r1/0000-draft", user_head, node_files("x = 1\n"), "draft\n")
        b = store.commit_node("aide/r1/0001-improve", a, node_files("x = 2\n"), "improve\n")
        c = store.commit_node("aide/r1/0002-debug", b, node_files("x = 3\n"), "debug\n")
    finally:
        store.close()

    assert snapshot(dirty_repo) == before
    log = git(dirty_repo, "log", "--format=%H", "aide/r1/0002-debug").split()
    assert log == [c, b, a, user_head]
    assert git(dirty_repo, "rev-parse", "aide/r1/0000-draft^").strip() == user_head


def test_staged_change_never_leaks(dirty_repo):
    with GitStore(dirty_repo) as store:
        sha = store.commit_node("aide/r/0000-draft", store.head_commit(), {"solution.py": b"1\n"}, "m")
    assert git(dirty_repo, "ls-tree", "-r", "--name-only", sha).split() == ["solution.py"]
    everything = git(dirty_repo, "log", "-p", "--format=%B", sha + "^!")
    assert "STAGED SECRET" not in everything
    assert git(dirty_repo, "diff", "--cached", "--name-only").split() == ["staged.txt"]


def test_nested_files_and_diff_between_nodes(dirty_repo):
    with GitStore(dirty_repo) as store:
        a = store.commit_node("aide/r/0000-draft", None, node_files("alpha = 1\n"), "a")
        b = store.commit_node("aide/r/0001-improve", a, node_files("alpha = 2\n"), "b")
    listing = git(dirty_repo, "ls-tree", "-r", "--name-only", "aide/r/0000-draft").split()
    assert listing == ["node.json", "outputs/sub/x.csv", "solution.py"]
    assert git(dirty_repo, "show", f"{b}:outputs/sub/x.csv") == "id,y\n1,0.5\n"
    diff = git(dirty_repo, "diff", "aide/r/0000-draft", "aide/r/0001-improve")
    assert "-alpha = 1" in diff and "+alpha = 2" in diff
    assert git(dirty_repo, "fsck", "--strict", "--no-dangling").strip() == ""
    assert git(dirty_repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>", b).strip() == (
        "aide-tui <aide-tui@localhost>|aide-tui <aide-tui@localhost>"
    )


def test_trailers_queryable(dirty_repo):
    msg = commit_message(
        "Gradient boosting with tuned depth\n\nDetails here.\n---\nafter a divider",
        {
            "Aide-Metric": "0.91",
            "Aide-Operation": "improve",
            "Aide-Parent": "3",
            "Aide-Status": "ok",
            "Aide-Run": "20261123-104501",
        },
    )
    with GitStore(dirty_repo) as store:
        sha = store.commit_node("aide/r/0004-improve", None, {"solution.py": b""}, msg)
    out = git(
        dirty_repo,
        "for-each-ref",
        "--format=%(refname:short) %(contents:trailers:key=Aide-Metric,valueonly)",
        "refs/heads/aide/",
    )
    assert out.split() == ["aide/r/0004-improve", "0.91"]
    body = git(dirty_repo, "log", "-1", "--format=%B", sha)
    parsed = git(dirty_repo, "interpret-trailers", "--parse", input=body.encode())
    assert parsed.splitlines() == [
        "Aide-Metric: 0.91",
        "Aide-Operation: improve",
        "Aide-Parent: 3",
        "Aide-Status: ok",
        "Aide-Run: 20261123-104501",
    ]
    assert git(dirty_repo, "log", "-1", "--format=%s", sha).strip() == "Gradient boosting with tuned depth"


def test_commit_message_long_subject_keeps_full_text():
    plan = "word " * 40 + "end"
    msg = commit_message(plan, {"Aide-Metric": "none"})
    subject, _, rest = msg.partition("\n\n")
    assert len(subject) <= 72 and subject.endswith("…")
    assert plan.strip() in rest
    assert msg.endswith("\n\nAide-Metric: none\n")
    # multi-line trailer values are flattened; bad keys refused
    assert "Aide-Hint: a b\n" in commit_message("s", {"Aide-Hint": "a\nb"})
    with pytest.raises(ValueError):
        commit_message("s", {"Bad Key": "x"})
    assert commit_message("", {}).startswith("(no plan)")


def test_existing_branch_with_the_same_node_is_idempotent(dirty_repo):
    node = {"solution.py": b"1", "node.json": b'{"run": "r", "id": 1}\n'}
    with GitStore(dirty_repo) as store:
        first = store.commit_node("aide/r/0001-draft", None, node, "m")
        objects_before = git(dirty_repo, "count-objects", "-v")
        again = store.commit_node("aide/r/0001-draft", None, {**node, "solution.py": b"re-collected"}, "other")
        assert again == first
        assert git(dirty_repo, "count-objects", "-v") == objects_before
    assert git(dirty_repo, "rev-list", "--count", "aide/r/0001-draft").strip() == "1"
    # a second store (e.g. after a crash and resume) sees the same branch
    with GitStore(dirty_repo) as again:
        assert again.commit_node("aide/r/0001-draft", None, node, "m") == first


def test_existing_branch_with_another_node_is_an_error_naming_both(dirty_repo):
    """Returning the old commit for a new node would make git and the journal disagree."""
    with GitStore(dirty_repo) as store:
        first = store.commit_node(
            "aide/r/0014-improve",
            None,
            {"node.json": b'{"run": "r", "id": 14, "operation": "improve", "created_at": 1}'},
            "m",
        )
        with pytest.raises(BranchConflict) as err:
            store.commit_node(
                "aide/r/0014-improve",
                None,
                {"node.json": b'{"run": "r", "id": 14, "operation": "improve", "created_at": 2}'},
                "m",
            )
        assert first[:12] in str(err.value) and "created at 1" in str(err.value) and "created at 2" in str(err.value)
        with pytest.raises(BranchConflict):  # claiming a name: any existing branch is taken
            store.commit_node(
                "aide/r/0014-improve",
                None,
                {"node.json": b'{"run": "r", "id": 14, "operation": "improve", "created_at": 1}'},
                "m",
                exclusive=True,
            )
    assert git(dirty_repo, "rev-parse", "aide/r/0014-improve").strip() == first


def test_names_git_cannot_hold_are_split_off_and_the_rest_is_fsck_clean(dirty_repo):
    nasty = [
        "out/bad\udcffbyte.txt",
        "out/.git/config",
        ".GIT/hooks/post-checkout",
        "x/.git./y",
        "x/git~1/y",
        "x/.gi\u200ct/y",
        ".gitmodules",
        "a/.GitAttributes",
        "a/.git::$INDEX_ALLOCATION/z",
        "a/../b",
        "a//b",
    ]
    fine = ["ok.txt", "out/.gitignore", "out/..hidden", "out/\u00e9t\u00e9.csv", "out/.github/x", "out/back\\slash"]
    files = {name: b"x" for name in nasty + fine}
    kept, skipped = split_committable(files)
    assert sorted(kept) == sorted(fine) and skipped == sorted(nasty)
    for name in nasty:
        assert refusal(name)
    with GitStore(dirty_repo) as store:
        sha = store.commit_node("aide/r/0001-draft", None, kept, "m")
    listed = git(dirty_repo, "ls-tree", "-r", "-z", "--name-only", sha).split("\0")
    assert sorted(filter(None, listed)) == sorted(fine)
    assert git(dirty_repo, "fsck", "--strict", "--no-dangling").strip() == ""


def test_a_node_tree_lies_over_its_base_so_show_is_the_real_change(dirty_repo):
    with GitStore(dirty_repo) as store:
        root = store.commit_node(
            "aide/r/root", store.head_commit(), {"task.md": b"t", "prompts/draft.md": b"p"}, "root"
        )
        draft = store.commit_node(
            "aide/r/0001-draft", root, {"solution.py": b"1", "outputs/a.csv": b"a"}, "d", base=root
        )
        improve = store.commit_node(
            "aide/r/0002-improve", draft, {"solution.py": b"2", "outputs/b.csv": b"b"}, "i", base=root
        )
    assert git(dirty_repo, "ls-tree", "-r", "--name-only", draft).split() == [
        "outputs/a.csv",
        "prompts/draft.md",
        "solution.py",
        "task.md",
    ]
    assert git(dirty_repo, "show", "--format=", "--name-status", draft).split() == [
        "A",
        "outputs/a.csv",
        "A",
        "solution.py",
    ]
    assert git(dirty_repo, "show", "--format=", "--name-status", improve).split() == [
        "D",
        "outputs/a.csv",
        "A",
        "outputs/b.csv",
        "M",
        "solution.py",
    ]
    assert git(dirty_repo, "fsck", "--strict", "--no-dangling").strip() == ""


def test_fresh_directory_without_repo_or_identity(tmp_path):
    project = tmp_path / "fresh"
    with GitStore(project) as store:
        assert (project / ".git").is_dir()
        assert store.head_commit() is None
        sha = store.commit_node("aide/run/0000-draft", None, {"solution.py": b"print(1)\n"}, "d")
        assert store.branch_sha("aide/run/0000-draft") == sha
    assert git(project, "cat-file", "-t", sha).strip() == "commit"
    assert git(project, "status", "--porcelain", "--untracked-files=all") == ""
    assert not (project / ".git" / "index").exists()


def test_subdirectory_uses_enclosing_repo_and_root_tree(dirty_repo):
    sub = dirty_repo / "sub" / "dir"
    sub.mkdir(parents=True)
    with GitStore(sub) as store:
        assert store.repo_dir == dirty_repo.resolve()
        sha = store.commit_node("aide/r/0000-draft", None, {"solution.py": b"1"}, "m")
    assert not (sub / ".git").exists()
    assert git(dirty_repo, "ls-tree", "--name-only", sha).split() == ["solution.py"]


def test_list_and_branch_sha(dirty_repo):
    with GitStore(dirty_repo) as store:
        a = store.commit_node("aide/r1/0000-draft", None, {"a": b"1"}, "m")
        b = store.commit_node("aide/r10/0000-draft", None, {"a": b"2"}, "m")
        assert store.list_branches("aide/r1/") == {"aide/r1/0000-draft": a}
        assert store.list_branches("aide/r1") == {"aide/r1/0000-draft": a, "aide/r10/0000-draft": b}
        assert store.list_branches("aide/none/") == {}
        assert store.branch_sha("aide/r1/0001-improve") is None
        git(dirty_repo, "pack-refs", "--all")
        assert store.branch_sha("aide/r10/0000-draft") == b
        assert store.commit_node("aide/r10/0000-draft", None, {"a": b"2"}, "m") == b


@pytest.mark.parametrize(
    "name",
    [
        "",
        "has space",
        "a..b",
        "a/.hidden",
        "x.lock",
        "a//b",
        "/a",
        "a/",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[b",
        "a\\b",
        "a@{1}",
        "@",
        "end.",
        "-dash",
        "tab\there",
    ],
)
def test_invalid_branch_names(dirty_repo, name):
    with pytest.raises(ValueError):
        validate_branch(name)
    with GitStore(dirty_repo) as store:
        with pytest.raises(ValueError):
            store.commit_node(name, None, {"a": b""}, "m")


def test_valid_branch_names_agree_with_git(dirty_repo):
    for name in ["aide/20261123-104501/0007-improve", "aide/r/0001-draft", "a.b/c-d_e"]:
        validate_branch(name)
        git(dirty_repo, "check-ref-format", "--branch", name)


@pytest.mark.parametrize(
    "files",
    [
        {"../evil": b""},
        {"/abs": b""},
        {"a//b": b""},
        {".git/config": b""},
        {"bad\udcff": b""},
        {"a": b"", "a/b": b""},
        {"x": "not bytes"},
    ],
)
def test_invalid_files_rejected(dirty_repo, files):
    with GitStore(dirty_repo) as store:
        with pytest.raises(ValueError):
            store.commit_node("aide/r/0000-draft", None, files, "m")
        assert store.branch_sha("aide/r/0000-draft") is None


def test_bad_parent_rejected(dirty_repo):
    with GitStore(dirty_repo) as store:
        with pytest.raises(ValueError):
            store.commit_node("aide/r/0000-draft", "0" * 40, {"a": b""}, "m")
        with pytest.raises(ValueError):
            store.commit_node("aide/r/0000-draft", "HEAD", {"a": b""}, "m")
        tree = git(dirty_repo, "rev-parse", "HEAD^{tree}").strip()
        with pytest.raises(ValueError):
            store.commit_node("aide/r/0000-draft", tree, {"a": b""}, "m")


def test_no_hooks_run(dirty_repo):
    hooks = dirty_repo / ".git" / "hooks"
    marker = dirty_repo.parent / "hook-ran"
    for hook in ("reference-transaction", "pre-commit", "post-commit", "commit-msg"):
        path = hooks / hook
        path.write_text(f"#!/bin/sh\necho {hook} >> '{marker}'\n")
        path.chmod(0o755)
    with GitStore(dirty_repo) as store:
        store.commit_node("aide/r/0000-draft", None, {"a": b""}, "m")
    assert not marker.exists()


def test_one_store_per_thread(dirty_repo):
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            with GitStore(dirty_repo) as store:
                for j in range(5):
                    name = f"aide/t{i}/{j:04d}-draft"
                    results[i * 10 + j] = store.commit_node(name, None, {"n": f"{i}-{j}".encode()}, "m")
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert len(results) == 20
    with GitStore(dirty_repo) as store:
        assert len(store.list_branches("aide/t")) == 20


def test_closed_store_refuses_writes(dirty_repo):
    store = GitStore(dirty_repo)
    store.close()
    store.close()  # idempotent
    with pytest.raises(RuntimeError):
        store.commit_node("aide/r/0000-draft", None, {"a": b""}, "m")


def test_ref_cache_follows_pack_and_delete(dirty_repo):
    """branch_sha caches packed-refs; packing, deleting and recreating must show through."""
    with GitStore(dirty_repo) as store:
        a = store.commit_node("aide/r/0000-draft", None, {"a": b"1"}, "m")
        git(dirty_repo, "pack-refs", "--all")
        assert store.branch_sha("aide/r/0000-draft") == a
        git(dirty_repo, "update-ref", "-d", "refs/heads/aide/r/0000-draft")
        assert store.branch_sha("aide/r/0000-draft") is None
        b = store.commit_node("aide/r/0000-draft", None, {"a": b"2"}, "m")
        assert b != a and store.branch_sha("aide/r/0000-draft") == b


def test_sha256_repo_refused(tmp_path):
    """Objects are written as sha1 in-process; a sha256 repo would be corrupted, so refuse."""
    git(tmp_path, "init", "-q", "--object-format=sha256", "s256")
    with pytest.raises(UserError):
        GitStore(tmp_path / "s256")
    assert git(tmp_path / "s256", "for-each-ref") == ""


def test_linked_worktree(dirty_repo, tmp_path):
    """A store opened in a linked worktree writes to the shared object store and refs."""
    wt = tmp_path / "wt"
    git(dirty_repo, "worktree", "add", "-q", "-b", "side", str(wt))
    before = snapshot_worktree(wt)
    with GitStore(wt) as store:
        assert store.repo_dir == wt.resolve()
        assert store.head_commit() == git(wt, "rev-parse", "HEAD").strip()
        sha = store.commit_node("aide/r/0000-draft", store.head_commit(), {"a": b"1"}, "m")
        assert store.branch_sha("aide/r/0000-draft") == sha
    assert git(dirty_repo, "rev-parse", "aide/r/0000-draft").strip() == sha
    assert snapshot_worktree(wt) == before


def snapshot_worktree(wt: Path) -> tuple:
    return (
        git(wt, "rev-parse", "HEAD"),
        git(wt, "status", "--porcelain", "--untracked-files=all"),
        git(wt, "ls-files", "-s"),
    )


def test_a_note_leaves_the_branch_on_the_nodes_commit_and_the_user_state_untouched(dirty_repo):
    before = snapshot(dirty_repo)
    with GitStore(dirty_repo) as store:
        sha = store.commit_node(
            "aide/r/0001-draft", None, {"node.json": b"{}\n", "solution.py": b"x = 1\n"}, "#1 draft"
        )
        assert store.note(sha) is None
        store.set_note(sha, "#1 holdout rmse 3.5\n")
        store.set_note(sha, "#1 holdout rmse 2.5\n")  # a newer fact replaces the older one
        assert store.note(sha) == "#1 holdout rmse 2.5\n"
        assert store.branch_sha("aide/r/0001-draft") == sha
    assert snapshot(dirty_repo) == before
    assert git(dirty_repo, "log", "--notes=aide", "--format=%s%n%N", "aide/r/0001-draft").split("\n")[:2] == [
        "#1 draft",
        "#1 holdout rmse 2.5",
    ]
    assert "holdout" not in git(dirty_repo, "show", "aide/r/0001-draft")  # git show: the node's own change
