"""The card's metric on a submission, computed by scikit-learn in aide-tui's own process.

The script under test only writes predictions; the number that ranks it is
computed here, against labels the script never saw.  The submission is read
through `safe_read` (never a symlink or a hard link to the labels).  Rows are matched on the
card's id columns when both files have them, else by position.  A single
prediction column is the target's column (or the one non-id column); for the
probability metrics on more than two classes, one column per class, named
`<class>` or `<target>_<class>`.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

from ..run import safe_read
from ..search.task_card import TaskCard
from .submission_check import _canonical, submission_cap

REGRESSION = {"rmse", "rmsle", "mse", "mae", "r2"}


class ScoreError(Exception):
    """The submission cannot be scored; the message says why."""


RESAMPLES = 100  # bootstrap draws for the holdout's spread: enough for a standard deviation to ±10 %


def score_submission(submission: Path, labels: Path, card: TaskCard) -> float:
    return score_with_spread(submission, labels, card, resamples=0)[0]


def score_with_spread(
    submission: Path, labels: Path, card: TaskCard, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float | None]:
    """The metric on the holdout, and its spread: the standard deviation over bootstrap
    resamples of the holdout rows, i.e. how far another fold of the same size would move
    it (None when no resample could be scored, e.g. a class missing from every draw)."""
    import numpy as np
    import pandas as pd

    try:
        data = safe_read.read_bytes(submission.parent, submission.name, submission_cap(labels, per_byte=256))
        predicted = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except safe_read.RefusedRead as exc:
        raise ScoreError(f"{submission.name} is not read: {exc.strerror}") from None
    except Exception as exc:  # noqa: BLE001 - pandas raises many kinds on a bad file
        raise ScoreError(f"{submission.name} cannot be read ({type(exc).__name__}: {exc})") from None
    truth = pd.read_csv(labels, dtype=str, keep_default_na=False)
    ids = [c for c in card.id_columns if c in truth.columns and c in predicted.columns]
    pred_cols = [c for c in predicted.columns if c not in ids]
    if ids:
        predicted = predicted.assign(**{c: predicted[c].map(_canonical) for c in ids})
        truth = truth.assign(**{c: truth[c].map(_canonical) for c in ids})
        merged = truth.merge(
            predicted.drop_duplicates(ids), on=ids, how="left", suffixes=("", "__pred"), indicator=True
        )
        lacking = int((merged["_merge"] != "both").sum())
        if lacking:
            raise ScoreError(f"{submission.name} has no prediction for {lacking} of the {len(truth)} holdout rows")
        aligned = merged.rename(columns={f"{card.target}__pred": "__prediction"})
        if card.target in pred_cols:
            pred_cols = ["__prediction" if c == card.target else c for c in pred_cols]
    else:
        if len(predicted) != len(truth):
            raise ScoreError(f"{submission.name} has {len(predicted)} rows, the holdout has {len(truth)}")
        aligned = pd.concat(
            [
                truth.reset_index(drop=True),
                predicted.rename(columns={card.target: "__prediction"}).reset_index(drop=True),
            ],
            axis=1,
        )
        pred_cols = ["__prediction" if c == card.target else c for c in pred_cols]
    y_true = aligned[card.target]
    try:
        value = _metric(card.metric, y_true, aligned, pred_cols, card.target, np, pd)
    except ScoreError:
        raise
    except (ValueError, TypeError) as exc:
        raise ScoreError(f"{card.metric} cannot be computed on {submission.name}: {exc}") from None
    if not math.isfinite(value):
        raise ScoreError(f"{card.metric} on {submission.name} is not a finite number ({value})")
    return value, _spread(card, aligned, pred_cols, resamples, seed, np, pd)


def _spread(card: TaskCard, aligned, pred_cols: list[str], resamples: int, seed: int, np, pd) -> float | None:
    if resamples <= 0 or len(aligned) < 2:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        draw = aligned.iloc[rng.integers(0, len(aligned), len(aligned))].reset_index(drop=True)
        try:
            value = _metric(card.metric, draw[card.target], draw, pred_cols, card.target, np, pd)
        except (ScoreError, ValueError, TypeError):
            continue  # e.g. one class only in this draw
        if math.isfinite(value):
            values.append(value)
    return float(np.std(values, ddof=1)) if len(values) >= 2 else None


def _single(aligned, pred_cols: list[str]):
    if "__prediction" in pred_cols:
        return aligned["__prediction"]
    if len(pred_cols) == 1:
        return aligned[pred_cols[0]]
    raise ScoreError(f"cannot tell the prediction column among {', '.join(pred_cols)}")


def _numbers(series, what: str, pd):
    values = pd.to_numeric(series.str.strip(), errors="coerce")
    bad = int(values.isna().sum())
    if bad:
        raise ScoreError(f"{bad} {what} are not numbers (e.g. {series[values.isna()].iloc[0]!r})")
    return values.to_numpy(dtype=float)


def _proba_matrix(aligned, pred_cols: list[str], classes: list[str], target: str, pd):
    """One probability column per class, in `classes` order."""
    by_class = {}
    for col in pred_cols:
        name = col[len(target) + 1 :] if col.startswith(f"{target}_") else col
        by_class[_canonical(name)] = col
    missing = [c for c in classes if c not in by_class]
    if missing:
        raise ScoreError(f"no probability column for class {missing[0]!r} (columns: {', '.join(pred_cols)})")
    import numpy as np

    return np.column_stack([_numbers(aligned[by_class[c]], "probabilities", pd) for c in classes])


def _metric(metric: str, y_true, aligned, pred_cols: list[str], target: str, np, pd) -> float:
    from sklearn import metrics as m

    if metric in REGRESSION:
        truth = _numbers(y_true, "holdout labels", pd)
        pred = _numbers(_single(aligned, pred_cols), "predictions", pd)
        if metric == "rmse":
            return float(np.sqrt(m.mean_squared_error(truth, pred)))
        if metric == "mse":
            return float(m.mean_squared_error(truth, pred))
        if metric == "rmsle":
            return float(np.sqrt(m.mean_squared_log_error(truth, np.clip(pred, 0, None))))
        if metric == "mae":
            return float(m.mean_absolute_error(truth, pred))
        return float(m.r2_score(truth, pred))
    truth = y_true.map(_canonical)
    classes = sorted(truth.unique(), key=_class_order)
    if metric in ("accuracy", "f1", "macro_f1"):
        pred = _single(aligned, pred_cols).map(_canonical)
        if metric == "accuracy":
            return float(m.accuracy_score(truth, pred))
        if metric == "f1" and len(classes) == 2:
            return float(m.f1_score(truth, pred, pos_label=classes[-1], labels=classes))
        return float(m.f1_score(truth, pred, average="macro", labels=classes))
    if metric in ("roc_auc", "log_loss"):
        if len(classes) == 2 and ("__prediction" in pred_cols or len(pred_cols) == 1):
            positive = _numbers(_single(aligned, pred_cols), "probabilities", pd)
            binary = (truth == classes[-1]).to_numpy(dtype=int)
            if metric == "roc_auc":
                return float(m.roc_auc_score(binary, positive))
            return float(m.log_loss(binary, np.clip(positive, 1e-15, 1 - 1e-15), labels=[0, 1]))
        matrix = _proba_matrix(aligned, pred_cols, classes, target, pd)
        if metric == "roc_auc":
            return float(m.roc_auc_score(truth, matrix, multi_class="ovr", labels=classes))
        matrix = np.clip(matrix, 1e-15, 1.0)
        return float(m.log_loss(truth, matrix / matrix.sum(axis=1, keepdims=True), labels=classes))
    raise ScoreError(f"metric {metric!r} is not one aide-tui computes")


def _class_order(label: str) -> tuple[int, float, str]:
    """Numbers in numeric order, then text: the positive class of 0/1 or no/yes is the last."""
    try:
        return (0, float(label), "")
    except ValueError:
        return (1, 0.0, label)
