"""A Parquet partition as units of work read by pyarrow inside Spark tasks.

Spark's own reader decodes Parquet into rows, and ``mapInArrow`` turns the rows
into Arrow again: for the list columns of an encoded table that costs more CPU
than the Parquet decode itself. A task that reads its row groups with pyarrow
gets Arrow batches straight from the file. The driver lists the part files and
reads their footers (a few threads), so it knows every row group and the rows
the partition holds before a task starts.

Example::

    units = parquet_units(encoded_uri)        # None: pyarrow cannot open the URI
    for group in task_groups(units):          # one Spark task each
        for batch in read_unit(units[group[0]], ["uid", "user_nums"], 4096):
            ...
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import types as T

from dlflow_airflow.contract import storage

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

# Footers read at once on the driver.
FOOTER_THREADS = 8
# Rows a task reads at least (small row groups are packed together, as Spark packs
# small files into one split): fewer tasks and output files for a day of small files.
MIN_TASK_ROWS = 100_000
# The footer key under which Spark records the schema of the files it writes.
SPARK_SCHEMA_KEY = b"org.apache.spark.sql.parquet.row.metadata"
# What pyarrow raises for a file it cannot open or decode.
READ_ERRORS: tuple[type[BaseException], ...] = (pa.ArrowException, OSError)


class UnitReadError(RuntimeError):
    """pyarrow could not read a unit inside a task (the message starts with
    :data:`UNIT_READ_MARKER`, so the driver can tell it from the task's other errors)."""


UNIT_READ_MARKER = "dlflow: pyarrow could not read"


@dataclass(frozen=True)
class ParquetUnit:
    """One row group of one part file: the partition's URI (which gives the file
    system, with any options it carries) and the file's path in that file system."""

    partition: str
    path: str
    row_group: int
    rows: int
    spark_schema: str | None = None
    """The Spark schema (JSON) Spark recorded in the file's footer, if it wrote it."""


def read_footers(partition_uri: str) -> list[tuple[str, pq.FileMetaData]]:
    """Each part file of the partition (its path in the partition's file system) and
    its footer, in file order; the footers read in :data:`FOOTER_THREADS` threads.

    :raises ValueError, NotImplementedError: pyarrow cannot open the URI's scheme.
    :raises READ_ERRORS: a file cannot be listed or its footer read.
    """
    filesystem, path = storage.resolve(partition_uri)
    files = storage.part_files(filesystem, path)

    def footer(file: str) -> pq.FileMetaData:
        return pq.read_metadata(file, filesystem=filesystem)

    with ThreadPoolExecutor(max_workers=FOOTER_THREADS) as pool:
        return list(zip(files, pool.map(footer, files), strict=True))


def written_rows(
    spark: SparkSession, folder: str
) -> tuple[int, list[tuple[str, pq.FileMetaData]] | None]:
    """The rows of the Parquet table a job just wrote into ``folder``, from its files'
    footers (:func:`read_footers`, no Spark job), and the footers; counted by Spark
    when pyarrow cannot read them (footers None).

    Not observed as the table is written: an ``Observation`` adds an aggregation per
    row, ~7% of an encoded write (``bench/encode.py``, 1.40 s against 1.30 s).
    """
    try:
        footers = read_footers(folder)
    except (ValueError, NotImplementedError, *READ_ERRORS) as exc:
        log.warning("counting %s with Spark: pyarrow cannot read it (%s)", folder, exc)
        return spark.read.parquet(folder).count(), None
    return sum(metadata.num_rows for _, metadata in footers), footers


def parquet_units(partition_uri: str) -> list[ParquetUnit] | None:
    """Every row group of the partition's part files, in file order; None when pyarrow
    cannot list or open the partition (a scheme only Hadoop knows, such as ``s3a://``,
    or a footer it cannot read): the caller reads through Spark instead."""
    try:
        footers = read_footers(partition_uri)
    except (ValueError, NotImplementedError) as exc:
        log.info("reading %s through Spark: pyarrow cannot list it (%s)", partition_uri, exc)
        return None
    except READ_ERRORS as exc:
        log.warning("reading %s through Spark: pyarrow cannot read it (%s)", partition_uri, exc)
        return None
    units = []
    # One string per distinct schema, shared by the units: pickled once into the tasks.
    schemas: dict[bytes, str] = {}
    for file, metadata in footers:
        found = (metadata.metadata or {}).get(SPARK_SCHEMA_KEY)
        schema = None if found is None else schemas.setdefault(found, found.decode())
        units += [
            ParquetUnit(partition_uri, file, group, metadata.row_group(group).num_rows, schema)
            for group in range(metadata.num_row_groups)
        ]
    return units


def read_schema(units: list[ParquetUnit]) -> T.StructType | None:
    """The schema a Spark read of the units' files gives, from the Spark schema in their
    footers (no Spark job; Spark's own inference costs ~0.1 s a read); None when a file
    has none (not written by Spark) or two files differ (Spark would pick one)."""
    schemas = {unit.spark_schema for unit in units}
    if len(schemas) != 1 or None in schemas:
        return None
    (found,) = schemas
    # A Spark read makes every field, array element and map value nullable.
    return T.StructType.fromJson(_nullable(json.loads(found)))


def _nullable(node: Any) -> Any:
    """A Spark schema's JSON with every nullability flag set."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    flags = ("nullable", "containsNull", "valueContainsNull")
    return {
        k: True if k in flags else v if k == "metadata" else _nullable(v) for k, v in node.items()
    }


def task_groups(units: list[ParquetUnit], min_rows: int = MIN_TASK_ROWS) -> list[list[int]]:
    """``units``' indices in consecutive groups of at least ``min_rows`` rows each (the
    last may hold fewer): one task per group."""
    groups: list[list[int]] = []
    rows = min_rows
    for index, unit in enumerate(units):
        if rows >= min_rows:
            groups.append([])
            rows = 0
        groups[-1].append(index)
        rows += unit.rows
    return groups


def read_unit(unit: ParquetUnit, columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
    """The unit's ``columns`` in batches of at most ``batch_size`` rows.

    :raises UnitReadError: the file cannot be opened or decoded.
    """
    try:
        filesystem, _ = storage.resolve(unit.partition)
        with filesystem.open_input_file(unit.path) as source:
            reader = pq.ParquetFile(source)
            yield from reader.iter_batches(
                batch_size=batch_size, row_groups=[unit.row_group], columns=columns
            )
    except READ_ERRORS as exc:
        raise UnitReadError(
            f"{UNIT_READ_MARKER} row group {unit.row_group} of {unit.path} "
            f"(partition {unit.partition}): {exc}"
        ) from None
