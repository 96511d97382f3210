"""Pipeline -> Airflow DAG: one task per stage, edges from needs/produces tags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG

from dlflow_airflow.pipeline import Pipeline
from dlflow_airflow.spec import PipelineSpec


def build_dag(pipeline: Pipeline) -> DAG:
    """The Airflow DAG of a validated pipeline.

    Dates are never fixed here: each task renders ``{{ ds }}`` from its run,
    so scheduled runs, manual triggers and backfills write their own partition.
    """
    spec = pipeline.spec
    with DAG(
        dag_id=spec.dag_id,
        description=spec.description,
        schedule=spec.schedule,
        start_date=_utc(spec.start_date),
        end_date=_utc(spec.end_date) if spec.end_date else None,
        catchup=spec.catchup,
        max_active_runs=spec.max_active_runs,
        default_args=default_args(spec),
        tags=sorted(
            {"dlflow", f"feature:{spec.feature.tag}", f"model:{spec.model.tag}", *spec.tags}
        ),
        doc_md=_doc(pipeline),
    ) as dag:
        tasks = {
            name: pipeline.stages[name].kind.build_operator(pipeline.stages[name].context(spec))
            for name in pipeline.order
        }
        for upstream, downstream in pipeline.edges:
            tasks[upstream] >> tasks[downstream]
    return dag


def default_args(spec: PipelineSpec) -> dict[str, Any]:
    args = spec.default_args
    out: dict[str, Any] = {
        "owner": args.owner,
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
