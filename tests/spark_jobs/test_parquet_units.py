from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spark_jobs.parquet_units import (
    UNIT_READ_MARKER,
    ParquetUnit,
    UnitReadError,
    parquet_units,
    read_schema,
    read_unit,
    task_groups,
    written_rows,
)


def _partition(root: Path) -> str:
    """Two part files (two row groups, then one), the files Spark leaves beside them."""
    root.mkdir(parents=True)
    table = pa.table({"uid": list(range(10)), "v": [float(i) for i in range(10)]})
    pq.write_table(table.slice(0, 6), root / "part-00000.parquet", row_group_size=4)
    pq.write_table(table.slice(6), root / "part-00001.parquet")
    (root / "_SUCCESS").touch()
    (root / ".part-00000.parquet.crc").write_bytes(b"crc")
    (root / "_temporary").mkdir()
    (root / "_temporary" / "part-x.parquet").write_bytes(b"half")
    return f"file://{root}"


def test_every_row_group_of_every_part_file_in_order(tmp_path: Path) -> None:
    uri = _partition(tmp_path / "p")
    units = parquet_units(uri)
    first, second = (str(tmp_path / "p" / f"part-0000{i}.parquet") for i in (0, 1))
    assert units == [
        ParquetUnit(uri, first, 0, 4),
        ParquetUnit(uri, first, 1, 2),
        ParquetUnit(uri, second, 0, 4),
    ]
    read = [b for unit in units for b in read_unit(unit, ["uid"], batch_size=3)]
    assert [b.num_rows for b in read] == [3, 1, 2, 3, 1]
    assert [v for b in read for v in b.column("uid").to_pylist()] == list(range(10))
    assert all(b.schema.names == ["uid"] for b in read)


def test_a_scheme_pyarrow_cannot_open_is_left_to_spark() -> None:
    assert parquet_units("s3a://bucket/encoded/TAG=x/dt=2026-01-01") is None


def test_an_unreadable_footer_is_left_to_spark(tmp_path: Path) -> None:
    uri = _partition(tmp_path / "p")
    (tmp_path / "p" / "part-00001.parquet").write_bytes(b"PAR1 not parquet")
    assert parquet_units(uri) is None


def test_a_unit_that_cannot_be_read_says_so_with_the_marker(tmp_path: Path) -> None:
    unit = ParquetUnit(f"file://{tmp_path}", f"{tmp_path}/gone.parquet", 0, 5)
    with pytest.raises(UnitReadError) as info:
        list(read_unit(unit, ["uid"], 10))
    assert str(info.value).startswith(
        f"{UNIT_READ_MARKER} row group 0 of {unit.path} (partition {unit.partition}): "
    )


def test_small_row_groups_are_packed_into_one_task() -> None:
    sizes = [5, 5, 12, 3, 1]
    units = [ParquetUnit("file:///p", f"/p/part-{i}", 0, rows) for i, rows in enumerate(sizes)]
    assert task_groups(units, min_rows=10) == [[0, 1], [2], [3, 4]]
    assert task_groups(units, min_rows=1) == [[0], [1], [2], [3], [4]]
    assert task_groups(units, min_rows=100) == [[0, 1, 2, 3, 4]]
    assert task_groups([], min_rows=10) == []


@pytest.mark.spark
def test_written_rows_come_from_the_footers_or_from_spark(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spark_jobs import parquet_units as units_module

    uri = _partition(tmp_path / "p")
    rows, footers = written_rows(spark, uri)
    assert rows == 10 and footers is not None
    assert [Path(path).name for path, _ in footers] == ["part-00000.parquet", "part-00001.parquet"]

    def unreadable(uri: str) -> Any:
        raise OSError("Unable to load libhdfs")

    monkeypatch.setattr(units_module, "read_footers", unreadable)
    # Spark lists the partition itself (and, like pyarrow, skips _SUCCESS, .crc, _temporary).
    assert written_rows(spark, uri) == (10, None)


@pytest.mark.spark
def test_the_schema_in_spark_footers_is_the_schema_of_a_spark_read(
    spark: Any, tmp_path: Path
) -> None:
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    schema = T.StructType(
        [
            T.StructField("uid", T.LongType(), False),
            T.StructField("nums", T.ArrayType(T.FloatType(), False), False),
            T.StructField("tags", T.MapType(T.StringType(), T.DoubleType(), False)),
            T.StructField("s", T.StructType([T.StructField("a", T.IntegerType(), False)])),
            T.StructField("day", T.DateType()),
            T.StructField("note", T.StringType(), metadata={"comment": "kept"}),
        ]
    )
    rows = [(1, [0.5], {"x": 1.0}, (3,), None, "a"), (2, [], None, None, None, None)] * 10
    frame = spark.createDataFrame(rows, schema).withColumn("y", F.lit(1.5))
    frame.repartition(2).write.parquet(str(tmp_path / "t"))
    units = parquet_units(f"file://{tmp_path / 't'}")
    assert units and len({u.path for u in units}) == 2
    assert read_schema(units) == spark.read.parquet(str(tmp_path / "t")).schema
    assert read_schema(units).fields[0].nullable  # as a Spark read makes it
    # Files pyarrow wrote carry no Spark schema; files that disagree would be Spark's pick.
    assert read_schema(parquet_units(_partition(tmp_path / "p")) or []) is None
    other = [dataclasses.replace(units[0], spark_schema=T.StructType([]).json()), *units[1:]]
    assert read_schema(other) is None
