"""A converted DLFlow config runs: merge, encode, train, evaluate and predict, in-process.

The config (tests/fixtures/dlflow/local/) takes its workspace from the
environment, as HOCON allows; its merge flow reads the demo's upstream tables
through an hdfs dependency, an ``HdfsReader`` source, a SQL step with
placeholders and both missing-value steps. Each stage's job gets the document
its Airflow task would render, from the converted YAML.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from dlflow_airflow.contract.jobconf import JobConfig
from dlflow_airflow.contract.layout import local_path
from dlflow_airflow.devtools.cli import main
from dlflow_airflow.pipeline.loader import load_pipeline
from tests.conftest import REPO

pytestmark = [pytest.mark.spark, pytest.mark.tf]

CONFIG = REPO / "tests" / "fixtures" / "dlflow" / "local" / "local.conf"
DATE = "2026-01-01"  # the config's FEATURE_DATE: the first run
ROWS = 1500


def _jobs() -> dict[str, Callable[[Any, JobConfig], dict[str, Any]]]:
    from spark_jobs import encode, merge, predict
    from tf_jobs import evaluate, train

    return {
        "merge": merge.run,
        "encode": encode.run,
        "train": lambda spark, job: train.run(job),
        "evaluate": lambda spark, job: evaluate.run(job),
        "predict": predict.run,
    }


def _upstream(spark: Any, workspace: str) -> None:
    """The demo's seed, user_profile and user_behaviour tables for :data:`DATE`."""
    from spark_jobs import demo_data

    body = {
        "workspace": workspace,
        "feature": {"tag": "upstream", "primary_keys": ["uid"], "labels": ["label"]},
        "model": {"tag": "none"},
        "options": {"rows": ROWS, "seed": 5},
    }
    demo_data.run(spark, JobConfig.from_body(DATE, body, job="demo_data"))


def test_converted_config_runs_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from spark_jobs.session import build_session

    monkeypatch.setenv("DLFLOW_E2E_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    monkeypatch.setenv("PYSPARK_DRIVER_PYTHON", sys.executable)
    out = tmp_path / "dags" / "local.yaml"
    assert main(["convert", str(CONFIG), "-o", str(out)]) == 0, capsys.readouterr().err
    pipeline = load_pipeline(out)
    assert pipeline.order == ("merge", "encode", "train", "evaluate", "predict")

    conf = {**pipeline.spec.spark.conf, "spark.master": "local[1]"}
    spark = build_session("dlflow-convert-e2e", {k: str(v) for k, v in conf.items()})
    spark.sparkContext.setLogLevel("ERROR")
    results: dict[str, dict[str, Any]] = {}
    try:
        _upstream(spark, pipeline.spec.workspace)
        for name in pipeline.order:
            job = pipeline.stages[name].context(pipeline.spec).job_config(DATE)
            results[name] = _jobs()[name](spark, job)
    finally:
        spark.stop()

    merged = results["merge"]
    assert merged["rows"] == ROWS  # one row per seed row
    assert {"age", "clicks_7d", "channel", "missing_count", "missing_ratio"} <= set(
        merged["columns"]
    )
    assert merged["dependencies"]["RUN_DAY"] == "20260101"
    raw = pq.read_table(local_path(merged["output"])).to_pydict()
    assert None not in raw["channel"]  # fill_missing: str -> string
    assert results["evaluate"]["auc"] > 0.55
    predictions = local_path(results["predict"]["output"])
    assert pq.read_table(predictions).num_rows == ROWS
    assert os.path.exists(os.path.join(predictions, "_SUCCESS"))


IRIS = REPO / "tests" / "fixtures" / "dlflow" / "iris_local" / "iris_local.conf"
IRIS_DATE = "2024-03-01"  # iris.conf's FEATURE_DATE


def test_converted_iris_example_classifies_three_species(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """DLFlow's iris example (a softmax model of its own, pnorm and zscore buckets) converts
    to dnn_classifier and runs on scikit-learn's iris table: encode, train, evaluate, predict."""
    from sklearn.datasets import load_iris

    from dlflow_airflow.contract import storage
    from dlflow_airflow.contract.layout import Layout
    from spark_jobs.session import build_session

    monkeypatch.setenv("DLFLOW_E2E_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    monkeypatch.setenv("PYSPARK_DRIVER_PYTHON", sys.executable)
    out = tmp_path / "dags" / "iris.yaml"
    assert main(["convert", str(IRIS), "-o", str(out)]) == 0, capsys.readouterr().err
    pipeline = load_pipeline(out)
    assert pipeline.spec.model.name == "dnn_classifier"
    assert pipeline.order == ("encode", "train", "evaluate", "predict")

    data = load_iris(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.removesuffix(" (cm)").replace(" ", "_"))
    frame["species"] = [str(data.target_names[i]) for i in frame.pop("target")]
    frame.insert(0, "id", range(len(frame)))
    spark = build_session("dlflow-convert-iris", {"spark.master": "local[1]"})
    spark.sparkContext.setLogLevel("ERROR")
    results: dict[str, dict[str, Any]] = {}
    try:
        raw = Layout(pipeline.spec.workspace).raw("iris_feature", IRIS_DATE)
        staging = storage.staging_uri(raw)
        spark.createDataFrame(frame).coalesce(1).write.parquet(staging)
        storage.commit(staging, raw)
        for name in pipeline.order:
            job = pipeline.stages[name].context(pipeline.spec).job_config(IRIS_DATE)
            results[name] = _jobs()[name](spark, job)
    finally:
        spark.stop()

    assert results["evaluate"]["accuracy"] > 0.9, results["evaluate"]
    assert set(results["evaluate"]["per_class"]) == {"setosa", "versicolor", "virginica"}
    table = pq.read_table(local_path(results["predict"]["output"])).to_pandas()
    assert list(table.columns) == [
        "id",
        "species_setosa",
        "species_versicolor",
        "species_virginica",
        "species_predicted",
    ]
    truth = frame.set_index("id").loc[table["id"], "species"].to_numpy()
    assert (table["species_predicted"].to_numpy() == truth).mean() > 0.9
