"""Start-up imports: nothing heavy before the task card unless it is needed (issue 19).

`import anthropic` alone is seconds under load, pandas and scikit-learn about a second: the
modules on the path to the card must not pull them in, and the LLM coder's start begins the
SDK import in the background (`llm.preload`) so it overlaps with the rest of start-up.
Each check runs in a fresh interpreter, since this one has imported everything already.
"""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("anthropic", "pandas", "sklearn", "ray")


def fresh_modules(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


def test_the_start_path_imports_nothing_heavy():
    loaded = fresh_modules("import aide_tui.cli, aide_tui.engine, aide_tui.headless")
    assert [name for name in HEAVY if name in loaded] == []


def test_preload_imports_the_sdk_off_the_main_thread():
    loaded = fresh_modules(
        "from aide_tui.llm.preload import start_preload\n"
        "t = start_preload()\n"
        "assert t.daemon and t.name == 'aide-preload-anthropic'\n"
        "t.join()"
    )
    assert "anthropic" in loaded and "aide_tui.llm.client" in loaded
