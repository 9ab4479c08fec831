"""One reader for every table aide-tui reads: the task card, the preview, staging, the submission check.

Real tables arrive as Excel's "CSV UTF-8" (a byte-order mark), semicolon- or
tab-separated, in Latin-1, or empty.  Each reader used to guess on its own, so
the card saw a column named `\\ufeffid` while the check saw `id`.  Here the
format of a file is decided once: the text must be UTF-8 (a BOM is dropped,
`utf-8-sig`); otherwise the error names the first bad byte and how to convert
the file, rather than every node failing later.  The delimiter is what
`csv.Sniffer` (the same sniffer pandas uses for `sep=None`) finds among
`,` `;` tab and `|`, checked against the header line.

The generated scripts read the files with `pandas_options(fmt)`, so they see
the same columns as aide-tui.
"""

from __future__ import annotations

import codecs
import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

DELIMITERS = ",;\t|"
ENCODING = "utf-8-sig"
SNIFF_BYTES = 64 * 1024
_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}


class TableError(ValueError):
    """The file cannot be read as a table; the message names the file and the fix."""


@dataclass(frozen=True)
class TableFormat:
    delimiter: str = ","
    encoding: str = ENCODING

    @property
    def delimiter_name(self) -> str:
        return _NAMES.get(self.delimiter, repr(self.delimiter))


def table_format(path: Path, label: str | None = None) -> TableFormat:
    """The file's delimiter, once its bytes are known to be UTF-8 text; TableError otherwise."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise TableError(f"{label or path.name}: cannot be read ({exc.strerror or exc})") from None
    return _format(str(path), stat.st_mtime_ns, stat.st_size, label or path.name)


@lru_cache(maxsize=256)
def _format(path: str, _mtime: int, size: int, label: str) -> TableFormat:
    if size == 0:
        raise TableError(f"{label} is empty (0 bytes); put the table's header and rows in it, or remove it")
    _check_utf8(Path(path), label)
    with open(path, encoding=ENCODING, newline="") as fh:
        sample = fh.read(SNIFF_BYTES)
    if not sample.strip():
        raise TableError(f"{label} has no header line; put the column names on its first line")
    return TableFormat(_delimiter(sample))


def _check_utf8(path: Path, label: str) -> None:
    """Decode the whole file (in chunks): a Latin-1 byte far down would otherwise fail every script."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                _raise_encoding(label, chunk, offset + exc.start, exc.start)
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise TableError(f"{label}: the file ends inside a UTF-8 character; save it again as UTF-8") from None


def _raise_encoding(label: str, chunk: bytes, position: int, start: int) -> None:
    byte = chunk[start]
    guess = chunk[start : start + 1].decode("cp1252", errors="replace")
    raise TableError(
        f"{label}: byte 0x{byte:02x} at offset {position} is not UTF-8 (in Latin-1/Windows-1252 it is {guess!r}); "
        f"save the file as UTF-8, e.g. python -c \"import pandas as pd; p='{label}'; "
        "pd.read_csv(p, sep=None, engine='python', encoding='latin-1').to_csv(p, index=False)\""
    ) from None


def _delimiter(sample: str) -> str:
    """The sniffer's answer when it agrees with the header; else the candidate splitting the header most."""
    lines = sample.splitlines()
    header = lines[0] if lines else ""
    if not sample.endswith(("\n", "\r")) and len(lines) > 1:
        sample = "\n".join(lines[:-1])  # a line cut by the sample's end would mislead the sniffer
    try:
        found = csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        found = ""
    counts = {d: header.count(d) for d in DELIMITERS}
    if found and counts.get(found, 0) > 0:
        return found
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


def _rows(path: Path, fmt: TableFormat) -> Iterator[list[str]]:
    with path.open(encoding=fmt.encoding, newline="") as fh:
        for row in csv.reader(fh, delimiter=fmt.delimiter):
            if row:
                yield row


def read_table(path: Path, limit: int | None = None, label: str | None = None) -> tuple[list[str], list[list[str]]]:
    """(header, rows) as text, values verbatim, column names trimmed; at most `limit` rows."""
    path = Path(path)
    fmt = table_format(path, label)
    header: list[str] = []
    rows: list[list[str]] = []
    try:
        for row in _rows(path, fmt):
            if not header:
                header = [h.strip() for h in row]
                continue
            if limit is not None and len(rows) >= limit:
                break
            rows.append(row)
    except csv.Error as exc:
        raise TableError(f"{label or path.name}: not readable as a table ({exc})") from None
    if not header:
        raise TableError(f"{label or path.name} has no header line; put the column names on its first line")
    return header, rows


def read_header(path: Path, label: str | None = None) -> list[str]:
    return read_table(path, limit=0, label=label)[0]


def read_frame(path: Path, label: str | None = None, **options: Any) -> Any:
    """The file as a pandas DataFrame, read with the same format as `read_table`."""
    import pandas as pd

    fmt = table_format(Path(path), label)
    frame = pd.read_csv(path, **pandas_options(fmt), **options)
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def delimiter_of(path: Path) -> str:
    """The file's delimiter, or a comma when it cannot be read (the caller reports that its own way)."""
    try:
        return table_format(Path(path)).delimiter
    except TableError:
        return ","


def count_rows(path: Path) -> int:
    """Data rows (lines after the header; quoted line breaks would count twice): what sizes a model."""
    lines = 0
    last = b"\n"
    with Path(path).open("rb") as fh:
        while chunk := fh.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    if last != b"\n":
        lines += 1
    return max(0, lines - 1)


def pandas_options(fmt: TableFormat) -> dict[str, str]:
    """`pd.read_csv` keyword arguments that read the file as aide-tui does."""
    return {"sep": fmt.delimiter, "encoding": fmt.encoding}


def write_table(path: Path, header: list[str], rows: list[list[str]], fmt: TableFormat | None = None) -> None:
    """Write rows in `fmt`'s delimiter (plain UTF-8), so a copy reads like the original; atomic."""
    fmt = fmt or TableFormat()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter=fmt.delimiter, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)
