"""The pipeline-wide models shared by the YAML spec and the jobs: feature, model, buckets.

One strict base, one name pattern, one definition of each block: the spec
validates the YAML with them and :class:`~dlflow_airflow.contract.jobconf.JobConfig`
parses the job document back into them.
"""

from __future__ import annotations

import os
import re
import unicodedata
from datetime import date
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from dlflow_airflow.contract.layout import check_date

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Tag = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


ENV_PREFIX = "DLFLOW_"
"""Only ``${DLFLOW_...}`` variables expand: the DAG processor's environment also holds
Airflow's own secrets (``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``...), and an expanded
path reaches every job's arguments and logs."""


def expand_env(value: str) -> str:
    """Replace ``${DLFLOW_NAME}`` and ``${DLFLOW_NAME:-default}`` with the environment's values.

    :raises ValueError: ``NAME`` is unset and has no default, or does not start
        with :data:`ENV_PREFIX` (the message names it).
    """

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if not name.startswith(ENV_PREFIX):
            raise ValueError(
                f"${{{name}}}: only variables named {ENV_PREFIX}* expand in a pipeline "
                "(secrets belong in Airflow connections); export it as "
                f"{ENV_PREFIX}{name} or write the value"
            )
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ValueError(f"environment variable {name} is not set and has no default")

    return _ENV_REF.sub(repl, value)


EnvPath = Annotated[str, AfterValidator(expand_env)]
"""A path or URI whose ``${NAME}`` / ``${NAME:-default}`` are expanded when validated."""


MODEL_DATE_MODES = ("same", "latest")
"""``model.date`` is one of these or a date YYYY-MM-DD."""

_Log4jLevel = Literal["ALL", "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF"]
SPARK_LOG_LEVELS: tuple[str, ...] = get_args(_Log4jLevel)
"""Log4j's levels, which Spark's ``spark.log.level`` accepts."""
SPARK_LOG_LEVEL_CONF = "spark.log.level"
"""Spark's conf key (Spark 4) that sets the driver's log level as the SparkContext starts:
before its start-up INFO lines, in every deploy mode, keeping the cluster's Log4j appenders."""
DEFAULT_SPARK_LOG_LEVEL = "WARN"
"""Task logs show Spark's warnings and errors, not its hundreds of INFO lines per stage."""


def _upper_log_level(value: Any) -> Any:
    if value is False:  # YAML 1.1 reads a bare OFF as false
        return "OFF"
    return value.upper() if isinstance(value, str) else value


SparkLogLevel = Annotated[_Log4jLevel, BeforeValidator(_upper_log_level)]
"""One of :data:`SPARK_LOG_LEVELS`, in any case."""


class StrictModel(BaseModel):
    """Unknown keys are errors; a validated value never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_feature_name(name: str) -> str:
    """A feature is any raw column: a non-empty name without control characters."""
    if not name or any(unicodedata.category(char) == "Cc" for char in name):
        raise ValueError(f"{name!r}: a feature name must be non-empty, without control characters")
    return name


FeatureName = Annotated[str, AfterValidator(check_feature_name)]
"""A raw column as a feature: any Spark column name (spaces and dots included).

It never becomes a model input, TFRecord or encoded-table name: those are named
after the bucket (:attr:`~dlflow_airflow.contract.fmap.Bucket.nums_column`).
"""


class FeatureSpec(StrictModel):
    """Which feature version this pipeline builds and which columns are special."""

    tag: Tag
    primary_keys: list[Name] = Field(min_length=1)
    labels: list[Name] = []
    drop_columns: list[FeatureName] = []


class ModelSpec(StrictModel):
    """Which model is trained and used; ``date`` is same | latest | YYYY-MM-DD.

    :param heads: a multitask model's head kinds, ``{label: binary | regression}``
        (a label not named is binary); see :mod:`dlflow_airflow.contract.tasks`.
    """

    tag: Tag
    name: str = "dnn_binary_classifier"
    date: str = "same"
    params: dict[str, Any] = {}
    heads: dict[Name, str] = {}

    @field_validator("date", mode="before")
    @classmethod
    def _check_date(cls, value: Any) -> Any:
        if isinstance(value, date):  # an unquoted YAML date
            value = value.isoformat()
        if value in MODEL_DATE_MODES:
            return value
        try:
            return check_date(value)
        except ValueError:
            raise ValueError("expected 'same', 'latest' or a date YYYY-MM-DD") from None


DEFAULT_BUCKET = "default"
"""The bucket that collects every feature no other bucket lists."""


IMPUTE_STRATEGIES = ("mean", "median", "zero", "min", "constant")
"""How a null number is filled before it is normalised (``impute``)."""
ImputeStrategy = Literal["mean", "median", "zero", "min", "constant"]


def check_impute_value(strategy: str, value: float | None, where: str) -> None:
    """``impute_value`` is required with ``constant`` and refused with any other strategy."""
    if strategy == "constant" and value is None:
        raise ValueError(f"{where}impute: constant needs impute_value: <number>")
    if strategy != "constant" and value is not None:
        raise ValueError(
            f"{where}impute_value is only read with impute: constant, not {strategy!r}"
        )


class FeatureImpute(StrictModel):
    """One feature's imputation (an ``impute_features`` entry).

    The YAML gives a strategy name (``median``) or, for a constant,
    ``{impute: constant, impute_value: -1}``.
    """

    impute: ImputeStrategy
    impute_value: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"impute": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_value(self) -> FeatureImpute:
        check_impute_value(self.impute, self.impute_value, "")
        return self


class BucketSpec(StrictModel):
    """A group of features that share one numeric vector and one embedding id space.

    :param features: the raw columns in this bucket; optional for the bucket
        ``default`` only (:data:`Buckets`), which also takes every feature no
        other bucket lists.
    :param encode: False passes numeric values through untouched (nulls become 0).
    :param method: how the bucket's numeric vector is normalised.
    :param params: the method's parameters: minmax ``min``/``max`` (the output
        range, default 0 and 1), zscore ``with_mean``/``with_std`` (default
        true), pnorm ``p`` (default 2).
    :param min_count: a category seen fewer times is left out of the vocabulary.
    :param max_size: keep at most this many categories (the most frequent).
    :param impute: what a null number becomes before it is normalised: a
        statistic fitted on the fit day (``mean``, ``median``, ``min``), ``zero``,
        or ``constant`` (``impute_value``).
    :param impute_value: the number of ``impute: constant``; refused otherwise.
    :param impute_features: per-feature overrides of ``impute``: a strategy, or
        ``{impute: constant, impute_value: <number>}``.
    :param missing_indicators: add one 0/1 position per numeric feature (1: null).
    :param strict: an all-null or constant feature at fit time is an error, not a warning.
    """

    features: list[FeatureName] = []
    encode: bool = True
    method: Literal["minmax", "zscore", "pnorm"] = "minmax"
    params: dict[str, float | int | bool] = {}
    min_count: int = Field(default=1, ge=1)
    max_size: int | None = Field(default=None, ge=1)
    impute: ImputeStrategy = "mean"
    impute_value: float | None = None
    impute_features: dict[FeatureName, FeatureImpute] = {}
    missing_indicators: bool = False
    strict: bool = False

    @model_validator(mode="after")
    def _check_impute(self) -> BucketSpec:
        check_impute_value(self.impute, self.impute_value, "")
        listed = set(self.features)
        unknown = [name for name in self.impute_features if name not in listed]
        if self.features and unknown:
            raise ValueError(
                f"impute_features names {unknown}, which are not features of this bucket; "
                f"its features: {self.features}"
            )
        return self

    def impute_of(self, feature: str) -> FeatureImpute:
        """The imputation of ``feature``: its override, else the bucket's."""
        return self.impute_features.get(
            feature, FeatureImpute(impute=self.impute, impute_value=self.impute_value)
        )

    @model_validator(mode="after")
    def _check_params(self) -> BucketSpec:
        allowed = BUCKET_PARAMS[self.method]
        unknown = sorted(set(self.params) - set(allowed))
        if unknown:
            raise ValueError(
                f"params {unknown} do not apply to method {self.method!r}; "
                f"allowed: {', '.join(allowed)}"
            )
        params = method_params(self.method, self.params)
        if self.method == "minmax" and not float(params["min"]) < float(params["max"]):
            raise ValueError(
                f"params.min ({params['min']}) must be below params.max ({params['max']})"
            )
        if self.method == "pnorm" and float(params["p"]) < 1:
            raise ValueError(f"params.p must be at least 1, got {params['p']}")
        return self


def check_buckets(buckets: dict[str, BucketSpec]) -> dict[str, BucketSpec]:
    """Every bucket but :data:`DEFAULT_BUCKET` must list at least one feature."""
    empty = [name for name, spec in buckets.items() if not spec.features and name != DEFAULT_BUCKET]
    if empty:
        raise ValueError(
            f"bucket(s) {empty} list no features; only the bucket {DEFAULT_BUCKET!r} may "
            "leave out features (to set the method of the features no bucket lists)"
        )
    return buckets


Buckets = Annotated[dict[Name, BucketSpec], AfterValidator(check_buckets)]
"""The ``buckets`` block: bucket name -> :class:`BucketSpec`, checked as one mapping."""


BUCKET_PARAMS: dict[str, dict[str, float | bool]] = {
    "minmax": {"min": 0.0, "max": 1.0},
    "zscore": {"with_mean": True, "with_std": True},
    "pnorm": {"p": 2.0},
}
"""Each normalisation method's parameters and their defaults."""


def method_params(method: str, given: dict[str, Any]) -> dict[str, Any]:
    """A method's parameters: the defaults overlaid with ``given`` (an fmap's or a bucket's)."""
    return {**BUCKET_PARAMS.get(method, {}), **given}
