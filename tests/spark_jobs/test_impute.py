"""Imputation of numeric nulls, missing indicators and degenerate features at fit time."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from dlflow_airflow.contract.fmap import FeatureMap
from dlflow_airflow.contract.layout import local_path
from dlflow_airflow.contract.schema import BucketSpec
from spark_jobs import encode_apply, encode_fit
from spark_jobs.feature_types import EncodeError

from .conftest import DATE, DEMO_BUCKETS, job_body, parse_job

pytestmark = pytest.mark.spark

DRIFTED = ("income", "clicks_7d")  # the two numeric columns that drive the label most
NULL_SHARE = 15  # percent of rows whose drifted columns are null


def _fit(spark: Any, frame: Any, workspace: str, buckets: dict[str, Any]) -> tuple[Any, Any]:
    job = parse_job("encode", DATE, job_body(workspace, buckets=buckets))
    return encode_fit.fit_fmap(frame, job, DATE)


def _encode(spark: Any, frame: Any, fmap: Any, normalizers: Any) -> dict[int, Any]:
    out = encode_apply.encode_frame(spark, frame, fmap, normalizers)
    return {row["uid"]: row.asDict() for row in out.collect()}


def _drift(frame: Any) -> Any:
    """``frame`` with 15% of each drifted column's values set to null (a hash of the uid)."""
    from pyspark.sql import functions as F

    for name in DRIFTED:
        keep = F.pmod(F.xxhash64(F.col("uid"), F.lit(name)), F.lit(100)) >= F.lit(NULL_SHARE)
        frame = frame.withColumn(name, F.when(keep, F.col(name)))
    return frame


@pytest.fixture(scope="module")
def clean(pipeline: Any, spark: Any) -> Any:
    return spark.read.parquet(pipeline.merge["output"]).cache()


@pytest.fixture(scope="module")
def fit_values(pipeline: Any) -> dict[str, np.ndarray]:
    """The fit day's non-null values of each drifted column, read with pyarrow."""
    table = pq.read_table(local_path(pipeline.merge["output"]))
    values = {
        name: table.column(name).to_numpy(zero_copy_only=False).astype(float) for name in DRIFTED
    }
    return {name: column[~np.isnan(column)] for name, column in values.items()}


def test_default_impute_gives_the_normalised_fitted_mean(
    spark: Any, pipeline: Any, clean: Any, fit_values: dict[str, np.ndarray]
) -> None:
    fmap, normalizers = _fit(spark, clean, pipeline.workspace, DEMO_BUCKETS)
    before = _encode(spark, clean, fmap, normalizers)
    drifted = _drift(clean)
    after = _encode(spark, drifted, fmap, normalizers)
    nulled = {
        name: {r["uid"] for r in drifted.where(f"`{name}` is null").select("uid").collect()}
        for name in DRIFTED
    }
    assert 0.1 * len(before) < len(nulled["income"]) < 0.25 * len(before)

    for bucket, name in (("user", "income"), ("behaviour", "clicks_7d")):
        stats = normalizers.of(bucket, name)
        assert stats["fill"][0] == pytest.approx(fit_values[name].mean(), rel=1e-9)
        low, high = stats["min"][0], stats["max"][0]
        expected = (fit_values[name].mean() - low) / (high - low)
        position = fmap.feature(name).offset
        column = fmap.bucket(bucket).nums_column
        for uid in nulled[name]:
            value = after[uid][column][position]
            assert value == pytest.approx(expected, abs=1e-6)  # float32
            assert value > 0.01  # not minmax's low end
    untouched = set(before) - nulled["income"] - nulled["clicks_7d"]
    assert untouched and all(after[uid] == before[uid] for uid in untouched)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"impute": "zero"}, lambda v: 0.0),
        ({"impute": "min"}, lambda v: v.min()),
        ({"impute": "constant", "impute_value": 5}, lambda v: 5.0),
        ({"impute": "median"}, None),
    ],
    ids=["zero", "min", "constant", "median"],
)
def test_each_strategy(
    spark: Any, pipeline: Any, clean: Any, fit_values: dict[str, np.ndarray], rule: Any, expected
) -> None:
    buckets = {**DEMO_BUCKETS, "user": {**DEMO_BUCKETS["user"], **rule}}
    fmap, normalizers = _fit(spark, clean, pipeline.workspace, buckets)
    fill = normalizers.of("user", "income")["fill"][0]
    values = fit_values["income"]
    if expected is None:  # approximate: within a rank or two of the middle
        assert np.percentile(values, 49) <= fill <= np.percentile(values, 51)
    else:
        assert fill == pytest.approx(expected(values))
    assert normalizers.of("behaviour", "clicks_7d")["fill"][0] == pytest.approx(
        fit_values["clicks_7d"].mean()
    )
    row = _encode(spark, _drift(clean).where("income is null").limit(1), fmap, normalizers)
    (encoded,) = row.values()
    stats = normalizers.of("user", "income")
    ratio = (fill - stats["min"][0]) / (stats["max"][0] - stats["min"][0])
    position = fmap.feature("income").offset
    assert encoded["user_nums"][position] == pytest.approx(min(max(ratio, 0.0), 1.0), abs=1e-6)


def test_a_feature_override_wins_over_the_bucket(
    spark: Any, pipeline: Any, clean: Any, fit_values: dict[str, np.ndarray]
) -> None:
    user = {
        **DEMO_BUCKETS["user"],
        "impute": "zero",
        "impute_features": {"income": "min", "age": {"impute": "constant", "impute_value": 30}},
    }
    fmap, normalizers = _fit(spark, clean, pipeline.workspace, {**DEMO_BUCKETS, "user": user})
    assert normalizers.of("user", "income")["fill"] == [fit_values["income"].min()]
    assert normalizers.of("user", "age")["fill"] == [30.0]


def test_missing_indicators_widen_the_vector(spark: Any, pipeline: Any, clean: Any) -> None:
    buckets = {
        "user": {**DEMO_BUCKETS["user"], "missing_indicators": True},
        "behaviour": DEMO_BUCKETS["behaviour"],
    }
    fmap, normalizers = _fit(spark, clean, pipeline.workspace, buckets)
    user = fmap.bucket("user")
    assert user.missing_indicators == ("age", "income")
    assert user.nums_width == 2 + 2 and user.indicator_offset == 2
    assert fmap.bucket("behaviour").missing_indicators == ()
    document = fmap.to_dict()
    assert document["buckets"][0]["missing_indicators"] == ["age", "income"]
    assert FeatureMap.from_dict(document).bucket("user").missing_indicators == ("age", "income")

    drifted = _drift(clean)
    encoded = _encode(spark, drifted, fmap, normalizers)
    raw = {r["uid"]: r.asDict() for r in drifted.select("uid", "age", "income").collect()}
    for uid, row in encoded.items():
        nums = row["user_nums"]
        assert len(nums) == user.nums_width
        assert nums[2:] == [float(raw[uid]["age"] is None), float(raw[uid]["income"] is None)]
        assert len(row["behaviour_nums"]) == 1


@pytest.mark.parametrize(
    ("bucket", "message"),
    [
        ({"impute": "constant"}, "impute: constant needs impute_value"),
        ({"impute": "median", "impute_value": 1}, "impute_value is only read with impute: const"),
        ({"features": ["a"], "impute_features": {"b": "zero"}}, "names ['b'], which are not"),
        ({"features": ["a"], "impute_features": {"a": "constant"}}, "needs impute_value"),
        ({"features": ["a"], "impute_features": {"a": "average"}}, "'mean', 'median', 'zero'"),
        ({"features": ["a"], "impute_features": {"a": {"impute": "zero", "x": 1}}}, "x"),
    ],
)
def test_invalid_impute_is_refused(bucket: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match="impute") as caught:
        BucketSpec(**bucket)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("buckets", "message"),
    [
        (
            {"default": {"impute_features": {"gone": "zero"}}},
            "buckets.default.impute_features names 'gone', which is not a feature",
        ),
        (
            {"u": {"features": ["n", "s"], "impute_features": {"s": "zero"}}},
            "names 's', a string feature",
        ),
        (
            {"u": {"features": ["m"], "impute": "median"}},
            "impute median is not available for the map feature 'm'",
        ),
    ],
)
def test_impute_of_a_wrong_feature_fails_the_fit(
    spark: Any, workspace: str, buckets: dict[str, Any], message: str
) -> None:
    frame = spark.createDataFrame(
        [(1, 0, 1.0, "a", {"k": 1.0}), (2, 1, 2.0, "b", {"k": 2.0})],
        "uid long, label int, n double, s string, m map<string,double>",
    )
    with pytest.raises(EncodeError, match="impute") as caught:
        _fit(spark, frame, workspace, buckets)
    assert message in str(caught.value)


DEGENERATE = [(1, 0, None, 3.0, None, 1.0), (2, 1, None, 3.0, None, 2.0)]
DEGENERATE_SCHEMA = "uid long, label int, empty double, flat double, nothing string, good double"


def test_degenerate_features_are_warned_about(
    spark: Any, workspace: str, caplog: pytest.LogCaptureFixture
) -> None:
    frame = spark.createDataFrame(DEGENERATE, DEGENERATE_SCHEMA)
    with caplog.at_level(logging.WARNING, logger="spark_jobs.encode_fit"):
        _fit(spark, frame, workspace, {})
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "feature 'empty' is null in every row of the fit day (bucket 'default')" in warned
    assert "feature 'flat' has one value in every non-null row" in warned
    assert "feature 'nothing' is null in every row" in warned  # the vocabulary's warning
    assert "'good'" not in warned


@pytest.mark.parametrize("name", ["empty", "flat", "nothing"])
def test_a_strict_bucket_refuses_a_degenerate_feature(
    spark: Any, workspace: str, name: str
) -> None:
    frame = spark.createDataFrame(DEGENERATE, DEGENERATE_SCHEMA)
    buckets = {"b": {"features": [name, "good"], "strict": True}}
    with pytest.raises(EncodeError, match=f"feature '{name}' .*\\(bucket 'b'\\).*strict: true"):
        _fit(spark, frame, workspace, buckets)
