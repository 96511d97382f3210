"""The pipeline spec: a strict pydantic schema for ``dags/pipelines/*.yaml``.

Unknown keys, wrong types and bad values are errors that name the file, the
key path and what is allowed. Stage options are validated later, by each
stage kind (see :mod:`dlflow_airflow.pipeline.build`), because the allowed keys
depend on the kind.
"""

from __future__ import annotations

import types
import typing
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Union

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    field_validator,
)
from pydantic_core import ErrorDetails

from dlflow_airflow.contract.dependencies import DEPENDENCY_KINDS
from dlflow_airflow.contract.schema import (
    DEFAULT_SPARK_LOG_LEVEL,
    SPARK_LOG_LEVEL_CONF,
    SPARK_LOG_LEVELS,
    Buckets,
    EnvPath,
    FeatureSpec,
    ModelSpec,
    Name,
    SparkLogLevel,
    StrictModel,
)
from dlflow_airflow.pipeline.errors import Issue, SpecError
from dlflow_airflow.pipeline.extends import EXTENDS, read_pipeline

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


class SparkSpec(StrictModel):
    """How Spark jobs are submitted. Secrets belong in the Airflow connection.

    :param log_level: the Spark driver's log level in the task log (a Log4j level,
        any case); WARN unless the pipeline asks for more.
    """

    conn_id: str = "spark_default"
    conf: dict[str, str | int | float | bool] = {}
    python: str | None = None
    log_level: SparkLogLevel = DEFAULT_SPARK_LOG_LEVEL

    @field_validator("conf")
    @classmethod
    def _log_level_is_its_own_key(cls, value: dict[str, Any]) -> dict[str, Any]:
        if SPARK_LOG_LEVEL_CONF in value:
            raise ValueError(
                f"{SPARK_LOG_LEVEL_CONF}: set the level with spark.log_level "
                f"(one of {', '.join(SPARK_LOG_LEVELS)})"
            )
        return value


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
    tags: list[Annotated[str, Field(min_length=1, max_length=100)]] = []
    default_args: DefaultArgs = DefaultArgs()
    workspace: EnvPath
    feature: FeatureSpec
    model: ModelSpec
    buckets: Buckets = {}
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
        if "://" not in value and not value.startswith("/"):
            raise ValueError(f"{value!r}: expected an absolute path or a URI such as file:///data")
        return value.rstrip("/")

    @field_validator("stages", mode="before")
    @classmethod
    def _stages_are_mappings(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: ({} if v is None else v) for k, v in value.items()}
        return value


def parse_spec(data: Any, source: str) -> PipelineSpec:
    """Validate already-parsed YAML into a :class:`PipelineSpec`."""
    if not isinstance(data, dict):
        got = "an empty file" if data is None else type(data).__name__
        raise SpecError(source, [Issue("", f"expected a mapping of pipeline keys, got {got}")])
    if EXTENDS in data:  # read_pipeline resolves it; data handed over directly cannot
        message = "a base file is read only from a pipeline file (Pipeline.from_file)"
        raise SpecError(source, [Issue(EXTENDS, message)])
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(source, _base_hint(issues_from_validation(exc, PipelineSpec))) from None


def _base_hint(issues: list[Issue]) -> list[Issue]:
    """A file without dag_id may be a base for ``extends`` put where the loader reads pipelines."""
    return [
        Issue(
            issue.path,
            issue.message + "; a base for 'extends' belongs in a subfolder (e.g. common/), "
            "which the DAG folder's loader does not read",
        )
        if issue.path == "dag_id" and issue.message == "required key is missing"
        else issue
        for issue in issues
    ]


def load_spec(path: str | Path) -> PipelineSpec:
    """The spec of a pipeline file, its ``extends`` resolved."""
    found = read_pipeline(path)
    try:
        return parse_spec(found.data, str(path))
    except SpecError as exc:
        raise found.locate(exc) from None


def issues_from_validation(
    exc: ValidationError, model: type[BaseModel], prefix: str = ""
) -> list[Issue]:
    """Pydantic errors as :class:`Issue` objects with dotted key paths."""
    issues: list[Issue] = []
    for error in exc.errors():
        loc, got = _location(error)
        path = ".".join(str(part) for part in (prefix, *loc) if part != "")
        if error["type"] == "extra_forbidden":
            allowed = allowed_keys(model, loc[:-1])
            message = f"unknown key {loc[-1]!r}; allowed keys: {', '.join(allowed)}"
        elif error["type"] == "missing":
            message = "required key is missing"
        else:
            text = error["msg"].removeprefix("Value error, ")
            message = f"{text} (got {_short(got)})"
        issues.append(Issue(path, message))
    return issues


def _location(error: ErrorDetails) -> tuple[tuple[Any, ...], Any]:
    """Where the error is (without the union member's tag) and the value there."""
    loc = tuple(p for p in error["loc"] if p not in DEPENDENCY_KINDS)
    return loc, error.get("input")


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
