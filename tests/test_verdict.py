"""The hard rules beat whatever the review says."""

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
    assert decide(OK_EXEC, review(metric))[:2] == ("buggy", None)


def test_int_and_numeric_string_metrics_are_numbers():
    assert decide(OK_EXEC, review(3)) == ("ok", 3.0, "")
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
    assert decide(info, review(0.9))[:2] == (status, None)


def test_review_bug_flag_wins():
    assert decide(OK_EXEC, review(0.9, is_bug=True))[0] == "buggy"


def test_direction_is_fixed_once():
    assert fix_direction(None, "minimize") == "minimize"
    assert fix_direction("minimize", "maximize") == "minimize"
