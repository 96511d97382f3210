"""The run report's FastAPI app, mounted by the plugin in Airflow's api-server.

Routes (under the plugin's prefix, :data:`dlflow_airflow.ui.plugin.URL_PREFIX`):

- ``GET /dags/{dag_id}/runs/{run_id}``: the report page;
- ``GET /dags/{dag_id}/runs/{run_id}/plots/{stage}/{name}``: one plot (PNG)
  of an evaluate stage of the run, confined to the names its ``metrics.json``
  lists (see :func:`~dlflow_airflow.ui.run_report.plot_uri`).

Both ask Airflow's auth manager first, as Airflow's own API does for the task
instances of a DAG (``requires_access_dag("GET", TASK_INSTANCE)``): only a
user who may read the DAG's runs and tasks sees them. The caller's JWT comes
from an ``Authorization: Bearer`` header, or from the UI's ``_token`` cookie
that the tab's iframe sends (Airflow's ``get_user``).

The run's tasks and their records come from Airflow's database
(:func:`load_run`); the workspace is read through the storage layer.
Imported by the api-server only (on the first request, see :mod:`.plugin`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import requires_access_dag
from fastapi import Depends, FastAPI, HTTPException, Request, Response, status
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.run_date import RunDateError, TriggeringEvent, run_date
from dlflow_airflow.operators.run_report import STAGE_RECORD_KEY, StageRecord
from dlflow_airflow.ui.page import render_page
from dlflow_airflow.ui.run_report import RunTasks, TaskRun, build_report, plot_uri

PAGE_HEADERS = {
    # Nothing but the page's own plots; shown in the Airflow UI's iframe only.
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
IMAGE_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-cache"}
NOT_STARTED = (None, "scheduled", "queued", "upstream_failed")
"""Task states of a task that has not run (yet) in a run: it left no record of its own."""


def create_app() -> FastAPI:
    app = FastAPI(title="DLFlow run report", docs_url=None, redoc_url=None, openapi_url=None)
    readable = [Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE))]

    @app.get("/dags/{dag_id}/runs/{run_id}", dependencies=readable, response_class=HTMLResponse)
    def report_page(dag_id: str, run_id: str, request: Request, session: SessionDep) -> Response:
        run = _run_or_404(session, dag_id, run_id)
        prefix = request.scope.get("root_path", "").rstrip("/")
        base = f"{prefix}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/plots"

        def plot_url(stage: str, name: str) -> str:
            return f"{base}/{quote(stage, safe='')}/{quote(name, safe='')}"

        page = render_page(build_report(run), plot_url)
        return HTMLResponse(page, headers=PAGE_HEADERS)

    @app.get("/dags/{dag_id}/runs/{run_id}/plots/{stage}/{name}", dependencies=readable)
    def plot(dag_id: str, run_id: str, stage: str, name: str, session: SessionDep) -> Response:
        run = _run_or_404(session, dag_id, run_id)
        uri = plot_uri(run, stage, name)
        if uri is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no plot {name!r} of {stage!r}")
        try:
            data = storage.read_bytes(uri)
        except OSError:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"cannot read plot {name!r}") from None
        return Response(data, media_type="image/png", headers=IMAGE_HEADERS)

    return app


def _run_or_404(session: Session, dag_id: str, run_id: str) -> RunTasks:
    run = load_run(session, dag_id, run_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run {run_id!r} of DAG {dag_id!r}")
    return run


def load_run(session: Session, dag_id: str, run_id: str) -> RunTasks | None:
    """The run's tasks (upstream first) with the record each stage task left; None: no run.

    A task that has not started in this run (:data:`NOT_STARTED`: upstream
    failed, still queued) borrows its latest record from another run of the
    DAG: the job document is the same for every date, so its partitions for
    this run's date can be shown. Tasks come in the order of their priority weight
    (Airflow's default ``downstream`` rule ranks every task above the tasks after it).
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance as TI

    dag_run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    if dag_run is None:
        return None
    rows = session.execute(
        select(TI.task_id, TI.state)
        .where(TI.dag_id == dag_id, TI.run_id == run_id)
        .order_by(TI.priority_weight.desc(), TI.task_id, TI.map_index)
    ).all()
    states = {task_id: state for task_id, state in reversed(rows)}  # a mapped task: index 0
    records = _records(session, dag_id, run_id)
    tasks = []
    for task_id in dict.fromkeys(task_id for task_id, _ in rows):
        state = _text(states[task_id])
        if task_id in records:
            tasks.append(TaskRun(task_id, state, records[task_id]))
        elif state in NOT_STARTED:
            earlier = _latest_record(session, dag_id, task_id)
            tasks.append(TaskRun(task_id, state, earlier, borrowed=earlier is not None))
        else:  # not a stage task, or a run from before the records
            tasks.append(TaskRun(task_id, state))
    return RunTasks(
        dag_id=dag_id,
        run_id=run_id,
        state=_text(dag_run.state),
        tasks=tuple(tasks),
        logical_date=_partition_date(dag_run),
    )


def _partition_date(dag_run: Any) -> str | None:
    """The run's partition date by the one rule (:mod:`dlflow_airflow.contract.run_date`):
    an asset-triggered run's is the newest date among the events it consumed."""
    events = [
        TriggeringEvent(getattr(event.asset, "name", "?"), event.extra or {})
        for event in getattr(dag_run, "consumed_asset_events", None) or ()
    ]
    try:
        return run_date(dag_run.logical_date, events, dag_run.run_after)
    except RunDateError:
        return None


def _records(session: Session, dag_id: str, run_id: str) -> dict[str, StageRecord]:
    from airflow.models.xcom import XComModel

    rows = session.scalars(
        select(XComModel).where(
            XComModel.dag_id == dag_id,
            XComModel.run_id == run_id,
            XComModel.key == STAGE_RECORD_KEY,
            XComModel.map_index == -1,
        )
    )
    found = {row.task_id: StageRecord.from_json(XComModel.deserialize_value(row)) for row in rows}
    return {task_id: record for task_id, record in found.items() if record is not None}


def _latest_record(session: Session, dag_id: str, task_id: str) -> StageRecord | None:
    from airflow.models.xcom import XComModel

    row = session.scalars(
        select(XComModel)
        .where(
            XComModel.dag_id == dag_id,
            XComModel.task_id == task_id,
            XComModel.key == STAGE_RECORD_KEY,
            XComModel.map_index == -1,
        )
        .order_by(XComModel.timestamp.desc())
        .limit(1)
    ).first()
    return StageRecord.from_json(XComModel.deserialize_value(row)) if row is not None else None


def _text(state: Any) -> str | None:
    """A state enum's value (``success``), as the UI shows it."""
    return None if state is None else str(getattr(state, "value", state))
