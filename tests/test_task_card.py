"""The task card: derived at run start, corrected by aide.toml's [task] table, kept by a resumed run."""

from __future__ import annotations

import json

import pytest
from helpers import Recorder

from aide_tui import events as ev
from aide_tui.cli import main
from aide_tui.engine import build_engine
from aide_tui.search.task_card import TaskCard, TaskCardError, card_from_table
from aide_tui.settings import resolve

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

BASE = TaskCard("data/train.csv", "data/test.csv", "sale_price", ["id"], "rmse", "minimize")


def test_a_table_corrects_only_the_keys_it_names():
    card = card_from_table({"target": "area", "id_columns": "id, neighborhood"}, BASE, "aide.toml [task]")
    assert (card.target, card.id_columns, card.metric, card.train_file) == (
        "area",
        ["id", "neighborhood"],
        "rmse",
        "data/train.csv",
    )


def test_a_metric_alone_brings_its_usual_direction_and_an_explicit_one_wins():
    assert card_from_table({"metric": "accuracy"}, BASE, "x").direction == "maximize"
    assert card_from_table({"metric": "accuracy", "direction": "minimize"}, BASE, "x").direction == "minimize"


@pytest.mark.parametrize(
    "table, needle",
    [
        ({"targte": "y"}, "unknown key 'targte'"),
        ({"metric": "auc-ish"}, "unknown metric 'auc-ish'"),
        ({"direction": "up"}, "direction must be maximize or minimize"),
        ({"id_columns": 3}, "id_columns must be a list"),
    ],
)
def test_a_bad_table_names_the_key(table, needle):
    with pytest.raises(TaskCardError, match=needle):
        card_from_table(table, BASE, "aide.toml [task]")


def test_without_a_derived_card_the_table_must_be_complete():
    with pytest.raises(TaskCardError, match="must be given"):
        card_from_table({"target": "y"}, None, "aide.toml [task]")


def _engine(project, recorder, resume=False):
    settings = resolve(project / "aide.toml", dict(steps=1, coder="offline", workers=1, timeout=60, memory_limit="1G"))
    return build_engine(project, settings, resume=resume, listener=recorder)


def test_the_run_announces_the_derived_card_and_saves_it(project):
    recorder = Recorder()
    engine = _engine(project, recorder)
    engine.run()
    (ready,) = recorder.of(ev.TaskCardReady)
    assert ready.source == "derived"
    assert (ready.card.target, ready.card.id_columns, ready.card.metric) == ("sale_price", ["id"], "rmse")
    saved = json.loads(engine.paths.task_card.read_text())
    assert saved["target"] == "sale_price"


def test_aide_toml_corrects_the_card_and_a_resumed_run_keeps_the_card_it_started_with(project):
    (project / "aide.toml").write_text('[task]\nmetric = "mae"\n')
    recorder = Recorder()
    engine = _engine(project, recorder)
    engine.submit(ev.StopAfterStep())
    engine.run()
    (ready,) = recorder.of(ev.TaskCardReady)
    assert (ready.source, ready.card.metric, ready.card.direction) == ("aide.toml", "mae", "minimize")

    (project / "aide.toml").write_text('[task]\nmetric = "r2"\n')  # changed after the run started
    again = Recorder()
    _engine(project, again, resume=True).run()
    (kept,) = again.of(ev.TaskCardReady)
    assert (kept.source, kept.card.metric) == ("saved", "mae")


@pytest.mark.parametrize(
    "toml, needles",
    [
        ('[task]\ntargte = "y"\n', ("aide.toml [task]", "unknown key 'targte'")),
        ('[task]\ntrain_file = "data/nope.csv"\n', ("aide.toml [task]", "'data/nope.csv' is not a data file")),
        ('task = "y"\n', ("aide.toml", "task must be a table")),
    ],
)
def test_a_bad_task_table_is_one_line_and_exit_2(project, capsys, toml, needles):
    (project / "aide.toml").write_text(toml)
    assert main([str(project), "--headless", "--coder", "offline", "--new"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_headless_prints_the_card(project, capsys):
    assert (
        main(
            [str(project), "--headless", "--coder", "offline", "--steps", "1", "--workers", "1", "--memory-limit", "1G"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "task card (derived from task.md and the data; correct it in aide.toml [task]):" in out
    assert "  target:     sale_price" in out
