"""The layering in pyproject's import-linter contracts: engine and below know no front end,
only the app imports Textual, only llm/ imports anthropic."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(project: Path) -> subprocess.CompletedProcess:
    """`lint-imports` on the package found under `project` (its pyproject holds the contracts)."""
    env = {**os.environ, "PYTHONPATH": str(project)}
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=project, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_contracts_hold():
    res = lint_imports(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "3 kept, 0 broken" in res.stdout


def test_a_search_module_importing_textual_or_anthropic_breaks_them(tmp_path):
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copytree(ROOT / "aide_tui", tmp_path / "aide_tui", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "aide_tui" / "search" / "shortcut.py").write_text(
        "import anthropic\nfrom ..app.widgets import status_bar\n"
    )
    res = lint_imports(tmp_path)
    assert res.returncode == 1
    assert "0 kept, 3 broken" in res.stdout
    assert "aide_tui.search.shortcut -> anthropic" in res.stdout
