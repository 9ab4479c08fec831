"""Text a script or a model wrote, made harmless before it reaches a terminal.

A plan, a review, an exception's class name, a file name or a line of output
is written by code or a model aide-tui does not trust.  Printed as it is, an
escape sequence in it is obeyed by the user's terminal: OSC 0 retitles the
window, OSC 52 writes the clipboard, CSI ``2J`` clears the screen, others
remap keys on some terminals.  `terminal_safe` is the one place that decides
what gets through, used wherever such text is shown: the headless lines, the
commit messages ``git log`` prints, the node screen.

It follows the live log pane (Textual's ``Log``), which shows a control
character as U+FFFD instead of obeying it, and goes further: whole escape
sequences (CSI, OSC, DCS, SOS/PM/APC, and their 8-bit C1 forms) are removed,
so a script's coloured output reads as plain text, and every other C0 and C1
control (but newline and tab) and DEL become U+FFFD.  ``\\r\\n`` is read as
a line break first.
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"

_ESCAPE_SEQUENCE = re.compile(
    r"""
      \x1b\[ [0-?]* [\x20-/]* [@-~]?            # CSI (colours, cursor moves, clear screen)
    | \x1b\] [^\x07\x1b\x9c\n]* (?:\x07|\x1b\\|\x9c)?   # OSC (window title, clipboard, hyperlinks)
    | \x1b [PX^_] [^\x1b\x9c\n]* (?:\x1b\\|\x9c)?     # DCS, SOS, PM, APC
    | \x1b [\x20-/]* [0-~]?                     # any other escape and its final byte
    | \x9b [0-?]* [\x20-/]* [@-~]?              # 8-bit CSI
    | [\x9d\x90\x98\x9e\x9f] [^\x07\x1b\x9c\n]* (?:\x07|\x9c)?  # 8-bit OSC, DCS, SOS, PM, APC
    """,
    re.VERBOSE,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """`text` with escape sequences removed and other control characters (but ``\\n``, ``\\t``)
    shown as U+FFFD: what a terminal, a Textual widget or ``git log`` may print as it is."""
    if not _CONTROL.search(text):
        return text
    text = _ESCAPE_SEQUENCE.sub("", text.replace("\r\n", "\n"))
    return _CONTROL.sub(REPLACEMENT, text)
