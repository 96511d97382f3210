"""The pipeline spec: a strict pydantic schema for ``dags/pipelines/*.yaml``.

Unknown keys, wrong types and bad values are errors that name the file, the
key path and what is allowed. Stage options are validated later, by each
stage kind (see :mod:`dlflow_airflow.pipeline.build`), because the allowed keys
depend on the kind.
"""

from __future__ import annotations

import difflib
import types
import typing
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from dlflow_airflow.contract.artifacts import ARTIFACTS
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
from dlflow_airflow.contract.schema import Tag as TagName  # pydantic's Tag is a union's tag
from dlflow_airflow.contract.spark_connect import (
    DEFAULT_CONNECT_CONN_ID,
    SparkMode,
    connect_conf_error,
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
# A clock beside assets must give dated runs: @once and @continuous give none.
_NOT_A_CLOCK = ("@once", "@continuous")


def check_clock(value: str) -> str:
    """A cron expression or a preset (``@daily``)."""
    if value in SCHEDULE_PRESETS:
        return value
    from croniter import croniter

    if croniter.is_valid(value):
        return value
    raise ValueError(
        f"{value!r} is neither a cron expression nor one of {', '.join(SCHEDULE_PRESETS)}"
    )


def check_artifact(name: str) -> str:
    """An artifact tag (``TRAINED_MODEL``); a close or folder name is suggested."""
    if name in ARTIFACTS:
        return name
    by_folder = {artifact.folder: tag for tag, artifact in ARTIFACTS.items()}
    close = [by_folder[name]] if name in by_folder else []
    close = close or difflib.get_close_matches(name.upper(), list(ARTIFACTS), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(f"unknown artifact {name!r}; {hint}artifacts: {', '.join(ARTIFACTS)}")


ArtifactName = Annotated[
    str,
    AfterValidator(check_artifact),
    WithJsonSchema({"type": "string", "enum": list(ARTIFACTS)}),
]


class ScheduledArtifact(StrictModel):
    """An artifact whose updates trigger the pipeline.

    :param artifact: its tag (``TRAINED_MODEL``, ``EVALUATE_RESULT``...).
    :param tag: the feature or model tag naming it (its ``TAG=``); by default
        this pipeline's own feature tag (feature artifacts) or model tag.
    """

    artifact: ArtifactName
    tag: TagName | None = None

    def owner_tag(self, feature_tag: str, model_tag: str) -> str:
        return self.tag or ARTIFACTS[self.artifact].owner_tag(feature_tag, model_tag)


def _entry_kind(value: Any) -> str:
    return "ScheduledArtifact" if isinstance(value, dict | ScheduledArtifact) else "ArtifactName"


AssetEntry = Annotated[
    Annotated[ArtifactName, Tag("ArtifactName")]
    | Annotated[ScheduledArtifact, Tag("ScheduledArtifact")],
    Discriminator(_entry_kind),
]
"""``TRAINED_MODEL`` (this pipeline's own tag) or ``{artifact: TRAINED_MODEL, tag: ...}``."""


class AssetSchedule(StrictModel):
    """Run when artifacts in this pipeline's workspace are updated, by whichever
    pipeline writes them (their Airflow Assets), and on a clock too if ``cron`` is set.

    :param assets: the artifacts; each is the Asset its producing stage emits events for.
    :param when: ``all``: each updated since the last run (Airflow's default); ``any``: one is.
    :param cron: also run on this cron expression or preset (``@daily``).
    """

    assets: list[AssetEntry] = Field(min_length=1)
    when: Literal["all", "any"] = "all"
    cron: str | None = None

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value in _NOT_A_CLOCK:
            raise ValueError(f"{value!r} gives no dated runs; use a cron expression or a preset")
        return check_clock(value)

    def __str__(self) -> str:
        names = [a.artifact + (f" (tag {a.tag})" if a.tag else "") for a in self.artifacts()]
        clock = f" and {self.cron}" if self.cron else ""
        return f"on updates of {self.when} of [{', '.join(names)}]{clock}"

    def artifacts(self) -> list[ScheduledArtifact]:
        """Every entry as a :class:`ScheduledArtifact` (a bare name has no ``tag``)."""
        return [
            entry if isinstance(entry, ScheduledArtifact) else ScheduledArtifact(artifact=entry)
            for entry in self.assets
        ]


def _schedule_kind(value: Any) -> str | None:
    if value is None:
        return "NoSchedule"
    if isinstance(value, str):
        return "CronSchedule"
    if isinstance(value, dict | AssetSchedule):
        return "AssetSchedule"
    return None


Schedule = Annotated[
    Annotated[str, Tag("CronSchedule")]
    | Annotated[None, Tag("NoSchedule")]
    | Annotated[AssetSchedule, Tag("AssetSchedule")],
    Discriminator(
        _schedule_kind,
        custom_error_type="schedule",
        custom_error_message="expected a cron expression, a preset (@daily...), none, "
        "or a mapping with assets: [...]",
    ),
]
"""A clock (cron, preset, none) or the artifacts whose updates trigger runs."""

UNION_TAGS = (
    *DEPENDENCY_KINDS,
    *("CronSchedule", "NoSchedule", "AssetSchedule", "ArtifactName", "ScheduledArtifact"),
)
"""The tags of the spec's unions (error locations name them; messages need not)."""


class SparkSpec(StrictModel):
    """How Spark jobs are submitted. Secrets belong in the Airflow connection.

    :param mode: ``submit`` (default): each task runs spark-submit (the ``spark``
        connection type); ``connect``: each task's job is a client of a long-lived Spark
        Connect server (the ``spark_connect`` connection type), so no task starts a JVM.
    :param conn_id: the Airflow connection; ``spark_default`` in submit mode,
        ``spark_connect_default`` in connect mode unless set.
    :param conf: Spark settings; in connect mode only runtime SQL settings (``spark.sql.*``,
        not static): the server's launch settings are the server's.
    :param log_level: the Spark driver's log level in the task log (a Log4j level,
        any case); WARN unless the pipeline asks for more. Submit mode only.
    """

    mode: SparkMode = "submit"
    conn_id: str = "spark_default"
    conf: dict[str, str | int | float | bool] = {}
    python: str | None = None
    log_level: SparkLogLevel = DEFAULT_SPARK_LOG_LEVEL

    @model_validator(mode="before")
    @classmethod
    def _connect_connection(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("mode") == "connect" and "conn_id" not in data:
            return {**data, "conn_id": DEFAULT_CONNECT_CONN_ID}
        return data

    @field_validator("conf")
    @classmethod
    def _check_conf(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if SPARK_LOG_LEVEL_CONF in value:
            raise ValueError(
                f"{SPARK_LOG_LEVEL_CONF}: set the level with spark.log_level "
                f"(one of {', '.join(SPARK_LOG_LEVELS)})"
            )
        if info.data.get("mode") == "connect" and (error := connect_conf_error(value)):
            raise ValueError(error)
        return value

    @field_validator("python", "log_level")
    @classmethod
    def _submit_only(cls, value: Any, info: ValidationInfo) -> Any:
        if info.data.get("mode") == "connect" and value is not None:
            where = {
                "python": "the Python of its Python workers (spark.pyspark.python)",
                "log_level": "its log level",
            }[str(info.field_name)]
            raise ValueError(
                f"spark.{info.field_name} is for mode: submit; a Spark Connect server has "
                f"{where} set where it starts: remove the key"
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
    schedule: Schedule = "@daily"
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
    def _check_schedule(cls, value: str | AssetSchedule | None) -> str | AssetSchedule | None:
        if not isinstance(value, str):
            return value
        return None if value.lower() == "none" else check_clock(value)

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
    loc = tuple(p for p in error["loc"] if p not in UNION_TAGS)
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
        args = [_unwrap(a) for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
        # The one model among the members (a mapping's keys are that model's).
        models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        return models[0] if len(models) == 1 else annotation
    return annotation


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
