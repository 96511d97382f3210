from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.fmap import Bucket, Feature, FeatureMap, Normalizers
from dlflow_airflow.contract.model_resolution import ModelNotFoundError, blessed_marker
from dlflow_airflow.contract.schema import BucketSpec
from spark_jobs import encode, encode_apply, encode_fit
from spark_jobs.feature_types import EncodeError, UnknownFeatureError, UnsupportedColumnTypeError
from spark_jobs.paths import PartitionNotFoundError
from spark_jobs.read_errors import CorruptInputError

from .conftest import DATE, DEMO_ROWS, NEXT_DATE, truncate_part_file

pytestmark = pytest.mark.spark

RAW_SCHEMA = (
    "uid long, label int, age int, income double, active boolean, city string, device string, "
    "note string"
)
DAY_ONE = [
    (1, 0, 20, 100.0, True, "b", "x", "n1"),
    (2, 1, 30, math.nan, False, "a", "x", "n2"),
    (3, 0, 40, 300.0, None, "b", None, "n3"),
    (4, 1, None, 200.0, True, "c", "y", "n4"),
    (5, 0, 40, 100.0, True, "a", "x", "n5"),
]
DAY_TWO = [
    (6, 1, 50, 50.0, False, "zzz", "y", "n6"),
    (7, 0, 25, 150.0, True, "a", "new", "n7"),
]
BUCKETS = {"user": {"features": ["city", "age", "device"], "method": "minmax"}}
# uid -> (user_nums, user_ctgs, default_nums) for DAY_ONE with the fmap fitted on it:
# age in [20, 40]; income in [100, 300] (NaN ignored); city unseen=0 null=1, a=2 b=3 c=4
# (ties by value); device offset 5 (after city's 3 values + 2 reserved): unseen=5, null=6,
# x=7, y=8. Nulls (and NaN) take the fitted mean (impute: mean): age 32.5, income 175,
# active 0.75.
EXPECTED_ONE = {
    1: ([0.0], [3, 7], [0.0, 1.0]),
    2: ([0.5], [2, 7], [0.375, 0.0]),
    3: ([1.0], [3, 6], [1.0, 0.75]),
    4: ([0.625], [4, 8], [0.5, 1.0]),
    5: ([1.0], [2, 7], [0.0, 1.0]),
}
# The same with normalizers written before fill values existed: minmax maps a null to 0.
LEGACY_ONE = {
    **EXPECTED_ONE,
    2: ([0.5], [2, 7], [0.0, 0.0]),
    3: ([1.0], [3, 6], [1.0, 0.0]),
    4: ([0.0], [4, 8], [0.5, 1.0]),
}
# DAY_TWO with the DAY_ONE fmap: out-of-range numbers clip, unseen categories get offset + 0.
EXPECTED_TWO = {
    6: ([1.0], [0, 8], [0.0, 0.0]),
    7: ([0.25], [2, 5], [0.25, 1.0]),
}


@pytest.fixture
def raw_job(workspace: str, write_table: Any, make_job: Any) -> Any:
    """A job whose raw partition for DATE is DAY_ONE."""
    job = make_job("encode", workspace, buckets=BUCKETS, drop_columns=("note",))
    write_table(job.layout.raw("ctr", DATE), DAY_ONE, RAW_SCHEMA)
    return job


def encoded_rows(spark: Any, uri: str) -> dict[int, tuple]:
    frame = spark.read.parquet(uri)
    assert frame.columns == ["uid", "label", "user_nums", "user_ctgs", "default_nums"]
    return {
        r["uid"]: (
            [round(v, 6) for v in r["user_nums"]],
            list(r["user_ctgs"]),
            [round(v, 6) for v in r["default_nums"]],
        )
        for r in frame.collect()
    }


def test_fit_writes_fmap_and_encoded_table(spark: Any, raw_job: Any) -> None:
    result = encode.run(spark, raw_job)
    layout = raw_job.layout
    assert result["rows"] == 5 and not result["fmap_reused"] and result["tfrecord"] is None
    assert result["output"] == layout.encoded("ctr", DATE)
    assert storage.is_complete(result["output"]) and storage.is_complete(
        layout.femodel("ctr", DATE)
    )

    fmap = FeatureMap.load(result["fmap"])
    assert result["fmap_checksum"] == fmap.checksum
    assert [b.name for b in fmap.buckets] == ["user", "default"]
    user, default = fmap.buckets
    assert [(f.name, f.offset, f.size, f.meta) for f in user.nums] == [("age", 0, 1, {})]
    stats = Normalizers.load(layout.femodel("ctr", DATE), fmap)
    assert result["normalizers"] == f"{layout.femodel('ctr', DATE)}/normalizers.json"
    assert stats.of("user", "age") == {"min": [20.0], "max": [40.0], "fill": [32.5]}
    assert stats.of("default", "income") == {"min": [100.0], "max": [300.0], "fill": [175.0]}
    assert stats.of("default", "active") == {"min": [0.0], "max": [1.0], "fill": [0.75]}
    assert [(f.name, f.offset, f.size, f.meta["vocab"]) for f in user.ctgs] == [
        ("city", 0, 5, ["a", "b", "c"]),
        ("device", 5, 4, ["x", "y"]),
    ]
    assert user.ctgs_vocab_size == 9
    assert [(f.name, f.dtype, f.offset) for f in default.nums] == [
        ("income", "double", 0),
        ("active", "boolean", 1),
    ]
    assert default.ctgs == ()
    assert fmap.input_columns() == ["user_nums", "user_ctgs", "default_nums"]
    assert encoded_rows(spark, result["output"]) == EXPECTED_ONE


def test_encoded_files_hold_plain_values_and_key_statistics(spark: Any, raw_job: Any) -> None:
    """No dictionary pages (normalised numbers and ids are written plain), no min/max
    statistics for the feature arrays, statistics for the key column; array elements
    optional (as encoded tables have always been written), in the footers' Spark
    schema too."""
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    result = encode.run(spark, raw_job)
    filesystem, folder = storage.resolve(result["output"])
    files = filesystem.get_file_info(pafs.FileSelector(folder))
    parts = [f.path for f in files if f.path.endswith(".parquet")]
    assert parts
    for path in parts:
        with filesystem.open_input_file(path) as source:
            metadata = pq.ParquetFile(source).metadata
        group = metadata.row_group(0)
        schema = metadata.schema.to_arrow_schema()
        arrays_of = [f for f in schema if f.name.endswith(("_nums", "_ctgs"))]
        assert len(arrays_of) == 3 and all(f.type.value_field.nullable for f in arrays_of)
        spark_schema = json.loads(schema.metadata[b"org.apache.spark.sql.parquet.row.metadata"])
        assert all(
            f["type"]["containsNull"]
            for f in spark_schema["fields"]
            if f["name"] in schema.names and f["name"].endswith(("_nums", "_ctgs"))
        )
        chunks = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
        assert not any(c.has_dictionary_page for c in chunks.values()), chunks
        assert chunks["uid"].is_stats_set
        arrays = [c for name, c in chunks.items() if name.endswith(".list.element")]
        assert len(arrays) == 3 and not any(c.is_stats_set for c in arrays)


def test_reused_fmap_clips_and_maps_unseen_to_offset_zero(
    spark: Any, raw_job: Any, write_table: Any, make_job: Any
) -> None:
    first = encode.run(spark, raw_job)
    second_job = make_job(
        "encode", raw_job.workspace, NEXT_DATE, buckets={}, model_date=DATE, drop_columns=("note",)
    )
    write_table(second_job.layout.raw("ctr", NEXT_DATE), DAY_TWO, RAW_SCHEMA)
    second = encode.run(spark, second_job)
    assert second["fmap_reused"] and second["fmap"] == first["fmap"]
    assert second["fmap_checksum"] == first["fmap_checksum"]
    assert encoded_rows(spark, second["output"]) == EXPECTED_TWO

    refit = make_job(
        "encode",
        raw_job.workspace,
        NEXT_DATE,
        options={"refit": True},
        model_date=DATE,
        drop_columns=("note",),
    )
    result = encode.run(spark, refit)
    assert not result["fmap_reused"] and result["fmap"] == first["fmap"]
    assert result["fmap_checksum"] != first["fmap_checksum"]
    (bucket,) = FeatureMap.load(result["fmap"]).buckets
    assert bucket.name == "default"
    assert [f.meta["vocab"] for f in bucket.ctgs] == [["a", "zzz"], ["new", "y"]]


def test_large_vocabularies_use_a_join_with_the_same_result(
    spark: Any, raw_job: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(encode_apply, "MAP_LOOKUP_LIMIT", 2)  # city (3 values) takes the join
    result = encode.run(spark, raw_job)
    assert encoded_rows(spark, result["output"]) == EXPECTED_ONE


@pytest.mark.parametrize("lookup_limit", [64, 0], ids=["literal-map", "join"])
def test_format_1_fmap_keeps_its_ids(
    spark: Any, monkeypatch: pytest.MonkeyPatch, lookup_limit: int
) -> None:
    """Format 1 shared offset + 0 between nulls and unseen values; its models keep that."""
    monkeypatch.setattr(encode_apply, "MAP_LOOKUP_LIMIT", lookup_limit)
    frame = spark.createDataFrame(
        [(1, "a"), (2, "b"), (3, None), (4, "z")], "uid long, city string"
    )

    def ids(format_version: int, size: int) -> list[int]:
        city = Feature("city", "string", size, 10, {"vocab": ["a", "b"]})
        fmap = FeatureMap("ctr", DATE, ("uid",), (), (Bucket("u", "minmax", ctgs=(city,)),))
        fmap = dataclasses.replace(fmap, format=format_version)
        out = encode_apply.encode_frame(spark, frame, fmap, Normalizers(fmap.checksum))
        return [r["u_ctgs"][0] for r in out.orderBy("uid").collect()]

    assert ids(2, 4) == [12, 13, 11, 10]  # a, b, null, unseen
    assert ids(1, 3) == [11, 12, 10, 10]


def test_many_categories_are_warned_about(
    spark: Any, raw_job: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(encode_fit, "MANY_CATEGORIES", 2)
    with caplog.at_level(logging.WARNING, logger="spark_jobs.encode"):
        encode.run(spark, raw_job)
    assert "'city' has 3 categories" in caplog.text
    assert "'device'" not in caplog.text


def test_unknown_bucket_column_suggests_a_name(spark: Any, raw_job: Any, make_job: Any) -> None:
    job = make_job("encode", raw_job.workspace, buckets={"user": {"features": ["agee", "city"]}})
    with pytest.raises(UnknownFeatureError, match="'user' lists 'agee'.*did you mean 'age'"):
        encode.run(spark, job)
    job = make_job("encode", raw_job.workspace, buckets={"user": {"features": ["label"]}})
    with pytest.raises(UnknownFeatureError, match="'label', which is a primary key, label"):
        encode.run(spark, job)
    assert not storage.exists(job.layout.femodel("ctr", DATE))
    # An unknown method is the bucket model's error, raised when the job document is parsed.
    with pytest.raises(ValidationError, match=r"method\s+Input should be 'minmax', 'zscore'"):
        make_job(
            "encode", raw_job.workspace, buckets={"user": {"features": ["age"], "method": "l2"}}
        )


def test_unsupported_type_names_the_column(
    spark: Any, workspace: str, write_table: Any, make_job: Any
) -> None:
    job = make_job("encode", workspace)
    write_table(
        job.layout.raw("ctr", DATE), [(1, 0, ["a"])], "uid long, label int, hist array<string>"
    )
    with pytest.raises(UnsupportedColumnTypeError, match="'hist' has type array<string>"):
        encode.run(spark, job)


def test_missing_raw_names_the_path(spark: Any, workspace: str, make_job: Any) -> None:
    job = make_job("encode", workspace)
    with pytest.raises(
        PartitionNotFoundError, match=f"run merge first.*{job.layout.raw('ctr', DATE)}"
    ):
        encode.run(spark, job)


def test_reused_fmap_refuses_a_vanished_column(
    spark: Any, raw_job: Any, write_table: Any, make_job: Any
) -> None:
    encode.run(spark, raw_job)
    job = make_job("encode", raw_job.workspace, NEXT_DATE, model_date=DATE)
    write_table(
        job.layout.raw("ctr", NEXT_DATE),
        [(6, 1, 5, "a")],
        "uid long, label int, agee int, city string",
    )
    with pytest.raises(UnknownFeatureError, match="needs column 'age' .*did you mean 'agee'"):
        encode.run(spark, job)


def commit_model(job: Any, model_date: str, *, blessed: bool) -> str:
    """A complete model partition (encode reads only its markers), blessed or not."""
    partition = job.layout.model("dnn", model_date)
    storage.write_text(f"{partition}/model.keras", "not read by encode")
    storage.write_text(f"{partition}/_SUCCESS", "")
    if blessed:
        storage.write_text(blessed_marker(partition), "")
    return partition


def test_latest_encodes_with_the_fmap_of_the_newest_blessed_model(
    spark: Any, raw_job: Any, write_table: Any, make_job: Any
) -> None:
    """``latest`` is the model predict will use, so its fmap, not the newest fmap."""
    first = encode.run(spark, raw_job)  # fmap of DATE
    same = make_job("encode", raw_job.workspace, NEXT_DATE, drop_columns=("note",))
    write_table(same.layout.raw("ctr", NEXT_DATE), DAY_TWO, RAW_SCHEMA)
    newest = encode.run(spark, same)  # fmap of NEXT_DATE: newer, but no model uses it
    assert not newest["fmap_reused"] and newest["fmap"] != first["fmap"]
    commit_model(raw_job, DATE, blessed=True)
    commit_model(raw_job, NEXT_DATE, blessed=False)  # missed the evaluate gate

    latest = make_job(
        "encode", raw_job.workspace, NEXT_DATE, model_date="latest", drop_columns=("note",)
    )
    result = encode.run(spark, latest)
    assert result["fmap_reused"] and result["fmap"] == first["fmap"]
    assert result["fmap_checksum"] == first["fmap_checksum"]
    assert encoded_rows(spark, result["output"]) == EXPECTED_TWO


def test_latest_without_a_blessed_model_names_the_model_folder(
    spark: Any, raw_job: Any, make_job: Any
) -> None:
    latest = make_job("encode", raw_job.workspace, model_date="latest", drop_columns=("note",))
    models = raw_job.layout.root("model", "dnn")
    with pytest.raises(ModelNotFoundError, match=f"no blessed model under {models} dated on or"):
        encode.run(spark, latest)
    commit_model(raw_job, DATE, blessed=False)
    with pytest.raises(ModelNotFoundError, match=f"{models} .*complete but not blessed: {DATE}"):
        encode.run(spark, latest)
    assert not storage.exists(raw_job.layout.encoded("ctr", DATE))


def test_latest_needs_the_fmap_of_its_model(spark: Any, raw_job: Any, make_job: Any) -> None:
    """``latest`` reuses an fmap and never fits one, even when there is none."""
    commit_model(raw_job, DATE, blessed=True)
    latest = make_job("encode", raw_job.workspace, model_date="latest", drop_columns=("note",))
    femodel = raw_job.layout.femodel("ctr", DATE)
    with pytest.raises(EncodeError, match=f"names the model of {DATE}, whose fmap {femodel}"):
        encode.run(spark, latest)
    assert not storage.exists(femodel)
    assert not storage.exists(raw_job.layout.encoded("ctr", DATE))


def test_demo_fmap_matches_the_raw_table(pipeline: Any, spark: Any) -> None:
    result = pipeline.encode
    assert result["rows"] == DEMO_ROWS
    fmap = FeatureMap.load(result["fmap"])
    assert [b.name for b in fmap.buckets] == ["user", "behaviour", "default"]
    raw: pd.DataFrame = spark.read.parquet(pipeline.merge["output"]).toPandas()
    user = fmap.bucket("user")
    assert [f.name for f in user.nums] == ["age", "income"]
    assert [(f.name, f.offset) for f in user.ctgs] == [("city", 0), ("device", 32)]
    city = user.ctgs[0]
    counts = raw["city"].value_counts()
    expected = sorted(counts.index, key=lambda v: (-counts[v], v))
    assert city.meta["vocab"] == expected and city.size == len(expected) + 2 == 32
    income = user.nums[1]
    stats = Normalizers.load(result["fmap"].rsplit("/", 1)[0], fmap).of("user", "income")
    low, high = stats["min"][0], stats["max"][0]
    assert (low, high) == (raw["income"].min(), raw["income"].max())
    assert [f.name for f in fmap.bucket("default").nums] == ["dwell_time"]

    encoded = spark.read.parquet(result["output"]).toPandas().set_index("uid")
    assert list(encoded.columns) == ["label", *fmap.input_columns()]
    sample = raw.dropna().head(5).set_index("uid")
    for uid, row in sample.iterrows():
        nums, ctgs = encoded.loc[uid, "user_nums"], encoded.loc[uid, "user_ctgs"]
        assert nums[income.offset] == pytest.approx((row["income"] - low) / (high - low), rel=1e-6)
        assert ctgs[0] == city.offset + 2 + city.meta["vocab"].index(row["city"])


def test_default_bucket_with_only_a_method_applies_it(spark: Any, raw_job: Any, make_job: Any):
    """``buckets.default: {method: zscore}`` sets the method of the features no bucket lists."""
    buckets = {**BUCKETS, "default": {"method": "zscore"}}
    job = make_job("encode", raw_job.workspace, buckets=buckets, drop_columns=("note",))
    result = encode.run(spark, job)
    fmap = FeatureMap.load(result["fmap"])
    default = fmap.bucket("default")
    assert default.method == "zscore"
    assert [f.name for f in default.nums] == ["income", "active"]
    stats = Normalizers.load(result["fmap"].rsplit("/", 1)[0], fmap).of("default", "income")
    mean, std = stats["mean"][0], stats["std"][0]
    assert mean == 175.0 and std == pytest.approx(95.7427, abs=1e-4)  # NaN left out
    rows = encoded_rows(spark, result["output"])
    assert rows[1][2][0] == pytest.approx((100.0 - mean) / std, abs=1e-5)
    assert rows[2][2][0] == 0.0  # NaN: zscore's null value
    assert rows[1][:2] == EXPECTED_ONE[1][:2]  # the user bucket is untouched

    # Every feature in a bucket: the method-only default bucket is simply empty.
    everything = {"user": {"features": ["city", "age", "device", "income", "active"]}}
    job = make_job(
        "encode",
        raw_job.workspace,
        NEXT_DATE,
        buckets={**everything, "default": {"method": "zscore"}},
        drop_columns=("note",),
    )
    write_table_like(spark, job.layout.raw("ctr", NEXT_DATE))
    assert [b.name for b in FeatureMap.load(encode.run(spark, job)["fmap"]).buckets] == ["user"]


def write_table_like(spark: Any, uri: str, rows: list[tuple] = DAY_ONE, parts: int = 1) -> str:
    """A committed raw partition of ``parts`` part files."""
    staging = storage.staging_uri(uri)
    spark.createDataFrame(rows, RAW_SCHEMA).repartition(parts).write.parquet(staging)
    storage.commit(staging, uri)
    return uri


@pytest.mark.parametrize("index", [0, 1], ids=["first-file", "second-file"])
def test_truncated_raw_file_names_partition_and_file(
    spark: Any, workspace: str, make_job: Any, index: int
) -> None:
    job = make_job("encode", workspace, buckets=BUCKETS, drop_columns=("note",))
    raw_uri = write_table_like(spark, job.layout.raw("ctr", DATE), parts=2)
    part = truncate_part_file(raw_uri, index)
    with pytest.raises(CorruptInputError) as caught:
        encode.run(spark, job)
    message = str(caught.value)
    assert message.startswith("encode input (raw features): cannot read file file:")
    assert f"{Path(part).name} of partition {raw_uri}: " in message
    assert "rewrite that partition" in message
    assert "\n" not in message and "org.apache" not in message and "Py4J" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert not storage.exists(job.layout.encoded("ctr", DATE))
    assert not storage.exists(job.layout.femodel("ctr", DATE))


def test_a_truncated_raw_file_is_named_when_the_fmap_is_reused(
    spark: Any, raw_job: Any, make_job: Any
) -> None:
    """Drift reads the raw files first (with pyarrow); a bad file still gets Spark's naming."""
    encode.run(spark, raw_job)
    job = make_job("encode", raw_job.workspace, NEXT_DATE, buckets=BUCKETS, model_date=DATE)
    raw_uri = write_table_like(spark, job.layout.raw("ctr", NEXT_DATE), parts=2)
    part = truncate_part_file(raw_uri, 1)
    with pytest.raises(CorruptInputError) as caught:
        encode.run(spark, job)
    message = str(caught.value)
    assert f"{Path(part).name} of partition {raw_uri}: " in message
    assert "\n" not in message and "Py4J" not in message
    assert not storage.exists(job.layout.encoded("ctr", NEXT_DATE))


def test_a_bucket_without_features_is_refused_by_encode_too(raw_job: Any) -> None:
    """Only ``default`` may leave out features, whatever parsed the job document."""
    job = dataclasses.replace(raw_job, buckets={"user": BucketSpec(method="zscore")})
    with pytest.raises(EncodeError, match=r"bucket\(s\) \['user'\] list no features"):
        encode_fit.plan_buckets(["age"], job, ["uid", "label", "age"])


def test_statistics_without_fill_values_encode_as_before(
    spark: Any, raw_job: Any, write_table: Any, make_job: Any
) -> None:
    """An fmap and normalizers.json written before imputation (no ``fill``, no
    ``missing_indicators``) encode the same rows exactly as they always did."""
    first = encode.run(spark, raw_job)
    femodel = raw_job.layout.femodel("ctr", DATE)
    fmap = FeatureMap.load(femodel)
    assert all("missing_indicators" not in b for b in fmap.to_dict()["buckets"])
    fitted = Normalizers.load(femodel, fmap).stats
    old = {
        bucket: {name: {k: v for k, v in s.items() if k != "fill"} for name, s in feats.items()}
        for bucket, feats in fitted.items()
    }
    Normalizers(fmap.checksum, old).save(femodel)  # what the code wrote before fill values

    again = make_job(
        "encode", raw_job.workspace, NEXT_DATE, model_date=DATE, drop_columns=("note",)
    )
    write_table(again.layout.raw("ctr", NEXT_DATE), DAY_ONE, RAW_SCHEMA)
    result = encode.run(spark, again)
    assert result["fmap_reused"] and result["fmap_checksum"] == first["fmap_checksum"]
    assert encoded_rows(spark, result["output"]) == LEGACY_ONE


def test_array_elements_stay_optional_when_positions_are_constants(
    spark: Any, workspace: str, write_table: Any, make_job: Any
) -> None:
    """A feature constant at fit normalises to a constant, which Spark folds into a
    non-null literal: the arrays' elements stay optional in the files all the same."""
    import pyarrow.parquet as pq

    buckets = {
        "lead": {"features": ["k", "x"], "method": "minmax"},  # the constant comes first
        "flat": {"features": ["k2"], "method": "zscore"},  # only constants
        "ids": {"features": ["c"]},
    }
    job = make_job("encode", workspace, buckets=buckets)
    rows = [(i, i % 2, 7, 3, float(i), "ab"[i % 2]) for i in range(6)]
    schema = "uid long, label int, k int, k2 int, x double, c string"
    write_table(job.layout.raw("ctr", DATE), rows, schema)
    result = encode.run(spark, job)
    table = pq.read_table(storage.resolve(result["output"])[1])
    arrays = [f for f in table.schema if f.name.endswith(("_nums", "_ctgs"))]
    assert {f.name for f in arrays} == {"lead_nums", "flat_nums", "ids_ctgs"}
    assert all(f.type.value_field.nullable for f in arrays), table.schema
    by_uid = {r["uid"]: r for r in table.to_pylist()}
    assert by_uid[5]["lead_nums"] == [0.0, 1.0] and by_uid[0]["lead_nums"] == [0.0, 0.0]
    assert {tuple(r["flat_nums"]) for r in by_uid.values()} == {(0.0,)}
