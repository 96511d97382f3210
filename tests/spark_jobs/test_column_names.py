"""Any Spark column name is a feature: spaces, dots and backticks, through merge, encode,
train, evaluate and predict; model inputs, encoded columns and TFRecord keys stay bucket names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.fmap import FeatureMap, Normalizers
from dlflow_airflow.contract.schema import Buckets
from dlflow_airflow.contract.storage import resolve
from spark_jobs import encode, merge, predict
from spark_jobs.columns import col, quote

from .conftest import DATE, job_body, parse_job

pytestmark = [pytest.mark.spark, pytest.mark.tf]

ROWS = 600
SEED_SCHEMA = "uid long, label int"
SOURCE_SCHEMA = (
    "uid long, `mean radius` double, `worst.area` double, `cell.type` string, "
    "`scores.v 2` array<double>, `visits by.cat` map<string,int>, `odd``name` double"
)
BUCKETS = {"cell": {"features": ["mean radius", "worst.area", "cell.type"], "method": "zscore"}}
ENCODED_COLUMNS = ["uid", "label", "cell_nums", "cell_ctgs", "default_nums"]


def seed_rows() -> list[tuple]:
    return [(uid, int((uid * 7) % 10 < 4)) for uid in range(ROWS)]


def source_rows() -> list[tuple]:
    rows = []
    for uid in range(ROWS):
        radius = 10.0 + (uid % 13)
        rows.append(
            (
                uid,
                radius,
                radius * 3.5,
                "abc"[uid % 3],
                [uid % 5 * 1.0, uid % 7 * 1.0],
                {"x": uid % 4, "y.z": 1} if uid % 5 else None,
                uid % 9 * 0.5,
            )
        )
    return rows


def job(workspace: str, kind: str, **kwargs: Any) -> Any:
    kwargs.setdefault("buckets", BUCKETS)
    return parse_job(kind, DATE, job_body(workspace, **kwargs))


@dataclass(frozen=True)
class Run:
    workspace: str
    merge: dict[str, Any]
    encode: dict[str, Any]
    train: dict[str, Any]
    evaluate: dict[str, Any]
    predict: dict[str, Any]


@pytest.fixture(scope="module")
def run(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """merge -> encode (with TFRecords) -> train -> evaluate -> predict, once for the module."""
    from tf_jobs import evaluate, train

    ws = f"file://{tmp_path_factory.mktemp('names')}/ws"
    for name, rows, schema in (
        ("seed", seed_rows(), SEED_SCHEMA),
        ("cells", source_rows(), SOURCE_SCHEMA),
    ):
        uri = f"{ws}/upstream/{name}/dt={DATE}"
        staging = storage.staging_uri(uri)
        spark.createDataFrame(rows, schema).write.parquet(staging)
        storage.commit(staging, uri)
    options = {
        "seed": {"path": "{workspace}/upstream/seed/dt={date}"},
        "sources": [{"name": "cells", "path": "{workspace}/upstream/cells/dt={date}"}],
        "steps": [{"fill_missing": {"by_type": {"double": 0.0}}}, {"count_missing": {}}],
    }
    merged = merge.run(spark, job(ws, "merge", options=options))
    encoded = encode.run(spark, job(ws, "encode", options={"tfrecord": True}))
    trained = train.run(job(ws, "train", options={"threads": 2}))
    evaluated = evaluate.run(job(ws, "evaluate", options={"threads": 2, "plots": False}))
    scored = predict.run(spark, job(ws, "predict"))
    return Run(ws, merged, encoded, trained, evaluated, scored)


def test_quote_names_exactly_one_column(spark: Any) -> None:
    assert quote("a.b") == "`a.b`" and quote("x`y") == "`x``y`"
    frame = spark.createDataFrame([(1, 2, 3)], "`a.b` int, `x``y` int, `mean radius` int")
    assert frame.select(col("a.b"), col("x`y"), col("mean radius")).first() == (1, 2, 3)


def test_merge_keeps_every_name(run: Run) -> None:
    assert run.merge["rows"] == ROWS
    assert run.merge["columns"] == [
        "uid",
        "label",
        "mean radius",
        "worst.area",
        "cell.type",
        "scores.v 2",
        "visits by.cat",
        "odd`name",
        "missing_count",
        "missing_ratio",
    ]


def test_encode_maps_names_to_bucket_inputs(spark: Any, run: Run) -> None:
    fmap = FeatureMap.load(run.encode["fmap"].rsplit("/", 1)[0])
    cell, default = fmap.bucket("cell"), fmap.bucket("default")
    assert [f.name for f in cell.nums] == ["mean radius", "worst.area"]
    assert [f.name for f in cell.ctgs] == ["cell.type"]
    assert [f.name for f in default.nums] == [
        "scores.v 2",
        "visits by.cat",
        "odd`name",
        "missing_count",
        "missing_ratio",
    ]
    assert fmap.feature("scores.v 2").shape == (2,)
    assert fmap.feature("visits by.cat").meta["keys"] == ["x", "y.z"]
    assert fmap.input_columns() == ["cell_nums", "cell_ctgs", "default_nums"]
    femodel = run.encode["fmap"].rsplit("/", 1)[0]
    stats = Normalizers.load(femodel, fmap)
    assert stats.of("cell", "mean radius")["mean"] == [pytest.approx(15.98, abs=0.01)]
    encoded = spark.read.parquet(run.encode["output"])
    assert encoded.columns == ENCODED_COLUMNS and encoded.count() == ROWS
    radius = [row["cell_nums"][0] for row in encoded.select("cell_nums").collect()]
    assert abs(sum(radius) / len(radius)) < 1e-3  # zscore of "mean radius"


def test_tfrecord_keys_are_the_encoded_columns(run: Run) -> None:
    import tensorflow as tf

    filesystem, path = resolve(run.encode["tfrecord"])
    part = next(n for n in storage.list_names(run.encode["tfrecord"]) if n.endswith(".tfrecord"))
    record = next(iter(tf.data.TFRecordDataset(f"{path}/{part}").take(1)))
    keys = set(tf.train.Example.FromString(record.numpy()).features.feature)
    assert keys == set(ENCODED_COLUMNS)


def test_trained_model_reads_bucket_inputs_evaluate_and_predict_score(spark: Any, run: Run) -> None:
    from tf_jobs.model_io import load_model

    model = load_model(run.train["model"])
    assert sorted(t.name for t in model.inputs) == ["cell_ctgs", "cell_nums", "default_nums"]
    assert run.train["rows"] == ROWS and run.evaluate["rows"] == ROWS
    assert 0.0 <= run.evaluate["auc"] <= 1.0
    assert run.predict["rows"] == ROWS and run.predict["columns"] == ["uid", "score"]
    scores = spark.read.parquet(run.predict["output"]).where("score is not null").count()
    assert scores == ROWS


# ---------------------------------------------------------------- the spec


BUCKETS_ADAPTER = TypeAdapter(Buckets)


def test_any_column_name_is_a_feature() -> None:
    names = ["mean radius", "worst.area", "odd`name", "ünïcode", "a-b/c", " padded "]
    buckets = BUCKETS_ADAPTER.validate_python({"cell": {"features": names}})
    assert buckets["cell"].features == names


@pytest.mark.parametrize("name", ["", "tab\there", "new\nline", "nul\x00", "del\x7f"])
def test_empty_names_and_control_characters_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="without control characters") as caught:
        BUCKETS_ADAPTER.validate_python({"cell": {"features": ["ok", name]}})
    assert caught.value.errors()[0]["loc"] == ("cell", "features", 1)


def test_only_the_default_bucket_may_leave_out_features() -> None:
    buckets = BUCKETS_ADAPTER.validate_python({"default": {"method": "zscore"}})
    assert buckets["default"].features == [] and buckets["default"].method == "zscore"
    for bad in ({"user": {"method": "zscore"}}, {"user": {"features": []}}):
        with pytest.raises(ValidationError, match=r"bucket\(s\) \['user'\] list no features"):
            BUCKETS_ADAPTER.validate_python(bad)


def test_existing_buckets_validate_as_before() -> None:
    given = {
        "user": {"features": ["age", "city"], "method": "minmax", "params": {"min": -1}},
        "default": {"features": ["income"], "encode": False},
    }
    buckets = BUCKETS_ADAPTER.validate_python(given)
    assert buckets["user"].features == ["age", "city"] and not buckets["default"].encode
    dumped = {k: v.model_dump(mode="json") for k, v in buckets.items()}
    assert BUCKETS_ADAPTER.validate_python(dumped) == buckets  # the job document round trip
