"""The pipeline spec: a strict pydantic schema for ``dags/pipelines/*.yaml``.

Unknown keys, wrong types and bad values are errors that name the file, the
key path and what is allowed. Stage options are validated later, by each
stage kind (see :mod:`dlflow_airflow.pipeline`), because the allowed keys
depend on the kind.
"""

from __future__ import annotations

import os
import re
import types
import typing
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dlflow_airflow.errors import Issue, SpecError

Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Tag = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)]
DagId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=250)]

SCHEDULE_PRESETS = (
    "@once",
    "@continuous",
    "@hourly",
    "@daily",
    "@weekly",
    "@monthly",
    "@quarterly",
    "@yearly",
)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(StrictModel):
    """Which feature version this pipeline builds and which columns are special."""

    tag: Tag
    primary_keys: list[Name] = Field(min_length=1)
    labels: list[Name] = []
    drop_columns: list[Name] = []


class ModelSpec(StrictModel):
    """Which model is trained and used; ``date`` is same | latest | YYYY-MM-DD."""

    tag: Tag
    name: str = "dnn_binary_classifier"
    date: str = "same"
    params: dict[str, Any] = {}

    @field_validator("date")
    @classmethod
    def _check_date(cls, value: str) -> str:
        if value in ("same", "latest"):
            return value
        if _DATE.match(value):
            date.fromisoformat(value)
            return value
        raise ValueError("expected 'same', 'latest' or a date YYYY-MM-DD")


class BucketSpec(StrictModel):
    """A group of features that share one numeric vector and one embedding id space.

    :param features: the raw columns in this bucket.
    :param encode: False passes numeric values through untouched (nulls become 0).
    :param method: how the bucket's numeric vector is normalised.
    :param params: the method's parameters: minmax ``min``/``max`` (the output
        range, default 0 and 1), zscore ``with_mean``/``with_std`` (default
        true), pnorm ``p`` (default 2).
    :param min_count: a category seen fewer times is left out of the vocabulary.
    :param max_size: keep at most this many categories (the most frequent).
    """

    features: list[Name] = Field(min_length=1)
    encode: bool = True
    method: Literal["minmax", "zscore", "pnorm"] = "minmax"
    params: dict[str, float | int | bool] = {}
    min_count: int = Field(default=1, ge=1)
    max_size: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check_params(self) -> BucketSpec:
        allowed = BUCKET_PARAMS[self.method]
        unknown = sorted(set(self.params) - set(allowed))
        if unknown:
            raise ValueError(
                f"params {unknown} do not apply to method {self.method!r}; "
                f"allowed: {', '.join(allowed)}"
            )
        low, high = self.params.get("min", 0.0), self.params.get("max", 1.0)
        if self.method == "minmax" and not float(low) < float(high):
            raise ValueError(f"params.min ({low}) must be below params.max ({high})")
        if self.method == "pnorm" and float(self.params.get("p", 2)) < 1:
            raise ValueError(f"params.p must be at least 1, got {self.params['p']}")
        return self


BUCKET_PARAMS: dict[str, tuple[str, ...]] = {
    "minmax": ("min", "max"),
    "zscore": ("with_mean", "with_std"),
    "pnorm": ("p",),
}


class SparkSpec(StrictModel):
    """How Spark jobs are submitted. Secrets belong in the Airflow connection."""

    conn_id: str = "spark_default"
    conf: dict[str, str | int | float | bool] = {}
    python: str | None = None


class DefaultArgs(StrictModel):
    """The task defaults a pipeline may set (a strict subset of Airflow's)."""

    owner: str = "dlflow"
    retries: int = Field(default=0, ge=0)
    retry_delay_seconds: int = Field(default=300, ge=0)
    execution_timeout_minutes: int | None = Field(default=None, gt=0)
    pool: str | None = None
    queue: str | None = None


class PipelineSpec(StrictModel):
    """One pipeline = one Airflow DAG."""

    dag_id: DagId
    description: str | None = None
    schedule: str | None = "@daily"
    start_date: date
    end_date: date | None = None
    catchup: bool = False
    max_active_runs: int = Field(default=1, ge=1)
    tags: list[str] = []
    default_args: DefaultArgs = DefaultArgs()
    workspace: str
    feature: FeatureSpec
    model: ModelSpec
    buckets: dict[Name, BucketSpec] = {}
    spark: SparkSpec = SparkSpec()
    # Tags produced outside this DAG (e.g. a model trained by another pipeline).
    external: list[str] = []
    stages: dict[Name, dict[str, Any]] = Field(min_length=1)

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, value: str | None) -> str | None:
        if value is None or value.lower() == "none":
            return None
        if value in SCHEDULE_PRESETS:
            return value
        from croniter import croniter

        if croniter.is_valid(value):
            return value
        raise ValueError(
            f"{value!r} is neither a cron expression nor one of {', '.join(SCHEDULE_PRESETS)}"
        )

    @field_validator("workspace")
    @classmethod
    def _check_workspace(cls, value: str) -> str:
        value = expand_env(value)
        if "://" not in value and not value.startswith("/"):
            raise ValueError(f"{value!r}: expected an absolute path or a URI such as file:///data")
        return value.rstrip("/")

    @field_validator("stages", mode="before")
    @classmethod
    def _stages_are_mappings(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ({} if v is None else v) for k, v in value.items()}
        return value


def expand_env(value: str) -> str:
    """Replace ``${NAME}`` and ``${NAME:-default}`` with the environment's values."""

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ValueError(f"environment variable {name} is not set and has no default")

    return _ENV_REF.sub(repl, value)


# libyaml's parser when PyYAML was built with it (several times faster at parse time).
_SafeBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeBase):  # type: ignore[misc, valid-type]
    """A safe loader that refuses duplicate keys instead of keeping the last one."""


def _mapping_without_duplicates(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file safely; syntax errors become :class:`SpecError` with the line."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(source, [Issue("", f"cannot read the file: {exc.strerror}")]) from None
    try:
        loader = _UniqueKeyLoader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(source, [Issue(where, f"invalid YAML: {problem}")]) from None


def parse_spec(data: Any, source: str) -> PipelineSpec:
    """Validate already-parsed YAML into a :class:`PipelineSpec`."""
    if not isinstance(data, dict):
        got = "an empty file" if data is None else type(data).__name__
        raise SpecError(source, [Issue("", f"expected a mapping of pipeline keys, got {got}")])
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(source, issues_from_validation(exc, PipelineSpec)) from None


def load_spec(path: str | Path) -> PipelineSpec:
    return parse_spec(read_yaml(path), str(path))


def issues_from_validation(
    exc: ValidationError, model: type[BaseModel], prefix: str = ""
) -> list[Issue]:
    """Pydantic errors as :class:`Issue` objects with dotted key paths."""
    issues: list[Issue] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        path = ".".join(str(part) for part in (prefix, *loc) if part != "")
        if error["type"] == "extra_forbidden":
            allowed = allowed_keys(model, loc[:-1])
            message = f"unknown key {loc[-1]!r}; allowed keys: {', '.join(allowed)}"
        elif error["type"] == "missing":
            message = "required key is missing"
        else:
            text = error["msg"].removeprefix("Value error, ")
            message = f"{text} (got {_short(error.get('input'))})"
        issues.append(Issue(path, message))
    return issues


def allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the model found by walking ``loc`` from ``model``."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return []
            current = field.annotation
        elif typing.get_origin(current) in (dict, list):
            current = typing.get_args(current)[-1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else annotation
    return annotation


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
