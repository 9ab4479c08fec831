"""The task card read by the LLM (forced tool use through the real SDK to the local Messages API),
checked against the data, with the offline reader's card as the fallback and aide.toml over both."""

from __future__ import annotations

import json

import pytest
from aide_script import ScriptedAide
from card_reader import card_reply, is_card_call
from fake_api import ErrorReply, default_responder, last_user_text, system_text
from helpers import Recorder, git, make_project

from aide_tui import events as ev
from aide_tui.engine import build_engine
from aide_tui.settings import resolve

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

WEATHER_TASK = """# Tomorrow's weather

Predict the `weather` of each day in data/test.csv. The `date` column identifies the day.
Metric: accuracy. Submit `date,weather`.
"""


def weather_project(root):
    project = make_project(root, dirty=False)
    (project / "task.md").write_text(WEATHER_TASK)
    (project / "data" / "train.csv").write_text(
        "id,date,temp,weather\n"
        + "".join(f"{i % 3},2020-01-{i + 1:02d},{10 + i},{'rain' if i % 2 else 'sun'}\n" for i in range(20))
    )
    (project / "data" / "test.csv").write_text(
        "id,date,temp\n" + "".join(f"{i},2021-01-{i + 1:02d},{12 + i}\n" for i in range(6))
    )
    git(project, "add", "-A")
    git(project, "commit", "-qm", "weather data")
    return project


def start(project, recorder, **over):
    base = dict(steps=1, coder="llm", workers=1, timeout=60, memory_limit="1G")
    base.update(over)
    settings = resolve(project / "aide.toml", base)
    engine = build_engine(project, settings, resume=False, listener=recorder)
    engine.submit(ev.StopAfterStep())  # the card is settled at the start; no node needs to run
    engine.run()
    return engine


def test_the_llm_reads_the_id_column_from_the_task_words(tmp_path, llm_env):
    llm_env.responder = lambda body: (
        card_reply(body, id_columns=["date"]) if is_card_call(body) else default_responder(body)
    )
    project = weather_project(tmp_path / "w")
    recorder = Recorder()
    engine = start(project, recorder)
    (ready,) = recorder.of(ev.TaskCardReady)
    assert ready.source == "llm"
    assert (ready.card.target, ready.card.id_columns, ready.card.metric) == ("weather", ["date"], "accuracy")
    (call,) = [r for r in llm_env.requests if is_card_call(r.body)]
    prompt = last_user_text(call.body)
    assert "The `date` column identifies the day" in prompt and "- data/test.csv" in prompt and "  date: " in prompt
    root = json.loads(git(project, "show", f"aide/{engine.run_name}/root:task_card.json"))
    assert root["id_columns"] == ["date"]  # settled before the run started: in the root commit too
    assert not recorder.of(ev.Notice) or all("task card" not in n.message for n in recorder.of(ev.Notice))
    (usage,) = recorder.of(ev.UsageUpdated)  # the card call is the run's first spend
    assert usage.total.calls == 1 and usage.total.cost > 0


@pytest.mark.parametrize(
    "answer, why",
    [
        ({"id_columns": ["id"]}, "not unique per row of data/train.csv"),  # no test file in this case: see below
        ({"target": "rainfall"}, "target 'rainfall' is not a column of data/train.csv"),
        ({"train_file": "data/nope.csv"}, "'data/nope.csv' is not a data file"),
    ],
)
def test_an_answer_that_does_not_fit_the_data_falls_back_to_the_offline_card(tmp_path, llm_env, answer, why):
    if "id_columns" in answer:
        answer = {**answer, "test_file": None}
    llm_env.responder = lambda body: card_reply(body, **answer) if is_card_call(body) else default_responder(body)
    project = weather_project(tmp_path / "w")
    recorder = Recorder()
    start(project, recorder)
    (ready,) = recorder.of(ev.TaskCardReady)
    assert ready.source == "derived" and ready.card.id_columns == ["date"]  # the offline reader reads it too
    (notice,) = [n for n in recorder.of(ev.Notice) if "task card" in n.message]
    assert why in notice.message and "the offline reader's card is used" in notice.message


def test_a_failed_call_falls_back_with_a_notice(tmp_path, llm_env):
    llm_env.responder = lambda body: (
        ErrorReply(400, message="bad card request") if is_card_call(body) else default_responder(body)
    )
    recorder = Recorder()
    start(weather_project(tmp_path / "w"), recorder)
    assert recorder.of(ev.TaskCardReady)[0].source == "derived"
    assert any(
        "could not state the task card" in n.message and "bad card request" in n.message for n in recorder.of(ev.Notice)
    )


def test_aide_toml_still_overrides_the_llm_card(tmp_path, llm_env):
    llm_env.responder = lambda body: (
        card_reply(body, id_columns=["date"]) if is_card_call(body) else default_responder(body)
    )
    project = weather_project(tmp_path / "w")
    (project / "aide.toml").write_text('[task]\nmetric = "f1"\n')
    recorder = Recorder()
    start(project, recorder)
    (ready,) = recorder.of(ev.TaskCardReady)
    assert (ready.source, ready.card.metric, ready.card.id_columns) == ("aide.toml", "f1", ["date"])


def test_the_coder_prompt_states_the_card(project, llm_env):
    llm_env.responder = ScriptedAide(crash_every=99)
    recorder = Recorder()
    settings = resolve(None, dict(steps=1, coder="llm", workers=1, timeout=60, memory_limit="1G"))
    build_engine(project, settings, resume=False, listener=recorder).run()
    draft = next(r for r in llm_env.requests if last_user_text(r.body).lstrip().startswith("# Draft"))
    system = system_text(draft.body)
    assert "# Task card" in system
    assert "the target column is `sale_price`" in system
    assert "the columns `id,sale_price`" in system and "RMSE (rmse); lower is better" in system
