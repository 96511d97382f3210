from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.fmap import FeatureMap
from dlflow_airflow.contract.model_resolution import MANIFEST_FILE, blessed_marker
from dlflow_airflow.contract.tasks import LabelEncoding
from spark_jobs import predict
from spark_jobs.predict import PredictError, predict_io
from spark_jobs.read_errors import CorruptInputError
from tf_jobs.model_io import ModelNotFoundError, save_model

from .conftest import DATE, DEMO_ROWS, NEXT_DATE, truncate_part_file

pytestmark = [pytest.mark.spark, pytest.mark.tf]


def tiny_model(
    fmap: FeatureMap, rename: dict[str, str] | None = None, *, two_outputs: bool = False
) -> Any:
    """A small DNN whose inputs are named like the fmap's encoded columns.

    ``two_outputs``: outputs ``logit`` (1 wide) and ``probability`` (2 wide,
    softmax) instead of one ``score``.
    """
    import keras

    inputs, hidden = tiny_body(fmap, rename)
    if two_outputs:
        logit = keras.layers.Dense(1, name="logit")(hidden)
        probability = keras.layers.Dense(2, activation="softmax", name="probability")(hidden)
        return keras.Model(inputs, {"logit": logit, "probability": probability})
    output = keras.layers.Dense(1, activation="sigmoid", name="score")(hidden)
    return keras.Model(inputs, output)


def tiny_body(fmap: FeatureMap, rename: dict[str, str] | None = None) -> tuple[dict, Any]:
    """The inputs (named like the fmap's encoded columns) and last hidden layer of a small DNN."""
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
    return inputs, hidden


def commit_model(model: Any, partition: str, manifest: dict[str, Any] | None = None) -> None:
    """Commit ``model`` (and a ``manifest.json`` when given) as train would."""
    staging = storage.staging_uri(partition)
    save_model(model, staging)
    if manifest is not None:
        storage.write_text(f"{staging}/{MANIFEST_FILE}", json.dumps(manifest))
    storage.commit(staging, partition)


def copy_encoded(
    spark: Any, pipeline: Any, date: str, rows: int | None = None, parts: int = 1
) -> str:
    """A committed encoded partition for ``date``: the pipeline's (its first ``rows`` rows),
    in ``parts`` part files when more than one."""
    uri = pipeline.job("predict", date).layout.encoded("ctr", date)
    frame = spark.read.parquet(pipeline.encode["output"])
    frame = frame if rows is None else frame.limit(rows)
    staging = storage.staging_uri(uri)
    (frame.repartition(parts) if parts > 1 else frame).write.parquet(staging)
    storage.commit(staging, uri)
    return uri


@pytest.fixture(scope="module")
def fmap(pipeline: Any) -> FeatureMap:
    return FeatureMap.load(pipeline.encode["fmap"])


def test_predict_scores_every_row(pipeline: Any, spark: Any, fmap: FeatureMap) -> None:
    job = pipeline.job("predict", options={"batch_size": 512})
    commit_model(tiny_model(fmap), job.layout.model("dnn", DATE), {"task": "binary"})
    result = predict.run(spark, job)
    assert result == {
        "rows": DEMO_ROWS,
        "output": job.layout.predict("dnn", DATE),
        "model": job.layout.model("dnn", DATE),
        "columns": ["uid", "score"],
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


def test_latest_model_is_the_newest_blessed_up_to_the_date(
    pipeline: Any, spark: Any, fmap: FeatureMap
) -> None:
    job = pipeline.job("predict", model_date="latest")
    partition = job.layout.model("dnn", DATE)
    if not storage.is_complete(partition):
        commit_model(tiny_model(fmap), partition)
    storage.write_text(blessed_marker(partition), "")
    result = predict.run(spark, job)
    assert result["model"] == partition and result["rows"] == DEMO_ROWS
    # A newer model that missed the evaluate gate is not taken, nor is its date's fmap.
    later = pipeline.job("predict", NEXT_DATE, model_date="latest")
    commit_model(tiny_model(fmap), job.layout.model("dnn", NEXT_DATE))
    copy_encoded(spark, pipeline, NEXT_DATE, rows=10)
    paths = predict_io(later)
    assert (paths.model, paths.femodel) == (partition, job.layout.femodel("ctr", DATE))
    assert paths.output == job.layout.predict("dnn", NEXT_DATE)
    earlier = pipeline.job("predict", "2025-12-31", model_date="latest")
    with pytest.raises(ModelNotFoundError, match="dated on or before 2025-12-31"):
        predict_io(earlier)


def test_missing_model_names_the_path(pipeline: Any, spark: Any) -> None:
    job = pipeline.job("predict", model_date="2026-01-05")
    expected = job.layout.model("dnn", "2026-01-05")
    root = job.layout.root("predict", "dnn")
    before = (storage.list_names(root), storage.list_names(f"{root}/_staging"))
    with pytest.raises(ModelNotFoundError, match=f"no complete model at {expected}"):
        predict.run(spark, job)
    assert (storage.list_names(root), storage.list_names(f"{root}/_staging")) == before


def test_model_input_missing_from_the_encoded_table_is_named(
    pipeline: Any, spark: Any, fmap: FeatureMap
) -> None:
    job = pipeline.job("predict", model_date="2025-12-30")
    commit_model(tiny_model(fmap, {"user_ctgs": "user_ids"}), job.layout.model("dnn", "2025-12-30"))
    # The fmap of that model date is the one the encoded table was made with.
    storage.write_text(f"{job.layout.femodel('ctr', '2025-12-30')}/fmap.json", fmap.to_json())
    with pytest.raises(PredictError, match="needs input 'user_ids', but the encoded table"):
        predict.run(spark, job)


@pytest.mark.parametrize("reader", ["files", "spark"])
def test_lost_rows_fail_and_commit_nothing(
    pipeline: Any, spark: Any, fmap: FeatureMap, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    job = pipeline.job("predict", model_date="2025-12-29")
    commit_model(tiny_model(fmap), job.layout.model("dnn", "2025-12-29"))
    storage.write_text(f"{job.layout.femodel('ctr', '2025-12-29')}/fmap.json", fmap.to_json())
    if reader == "spark":
        monkeypatch.setattr(predict, "parquet_units", lambda uri: None)
    scorer = getattr(predict, f"score_{'files' if reader == 'files' else 'frame'}")
    monkeypatch.setattr(predict, scorer.__name__, lambda *a, **k: scorer(*a, **k).limit(10))
    root = job.layout.root("predict", "dnn")
    before = storage.list_names(root)
    with pytest.raises(PredictError, match=f"wrote 10 rows for {DEMO_ROWS} encoded rows"):
        predict.run(spark, job)
    assert storage.list_names(root) == before
    assert storage.list_names(f"{root}/_staging") == []


def _scores(spark: Any, uri: str) -> list[tuple]:
    return sorted(tuple(row) for row in spark.read.parquet(uri).collect())


def test_tasks_reading_the_files_score_as_spark_reading_them(
    pipeline: Any, spark: Any, fmap: FeatureMap, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """The same rows and scores whoever reads the encoded table, keys and pass-through
    columns in Spark's types; the file tasks read each row group once."""
    model_at(pipeline, fmap, "2025-12-28", tiny_model(fmap, two_outputs=True))
    job = pipeline.job("predict", model_date="2025-12-28", options={"pass_through": ["label"]})
    units = predict.parquet_units(pipeline.encode["output"])
    assert units and sum(unit.rows for unit in units) == DEMO_ROWS
    used: list[bool] = []
    files = predict.score_files

    def recorded(*args: Any, **kwargs: Any) -> Any:
        scored = files(*args, **kwargs)
        used.append(scored is not None)
        return scored

    monkeypatch.setattr(predict, "score_files", recorded)
    with caplog.at_level("WARNING", logger=predict.log.name):
        from_files = predict.run(spark, job)
    assert used == [True] and "through Spark instead" not in caplog.text
    files_rows = _scores(spark, from_files["output"])
    files_types = spark.read.parquet(from_files["output"]).dtypes
    storage.discard(from_files["output"])
    # The schema came from the footers; from a Spark read (files Spark did not write) alike.
    assert predict.read_schema(units) == spark.read.parquet(pipeline.encode["output"]).schema
    monkeypatch.setattr(predict, "read_schema", lambda units: None)
    spark_schema = predict.run(spark, job)
    assert spark.read.parquet(spark_schema["output"]).dtypes == files_types
    assert _scores(spark, spark_schema["output"]) == files_rows and len(used) == 2
    storage.discard(spark_schema["output"])
    monkeypatch.setattr(predict, "parquet_units", lambda uri: None)
    from_spark = predict.run(spark, job)
    assert from_spark["columns"] == from_files["columns"]
    assert spark.read.parquet(from_spark["output"]).dtypes == files_types
    assert _scores(spark, from_spark["output"]) == files_rows
    assert len(files_rows) == DEMO_ROWS


def test_a_file_the_tasks_cannot_read_is_read_through_spark(
    pipeline: Any, spark: Any, fmap: FeatureMap, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """A task that cannot open its file (an executor without the file system's client,
    say) does not fail the job: the table is read through Spark, every row scored once."""
    job = model_at(pipeline, fmap, "2025-12-26", tiny_model(fmap))
    units = predict.parquet_units(pipeline.encode["output"])
    assert units
    gone = dataclasses.replace(units[0], path=f"{units[0].path}.gone")
    monkeypatch.setattr(predict, "parquet_units", lambda uri: [gone, *units[1:]])
    with caplog.at_level("WARNING", logger=predict.log.name):
        result = predict.run(spark, job)
    assert result["rows"] == DEMO_ROWS
    assert spark.read.parquet(result["output"]).select("uid").distinct().count() == DEMO_ROWS
    assert f"{gone.path} (partition " in caplog.text and "through Spark instead" in caplog.text
    root = job.layout.root("predict", "dnn")
    assert storage.list_names(f"{root}/_staging") == []


def model_at(pipeline: Any, fmap: FeatureMap, model_date: str, model: Any) -> Any:
    """A job whose model date holds ``model`` and the pipeline's fmap."""
    job = pipeline.job("predict", model_date=model_date)
    if not storage.is_complete(job.layout.model("dnn", model_date)):
        commit_model(model, job.layout.model("dnn", model_date))
        storage.write_text(f"{job.layout.femodel('ctr', model_date)}/fmap.json", fmap.to_json())
    return job


def test_every_model_output_gets_a_column_and_pass_through_follows(
    pipeline: Any, spark: Any, fmap: FeatureMap
) -> None:
    model_at(pipeline, fmap, "2025-12-28", tiny_model(fmap, two_outputs=True))
    job = pipeline.job("predict", model_date="2025-12-28", options={"pass_through": ["label"]})
    result = predict.run(spark, job)
    assert result["rows"] == DEMO_ROWS
    scores = spark.read.parquet(result["output"])
    assert scores.columns == result["columns"] == ["uid", "logit", "probability", "label"]
    assert dict(scores.dtypes)["probability"] == "array<float>"
    assert dict(scores.dtypes)["logit"] == "float"
    stats = scores.selectExpr(
        "count(*) n",
        "min(size(probability)) lo",
        "max(size(probability)) hi",
        "max(abs(probability[0] + probability[1] - 1)) off",
    ).first()
    assert (stats["n"], stats["lo"], stats["hi"]) == (DEMO_ROWS, 2, 2)
    assert stats["off"] < 1e-5
    labels = spark.read.parquet(pipeline.encode["output"]).select("uid", "label")
    assert labels.subtract(scores.select("uid", "label")).count() == 0


def test_pass_through_of_an_unknown_column_is_named(
    pipeline: Any, spark: Any, fmap: FeatureMap
) -> None:
    model_at(pipeline, fmap, "2025-12-28", tiny_model(fmap, two_outputs=True))
    job = pipeline.job("predict", model_date="2025-12-28", options={"pass_through": ["lable"]})
    with pytest.raises(PredictError, match=r"pass_through names \['lable'\]"):
        predict.run(spark, job)
    clash = pipeline.job("predict", model_date="2025-12-28", options={"pass_through": ["uid"]})
    with pytest.raises(PredictError, match="'uid' would be both a primary key"):
        predict.run(spark, clash)


def test_model_is_loaded_once_per_python_worker(
    pipeline: Any, spark: Any, fmap: FeatureMap
) -> None:
    import pyarrow as pa

    job = model_at(pipeline, fmap, "2025-12-27", tiny_model(fmap))
    model_uri = job.layout.model("dnn", "2025-12-27")
    encoded = spark.read.parquet(pipeline.encode["output"]).repartition(8)
    outputs = predict.OutputColumns((predict.ModelOutput("score", 1),))
    inputs = fmap.input_columns()
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "100")
    scored = predict.score_frame(encoded, fmap, model_uri, inputs, outputs)
    assert scored.count() == DEMO_ROWS

    def loads(batches: Any) -> Any:
        import os

        from spark_jobs import predict as worker_predict

        for _ in batches:
            pass
        yield pa.RecordBatch.from_pylist(
            [{"pid": os.getpid(), "loads": worker_predict.LOADS.count(model_uri)}]
        )

    probe = spark.range(0, 8, numPartitions=8).mapInArrow(loads, "pid long, loads long")
    per_worker = {row["pid"]: row["loads"] for row in probe.collect()}
    # 8 partitions ran on at most 2 reused workers, each of which loaded the model once.
    assert len(per_worker) < 8
    assert set(per_worker.values()) <= {0, 1}
    assert 1 in per_worker.values()


@pytest.fixture(scope="module")
def empty_date(pipeline: Any, spark: Any) -> str:
    """A committed encoded partition with no rows, for ``2026-01-03``."""
    copy_encoded(spark, pipeline, "2026-01-03", rows=0)
    return "2026-01-03"


def test_empty_input_is_an_error_unless_allowed(
    pipeline: Any, spark: Any, fmap: FeatureMap, empty_date: str
) -> None:
    model_at(pipeline, fmap, "2025-12-27", tiny_model(fmap))
    job = pipeline.job("predict", empty_date, model_date="2025-12-27")
    with pytest.raises(PredictError, match="has no rows; nothing to predict.*allow_empty: true"):
        predict.run(spark, job)
    assert not storage.exists(job.layout.predict("dnn", empty_date))

    allowed = pipeline.job(
        "predict", empty_date, model_date="2025-12-27", options={"allow_empty": True}
    )
    result = predict.run(spark, allowed)
    assert result["rows"] == 0
    assert storage.is_complete(result["output"])
    empty = spark.read.parquet(result["output"])
    assert empty.columns == ["uid", "score"]
    assert empty.count() == 0


def test_truncated_encoded_file_names_the_partition_and_file(
    pipeline: Any, spark: Any, fmap: FeatureMap
) -> None:
    day = "2026-01-04"
    job = pipeline.job("predict", day, model_date=DATE)
    if not storage.is_complete(job.layout.model("dnn", DATE)):
        commit_model(tiny_model(fmap), job.layout.model("dnn", DATE))
    uri = copy_encoded(spark, pipeline, day, rows=100, parts=2)
    part = truncate_part_file(uri, 1)
    with pytest.raises(CorruptInputError) as caught:
        predict.run(spark, job)
    message = str(caught.value)
    assert message.startswith(
        f"predict input (encoded features): cannot read file file://{part} of partition {uri}: "
    )
    assert "org.apache" not in message and "\n" not in message
    assert not storage.exists(job.layout.predict("dnn", day))


def test_a_gated_predict_refuses_an_unblessed_model(
    pipeline: Any, spark: Any, fmap: FeatureMap
) -> None:
    """With an evaluate gate in the pipeline, the job itself refuses an unjudged model too."""
    from dlflow_airflow.contract.jobconf import JobConfig

    gated = pipeline.job("predict", model_date="2026-01-07")
    commit_model(tiny_model(fmap), gated.layout.model("dnn", "2026-01-07"))
    body = gated.body()
    body["stage"]["needs"] = [*body["stage"]["needs"], "EVALUATE_RESULT"]
    job = JobConfig.from_body(DATE, body)
    root = job.layout.root("predict", "dnn")
    before = storage.list_names(root)
    with pytest.raises(
        PredictError, match=r"blocked by gate: model .*dt=2026-01-07 is not blessed"
    ):
        predict.run(spark, job)
    assert storage.list_names(root) == before


def labelled_job(
    pipeline: Any,
    spark: Any,
    fmap: FeatureMap,
    date: str,
    model: Any,
    task: str,
    encodings: tuple[LabelEncoding, ...],
    columns: dict[str, str] | None = None,
    **kwargs: Any,
) -> Any:
    """A predict job of feature tag ``labelled`` for ``date``: the pipeline's encoded rows
    plus ``columns`` (name -> SQL expression), an fmap with ``encodings`` as its labels,
    and ``model`` committed with a manifest naming ``task``."""
    from pyspark.sql import functions as F

    job = pipeline.job("predict", date, tag="labelled", **kwargs)
    labelled = dataclasses.replace(
        fmap,
        feature_tag="labelled",
        labels=tuple(e.name for e in encodings),
        label_encodings=encodings,
    )
    storage.write_text(f"{job.layout.femodel('labelled', date)}/fmap.json", labelled.to_json())
    commit_model(model, job.layout.model("dnn", date), {"task": task})
    frame = spark.read.parquet(pipeline.encode["output"])
    for name, expression in (columns or {}).items():
        frame = frame.withColumn(name, F.expr(expression))
    uri = job.layout.encoded("labelled", date)
    staging = storage.staging_uri(uri)
    frame.write.parquet(staging)
    storage.commit(staging, uri)
    return job


def softmax_model(fmap: FeatureMap, classes: int) -> Any:
    import keras

    inputs, hidden = tiny_body(fmap)
    return keras.Model(
        inputs, keras.layers.Dense(classes, activation="softmax", name="score")(hidden)
    )


# The encoded class index of each row: null, unseen (-1) or one of three classes.
CLASS_INDEX = (
    "CASE WHEN uid % 7 = 0 THEN NULL WHEN uid % 4 = 3 THEN -1 ELSE CAST(uid % 3 AS INT) END"
)


@pytest.mark.parametrize(
    ("date", "label", "classes", "spark_type"),
    [
        ("2026-02-01", "species", ("setosa", "versicolor", "virginica"), "string"),
        ("2026-02-02", "grade", (1, 5, 10), "bigint"),
    ],
)
def test_multiclass_writes_class_probabilities_and_the_decoded_class(
    pipeline: Any,
    spark: Any,
    fmap: FeatureMap,
    date: str,
    label: str,
    classes: tuple[str | int, ...],
    spark_type: str,
) -> None:
    encoding = LabelEncoding(label, "multiclass", classes, (50, 50, 50))
    job = labelled_job(
        pipeline,
        spark,
        fmap,
        date,
        softmax_model(fmap, 3),
        "multiclass",
        (encoding,),
        {label: CLASS_INDEX},
        options={"pass_through": [label]},
    )
    result = predict.run(spark, job)
    probabilities = [f"{label}_{value}" for value in classes]
    columns = ["uid", *probabilities, f"{label}_predicted", label]
    scores = spark.read.parquet(result["output"])
    assert scores.columns == result["columns"] == columns
    assert dict(scores.dtypes) == {
        "uid": "bigint",
        **dict.fromkeys(probabilities, "float"),
        f"{label}_predicted": spark_type,
        label: spark_type,
    }
    a, b, c = probabilities
    x, y, z = (repr(value) for value in classes)
    argmax = f"CASE WHEN {a} >= {b} AND {a} >= {c} THEN {x} WHEN {b} >= {c} THEN {y} ELSE {z} END"
    stats = scores.selectExpr(
        "count(*) n",
        f"max(abs({a} + {b} + {c} - 1)) off",
        f"sum(CAST({label}_predicted = {argmax} AS INT)) argmax",
    ).first()
    assert stats["n"] == stats["argmax"] == DEMO_ROWS
    assert stats["off"] < 1e-5
    # The pass-through label is the class again; the unseen (-1) and the null are null.
    decoded = f"element_at(array({x}, {y}, {z}), CAST(uid % 3 AS INT) + 1)"
    expected = spark.read.parquet(pipeline.encode["output"]).selectExpr(
        "uid",
        f"CAST(CASE WHEN uid % 7 = 0 OR uid % 4 = 3 THEN NULL ELSE {decoded} END AS {spark_type})",
    )
    assert expected.exceptAll(scores.select("uid", label)).count() == 0
    assert scores.where(f"{label} IS NULL").count() > 0


@pytest.mark.parametrize("task", ["multitask", "multilabel"])
def test_several_heads_write_a_score_per_label(
    pipeline: Any, spark: Any, fmap: FeatureMap, task: str
) -> None:
    import keras

    inputs, hidden = tiny_body(fmap)
    if task == "multitask":  # a dict of outputs, one per label
        date, second = "2026-02-03", LabelEncoding("gmv", "regression")
        outputs = {
            "click": keras.layers.Dense(1, activation="sigmoid", name="click")(hidden),
            "gmv": keras.layers.Dense(1, name="gmv")(hidden),
        }
    else:  # one output, a column per label
        date, second = "2026-02-04", LabelEncoding("buy", "binary")
        outputs = keras.layers.Dense(2, activation="sigmoid", name="score")(hidden)
    encodings = (LabelEncoding("click", "binary"), second)
    job = labelled_job(pipeline, spark, fmap, date, keras.Model(inputs, outputs), task, encodings)
    result = predict.run(spark, job)
    columns = ["uid", "score_click", f"score_{second.name}"]
    scores = spark.read.parquet(result["output"])
    assert scores.columns == result["columns"] == columns
    assert dict(scores.dtypes) == {"uid": "bigint", **dict.fromkeys(columns[1:], "float")}
    stats = scores.selectExpr("count(*) n", "count(score_click) c", "min(score_click) lo").first()
    assert stats["n"] == stats["c"] == DEMO_ROWS
    assert stats["lo"] >= 0.0


@pytest.mark.parametrize(
    ("date", "task", "message"),
    [
        (
            "2026-02-05",
            "multiclass",
            r"has outputs score \(4 wide\), which do not fit the heads of fmap .*: head 'score' "
            r"\(species\) has 4 probabilities per row, but the fmap knows 3 classes",
        ),
        (
            "2026-02-06",
            "multitask",
            r"has outputs ctr \(1 wide\), value \(1 wide\), which do not fit the heads of fmap "
            r".*name each output after its label",
        ),
    ],
)
def test_outputs_that_do_not_fit_the_heads_fail_before_any_task(
    pipeline: Any, spark: Any, fmap: FeatureMap, date: str, task: str, message: str
) -> None:
    import keras

    inputs, hidden = tiny_body(fmap)
    if task == "multiclass":
        model = softmax_model(fmap, 4)
        encodings = (LabelEncoding("species", "multiclass", ("a", "b", "c"), (1, 1, 1)),)
    else:
        ctr = keras.layers.Dense(1, activation="sigmoid", name="ctr")(hidden)
        value = keras.layers.Dense(1, name="value")(hidden)
        model = keras.Model(inputs, {"ctr": ctr, "value": value})
        encodings = (LabelEncoding("click", "binary"), LabelEncoding("gmv", "regression"))
    job = labelled_job(pipeline, spark, fmap, date, model, task, encodings)
    context = spark.sparkContext

    def jobs_of(group: str, action: Any) -> int:
        """How many Spark jobs ``action`` ran."""
        context.setJobGroup(group, group)
        try:
            action()
        finally:
            context.setLocalProperty("spark.jobGroup.id", None)
        return len(context.statusTracker().getJobIdsForGroup(group))

    def fails() -> None:
        with pytest.raises(PredictError, match=message) as caught:
            predict.run(spark, job)
        assert str(caught.value).startswith(f"model {job.layout.model('dnn', date)} ({task})")

    # The run reads the encoded table's schema from its footers (a Spark read of it runs a
    # job), and fails before counting or scoring it.
    read = jobs_of(f"read-{date}", lambda: spark.read.parquet(job.layout.encoded("labelled", date)))
    assert jobs_of(f"heads-{date}", fails) == 0 and read == 1
    assert not storage.exists(job.layout.predict("dnn", date))


def test_carried_columns_are_cast_to_the_types_spark_expects() -> None:
    import pyarrow as pa

    batch = pa.RecordBatch.from_pydict(
        {"uid": pa.array([1, 2], pa.int32()), "x": pa.array([[1.0], [2.0]])}
    )
    cast = predict._as_types(batch, {"uid": pa.int64()})
    assert cast.schema.field("uid").type == pa.int64()
    assert cast.column("uid").to_pylist() == [1, 2]
    assert cast.column("x").equals(batch.column("x"))
