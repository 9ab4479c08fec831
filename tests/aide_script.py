"""A scripted 'Claude' for end-to-end tests, served through the fake Messages API.

It answers the prompts aide-tui really sends (keyed on their first line:
'# Draft', '# Improve', '# Debug'; reviews are forced tool calls) with small
solution scripts that really run: they read the copied input data, print
output, write submission.csv and a 'Validation metric:' line.  Metrics are
RMSE-like (lower is better) and embedded as `METRIC = <x>` so improvements and
fixes can be derived from the parent code quoted in the prompt.
"""

from __future__ import annotations

import re
import threading

from card_reader import card_reply, is_card_call
from fake_api import TextReply, ToolReply, last_user_text

WORKING = '''"""{title}"""
import csv
import sys

METRIC = {metric}


def main():
    with open("input/data/train.csv") as fh:
        rows = list(csv.DictReader(fh))
    print(f"loaded {{len(rows)}} training rows")
    print("fitting the model ...", file=sys.stderr)
    with open("submission.csv", "w") as out:
        out.write("id,prediction\\n")
        for i in range(5):
            out.write(f"{{i}},{{METRIC}}\\n")
    print(f"Validation metric: {{METRIC}}")


if __name__ == "__main__":
    main()
'''

CRASHING = '''"""{title}"""
import csv

METRIC = {metric}


def main():
    with open("input/data/train.csv") as fh:
        rows = list(csv.DictReader(fh))
    print(f"loaded {{len(rows)}} rows")
    raise ValueError("could not convert string to float: 'NorthPark'")


if __name__ == "__main__":
    main()
'''

RAISE = """    raise ValueError("could not convert string to float: 'NorthPark'")"""
FIXED = """    with open("submission.csv", "w") as out:
        out.write("id,prediction\\n")
        for i in range(5):
            out.write(f"{i},{METRIC}\\n")
    print(f"Validation metric: {METRIC}")"""


def _edits(plan: str, changes: list[tuple[str, str]]) -> TextReply:
    blocks = "".join(f"<<<<<<< SEARCH\n{old}\n=======\n{new}\n>>>>>>> REPLACE\n" for old, new in changes)
    return TextReply(f"{plan}\n\n{blocks}")


_METRIC_RE = re.compile(r"METRIC = (-?[0-9.]+)")
_PRINTED_RE = re.compile(r"Validation metric: ([-+0-9.eE]+)")


class Gate:
    """Where one request waits: `reached` once it arrived, it goes on when `opened` is set."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.opened = threading.Event()


class ScriptedAide:
    """Callable responder; `crash_every` makes every n-th draft crash."""

    def __init__(
        self, crash_every: int = 3, draft_metric_start: float = 100.0, patch: bool = False, bad_patch: int = 0
    ):
        self.patch = patch  # improve and debug answer with search/replace edits (edit = "patch")
        self.bad_patch = bad_patch  # the n-th improve's edits do not apply (0: none)
        self.crash_every = crash_every
        self.draft_metric_start = draft_metric_start
        self.lock = threading.Lock()
        self.counts = {"draft": 0, "improve": 0, "debug": 0, "review": 0}
        self.prompts: list[tuple[str, str]] = []  # (operation, user text)
        self.gates: dict[int, Gate] = {}  # n-th code request -> the gate it waits at

    def hold(self, request_number: int) -> Gate:
        """Make the n-th code request (node n with one worker) wait until the gate opens, so a
        test can act while that node is surely in flight, however fast scripts run."""
        gate = self.gates[request_number] = Gate()
        return gate

    def __call__(self, body: dict):
        if is_card_call(body):
            return card_reply(body)
        text = last_user_text(body)
        if body.get("tools"):
            return self._review(text)
        op = text.lstrip().split("\n", 1)[0].lstrip("# ").strip().lower()
        if op.startswith("your edits could not be applied"):  # the fallback: the whole script, this once
            return self._code("Improve: tune the model (whole script).", WORKING, 1.0)
        with self.lock:
            self.counts[op] = self.counts.get(op, 0) + 1
            n = self.counts[op]
            self.prompts.append((op, text))
            gate = self.gates.get(len(self.prompts))
        if gate is not None:
            gate.reached.set()
            gate.opened.wait(60)
        if op == "draft":
            metric = self.draft_metric_start + 10 * n
            if self.crash_every and n % self.crash_every == 0:
                return self._code(f"Draft {n}: parse the categories by hand.", CRASHING, metric)
            return self._code(f"Draft {n}: a baseline with mean prediction.", WORKING, metric)
        if op == "merge":  # both scripts are in the prompt: take the better (lower) metric, a little lower
            metric = min(float(m) for m in _METRIC_RE.findall(text)) - 1.0
            return self._code("Merge: the model of A with the features of B.", WORKING, metric)
        parent = _METRIC_RE.search(text)
        parent_metric = float(parent.group(1)) if parent else 150.0
        if op == "improve":
            new = round(parent_metric - 3.5, 3)
            if self.patch:
                old = f"METRIC = {parent_metric}" if n != self.bad_patch else "METRIC = not-there"
                return _edits(f"Improve: tune the model (was {parent_metric}).", [(old, f"METRIC = {new}")])
            return self._code(f"Improve: tune the model (was {parent_metric}).", WORKING, new)
        if self.patch:
            return _edits("Debug: encode the category column before converting.", [(RAISE, FIXED)])
        return self._code("Debug: encode the category column before converting.", WORKING, parent_metric)

    def _code(self, plan: str, template: str, metric: float):
        code = template.format(title=plan, metric=metric)
        return TextReply(f"{plan}\n\n```python\n{code}```\n")

    def _review(self, text: str):
        with self.lock:
            self.counts["review"] += 1
        found = _PRINTED_RE.findall(text)
        crashed = "Traceback" in text or "ValueError" in text
        if found and not crashed:
            return ToolReply(
                "submit_review",
                {
                    "is_bug": False,
                    "metric": float(found[-1]),
                    "summary": f"Ran cleanly; validation RMSE {found[-1]}.",
                    "lower_is_better": True,
                },
            )
        return ToolReply(
            "submit_review",
            {
                "is_bug": True,
                "metric": None,
                "summary": "The script crashed with ValueError while converting a category to float.",
                "lower_is_better": True,
            },
        )
