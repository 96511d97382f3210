"""The artifact contract: which partitions a stage reads, writes and reuses for a run.

One place answers it for everyone: the stage kinds take their needs/produces
tags from :func:`job_tags`, the factory declares outlets from
:func:`stage_roles`, validation refuses what :func:`model_date_conflicts`
finds, and the bookkeeping, ``report`` and the jobs all call
:func:`stage_io` for the exact partitions of a run.

Roles of a partition:

- ``read``: made by another stage (or another pipeline); must be complete.
- ``write``: committed by this stage for this run.
- ``reuse``: an earlier model-dated partition used as it is (``model.date:
  latest`` resolves it); never written, never announced as an asset event.
- ``fit_or_reuse``: encode's fmap: reused when complete, else fitted and
  written (``refit: true`` makes it a plain ``write``).

Which model date a run uses is :func:`model_date` (the one rule): ``same`` is
the run's date, a fixed date is that date, ``latest`` is the newest complete
*blessed* model dated on or before the run's date; the fmap used with a model
is always the one of the model's date. ``latest`` is resolved once per run,
by encode: it records the model date whose fmap encoded the partition
(:data:`ENCODING_FILE`), and the stages that read that partition (evaluate,
predict) use that model, so one run never mixes two models or fmaps.

Pure Python (storage through pyarrow, imported lazily): importable at DAG
parse time, in Airflow workers, on Spark executors and in containers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from dlflow_airflow.contract.jobconf import JobConfig

RAW_FEATURE = "RAW_FEATURE"
ENCODED_FEATURE = "ENCODED_FEATURE"
TFRECORD_FEATURE = "TFRECORD_FEATURE"
FMAP = "FMAP"
TRAINED_MODEL = "TRAINED_MODEL"
EVALUATE_RESULT = "EVALUATE_RESULT"
PREDICT_RESULT = "PREDICT_RESULT"
DEMO_UPSTREAM = "DEMO_UPSTREAM"
UPSTREAM_READY = "UPSTREAM_READY"
CHAMPION_FEATURE = "CHAMPION_FEATURE"

DEMO_TABLES = ("seed", "user_profile", "user_behaviour")
"""The upstream tables the demo_data job writes under ``<ws>/upstream/<table>/dt=<date>``."""


METRICS_FILE = "metrics.json"
"""Written by evaluate into its partition: the metrics and the gate's verdict."""

ENCODING_FILE = "_ENCODING.json"
"""Written by encode into the encoded partition: which fmap (model date) encoded it."""

DRIFT_FILE = "_DRIFT.json"
"""Written by encode into the encoded partition when it reuses a profiled fmap: the
drift report (:mod:`dlflow_airflow.contract.drift`); the leading ``_`` keeps Spark
and pyarrow from reading it as data."""


class ContractError(ValueError):
    """A stage's tags and the run's ``model.date`` cannot be honoured together."""


class Role(StrEnum):
    READ = "read"
    WRITE = "write"
    REUSE = "reuse"
    FIT_OR_REUSE = "fit_or_reuse"


@dataclass(frozen=True)
class Artifact:
    """What a tag is on storage.

    :param folder: the layout's artifact folder (``raw``, ``femodel``...).
    :param owner: whose tag names the partition: ``feature`` or ``model``.
    :param model_dated: dated by the model date (fmap, model), not the run's date.
    :param tabular: Parquet rows worth counting in asset events.
    :param reusable: a producer reuses a complete partition instead of rewriting it.
    """

    folder: str
    owner: Literal["feature", "model"]
    model_dated: bool = False
    tabular: bool = False
    reusable: bool = False

    def owner_tag(self, feature_tag: str, model_tag: str) -> str:
        """The tag naming this artifact's partitions in a pipeline with these tags."""
        return feature_tag if self.owner == "feature" else model_tag


ARTIFACTS: dict[str, Artifact] = {
    RAW_FEATURE: Artifact("raw", "feature", tabular=True),
    ENCODED_FEATURE: Artifact("encoded", "feature", tabular=True),
    TFRECORD_FEATURE: Artifact("tfrecord", "feature"),
    FMAP: Artifact("femodel", "feature", model_dated=True, reusable=True),
    TRAINED_MODEL: Artifact("model", "model", model_dated=True),
    EVALUATE_RESULT: Artifact("evaluate", "model"),
    PREDICT_RESULT: Artifact("predict", "model", tabular=True),
    # The run's rows encoded with the champion's fmap (or only a record: no champion).
    CHAMPION_FEATURE: Artifact("champion", "model"),
}
"""Built-in tags with a partitioned artifact; other tags (user kinds', DEMO_UPSTREAM) have none."""


@dataclass(frozen=True)
class JobTags:
    needs: tuple[str, ...] = ()
    produces: tuple[str, ...] = ()


JOBS: dict[str, JobTags] = {
    "demo_data": JobTags(produces=(DEMO_UPSTREAM,)),
    "merge": JobTags(produces=(RAW_FEATURE,)),
    "encode": JobTags((RAW_FEATURE,), (ENCODED_FEATURE, FMAP)),
    "train": JobTags((ENCODED_FEATURE, FMAP), (TRAINED_MODEL,)),
    "evaluate": JobTags((ENCODED_FEATURE, FMAP, TRAINED_MODEL), (EVALUATE_RESULT,)),
    "predict": JobTags((ENCODED_FEATURE, FMAP, TRAINED_MODEL), (PREDICT_RESULT,)),
    "wait_upstream": JobTags(produces=(UPSTREAM_READY,)),
}
"""Each built-in job's own tags, before its options add any (see :func:`job_tags`)."""


def job_tags(job: str, options: Any = None) -> JobTags:
    """A built-in job's needs and produces for its options.

    ``encode`` with ``tfrecord: true`` also produces TFRECORD_FEATURE; a TF job
    with ``input: tfrecord`` also needs it. ``encode`` with ``champion: true``
    produces CHAMPION_FEATURE, which evaluate needs when its gate compares the
    new model with the blessed one (``max_drop_vs_blessed``).
    """
    tags = JOBS[job]
    needs, produces = list(tags.needs), list(tags.produces)
    if job == "encode" and getattr(options, "tfrecord", False):
        produces.append(TFRECORD_FEATURE)
    if job == "encode" and getattr(options, "champion", False):
        produces.append(CHAMPION_FEATURE)
    if job in ("train", "evaluate") and getattr(options, "input", None) == "tfrecord":
        needs.append(TFRECORD_FEATURE)
    if job == "evaluate" and getattr(options, "compares_champion", False):
        needs.append(CHAMPION_FEATURE)
    return JobTags(tuple(needs), tuple(produces))


# ------------------------------------------------------------------ roles (parse time)


@dataclass(frozen=True)
class TagRole:
    tag: str
    artifact: Artifact
    role: Role


def _refits(options: Any) -> bool:
    return bool(getattr(options, "refit", False))


def model_date_conflicts(produces: Iterable[str], mode: str, options: Any = None) -> list[str]:
    """Produced tags that must be written for a model date, which ``latest`` cannot name."""
    if mode != "latest":
        return []
    return [
        tag
        for tag in produces
        if tag in ARTIFACTS
        and ARTIFACTS[tag].model_dated
        and (not ARTIFACTS[tag].reusable or _refits(options))
    ]


def stage_roles(
    needs: Iterable[str], produces: Iterable[str], mode: str, options: Any = None
) -> tuple[TagRole, ...]:
    """Each built-in artifact tag of a stage with its role, knowable without storage.

    :param mode: ``model.date``: ``same``, ``latest`` or a date.
    :raises ContractError: the stage must write a model-dated artifact under ``latest``.
    """
    produces = tuple(produces)
    conflicts = model_date_conflicts(produces, mode, options)
    if conflicts:
        raise ContractError(latest_conflict_message(conflicts))
    roles: list[TagRole] = []
    for tag in produces:
        artifact = ARTIFACTS.get(tag)
        if artifact is None:
            continue
        if not artifact.model_dated or (artifact.reusable and _refits(options)):
            role = Role.WRITE
        elif mode == "latest":
            role = Role.REUSE
        else:
            role = Role.FIT_OR_REUSE if artifact.reusable else Role.WRITE
        roles.append(TagRole(tag, artifact, role))
    for tag in dict.fromkeys(needs):
        if tag in ARTIFACTS and tag not in produces:
            roles.append(TagRole(tag, ARTIFACTS[tag], Role.READ))
    return tuple(roles)


def latest_conflict_message(tags: Iterable[str]) -> str:
    return (
        f"model.date 'latest' names an existing model, but this stage writes "
        f"{', '.join(tags)} for a model date; set model.date to 'same' (the run's date) "
        "or a date YYYY-MM-DD, or use 'latest' in a pipeline that only scores"
    )


# ------------------------------------------------------------------ partitions (run time)


@dataclass(frozen=True)
class Partition:
    """One partition a stage touches for its run."""

    tag: str
    folder: str
    owner_tag: str  # the feature or model tag naming it
    date: str
    uri: str
    role: Role
    tabular: bool = False


@dataclass(frozen=True)
class StageIO:
    """Every partition of one stage for one run.

    :param known: False when the contract cannot list every input (user kinds,
        SQL seeds, dated dependencies, steps): such a stage always runs.
    :param extra_inputs: upstream paths read beside the partitions (merge's seed, sources).
    """

    partitions: tuple[Partition, ...] = ()
    known: bool = True
    extra_inputs: tuple[str, ...] = ()

    def by_role(self, *roles: Role) -> tuple[Partition, ...]:
        return tuple(p for p in self.partitions if p.role in roles)

    @property
    def writes(self) -> tuple[Partition, ...]:
        return self.by_role(Role.WRITE)

    def get(self, tag: str) -> Partition:
        """The partition of ``tag``.

        :raises ContractError: the stage's tags name no such partition (a hand-written
            job document without the tag in its needs or produces).
        """
        for partition in self.partitions:
            if partition.tag == tag:
                return partition
        have = ", ".join(p.tag for p in self.partitions) or "none"
        raise ContractError(f"the stage has no {tag} partition (its partitions: {have})")

    def has(self, tag: str) -> bool:
        return any(p.tag == tag for p in self.partitions)


def model_date(config: JobConfig) -> str:
    """The model date of a run: the one rule for every stage (see the module docstring).

    :raises ModelNotFoundError: ``latest`` finds no complete blessed model (the
        message names the folder and the unblessed dates).
    :raises ModelNotBlessedError: the model that encoded the run's partition
        has lost its blessing since (a stage that only scores refuses it).
    """
    mode = config.model.date
    if mode == "same":
        return config.date
    if mode != "latest":
        return mode
    from dlflow_airflow.contract.model_resolution import (
        ModelNotBlessedError,
        is_blessed,
        resolve_model_partition,
    )

    pinned = encoded_with(config)
    if pinned is None:
        resolved = resolve_model_partition(
            config.layout, config.model.tag, "latest", config.date, blessed_only=True
        )
        return resolved.date
    model_uri = config.layout.model(config.model.tag, pinned)
    # Evaluate is what blesses: it may judge the model again; a scorer may not use it unblessed.
    if EVALUATE_RESULT not in config.stage.produces and not is_blessed(model_uri):
        raise ModelNotBlessedError(
            f"model {model_uri} encoded {config.layout.encoded(config.feature.tag, config.date)} "
            "but is no longer blessed (it missed the evaluate stage's gate since); rerun encode "
            "to pick the newest blessed model"
        )
    return pinned


def encoded_with(config: JobConfig) -> str | None:
    """The model date recorded by encode in the run's encoded partition, for its readers."""
    if ENCODED_FEATURE not in config.stage.needs:
        return None
    from dlflow_airflow.contract import storage

    encoded = config.layout.encoded(config.feature.tag, config.date)
    record = f"{encoded}/{ENCODING_FILE}"
    if not storage.is_complete(encoded) or not storage.exists(record):
        return None
    doc = json.loads(storage.read_text(record))
    return str(doc["model_date"])


def encoding_record(
    fmap: Partition, checksum: str, unseen_labels: dict[str, Any] | None = None
) -> str:
    """The :data:`ENCODING_FILE` document encode writes beside its encoded table.

    :param unseen_labels: per multiclass label, the rows (and most common values)
        the fmap's classes do not know: ``{label: {"rows": n, "values": {value: n}}}``.
    """
    doc: dict[str, Any] = {"model_date": fmap.date, "fmap": fmap.uri, "fmap_checksum": checksum}
    if unseen_labels:
        doc["unseen_labels"] = unseen_labels
    return json.dumps(doc)


def unseen_labels_of(encoded: str) -> dict[str, Any]:
    """What :func:`encoding_record` recorded as unseen labels for an encoded partition
    (``{}`` when nothing was, or the record is missing)."""
    from dlflow_airflow.contract import storage

    record = f"{encoded}/{ENCODING_FILE}"
    if not storage.exists(record):
        return {}
    return dict(json.loads(storage.read_text(record)).get("unseen_labels", {}))


@dataclass(frozen=True)
class ChampionRecord:
    """The :data:`ENCODING_FILE` of a CHAMPION_FEATURE partition: whom encode found.

    The champion is the blessed model the run's new model (the challenger) is
    compared with; encode encodes the run's rows with the champion's own fmap
    beside the record. Without one (the first model of a tag, or its fmap is
    unusable) the partition holds only the record and ``reason`` says why.

    :param model_date: the champion's model date (also its fmap's); None: no champion.
    :param model: the champion's model partition.
    :param fmap: the femodel partition that encoded the champion's rows.
    """

    model_date: str | None
    model: str | None = None
    fmap: str | None = None
    fmap_checksum: str | None = None
    reason: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def read(cls, partition_uri: str) -> ChampionRecord:
        """The record of a committed champion partition.

        :raises ContractError: the partition is incomplete or has no record.
        """
        from dlflow_airflow.contract import storage

        record = f"{partition_uri}/{ENCODING_FILE}"
        if not storage.is_complete(partition_uri) or not storage.exists(record):
            raise ContractError(
                f"no champion record at {record}: run encode for this date again "
                "(the pipeline sets its option champion: true)"
            )
        doc = json.loads(storage.read_text(record))
        return cls(**{key: doc.get(key) for key in cls.__dataclass_fields__})


def stage_io(config: JobConfig) -> StageIO:
    """The partitions the stage of ``config`` reads, writes and reuses for its run.

    :raises ContractError: see :func:`stage_roles`.
    :raises ModelNotFoundError: ``latest`` with no blessed model, when a
        model-dated partition is involved.
    """
    stage = config.stage
    if stage.job is None or stage.job not in JOBS:
        return StageIO(known=False)
    roles = stage_roles(stage.needs, stage.produces, config.model.date, config.options)
    model_day = None
    if any(r.artifact.model_dated for r in roles):
        model_day = model_date(config)
    owners = {"feature": config.feature.tag, "model": config.model.tag}
    partitions: list[Partition] = []
    if DEMO_UPSTREAM in stage.produces:
        partitions.extend(
            Partition(
                DEMO_UPSTREAM,
                "upstream",
                table,
                config.date,
                config.layout.upstream(table, config.date),
                Role.WRITE,
                True,
            )
            for table in DEMO_TABLES
        )
    for r in roles:
        owner_tag = owners[r.artifact.owner]
        day = model_day if r.artifact.model_dated else config.date
        assert day is not None
        uri = config.layout.partition(r.artifact.folder, owner_tag, day)
        partitions.append(
            Partition(r.tag, r.artifact.folder, owner_tag, day, uri, r.role, r.artifact.tabular)
        )
    known, extra = True, ()
    if stage.job == "merge":
        known, extra = _merge_inputs(config)
    if CHAMPION_FEATURE in stage.produces and model_day is not None:
        extra = _champion_inputs(config, model_day)
    return StageIO(tuple(partitions), known, extra)


def _champion_inputs(config: JobConfig, model_day: str) -> tuple[str, ...]:
    """The champion's model and fmap partitions: inputs of the encode that writes its
    rows, so a newly blessed champion makes that encode run again (no stale rows)."""
    from dlflow_airflow.contract.model_resolution import resolve_champion

    found = resolve_champion(config.layout, config.model.tag, config.date, exclude=model_day)
    if found is None:
        return ()
    return (found.uri, config.layout.femodel(config.feature.tag, found.date))


def _merge_inputs(config: JobConfig) -> tuple[bool, tuple[str, ...]]:
    """Merge's seed and source paths; unknown with SQL seeds, dependencies or steps."""
    from dlflow_airflow.contract.dependencies import DependencyError, base_values, render

    options = config.options
    if options.dependencies or options.steps or options.seed.path is None:
        return False, ()
    values = base_values(config.workspace, config.date)
    try:
        paths = [render(t.path, values) for t in (options.seed, *options.sources)]
    except DependencyError:
        return False, ()
    return True, tuple(paths)


@dataclass(frozen=True)
class StageRef:
    """Which stage a job document belongs to: its name, built-in job and tags."""

    name: str
    job: str | None
    needs: tuple[str, ...] = ()
    produces: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "job": self.job,
            "needs": list(self.needs),
            "produces": list(self.produces),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> StageRef:
        return cls(
            name=str(doc["name"]),
            job=doc.get("job"),
            needs=tuple(doc.get("needs", ())),
            produces=tuple(doc.get("produces", ())),
        )


def asset_name(folder: str, owner_tag: str) -> str:
    """The Airflow Asset name of one artifact root, e.g. ``dlflow.model.dnn_v1``."""
    return f"dlflow.{folder}.{owner_tag}"


# ------------------------------------------------------------------ the gate before predict


def gated_tags(needs: Iterable[str]) -> bool:
    """Whether a stage scores a model only once evaluate has judged it (it waits for it)."""
    needs = tuple(needs)
    return EVALUATE_RESULT in needs and TRAINED_MODEL in needs


def gate_block(config: JobConfig, io: StageIO) -> str | None:
    """Why a gated stage may not use its model (None: blessed, it may).

    A stage that needs both TRAINED_MODEL and EVALUATE_RESULT (predict in a
    pipeline whose evaluate has a gate) refuses a model without the BLESSED
    marker, whatever ``model.date`` says; the reason quotes the gate's misses
    from the evaluate partition.
    """
    if not gated_tags(config.stage.needs) or not io.has(TRAINED_MODEL):
        return None
    from dlflow_airflow.contract import storage
    from dlflow_airflow.contract.model_resolution import is_blessed

    model = io.get(TRAINED_MODEL).uri
    if is_blessed(model):
        return None
    verdict = io.get(EVALUATE_RESULT).uri
    record = f"{verdict}/{METRICS_FILE}"
    if not storage.is_complete(verdict) or not storage.exists(record):
        return f"model {model} is not blessed and was not judged: no {record}"
    gate = json.loads(storage.read_text(record)).get("gate") or {}
    approval = approval_state(model, verdict, gate)
    if approval is not None and approval.state == "awaiting":
        return (
            f"model {model} met the gate and is awaiting approval: a human approves it in "
            "Airflow (the evaluate stage's approval task, Required actions)"
        )
    if approval is not None and approval.state == "rejected":
        return f"model {model} met the gate but was {approval.describe()}; see {record}"
    missed = "; ".join(gate.get("missed") or []) or "no miss recorded"
    return f"model {model} missed the gate ({missed}); see {record}"


@dataclass(frozen=True)
class ApprovalState:
    """A human's say on a model whose evaluate verdict asked for one (``approval: true``).

    :param state: ``awaiting`` (no decision on this verdict yet), ``approved`` or ``rejected``.
    :param by: the Airflow user who decided; empty when the request timed out.
    :param at: when (ISO 8601).
    """

    state: Literal["awaiting", "approved", "rejected"]
    by: str = ""
    at: str = ""

    def describe(self) -> str:
        if self.state == "awaiting":
            return "awaiting approval"
        return f"{self.state} by {self.by}" if self.by else f"{self.state} (no answer in time)"


def approval_of(io: StageIO) -> ApprovalState | None:
    """Where the human approval of the model a stage reads or judges stands (None: none asked)."""
    if not io.has(TRAINED_MODEL) or not io.has(EVALUATE_RESULT):
        return None
    from dlflow_airflow.contract import storage

    verdict = io.get(EVALUATE_RESULT).uri
    record = f"{verdict}/{METRICS_FILE}"
    if not storage.is_complete(verdict) or not storage.exists(record):
        return None
    gate = json.loads(storage.read_text(record)).get("gate") or {}
    return approval_state(io.get(TRAINED_MODEL).uri, verdict, gate)


def verdict_stamp(verdict_uri: str) -> Any:
    """The commit stamp of an evaluate partition: a decision holds for this commit only."""
    from dlflow_airflow.contract import storage
    from dlflow_airflow.contract.layout import SUCCESS_MARKER

    return storage.modified(f"{verdict_uri}/{SUCCESS_MARKER}")


def approval_state(model_uri: str, verdict_uri: str, gate: dict[str, Any]) -> ApprovalState | None:
    """Where the human approval of ``model_uri`` stands, from metrics.json's ``gate`` section.

    None when the verdict asked for no approval (the model missed a bound, or
    the stage has no ``approval``). A decision recorded in the model's
    manifest counts only for the evaluate commit it answered: a model judged
    again awaits a new one.
    """
    if not gate.get("awaiting_approval") or gate.get("missed"):
        return None
    from dlflow_airflow.contract.model_resolution import read_decision

    decision = read_decision(model_uri) or {}
    stamp = verdict_stamp(verdict_uri)  # None: no commit time to tie a decision to
    answered = (
        stamp is not None
        and decision.get("evaluate") == verdict_uri
        and decision.get("verdict_stamp") == stamp
    )
    if not answered or decision.get("decision") not in ("approved", "rejected"):
        return ApprovalState("awaiting")
    by = (decision.get("by") or {}).get("name") or ""
    return ApprovalState(decision["decision"], by, str(decision.get("at") or ""))
