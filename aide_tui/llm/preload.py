"""Start importing the Anthropic SDK in the background, as early as start-up knows it will be used.

Why: `import anthropic` builds hundreds of pydantic models (about 1.8 s of CPU on an idle
machine, 5-12 s of wall time at load 10) and was most of the time before the task card.
Started first, it overlaps with opening the project, the git checks, the engine and Textual
imports; `build_engine` then imports `llm.client` normally and waits (on Python's import lock)
only for whatever is left.  A failed import here is ignored: the real import reports it.
"""

from __future__ import annotations

import importlib
import threading


def start_preload() -> threading.Thread:
    """Begin importing `aide_tui.llm.client` (and so anthropic) on a daemon thread; returns it."""
    thread = threading.Thread(target=_import_client, name="aide-preload-anthropic", daemon=True)
    thread.start()
    return thread


def _import_client() -> None:
    try:
        importlib.import_module("aide_tui.llm.client")
    except Exception:  # noqa: BLE001 - the engine's own import raises it where it is handled
        pass
