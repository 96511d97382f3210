"""A DAG run's report: each stage's partitions, metrics and plots, drift, fmap and model.

Built from the run's task instances and the record each stage task left when
it started (:class:`~dlflow_airflow.operators.run_report.StageRecord`: its
job document and date). Which partitions a stage reads, writes and reuses
comes from the artifact contract through :mod:`.partitions`; the sections
follow from the partitions' tags (evaluate's ``EVALUATE_RESULT``, encode's
``ENCODED_FEATURE``, every ``FMAP`` and ``TRAINED_MODEL`` the run used), so
this module names no partition of its own.

Pure Python (no Airflow): files are read through
:mod:`dlflow_airflow.contract.storage`. A file that cannot be read becomes a
note on its section, never an error of the page.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.artifacts import (
    DRIFT_FILE,
    ENCODED_FEATURE,
    EVALUATE_RESULT,
    FMAP,
    METRICS_FILE,
    TRAINED_MODEL,
    Partition,
    Role,
    StageIO,
)
from dlflow_airflow.contract.fmap import FeatureMap, Normalizers
from dlflow_airflow.contract.jobconf import JobConfig
from dlflow_airflow.contract.model_resolution import MANIFEST_FILE, is_blessed
from dlflow_airflow.operators.run_report import StageRecord
from dlflow_airflow.ui.partitions import PartitionState, resolve_io, stage_states

PLOT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\.png$")
"""What a plot's file name may be: one name inside its partition, never a path."""

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class TaskRun:
    """One task of the run, as Airflow knows it.

    :param record: what the stage task ran with (None: not a stage task, or it
        left no record).
    :param borrowed: the task has not started in this run: ``record`` is its
        record from another run, for the partitions it would write.
    """

    task_id: str
    state: str | None
    record: StageRecord | None = None
    borrowed: bool = False


@dataclass(frozen=True)
class RunTasks:
    """A DAG run and its tasks (upstream first).

    :param logical_date: the run's ``ds`` (None: a run without a logical date).
    """

    dag_id: str
    run_id: str
    state: str | None
    tasks: tuple[TaskRun, ...]
    logical_date: str | None = None

    @property
    def date(self) -> str | None:
        """The run's partition date: the one its stage tasks rendered, else its logical date."""
        dates = [t.record.date for t in self.tasks if t.record and not t.borrowed]
        return dates[0] if dates else self.logical_date

    def task(self, task_id: str) -> TaskRun | None:
        return next((t for t in self.tasks if t.task_id == task_id), None)


@dataclass(frozen=True)
class StageView:
    """One task of the report: its state, why, and its partitions."""

    task_id: str
    state: str
    reason: str = ""
    partitions: tuple[PartitionState, ...] = ()
    io: StageIO | None = None
    note: str = ""


@dataclass(frozen=True)
class Evaluation:
    """An evaluate stage's verdict: its numbers, the gate and the plots."""

    stage: str
    partition: str
    metrics: dict[str, int | float]
    gate: dict[str, Any]
    plots: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class DriftView:
    """The drift report (``_DRIFT.json``) of an encoded partition; None with a note when absent."""

    stage: str
    partition: str
    doc: dict[str, Any] | None = None
    note: str = ""


@dataclass(frozen=True)
class FmapView:
    partition: str
    fmap: FeatureMap | None = None
    normalizers: Normalizers | None = None
    note: str = ""


@dataclass(frozen=True)
class ModelView:
    partition: str
    manifest: dict[str, Any] | None = None
    blessed: bool = False
    note: str = ""


@dataclass(frozen=True)
class RunReport:
    run: RunTasks
    stages: tuple[StageView, ...]
    evaluations: tuple[Evaluation, ...] = ()
    drifts: tuple[DriftView, ...] = ()
    fmaps: tuple[FmapView, ...] = ()
    models: tuple[ModelView, ...] = ()


def build_report(run: RunTasks) -> RunReport:
    """The report of ``run``: every task, then the sections its partitions hold."""
    stages = tuple(stage_view(task, run.date) for task in run.tasks)
    evaluations = [
        evaluation(view.task_id, p.uri)
        for view, p in _partitions(stages)
        if p.tag == EVALUATE_RESULT and p.role == Role.WRITE
    ]
    drifts = [
        drift(view.task_id, p.uri)
        for view, p in _partitions(stages)
        if p.tag == ENCODED_FEATURE and p.role == Role.WRITE
    ]
    fmaps = [fmap_view(uri) for uri in _unique(stages, FMAP)]
    models = [model_view(uri) for uri in _unique(stages, TRAINED_MODEL)]
    return RunReport(run, stages, tuple(evaluations), tuple(drifts), tuple(fmaps), tuple(models))


def stage_config(task: TaskRun, date: str | None) -> JobConfig | None:
    """The job config of a stage task's run (None: no record, or no job document).

    :raises ValueError: the record's document does not parse (or ``KeyError``: a key is missing).
    """
    record = task.record
    if record is None or record.body is None:
        return None
    day = date if task.borrowed and date else record.date
    return JobConfig.from_body(day, record.body)


def stage_view(task: TaskRun, date: str | None) -> StageView:
    state = task.state or "no status"
    reason = task.record.reason if task.record and not task.borrowed else ""
    note = "not started in this run: the partitions it would use" if task.borrowed else ""
    # A view: one unreadable stage never hides the others, nor its partitions the sections.
    try:
        config = stage_config(task, date)
        io = resolve_io(config) if config is not None else None
    except Exception as exc:
        log.warning("dlflow: run report of %s", task.task_id, exc_info=True)
        return StageView(task.task_id, state, reason, note=f"partitions unknown: {exc}")
    if config is None or io is None:
        note = "no partitions recorded" if task.record else ""
        return StageView(task.task_id, state, reason, note=note)
    if isinstance(io, StageIO) and not io.partitions:
        note = note or "writes no partition the artifact contract names"
    try:
        parts = tuple(stage_states(task.task_id, config, io))
    except Exception as exc:
        log.warning("dlflow: run report of %s", task.task_id, exc_info=True)
        parts, note = (), f"partition states unknown: {exc}"
    return StageView(
        task.task_id, state, reason, parts, io if isinstance(io, StageIO) else None, note
    )


def evaluation(stage: str, partition: str) -> Evaluation:
    if not _complete(partition):
        return Evaluation(stage, partition, {}, {}, note="the evaluate partition is not complete")
    doc, note = _read(f"{partition}/{METRICS_FILE}", _json_object)
    if doc is None:
        return Evaluation(stage, partition, {}, {}, note=note)
    numbers = {
        key: value
        for key, value in doc.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    gate = doc.get("gate") if isinstance(doc.get("gate"), dict) else {}
    return Evaluation(stage, partition, numbers, gate, plot_names(doc))


def plot_names(metrics: dict[str, Any]) -> tuple[str, ...]:
    """The plots ``metrics.json`` lists (evaluate writes them beside it): plain names only."""
    names = metrics.get("plots")
    if not isinstance(names, list):
        return ()
    return tuple(n for n in names if isinstance(n, str) and PLOT_NAME.match(n))


def drift(stage: str, partition: str) -> DriftView:
    if not _complete(partition):
        return DriftView(stage, partition, note="the encoded partition is not complete")
    uri = f"{partition}/{DRIFT_FILE}"
    if not _exists(uri):
        note = (
            "no drift report: encode fitted the fmap on this day's rows (a drift report "
            "compares a day encoded with an fmap fitted earlier)"
        )
        return DriftView(stage, partition, note=note)
    doc, note = _read(uri, _json_object)
    return DriftView(stage, partition, doc, note)


def fmap_view(partition: str) -> FmapView:
    if not _complete(partition):
        return FmapView(partition, note="the fmap partition is not complete")
    fmap, note = _read(partition, FeatureMap.load)
    if fmap is None:
        return FmapView(partition, note=note)
    normalizers, note = _read(partition, lambda uri: Normalizers.load(uri, fmap))
    return FmapView(partition, fmap, normalizers, note)


def model_view(partition: str) -> ModelView:
    if not _complete(partition):
        return ModelView(partition, note="the model partition is not complete")
    manifest, note = _read(f"{partition}/{MANIFEST_FILE}", _json_object)
    blessed, _ = _read(partition, is_blessed)
    return ModelView(partition, manifest, bool(blessed), note)


def plot_uri(run: RunTasks, stage: str, name: str) -> str | None:
    """The file of plot ``name`` of evaluate stage ``stage`` in this run; None if it has none.

    Confined to the stage's own evaluate partition and to the names its
    ``metrics.json`` lists: a name is never a path.
    """
    task = run.task(stage)
    if task is None or not PLOT_NAME.match(name):
        return None
    config = stage_config(task, run.date)
    io = resolve_io(config) if config is not None else None
    if not isinstance(io, StageIO):
        return None
    for p in io.writes:
        if p.tag != EVALUATE_RESULT or not storage.is_complete(p.uri):
            continue
        doc, _ = _read(f"{p.uri}/{METRICS_FILE}", _json_object)
        if doc is not None and name in plot_names(doc):
            return f"{p.uri}/{name}"
    return None


def _partitions(stages: tuple[StageView, ...]) -> Iterator[tuple[StageView, Partition]]:
    for view in stages:
        for partition in view.io.partitions if view.io else ():
            yield view, partition


def _unique(stages: tuple[StageView, ...], tag: str) -> list[str]:
    """The partitions of ``tag`` any stage of the run uses, in order, each once."""
    return list(dict.fromkeys(p.uri for _, p in _partitions(stages) if p.tag == tag))


def _json_object(uri: str) -> dict[str, Any]:
    doc = json.loads(storage.read_text(uri))
    if not isinstance(doc, dict):
        raise ValueError(f"{uri} holds no JSON object")
    return doc


def _read(uri: str, reader: Callable[[str], T]) -> tuple[T | None, str]:
    """``reader(uri)``, or None and why it failed."""
    try:
        return reader(uri), ""
    except Exception as exc:  # a view: a broken file is a note, not a broken page
        log.warning("dlflow: run report cannot read %s", uri, exc_info=True)
        return None, f"cannot read {uri}: {exc}"


def _complete(partition: str) -> bool:
    found, _ = _read(partition, storage.is_complete)
    return bool(found)


def _exists(uri: str) -> bool:
    found, _ = _read(uri, storage.exists)
    return bool(found)
