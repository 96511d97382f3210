"""``spark: {mode: connect}``: validation at parse time and the tasks it builds."""

from __future__ import annotations

import pytest

from dlflow_airflow.operators.spark import DlflowSparkSubmitOperator
from dlflow_airflow.pipeline.build import Pipeline
from dlflow_airflow.pipeline.errors import SpecError
from dlflow_airflow.pipeline.factory import build_dag
from dlflow_airflow.pipeline.spec_schema import pipeline_json_schema
from dlflow_airflow.runners.spark_connect import DlflowSparkConnectOperator
from tests.dlflow_airflow.pipelines import base_pipeline

SPARK_STAGES = ("merge", "encode", "predict")


def _pipeline(spark: dict) -> Pipeline:
    return Pipeline.from_data({**base_pipeline(), "spark": spark}, source="p.yaml")


def test_submit_is_the_default_with_its_connection():
    spark = _pipeline({}).spec.spark
    assert (spark.mode, spark.conn_id) == ("submit", "spark_default")


def test_connect_mode_defaults_to_the_spark_connect_connection():
    assert _pipeline({"mode": "connect"}).spec.spark.conn_id == "spark_connect_default"
    assert _pipeline({"mode": "connect", "conn_id": "lake"}).spec.spark.conn_id == "lake"


@pytest.mark.parametrize(
    ("spark", "path", "fragments"),
    [
        (
            {"mode": "connect", "conf": {"spark.executor.memory": "4g"}},
            "spark.conf",
            ["spark.executor.memory (a launch setting)", "where the Connect server starts"],
        ),
        (
            {"mode": "connect", "conf": {"spark.sql.warehouse.dir": "/w"}},
            "spark.conf",
            ["spark.sql.warehouse.dir (a static SQL setting)"],
        ),
        ({"mode": "connect", "python": "/opt/py"}, "spark.python", ["is for mode: submit"]),
        ({"mode": "connect", "log_level": "info"}, "spark.log_level", ["is for mode: submit"]),
        ({"mode": "yarn"}, "spark.mode", ["'submit' or 'connect'"]),
    ],
)
def test_connect_mode_refuses_what_a_session_cannot_set(spark, path, fragments):
    with pytest.raises(SpecError) as info:
        _pipeline(spark)
    message = str(info.value)
    assert f"p.yaml: {path}: " in message
    for fragment in fragments:
        assert fragment in message


def test_launch_settings_stay_fine_in_submit_mode():
    spark = _pipeline({"conf": {"spark.executor.memory": "4g"}, "log_level": "info"}).spec.spark
    assert spark.conf == {"spark.executor.memory": "4g"}


def test_connect_mode_builds_connect_tasks_for_the_spark_stages():
    doc = base_pipeline()
    doc["model"]["name"] = "tests.e2e.test_secrets:NOTE_MODEL"  # a user's model: shipped too
    doc["spark"] = {"mode": "connect", "conf": {"spark.sql.shuffle.partitions": 8}}
    dag = build_dag(Pipeline.from_data(doc, source="p.yaml"))
    for stage in SPARK_STAGES:
        task = dag.get_task(stage)
        assert isinstance(task, DlflowSparkConnectOperator), stage
        assert task.conn_id == "spark_connect_default"
        assert task.conf == {"spark.sql.shuffle.partitions": "8"}
        assert task.ship_modules == ("tests.e2e.test_secrets:NOTE_MODEL",)
        assert task.date == task.stage_date == "{{ ds }}"
        assert task.job_body["stage"]["name"] == stage
    submit = build_dag(Pipeline.from_data(base_pipeline(), source="p.yaml"))
    assert all(isinstance(submit.get_task(s), DlflowSparkSubmitOperator) for s in SPARK_STAGES)


def test_the_schema_offers_both_modes():
    spark = pipeline_json_schema()["$defs"]["SparkSpec"]["properties"]["mode"]
    assert spark["enum"] == ["submit", "connect"]
    assert spark["default"] == "submit"
