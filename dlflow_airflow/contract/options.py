"""Every built-in stage's options: one definition, read by the YAML schema and by the job.

The pipeline spec validates a stage's YAML keys against these models; the
job parses the same document back into the same model
(:meth:`dlflow_airflow.contract.jobconf.JobConfig.from_argv`), so a default
lives here and nowhere else. Pure pydantic: importable on Spark executors and
in containers.

Paths (merge's seed, sources, SQL files and dependencies) are :data:`EnvPath`:
``${NAME}`` / ``${NAME:-default}`` are expanded when the pipeline is
validated, so the job document carries the expanded path. Their ``{name}``
placeholders are filled per run; :func:`path_templates` lists every such path
with the placeholders it may use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    field_validator,
    model_validator,
)

from dlflow_airflow.contract.dependencies import (
    BASE_PLACEHOLDERS,
    Dependency,
    DependencyError,
    PathDependency,
    render,
)
from dlflow_airflow.contract.layout import check_date
from dlflow_airflow.contract.schema import EnvPath, Name, StrictModel


def _no_reserved_names(value: dict[str, Dependency]) -> dict[str, Dependency]:
    clash = sorted(set(value) & set(BASE_PLACEHOLDERS))
    if clash:
        raise ValueError(
            f"dependency names {clash} are reserved placeholders "
            f"({', '.join(BASE_PLACEHOLDERS)}); rename them"
        )
    return value


Dependencies = Annotated[
    dict[Name, Dependency],
    AfterValidator(_no_reserved_names),
]
"""Named upstream dependencies; each name is a placeholder of merge's paths."""


def _date_text(value: Any) -> Any:
    """An unquoted YAML date (``2026-02-01``) as the text ``"2026-02-01"``."""
    return value.isoformat() if isinstance(value, date) else value


class DemoDataOptions(StrictModel):
    """:param rows: seed rows per date. :param seed: random seed (the date is mixed in)."""

    rows: int = Field(default=20_000, ge=100, le=100_000_000)
    seed: int = 7


class TableSource(StrictModel):
    """A dated upstream table. ``path`` may hold {workspace}, {date}, {date_nodash}
    and merge's dependency names."""

    path: EnvPath
    format: Literal["parquet", "orc", "json", "csv"] = "parquet"


class FeatureSource(TableSource):
    name: Name
    keys: list[Name] | None = None


class SeedSource(StrictModel):
    """The seed: a dated table ``path`` or a ``sql`` file (placeholders allowed in both)."""

    path: EnvPath | None = None
    sql: EnvPath | None = None
    format: Literal["parquet", "orc", "json", "csv"] = "parquet"

    @model_validator(mode="after")
    def _one_of(self) -> SeedSource:
        if (self.path is None) == (self.sql is None):
            raise ValueError("give exactly one of 'path' or 'sql'")
        return self


class SqlStep(StrictModel):
    file: EnvPath
    join_keys: list[Name] | None = None


class CountMissingStep(StrictModel):
    columns: list[Name] | None = None
    prefix: Name = "missing"


class FillMissingStep(StrictModel):
    by_type: dict[str, str | int | float | bool] = {}
    columns: dict[Name, str | int | float | bool] = {}


class MergeStep(StrictModel):
    """One step: exactly one of ``sql``, ``count_missing`` or ``fill_missing``."""

    sql: SqlStep | None = None
    count_missing: CountMissingStep | None = None
    fill_missing: FillMissingStep | None = None

    @model_validator(mode="after")
    def _one_of(self) -> MergeStep:
        if len(self.model_dump(exclude_none=True)) != 1:
            raise ValueError("a step is exactly one of sql, count_missing, fill_missing")
        return self


class MergeOptions(StrictModel):
    """See ``docs/features.md``: seed, sources, dependencies, steps, unique_check."""

    seed: SeedSource
    sources: list[FeatureSource] = []
    dependencies: Dependencies = {}
    steps: list[MergeStep] = []
    unique_check: bool = True


class WaitUpstreamOptions(StrictModel):
    """:param dependencies: what to wait for (the same shape as merge's).
    :param poke_interval_seconds: seconds between checks.
    :param timeout_hours: fail after waiting this long.
    :param mode: ``reschedule`` frees the worker slot between checks.
    :param deferrable: wait in Airflow's triggerer instead (no worker slot at all)."""

    dependencies: Annotated[Dependencies, Field(min_length=1)]
    poke_interval_seconds: int = Field(default=300, ge=10)
    timeout_hours: float = Field(default=24, gt=0)
    mode: Literal["reschedule", "poke"] = "reschedule"
    deferrable: bool = False


@dataclass(frozen=True)
class PathTemplate:
    """One path option of a stage, filled per run.

    :param key: where it is in the stage's options, e.g. ``sources.0.path``.
    :param placeholders: the ``{name}`` placeholders the job fills in it.
    """

    key: str
    template: str
    placeholders: tuple[str, ...]

    def problem(self) -> str | None:
        """Why the job could not fill it (an unknown or malformed placeholder), else None."""
        try:
            render(self.template, dict.fromkeys(self.placeholders, ""))
        except DependencyError as exc:
            return str(exc)
        return None


def path_templates(options: BaseModel) -> tuple[PathTemplate, ...]:
    """Every path of a stage's options that the job fills with placeholders.

    Dependency paths take :data:`BASE_PLACEHOLDERS`; merge's seed, sources and
    SQL step files also take each dependency's name.
    """
    if isinstance(options, WaitUpstreamOptions):
        return _dependency_templates(options.dependencies)
    if not isinstance(options, MergeOptions):
        return ()
    names = (*BASE_PLACEHOLDERS, *options.dependencies)
    seed_key = "seed.path" if options.seed.path is not None else "seed.sql"
    seed = options.seed.path if options.seed.path is not None else options.seed.sql
    found = [PathTemplate(seed_key, str(seed), names)]
    found += [
        PathTemplate(f"sources.{i}.path", s.path, names) for i, s in enumerate(options.sources)
    ]
    found += [
        PathTemplate(f"steps.{i}.sql.file", step.sql.file, names)
        for i, step in enumerate(options.steps)
        if step.sql is not None
    ]
    return (*_dependency_templates(options.dependencies), *found)


def _dependency_templates(dependencies: dict[str, Dependency]) -> tuple[PathTemplate, ...]:
    return tuple(
        PathTemplate(f"dependencies.{name}.path", dep.path, BASE_PLACEHOLDERS)
        for name, dep in dependencies.items()
        if isinstance(dep, PathDependency)
    )


class DriftGate(StrictModel):
    """Bounds on the drift encode measures when it reuses an fmap (none set: no gate;
    drift is measured and reported all the same). See :mod:`dlflow_airflow.contract.drift`.

    :param psi_max: the largest population stability index of any feature.
    :param null_rate_increase_max: the largest rise of a feature's null rate since the fit.
    :param unseen_rate_max: the largest share of a string's values (a map's keys)
        outside its vocabulary.
    :param on_breach: ``warn`` (log, commit, list the breaches in the result) or
        ``fail`` (commit nothing; the task fails without retries).
    """

    psi_max: float | None = Field(default=None, ge=0)
    null_rate_increase_max: float | None = Field(default=None, ge=0)
    unseen_rate_max: float | None = Field(default=None, ge=0)
    on_breach: Literal["warn", "fail"] = "warn"


class EncodeOptions(StrictModel):
    """:param drift: the drift gate (:class:`DriftGate`)."""

    tfrecord: bool = False
    tfrecord_compression: Literal["none", "gzip"] = "none"
    refit: bool = False
    # Normally set for you: the pipeline turns it on when its evaluate compares
    # the new model with the blessed one (``max_drop_vs_blessed``), which needs
    # the day's rows encoded with that champion's own fmap as well.
    champion: bool = False
    drift: DriftGate = DriftGate()


TF_METRICS = (
    "auc",
    "pr_auc",
    "log_loss",
    "accuracy",
    "calibration",
    "positive_rate",
    "mean_score",
    "macro_f1",
    "weighted_f1",
    "mse",
    "mae",
    "r2",
    "rows",
)
"""Metrics the evaluate job computes: binary heads (auc ... mean_score), multiclass heads
(auc, log_loss, accuracy, macro_f1, weighted_f1), regression heads (mse, mae,
r2), and rows. A model with several heads names each head's as ``<head>.<metric>``."""

METRIC_DIRECTION: dict[str, Literal["higher", "lower"]] = {
    "auc": "higher",
    "pr_auc": "higher",
    "accuracy": "higher",
    "r2": "higher",
    "log_loss": "lower",
    "mse": "lower",
    "mae": "lower",
    "macro_f1": "higher",
    "weighted_f1": "higher",
}
"""Which way is better, for the metrics a challenger is compared on with the champion.

The others (calibration, positive_rate, mean_score, rows) are good near a
target, not higher or lower, so ``max_drop_vs_blessed`` is refused on them.
"""


def metric_name(key: str) -> str:
    """The metric a gate key names: ``auc`` for ``auc`` and for ``click.auc`` (head click)."""
    return key.rsplit(".", 1)[-1]


def metric_direction(key: str) -> Literal["higher", "lower"] | None:
    """Which way ``key`` (``metric`` or ``<head>.<metric>``) is better; None: neither."""
    return METRIC_DIRECTION.get(metric_name(key))


class Resources(StrictModel):
    """Container resources. :param requests: e.g. ``{cpu: "2", memory: 4Gi}``.

    :param limits: the same keys as ``requests``.
    :param gpus: GPUs requested (``nvidia.com/gpu`` on Kubernetes, a device request on Docker).
    """

    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    gpus: int = Field(default=0, ge=0, le=64)


class KubernetesVolume(StrictModel):
    """A volume mounted into the job's pod: exactly one of the sources.

    :param claim_name: a PersistentVolumeClaim. :param host_path: a node folder.
    :param config_map: a ConfigMap. :param secret: a Secret.
    """

    name: Name
    mount_path: str = Field(pattern=r"^/")
    read_only: bool = False
    claim_name: str | None = None
    host_path: str | None = None
    config_map: str | None = None
    secret: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> KubernetesVolume:
        sources = [self.claim_name, self.host_path, self.config_map, self.secret]
        if sum(s is not None for s in sources) != 1:
            raise ValueError(
                "a volume needs exactly one of claim_name, host_path, config_map, secret"
            )
        return self


class KubernetesSettings(StrictModel):
    """Where and how a TF job runs as a pod (``runner: kubernetes``)."""

    image: str = Field(min_length=1)
    namespace: str = "default"
    conn_id: str = "kubernetes_default"
    in_cluster: bool | None = None
    service_account: str | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    resources: Resources = Resources()
    env: dict[str, str] = {}
    volumes: list[KubernetesVolume] = []
    node_selector: dict[str, str] = {}
    labels: dict[str, str] = {}
    startup_timeout_seconds: int = Field(default=600, ge=1)


class DockerMount(StrictModel):
    """A bind mount (``source`` is a host path) or a named volume."""

    source: str = Field(min_length=1)
    target: str = Field(pattern=r"^/")
    type: Literal["bind", "volume"] = "bind"
    read_only: bool = False


class DockerSettings(StrictModel):
    """Where and how a TF job runs as a container (``runner: docker``)."""

    image: str = Field(min_length=1)
    docker_url: str | None = None
    network_mode: str | None = None
    env: dict[str, str] = {}
    mounts: list[DockerMount] = []
    cpus: float | None = Field(default=None, gt=0)
    mem_limit: str | None = None
    gpus: int = Field(default=0, ge=0, le=64)
    auto_remove: Literal["never", "success", "force"] = "success"


class TfJobOptions(StrictModel):
    """Options shared by the train and evaluate stages (see docs/models.md).

    :param runner: where the job runs: ``local`` (a subprocess of the worker),
        ``kubernetes`` (a pod) or ``docker`` (a container).
    :param input: ``parquet`` (the encoded table) or ``tfrecord`` (encode's TFRecords).
    :param kubernetes: pod settings; required with ``runner: kubernetes``.
    :param docker: container settings; required with ``runner: docker``.
    """

    runner: Literal["local", "kubernetes", "docker"] = "local"
    input: Literal["parquet", "tfrecord"] = "parquet"
    shuffle: bool = True
    shuffle_buffer: int = Field(default=65_536, ge=1)
    seed: int = 42
    threads: int | None = Field(default=None, ge=1)
    kubernetes: KubernetesSettings | None = None
    docker: DockerSettings | None = None

    @model_validator(mode="after")
    def _runner_settings(self) -> TfJobOptions:
        for backend in ("kubernetes", "docker"):
            given = getattr(self, backend) is not None
            if self.runner == backend and not given:
                raise ValueError(f"runner {backend!r} needs a {backend!r} block (at least image)")
            if self.runner != backend and given:
                raise ValueError(f"a {backend!r} block is only read with runner: {backend}")
        return self


class TrainOptions(TfJobOptions):
    """:param workers: local training processes (MultiWorkerMirroredStrategy when > 1).

    :param warm_start: ``none``, ``latest`` (the newest earlier model of the
        same tag) or a model date to start from.
    :param checkpoint_every_steps: steps between checkpoints; a retried task resumes.
    :param in_memory_mb: a Parquet input whose decoded rows take at most this many MiB
        is read once and every epoch is served from memory, all rows shuffled together
        (one worker; 0: read the files every epoch, shuffling within ``shuffle_buffer``).
    """

    workers: int = Field(default=1, ge=1, le=32)
    in_memory_mb: int = Field(default=1024, ge=0)
    warm_start: str = "none"
    checkpoint_every_steps: int = Field(default=500, ge=1)

    @field_validator("warm_start", mode="before")
    @classmethod
    def _check_warm_start(cls, value: Any) -> Any:
        value = _date_text(value)
        if value in ("none", "latest"):
            return value
        try:
            return check_date(value)
        except ValueError:
            raise ValueError("expected 'none', 'latest' or a model date YYYY-MM-DD") from None

    @model_validator(mode="after")
    def _local_workers(self) -> TrainOptions:
        if self.workers > 1 and self.runner != "local":
            raise ValueError("workers > 1 runs local processes; it needs runner: local")
        return self


class GateBound(StrictModel):
    """Bounds one metric must meet for the model to be blessed.

    :param max_drop_vs_blessed: how much worse than the champion (the blessed
        model of the same tag, scored on the same rows) the new model may be,
        in the metric's own units; which way is worse: :data:`METRIC_DIRECTION`.
    """

    min: float | None = None
    max: float | None = None
    max_drop_vs_blessed: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _some_bound(self) -> GateBound:
        if self.min is None and self.max is None and self.max_drop_vs_blessed is None:
            raise ValueError("a gate bound needs min, max or max_drop_vs_blessed")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class EvaluateOptions(TfJobOptions):
    """:param gate: ``{metric: {min: x, max: y, max_drop_vs_blessed: d}}``; a model
        that meets all is blessed. A model with several heads names one head's metric
        ``<head>.<metric>`` (``click.auc``).

    :param gate_miss: ``warn`` (the task succeeds, the model is not blessed) or ``fail``.
    :param approval: a model meeting every bound waits for a human's Approve in Airflow
        (the ``<stage>_approval`` task) before it is blessed; also written
        ``gate: {approval: true}``.
    :param approval_timeout_hours: with ``approval``, a request nobody answers in this
        many hours counts as rejected; unset, it waits for ever.
    :param plots: write ROC / PR / calibration PNGs (or residual plots) beside metrics.json.
    :param batch_size: rows per scoring step.
    """

    shuffle: bool = False
    gate: dict[str, GateBound] = {}
    gate_miss: Literal["warn", "fail"] = "warn"
    approval: bool = False
    approval_timeout_hours: float | None = Field(default=None, gt=0)
    plots: bool = True
    batch_size: int = Field(default=8192, ge=1, le=1_000_000)

    @model_validator(mode="before")
    @classmethod
    def _approval_in_gate(cls, data: Any) -> Any:
        """``gate: {approval: true}`` is ``approval: true``; ``gate`` keeps only metric bounds."""
        if not isinstance(data, dict) or not isinstance(data.get("gate"), dict):
            return data
        if "approval" not in data["gate"]:
            return data
        gate = dict(data["gate"])
        approval = gate.pop("approval")
        if "approval" in data and data["approval"] != approval:
            raise ValueError("approval is given twice (in gate and beside it) with two values")
        return {**data, "gate": gate, "approval": approval}

    @model_validator(mode="after")
    def _timeout_needs_approval(self) -> EvaluateOptions:
        if self.approval_timeout_hours is not None and not self.approval:
            raise ValueError("approval_timeout_hours is only read with approval: true")
        return self

    @field_validator("gate")
    @classmethod
    def _known_metrics(cls, value: dict[str, GateBound]) -> dict[str, GateBound]:
        # ``<head>.<metric>`` for a model with several heads; which heads it has is
        # known only once the fmap is fitted, so evaluate checks the head part.
        unknown = sorted(
            key
            for key in value
            if metric_name(key) not in TF_METRICS or key.startswith(".") or ".." in key
        )
        if unknown:
            raise ValueError(
                f"unknown gate metric {unknown}; known metrics: {', '.join(TF_METRICS)} "
                "(<head>.<metric> for one head of a model with several, e.g. click.auc)"
            )
        aimless = sorted(
            metric
            for metric, bound in value.items()
            if bound.max_drop_vs_blessed is not None and metric_direction(metric) is None
        )
        if aimless:
            raise ValueError(
                f"{', '.join(f'{m}.max_drop_vs_blessed' for m in aimless)}: "
                "not better higher or lower (good near a target), so a drop from the "
                f"champion means nothing; max_drop_vs_blessed applies to "
                f"{', '.join(METRIC_DIRECTION)}"
            )
        return value

    @property
    def compares_champion(self) -> bool:
        """Whether the gate compares the new model with the blessed one (the champion)."""
        return any(bound.max_drop_vs_blessed is not None for bound in self.gate.values())


class PredictOptions(StrictModel):
    """:param batch_size: rows per Arrow batch fed to the model.
    :param pass_through: encoded columns copied into the predictions (e.g. labels).
    :param allow_empty: an empty input commits an empty prediction instead of failing.
    :param tf_threads: TensorFlow threads per Spark task; 0 = ``spark.task.cpus``.
    """

    batch_size: int = Field(default=4096, ge=1, le=1_000_000)
    pass_through: list[Name] = []
    allow_empty: bool = False
    tf_threads: int = Field(default=0, ge=0, le=256)


class NoOptions(StrictModel):
    """A stage kind without keys of its own."""


JOB_OPTIONS: dict[str, type[BaseModel]] = {
    "demo_data": DemoDataOptions,
    "merge": MergeOptions,
    "encode": EncodeOptions,
    "train": TrainOptions,
    "evaluate": EvaluateOptions,
    "predict": PredictOptions,
    "wait_upstream": WaitUpstreamOptions,
}
"""Each built-in job's options model: what the job parses its ``options`` into."""
