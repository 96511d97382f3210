"""Every column type, every normaliser, vocabulary limits and bad inputs of encode."""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.fmap import FeatureMap, Normalizers
from dlflow_airflow.contract.layout import local_path
from spark_jobs import encode
from spark_jobs.feature_types import EncodeError, UnknownFeatureError, UnsupportedColumnTypeError

from .conftest import DATE, NEXT_DATE

pytestmark = pytest.mark.spark

SCHEMA = (
    "uid long, label int, n_int int, n_long long, n_float float, n_double double, "
    "flag boolean, n_pass int, city string, vec array<double>, tags map<string,double>"
)
ROWS = [
    (1, 0, 1, 10, 1.5, 2.0, True, 7, "a", [1.0, 2.0], {"x": 1.0, "y": 2.0}),
    (2, 1, 3, 30, 2.5, 4.0, False, None, "b", [3.0, 6.0], {"x": 3.0}),
    (3, 0, None, 20, None, 6.0, None, -2, None, None, None),
]
BUCKETS = {
    "mm": {"features": ["n_int", "vec", "tags"], "params": {"min": -1, "max": 1}},
    "z": {"features": ["n_long", "n_double"], "method": "zscore"},
    "p": {"features": ["n_float", "flag"], "method": "pnorm", "params": {"p": 2}},
    "raw": {"features": ["n_pass"], "encode": False},
}
NORM = math.sqrt(1.5**2 + 1)
NORM_3 = math.sqrt(2.0**2 + 0.5**2)  # row 3: n_float and flag take their means 2.0 and 0.5
EXPECTED = {  # uid -> (mm_nums, z_nums, p_nums, raw_nums, default_ctgs)
    1: ([-1, -1, -1, -1, -1], [-1, -1], [1.5 / NORM, 1 / NORM], [7], [2]),  # city a
    2: ([1, 1, 1, 1, -1], [1, 0], [1, 0], [2.5], [3]),  # city b; n_pass null: its mean
    # nulls take the fitted means (n_int 2, vec [2, 4], tags.x 2: the middle of the range);
    # tags.y is constant (2.0): minmax's low end
    3: ([0, 0, 0, 0, -1], [0, 1], [2.0 / NORM_3, 0.5 / NORM_3], [-2], [1]),  # city null
}
COLUMNS = ["mm_nums", "z_nums", "p_nums", "raw_nums", "default_ctgs"]


@pytest.fixture
def typed_job(workspace: str, write_table: Any, make_job: Any) -> Any:
    job = make_job("encode", workspace, buckets=BUCKETS, options={"tfrecord": True})
    write_table(job.layout.raw("ctr", DATE), ROWS, SCHEMA)
    return job


def _rows(spark: Any, uri: str) -> dict[int, list[list[float]]]:
    frame = spark.read.parquet(uri)
    assert frame.columns == ["uid", "label", *COLUMNS]
    return {r["uid"]: [list(r[c]) for c in COLUMNS] for r in frame.collect()}


def test_every_type_and_normaliser(spark: Any, typed_job: Any) -> None:
    result = encode.run(spark, typed_job)
    fmap = FeatureMap.load(result["fmap"])
    mm = fmap.bucket("mm")
    assert [(f.name, f.offset, f.size, f.shape) for f in mm.nums] == [
        ("n_int", 0, 1, (1,)),
        ("vec", 1, 2, (2,)),
        ("tags", 3, 2, (2,)),
    ]
    assert mm.nums_width == 5 and fmap.feature("tags").meta == {"keys": ["x", "y"]}
    assert mm.params == {"min": -1, "max": 1} and fmap.bucket("raw").encode is False
    assert list(mm.fields) == ["nums"]
    stats = Normalizers.load(result["fmap"].rsplit("/", 1)[0], fmap)
    assert stats.of("mm", "vec") == {"min": [1.0, 2.0], "max": [3.0, 6.0], "fill": [2.0, 4.0]}
    assert stats.of("z", "n_long") == {"mean": [20.0], "std": [10.0], "fill": [20.0]}
    assert stats.of("p", "n_float") == {"fill": [2.0]}
    assert stats.of("raw", "n_pass") == {"fill": [2.5]}
    got = _rows(spark, result["output"])
    for uid, expected in EXPECTED.items():
        for column, want, have in zip(COLUMNS, expected, got[uid], strict=True):
            assert have == pytest.approx(want, abs=1e-6), (uid, column)


def test_parquet_and_tfrecord_give_the_same_tensors(spark: Any, typed_job: Any) -> None:
    import tensorflow as tf

    result = encode.run(spark, typed_job)
    fmap = FeatureMap.load(result["fmap"])
    table = pq.read_table(local_path(result["output"])).sort_by("uid")
    parquet = next(
        iter(
            tf.data.Dataset.from_tensor_slices(
                {c: np.stack(table.column(c).to_numpy(zero_copy_only=False)) for c in COLUMNS}
            ).batch(10)
        )
    )
    widths = {b.nums_column: b.nums_width for b in fmap.buckets if b.nums}
    widths |= {b.ctgs_column: b.ctgs_width for b in fmap.buckets if b.ctgs}
    spec = {c: tf.io.FixedLenFeature([w], tf.float32) for c, w in widths.items()}
    spec["default_ctgs"] = tf.io.FixedLenFeature([1], tf.int64)
    spec["uid"] = tf.io.FixedLenFeature([], tf.int64)
    folder = local_path(result["tfrecord"])
    files = [f"{folder}/{n}" for n in storage.list_names(result["tfrecord"]) if ".tfrecord" in n]
    records = next(
        iter(tf.data.TFRecordDataset(files).batch(10).map(lambda x: tf.io.parse_example(x, spec)))
    )
    order = np.argsort(records["uid"].numpy())
    for column in COLUMNS:
        expected = parquet[column].numpy()
        np.testing.assert_allclose(records[column].numpy()[order], expected, rtol=1e-6)


def test_reuse_keeps_statistics_and_checks_array_size(
    spark: Any, typed_job: Any, write_table: Any, make_job: Any
) -> None:
    first = encode.run(spark, typed_job)
    job = make_job("encode", typed_job.workspace, NEXT_DATE, buckets=BUCKETS, model_date=DATE)
    later = [(9, 1, 5, 40, 0.0, 4.0, True, 1, "zz", [2.0, 4.0], {"y": 9.0, "new": 1.0})]
    write_table(job.layout.raw("ctr", NEXT_DATE), later, SCHEMA)
    second = encode.run(spark, job)
    assert second["fmap_reused"] and second["fmap_checksum"] == first["fmap_checksum"]
    (row,) = _rows(spark, second["output"]).values()
    assert row[0] == pytest.approx([1, 0, 0, 0, -1])  # clipped; x missing -> its mean 2
    assert row[1] == pytest.approx([2, 0]) and row[4] == [0]  # unseen city -> reserved 0

    write_table(job.layout.raw("ctr", NEXT_DATE), [(*later[0][:9], [1.0, 2.0, 3.0], None)], SCHEMA)
    with pytest.raises(Exception, match="array column 'vec' must hold 2 numbers.*holds 3"):
        encode.run(spark, job)
    root = job.layout.root("encoded", "ctr")
    assert storage.list_names(f"{root}/_staging") == []  # the failed attempt left nothing
    assert storage.is_complete(second["output"])  # and the earlier partition stays whole


def test_vocabulary_min_count_and_max_size(
    spark: Any, workspace: str, write_table: Any, make_job: Any
) -> None:
    values = ["a"] * 4 + ["b"] * 3 + ["c"] * 2 + ["d"]
    rows = [(i, 0, v, {v: 1}) for i, v in enumerate(values)] + [(10, 0, None, None)]
    buckets = {"u": {"features": ["city", "m"], "min_count": 2, "max_size": 2}}
    job = make_job("encode", workspace, buckets=buckets)
    write_table(
        job.layout.raw("ctr", DATE), rows, "uid long, label int, city string, m map<string,int>"
    )
    result = encode.run(spark, job)
    fmap = FeatureMap.load(result["fmap"])
    assert fmap.feature("city").meta["vocab"] == ["a", "b"] and fmap.feature("city").size == 4
    assert fmap.feature("m").meta["keys"] == ["a", "b"]
    encoded = spark.read.parquet(result["output"]).orderBy("uid").collect()
    # a=2, b=3; c and d (cut by min_count / max_size) take the unseen id 0, the null row 1
    assert [r["u_ctgs"][0] for r in encoded] == [2] * 4 + [3] * 3 + [0] * 3 + [1]


def test_all_null_column_and_new_column_warn(
    spark: Any,
    workspace: str,
    write_table: Any,
    make_job: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = make_job("encode", workspace)
    schema = "uid long, label int, age double, city string"
    write_table(job.layout.raw("ctr", DATE), [(1, 0, None, None), (2, 1, None, None)], schema)
    with caplog.at_level(logging.WARNING):
        result = encode.run(spark, job)
    assert "'age' is null in every row" in caplog.text
    assert "'city' is null in every row" in caplog.text
    assert [
        list(r)
        for r in spark.read.parquet(result["output"])
        .select("default_nums", "default_ctgs")
        .collect()
    ] == [[[0.0], [1]], [[0.0], [1]]]  # nulls take the null id, offset + 1

    later = make_job("encode", workspace, NEXT_DATE, model_date=DATE)
    write_table(later.layout.raw("ctr", NEXT_DATE), [(3, 0, 1.0, "a", 5)], f"{schema}, extra int")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        encode.run(spark, later)
    assert "['extra'] are not in the reused fmap" in caplog.text


BAD = [
    (
        "uid long, label int, m map<int,double>",
        [(1, 0, {1: 1.0})],
        UnsupportedColumnTypeError,
        "map column 'm' has keys of type int",
    ),
    ("uid long, label int, x double", [(1, 2, 1.0)], EncodeError, "must be 0 or 1.*'label': 2"),
    ("uid long, label int, x double", [], EncodeError, "has no rows; nothing was committed"),
    (
        "uid long, label int, v array<int>",
        [(1, 0, [1]), (2, 0, [1, 2])],
        EncodeError,
        "array column 'v' holds arrays of sizes 1 to 2",
    ),
]


@pytest.mark.parametrize(("schema", "rows", "error", "match"), BAD)
def test_bad_input_is_refused_before_writing(
    spark: Any,
    workspace: str,
    write_table: Any,
    make_job: Any,
    schema: str,
    rows: list[tuple],
    error: type[Exception],
    match: str,
) -> None:
    job = make_job("encode", workspace)
    write_table(job.layout.raw("ctr", DATE), rows, schema)
    with pytest.raises(error, match=match):
        encode.run(spark, job)
    assert not storage.exists(job.layout.encoded("ctr", DATE))
    assert not storage.exists(job.layout.femodel("ctr", DATE))


@pytest.mark.parametrize("measure_drift", [True, False], ids=["drift", "no-drift"])
def test_an_empty_day_with_a_reused_fmap_is_refused(
    spark: Any, workspace: str, write_table: Any, make_job: Any, measure_drift: bool
) -> None:
    """No check before the write on this path: the written rows' count refuses the day,
    and nothing is committed (the drift, measured first, has nothing to compare)."""
    schema = "uid long, label int, x double, city string"
    first = make_job("encode", workspace)
    write_table(first.layout.raw("ctr", DATE), [(1, 0, 1.0, "a"), (2, 1, 2.0, "b")], schema)
    encode.run(spark, first)
    gate = {"psi_max": 0, "null_rate_increase_max": 0, "unseen_rate_max": 0, "on_breach": "fail"}
    later = make_job("encode", workspace, NEXT_DATE, model_date=DATE, options={"drift": gate})
    write_table(later.layout.raw("ctr", NEXT_DATE), [], schema)
    with pytest.raises(EncodeError, match="dt=2026-01-02 has no rows; nothing was committed"):
        encode.run(spark, later, measure_drift=measure_drift)
    assert not storage.exists(later.layout.encoded("ctr", NEXT_DATE))


def test_bucket_typo_suggests_the_column(
    spark: Any, workspace: str, write_table: Any, make_job: Any
) -> None:
    job = make_job("encode", workspace, buckets={"u": {"features": ["tagz"]}})
    write_table(job.layout.raw("ctr", DATE), ROWS, SCHEMA)
    with pytest.raises(UnknownFeatureError, match="did you mean 'tags'"):
        encode.run(spark, job)
