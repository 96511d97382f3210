"""Run bookkeeping by composition: one mixin wraps ``execute()`` of every stage operator.

Each concrete operator is one line joining this mixin with the operator that
knows *where* the job runs (cosmos's matrix)::

    class DlflowTfPodOperator(StageBookkeeping, KubernetesPodOperator): ...

Around the backend's ``execute`` the mixin honours the run's Params
(``stages``: run only these; ``force``: recompute), skips a stage whose
outputs are complete and whose fingerprint is unchanged, and after success
records the fingerprint and fills the asset events' ``extra`` — all from the
artifact contract, for every backend alike. The factory binds user kinds'
operators the same way (:func:`bind_stage`).
"""

from __future__ import annotations

import json
import logging
from functools import cache
from typing import Any

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.artifacts import (
    ARTIFACTS,
    DRIFT_FILE,
    ENCODED_FEATURE,
    EVALUATE_RESULT,
    METRICS_FILE,
    ContractError,
    Partition,
    Role,
    StageIO,
    asset_name,
    gate_block,
    stage_io,
)
from dlflow_airflow.contract.drift import summary_of
from dlflow_airflow.contract.jobconf import JobConfig
from dlflow_airflow.contract.layout import SUCCESS_MARKER
from dlflow_airflow.contract.model_resolution import ModelNotFoundError
from dlflow_airflow.contract.run_date import EVENT_DATE
from dlflow_airflow.operators import fingerprints
from dlflow_airflow.operators.fingerprints import Decision
from dlflow_airflow.operators.lineage import StageLineage
from dlflow_airflow.operators.run_date import RunDateTemplates
from dlflow_airflow.operators.run_report import RunReportLink, record_stage

STAGE_DATE_FIELD = "stage_date"
log = logging.getLogger(__name__)


class StageBookkeeping(StageLineage, RunDateTemplates):
    """Mixin for an Airflow operator that runs one pipeline stage.

    Its ``{{ ds }}`` renders in asset-triggered runs too (:class:`RunDateTemplates`); it
    reports the partitions it read and wrote to OpenLineage (:class:`StageLineage`); it
    records what it runs with, and why, for the run report in the UI, and links to it
    (:mod:`dlflow_airflow.operators.run_report`).

    :param stage_body: the stage's job document without the date (see
        :mod:`dlflow_airflow.contract.jobconf`); None disables everything but
        ``params.stages``.
    :param stage_date: the partition date, a template (``{{ ds }}``).
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The backend operator's template fields (the mixin is first in the MRO).
        fields = next(
            (
                tuple(k.__dict__["template_fields"])
                for k in cls.__mro__
                if "template_fields" in k.__dict__
            ),
            (),
        )
        if STAGE_DATE_FIELD not in fields:
            cls.template_fields = (*fields, STAGE_DATE_FIELD)
        links = next(
            (
                k.__dict__["operator_extra_links"]
                for k in cls.__mro__
                if "operator_extra_links" in k.__dict__
            ),
            (),
        )
        # Every stage task links to its run's report (dlflow_airflow.ui), beside its own links.
        if not isinstance(links, property) and not any(isinstance(x, RunReportLink) for x in links):
            cls.operator_extra_links = (*links, RunReportLink())
        if "__init__" not in cls.__dict__:
            # Airflow's operator metaclass applies default_args to an __init__ the
            # class defines itself; a one-line join class defines none, so give it one.
            def __init__(self: Any, *args: Any, **kw: Any) -> None:
                super(cls, self).__init__(*args, **kw)

            cls.__init__ = __init__  # type: ignore[misc]

    def __init__(
        self,
        *args: Any,
        stage_body: dict[str, Any] | None = None,
        stage_date: str = "{{ ds }}",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.stage_body = stage_body
        self.stage_date = stage_date

    def execute(self, context: Any) -> Any:
        try:
            run = StageRun.begin(self, context)
        except Exception as exc:  # skipped, blocked by the gate, not selected...
            record_stage(self, context, str(exc).removeprefix("dlflow: "))
            raise
        record_stage(self, context, f"ran: {run.decision.reason}" if run.decision else "ran")
        try:
            result = super().execute(context)  # type: ignore[misc]
        except Exception:
            run.raise_if_gate_missed()
            raise
        written = run.finish(context)
        self.record_lineage(run.io, run.written(), written)
        # A backend that returns nothing (spark-submit) still leaves what it wrote in XCom.
        return result if result is not None else written

    def resume_execution(self, next_method: str, next_kwargs: Any, context: Any) -> Any:
        """A deferred backend (a deferrable pod, the sensor) finishes here, not in execute."""
        result = super().resume_execution(next_method, next_kwargs, context)  # type: ignore[misc]
        run = StageRun.resumed(self)
        written = run.finish(context)
        self.record_lineage(run.io, run.written(), written)
        return result if result is not None else written

    def lineage_io(self) -> StageIO:
        """The stage's partitions for the run's date, for :class:`StageLineage`."""
        return _stage_io(self)[1]


@cache
def bookkept(operator_class: type) -> type:
    """``operator_class`` with :class:`StageBookkeeping` in front (same name, for the UI)."""
    if issubclass(operator_class, StageBookkeeping):
        return operator_class
    # Named and placed like the user's class: the UI and serialization show theirs.
    namespace = {
        "__module__": operator_class.__module__,
        "__qualname__": operator_class.__qualname__,
    }
    return type(operator_class.__name__, (StageBookkeeping, operator_class), namespace)


def bind_stage(task: Any, stage_body: dict[str, Any] | None, stage_date: str = "{{ ds }}") -> Any:
    """Give any operator (a user kind's) the bookkeeping of a stage, in place.

    A mapped operator (``.partial().expand()``) is left as it is, with a warning:
    Airflow builds its task instances from the original class.
    """
    from airflow.sdk import BaseOperator

    if not isinstance(task, BaseOperator):
        log.warning(
            "dlflow: %s is a %s, not an operator: it runs without the stage bookkeeping",
            getattr(task, "task_id", task),
            type(task).__name__,
        )
        return task
    if not isinstance(task, StageBookkeeping):
        task.__class__ = bookkept(type(task))
        task.stage_date = stage_date
    if getattr(task, "stage_body", None) is None:
        task.stage_body = stage_body
    return task


class StageRun:
    """One stage's run: begun before the backend's ``execute``, finished after it."""

    def __init__(self, config: JobConfig | None, io: StageIO, decision: Decision | None):
        self.config = config
        self.io = io
        self.decision = decision
        self._absent_at_start = frozenset(
            p.uri for p in io.by_role(Role.FIT_OR_REUSE) if not storage.is_complete(p.uri)
        )
        writes_verdict = any(p.tag == EVALUATE_RESULT for p in io.writes)
        verdict = io.get(EVALUATE_RESULT).uri if writes_verdict else None
        self._verdict_at_start = self._stamp(verdict) if verdict else None

    @staticmethod
    def _stamp(partition: str) -> Any:
        """The commit stamp of a partition (its ``_SUCCESS``'s modification time), or None."""
        return storage.modified(f"{partition}/{SUCCESS_MARKER}")

    @classmethod
    def begin(cls, operator: Any, context: Any) -> StageRun:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        params = context.get("params") or {}
        check_selected(operator, params)
        config, io = _stage_io(operator)
        if config is None:
            return cls(None, io, None)
        blocked = gate_block(config, io) if io.known else None
        if blocked:  # deterministic: no retry makes an unblessed model blessed
            raise AirflowFailException(f"dlflow: {operator.task_id} blocked by gate: {blocked}")
        decision = fingerprints.decide(config, io, force=bool(params.get("force")))
        if decision.skip:
            message = f"dlflow: skipping {operator.task_id} for {config.date}: {decision.reason}"
            operator.log.info(message)
            raise AirflowSkipException(message)
        operator.log.info(
            "dlflow: running %s for %s: %s", operator.task_id, config.date, decision.reason
        )
        return cls(config, io, decision)

    @classmethod
    def resumed(cls, operator: Any) -> StageRun:
        """The run of a task resumed after a deferral (its start decision is gone)."""
        config, io = _stage_io(operator)
        return cls(config, io, None)

    def raise_if_gate_missed(self) -> None:
        """A job that failed because its model missed ``gate_miss: fail``: fail for good.

        The evaluate job commits its verdict before it fails; a retry would only
        judge the same model on the same data again.
        """
        if self.config is None or not self.io.has(EVALUATE_RESULT):
            return
        if getattr(self.config.options, "gate_miss", None) != "fail":
            return
        verdict = self.io.get(EVALUATE_RESULT).uri
        doc = _metrics(verdict)
        gate = (doc or {}).get("gate") or {}
        if (
            doc is None
            or gate.get("blessed", True)
            or self._stamp(verdict) == self._verdict_at_start
        ):
            return
        from airflow.sdk.exceptions import AirflowFailException

        missed = "; ".join(gate.get("missed") or [])
        raise AirflowFailException(f"dlflow: the model missed the gate ({missed}); see {verdict}")

    def written(self) -> tuple[Partition, ...]:
        """What the run wrote: its ``write`` partitions and any fmap it had to fit."""
        fitted = tuple(
            p
            for p in self.io.by_role(Role.FIT_OR_REUSE)
            if p.uri in self._absent_at_start and storage.is_complete(p.uri)
        )
        return (*self.io.writes, *fitted)

    def finish(self, context: Any) -> dict[str, dict[str, Any]] | None:
        """Record the fingerprint and fill the asset events; what the run wrote, by tag
        (each partition's asset-event extra: date, partition, rows, drift...)."""
        if self.config is None or not self.io.known:
            return None
        written = self.written()
        run_id = str(getattr(context.get("dag_run"), "run_id", "") or "")
        value = self.decision.fingerprint if self.decision else None
        if value is None or self._absent_at_start:
            # Inputs missing at the start, or an fmap fitted by this run: hash them now.
            value = fingerprints.fingerprint(self.config, self.io)
        if value is not None:
            fingerprints.record(self.config, written, value, run_id)
        extras = {out.tag: _extra(self.config, out) for out in written}
        _asset_events(context, self.config, written, extras)
        return extras


def _metrics(partition: str) -> dict | None:
    uri = f"{partition}/{METRICS_FILE}"
    if not storage.exists(uri):
        return None
    return json.loads(storage.read_text(uri))


def _drift(partition: str) -> dict[str, Any] | None:
    """The drift summary of an encoded partition; None without a readable ``_DRIFT.json``."""
    uri = f"{partition}/{DRIFT_FILE}"
    try:
        if not storage.exists(uri):
            return None
        return summary_of(json.loads(storage.read_text(uri)), uri)
    except Exception:  # metadata is best effort: never fail a finished stage over it
        log.warning("dlflow: unreadable drift report %s", uri, exc_info=True)
        return None


def _stage_io(operator: Any) -> tuple[JobConfig | None, StageIO]:
    """The operator's job config and partitions; unknown (always run) when they cannot be had.

    The worker may not see what the job sees (a workspace mounted only into the
    pod, no blessed model yet): then the job itself decides and reports.
    """
    body = getattr(operator, "stage_body", None)
    if body is None:
        return None, StageIO(known=False)
    config = JobConfig.from_body(operator.stage_date, body)
    try:
        return config, stage_io(config)
    except (ModelNotFoundError, ContractError, OSError) as exc:
        operator.log.warning("dlflow: no run bookkeeping for %s: %s", operator.task_id, exc)
        return config, StageIO(known=False)


def check_selected(operator: Any, params: Any, also: tuple[str, ...] = ()) -> None:
    """Skip ``operator`` unless ``params.stages`` is empty or names it (or one of ``also``).

    :raises ValueError: ``params.stages`` names a task the DAG does not have.
    """
    from airflow.sdk.exceptions import AirflowSkipException

    selected = [s for s in (params.get("stages") or []) if s]
    dag = operator.dag if operator.has_dag() else None
    unknown = sorted(set(selected) - set(dag.task_ids)) if dag is not None else []
    if unknown:
        raise ValueError(
            f"params.stages names no stage {unknown}; stages: {', '.join(dag.task_ids)}"
        )
    if selected and not {operator.task_id, *also} & set(selected):
        message = f"dlflow: skipping {operator.task_id}: not in params.stages {selected}"
        operator.log.info(message)
        raise AirflowSkipException(message)


def _extra(config: JobConfig, out: Partition) -> dict[str, Any]:
    """What an asset event (and the task's XCom) says of one partition the run wrote."""
    extra: dict[str, Any] = {EVENT_DATE: config.date, "partition": out.uri}
    if out.tag in ARTIFACTS and ARTIFACTS[out.tag].model_dated:
        extra["model_date"] = out.date
    if out.tabular:
        extra["rows"] = fingerprints.count_rows(out.uri)
    if out.tag == ENCODED_FEATURE:
        drift = _drift(out.uri)
        if drift is not None:
            extra["drift"] = drift
    return extra


def _asset_events(
    context: Any,
    config: JobConfig,
    written: tuple[Partition, ...],
    extras: dict[str, dict[str, Any]],
) -> None:
    """Fill the ``extra`` of the outlet asset events of what the run wrote (never reused)."""
    events = context.get("outlet_events")
    task = context.get("task")
    if events is None or task is None:
        return
    outlets = {getattr(a, "name", None): a for a in task.outlets or ()}
    for out in written:
        name = asset_name(out.folder, out.owner_tag)
        extra = extras[out.tag]
        if name in outlets:
            events[outlets[name]].extra.update(extra)
        elif f"{name}.written" in outlets:  # an fmap fitted by this run (see pipeline.assets)
            from airflow.sdk import Asset

            root = config.layout.root(out.folder, out.owner_tag)
            asset = Asset(name=name, uri=root, group="dlflow")
            events[outlets[f"{name}.written"]].add(asset, extra=extra)
