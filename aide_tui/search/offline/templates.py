"""Render a recipe into a complete, readable scikit-learn script.

The scripts are meant to be read and edited by the user, so they are written
the way a person would: a docstring, constants at the top, one small function
per step, and `main()`.  Every script prints `Validation metric: <number>` as
its last line and writes `submission.csv` when there is a test file.
"""

from __future__ import annotations

import json
from typing import Any

from .recipe import MODELS, Recipe
from .task_reader import TaskSpec

_METRIC_CODE = {
    "rmse": ("mean_squared_error", "return float(np.sqrt(mean_squared_error(y_true, y_pred)))"),
    "mse": ("mean_squared_error", "return float(mean_squared_error(y_true, y_pred))"),
    "rmsle": (
        "mean_squared_log_error",
        "return float(np.sqrt(mean_squared_log_error(y_true, np.clip(y_pred, 0, None))))",
    ),
    "mae": ("mean_absolute_error", "return float(mean_absolute_error(y_true, y_pred))"),
    "r2": ("r2_score", "return float(r2_score(y_true, y_pred))"),
    "accuracy": ("accuracy_score", "return float(accuracy_score(y_true, y_pred))"),
    "roc_auc": ("roc_auc_score", 'return float(roc_auc_score(y_true, y_pred, multi_class="ovr"))'),
    "log_loss": ("log_loss", "return float(log_loss(y_true, y_pred))"),
    "macro_f1": ("f1_score", 'return float(f1_score(y_true, y_pred, average="macro"))'),
    "f1": (
        "f1_score",
        "labels = sorted(pd.unique(y_true))\n"
        "    if len(labels) == 2:\n"
        "        return float(f1_score(y_true, y_pred, pos_label=labels[-1]))\n"
        '    return float(f1_score(y_true, y_pred, average="macro"))',
    ),
}


def _lit(value: Any) -> str:
    """A Python literal with double-quoted strings, as the rest of the script is written."""
    if isinstance(value, list):
        return "[" + ", ".join(_lit(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _docstring_text(text: str) -> str:
    """Text from task.md made safe inside a triple-quoted docstring (no escapes, no closing quotes)."""
    return text.replace("\\", "/").replace('"', "'")


def _estimator(model: str, params: dict[str, Any], task_type: str) -> str:
    spec = MODELS[model]
    args = [f"{k}={_lit(v)}" for k, v in params.items()]
    if spec.seeded:
        args.append("random_state=SEED")
    return f"{spec.cls(task_type)}({', '.join(args)})"


def describe(recipe: Recipe) -> str:
    """One line a person would use for the approach, e.g. for plans and docstrings."""
    name = MODELS[recipe.model].display
    if recipe.blend_with:
        name = f"average of a {name} and a {MODELS[recipe.blend_with].display}"
    bits = [f"{recipe.impute} imputation"]
    if recipe.missing_indicators:
        bits.append("missing-value flags")
    if recipe.scaler:
        bits.append(f"{recipe.scaler} scaling")
    bits.append("one-hot categories" if recipe.encoding == "onehot" else "ordinal-coded categories")
    if recipe.log_target:
        bits.append("log-transformed target")
    return f"{name} with {', '.join(bits)}"


def render(spec: TaskSpec, recipe: Recipe, seed: int) -> str:
    """The full script for `recipe` on `spec`."""
    tt = spec.task_type
    classification = tt == "classification"
    models = [recipe.model] + ([recipe.blend_with] if recipe.blend_with else [])
    validation = validation_words(recipe, spec)
    direction = "higher is better" if spec.direction == "maximize" else "lower is better"

    imports: dict[str, set[str]] = {
        "sklearn.compose": {"ColumnTransformer"},
        "sklearn.impute": {"SimpleImputer"},
        "sklearn.pipeline": {"Pipeline"},
        "sklearn.base": {"clone"},
        "sklearn.metrics": {_METRIC_CODE[spec.metric][0]},
        "sklearn.preprocessing": {"OneHotEncoder" if recipe.encoding == "onehot" else "OrdinalEncoder"},
    }
    if recipe.scaler:
        imports["sklearn.preprocessing"].add("StandardScaler" if recipe.scaler == "standard" else "RobustScaler")
    if spec.folds_path:
        pass  # the run's folds.csv: no splitter needed
    elif spec.time_column:
        imports["sklearn.model_selection"] = {"TimeSeriesSplit"}
    elif spec.group_column:
        imports["sklearn.model_selection"] = {"GroupKFold"}
    elif recipe.validation == "cv":
        imports["sklearn.model_selection"] = {"StratifiedKFold" if classification else "KFold"}
    else:
        imports["sklearn.model_selection"] = {"train_test_split"}
    for m in models:
        imports.setdefault(MODELS[m].module, set()).add(MODELS[m].cls(tt))
    if recipe.blend_with:
        imports["sklearn.ensemble"] = imports.get("sklearn.ensemble", set()) | {
            "VotingClassifier" if classification else "VotingRegressor"
        }
    if recipe.log_target and not classification:
        imports["sklearn.compose"].add("TransformedTargetRegressor")

    # The recipe comment goes after the docstring, never on line 1 or 2: Python reads a
    # comment there matching `coding[:=]` (e.g. "encoding": "ordinal") as the file's
    # source encoding (PEP 263) and refuses to run it.
    out: list[str] = [
        f'"""{_docstring_text(spec.title)}: {describe(recipe)}.\n\n'
        f"Validation: {validation}; metric: {spec.metric_name} ({direction}).\n"
        + (
            f"Writes submission.csv ({_docstring_text(', '.join([*spec.id_columns, spec.target]))}) for the test rows.\n"
            if spec.test_path
            else ""
        )
        + '"""',
        "",
        recipe.to_comment(),
        "",
    ]
    out.append("import numpy as np")
    out.append("import pandas as pd")
    for module in sorted(imports):
        out.append(f"from {module} import {', '.join(sorted(imports[module]))}")
    out.append("")
    out.append(f"TRAIN_PATH = {_lit(spec.train_path)}")
    out.append(f"TEST_PATH = {_lit(spec.test_path)}")
    out.append(f"TARGET = {_lit(spec.target)}")
    out.append(f"ID_COLUMNS = {_lit(spec.id_columns)}")
    out.append(f"TRAIN_READ = {_options(spec.train_read)}  # delimiter and encoding of the file as it is")
    if spec.test_path:
        out.append(f"TEST_READ = {_options(spec.test_read)}")
    if spec.group_column:
        out.append(f"GROUP_COLUMN = {_lit(spec.group_column)}  # whole groups are validated together; never a feature")
    if spec.time_column:
        out.append(f"TIME_COLUMN = {_lit(spec.time_column)}  # validation is on later periods than training")
    if spec.extra_tables:
        tables = ",\n".join(
            f"    ({_lit(path)}, {_lit(key)}, {_options(read)})" for path, key, read in spec.extra_tables
        )
        out.append(f"EXTRA_TABLES = [  # (file, join key, read options): features kept in other tables\n{tables},\n]")
    if spec.folds_path:
        out.append(f"FOLDS_PATH = {_lit(spec.folds_path)}  # the run's fixed folds: every solution scores on them")
    out.append(f"SEED = {seed}")
    out.append("")
    out.append("")
    out.append(_load(spec))
    if recipe.defensive:
        out.append(_RESOLVE_TARGET)
    out.append(_split(spec))
    out.append(_preprocessor(recipe))
    out.append(_model(recipe, tt))
    out.append(
        f'def score(y_true, y_pred):\n    """{spec.metric_name}: {direction}."""\n'
        f"    {_METRIC_CODE[spec.metric][1]}\n\n"
    )
    out.append(_PREDICT_PROBA if spec.uses_proba else _PREDICT)
    out.append(_validate_on_folds(spec) if spec.folds_path else _validate(recipe, spec, classification))
    if spec.test_path:
        out.append(_SUBMISSION)
    out.append(_main(recipe, bool(spec.test_path)))
    return "\n".join(out).rstrip() + "\n"


def _options(options: dict[str, str]) -> str:
    return "{" + ", ".join(f"{_lit(k)}: {_lit(v)}" for k, v in options.items()) + "}"


def _load(spec: TaskSpec) -> str:
    test = "pd.read_csv(TEST_PATH, **TEST_READ) if TEST_PATH else None" if spec.test_path else "None"
    if not spec.extra_tables:
        return f'''def load_data():
    """Read the training data and, when there is one, the test set."""
    train = pd.read_csv(TRAIN_PATH, **TRAIN_READ)
    test = {test}
    return train, test

'''
    return f'''def join_tables(frame):
    """Left-join each extra table on its key, keeping the row order and index (the folds refer to it).

    A table with several rows per key is summarised first: the mean, min and max of its
    numbers and its row count per key.
    """
    for path, key, options in EXTRA_TABLES:
        extra = pd.read_csv(path, **options)
        stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        if extra[key].duplicated().any():
            grouped = extra.groupby(extra[key].astype(str))
            numeric = [c for c in extra.select_dtypes(include="number").columns if c != key]
            summary = grouped[numeric].agg(["mean", "min", "max"])
            summary.columns = [f"{{column}}_{{how}}" for column, how in summary.columns]
            summary["rows"] = grouped.size()
            extra = summary
        else:
            extra = extra.set_index(extra[key].astype(str)).drop(columns=[key])
        extra.columns = [f"{{stem}}_{{column}}" for column in extra.columns]
        frame = frame.assign(__join_key=frame[key].astype(str)).join(extra, on="__join_key")
        frame = frame.drop(columns="__join_key")
    return frame


def load_data():
    """Read the training data and, when there is one, the test set, with the extra tables joined."""
    train = join_tables(pd.read_csv(TRAIN_PATH, **TRAIN_READ))
    test = {test}
    if test is not None:
        test = join_tables(test)
    return train, test

'''


_RESOLVE_TARGET = '''def resolve_target(train, test):
    """TARGET if the header has it; otherwise the one column the test set lacks."""
    if TARGET in train.columns:
        return TARGET
    if test is not None:
        missing = [c for c in train.columns if c not in test.columns]
        if len(missing) == 1:
            return missing[0]
    return train.columns[-1]

'''


def _split(spec: TaskSpec) -> str:
    not_features = ["ID_COLUMNS"]
    why = "the identifiers, which carry no signal"
    if spec.group_column:
        not_features.append("[GROUP_COLUMN]")
        why = "the identifiers and the group column (a model would learn the groups, not the task)"
    if spec.time_column and spec.drop_time:
        not_features.append("[TIME_COLUMN]")
        why += "; the dates as text"
    return f'''def split_features(train, target):
    """Separate the target and drop {why}."""
    train = train.dropna(subset=[target])
    dropped = [target] + [c for c in {" + ".join(not_features)} if c in train.columns]
    return train.drop(columns=dropped), train[target]

'''


def _preprocessor(recipe: Recipe) -> str:
    indicator = ", add_indicator=True" if recipe.missing_indicators else ""
    numeric = [f'("impute", SimpleImputer(strategy={_lit(recipe.impute)}{indicator}))']
    if recipe.scaler:
        numeric.append(f'("scale", {"StandardScaler" if recipe.scaler == "standard" else "RobustScaler"}())')
    if recipe.encoding == "onehot":
        encoder = 'OneHotEncoder(handle_unknown="ignore", max_categories=30, sparse_output=False)'
    else:
        encoder = 'OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)'
    numeric_lines = "".join(f"        {step},\n" for step in numeric)
    return f'''def build_preprocessor(features):
    """Impute the numbers, impute and encode the text categories; columns come from the header."""
    numeric = features.select_dtypes(include="number").columns.tolist()
    categorical = [c for c in features.columns if c not in numeric]
    numeric_steps = Pipeline([
{numeric_lines}    ])
    categorical_steps = Pipeline([
        ("impute", SimpleImputer(strategy="most_frequent")),
        ("encode", {encoder}),
    ])
    return ColumnTransformer([
        ("numeric", numeric_steps, numeric),
        ("categorical", categorical_steps, categorical),
    ])

'''


def _model(recipe: Recipe, task_type: str) -> str:
    main = _estimator(recipe.model, recipe.params, task_type)
    spec = MODELS[recipe.model]
    doc = f"{spec.display[0].upper()}{spec.display[1:]}: {spec.why}."
    if recipe.blend_with:
        other = recipe.blend_with
        second = _estimator(other, MODELS[other].defaults(task_type), task_type)
        voting = "VotingClassifier" if task_type == "classification" else "VotingRegressor"
        soft = ', voting="soft"' if task_type == "classification" else ""
        doc = "Average of two model families whose errors differ, so the blend is steadier than either."
        body = (
            f"    model = {voting}([\n"
            f"        ({_lit(recipe.model)}, {main}),\n"
            f"        ({_lit(other)}, {second}),\n"
            f"    ]{soft})\n"
        )
    else:
        body = f"    model = {main}\n"
    if recipe.log_target and task_type == "regression":
        body += (
            "    # Fit on log1p(target): errors on large values stop dominating the fit.\n"
            "    model = TransformedTargetRegressor(regressor=model, func=np.log1p, inverse_func=np.expm1)\n"
        )
    return f'def build_model():\n    """{doc}"""\n{body}    return model\n\n'


_PREDICT = '''def predict(model, features):
    """Predictions in the form the metric scores."""
    return model.predict(features)

'''

_PREDICT_PROBA = '''def predict(model, features):
    """Class probabilities: the positive class's for two classes, all columns otherwise."""
    proba = model.predict_proba(features)
    return proba[:, 1] if proba.shape[1] == 2 else proba

'''


def validation_words(recipe: Recipe, spec: TaskSpec) -> str:
    """How the script validates, as its docstring and the plan say it."""
    if spec.folds_path:
        if spec.time_column:
            return f"the run's fixed time-ordered folds on {spec.time_column} (each fold trained on earlier ones)"
        if spec.group_column:
            return f"the run's 5 fixed folds, whole {spec.group_column} groups per fold"
        return "the run's 5 fixed folds"
    if spec.time_column:
        return f"5 time-ordered splits on {spec.time_column}"
    if spec.group_column:
        return f"5 group folds on {spec.group_column}"
    return "5-fold cross-validation" if recipe.validation == "cv" else "a 20% hold-out split"


def _validate_on_folds(spec: TaskSpec) -> str:
    """Validation on ./input/folds.csv, all folds for every recipe so every metric is comparable.

    Rows keep their file position as index, so dropped rows do not shift the fold lookup.
    Time-ordered folds: fold k is scored by a model fit on the rows of lower folds (fold -1
    is training-only), never on later rows.
    """
    if spec.time_column:
        which, train_rows = "sorted(f for f in np.unique(fold_of) if f >= 0)", "fold_of < fold"
        doc = "Mean score over the run's time-ordered folds, each fit on earlier rows only: comparable with every other solution."
    else:
        which, train_rows = "sorted(np.unique(fold_of))", "fold_of != fold"
        doc = "Mean score over the run's 5 fixed folds: comparable with every other solution."
    return f'''def validate(pipeline, features, target, train):
    """{doc}"""
    fold_of = pd.read_csv(FOLDS_PATH).set_index("row")["fold"].loc[features.index].to_numpy()
    scores, used = [], []
    for fold in {which}:
        valid, fit_rows = fold_of == fold, {train_rows}
        model = clone(pipeline).fit(features[fit_rows], target[fit_rows])
        fold_score = score(target[valid], predict(model, features[valid]))
        print(f"fold {{fold}}: {{fold_score:.6f}}")
        scores.append(fold_score)
        used.append(str(fold))
    print(f"Validation folds: {{','.join(used)}}")
    return float(np.mean(scores))

'''


def _validate(recipe: Recipe, spec: TaskSpec, classification: bool) -> str:
    if spec.time_column or spec.group_column:
        if spec.time_column:
            doc = "Mean score over 5 time-ordered splits: each fit on earlier periods, scored on the next."
            setup = (
                '    order = train.loc[features.index, TIME_COLUMN].sort_values(kind="stable").index\n'
                "    features, target = features.loc[order], target.loc[order]\n"
                "    splits = TimeSeriesSplit(n_splits=5).split(features)\n"
            )
        else:
            doc = "Mean score over 5 folds that keep each group whole, as the unseen test groups will be."
            setup = (
                "    splits = GroupKFold(n_splits=5).split(features, target, train.loc[features.index, GROUP_COLUMN])\n"
            )
        return f'''def validate(pipeline, features, target, train):
    """{doc}"""
{setup}    scores = []
    for fold, (train_idx, valid_idx) in enumerate(splits, start=1):
        model = clone(pipeline).fit(features.iloc[train_idx], target.iloc[train_idx])
        fold_score = score(target.iloc[valid_idx], predict(model, features.iloc[valid_idx]))
        print(f"fold {{fold}}: {{fold_score:.6f}}")
        scores.append(fold_score)
    return float(np.mean(scores))

'''
    if recipe.validation == "cv":
        folds = (
            "StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED)"
            if classification
            else "KFold(n_splits=5, shuffle=True, random_state=SEED)"
        )
        return f'''def validate(pipeline, features, target, train):
    """Mean score over 5 folds: steadier than a single split on small data."""
    folds = {folds}
    scores = []
    for fold, (train_idx, valid_idx) in enumerate(folds.split(features, target), start=1):
        model = clone(pipeline).fit(features.iloc[train_idx], target.iloc[train_idx])
        fold_score = score(target.iloc[valid_idx], predict(model, features.iloc[valid_idx]))
        print(f"fold {{fold}}: {{fold_score:.6f}}")
        scores.append(fold_score)
    return float(np.mean(scores))

'''
    stratify = (
        "    stratify = target if target.value_counts().min() >= 2 else None\n"
        if classification
        else "    stratify = None\n"
    )
    return f'''def validate(pipeline, features, target, train):
    """Score on a 20% hold-out split of the training data."""
{stratify}    x_train, x_valid, y_train, y_valid = train_test_split(
        features, target, test_size=0.2, random_state=SEED, stratify=stratify
    )
    model = clone(pipeline).fit(x_train, y_train)
    return score(y_valid, predict(model, x_valid))

'''


_SUBMISSION = '''def write_submission(pipeline, test, columns):
    """One row per test row: the identifier columns, then the prediction."""
    predictions = predict(pipeline, test[columns])
    # The task card's ids, as the test file has them; none known: the rows stay in the test file's order.
    ids = test[[c for c in ID_COLUMNS if c in test.columns]].reset_index(drop=True)
    if np.ndim(predictions) == 2:  # several classes: one probability column each
        classes = pipeline.classes_
        predicted = pd.DataFrame(predictions, columns=[f"{TARGET}_{c}" for c in classes])
    else:
        predicted = pd.DataFrame({TARGET: predictions})
    submission = pd.concat([ids, predicted], axis=1)
    submission.to_csv("submission.csv", index=False)
    print(f"wrote submission.csv ({len(submission)} rows)")

'''


def _main(recipe: Recipe, has_test: bool) -> str:
    target = "resolve_target(train, test)" if recipe.defensive else "TARGET"
    lines = [
        "def main():",
        "    train, test = load_data()",
        f"    features, target = split_features(train, {target})",
        '    print(f"{len(features)} training rows, {features.shape[1]} features")',
        '    pipeline = Pipeline([("preprocess", build_preprocessor(features)), ("model", build_model())])',
        "    metric = validate(pipeline, features, target, train)",
    ]
    if has_test:
        lines += [
            "    # Refit on all the training data before predicting the test set.",
            "    pipeline.fit(features, target)",
            "    if test is not None:",
            "        write_submission(pipeline, test, features.columns)",
        ]
    lines += [
        '    print(f"Validation metric: {metric:.6f}")',
        "",
        "",
        'if __name__ == "__main__":',
        "    main()",
    ]
    return "\n".join(lines)
