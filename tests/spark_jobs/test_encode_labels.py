"""Labels at encode: checked by the model's task, classes fitted into the fmap, indices written."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.artifacts import ENCODING_FILE, unseen_labels_of
from dlflow_airflow.contract.fmap import FeatureMap, Normalizers
from dlflow_airflow.contract.tasks import UNSEEN_CLASS, LabelEncoding
from spark_jobs import encode
from spark_jobs.feature_types import EncodeError

from .conftest import DATE, NEXT_DATE, job_body, parse_job

pytestmark = pytest.mark.spark

SCHEMA = "uid long, species string, petal double, kind int, click int, gmv double"
DAY_ONE = [
    (1, "setosa", 1.4, 7, 0, 0.0),
    (2, "virginica", 5.1, 3, 1, 12.5),
    (3, "versicolor", 4.2, 7, 1, 3.0),
    (4, "setosa", 1.3, 3, 0, 0.0),
    (5, "virginica", None, 9, 1, 8.0),
]
DAY_TWO = [
    (6, "setosa", 1.5, 7, 0, 0.0),
    (7, "iris-x", 4.0, 3, 1, 1.0),
    (8, "iris-x", 4.1, 7, 0, 2.0),
    (9, "iris-y", 4.4, 7, 0, 2.0),
]


def job(
    workspace: str,
    labels: list[str],
    model: str,
    date: str = DATE,
    model_date: str = "same",
    heads: dict[str, str] | None = None,
) -> Any:
    body = job_body(workspace, model_date=model_date, drop_columns=("kind", "click", "gmv"))
    body["feature"]["labels"] = labels
    body["feature"]["drop_columns"] = [
        c for c in ("species", "kind", "click", "gmv") if c not in labels
    ]
    body["model"].update(name=model, heads=heads or {})
    return parse_job("encode", date, body)


@pytest.fixture
def raw(workspace: str, write_table: Any, make_job: Any) -> str:
    layout = make_job("encode", workspace).layout
    write_table(layout.raw("ctr", DATE), DAY_ONE, SCHEMA)
    write_table(layout.raw("ctr", NEXT_DATE), DAY_TWO, SCHEMA)
    return workspace


def labels_by_uid(spark: Any, uri: str, label: str) -> dict[int, Any]:
    return {r["uid"]: r[label] for r in spark.read.parquet(uri).collect()}


def test_a_multiclass_label_is_fitted_and_written_as_its_class_index(spark: Any, raw: str) -> None:
    fitted = job(raw, ["species"], "dnn_classifier")
    result = encode.run(spark, fitted)
    fmap = FeatureMap.load(fitted.layout.femodel("ctr", DATE))
    assert fmap.label_encodings == (
        LabelEncoding("species", "multiclass", ("setosa", "versicolor", "virginica"), (2, 1, 2)),
    )
    assert labels_by_uid(spark, result["output"], "species") == {1: 0, 2: 2, 3: 1, 4: 0, 5: 2}
    assert spark.read.parquet(result["output"]).schema["species"].dataType.simpleString() == "int"
    assert unseen_labels_of(result["output"]) == {}
    assert [h.classes for h in fmap.heads("multiclass")] == [("setosa", "versicolor", "virginica")]


def test_unseen_classes_are_minus_one_and_counted_in_the_encoding_record(
    spark: Any, raw: str
) -> None:
    encode.run(spark, job(raw, ["species"], "dnn_classifier"))
    result = encode.run(spark, job(raw, ["species"], "dnn_classifier", NEXT_DATE, DATE))
    assert labels_by_uid(spark, result["output"], "species") == {
        6: 0,
        7: UNSEEN_CLASS,
        8: UNSEEN_CLASS,
        9: UNSEEN_CLASS,
    }
    assert unseen_labels_of(result["output"]) == {
        "species": {"rows": 3, "values": {"iris-x": 2, "iris-y": 1}}
    }
    record = json.loads(storage.read_text(f"{result['output']}/{ENCODING_FILE}"))
    assert record["model_date"] == DATE


def test_integer_classes_keep_their_type(spark: Any, raw: str) -> None:
    fitted = job(raw, ["kind"], "dnn_classifier")
    result = encode.run(spark, fitted)
    (encoding,) = FeatureMap.load(fitted.layout.femodel("ctr", DATE)).label_encodings
    assert encoding.classes == (3, 7, 9) and encoding.counts == (2, 2, 1)
    assert labels_by_uid(spark, result["output"], "kind") == {1: 1, 2: 0, 3: 1, 4: 0, 5: 2}


def test_a_multitask_fit_records_each_heads_kind(spark: Any, raw: str) -> None:
    fitted = job(raw, ["click", "gmv"], "dnn_multitask", heads={"gmv": "regression"})
    result = encode.run(spark, fitted)
    fmap = FeatureMap.load(fitted.layout.femodel("ctr", DATE))
    assert [(e.name, e.kind) for e in fmap.label_encodings] == [
        ("click", "binary"),
        ("gmv", "regression"),
    ]
    assert labels_by_uid(spark, result["output"], "gmv")[2] == 12.5
    # The same fmap read by a model whose heads changed: refit, said before any work.
    changed = job(raw, ["click", "gmv"], "dnn_multitask", NEXT_DATE, DATE)
    with pytest.raises(EncodeError, match=r"reads them as \{'click': 'binary', 'gmv': 'binary'"):
        encode.run(spark, changed)


def test_a_double_label_is_refused_for_a_multiclass_model(spark: Any, raw: str) -> None:
    with pytest.raises(EncodeError, match="label 'gmv' has type double.*string or an integer"):
        encode.run(spark, job(raw, ["gmv"], "dnn_classifier"))


def test_binary_labels_of_a_multilabel_model_are_checked(spark: Any, raw: str) -> None:
    with pytest.raises(EncodeError, match=r"learns \['click', 'kind'\] as binary labels.*0 or 1"):
        encode.run(spark, job(raw, ["click", "kind"], "dnn_multilabel_classifier"))


def test_a_binary_model_with_two_labels_is_refused(spark: Any, raw: str) -> None:
    with pytest.raises(EncodeError, match="a binary model learns exactly one label"):
        encode.run(spark, job(raw, ["click", "gmv"], "dnn_binary_classifier"))


def test_an_fmap_from_before_label_encodings_serves_binary_models_only(
    spark: Any, raw: str
) -> None:
    import dataclasses

    fitted = job(raw, ["click"], "dnn_binary_classifier")
    encode.run(spark, fitted)
    uri = fitted.layout.femodel("ctr", DATE)
    fmap = FeatureMap.load(uri)
    older = dataclasses.replace(fmap, label_encodings=())  # as written before this release
    statistics = Normalizers.load(uri, fmap)
    older.save(uri)
    dataclasses.replace(statistics, fmap_checksum=older.checksum).save(uri)
    again = job(raw, ["click"], "dnn_binary_classifier", NEXT_DATE, DATE)
    assert encode.run(spark, again)["fmap_reused"] is True
    multilabel = job(raw, ["click"], "dnn_multilabel_classifier", NEXT_DATE, DATE)
    with pytest.raises(EncodeError, match="fitted before label encodings were recorded"):
        encode.run(spark, multilabel)


def test_a_label_with_one_class_is_refused_at_fit(
    spark: Any, workspace: str, write_table: Any, make_job: Any
) -> None:
    rows = [(i, "setosa", 1.0 + i, 7, 0, 0.0) for i in range(4)]
    write_table(make_job("encode", workspace).layout.raw("ctr", DATE), rows, SCHEMA)
    with pytest.raises(EncodeError, match="'species' has one class .'setosa'. in every row"):
        encode.run(spark, job(workspace, ["species"], "dnn_classifier"))


BAD_BINARY = [
    ("int", 2, r"'click': 2"),
    ("int", -1, r"'click': -1"),
    ("int", None, r"'click': None"),
    ("bigint", 7, r"'click': 7"),
    ("boolean", None, r"'click': None"),
    ("double", 0.5, r"'click': 0.5"),
    ("double", None, r"'click': None"),
]


@pytest.mark.parametrize(("click_type", "value", "shown"), BAD_BINARY)
def test_a_bad_binary_label_with_a_reused_fmap_is_named_and_nothing_committed(
    spark: Any, workspace: str, write_table: Any, click_type: str, value: Any, shown: str
) -> None:
    """With a reused fmap the binary labels are checked as the table is written (the
    written files' statistics, or observed for a type whose statistics can miss a bad
    value): a bad value still fails the run, names the value and commits nothing."""
    schema = SCHEMA.replace("click int", f"click {click_type}")
    first = job(workspace, ["click"], "dnn_binary_classifier")
    cast = bool if click_type == "boolean" else float if click_type == "double" else int
    write_table(
        first.layout.raw("ctr", DATE), [(*r[:4], cast(r[4]), r[5]) for r in DAY_ONE], schema
    )
    encode.run(spark, first)
    later = "2026-01-05"
    reused = job(workspace, ["click"], "dnn_binary_classifier", later, DATE)
    good = [(*r[:4], cast(r[4]), r[5]) for r in DAY_TWO]
    write_table(
        reused.layout.raw("ctr", later), [*good, (10, "setosa", 1.0, 7, value, 0.0)], schema
    )
    with pytest.raises(EncodeError, match=r"learns \['click'\] as binary labels.*" + shown):
        encode.run(spark, reused)
    encoded = reused.layout.encoded("ctr", later)
    assert not storage.exists(encoded)
    assert storage.list_names(f"{encoded.rsplit('/', 1)[0]}/_staging") == []
    # The same day without the bad row encodes.
    write_table(reused.layout.raw("ctr", later), good, schema)
    assert encode.run(spark, reused)["rows"] == len(good)


def test_written_labels_without_statistics_are_checked_by_a_pass_over_the_rows(
    spark: Any, raw: str, tmp_path: Any
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from spark_jobs.encode_labels import check_written_labels, outside_statistics

    reused = job(raw, ["click"], "dnn_binary_classifier", NEXT_DATE, DATE)
    table = pa.table({"uid": [1, 2], "click": pa.array([0, 3], pa.int32())})
    pq.write_table(table, tmp_path / "with.parquet")
    pq.write_table(table, tmp_path / "without.parquet", write_statistics=False)
    footers = {
        n: [(n, pq.read_metadata(tmp_path / n))] for n in ("with.parquet", "without.parquet")
    }
    assert outside_statistics(footers["with.parquet"], ["click"]) == {
        "click": "'click': 0 null(s), values from 0 to 3 in the written rows"
    }
    assert outside_statistics(footers["without.parquet"], ["click"]) is None
    source = reused.layout.raw("ctr", NEXT_DATE)
    frame = spark.read.parquet(source)  # DAY_TWO: click 0 and 1 only
    check_written_labels(frame, reused, source, ["click"], footers["without.parquet"])
    check_written_labels(frame, reused, source, ["click"], None)
    # Statistics showing a bad value raise with them when the rows read no longer show it.
    with pytest.raises(EncodeError, match="found 'click': 0 null.s., values from 0 to 3"):
        check_written_labels(frame, reused, source, ["click"], footers["with.parquet"])
    # Row groups of nulls only (no minimum or maximum) and of values add up.
    pq.write_table(
        pa.table({"click": pa.array([None, None, 0, 1], pa.int32())}),
        tmp_path / "g.parquet",
        row_group_size=2,
    )
    groups = [("g.parquet", pq.read_metadata(tmp_path / "g.parquet"))]
    assert groups[0][1].num_row_groups == 2
    assert outside_statistics(groups, ["click"]) == {
        "click": "'click': 2 null(s), values from 0 to 1 in the written rows"
    }
    pq.write_table(pa.table({"click": pa.array([0, 1], pa.int32())}), tmp_path / "ok.parquet")
    assert outside_statistics([("ok", pq.read_metadata(tmp_path / "ok.parquet"))], ["click"]) == {}
    bad = spark.createDataFrame([(1, 0), (2, 3)], "uid long, click int")
    with pytest.raises(EncodeError, match="'click': 3"):
        check_written_labels(bad, reused, source, ["click"], footers["without.parquet"])
