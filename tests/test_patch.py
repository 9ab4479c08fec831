"""Patch edits: parsing and applying search/replace blocks, and the coder's fallback to a whole script."""

from __future__ import annotations

import pytest

from aide_tui.search.coder import TaskContext
from aide_tui.search.node import Node
from aide_tui.search.operators import LlmCoder
from aide_tui.search.patch import Edit, PatchError, apply_edits, parse_edits, read_patch_reply
from aide_tui.settings import Settings
from tests.test_operators import Reply, StubClient

BASE = (
    "import pandas as pd\n"
    "\n"
    "def fit(df):\n"
    "    model = Ridge(alpha=1.0)\n"
    "    model.fit(df)   \n"
    "    return model\n"
    "\n"
    "print('Validation metric: 0.5')\n"
)


def block(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


def test_exact_edit_applies_and_the_plan_is_the_text_before_the_blocks():
    reply = (
        "Raise alpha to 10: less overfitting.\n\n```python\n"
        + block("    model = Ridge(alpha=1.0)\n", "    model = Ridge(alpha=10.0)\n")
        + "```\n"
    )
    out = read_patch_reply(reply, BASE)
    assert out is not None
    assert out.plan == "Raise alpha to 10: less overfitting."
    assert out.code == BASE.replace("alpha=1.0", "alpha=10.0")


def test_edits_apply_in_order_each_to_the_result_of_the_ones_before():
    edits = [
        Edit("import pandas as pd\n", "import numpy as np\nimport pandas as pd\n"),
        Edit("import numpy as np\n", "import numpy\n"),
    ]
    assert apply_edits(BASE, edits).startswith("import numpy\nimport pandas as pd\n")


def test_trailing_whitespace_and_indentation_are_tolerated():
    # the script has trailing spaces after model.fit(df); the model's copy has none and a different indent
    edits = [
        Edit(
            "model = Ridge(alpha=1.0)\nmodel.fit(df)\n", "model = Ridge(alpha=2.0)\nmodel.fit(df, sample_weight=None)\n"
        )
    ]
    out = apply_edits(BASE, edits)
    assert "    model = Ridge(alpha=2.0)\n    model.fit(df, sample_weight=None)\n    return model\n" in out


@pytest.mark.parametrize(
    ("search", "why"),
    [("    model = Lasso()\n", "not in the script"), ("\n", "empty SEARCH"), ("    return model\n\n", None)],
)
def test_an_edit_that_does_not_apply_says_which_and_why(search, why):
    if why is None:  # occurs once: applies
        apply_edits(BASE, [Edit(search, "    return model  # fitted\n\n")])
        return
    with pytest.raises(PatchError, match=why):
        apply_edits(BASE, [Edit("import pandas as pd\n", "import pandas\n"), Edit(search, "x\n")])


def test_an_ambiguous_edit_is_refused():
    code = "a = 1\nb = 2\na = 1\n"
    with pytest.raises(PatchError, match="2 times"):
        apply_edits(code, [Edit("a = 1\n", "a = 3\n")])


def test_a_cut_off_block_and_a_no_op_are_errors_and_a_reply_without_blocks_is_not_a_patch():
    with pytest.raises(PatchError, match="cut off"):
        parse_edits("plan\n<<<<<<< SEARCH\nx\n=======\ny\n")
    with pytest.raises(PatchError, match="unchanged"):
        read_patch_reply("plan\n" + block("    return model\n", "    return model\n"), BASE)
    assert read_patch_reply("plan\n```python\nprint(1)\n```\n", BASE) is None


# ------------------------------------------------------------------ the coder in patch mode


def coder(client: StubClient, edit: str = "patch") -> LlmCoder:
    return LlmCoder(client, Settings(memory_limit="1G", edit=edit))


def ctx() -> TaskContext:
    return TaskContext(task="Predict y.", data_preview="train.csv", memory="", timeout=60)


def parent() -> Node:
    return Node(4, None, "draft", 4, plan="ridge", code=BASE, status="ok", metric=0.5, review_summary="fine")


def test_patch_mode_asks_for_edits_and_the_node_gets_the_whole_patched_script():
    client = StubClient(
        [Reply("Raise alpha.\n" + block("    model = Ridge(alpha=1.0)\n", "    model = Ridge(alpha=3.0)\n"))]
    )
    proposal = coder(client).improve(ctx(), parent(), lambda _: None)
    assert proposal.code == BASE.replace("alpha=1.0", "alpha=3.0")
    assert proposal.plan == "Raise alpha." and proposal.note == ""
    call = client.stream_calls[0]
    assert "SEARCH/REPLACE" in str(call["messages"][0]["content"]) and "<<<<<<< SEARCH" in call["system"]


def test_rewrite_mode_asks_for_the_whole_script():
    client = StubClient([Reply("Raise alpha.\n```python\nprint('Validation metric: 0.6')\n```\n")])
    proposal = coder(client, "rewrite").debug(ctx(), parent(), lambda _: None)
    assert proposal.code == "print('Validation metric: 0.6')\n"
    call = client.stream_calls[0]
    assert "SEARCH" not in str(call["messages"][0]["content"]) and "<<<<<<< SEARCH" not in call["system"]


def test_a_patch_that_does_not_apply_falls_back_to_the_whole_script_and_says_so():
    client = StubClient(
        [
            Reply("Use Lasso.\n" + block("    model = Lasso()\n", "    model = Lasso(alpha=0.1)\n")),
            Reply("Use Lasso.\n```python\nprint('Validation metric: 0.7')\n```\n"),
        ]
    )
    proposal = coder(client).improve(ctx(), parent(), lambda _: None)
    assert proposal.code == "print('Validation metric: 0.7')\n"
    assert "patch did not apply" in proposal.note and "not in the script" in proposal.note
    follow_up = client.stream_calls[1]["messages"][-1]["content"]
    assert "complete modified script" in follow_up
