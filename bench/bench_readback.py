"""What reading a workspace back costs: the safe opener against a plain open, and the caps.

* one small file through `safe_read.read_bytes` (openat2, and O_NOFOLLOW per component)
  against `Path.read_bytes`, per file;
* collecting a workspace of 100,000 tiny files (capped at MAX_OUTPUT_FILES) and one
  1,200 directories deep;
* the submission check on a 30 MB submission: wall time and peak Python memory, refused
  by the cap, and streamed to the end with the cap lifted.

Run: .venv/bin/python bench/bench_readback.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aide_tui.evaluation import submission_check  # noqa: E402
from aide_tui.run import safe_read  # noqa: E402
from aide_tui.run.workspace import collect, remove_tree  # noqa: E402


def per_file_us(read, runs: int = 2000) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        read()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ws = root / "ws"
        (ws / "a" / "b").mkdir(parents=True)
        (ws / "a" / "b" / "f.csv").write_bytes(b"x" * 1000)
        plain = per_file_us(lambda: (ws / "a" / "b" / "f.csv").read_bytes())
        safe_read._openat2_works = None
        kernel = per_file_us(lambda: safe_read.read_bytes(ws, "a/b/f.csv", 1 << 20))
        safe_read._openat2_works = False
        steps = per_file_us(lambda: safe_read.read_bytes(ws, "a/b/f.csv", 1 << 20))
        safe_read._openat2_works = None
        print(
            f"read one 1 kB file, median: plain {plain:.0f} us, openat2 {kernel:.0f} us, per component {steps:.0f} us"
        )

        many = root / "many"
        many.mkdir()
        for i in range(100_000):
            (many / f"{i:06d}.txt").write_bytes(b"x")
        fd = os.open(many, os.O_RDONLY)
        for _ in range(1200):
            os.mkdir("d", dir_fd=fd)
            nxt = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        os.close(fd)
        t0 = time.perf_counter()
        found = collect(many)
        took = time.perf_counter() - t0
        print(f"collect 100,000 tiny files + 1,200-deep dir: {took:.2f} s, kept {len(found.files)}; {found.notes}")
        t0 = time.perf_counter()
        remove_tree(many)
        print(f"remove that tree: {time.perf_counter() - t0:.2f} s")

        test = root / "test.csv"
        test.write_text("id,x\n" + "".join(f"{i},1\n" for i in range(1000)))
        (ws / "submission.csv").write_text("id,prediction\n" + "123456,0.5\n" * 2_800_000)
        for label, cap in (("capped", None), ("streamed", submission_check.MAX_SUBMISSION_BYTES)):
            if cap is not None:
                submission_check.submission_cap = lambda test, cap=cap: cap  # type: ignore[assignment]
            tracemalloc.start()
            t0 = time.perf_counter()
            problem = submission_check.check_submission(ws / "submission.csv", test, ["id"])
            took = time.perf_counter() - t0
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            print(f"30 MB submission, {label}: {took:.2f} s, peak {peak / 1e6:.1f} MB: {problem}")


if __name__ == "__main__":
    main()
