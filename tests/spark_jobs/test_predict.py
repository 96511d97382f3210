from __future__ import annotations

from typing import Any

import pytest

from dlflow_airflow import storage
from dlflow_airflow.fmap import FeatureMap
from spark_jobs import predict
from spark_jobs.predict import PredictError, resolve_model
from tf_jobs.model_io import ModelNotFoundError, save_model

from .conftest import DATE, DEMO_ROWS, NEXT_DATE

pytestmark = [pytest.mark.spark, pytest.mark.tf]


def tiny_model(fmap: FeatureMap, rename: dict[str, str] | None = None) -> Any:
    """A small DNN whose inputs are named like the fmap's encoded columns."""
    import keras

    rename = rename or {}
    inputs, parts = {}, []
    for bucket in fmap.buckets:
        if bucket.nums:
            name = rename.get(bucket.nums_column, bucket.nums_column)
            inputs[name] = keras.Input((bucket.nums_width,), name=name)
            parts.append(inputs[name])
        if bucket.ctgs:
            name = rename.get(bucket.ctgs_column, bucket.ctgs_column)
            inputs[name] = keras.Input((bucket.ctgs_width,), name=name, dtype="int32")
            embedded = keras.layers.Embedding(bucket.ctgs_vocab_size, 4)(inputs[name])
            parts.append(keras.layers.Flatten()(embedded))
    hidden = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()(parts))
    output = keras.layers.Dense(1, activation="sigmoid")(hidden)
    return keras.Model(inputs, output)


def commit_model(model: Any, partition: str) -> None:
    staging = storage.staging_uri(partition)
    save_model(model, staging)
    storage.commit(staging, partition)


@pytest.fixture(scope="module")
def fmap(pipeline: Any) -> FeatureMap:
    return FeatureMap.load(pipeline.encode["fmap"])


def test_predict_scores_every_row(pipeline: Any, spark: Any, fmap: FeatureMap) -> None:
    job = pipeline.job(options={"batch_size": 512})
    commit_model(tiny_model(fmap), job.layout.model("dnn", DATE))
    result = predict.run(spark, job)
    assert result == {
        "rows": DEMO_ROWS,
        "output": job.layout.predict("dnn", DATE),
        "model": job.layout.model("dnn", DATE),
    }
    assert storage.is_complete(result["output"])
    scores = spark.read.parquet(result["output"])
    assert scores.columns == ["uid", "score"]
    assert dict(scores.dtypes) == {"uid": "bigint", "score": "float"}
    stats = scores.selectExpr(
        "count(*) n",
        "count(distinct uid) k",
        "min(score) lo",
        "max(score) hi",
        "count(score) scored",
    ).first()
    assert stats["n"] == stats["k"] == stats["scored"] == DEMO_ROWS
    assert 0.0 <= stats["lo"] <= stats["hi"] <= 1.0
    encoded_uids = spark.read.parquet(pipeline.encode["output"]).select("uid")
    assert encoded_uids.subtract(scores.select("uid")).count() == 0


def test_latest_model_is_the_newest_up_to_the_date(pipeline: Any, fmap: FeatureMap) -> None:
    job = pipeline.job(model_date="latest")
    partition = job.layout.model("dnn", DATE)
    if not storage.is_complete(partition):
        commit_model(tiny_model(fmap), partition)
    assert resolve_model(job) == (partition, DATE)
    later = pipeline.job(NEXT_DATE, model_date="latest")
    assert resolve_model(later) == (partition, DATE)
    earlier = pipeline.job("2025-12-31", model_date="latest")
    with pytest.raises(ModelNotFoundError, match="no committed model dated 2025-12-31 or earlier"):
        resolve_model(earlier)


def test_missing_model_names_the_path(pipeline: Any, spark: Any) -> None:
    job = pipeline.job(model_date=NEXT_DATE)
    expected = f"{job.layout.model('dnn', NEXT_DATE)}/model.keras"
    root = job.layout.root("predict", "dnn")
    before = (storage.list_names(root), storage.list_names(f"{root}/_staging"))
    with pytest.raises(ModelNotFoundError, match=f"no committed model at {expected}"):
        predict.run(spark, job)
    assert (storage.list_names(root), storage.list_names(f"{root}/_staging")) == before


def test_model_input_missing_from_the_encoded_table_is_named(
    pipeline: Any, spark: Any, fmap: FeatureMap
) -> None:
    job = pipeline.job(model_date="2025-12-30")
    commit_model(tiny_model(fmap, {"user_ctgs": "user_ids"}), job.layout.model("dnn", "2025-12-30"))
    # The fmap of that model date is the one the encoded table was made with.
    storage.write_text(f"{job.layout.femodel('ctr', '2025-12-30')}/fmap.json", fmap.to_json())
    with pytest.raises(PredictError, match="needs input 'user_ids', but the encoded table"):
        predict.run(spark, job)


def test_lost_rows_fail_and_commit_nothing(
    pipeline: Any, spark: Any, fmap: FeatureMap, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = pipeline.job(model_date="2025-12-29")
    commit_model(tiny_model(fmap), job.layout.model("dnn", "2025-12-29"))
    storage.write_text(f"{job.layout.femodel('ctr', '2025-12-29')}/fmap.json", fmap.to_json())
    scorer = predict.score_frame
    monkeypatch.setattr(predict, "score_frame", lambda *args: scorer(*args).limit(10))
    root = job.layout.root("predict", "dnn")
    before = storage.list_names(root)
    with pytest.raises(PredictError, match=f"wrote 10 rows for {DEMO_ROWS} encoded rows"):
        predict.run(spark, job)
    assert storage.list_names(root) == before
    assert storage.list_names(f"{root}/_staging") == []
