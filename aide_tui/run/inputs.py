"""How a node's script gets the data, cheap for big datasets and safe for all.

Small data (up to `copy_limit` bytes in all) is copied fresh into every
workspace: the strongest isolation, and cheap at that size.

Large data would cost a full copy per node (gigabytes per step), so it is
copied once per run into a read-only snapshot under the run directory and
hard-linked into each workspace.  Unlinking or replacing a linked file only
affects that workspace; writing *into* one would change the snapshot.

* Sandboxed (`read_only_mount`): ``./input`` is mounted read-only, so no
  script can write into the snapshot.  The snapshot is checked once per run,
  when it is reused (a resumed run): by content hash against the originals,
  so neither an earlier unsandboxed run nor a changed original slips through.
* Unsandboxed: after every node the snapshot's files are also checked (size,
  mtime, inode) and any that changed are copied again from the originals
  before the next node starts.  A script that writes in place and restores
  the timestamps defeats that check; only the sandbox closes it.

The originals themselves are never linked, so no script can reach them
through its input paths.

`sources` puts other files in some places of ``./input``: the run's fold
file, and the training file without its withheld holdout rows
(evaluation/staging.py).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

from .workspace import READ_ONLY_FILE, _safe_relative

DEFAULT_COPY_LIMIT = 256 * 1024 * 1024


class InputData:
    def __init__(
        self,
        project_dir: Path,
        data_files: list[str],
        run_dir: Path,
        copy_limit: int = DEFAULT_COPY_LIMIT,
        read_only_mount: bool = False,
        sources: dict[str, Path] | None = None,
    ):
        self.project_dir = Path(project_dir)
        self.read_only_mount = read_only_mount  # nodes see input/ through a read-only mount
        self.sources = dict(sources or {})  # input path -> the file it holds instead of the project's
        self.data_files = list(data_files) + sorted(rel for rel in self.sources if rel not in data_files)
        self.snapshot_dir = Path(run_dir) / "input-snapshot"
        total = sum(self._source(rel).stat().st_size for rel in self.data_files)
        self.mode = "copy" if total <= copy_limit else "link"
        self._stamps: dict[str, tuple[int, int, int]] = {}
        if self.mode == "link":
            self._build_snapshot()

    def _source(self, rel: str) -> Path:
        return self.sources.get(rel) or self.project_dir.joinpath(*_safe_relative(rel).parts)

    def _stamp(self, path: Path) -> tuple[int, int, int]:
        info = path.stat()
        return (info.st_size, info.st_mtime_ns, info.st_ino)

    def _copy_into_snapshot(self, rel: str) -> None:
        target = self.snapshot_dir.joinpath(*_safe_relative(rel).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            os.chmod(target, stat.S_IRUSR | stat.S_IWUSR)
            target.unlink()
        shutil.copyfile(self._source(rel), target)
        os.chmod(target, READ_ONLY_FILE)
        self._stamps[rel] = self._stamp(target)

    def _build_snapshot(self) -> None:
        for rel in self.data_files:
            target = self.snapshot_dir / rel
            source = self._source(rel)
            if target.exists() and _same_content(target, source):
                self._stamps[rel] = self._stamp(target)  # resumed run: the snapshot is still the data
            else:
                self._copy_into_snapshot(rel)

    def populate(self, input_dir: Path) -> None:
        """Fill a fresh `input_dir` with the data (copies, or links to the snapshot)."""
        for rel in self.data_files:
            parts = _safe_relative(rel).parts
            target = input_dir.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            if self.mode == "copy":
                shutil.copyfile(self._source(rel), target)
                os.chmod(target, READ_ONLY_FILE)
            else:
                os.link(self.snapshot_dir.joinpath(*parts), target)

    def verify_and_repair(self) -> list[str]:
        """Files of the snapshot a script changed, each restored from the originals."""
        if self.mode == "copy" or self.read_only_mount:
            return []
        changed = []
        for rel in self.data_files:
            path = self.snapshot_dir / rel
            try:
                ok = self._stamp(path) == self._stamps.get(rel)
            except OSError:
                ok = False
            if not ok:
                changed.append(rel)
                self._copy_into_snapshot(rel)
        return changed


def _digest(path: Path) -> bytes:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").digest()


def _same_content(a: Path, b: Path) -> bool:
    return a.stat().st_size == b.stat().st_size and _digest(a) == _digest(b)
