"""Which input a file Spark could not read belongs to, and what passes through untouched."""

from __future__ import annotations

from typing import Any

import pytest

from spark_jobs.read_errors import (
    CorruptInputError,
    FailedRead,
    describe,
    failed_read,
    naming_bad_files,
    owner,
)

INPUTS = {
    "file:///ws/up/a/dt=2026-01-01": "merge input (source 'a')",
    "file:///ws/up/a/dt=2026-01-01/nested": "a nested input",
    "hdfs://nn:8020/warehouse/b": "merge input (source 'b')",
    "/plain/c": "merge input (source 'c')",
}


@pytest.mark.parametrize(
    ("file", "expected"),
    [
        ("file:/ws/up/a/dt=2026-01-01/part-0.parquet", "file:///ws/up/a/dt=2026-01-01"),
        ("file:///ws/up/a/dt=2026-01-01/nested/p.parquet", "file:///ws/up/a/dt=2026-01-01/nested"),
        ("hdfs://nn:8020/warehouse/b/x=1/part-0.orc", "hdfs://nn:8020/warehouse/b"),
        ("file:/plain/c/part-0.csv", "/plain/c"),
    ],
)
def test_a_file_belongs_to_the_deepest_input_holding_it(file: str, expected: str) -> None:
    assert owner(file, INPUTS) == (expected, INPUTS[expected])


def test_a_file_of_no_input_names_its_folder() -> None:
    assert owner("file:///ws/up/a/dt=2026-01-011/p.parquet", INPUTS) == (
        "file:///ws/up/a/dt=2026-01-011",
        "input",
    )


def test_the_message_is_one_line_naming_input_partition_file_and_reason() -> None:
    found = FailedRead("file:///plain/c/part-0.csv", "the file is not a Parquet file")
    assert describe(found, INPUTS) == (
        "merge input (source 'c'): cannot read file file:///plain/c/part-0.csv of partition "
        "/plain/c: the file is not a Parquet file. The file is truncated, corrupt or not in "
        "the input's format: rewrite that partition (rerun what produced it)"
    )


@pytest.mark.spark
def test_other_errors_pass_through(spark: Any) -> None:
    assert failed_read(ValueError("x")) is None
    with pytest.raises(ValueError, match="not a read"), naming_bad_files(INPUTS):
        raise ValueError("not a read")
    frame = spark.createDataFrame([(1,)], "a int")
    with pytest.raises(Exception, match="UNRESOLVED_COLUMN") as caught, naming_bad_files(INPUTS):
        frame.select("b").collect()
    assert not isinstance(caught.value, CorruptInputError)
