"""What a script or a model wrote reaches no terminal as control sequences.

Escapes tried: OSC 0 (window title), OSC 52 (clipboard), CSI 2J (clear
screen), the 8-bit CSI, a bare BEL.  Where they were seen to reach a
terminal: headless output (without --verbose), ``git log`` subjects, the node
screen (exception row, plan, review, output tab).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from fake_api import TextReply, default_responder
from helpers import make_project
from rich.console import Console

from aide_tui.app.screens.node_detail import overview_text
from aide_tui.app.widgets.node_tree import Palette
from aide_tui.search.node import ExecInfo, Node
from aide_tui.state import NodeView, RunModel
from aide_tui.store.git import commit_message
from aide_tui.terminal_text import REPLACEMENT, terminal_safe

TITLE = "\x1b]0;pwned\x07"
CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4K\x1b\\"
CLEAR = "\x1b[2J\x1b[H"
C1_CSI = "\x9b2J"
CONTROL_BYTES = ("\x1b", "\x07", "\x9b", "\x9d")


def has_controls(text: str) -> bool:
    return any(c in text for c in CONTROL_BYTES)


def test_escape_sequences_go_and_other_controls_show_as_the_replacement_character():
    text = f"a{TITLE}b{CLIPBOARD}c{CLEAR}d{C1_CSI}e\x07f\x00g\r\nh\ti\x7f"
    assert terminal_safe(text) == f"abcde{REPLACEMENT}f{REPLACEMENT}g\nh\ti{REPLACEMENT}"
    assert terminal_safe("plain text\n\twith tabs, ünïcode ★") == "plain text\n\twith tabs, ünïcode ★"
    # an unterminated OSC swallows only its own line, not the rest of the review
    assert terminal_safe("one\x1b]0;title\ntwo") == "one\ntwo"
    assert terminal_safe("\x1b[31mred\x1b[0m") == "red"


def test_commit_subjects_and_bodies_carry_no_control_sequences():
    message = commit_message(
        f"Plan{TITLE}{CLEAR}: scale the features\n\nbody{CLIPBOARD}", {"Aide-Status": f"ok{C1_CSI}"}
    )
    assert not has_controls(message)
    assert message.startswith("Plan: scale the features\n\nbody\n\nAide-Status: ok")


def test_the_node_screen_shows_the_scripts_and_models_text_inert():
    node = Node(
        id=1,
        parent_id=None,
        operation="draft",
        step=1,
        plan=f"Plan{TITLE}",
        review_summary=f"Review{CLIPBOARD}",
        exec=ExecInfo(exit_code=1, exc_type=f"Evil{CLEAR}Error", killed_reason=f"why{C1_CSI}"),
    )
    view = NodeView(id=1, parent_id=None, operation="draft", step=1, status="buggy", node=node, plan=node.plan)
    console = Console(file=open(os.devnull, "w"), force_terminal=True, color_system=None, width=200)  # noqa: SIM115
    with console.capture() as captured:
        console.print(overview_text(view, RunModel(), Palette()))
    shown = captured.get()
    assert "EvilError" in shown and "Plan" in shown and "Review" in shown
    assert not has_controls(shown)


HOSTILE = """
open("report\\x1b[2J\\x1b]0;pwned\\x07.txt", "w").write("1")
print("loading \\x1b]52;c;cm0gLXJmIH4K\\x07 done")
raise type("Evil\\x1b]0;pwned\\x07Error", (Exception,), {})("boom \\x1b[2J")
"""


@pytest.mark.timeout(180)
def test_a_headless_run_and_git_log_print_no_control_sequences(tmp_path, llm_env):
    project = make_project(tmp_path / "proj", dirty=False)
    plan = f"Steal the clipboard{CLIPBOARD} and retitle{TITLE} the window{CLEAR}."
    llm_env.responder = lambda body: (
        default_responder(body) if body.get("tool_choice") else TextReply(f"{plan}\n\n```python\n{HOSTILE}```\n")
    )
    env = {**os.environ, "ANTHROPIC_BASE_URL": llm_env.url, "ANTHROPIC_API_KEY": "sk-ant-" + uuid.uuid4().hex}
    done = subprocess.run(
        [sys.executable, "-m", "aide_tui.cli", str(project), "--headless", "--steps", "1", "--coder", "llm"],
        capture_output=True,
        text=True,
        env=env,
        timeout=150,
    )
    assert done.returncode == 0, done.stderr
    assert "Evil" in done.stdout + done.stderr  # the node's failure is reported...
    assert not has_controls(done.stdout + done.stderr)  # ...inert
    log = subprocess.run(["git", "log", "--all", "--format=%s%n%b"], cwd=project, capture_output=True, text=True)
    assert "Steal the clipboard" in log.stdout
    assert not has_controls(log.stdout)
