"""A multi-class model on a real data set, through the pipeline: as good as a logistic
regression, and predict's per-class probabilities and decoded class agree with evaluate.

The data is scikit-learn's bundled handwritten digits (1,797 rows of 8x8 pixel
intensities, 10 classes), its label written as the digit's name (``zero`` ...
``nine``) so the decoded class is visibly the label's own value. Split 70/30
into a training date and a test date; the pipeline is what a user writes: no
buckets (every pixel in ``default``, ``minmax``), ``dnn_classifier``; encode
fits on the training date and reuses that fmap for the test date; evaluate and
predict score the test date.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dlflow_airflow.contract.tasks import class_column, predicted_column

from .conftest import job_body, parse_job, write_raw_frame

pytestmark = [pytest.mark.spark, pytest.mark.tf]

TRAIN, TEST = "2026-04-01", "2026-04-02"
NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
MAX_GAP = 0.03  # the bound: accuracy within 0.03 of a logistic regression
PARAMS = {"epochs": 30, "batch_size": 32, "hidden_units": [64]}


def _table() -> Any:
    from sklearn.datasets import load_digits

    data = load_digits(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace("pixel_", "px"))
    frame["digit"] = [NAMES[i] for i in frame.pop("target")]
    frame.insert(0, "uid", np.arange(len(frame), dtype=np.int64))
    return frame


def _job(kind: str, workspace: str, date: str, model_date: str, **options: Any) -> Any:
    body = job_body(workspace, tag="digits", model_date=model_date, buckets={}, options=options)
    body["feature"]["labels"] = ["digit"]
    body["model"].update(name="dnn_classifier", params=PARAMS)
    return parse_job(kind, date, body)


def _logistic_regression_accuracy(train_rows: Any, test_rows: Any, features: list[str]) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    model.fit(train_rows[features], train_rows["digit"])
    return float(model.score(test_rows[features], test_rows["digit"]))


def test_dnn_classifier_on_digits_matches_a_logistic_regression(spark: Any, workspace: str) -> None:
    from spark_jobs import encode, predict
    from tf_jobs import evaluate, train

    frame = _table()
    features = [c for c in frame.columns if c.startswith("px")]
    rng = np.random.default_rng(5)
    shuffled = rng.permutation(len(frame))
    cut = int(0.7 * len(frame))
    train_rows, test_rows = frame.iloc[shuffled[:cut]], frame.iloc[shuffled[cut:]]
    write_raw_frame(spark, workspace, "digits", TRAIN, train_rows)
    write_raw_frame(spark, workspace, "digits", TEST, test_rows)

    encode.run(spark, _job("encode", workspace, TRAIN, "same"))
    train.run(_job("train", workspace, TRAIN, "same", threads=2))
    assert encode.run(spark, _job("encode", workspace, TEST, TRAIN))["fmap_reused"] is True
    metrics = evaluate.run(_job("evaluate", workspace, TEST, TRAIN, threads=2, plots=False))
    baseline = _logistic_regression_accuracy(train_rows, test_rows, features)

    print(f"digits: dnn_classifier accuracy {metrics['accuracy']:.4f}, LR {baseline:.4f}")
    assert metrics["rows"] == len(test_rows)
    assert metrics["accuracy"] >= baseline - MAX_GAP, (
        f"dnn_classifier accuracy {metrics['accuracy']:.4f}, logistic regression {baseline:.4f}"
    )
    assert set(metrics["per_class"]) == set(NAMES)

    scored = predict.run(spark, _job("predict", workspace, TEST, TRAIN))
    table = spark.read.parquet(scored["output"]).toPandas().set_index("uid")
    probability_columns = [class_column("digit", name) for name in sorted(NAMES)]
    assert list(table.columns) == [*probability_columns, predicted_column("digit")]
    assert len(table) == len(test_rows)
    probabilities = table[probability_columns].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    argmax = np.array(sorted(NAMES))[probabilities.argmax(axis=1)]
    assert (table["digit_predicted"].to_numpy() == argmax).all()
    truth = test_rows.set_index("uid").loc[table.index, "digit"]
    accuracy = float((table["digit_predicted"] == truth).mean())
    assert accuracy == pytest.approx(metrics["accuracy"], abs=1e-9)
