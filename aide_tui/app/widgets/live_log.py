"""The live log: the LLM reply as it streams, the script's output, the review verdict."""

from __future__ import annotations

from textual.widgets import Log


class LiveLog(Log):
    """A `Log` that accepts partial text (LLM deltas) and whole lines, batched by the caller."""

    DEFAULT_MAX_LINES = 20_000

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_lines", self.DEFAULT_MAX_LINES)
        kwargs.setdefault("highlight", False)
        super().__init__(**kwargs)
        self._partial = False  # the last line is unfinished streamed text

    def append_text(self, text: str) -> None:
        """Streamed text: continues the current line, may end mid-line."""
        if not text:
            return
        if not self._partial and self._lines and self._lines[-1] != "":
            self._lines.append("")  # start a fresh line after whole lines
        self.write(text)
        self._partial = not text.endswith("\n")

    def append_lines(self, lines: list[str]) -> None:
        """Whole lines, written in one batch (one refresh)."""
        if not lines:
            return
        if self._partial:
            self.write("\n")
            self._partial = False
        self._drop_empty_tail()
        self.write_lines(lines)

    def _drop_empty_tail(self) -> None:
        # Log.write("x\n") leaves an empty last line; the next batch would show a blank line.
        lines = self._lines
        if lines and lines[-1] == "" and not self._partial:
            lines.pop()
