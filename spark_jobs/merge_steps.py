"""Merge steps run after the sources are joined (dmflow's operators), in order.

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
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from dlflow_airflow.contract import storage

STEP_KINDS = ("sql", "count_missing", "fill_missing")


class MergeStepError(ValueError):
    """A merge step is misconfigured or does not fit the table."""


def _missing(column: str, data_type: T.DataType) -> Column:
    value = F.col(column)
    if isinstance(data_type, (T.FloatType, T.DoubleType)):
        return value.isNull() | F.isnan(value)
    return value.isNull()


def count_missing(frame: DataFrame, conf: dict[str, Any], keys: tuple[str, ...]) -> DataFrame:
    types = {f.name: f.dataType for f in frame.schema.fields}
    columns = conf.get("columns") or [c for c in frame.columns if c not in keys]
    unknown = [c for c in columns if c not in types]
    if unknown:
        raise MergeStepError(f"count_missing: no column(s) {unknown}; columns: {frame.columns}")
    prefix = conf.get("prefix", "missing")
    flags = [_missing(c, types[c]).cast("int") for c in columns]
    total = sum(flags[1:], flags[0]) if flags else F.lit(0)
    return frame.withColumns(
        {
            f"{prefix}_count": total.cast("int"),
            f"{prefix}_ratio": (total / F.lit(max(len(columns), 1))).cast("double"),
        }
    )


def fill_missing(frame: DataFrame, conf: dict[str, Any], keys: tuple[str, ...]) -> DataFrame:
    by_type: dict[str, Any] = conf.get("by_type") or {}
    by_column: dict[str, Any] = conf.get("columns") or {}
    unknown = [c for c in by_column if c not in frame.columns]
    if unknown:
        raise MergeStepError(f"fill_missing: no column(s) {unknown}; columns: {frame.columns}")
    filled: dict[str, Column] = {}
    for field in frame.schema.fields:
        if field.name in keys:
            continue
        type_name = field.dataType.simpleString()
        if field.name in by_column:
            value = by_column[field.name]
        elif type_name in by_type:
            value = by_type[type_name]
        else:
            continue
        column = F.col(field.name)
        if isinstance(field.dataType, (T.FloatType, T.DoubleType)):
            column = F.nanvl(column, F.lit(None).cast(field.dataType))
        filled[field.name] = F.coalesce(column, F.lit(value).cast(field.dataType))
    return frame.withColumns(filled) if filled else frame


def sql_step(
    spark: SparkSession,
    frame: DataFrame,
    conf: dict[str, Any],
    render: Callable[[str], str],
    keys: tuple[str, ...],
) -> DataFrame:
    if "file" not in conf:
        raise MergeStepError("sql step needs 'file' (a SQL file; placeholders allowed)")
    uri = render(str(conf["file"]))
    if not storage.exists(uri):
        raise MergeStepError(f"sql step: no SQL file at {uri}")
    join_keys = list(conf.get("join_keys") or keys)
    frame.createOrReplaceTempView("merged")
    result = spark.sql(render(storage.read_text(uri)))
    missing = [k for k in join_keys if k not in result.columns]
    if missing:
        raise MergeStepError(f"sql step {uri}: the query has no join key(s) {missing}")
    clash = [c for c in result.columns if c in frame.columns and c not in join_keys]
    if clash:
        raise MergeStepError(f"sql step {uri}: column(s) {clash} already exist in the table")
    duplicate = result.groupBy(*join_keys).count().where("count > 1").limit(1).collect()
    if duplicate:
        raise MergeStepError(
            f"sql step {uri}: the query returns more than one row for keys "
            f"{ {k: duplicate[0][k] for k in join_keys} }"
        )
    return frame.join(result, on=join_keys, how="left")


def apply_steps(
    spark: SparkSession,
    frame: DataFrame,
    steps: list[dict[str, Any]],
    render: Callable[[str], str],
    keys: tuple[str, ...],
) -> DataFrame:
    for index, step in enumerate(steps):
        if isinstance(step, dict):  # a validated step carries its other kinds as None
            step = {kind: conf for kind, conf in step.items() if conf is not None}
        if not isinstance(step, dict) or len(step) != 1 or next(iter(step)) not in STEP_KINDS:
            raise MergeStepError(
                f"merge steps[{index}] must be one of {{{', '.join(STEP_KINDS)}: {{...}}}}, "
                f"got {step!r}"
            )
        kind, conf = next(iter(step.items()))
        conf = conf or {}
        if kind == "sql":
            frame = sql_step(spark, frame, conf, render, keys)
        elif kind == "count_missing":
            frame = count_missing(frame, conf, keys)
        else:
            frame = fill_missing(frame, conf, keys)
    return frame
