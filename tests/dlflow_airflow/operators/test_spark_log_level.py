"""The Spark driver's log level: WARN in task logs unless the pipeline's spark.log_level asks."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

from dlflow_airflow.operators.spark import DlflowSparkSubmitOperator, SparkJobOperator
from dlflow_airflow.pipeline.build import Pipeline
from dlflow_airflow.pipeline.factory import build_dag
from tests.dlflow_airflow.pipelines import base_pipeline


def _submitted(op: SparkJobOperator, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The spark-submit command the job's execute would run (without the run bookkeeping)."""
    commands: list[list[str]] = []

    def fake_execute(self: SparkSubmitOperator, context: Any) -> None:
        commands.append(self._get_hook()._build_spark_submit_command(self.application))

    monkeypatch.setattr(SparkSubmitOperator, "execute", fake_execute)
    SparkJobOperator.execute(op, {})
    (command,) = commands
    return command


def _merge(spark: dict[str, Any]) -> DlflowSparkSubmitOperator:
    doc = {**base_pipeline(), "spark": spark}
    op = build_dag(Pipeline.from_data(doc, source="p.yaml")).get_task("merge")
    assert isinstance(op, DlflowSparkSubmitOperator)
    op.ship_code = False
    op.date = "2026-01-01"
    return op


@pytest.mark.parametrize(("spark", "level"), [({}, "WARN"), ({"log_level": "debug"}, "DEBUG")])
def test_spark_submit_gets_the_pipelines_log_level(monkeypatch, spark, level):
    command = _submitted(_merge(spark), monkeypatch)
    assert f"spark.log.level={level}" in command
    assert command[command.index(f"spark.log.level={level}") - 1] == "--conf"


def test_a_python_dag_may_set_spark_log_level_in_conf(monkeypatch):
    op = SparkJobOperator(
        task_id="merge",
        job="merge",
        job_body={"workspace": "/tmp/ws"},
        date="2026-01-01",
        ship_code=False,
        conf={"spark.log.level": "INFO"},
    )
    command = _submitted(op, monkeypatch)
    assert "spark.log.level=INFO" in command
    assert "spark.log.level=WARN" not in command
