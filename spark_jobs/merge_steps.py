"""Merge steps run after the sources are joined (dmflow's operators), in order.

Each step is a validated :class:`dlflow_airflow.contract.options.MergeStep`:

- ``sql``: ``{file: q.sql, join_keys: [uid]}``: run a SQL file (placeholders
  filled; the seed and the sources are temporary views under their names, and
  ``merged`` is the table so far) and left-join its result on ``join_keys``.
- ``count_missing``: ``{columns: [...], prefix: missing}``: add
  ``<prefix>_count`` and ``<prefix>_ratio`` (nulls and NaNs per row) as features.
- ``fill_missing``: ``{by_type: {double: 0.0, string: ""}, columns: {age: 30}}``:
  replace nulls per column, else per type name.

Every step is Spark expressions over the whole table.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.options import (
    CountMissingStep,
    FillMissingStep,
    MergeStep,
    SqlStep,
)
from spark_jobs.columns import col, cols


class MergeStepError(ValueError):
    """A merge step does not fit the table."""


def _missing(column: str, data_type: T.DataType) -> Column:
    value = col(column)
    if isinstance(data_type, (T.FloatType, T.DoubleType)):
        return value.isNull() | F.isnan(value)
    return value.isNull()


def count_missing(frame: DataFrame, step: CountMissingStep, keys: tuple[str, ...]) -> DataFrame:
    types = {f.name: f.dataType for f in frame.schema.fields}
    columns = step.columns or [c for c in frame.columns if c not in keys]
    unknown = [c for c in columns if c not in types]
    if unknown:
        raise MergeStepError(f"count_missing: no column(s) {unknown}; columns: {frame.columns}")
    flags = [_missing(c, types[c]).cast("int") for c in columns]
    total = sum(flags[1:], flags[0]) if flags else F.lit(0)
    return frame.withColumns(
        {
            f"{step.prefix}_count": total.cast("int"),
            f"{step.prefix}_ratio": (total / F.lit(max(len(columns), 1))).cast("double"),
        }
    )


def fill_missing(frame: DataFrame, step: FillMissingStep, keys: tuple[str, ...]) -> DataFrame:
    unknown = [c for c in step.columns if c not in frame.columns]
    if unknown:
        raise MergeStepError(f"fill_missing: no column(s) {unknown}; columns: {frame.columns}")
    filled: dict[str, Column] = {}
    for field in frame.schema.fields:
        if field.name in keys:
            continue
        type_name = field.dataType.simpleString()
        if field.name in step.columns:
            value = step.columns[field.name]
        elif type_name in step.by_type:
            value = step.by_type[type_name]
        else:
            continue
        column = col(field.name)
        if isinstance(field.dataType, (T.FloatType, T.DoubleType)):
            column = F.nanvl(column, F.lit(None).cast(field.dataType))
        filled[field.name] = F.coalesce(column, F.lit(value).cast(field.dataType))
    return frame.withColumns(filled) if filled else frame


def sql_step(
    spark: SparkSession,
    frame: DataFrame,
    step: SqlStep,
    render: Callable[[str], str],
    keys: tuple[str, ...],
) -> DataFrame:
    uri = render(step.file)
    if not storage.exists(uri):
        raise MergeStepError(f"sql step: no SQL file at {uri}")
    join_keys = list(step.join_keys or keys)
    frame.createOrReplaceTempView("merged")
    result = spark.sql(render(storage.read_text(uri)))
    missing = [k for k in join_keys if k not in result.columns]
    if missing:
        raise MergeStepError(f"sql step {uri}: the query has no join key(s) {missing}")
    clash = [c for c in result.columns if c in frame.columns and c not in join_keys]
    if clash:
        raise MergeStepError(f"sql step {uri}: column(s) {clash} already exist in the table")
    duplicate = result.groupBy(*cols(join_keys)).count().where("count > 1").limit(1).collect()
    if duplicate:
        raise MergeStepError(
            f"sql step {uri}: the query returns more than one row for keys "
            f"{ {k: duplicate[0][k] for k in join_keys} }"
        )
    return frame.join(result, on=join_keys, how="left")


def apply_steps(
    spark: SparkSession,
    frame: DataFrame,
    steps: list[MergeStep],
    render: Callable[[str], str],
    keys: tuple[str, ...],
) -> DataFrame:
    """Run ``steps`` in order (each holds exactly one kind; the options model checked it)."""
    for step in steps:
        if step.sql is not None:
            frame = sql_step(spark, frame, step.sql, render, keys)
        elif step.count_missing is not None:
            frame = count_missing(frame, step.count_missing, keys)
        elif step.fill_missing is not None:
            frame = fill_missing(frame, step.fill_missing, keys)
    return frame
