"""Built-in kinds that run a ``spark_jobs`` program (spark-submit or Spark Connect)."""

from __future__ import annotations

from typing import ClassVar

from dlflow_airflow.contract.options import (
    DemoDataOptions,
    EncodeOptions,
    MergeOptions,
    PredictOptions,
)
from dlflow_airflow.stages.base import StageContext, StageKind


class SparkStage(StageKind):
    """A ``spark_jobs`` program; its tags come from the artifact contract.

    ``spark.mode`` picks where it runs: ``submit``, a spark-submit per task (the Spark
    provider's operator); ``connect``, a Spark Connect client in the worker.
    """

    job: ClassVar[str]

    def build_operator(self, ctx: StageContext):
        spark = ctx.spec.spark
        common = {
            "job": self.job,
            "job_body": ctx.job_body(),
            "conn_id": spark.conn_id,
            "conf": {k: str(v) for k, v in spark.conf.items()},
            # A user's model (``model.name: pkg.module:attr``) must reach the executors too.
            "ship_modules": [ctx.spec.model.name] if ":" in ctx.spec.model.name else [],
            **ctx.task_kwargs(),
        }
        if spark.mode == "connect":
            from dlflow_airflow.runners.spark_connect import DlflowSparkConnectOperator

            return DlflowSparkConnectOperator(**common)
        from dlflow_airflow.operators.spark import DlflowSparkSubmitOperator

        return DlflowSparkSubmitOperator(
            **common, spark_python=spark.python, log_level=spark.log_level
        )


class DemoDataStage(SparkStage):
    """Generates the demo's upstream tables (seed + two feature sources) for the date."""

    job = "demo_data"
    Options = DemoDataOptions


class MergeStage(SparkStage):
    """Left-joins the seed table with every feature source on the primary keys."""

    job = "merge"
    Options = MergeOptions


class EncodeStage(SparkStage):
    """Fits (or reuses) the fmap and writes the encoded table."""

    job = "encode"
    Options = EncodeOptions


class PredictStage(SparkStage):
    """Scores the encoded table with the run's model, one Arrow batch at a time."""

    job = "predict"
    Options = PredictOptions
