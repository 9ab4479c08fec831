"""A scripted 'Claude' that answers with real scikit-learn solutions.

For the screenshots and demos: it is served through the same Messages API
stand-in as the tests (so the app shows streaming, tokens and dollars exactly
as with Claude), and writes its code with the offline coder's templates, so
the scripts really train models and the metrics are real.  One draft is
deliberately broken (a misspelled target column) so the tree shows a buggy
node and its debug fix.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from card_reader import card_reply, is_card_call
from fake_api import TextReply, ToolReply, last_user_text

from aide_tui.run.workspace import list_data_files
from aide_tui.search.coder import TaskContext
from aide_tui.search.node import ExecInfo, Node
from aide_tui.search.offline import OfflineCoder
from aide_tui.search.offline.review import last_metric

_CODE = re.compile(r"```python\n(.*?)```", re.S)
_FENCED = re.compile(r"```\n(.*?)```", re.S)


def _section(text: str, heading: str) -> str:
    """The body of a '## heading' section of a prompt, up to the next '## '."""
    start = text.find(f"## {heading}")
    if start < 0:
        return ""
    rest = text[start + 3 :]
    end = rest.find("\n## ")
    return rest[: end if end >= 0 else None]


class SklearnClaude:
    def __init__(self, project: Path, broken_draft: int = 2):
        self.coder = OfflineCoder(project, list_data_files(project), seed=0)
        self.task = (project / "task.md").read_text()
        self.broken_draft = broken_draft
        self.drafts = 0
        self.lock = threading.Lock()

    def __call__(self, body: dict):
        if is_card_call(body):
            return card_reply(body)
        text = last_user_text(body)
        ctx = TaskContext(task=self.task, data_preview="", memory="")
        with self.lock:
            if body.get("tools"):
                return self._review(text)
            op = text.split("\n", 1)[0].lstrip("# ").strip().lower()
            parent_id = int(m.group(1)) if (m := re.search(r"\(node (\d+)\)", text)) else 0
            found = _CODE.search(text)
            code = found.group(1) if found else ""
            if op == "draft":
                self.drafts += 1
                proposal = self.coder.draft(ctx, lambda _: None)
                if self.drafts == self.broken_draft:
                    spec = self.coder._task(ctx)
                    broken = proposal.code.replace(
                        f'TARGET = "{spec.target}"', f'TARGET = "{spec.target.title().replace("_", "")}"'
                    )
                    return self._reply(proposal.plan, broken)
            elif op == "improve":
                parent = Node(id=parent_id, parent_id=None, operation="draft", step=1, code=code, status="ok")
                proposal = self.coder.improve(ctx, parent, lambda _: None)
            else:
                fenced = _FENCED.search(_section(text, "Its output"))
                output = fenced.group(1) if fenced else ""
                traceback = _section(text, "Traceback")
                exc = re.findall(r"^(\w+Error)", traceback, re.M)
                parent = Node(
                    id=parent_id,
                    parent_id=None,
                    operation="draft",
                    step=1,
                    code=code,
                    output=output,
                    exec=ExecInfo(exit_code=1, exc_type=exc[-1] if exc else None, traceback=traceback),
                )
                proposal = self.coder.debug(ctx, parent, lambda _: None)
            return self._reply(proposal.plan, proposal.code)

    @staticmethod
    def _reply(plan: str, code: str) -> TextReply:
        return TextReply(f"{plan}\n\n```python\n{code}```\n")

    def _review(self, text: str) -> ToolReply:
        spec = self.coder._task(TaskContext(task=self.task, data_preview="", memory=""))
        output = _section(text, "Its output")
        metric = last_metric(output)
        crashed = (
            "Traceback (most recent call last)" in output or "killed" in _section(text, "How the process ended").lower()
        )
        lower = spec.direction == "minimize"
        if crashed or metric is None:
            errors = re.findall(r"^(\w+Error: .*)$", output, re.M)
            why = errors[-1] if errors else "it printed no validation metric"
            return ToolReply(
                "submit_review",
                {"is_bug": True, "metric": None, "lower_is_better": lower, "summary": f"The run failed: {why}."},
            )
        return ToolReply(
            "submit_review",
            {
                "is_bug": False,
                "metric": metric,
                "lower_is_better": lower,
                "summary": f"Ran cleanly; validation {spec.metric_name} {metric:.6g}.",
            },
        )
