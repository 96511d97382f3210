"""Pipeline -> Airflow DAG: one task per stage, edges from needs/produces tags."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import (
    DAG,
    AssetOrTimeSchedule,
    CronDataIntervalTimetable,
    CronTriggerTimetable,
    Param,
)

from dlflow_airflow.contract.artifacts import stage_roles
from dlflow_airflow.operators.bookkeeping import bind_stage
from dlflow_airflow.pipeline.assets import input_assets, output_assets, schedule_condition
from dlflow_airflow.pipeline.build import Pipeline, approval_task_id
from dlflow_airflow.pipeline.spec import AssetSchedule, PipelineSpec
from dlflow_airflow.stages.base import StageContext

log = logging.getLogger(__name__)


def build_dag(pipeline: Pipeline) -> DAG:
    """The Airflow DAG of a validated pipeline.

    Dates are never fixed here: each task renders ``{{ ds }}`` from its run,
    so scheduled runs, manual triggers and backfills write their own partition
    (an asset-triggered run, that of its triggering event: see
    :mod:`dlflow_airflow.contract.run_date`).
    """
    spec = pipeline.spec
    with DAG(
        dag_id=spec.dag_id,
        description=spec.description,
        schedule=dag_schedule(spec),
        start_date=_utc(spec.start_date),
        end_date=_utc(spec.end_date) if spec.end_date else None,
        catchup=spec.catchup,
        max_active_runs=spec.max_active_runs,
        default_args=default_args(spec),
        tags=sorted(
            {"dlflow", f"feature:{spec.feature.tag}", f"model:{spec.model.tag}", *spec.tags}
        ),
        doc_md=_doc(pipeline),
        params=run_params(pipeline),
    ) as dag:
        tasks = {}
        for name in pipeline.order:
            stage = pipeline.stages[name]
            ctx = stage.context(spec)
            task = bind_stage(stage.kind.build_operator(ctx), _job_body(ctx))
            owners = {"workspace": spec.workspace, "feature_tag": spec.feature.tag}
            owners["model_tag"] = spec.model.tag
            if not task.outlets:
                roles = stage_roles(stage.needs, stage.produces, spec.model.date, stage.options)
                task.outlets = output_assets(roles, **owners)
            external = [tag for tag in stage.needs if tag in spec.external]
            if external and not task.inlets:
                # Made by another DAG: the UI's asset graph links the two DAGs.
                task.inlets = input_assets(external, **owners)
            tasks[name] = task
        for upstream, downstream in pipeline.edges:
            tasks[upstream] >> tasks[downstream]
        for name, scorers in pipeline.approvals.items():
            tasks[name] >> approval_task(pipeline, name) >> [tasks[s] for s in scorers]
    return dag


def dag_schedule(spec: PipelineSpec) -> Any:
    """The DAG's ``schedule``: the YAML's clock as it is, or its assets (and clock)."""
    schedule = spec.schedule
    if not isinstance(schedule, AssetSchedule):
        return schedule
    assets = schedule_condition(
        schedule,
        workspace=spec.workspace,
        feature_tag=spec.feature.tag,
        model_tag=spec.model.tag,
    )
    if schedule.cron is None:
        return assets
    return AssetOrTimeSchedule(timetable=cron_timetable(schedule.cron), assets=assets)


def cron_timetable(cron: str) -> Any:
    """The timetable Airflow makes of a plain cron ``schedule``, so the clock of an asset
    schedule dates its runs as the same cron alone would: by the tick, or by the interval
    start with ``[scheduler] create_cron_data_intervals``."""
    from airflow.sdk.configuration import conf

    if conf.getboolean("scheduler", "create_cron_data_intervals"):
        return CronDataIntervalTimetable(cron, timezone="UTC")
    return CronTriggerTimetable(cron, timezone="UTC")


def approval_task(pipeline: Pipeline, name: str) -> Any:
    """The human approval after evaluate stage ``name`` (``approval: true``)."""
    from dlflow_airflow.operators.approval import ModelApprovalOperator

    stage = pipeline.stages[name]
    hours = stage.options.approval_timeout_hours
    return ModelApprovalOperator(
        task_id=approval_task_id(name),
        stage_body=stage.context(pipeline.spec).job_body(),
        evaluate_stage=name,
        response_timeout=timedelta(hours=hours) if hours else None,
        # The stages' execution_timeout (default_args) is no limit on a human's answer.
        execution_timeout=None,
        doc_md=f"A human approves the model `{name}` judged before it is blessed.",
    )


def _job_body(ctx: StageContext) -> dict[str, Any] | None:
    """The stage's job document, or None (Params only) when a user kind's options are not JSON."""
    try:
        return ctx.job_body()
    except ValueError as exc:  # pydantic's serialization errors are ValueErrors
        log.warning("dlflow: stage %s runs without fingerprints: %s", ctx.name, exc)
        return None


def run_params(pipeline: Pipeline) -> dict[str, Param]:
    """The trigger form's fields: ``force`` (recompute) and ``stages`` (run a subset)."""
    return {
        "force": Param(
            False,
            type="boolean",
            title="Force",
            description="Recompute every stage even when its output partition is complete "
            "and its inputs and spec are unchanged.",
        ),
        "stages": Param(
            [],
            type="array",
            examples=list(pipeline.order),  # the trigger form shows a multi-select
            title="Stages",
            description="Run only these stages (empty: all). The others are skipped; "
            "their outputs must already exist.",
        ),
    }


def default_args(spec: PipelineSpec) -> dict[str, Any]:
    args = spec.default_args
    out: dict[str, Any] = {
        "owner": args.owner,
        # A skipped stage (up to date, or not in params.stages) must not skip the
        # stages after it; a failed one still stops them.
        "trigger_rule": "none_failed",
        "retries": args.retries,
        "retry_delay": timedelta(seconds=args.retry_delay_seconds),
    }
    if args.execution_timeout_minutes:
        out["execution_timeout"] = timedelta(minutes=args.execution_timeout_minutes)
    if args.pool:
        out["pool"] = args.pool
    if args.queue:
        out["queue"] = args.queue
    return out


def _utc(day: Any) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _doc(pipeline: Pipeline) -> str:
    spec = pipeline.spec
    lines = [
        f"Built by dlflow-airflow from `{Path(pipeline.source).name}`.",
        "",
        f"- workspace: `{spec.workspace}`",
        f"- feature tag: `{spec.feature.tag}`, model tag: `{spec.model.tag}` ({spec.model.name})",
        f"- stage order: {' -> '.join(pipeline.order)}",
        *(
            f"- human approval: `{approval_task_id(name)}` after `{name}`, before its blessing"
            for name in pipeline.approvals
        ),
        "",
        "| stage | kind | needs | produces |",
        "| --- | --- | --- | --- |",
    ]
    for name in pipeline.order:
        stage = pipeline.stages[name]
        lines.append(
            f"| {name} | {stage.kind_name} | {', '.join(stage.needs) or '-'} "
            f"| {', '.join(stage.produces) or '-'} |"
        )
    return "\n".join(lines)
