"""A compact description of the project's data files for the system prompt.

The model cannot look at the data before writing its first script, so the
preview tells it what a careful engineer would check first: sizes, columns and
their types, missing values, ranges, category counts and a few sample rows.

It is built from bounded samples (at most `SAMPLE_ROWS` rows, a few MiB of
JSON) with the standard library only, so a multi-GB file costs no more than a
small one, and the result always fits `budget_chars`: when it would not, the
per-file details are made more compact first, then the text is cut with a
note saying so.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from pathlib import Path

from ..data.table import TableError, table_format
from ..project import printable_path

SAMPLE_ROWS = 50_000  # rows read per table for statistics
SAMPLE_CELLS = 1_000_000  # rows x columns cap, so wide tables stay cheap
DETAIL_COLUMNS = 60  # columns described one per line; the rest are named
COUNT_LINES_MAX_BYTES = 512 * 1024 * 1024  # above this the row count is estimated
JSON_MAX_BYTES = 5 * 1024 * 1024
JSONL_SAMPLE_LINES = 1000
DIR_LIST_MAX = 5  # a directory with at most this many files lists them one by one
DIR_WALK_MAX = 100_000
TABLE_EXTS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
MISSING = {"", "na", "n/a", "nan", "null", "none", "?"}
BOOLS = {"true", "false"}


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _short(value: str, limit: int = 30) -> str:
    value = value.replace("\n", " ")
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _fmt(x: float) -> str:
    return f"{x:.6g}"


# ----------------------------------------------------------------------- tables


def _count_lines(path: Path) -> int | None:
    """Newline count (plus an unterminated last line); None for files too big to scan."""
    if path.stat().st_size > COUNT_LINES_MAX_BYTES:
        return None
    lines = 0
    last = b"\n"
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")


def _count_rows(path: Path, sampled_rows: int, sampled_bytes: int, complete: bool) -> str:
    """Data row count: exact when the sample read it all, else counted lines, else estimated."""
    if complete:
        return f"{sampled_rows:,} rows"
    lines = _count_lines(path)
    if lines is not None:
        return f"{max(lines - 1, 0):,} rows"
    if sampled_rows and sampled_bytes:
        return f"about {int(path.stat().st_size / (sampled_bytes / sampled_rows)):,} rows (estimated)"
    return "row count unknown (file too large to count)"


class _Column:
    """Streaming type inference and statistics for one column of strings."""

    def __init__(self, name: str):
        self.name = name
        self.missing = 0
        self.kind = "bool"  # narrows to: bool -> int -> float -> str
        self.values: Counter[str] = Counter()
        self.min = float("inf")
        self.max = float("-inf")
        self.total = 0.0
        self.numbers = 0
        self.seen = 0  # non-missing values so far

    def add(self, raw: str) -> None:
        value = raw.strip()
        if value.lower() in MISSING:
            self.missing += 1
            return
        if len(self.values) < 10_000 or value in self.values:
            self.values[value] += 1
        self.seen += 1
        if self.kind == "str":
            return
        if self.kind == "bool":
            if value.lower() in BOOLS:
                return
            # A mix of true/false and other values is text; otherwise try numbers.
            self.kind = "str" if self.seen > 1 else "int"
            if self.kind == "str":
                return
        try:
            number = int(value) if self.kind == "int" else float(value)
        except ValueError:
            try:
                number = float(value)
                self.kind = "float"
            except ValueError:
                self.kind = "str"
                return
        self.min = min(self.min, number)
        self.max = max(self.max, number)
        self.total += number
        self.numbers += 1

    def finish(self) -> None:
        if self.seen == 0:
            self.kind = "empty"

    def describe(self) -> str:
        parts = [f"{self.name}: {self.kind}"]
        if self.missing:
            parts.append(f"missing {self.missing}")
        distinct = len(self.values)
        capped = "+" if distinct >= 10_000 else ""
        if self.kind in ("int", "float") and self.numbers:
            parts.append(f"min {_fmt(self.min)}, max {_fmt(self.max)}, mean {_fmt(self.total / self.numbers)}")
            if self.kind == "int" and distinct <= 10:
                parts.append(f"{distinct} distinct: " + ", ".join(f"{v} ({c})" for v, c in self._top(10)))
        elif self.kind in ("str", "bool"):
            top = ", ".join(f"{_short(v)} ({c})" for v, c in self._top(5))
            parts.append(f"{distinct}{capped} distinct; top: {top}")
        return "; ".join(parts)

    def _top(self, n: int) -> list[tuple[str, int]]:
        # Sort by count, then value, so the preview is deterministic.
        return sorted(self.values.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def _table(path: Path, label: str) -> tuple[str, str]:
    """(detailed, compact) description of a delimited text file, read as `data.table` reads it."""
    try:
        fmt = table_format(path, label)
    except TableError as exc:
        return f"{label}: not readable as a table: {exc}", f"{label}: unreadable"
    with path.open("r", encoding=fmt.encoding, newline="") as fh:
        reader = csv.reader(fh, delimiter=fmt.delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return f"{label}: empty file", f"{label}: empty file"
        except csv.Error as exc:
            return f"{label}: not readable as a table ({exc})", f"{label}: unreadable"
        columns = [_Column(name.strip() or f"column_{i}") for i, name in enumerate(header)]
        max_rows = max(100, min(SAMPLE_ROWS, SAMPLE_CELLS // max(len(columns), 1)))
        detail = columns[:DETAIL_COLUMNS]
        samples: list[list[str]] = []
        rows = 0
        complete = True
        try:
            for row in reader:
                if rows >= max_rows:
                    complete = False
                    break
                if not row:
                    continue
                rows += 1
                if len(samples) < 3:
                    samples.append(row)
                for col, value in zip(detail, row):
                    col.add(value)
        except csv.Error as exc:
            complete = False
            samples.append([f"(parse error after {rows} rows: {exc})"])
        # Path.open types the buffer as a protocol without tell(); here it is a BufferedReader.
        sampled_bytes = fh.buffer.tell() if hasattr(fh, "buffer") else 0  # type: ignore[attr-defined]
    for col in detail:
        col.finish()

    count = _count_rows(path, rows, sampled_bytes, complete)
    size = _size(path.stat().st_size)
    head = f"{label} ({size}, {count}, {len(columns)} columns"
    head += ")" if fmt.delimiter == "," else f", {fmt.delimiter_name}-separated)"
    if not complete:
        head += f"; statistics from the first {rows:,} rows"
    lines = [head + ":"]
    lines += [f"  {c.describe()}" for c in detail]
    if len(columns) > len(detail):
        rest = ", ".join(c.name for c in columns[len(detail) : len(detail) + 40])
        more = len(columns) - len(detail) - 40
        lines.append(
            f"  ... {len(columns) - len(detail)} more columns: {rest}" + (f", and {more} more" if more > 0 else "")
        )
    if samples:
        lines.append("  sample rows:")
        for row in samples:
            lines.append(
                "    "
                + fmt.delimiter.replace("\t", "\\t").join(_short(v, 24) for v in row[:30])
                + (" …" if len(row) > 30 else "")
            )
    compact_cols = ", ".join(f"{c.name}:{c.kind}" for c in detail)
    compact = f"{head}: {compact_cols}" + (
        f" (+{len(columns) - len(detail)} more)" if len(columns) > len(detail) else ""
    )
    return "\n".join(lines), compact


# ------------------------------------------------------------------------ JSON


def _shape(value: object, depth: int = 0) -> str:
    if isinstance(value, dict):
        if depth >= 2 or not value:
            return f"object({len(value)} keys)"
        keys = list(value)[:15]
        inner = ", ".join(f"{k}: {_shape(value[k], depth + 1)}" for k in keys)
        return "{" + inner + (f", … {len(value) - 15} more keys" if len(value) > 15 else "") + "}"
    if isinstance(value, list):
        if not value:
            return "list(empty)"
        return f"list({len(value)}) of {_shape(value[0], depth + 1)}"
    if isinstance(value, bool):
        return "bool"
    if value is None:
        return "null"
    return type(value).__name__


def _json(path: Path, label: str) -> tuple[str, str]:
    size = path.stat().st_size
    head = f"{label} ({_size(size)})"
    if size > JSON_MAX_BYTES:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            start = fh.read(200)
        text = f"{head}: JSON too large to inspect; starts with: {_short(start, 200)}"
        return text, f"{head}: JSON"
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except ValueError as exc:
        return f"{head}: not valid JSON ({exc})", f"{head}: invalid JSON"
    shape = _shape(data)
    return f"{head}: JSON {shape}", f"{head}: JSON {_short(shape, 120)}"


def _jsonl(path: Path, label: str) -> tuple[str, str]:
    size = path.stat().st_size
    keys: dict[str, set[str]] = {}
    first = ""
    read = bad = 0
    complete = True
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if read >= JSONL_SAMPLE_LINES:
                complete = False
                break
            if not line.strip():
                continue
            read += 1
            try:
                record = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if not first:
                first = _short(line.strip(), 200)
            if isinstance(record, dict):
                for k, v in record.items():
                    if len(keys) < 100 or k in keys:
                        keys.setdefault(k, set()).add(_shape(v, 2))
    if complete:
        count = f"{read:,} records"
    else:
        line_count = _count_lines(path)
        count = f"about {line_count:,} records" if line_count is not None else f"over {read:,} records"
    head = f"{label} ({_size(size)}, {count})"
    fields = ", ".join(f"{k}: {'|'.join(sorted(t))}" for k, t in list(keys.items())[:40])
    lines = [f"{head}: JSON lines" + (f"; {bad} unparsable in the sample" if bad else "")]
    if fields:
        lines.append(f"  keys: {fields}")
    if first:
        lines.append(f"  first record: {first}")
    return "\n".join(lines), f"{head}: JSON lines; keys: {_short(', '.join(keys), 160)}"


# ------------------------------------------------------------------ dispatch


def _file(path: Path, label: str) -> tuple[str, str]:
    ext = path.suffix.lower()
    try:
        if ext in TABLE_EXTS:
            return _table(path, label)
        if ext == ".json":
            return _json(path, label)
        if ext in (".jsonl", ".ndjson"):
            return _jsonl(path, label)
    except OSError as exc:
        return f"{label}: cannot read ({exc.strerror})", f"{label}: unreadable"
    text = f"{label} ({_size(path.stat().st_size)})"
    return text, text


def _directory(path: Path, label: str) -> list[tuple[str, str]]:
    files: list[Path] = []
    truncated = False
    for root, dirs, names in os.walk(path):
        dirs.sort()
        for name in sorted(names):
            files.append(Path(root) / name)
            if len(files) >= DIR_WALK_MAX:
                truncated = True
                break
        if truncated:
            break
    if len(files) <= DIR_LIST_MAX:
        if not files:
            return [(f"{label}/: empty directory",) * 2]
        return [_file(f, f"{label}/{printable_path(f.relative_to(path).as_posix())}") for f in files]
    by_ext: Counter[str] = Counter(f.suffix.lower() or "(none)" for f in files)
    total = sum(f.stat().st_size for f in files)
    kinds = ", ".join(f"{ext} {n}" for ext, n in sorted(by_ext.items(), key=lambda kv: (-kv[1], kv[0]))[:10])
    examples = ", ".join(printable_path(f.relative_to(path).as_posix()) for f in files[:5])
    count = f"{len(files):,}{'+' if truncated else ''} files"
    text = f"{label}/ (directory, {count}, {_size(total)}): {kinds}; e.g. {examples}"
    return [(text, f"{label}/ (directory, {count}): {kinds}")]


def build_preview(
    project_dir: Path, data_files: list[str], budget_chars: int, sources: dict[str, Path] | None = None
) -> str:
    """Describe `data_files` (paths relative to `project_dir`) in at most `budget_chars`.

    Files are named as the scripts see them, under `./input/`; `sources` are the
    files the scripts see instead (the training file without the holdout rows).
    """
    project_dir = Path(project_dir)
    sections: list[tuple[str, str]] = []
    for rel in data_files:
        path = (sources or {}).get(rel) or project_dir / rel
        label = "./input/" + printable_path(Path(rel).as_posix().strip("/"))
        if path.is_dir():
            sections += _directory(path, label)
        elif path.is_file():
            sections.append(_file(path, label))
        else:
            sections.append((f"{label}: missing",) * 2)
    if not sections:
        return _cut("No data files.", budget_chars)
    return _fit(sections, budget_chars)


def _fit(sections: list[tuple[str, str]], budget: int) -> str:
    """Detailed if it fits; else compact from the last file backwards; else cut with a note."""
    chosen = [detailed for detailed, _ in sections]
    total = sum(len(s) + 1 for s in chosen)
    for i in range(len(sections) - 1, -1, -1):
        if total <= budget:
            break
        total -= len(chosen[i]) - len(sections[i][1])
        chosen[i] = sections[i][1]
    text = "\n".join(chosen)
    if len(text) <= budget:
        return text
    # Still too long: keep whole sections while they fit, then say what was cut.
    kept: list[str] = []
    used = 0
    for s in chosen:
        if used + len(s) + 1 > budget - 80:
            break
        kept.append(s)
        used += len(s) + 1
    if not kept:  # even one compact section is too long: cut inside it
        more = f"; {len(chosen) - 1} more files not described" if len(chosen) > 1 else ""
        note = f"\n[preview cut to {budget} characters{more}]"
        return _cut(chosen[0], budget - len(note)) + note if budget > len(note) + 20 else _cut(chosen[0], budget)
    note = f"[preview cut: {len(chosen) - len(kept)} of {len(chosen)} files not described]"
    return _cut("\n".join(kept + [note]), budget)


def _cut(text: str, budget: int) -> str:
    if len(text) <= budget:
        return text
    return text[: max(budget - 1, 0)] + "…" if budget > 0 else ""
