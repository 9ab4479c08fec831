"""The hard rules beat whatever the review says, and the printed metric line beats its number."""

import math

import pytest

from aide_tui.search.coder import Review
from aide_tui.search.node import ExecInfo
from aide_tui.search.verdict import coerce_metric, decide, fix_direction

OK_EXEC = ExecInfo(exit_code=0)


def review(metric, is_bug=False):
    return Review(is_bug=is_bug, metric=metric, summary="s", direction="maximize")


@pytest.mark.parametrize("metric", [float("nan"), float("inf"), -math.inf, "abc", None, True])
def test_non_finite_or_non_number_metric_is_buggy(metric):
    assert decide(OK_EXEC, review(metric), "")[:2] == ("buggy", None)


def test_int_and_numeric_string_metrics_are_numbers():
    assert decide(OK_EXEC, review(3), "Validation metric: 3") == ("ok", 3.0, "")
    assert coerce_metric(" 0.75 ") == 0.75


@pytest.mark.parametrize(
    "info,status",
    [
        (ExecInfo(exit_code=1, exc_type="ValueError"), "buggy"),
        (ExecInfo(exit_code=None, killed_reason="timeout"), "timeout"),
        (ExecInfo(exit_code=None, killed_reason="memory limit exceeded: 100 MiB"), "memory"),
    ],
)
def test_crash_timeout_memory_are_buggy_whatever_the_review_says(info, status):
    assert decide(info, review(0.9), "Validation metric: 0.9")[:2] == (status, None)


def test_review_bug_flag_wins():
    assert decide(OK_EXEC, review(0.9, is_bug=True), "Validation metric: 0.9")[0] == "buggy"


def test_direction_is_fixed_once():
    assert fix_direction(None, "minimize") == "minimize"
    assert fix_direction("minimize", "maximize") == "minimize"


def test_the_printed_line_wins_and_the_summary_says_so():
    status, metric, note = decide(OK_EXEC, review(0.91), "fold 1: 0.9\nValidation metric: 0.89\n")
    assert (status, metric) == ("ok", 0.89)
    assert note == "review said 0.91; the script printed 0.89"


def test_the_last_printed_line_counts():
    output = "Validation metric: 0.5\ntraining more\nValidation metric: 0.75\n"
    assert decide(OK_EXEC, review(0.5), output)[:2] == ("ok", 0.75)


@pytest.mark.parametrize(
    "output",
    ["Validation metric: nan", "Validation metric: inf", "Validation metric: 0.8 (rmse)", "validation score: 0.8", ""],
)
def test_a_line_that_is_not_an_exact_finite_number_does_not_count(output):
    # the review's reading is used, and the note says there was no exact line
    status, metric, note = decide(OK_EXEC, review(0.7), output)
    assert (status, metric) == ("ok", 0.7) and "no exact 'Validation metric: <number>' line" in note


def test_a_failed_review_leaves_the_printed_line_to_decide():
    status, metric, note = decide(OK_EXEC, None, "Validation metric: -1.5e-2\n")
    assert (status, metric) == ("ok", -0.015) and "printed metric -0.015 decides" in note


@pytest.mark.parametrize(
    "info,output",
    [
        (OK_EXEC, "done\n"),
        (OK_EXEC, "Validation metric: nan\n"),
        (ExecInfo(exit_code=1, exc_type="KeyError"), "Validation metric: 0.9\n"),
    ],
)
def test_a_failed_review_without_a_valid_line_or_clean_exit_is_buggy(info, output):
    status, metric, note = decide(info, None, output)
    assert (status, metric) == ("buggy", None) and note


def test_the_review_keeps_the_bug_flag_even_with_a_printed_line():
    assert decide(OK_EXEC, review(0.9, is_bug=True), "Validation metric: 0.9")[::2] == (
        "buggy",
        "the review found a bug",
    )


def test_agreeing_numbers_add_no_note():
    assert decide(OK_EXEC, review(0.8731), "Validation metric: 0.8731") == ("ok", 0.8731, "")
