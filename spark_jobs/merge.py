"""Merge: left-join every upstream feature source onto the seed, for one date.

Options (:class:`dlflow_airflow.contract.options.MergeOptions`)::

    seed:    {path: "{workspace}/upstream/seed/dt={date}", format: parquet}
    sources:
      - {name: user_profile, path: ".../dt={date_nodash}", format: parquet, keys: [uid]}

``keys`` defaults to the feature's primary keys. Each input must be a complete
partition (``_SUCCESS``). The seed may instead be a SQL file
(``seed: {sql: "{workspace}/sql/seed.sql"}``).

More options (dmflow parity): ``dependencies`` (see
:mod:`dlflow_airflow.contract.dependencies`: resolved first, with ``degrade_days`` and
checkers; their values fill ``{name}`` placeholders in every path and SQL
file), ``steps`` (see :mod:`spark_jobs.merge_steps`) and ``unique_check``
(default true: refuse duplicate primary keys in the seed).

The seed holds the primary keys and the labels and decides the rows: the
output has exactly one row per seed row. A source with duplicate keys, or a
column that two inputs both carry, is refused.
Output: the stage's RAW_FEATURE partition (``layout.raw(feature.tag, date)``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.artifacts import RAW_FEATURE, stage_io
from dlflow_airflow.contract.dependencies import resolve_all
from dlflow_airflow.contract.jobconf import JobConfig
from dlflow_airflow.contract.options import FeatureSource, MergeOptions, SeedSource
from spark_jobs.columns import cols
from spark_jobs.merge_steps import apply_steps
from spark_jobs.parquet_units import written_rows
from spark_jobs.paths import Staging, render_path, require_complete
from spark_jobs.read_errors import naming_bad_files
from spark_jobs.session import run_job

log = logging.getLogger(__name__)


class MergeError(ValueError):
    """The merge options or inputs cannot produce a raw-feature table."""


class DuplicateKeyError(MergeError):
    """An input holds more than one row for a join key."""


class ColumnConflictError(MergeError):
    """Two inputs carry a column of the same name."""


@dataclass(frozen=True)
class Input:
    """One table to read: the seed or a named source."""

    name: str
    path: str
    format: str
    keys: tuple[str, ...]

    @property
    def label(self) -> str:
        return "the seed" if self.name == "seed" else f"source {self.name!r}"


Render = Callable[[str], str]


def parse_inputs(job: JobConfig, render: Render) -> tuple[Input, list[Input]]:
    """The seed and the sources of the merge options, paths rendered."""
    options: MergeOptions = job.options
    keys = tuple(job.feature.primary_keys)
    seed = _seed_input(options.seed, keys, render)
    sources: list[Input] = []
    for index, source in enumerate(options.sources):
        if source.name == "seed" or source.name in {s.name for s in sources}:
            raise MergeError(f"merge sources[{index}]: the name {source.name!r} is already used")
        sources.append(_source_input(source, keys, render))
    return seed, sources


def _seed_input(seed: SeedSource, keys: tuple[str, ...], render: Render) -> Input:
    if seed.sql is not None:
        return Input("seed", render(seed.sql), "sql", keys)
    assert seed.path is not None  # SeedSource holds exactly one of path and sql
    return Input("seed", render(seed.path), seed.format, keys)


def _source_input(source: FeatureSource, keys: tuple[str, ...], render: Render) -> Input:
    own_keys = tuple(source.keys) if source.keys else keys
    return Input(source.name, render(source.path), source.format, own_keys)


def read_input(spark: SparkSession, item: Input, render: Render | None = None) -> DataFrame:
    """Read one complete input partition (or run the seed's SQL file)."""
    if item.format == "sql":
        if not storage.exists(item.path):
            raise MergeError(f"{item.label}: no SQL file at {item.path}")
        text = storage.read_text(item.path)
        return spark.sql(render(text) if render else text)
    require_complete(item.path, f"merge input ({item.label})")
    reader = spark.read.format(item.format)
    if item.format == "csv":
        reader = reader.option("header", "true").option("inferSchema", "true")
    return reader.load(item.path)


def check_columns(frame: DataFrame, item: Input, required: tuple[str, ...], what: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise MergeError(
            f"{item.label} ({item.path}) has no {what} column(s) {missing}; "
            f"its columns: {frame.columns}"
        )


def check_unique(frame: DataFrame, item: Input) -> None:
    """Refuse an input with two rows for one key, naming a sample key."""
    duplicate = (
        frame.groupBy(*cols(item.keys))
        .agg(F.count(F.lit(1)).alias("__dlflow_rows"))
        .where(F.col("__dlflow_rows") > 1)
        .limit(1)
        .collect()
    )
    if duplicate:
        row = duplicate[0]
        sample = {key: row[key] for key in item.keys}
        raise DuplicateKeyError(
            f"{item.label} ({item.path}) has duplicate keys {list(item.keys)}: "
            f"{sample} appears {row['__dlflow_rows']} times; merge needs one row per key"
        )


def check_key_types(seed: DataFrame, frame: DataFrame, item: Input) -> None:
    """Join keys must have the seed's type (integers of any width join safely)."""
    seed_types = {f.name: f.dataType for f in seed.schema.fields}
    for field in frame.select(*cols(item.keys)).schema.fields:
        mine, theirs = field.dataType, seed_types[field.name]
        integral = isinstance(mine, T.IntegralType) and isinstance(theirs, T.IntegralType)
        if mine != theirs and not integral:
            raise MergeError(
                f"{item.label} ({item.path}): key {field.name!r} is {mine.simpleString()} but "
                f"the seed's is {theirs.simpleString()}; cast one of them upstream"
            )


def merge_frames(
    seed: DataFrame, seed_input: Input, sources: list[tuple[Input, DataFrame]]
) -> DataFrame:
    """The seed left-joined with every source; raises on name conflicts."""
    owners = {c.lower(): seed_input for c in seed.columns}
    merged = seed
    columns = list(seed.columns)
    for item, frame in sources:
        values = [c for c in frame.columns if c not in item.keys]
        for column in values:
            owner = owners.get(column.lower())
            if owner is not None:
                raise ColumnConflictError(
                    f"column {column!r} appears in both {owner.label} ({owner.path}) and "
                    f"{item.label} ({item.path}); drop or rename it in one of them"
                )
            owners[column.lower()] = item
        picked = frame.select(*cols([*item.keys, *values]))
        merged = merged.join(picked, on=list(item.keys), how="left")
        columns.extend(values)
    return merged.select(*cols(columns))


def resolve_dependencies(job: JobConfig) -> dict[str, str]:
    """Placeholder values from the ``dependencies`` option (raises if one is not ready)."""
    options: MergeOptions = job.options
    resolved = resolve_all(options.dependencies, workspace=job.workspace, day=job.date)
    for item in resolved.values():
        log.info("dependency %r -> %s", item.name, item.value)
    return {name: item.value for name, item in resolved.items()}


def read_sources(
    spark: SparkSession, seed: DataFrame, seed_input: Input, inputs: list[Input]
) -> list[tuple[Input, DataFrame]]:
    """Every source, checked against the seed and registered as a view under its name."""
    sources: list[tuple[Input, DataFrame]] = []
    for item in inputs:
        frame = read_input(spark, item)
        check_columns(frame, item, item.keys, "join key")
        check_columns(seed, seed_input, item.keys, f"join key (for {item.label})")
        check_key_types(seed, frame, item)
        check_unique(frame, item)
        frame.createOrReplaceTempView(item.name)
        sources.append((item, frame))
    return sources


def run(spark: SparkSession, job: JobConfig) -> dict[str, Any]:
    extra = resolve_dependencies(job)

    def render(text: str) -> str:
        return render_path(text, workspace=job.workspace, date=job.date, extra=extra)

    seed_input, source_inputs = parse_inputs(job, render)
    tables = {
        i.path: f"merge input ({i.label})"
        for i in (seed_input, *source_inputs)
        if i.format != "sql"
    }
    with naming_bad_files(tables):  # a truncated upstream file: named, not a JVM trace
        result = merge(spark, job, render, seed_input, source_inputs)
    return {**result, "dependencies": extra}


def merge(
    spark: SparkSession,
    job: JobConfig,
    render: Render,
    seed_input: Input,
    source_inputs: list[Input],
) -> dict[str, Any]:
    """Join, check and write the merged table; returns the rows, columns and output."""
    options: MergeOptions = job.options
    seed = read_input(spark, seed_input, render)
    check_columns(
        seed, seed_input, (*job.feature.primary_keys, *job.feature.labels), "primary key / label"
    )
    if options.unique_check:
        check_unique(seed, seed_input)
    seed.createOrReplaceTempView("seed")
    sources = read_sources(spark, seed, seed_input, source_inputs)
    merged = merge_frames(seed, seed_input, sources)
    merged = apply_steps(spark, merged, options.steps, render, tuple(job.feature.primary_keys))

    seed_rows = seed.count()
    if seed_rows == 0:
        raise MergeError(f"the seed ({seed_input.path}) has no rows")
    final = stage_io(job).get(RAW_FEATURE).uri
    with Staging() as staging:
        folder = staging.folder(final)
        # Counted from the written files' footers, not read back. The seed stays a count
        # of its own: counted inside the plan, a step joining the table with itself
        # would count twice.
        merged.write.parquet(folder)
        rows, _ = written_rows(spark, folder)
        if rows != seed_rows:
            raise MergeError(
                f"merge wrote {rows} rows but the seed has {seed_rows}; nothing committed"
            )
        staging.commit()
    log.info("merged %d rows from %d sources into %s", rows, len(sources), final)
    return {"rows": rows, "columns": merged.columns, "output": final}


def main(argv: list[str] | None = None) -> None:
    run_job("merge", run, argv)


if __name__ == "__main__":
    main()
