"""Real tables' traps: a BOM, semicolons, Latin-1, empty files, a terse id, groups, time, several tables, a big table.

Each fixture is small and shaped like the real case it stands for; each trap ends
in the right answer or a one-line refusal (exit 2) before a run is created.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import WRITE_SUBMISSION, Recorder, git, make_project

from aide_tui import events as ev
from aide_tui.card_resolution import resolve_card, structure_warnings
from aide_tui.cli import main
from aide_tui.data.table import TableError, read_table, table_format
from aide_tui.engine import build_engine
from aide_tui.evaluation.split import make_split
from aide_tui.evaluation.submission_check import check_submission
from aide_tui.export import export_node
from aide_tui.project import Project
from aide_tui.search.coder import TaskContext
from aide_tui.search.metric_line import validation_folds
from aide_tui.search.offline import OfflineCoder
from aide_tui.search.offline.recipe import parse_recipe
from aide_tui.search.offline.sizing import MIN_TREES, fits_in_time
from aide_tui.search.offline.task_reader import TableUnreadable, derive_task_card, read_task
from aide_tui.search.task_card import card_to_dict
from aide_tui.settings import resolve

pytestmark = pytest.mark.timeout(300)


def write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def penguins(root: Path, *, bom: bool = False, sep: str = ",", n: int = 60) -> Path:
    """Specimens with a text id, as Excel's "CSV UTF-8" writes them when `bom`."""
    species = ["Adelie", "Gentoo", "Chinstrap"]
    rows = [sep.join(["specimen_code", "bill_mm", "mass_g", "Sex"])]
    rows += [
        sep.join([f"P{i:03d}", f"{35 + i % 15}.5", str(3000 + 37 * i), "male" if i % 2 else "female"]) for i in range(n)
    ]
    test = [sep.join(["specimen_code", "bill_mm", "mass_g"])]
    test += [sep.join([f"T{i:03d}", f"{36 + i % 9}.5", str(3100 + 41 * i)]) for i in range(12)]
    prefix = "\ufeff" if bom else ""
    write(root / "data/train.csv", (prefix + "\n".join(rows) + "\n").encode("utf-8"))
    write(root / "data/test.csv", (prefix + "\n".join(test) + "\n").encode("utf-8"))
    write(
        root / "task.md",
        f"# Penguins\n\nPredict `Sex` for each specimen ({' '.join(species)}). Metric: accuracy. Submit specimen_code,Sex.\n",
    )
    return root


FILES = ["data/test.csv", "data/train.csv"]


# ------------------------------------------------------------------ one reader


def test_a_bom_is_dropped_everywhere_so_the_id_stays_an_id(tmp_path):
    root = penguins(tmp_path, bom=True)
    write(root / "data/sample_submission.csv", "\ufeffspecimen_code,Sex\nT000,male\n")
    files = ["data/sample_submission.csv", *FILES]
    card = derive_task_card(root, files, (root / "task.md").read_text())
    assert card.id_columns == ["specimen_code"] and card.target == "Sex"
    assert "specimen_code" not in read_task(root, files, "", card).feature_columns
    sub = write(
        tmp_path / "submission.csv", "\ufeffspecimen_code,Sex\n" + "".join(f"T{i:03d},male\n" for i in range(12))
    )
    assert check_submission(sub, root / "data/test.csv", card.id_columns, root / "data/sample_submission.csv") is None
    numbered = write(tmp_path / "numbered.csv", "id,Sex\n" + "".join(f"{i},male\n" for i in range(12)))
    assert "expected specimen_code,Sex" in (
        check_submission(numbered, root / "data/test.csv", ["specimen_code"], root / "data/sample_submission.csv") or ""
    )


def test_a_semicolon_file_is_read_by_aide_tui_and_by_the_scripts_alike(tmp_path):
    root = penguins(tmp_path, sep=";")
    assert table_format(root / "data/train.csv").delimiter == ";"
    card = derive_task_card(root, FILES, (root / "task.md").read_text())
    assert card.target == "Sex" and card.id_columns == ["specimen_code"]
    spec = read_task(root, FILES, (root / "task.md").read_text(), card)
    assert spec.train_read == {"sep": ";", "encoding": "utf-8-sig"}
    code = (
        OfflineCoder(root, FILES, card=card)
        .draft(TaskContext(task="", data_preview="", memory=""), lambda _: None)
        .code
    )
    assert 'TRAIN_READ = {"sep": ";", "encoding": "utf-8-sig"}' in code
    ws = tmp_path / "ws"
    for rel in FILES:
        write(ws / "input" / rel, (root / rel).read_bytes())
    write(ws / "solution.py", code)
    r = subprocess.run([sys.executable, "solution.py"], cwd=ws, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert list(pd.read_csv(ws / "submission.csv").columns) == ["specimen_code", "Sex"]


def test_latin_1_and_empty_files_are_refused_naming_the_byte_and_the_fix(tmp_path):
    bad = write(tmp_path / "data/train.csv", "nom,âge\nRené,3\n".encode("latin-1"))
    with pytest.raises(TableError, match=r"byte 0xe2 at offset 4 is not UTF-8.*save the file as UTF-8"):
        read_table(bad, label="data/train.csv")
    empty = write(tmp_path / "data/empty.csv", b"")
    with pytest.raises(TableError, match=r"data/empty.csv is empty \(0 bytes\)"):
        read_table(empty, label="data/empty.csv")
    with pytest.raises(TableUnreadable, match="data/train.csv: byte 0xe2"):
        derive_task_card(tmp_path, ["data/train.csv"], "Predict âge.")


@pytest.mark.parametrize(
    "train, needle",
    [
        ("nom,salaire\nRené,3\n".encode("latin-1"), "data/train.csv: byte 0xe9"),
        (b"", "data/train.csv is empty (0 bytes)"),
    ],
)
def test_an_unreadable_table_exits_2_before_a_run_exists(tmp_path, capsys, train, needle):
    root = penguins(tmp_path / "p")
    write(root / "data/train.csv", train)
    git(root, "init", "-q", "-b", "main")
    assert main([str(root), "--headless", "--coder", "offline", "--new"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not (root / ".aide" / "runs").exists() or not any((root / ".aide" / "runs").iterdir())
    assert git(root, "for-each-ref", "refs/heads/aide/").strip() == ""


def test_a_target_that_is_not_a_column_exits_2_and_creates_nothing(tmp_path, capsys):
    root = penguins(tmp_path / "p")
    write(root / "aide.toml", '[task]\ntarget = "price"\n')
    git(root, "init", "-q", "-b", "main")
    assert main([str(root), "--headless", "--coder", "offline", "--new"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "target 'price' is not a column of data/train.csv" in err, err
    assert not (root / ".aide" / "runs").exists() or not any((root / ".aide" / "runs").iterdir())


# ------------------------------------------------------------------ ids


def terse(root: Path, *, unique: bool = True) -> Path:
    """A French terse task whose id column has no id-like name."""
    rows = ["personne,age,heures,wages"] + [
        f"{1000 + i},{20 + i % 40},{30 + i % 7},{10 + (i * 7) % 13}" for i in range(80)
    ]
    test = ["personne,age,heures"] + [
        f"{2000 + (i if unique else i // 2)},{25 + i % 30},{32 + i % 5}" for i in range(20)
    ]
    write(root / "data/train.csv", "\n".join(rows) + "\n")
    write(root / "data/test.csv", "\n".join(test) + "\n")
    write(root / "task.md", "Prédire wages. RMSE.\nRendre submission.csv : personne,wages\n")
    return root


def test_a_terse_submission_line_in_any_language_names_the_id(tmp_path):
    root = terse(tmp_path)
    card = derive_task_card(root, FILES, (root / "task.md").read_text())
    assert card.id_columns == ["personne"] and card.target == "wages"
    code = (
        OfflineCoder(root, FILES, card=card)
        .draft(TaskContext(task="", data_preview="", memory=""), lambda _: None)
        .code
    )
    assert "range(len(test))" not in code and '"id"' not in code  # never a made-up id column


def test_a_card_without_the_id_the_submission_needs_exits_2_with_the_fix(tmp_path, capsys):
    root = terse(tmp_path / "p", unique=False)  # personne repeats in the test file: the reader finds no id
    git(root, "init", "-q", "-b", "main")
    assert main([str(root), "--headless", "--coder", "offline", "--new"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "the submission must carry personne" in err and '[task] id_columns = ["personne"]' in err, err


# ------------------------------------------------------------------ groups and time


def panel(root: Path, *, people: int = 60, years: int = 6, test_people: int = 15, seed: int = 0) -> tuple[Path, Path]:
    """People over years; each person's own level dominates the wage, and the test people are new.

    Returns the project and the hidden test labels (outside the project)."""
    rng = np.random.default_rng(seed)
    records = []
    for p in range(people + test_people):
        level = rng.normal(0, 1.0)
        school = int(rng.integers(8, 18))
        for y in range(years):
            exper = y + int(rng.integers(0, 5))
            wage = 1.0 + 0.08 * school + 0.03 * exper + level + rng.normal(0, 0.2)
            records.append((f"m{p:03d}", 1980 + y, school, exper, round(wage, 4)))
    frame = pd.DataFrame(records, columns=["man", "year", "school", "exper", "wage"])
    train = frame[frame.man < f"m{people:03d}"]
    test = frame[frame.man >= f"m{people:03d}"]
    write(root / "data/train.csv", train.to_csv(index=False))
    write(root / "data/test.csv", test.drop(columns=["wage"]).to_csv(index=False))
    write(
        root / "task.md",
        "# Wages\n\nPredict `wage` for the men of data/test.csv (metric: RMSE). "
        "Validate so that the same man is never both in training and validation. Submit man,year,wage.\n",
    )
    answers = write(root.parent / "answers.csv", test[["man", "year", "wage"]].to_csv(index=False))
    return root, answers


def test_a_panel_gets_its_group_column_and_whole_groups_in_folds_and_holdout(tmp_path):
    root, _ = panel(tmp_path / "p")
    card = derive_task_card(root, FILES, (root / "task.md").read_text())
    assert card.group_column == "man" and card.id_columns == ["man", "year"] and card.time_column is None
    header, rows = read_table(root / "data/train.csv")
    groups = [r[0] for r in rows]
    split = make_split([r[-1] for r in rows], False, 1, 0.2, groups=groups)
    held = {groups[i] for i in split.holdout_rows}
    kept = [i for i in range(len(rows)) if i not in set(split.holdout_rows)]
    assert held and not held & {groups[i] for i in kept}  # whole men withheld
    fold_of_man: dict[str, set[int]] = {}
    for n, i in enumerate(kept):
        fold_of_man.setdefault(groups[i], set()).add(split.folds[n])
    assert all(len(f) == 1 for f in fold_of_man.values()) and len(set(split.folds)) == 5
    spec = read_task(root, FILES, "", card)
    assert "man" not in spec.feature_columns


def test_a_card_without_the_group_the_data_shows_gets_a_warning_naming_the_column(tmp_path):
    root, _ = panel(tmp_path / "p")
    detected = derive_task_card(root, FILES, (root / "task.md").read_text())
    stated = dataclasses.replace(detected, group_column=None)  # e.g. the LLM's card left it out
    (warning,) = structure_warnings(stated, detected, given=set())
    assert "'man'" in warning and '[task] group_column = "man"' in warning
    assert structure_warnings(stated, detected, given={"group_column"}) == []  # aide.toml said no groups
    assert structure_warnings(detected, detected, given=set()) == []


def test_time_ordered_data_gets_a_time_column_the_last_period_held_out_and_forward_folds(tmp_path):
    days = pd.date_range("2023-01-01", periods=120, freq="D")
    train = ["day,temp,load"] + [f"{d.date()},{10 + i % 9},{100 + i + i % 7}" for i, d in enumerate(days)]
    test = ["day,temp"] + [f"{d.date()},{12 + i % 5}" for i, d in enumerate(pd.date_range("2023-05-01", periods=20))]
    write(tmp_path / "data/train.csv", "\n".join(train) + "\n")
    write(tmp_path / "data/test.csv", "\n".join(test) + "\n")
    card = derive_task_card(tmp_path, FILES, "Forecast `load`. Metric: MAE.")
    assert card.time_column == "day" and card.group_column is None
    times = [d.timestamp() for d in days]
    split = make_split([str(i) for i in range(120)], False, 0, 0.1, times=times)
    held = set(split.holdout_rows)
    assert min(held) > max(i for i in range(120) if i not in held)  # the last days
    kept = [i for i in range(120) if i not in held]
    by_fold: dict[int, list[int]] = {}
    for n, i in enumerate(kept):
        by_fold.setdefault(split.folds[n], []).append(i)
    assert -1 in by_fold and sorted(by_fold)[1:] == [0, 1, 2, 3, 4]
    for fold in range(5):  # each validation fold lies after every row a model for it is fit on
        assert min(by_fold[fold]) > max(i for f, rows in by_fold.items() if f < fold for i in rows)
    assert read_task(tmp_path, FILES, "", card).drop_time  # a date string is not a feature as it stands


# ------------------------------------------------------------------ several tables


def hospital(root: Path) -> Path:
    """train = subject,death; the features are in patients.csv (one row each) and labs.csv (many rows each)."""
    rng = np.random.default_rng(3)
    subjects = list(range(1, 121))
    age = {s: int(rng.integers(30, 90)) for s in subjects}
    death = {s: int(age[s] > 65) for s in subjects}
    write(root / "data/train.csv", "subject,death\n" + "".join(f"{s},{death[s]}\n" for s in subjects[:100]))
    write(root / "data/test.csv", "subject\n" + "".join(f"{s}\n" for s in subjects[100:]))
    write(root / "data/patients.csv", "subject,age,sex\n" + "".join(f"{s},{age[s]},{'MF'[s % 2]}\n" for s in subjects))
    labs = "".join(f"{s},{round(float(rng.normal(age[s] / 10, 1)), 3)}\n" for s in subjects for _ in range(3))
    write(root / "data/labs.csv", "subject,lactate\n" + labs)
    write(
        root / "task.md",
        "Predict death (accuracy). Features are in patients.csv and labs.csv, joined on subject.\nSubmit subject,death\n",
    )
    return root


def test_extra_tables_are_on_the_card_and_the_offline_script_joins_them(tmp_path):
    root = hospital(tmp_path / "p")
    files = ["data/labs.csv", "data/patients.csv", *FILES]
    card = derive_task_card(root, files, (root / "task.md").read_text())
    assert card.extra_tables == [
        {"file": "data/labs.csv", "key": "subject"},
        {"file": "data/patients.csv", "key": "subject"},
    ]
    assert card.id_columns == ["subject"]
    code = (
        OfflineCoder(root, files, card=card)
        .draft(TaskContext(task="", data_preview="", memory=""), lambda _: None)
        .code
    )
    ws = tmp_path / "ws"
    for rel in files:
        write(ws / "input" / rel, (root / rel).read_bytes())
    write(ws / "solution.py", code)
    r = subprocess.run([sys.executable, "solution.py"], cwd=ws, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "100 training rows, 6 features" in r.stdout  # 3 lab aggregates + rows, age, sex
    assert len(pd.read_csv(ws / "submission.csv")) == 20


def test_several_tables_the_offline_coder_cannot_join_are_refused_before_the_run(tmp_path, capsys):
    root = hospital(tmp_path / "p")
    for name in ("patients", "labs"):  # no shared column any more
        path = root / f"data/{name}.csv"
        path.write_text(path.read_text().replace("subject", "patient_ref", 1))
    git(root, "init", "-q", "-b", "main")
    assert main([str(root), "--headless", "--coder", "offline", "--new"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--coder llm" in err and "no feature column" in err, err


# ------------------------------------------------------------------ comparable validation, big tables


def test_every_offline_recipe_scores_on_all_five_run_folds_and_says_so(tmp_path):
    root = penguins(tmp_path)
    coder = OfflineCoder(root, FILES)
    ctx = TaskContext(task="", data_preview="", memory="", folds_file="./input/folds.csv")
    codes = [coder.draft(ctx, lambda _: None).code for _ in range(6)]
    assert {parse_recipe(c).model for c in codes} == {  # type: ignore[union-attr]
        "linear",
        "random_forest",
        "hist_gradient_boosting",
        "extra_trees",
        "knn",
        "gradient_boosting",
    }
    for code in codes:
        assert "for fold in sorted(np.unique(fold_of))" in code and "Validation folds:" in code
    assert validation_folds("fold 0: 1\nValidation folds: 0,1,2,3,4\nValidation metric: 0.5\n") == [0, 1, 2, 3, 4]
    assert validation_folds("Validation metric: 0.5\n") is None


def test_a_big_table_gets_fewer_trees_all_cores_and_no_recipe_that_cannot_finish(tmp_path):
    root = penguins(tmp_path)
    spec = read_task(root, FILES, "")
    spec.n_rows, spec.task_type = 43_000, "regression"
    coder = OfflineCoder(root, FILES)
    coder._spec = ("", spec)
    ctx = TaskContext(task="", data_preview="", memory="", timeout=600, cpus=2)
    drafts = [parse_recipe(coder.draft(ctx, lambda _: None).code) for _ in range(6)]
    forest = next(d for d in drafts if d and d.model == "random_forest")
    assert MIN_TREES <= forest.params["n_estimators"] < 300 and forest.params["n_jobs"] == 2
    boosting = next(d for d in drafts if d and d.model == "hist_gradient_boosting")
    assert boosting.params["early_stopping"] is True
    spec.n_rows = 2_000_000  # far too big for forests in 60 s: they are not drafted
    coder = OfflineCoder(root, FILES)
    coder._spec = ("", spec)
    short = TaskContext(task="", data_preview="", memory="", timeout=60, cpus=1)
    models = [parse_recipe(coder.draft(short, lambda _: None).code).model for _ in range(4)]  # type: ignore[union-attr]
    assert "random_forest" not in models and "extra_trees" not in models and "gradient_boosting" not in models
    assert not fits_in_time(forest, spec, 1, 60)


# ------------------------------------------------------------------ end to end


@pytest.mark.timeout(600)
def test_the_holdout_on_a_grouped_table_is_in_line_with_a_hidden_test_of_new_groups(tmp_path):
    root, answers = panel(tmp_path / "p")
    git(root, "init", "-q", "-b", "main")
    settings = resolve(None, dict(steps=2, num_drafts=2, coder="offline", seed=1, timeout=120, workers=1))
    events = Recorder()
    engine = build_engine(root, settings, resume=False, listener=events)
    finished = engine.run()
    (card,) = [e.card for e in events.of(ev.TaskCardReady)]
    assert card.group_column == "man"
    assert finished.best_holdout is not None
    best = write(tmp_path / "best.csv", git(root, "show", f"{finished.best_branch}:outputs/submission.csv"))
    merged = pd.read_csv(answers).merge(pd.read_csv(best), on=["man", "year"], suffixes=("", "_pred"))
    assert len(merged) == len(pd.read_csv(answers))
    hidden = math.sqrt(float(((merged["wage"] - merged["wage_pred"]) ** 2).mean()))
    assert abs(finished.best_holdout - hidden) / hidden < 0.15, (finished.best_holdout, hidden)

    # the export runs on the project's data as it is, and --refit fits on every training row
    dest, node = export_node(Project.open(root), "best", tmp_path / "out", settings=settings)
    train_rows = len(pd.read_csv(root / "data/train.csv"))
    folds = pd.read_csv(dest / "input/folds.csv")
    assert list(folds["row"]) == list(range(train_rows))  # the whole file, not the run's reduced one
    assert (dest / "input/data/train.csv").resolve() == (root / "data/train.csv").resolve()
    assert (dest / "submission_from_run.csv").read_bytes() == git(
        root, "show", f"{finished.best_branch}:outputs/submission.csv"
    ).encode()
    assert (dest / "submission.csv").read_bytes() != (dest / "submission_from_run.csv").read_bytes()
    r = subprocess.run([sys.executable, "solution.py"], cwd=dest, capture_output=True, text=True, timeout=200)
    assert r.returncode == 0 and "Validation folds: 0,1,2,3,4" in r.stdout, r.stderr[-2000:]
    assert f"{train_rows} training rows" in r.stdout


# ------------------------------------------------------------------ nothing created before the inputs are checked


def test_a_resumed_run_re_derives_a_card_that_no_longer_fits_the_data(tmp_path):
    root = penguins(tmp_path / "p")
    run_dir = root / ".aide/runs/r1"
    stale = {**card_to_dict(derive_task_card(root, FILES, (root / "task.md").read_text())), "target": "sex_old"}
    write(run_dir / "task_card.json", json.dumps(stale))
    settings = resolve(None, dict(coder="offline"))
    resolved = resolve_card(Project.open(root), FILES, settings, run_dir, offline=True)
    assert resolved.card is not None and resolved.card.target == "Sex"
    assert "no longer fits the data" in resolved.notice and "'sex_old'" in resolved.notice
    fitting = {**stale, "target": "Sex"}
    write(run_dir / "task_card.json", json.dumps(fitting))
    kept = resolve_card(Project.open(root), FILES, settings, run_dir, offline=True)
    assert kept.source == "saved" and kept.notice == ""


def test_a_run_that_never_finished_a_node_does_not_block_the_next_start(tmp_path, capsys):
    root = penguins(tmp_path / "p")
    git(root, "init", "-q", "-b", "main")
    write(root / ".aide/runs/20200101-000000/run.json", json.dumps({"status": "running"}))
    write(root / ".aide/runs/20200101-000000/journal.jsonl", '{"type":"start","id":1}\n')
    assert main([str(root), "--headless", "--coder", "offline", "--steps", "1", "--workers", "1"]) == 0
    assert "run 20200101-000000 never finished a node; starting a new run" in capsys.readouterr().err


def test_a_project_where_aide_cannot_write_exits_2_with_the_fix(tmp_path, capsys):
    root = penguins(tmp_path / "p")
    write(root / ".aide", "not a directory")  # as root, a chmod would not stop the write; this does
    assert main([str(root), "--headless", "--coder", "offline", "--new"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot write .aide/ here" in err and "make the project writable" in err


# ------------------------------------------------------------------ identical code


def test_identical_code_is_not_run_twice_and_the_reuse_is_marked(tmp_path):
    project = make_project(tmp_path / "p", dirty=False)
    code = WRITE_SUBMISSION + "import uuid\nprint('run', uuid.uuid4())\nprint('Validation metric: 1.5')\n"
    events = Recorder()
    engine = build_engine(
        project, resolve(None, dict(steps=2, coder="offline", workers=1, timeout=60)), resume=False, listener=events
    )
    engine.submit(ev.RunCode(None, code))
    engine.submit(ev.RunCode(None, code))
    engine.run()
    finished = events.of(ev.NodeFinished)
    first, second = [e.node for e in finished]
    assert first.status == "ok" and first.reused_from is None
    assert second.reused_from == first.id and second.status == "ok" and second.metric == 1.5
    assert second.output == first.output  # the same random token: it did not run again
    assert second.review_summary.startswith(f"Same script as node #{first.id}")
    assert not [e for e in events.of(ev.OutputLine) if e.node_id == second.id]
    branches = [e.branch for e in finished]
    assert git(project, "show", f"{branches[1]}:outputs/submission.csv") == git(
        project, "show", f"{branches[0]}:outputs/submission.csv"
    )
