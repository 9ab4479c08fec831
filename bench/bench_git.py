"""Benchmark GitStore.commit_node on a repo that already holds 5,000 aide/ branches.

Why: a long run accumulates thousands of node branches; committing a node
must stay cheap (budget: median <= 20 ms) whether the refs are loose or packed.

Run: .venv/bin/python bench/bench_git.py [--branches 5000] [--commits 50]
Prints median/p90 ms per commit for loose and packed refs, plus the cost of
list_branches and the idempotent (already exists) path, then PASS/FAIL.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aide_tui.store.git import GitStore, commit_message  # noqa: E402

BUDGET_MS = 20.0


def git(cwd: Path, *args: str, input: bytes | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, input=input, capture_output=True, check=True).stdout.decode()


def node_files(i: int) -> dict[str, bytes]:
    """A node-sized commit: ~5 KB code, node.json, ~20 KB output, ~50 KB submission."""
    rng = random.Random(i)
    code = "".join(f"feature_{i}_{k} = df['c{k}'] * {rng.random():.6f}\n" for k in range(120))
    output = "".join(f"epoch {k} loss {rng.random():.6f} acc {rng.random():.6f}\n" for k in range(450))
    sub = "id,target\n" + "".join(f"{k},{rng.random():.8f}\n" for k in range(2500))
    return {
        "solution.py": code.encode()[:5000],
        "node.json": ('{"id": %d, "status": "ok", "metric": %f}\n' % (i, rng.random())).encode(),
        "output.txt": output.encode()[:20000],
        "submission/submission.csv": sub.encode()[:50000],
    }


def make_repo(root: Path, branches: int) -> Path:
    """A user repo with one commit and `branches` aide/ refs created in one update-ref --stdin."""
    repo = root / "proj"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("user project\n")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=u", "-c", "user.email=u@x", "commit", "-q", "-m", "init")
    head = git(repo, "rev-parse", "HEAD").strip()
    lines = "".join(f"create refs/heads/aide/old{i // 500:02d}/{i % 500:04d}-improve {head}\n" for i in range(branches))
    git(repo, "update-ref", "--stdin", input=lines.encode())
    return repo


def time_commits(store: GitStore, run: str, parent: str, n: int) -> list[float]:
    times = []
    for i in range(n):
        files = node_files(i)
        msg = commit_message(
            f"Improve step {i}: tune depth\n\nlonger plan text", {"Aide-Metric": "0.9", "Aide-Run": run}
        )
        t0 = time.perf_counter()
        parent = store.commit_node(f"aide/{run}/{i:04d}-improve", parent, files, msg)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def summary(label: str, times: list[float]) -> float:
    med = statistics.median(times)
    p90 = sorted(times)[int(len(times) * 0.9) - 1]
    print(f"  {label:<38} median {med:6.2f} ms   p90 {p90:6.2f} ms   (n={len(times)})")
    return med


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--branches", type=int, default=5000)
    ap.add_argument("--commits", type=int, default=50)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["GIT_CONFIG_GLOBAL"] = "/dev/null"  # no identity: the store must bring its own
        t0 = time.perf_counter()
        repo = make_repo(Path(tmp), args.branches)
        print(f"setup: {args.branches} aide/ branches in {(time.perf_counter() - t0) * 1000:.0f} ms")
        store = GitStore(repo)
        head = store.head_commit()
        assert head is not None
        medians = {}

        print("loose refs:")
        medians["loose"] = summary("commit_node", time_commits(store, "loose", head, args.commits))
        t = []
        for _ in range(20):
            t0 = time.perf_counter()
            store.list_branches("aide/loose/")
            t.append((time.perf_counter() - t0) * 1000)
        summary("list_branches (one run)", t)

        git(repo, "pack-refs", "--all")
        print("packed refs (after git pack-refs --all):")
        medians["packed"] = summary("commit_node", time_commits(store, "packed", head, args.commits))
        t = []
        for i in range(20):
            t0 = time.perf_counter()
            store.commit_node(f"aide/loose/{i:04d}-improve", head, node_files(i), "m")  # same node: no write
            t.append((time.perf_counter() - t0) * 1000)
        summary("commit_node, branch exists (resume)", t)
        t = []
        for _ in range(20):
            t0 = time.perf_counter()
            store.list_branches("aide/")
            t.append((time.perf_counter() - t0) * 1000)
        summary(f"list_branches (all {args.branches + 2 * args.commits})", t)
        store.close()

        status = git(repo, "status", "--porcelain")
        assert status == "", status

    worst = max(medians.values())
    verdict = "PASS" if worst <= BUDGET_MS else "FAIL"
    print(f"{verdict}: worst median commit_node {worst:.2f} ms (budget {BUDGET_MS:.0f} ms)")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
