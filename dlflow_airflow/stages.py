"""The built-in stage kinds (DESIGN.md's table) and their YAML options."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from dlflow_airflow.registry import StageContext, StageKind

RAW_FEATURE = "RAW_FEATURE"
ENCODED_FEATURE = "ENCODED_FEATURE"
TFRECORD_FEATURE = "TFRECORD_FEATURE"
FMAP = "FMAP"
TRAINED_MODEL = "TRAINED_MODEL"
EVALUATE_RESULT = "EVALUATE_RESULT"
PREDICT_RESULT = "PREDICT_RESULT"
DEMO_UPSTREAM = "DEMO_UPSTREAM"

Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DemoDataOptions(_Options):
    """:param rows: seed rows per date. :param seed: random seed (the date is mixed in)."""

    rows: int = Field(default=20_000, ge=100, le=100_000_000)
    seed: int = 7


class TableSource(_Options):
    """A dated upstream table. ``path`` may hold {workspace}, {date} and {date_nodash}."""

    path: str
    format: Literal["parquet", "orc", "json", "csv"] = "parquet"


class FeatureSource(TableSource):
    name: Name
    keys: list[Name] | None = None


class MergeOptions(_Options):
    seed: TableSource
    sources: list[FeatureSource] = []


class EncodeOptions(_Options):
    tfrecord: bool = False
    tfrecord_compression: Literal["none", "gzip"] = "none"
    refit: bool = False


class TfJobOptions(_Options):
    runner: Literal["local"] = "local"


class PredictOptions(_Options):
    batch_size: int = Field(default=4096, ge=1, le=1_000_000)


class _SparkStage(StageKind):
    job: str

    def build_operator(self, ctx: StageContext):
        from dlflow_airflow.operators.spark import DlflowSparkSubmitOperator

        spark = ctx.spec.spark
        return DlflowSparkSubmitOperator(
            job=self.job,
            job_body=ctx.job_body(),
            conn_id=spark.conn_id,
            conf={k: str(v) for k, v in spark.conf.items()},
            spark_python=spark.python,
            **ctx.task_kwargs(),
        )


class _TfStage(StageKind):
    job: str
    Options = TfJobOptions

    def build_operator(self, ctx: StageContext):
        from dlflow_airflow.operators.tf import DlflowTfJobOperator

        return DlflowTfJobOperator(
            job=self.job,
            job_body=ctx.job_body(),
            runner=ctx.options.runner,
            **ctx.task_kwargs(),
        )


class DemoDataStage(_SparkStage):
    """Generates the demo's upstream tables (seed + two feature sources) for the date."""

    job = "demo_data"
    produces = (DEMO_UPSTREAM,)
    Options = DemoDataOptions


class MergeStage(_SparkStage):
    """Left-joins the seed table with every feature source on the primary keys."""

    job = "merge"
    produces = (RAW_FEATURE,)
    Options = MergeOptions


class EncodeStage(_SparkStage):
    """Fits (or reuses) the fmap and writes the encoded table."""

    job = "encode"
    needs = (RAW_FEATURE,)
    produces = (ENCODED_FEATURE, FMAP)
    Options = EncodeOptions

    def produced_tags(self, options: EncodeOptions) -> tuple[str, ...]:
        return (*self.produces, TFRECORD_FEATURE) if options.tfrecord else self.produces


class TrainStage(_TfStage):
    job = "train"
    needs = (ENCODED_FEATURE, FMAP)
    produces = (TRAINED_MODEL,)


class EvaluateStage(_TfStage):
    job = "evaluate"
    needs = (ENCODED_FEATURE, FMAP, TRAINED_MODEL)
    produces = (EVALUATE_RESULT,)


class PredictStage(_SparkStage):
    job = "predict"
    needs = (ENCODED_FEATURE, FMAP, TRAINED_MODEL)
    produces = (PREDICT_RESULT,)
    Options = PredictOptions


BUILTIN_KINDS: dict[str, type[StageKind]] = {
    "demo_data": DemoDataStage,
    "merge": MergeStage,
    "encode": EncodeStage,
    "train": TrainStage,
    "evaluate": EvaluateStage,
    "predict": PredictStage,
}
