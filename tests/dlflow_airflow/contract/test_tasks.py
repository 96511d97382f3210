"""Tasks, heads and label encodings: the rules every stage reads (pure Python)."""

from __future__ import annotations

import pytest

from dlflow_airflow.contract.fmap import Bucket, Feature, FeatureMap
from dlflow_airflow.contract.tasks import (
    SCORE,
    Head,
    LabelEncoding,
    TaskError,
    heads_of,
    label_kinds,
    metric_key,
    prediction_columns,
)

IRIS = LabelEncoding("species", "multiclass", ("setosa", "versicolor", "virginica"), (50, 50, 50))


def fmap(*encodings: LabelEncoding, labels: tuple[str, ...] = ("species",)) -> FeatureMap:
    bucket = Bucket(
        name="petal",
        method="zscore",
        nums=(Feature("petal_length", "double", 1, 0),),
        ctgs=(),
    )
    return FeatureMap("iris", "2026-01-01", ("id",), labels, (bucket,), label_encodings=encodings)


def test_label_kinds_follow_the_task() -> None:
    assert label_kinds("multiclass", ["species"], {}) == {"species": "multiclass"}
    assert label_kinds("multilabel", ["a", "b"], {}) == {"a": "binary", "b": "binary"}
    assert label_kinds("multitask", ["click", "gmv"], {"gmv": "regression"}) == {
        "click": "binary",
        "gmv": "regression",
    }
    with pytest.raises(TaskError, match="a regression model learns exactly one label"):
        label_kinds("regression", ["a", "b"], {})


def test_heads_of_each_task() -> None:
    assert heads_of("multiclass", [IRIS]) == [Head(SCORE, "species", "multiclass", IRIS.classes)]
    assert heads_of("multiclass", [IRIS])[0].width == 3
    pair = [LabelEncoding("click", "binary"), LabelEncoding("gmv", "regression")]
    assert [(h.name, h.kind) for h in heads_of("multitask", pair)] == [
        ("click", "binary"),
        ("gmv", "regression"),
    ]
    with pytest.raises(TaskError, match="label 'gmv' was encoded as regression.*refit"):
        heads_of("multilabel", pair)


def test_an_fmap_without_label_encodings_reads_its_labels_as_numbers() -> None:
    old = fmap(labels=("label",))
    assert old.heads("binary") == [Head(SCORE, "label", "binary")]
    with pytest.raises(TaskError, match="a multiclass model reads it as multiclass"):
        old.heads("multiclass")


def test_label_encodings_round_trip_and_leave_older_checksums_alone() -> None:
    with_classes = fmap(IRIS)
    assert FeatureMap.from_dict(with_classes.to_dict()) == with_classes
    body = fmap(labels=("label",)).to_dict()
    assert "label_encodings" not in body
    assert FeatureMap.from_dict(body).checksum == body["checksum"]
    assert with_classes.checksum != fmap().checksum


def test_prediction_columns_per_task() -> None:
    assert prediction_columns(heads_of("binary", [LabelEncoding("y", "binary")]), "binary") == [
        "score"
    ]
    assert prediction_columns(heads_of("multiclass", [IRIS]), "multiclass") == [
        "species_setosa",
        "species_versicolor",
        "species_virginica",
        "species_predicted",
    ]
    odd = LabelEncoding("digit", "multiclass", (0, 1, "a b", "a-b"), (1, 1, 1, 1))
    with pytest.raises(TaskError, match=r"\['digit_a_b'\] would repeat"):
        prediction_columns(heads_of("multiclass", [odd]), "multiclass")
    pair = [LabelEncoding("click", "binary"), LabelEncoding("buy", "binary")]
    assert prediction_columns(heads_of("multilabel", pair), "multilabel") == [
        "score_click",
        "score_buy",
    ]
    named_score = [LabelEncoding("score", "binary"), LabelEncoding("gmv", "regression")]
    assert prediction_columns(heads_of("multitask", named_score), "multitask") == [
        "score_score",
        "score_gmv",
    ]


def test_metric_keys_name_the_head_only_when_there_are_several() -> None:
    one = heads_of("multiclass", [IRIS])
    assert metric_key(one[0], "accuracy", one) == "accuracy"
    two = heads_of(
        "multitask", [LabelEncoding("click", "binary"), LabelEncoding("gmv", "regression")]
    )
    assert metric_key(two[1], "mae", two) == "gmv.mae"
