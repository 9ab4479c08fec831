"""The summarization operator (memory) and the data preview: bounded, cheap, informative."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from aide_tui.search import preview as preview_mod
from aide_tui.search.memory import summarize
from aide_tui.search.node import ExecInfo, Node
from aide_tui.search.preview import build_preview


def make_nodes(n: int, seed: int = 0) -> list[Node]:
    rng = random.Random(seed)
    nodes = []
    for i in range(n):
        if i % 3 == 2:
            nodes.append(
                Node(
                    id=i,
                    parent_id=None,
                    operation="debug",
                    step=i,
                    plan=f"plan {i} " + "x" * 400,
                    status=rng.choice(["buggy", "timeout"]),
                    review_summary=f"KeyError in node {i}",
                    exec=ExecInfo(exit_code=1, exc_type="KeyError"),
                )
            )
        else:
            nodes.append(
                Node(
                    id=i,
                    parent_id=None,
                    operation="improve",
                    step=i,
                    plan=f"plan {i} " + "y" * 400,
                    status="ok",
                    metric=round(rng.uniform(0.1, 0.9), 6),
                    review_summary="r" * 300,
                )
            )
    return nodes


def test_memory_is_bounded_at_1000_nodes():
    """Its cost per call is a figure of bench/bench_engine.py, not a timing assert here."""
    nodes = make_nodes(1000)
    for budget in (200, 2000, 6000):
        assert len(summarize(nodes, "maximize", budget)) <= budget


def test_memory_best_first_respects_direction():
    nodes = [
        Node(id=i, parent_id=None, operation="draft", step=i, status="ok", metric=m, plan=f"p{i}")
        for i, m in enumerate([0.5, 0.9, 0.1])
    ]
    maxi = summarize(nodes, "maximize", 2000)
    mini = summarize(nodes, "minimize", 2000)
    assert maxi.index("node 1 ") < maxi.index("node 0 ") < maxi.index("node 2 ")
    assert mini.index("node 2 ") < mini.index("node 0 ") < mini.index("node 1 ")
    assert "higher is better" in maxi and "lower is better" in mini


def test_memory_includes_failures_and_counts():
    nodes = make_nodes(30)
    text = summarize(nodes, "minimize", 6000)
    assert "Failed attempts: 10" in text
    assert "KeyError in node 29" in text  # most recent failure is listed
    assert "Working solutions: 20" in text


def test_memory_is_deterministic_and_handles_empty_and_nonfinite():
    nodes = make_nodes(100)
    assert summarize(nodes, "maximize", 3000) == summarize(list(nodes), "maximize", 3000)
    assert "Nothing has been tried" in summarize([], None, 1000)
    weird = [Node(id=0, parent_id=None, operation="draft", step=0, status="ok", metric=float("nan"))]
    assert "No working solution" in summarize(weird, "maximize", 1000)


# ---------------------------------------------------------------- preview


def write_csv(path: Path, rows: int) -> None:
    rng = random.Random(1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fh.write("id,age,price,city,member,label\n")
        for i in range(rows):
            age = "" if i % 10 == 0 else str(rng.randint(18, 90))
            price = "NA" if i % 25 == 0 else f"{rng.uniform(5.0, 50.0):.2f}"
            fh.write(
                f"{i},{age},{price},{rng.choice(['Paris', 'Rome', 'Oslo'])},{rng.choice(['true', 'false'])},{i % 2}\n"
            )


def test_preview_describes_a_csv(tmp_path: Path):
    write_csv(tmp_path / "data" / "train.csv", 1000)
    text = build_preview(tmp_path, ["data/train.csv"], 6000)
    assert len(text) <= 6000
    assert "./input/data/train.csv" in text and "1,000 rows" in text and "6 columns" in text
    lines = {line.strip().split(":")[0]: line for line in text.splitlines()}
    assert "age: int; missing 100" in lines["age"] and "min 18" in lines["age"] and "max 90" in lines["age"]
    assert "price: float; missing 40" in lines["price"]
    assert "city: str; 3 distinct" in lines["city"] and "Paris" in lines["city"]
    assert "member: bool" in lines["member"]
    assert "label: int" in lines["label"] and "2 distinct" in lines["label"]
    assert "sample rows" in text and "0,," in text


def test_preview_samples_big_files(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(preview_mod, "SAMPLE_ROWS", 500)
    write_csv(tmp_path / "big.csv", 5000)
    text = build_preview(tmp_path, ["big.csv"], 6000)
    assert "5,000 rows" in text  # counted cheaply over the whole file
    assert "statistics from the first 500 rows" in text
    assert "id: int; min 0, max 499" in text  # stats come from the sample only


def test_preview_estimates_rows_of_huge_files(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(preview_mod, "SAMPLE_ROWS", 200)
    monkeypatch.setattr(preview_mod, "COUNT_LINES_MAX_BYTES", 1000)
    write_csv(tmp_path / "huge.csv", 3000)
    assert "rows (estimated)" in build_preview(tmp_path, ["huge.csv"], 6000)


def test_preview_lists_other_files_and_directories(tmp_path: Path):
    (tmp_path / "meta.json").write_text(json.dumps({"classes": ["a", "b"], "version": 2}))
    (tmp_path / "rec.jsonl").write_text("\n".join(json.dumps({"id": i, "text": "t"}) for i in range(4)) + "\n")
    (tmp_path / "model.bin").write_bytes(b"0" * 4096)
    images = tmp_path / "images"
    images.mkdir()
    for i in range(40):
        (images / f"{i}.{'png' if i % 4 else 'jpg'}").write_bytes(b"x")
    text = build_preview(tmp_path, ["meta.json", "rec.jsonl", "model.bin", "images", "gone.csv"], 6000)
    assert "./input/meta.json" in text and "classes: list(2) of str" in text
    assert "4 records" in text and "id: int" in text
    assert "./input/model.bin (4.0 KB)" in text
    assert "./input/images/ (directory, 40 files" in text and ".png 30" in text and ".jpg 10" in text
    assert "./input/gone.csv: missing" in text


@pytest.mark.parametrize("budget", [60, 300, 800, 2000])
def test_preview_always_fits_budget(tmp_path: Path, budget: int):
    for i in range(5):
        write_csv(tmp_path / f"t{i}.csv", 200)
    text = build_preview(tmp_path, [f"t{i}.csv" for i in range(5)], budget)
    assert len(text) <= budget
    if budget >= 300:
        assert "cut" in text or "t4.csv" in text  # says what was cut, or everything fit compactly


def test_preview_wide_table_stays_bounded(tmp_path: Path):
    cols = [f"c{i}" for i in range(300)]
    (tmp_path / "wide.csv").write_text(
        ",".join(cols) + "\n" + "\n".join(",".join("1" for _ in cols) for _ in range(50))
    )
    text = build_preview(tmp_path, ["wide.csv"], 6000)
    assert len(text) <= 6000 and "300 columns" in text


# ---------------------------------------------------------------- lessons


def lineage() -> list[Node]:
    """A draft improved three times (one better, one worse, one crash), and one grandchild."""

    def node(i, parent, op, plan, status="ok", metric=None, summary=""):
        return Node(
            id=i,
            parent_id=parent,
            operation=op,
            step=i,
            plan=plan,
            status=status,
            metric=metric,
            review_summary=summary,
        )

    return [
        node(1, None, "draft", "Random forest on all columns.", metric=0.80),
        node(2, 1, "improve", "Add target encoding of the city column.", metric=0.84),
        node(3, 1, "improve", "Drop the age column.", metric=0.78),
        node(4, 1, "improve", "Switch to LightGBM.", status="buggy", summary="ModuleNotFoundError: lightgbm"),
        node(5, 2, "improve", "Double the number of trees.", metric=0.85),
        node(6, None, "draft", "Logistic regression.", metric=0.70),
    ]


def test_each_improvement_shows_what_changed_and_the_metric_from_parent_to_child():
    text = summarize(lineage(), "maximize", 6000)
    assert (
        "- node 2 (improve of node 1): metric 0.8 -> 0.84 (better); change: Add target encoding of the city column."
    ) in text
    assert "- node 3 (improve of node 1): metric 0.8 -> 0.78 (worse); change: Drop the age column." in text
    assert "- node 5 (improve of node 2): metric 0.84 -> 0.85 (better)" in text
    assert "- node 4 (improve of node 1, buggy): tried Switch to LightGBM.; went wrong: ModuleNotFoundError" in text
    mini = summarize(lineage(), "minimize", 6000)  # the same numbers read the other way
    assert "metric 0.8 -> 0.84 (worse)" in mini and "metric 0.8 -> 0.78 (better)" in mini
    assert "(better)" not in summarize(lineage(), None, 6000)  # no direction yet: no judgement


def test_the_node_about_to_be_improved_shows_its_earlier_children_first():
    text = summarize(lineage(), "maximize", 6000, focus=1)
    head = text.splitlines()
    assert head[0] == "Already tried on node 1, which this step builds on (3, newest first):"
    assert head[1].startswith("- node 4 (improve): metric 0.8 -> failed (buggy); tried: Switch to LightGBM.")
    assert "went wrong: ModuleNotFoundError" in head[1]
    assert head[2] == "- node 3 (improve): metric 0.8 -> 0.78 (worse); tried: Drop the age column."
    assert head[3].startswith("- node 2 (improve): metric 0.8 -> 0.84 (better)")
    assert head[4].startswith("Working solutions: 5")
    fresh = summarize(lineage(), "maximize", 6000, focus=6)
    assert fresh.splitlines()[0] == "Node 6, which this step builds on, has not been changed before."
    assert summarize(lineage(), "maximize", 6000, focus=99) == summarize(lineage(), "maximize", 6000)


def test_focus_section_stays_within_its_share_of_a_small_budget():
    nodes = lineage() + [
        Node(id=10 + i, parent_id=1, operation="improve", step=10 + i, plan="p" * 300, status="ok", metric=0.5)
        for i in range(40)
    ]
    text = summarize(nodes, "maximize", 1500, focus=1)
    assert len(text) <= 1500 and "earlier attempts not shown" in text and "Working solutions" in text


def test_memory_recalls_the_most_similar_attempts_on_other_lines_with_their_metric_change():
    def n(i, parent, op, plan, metric=None, status="ok"):
        return Node(i, parent, op, i, plan=plan, status=status, metric=metric)

    nodes = [
        n(1, None, "draft", "Gradient boosting on raw features.", 0.80),
        n(2, 1, "improve", "Add target encoding of the city column.", 0.78),  # line 1: it hurt
        n(3, 1, "improve", "Raise the number of trees to 600.", 0.81),
        n(4, None, "draft", "Random forest with target encoding of the city column.", 0.75),
        n(5, 4, "improve", "Tune min_samples_leaf to 5.", 0.76),
        n(6, 5, "improve", "Add frequency encoding of the city column.", None, "buggy"),
    ]
    text = summarize(nodes, "maximize", 6000, focus=5)
    section = text.split("Most similar earlier attempts to node 5's approach (this line and others):\n", 1)[1]
    first = section.splitlines()[0]
    assert first.startswith("- node 2 (improve of node 1, another line: draft 1): metric 0.8 -> 0.78 (worse)")
    assert "tried: Add target encoding of the city column." in first
    assert "- node 6" not in section.split("Working solutions")[0]  # node 6 is node 5's own child: shown above
    assert "node 3 (improve of node 1" not in section.split("Working solutions")[0]  # nothing in common
    hinted = summarize(nodes, "maximize", 6000, focus=5, query="more trees")  # the user's hint is part of the query
    assert "- node 3 (improve of node 1, another line: draft 1): metric 0.8 -> 0.81 (better)" in hinted
    assert len(summarize(nodes, "maximize", 300, focus=5)) <= 300
