"""Safe reruns: skip a stage whose output is complete and whose inputs and spec are unchanged.

Every stage commits its output partition atomically (staging folder, then a
rename, ``_SUCCESS`` last). After a successful run the task writes a content
fingerprint beside ``_SUCCESS`` (``_FINGERPRINT.json``): a hash of the job
(program, date, the whole job config) and of every input partition's listing
(file names and sizes; Spark names its part files uniquely per write, so a
rewritten input changes its listing). A later run of the same task computes
the fingerprint again; when every output partition is complete and carries
that fingerprint, the task is skipped with a log line saying why.

The DAG's Params steer it: ``force`` recomputes anyway, ``stages`` runs only
the named stages (the others are skipped; downstream tasks still run because
the factory gives every task the ``none_failed`` trigger rule).

Run-time only (called from an operator's ``execute``); pyarrow is imported lazily.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dlflow_airflow import storage
from dlflow_airflow.assets import TAG_ARTIFACTS, asset_name
from dlflow_airflow.jobconf import JobConfig
from dlflow_airflow.layout import SUCCESS_MARKER, normalize_workspace
from dlflow_airflow.model_resolution import BLESSED_MARKER

FINGERPRINT_FILE = "_FINGERPRINT.json"
# Files that record a partition's state, not its content: evaluate blesses a
# model after predict may have read it, which must not make predict rerun.
_STATE_FILES = frozenset({FINGERPRINT_FILE, BLESSED_MARKER})
_DT_RE = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")
_DEMO_TABLES = ("seed", "user_profile", "user_behaviour")

# job -> (input tags, output tags); partitions come from assets.TAG_ARTIFACTS.
_JOB_TAGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "merge": ((), ("RAW_FEATURE",)),
    "encode": (("RAW_FEATURE",), ("ENCODED_FEATURE", "FMAP")),
    "train": (("ENCODED_FEATURE", "FMAP"), ("TRAINED_MODEL",)),
    "evaluate": (("ENCODED_FEATURE", "FMAP", "TRAINED_MODEL"), ("EVALUATE_RESULT",)),
    "predict": (("ENCODED_FEATURE", "FMAP", "TRAINED_MODEL"), ("PREDICT_RESULT",)),
}


@dataclass(frozen=True)
class Output:
    """One partition a stage commits for its run."""

    uri: str
    artifact: str
    tag: str
    tabular: bool  # Parquet rows worth counting


@dataclass(frozen=True)
class StageIO:
    inputs: tuple[str, ...]
    outputs: tuple[Output, ...]


@dataclass(frozen=True)
class Decision:
    skip: bool
    reason: str
    fingerprint: str | None = None


def stage_io(job: str, config: JobConfig) -> StageIO | None:
    """The input and output partitions of a built-in job for its date; None if unknown."""
    ws = normalize_workspace(config.workspace)
    if job == "demo_data":
        outs = tuple(
            Output(f"{ws}/upstream/{t}/dt={config.date}", "upstream", t, True) for t in _DEMO_TABLES
        )
        return StageIO((), outs)
    if job not in _JOB_TAGS:
        return None
    in_tags, out_tags = _JOB_TAGS[job]
    if job == "encode" and config.options.get("tfrecord"):
        out_tags = (*out_tags, "TFRECORD_FEATURE")
    model_date = _model_date(job, config)
    inputs: list[str] = []
    if job == "merge":
        merge_inputs = _merge_inputs(config)
        if merge_inputs is None:
            return None
        inputs.extend(merge_inputs)
    outputs: list[Output] = []
    for tag in out_tags:
        ref = TAG_ARTIFACTS[tag]
        uri = _partition(config, tag, model_date)
        if uri is None:
            return None
        owner = config.feature.tag if ref.owner == "feature" else config.model.tag
        if uri.endswith(f"/dt={config.date}"):
            tabular = ref.artifact in ("raw", "encoded", "predict")
            outputs.append(Output(uri, ref.artifact, owner, tabular))
        else:  # a reused fmap / model of another date: read, not written
            inputs.append(uri)
    for tag in in_tags:
        uri = _partition(config, tag, model_date)
        if uri is None:
            return None
        inputs.append(uri)
    return StageIO(tuple(inputs), tuple(outputs))


def _merge_inputs(config: JobConfig) -> list[str] | None:
    """The seed and source partitions merge reads; None when one is not a plain path."""
    ws = normalize_workspace(config.workspace)
    fields = {"workspace": ws, "date": config.date, "date_nodash": config.date.replace("-", "")}
    tables = [config.options.get("seed"), *config.options.get("sources", [])]
    paths = [t.get("path") if isinstance(t, dict) else None for t in tables]
    if (
        config.options.get("dependencies")
        or config.options.get("steps")
        or not all(isinstance(p, str) for p in paths)
    ):
        # SQL seeds, dated dependencies, steps (SQL / UDF files we do not hash):
        # no fingerprint, the stage always runs.
        return None
    try:
        return [p.format(**fields) for p in paths]
    except (KeyError, IndexError, ValueError):
        return None


def _model_date(job: str, config: JobConfig) -> str | None:
    """The model date the job uses; ``latest`` resolves as the job itself does."""
    if config.model.date == "same" or job == "train":  # train writes the run's model
        return config.date if config.model.date in ("same", "latest") else config.model.date
    if config.model.date != "latest":
        return config.model.date
    if job == "encode":  # encode reuses the newest fmap
        root = config.layout.root("femodel", config.feature.tag)
    else:  # evaluate / predict load the newest model and the fmap of its date
        root = config.layout.root("model", config.model.tag)
    latest = latest_complete(root, config.date)
    return latest.rsplit("dt=", 1)[1] if latest else None


def _partition(config: JobConfig, tag: str, model_date: str | None) -> str | None:
    ref = TAG_ARTIFACTS[tag]
    owner = config.feature.tag if ref.owner == "feature" else config.model.tag
    date = config.date if ref.dated_by == "date" else model_date
    return config.layout.partition(ref.artifact, owner, date) if date else None


def latest_complete(root: str, date: str) -> str | None:
    """The newest complete ``<root>/dt=<d>`` with ``d <= date``."""
    dates = sorted(
        (m.group(1) for m in map(_DT_RE.match, storage.list_names(root)) if m), reverse=True
    )
    for day in dates:
        if day <= date and storage.is_complete(f"{root}/dt={day}"):
            return f"{root}/dt={day}"
    return None


def partition_digest(uri: str) -> str | None:
    """A hash of a complete partition's file listing (relative names + sizes); None if absent."""
    from pyarrow import fs

    if not storage.is_complete(uri):
        return None
    filesystem, path = storage.resolve(uri)
    infos = filesystem.get_file_info(fs.FileSelector(path, recursive=True))
    entries = sorted(
        (info.path[len(path) :].lstrip("/"), info.size or 0)
        for info in infos
        if info.type == fs.FileType.File and info.base_name not in _STATE_FILES
    )
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def fingerprint(job: str, config: JobConfig, io: StageIO) -> str | None:
    """The stage's fingerprint, or None when an input is missing (then the job must run)."""
    digests: dict[str, str] = {}
    for uri in io.inputs:
        digest = partition_digest(uri)
        if digest is None:
            return None
        digests[uri] = digest
    doc = {"job": job, "date": config.date, "config": config.body(), "inputs": digests}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def stored_fingerprint(partition_uri: str) -> str | None:
    uri = f"{partition_uri}/{FINGERPRINT_FILE}"
    if not storage.exists(uri):
        return None
    try:
        return json.loads(storage.read_text(uri)).get("fingerprint")
    except (ValueError, AttributeError):
        return None


def decide(job: str, config: JobConfig, io: StageIO | None, *, force: bool) -> Decision:
    """Whether the stage may be skipped, and the fingerprint to record when it runs."""
    if io is None:
        return Decision(False, "outputs unknown for this job: always runs")
    current = fingerprint(job, config, io)
    if force:
        return Decision(False, "params.force is set: recomputing", current)
    if current is None:
        return Decision(False, "an input partition is missing or incomplete", None)
    for out in io.outputs:
        if not storage.is_complete(out.uri):
            return Decision(False, f"{out.uri} has no {SUCCESS_MARKER}", current)
        if stored_fingerprint(out.uri) != current:
            return Decision(False, f"inputs or spec changed since {out.uri} was written", current)
    where = ", ".join(o.uri for o in io.outputs)
    return Decision(True, f"output complete and inputs + spec unchanged: {where}", current)


def record(job: str, config: JobConfig, io: StageIO, value: str, run_id: str) -> None:
    """Write the fingerprint beside ``_SUCCESS`` in every output partition."""
    doc = json.dumps({"fingerprint": value, "job": job, "date": config.date, "run_id": run_id})
    for out in io.outputs:
        if storage.is_complete(out.uri):
            storage.write_text(f"{out.uri}/{FINGERPRINT_FILE}", doc)


def count_rows(uri: str) -> int | None:
    """Rows of a Parquet partition (from file footers); None if unreadable."""
    try:
        import pyarrow.dataset as ds

        filesystem, path = storage.resolve(uri)
        return ds.dataset(path, filesystem=filesystem, format="parquet").count_rows()
    except Exception:  # metadata is best effort: never fail a finished stage over it
        return None


class StageRun:
    """What one operator does around its job: Params, skip decision, fingerprint, asset events.

    An operator calls :meth:`begin` first in ``execute`` (it raises
    ``AirflowSkipException`` to skip) and :meth:`finish` after its job succeeded.
    """

    def __init__(self, job: str, config: JobConfig, io: StageIO | None, decision: Decision):
        self.job = job
        self.config = config
        self.io = io
        self.decision = decision

    @classmethod
    def begin(cls, operator: Any, context: Any, job: str, argv: Sequence[str]) -> StageRun:
        from airflow.sdk.exceptions import AirflowSkipException

        params = context.get("params") or {}
        selected = [s for s in (params.get("stages") or []) if s]
        dag = getattr(operator, "dag", None)
        unknown = sorted(set(selected) - set(dag.task_ids)) if dag is not None else []
        if unknown:
            raise ValueError(
                f"params.stages names no stage {unknown}; stages: {', '.join(dag.task_ids)}"
            )
        if selected and operator.task_id not in selected:
            message = f"dlflow: skipping {operator.task_id}: not in params.stages {selected}"
            operator.log.info(message)
            raise AirflowSkipException(message)
        config = JobConfig.from_argv(list(argv))
        io = stage_io(job, config)
        decision = decide(job, config, io, force=bool(params.get("force")))
        if decision.skip:
            message = f"dlflow: skipping {operator.task_id} for {config.date}: {decision.reason}"
            operator.log.info(message)
            raise AirflowSkipException(message)
        operator.log.info("dlflow: running %s for %s: %s", job, config.date, decision.reason)
        return cls(job, config, io, decision)

    def finish(self, context: Any) -> None:
        if self.io is None:
            return
        run_id = str(getattr(context.get("dag_run"), "run_id", "") or "")
        if self.decision.fingerprint is None:
            # Inputs were missing at the start yet the job succeeded: hash them now.
            value = fingerprint(self.job, self.config, self.io)
        else:
            value = self.decision.fingerprint
        if value is not None:
            record(self.job, self.config, self.io, value, run_id)
        self._asset_events(context)

    def _asset_events(self, context: Any) -> None:
        events = context.get("outlet_events")
        if events is None:
            return
        for out in self.io.outputs if self.io else ():
            extra = {"date": self.config.date, "partition": out.uri}
            if out.tabular:
                extra["rows"] = count_rows(out.uri)
            name = asset_name(out.artifact, out.tag)
            for asset in context["task"].outlets or ():
                if getattr(asset, "name", None) == name:
                    events[asset].extra.update(extra)
