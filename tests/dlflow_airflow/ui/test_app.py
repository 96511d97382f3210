"""The report's app inside Airflow's own api-server app, on a real metadata DB.

Airflow's ``create_app`` mounts the plugin found through the package's entry
point, its SimpleAuthManager checks the callers, and the run, its task
instances and the stage records (XCom) are rows of a SQLite metadata DB
created for this module. The workspace is written where the contract says
(see :mod:`tests.dlflow_airflow.ui.workspace`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest

from dlflow_airflow.operators.run_report import STAGE_RECORD_KEY
from tests.dlflow_airflow.ui import workspace as ws
from tests.dlflow_airflow.ui.workspace import DATE

BUNDLE = "ui-test-bundle"
TEAM = "ml"
RUN_ID = f"manual__{DATE}T00:00:00+00:00"
EARLIER_RUN_ID = "manual__2026-01-01T00:00:00+00:00"
PAGE = f"/dlflow/dags/t_pipeline/runs/{quote(RUN_ID, safe='')}"
# Long enough for HS512: the api-server and its tests share it.
JWT_SECRET = "dlflow-ui-test-" + "x" * 64


@pytest.fixture(scope="module")
def airflow_app(tmp_path_factory) -> Iterator[Any]:
    """Airflow's api-server app over a fresh metadata DB holding one run of the pipeline."""
    saved = os.environ.get("AIRFLOW__API_AUTH__JWT_SECRET")
    os.environ["AIRFLOW__API_AUTH__JWT_SECRET"] = JWT_SECRET
    from airflow.api_fastapi.app import create_app, purge_cached_app
    from airflow.utils import db

    db.resetdb()
    workspace = tmp_path_factory.mktemp("ui-workspace")
    pipeline = ws.pipeline(workspace)
    ws.write_run(pipeline)
    _store_runs(pipeline)
    try:
        yield create_app(apps="core")
    finally:
        purge_cached_app()
        if saved is None:
            os.environ.pop("AIRFLOW__API_AUTH__JWT_SECRET", None)
        else:
            os.environ["AIRFLOW__API_AUTH__JWT_SECRET"] = saved


def _store_runs(pipeline: Any) -> None:
    """The DAG (in a bundle of team ``ml``), today's run and an earlier run's predict record."""
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.models.dagbundle import DagBundleModel
    from airflow.models.errors import ParseImportError
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.team import Team
    from airflow.models.xcom import XComModel
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType
    from sqlalchemy import select

    from dlflow_airflow.pipeline.factory import build_dag

    dag = build_dag(pipeline)
    with create_session() as session:
        bundle = DagBundleModel(name=BUNDLE)
        bundle.teams.append(Team(name=TEAM))
        session.add(bundle)
        session.flush()
        dags = [LazyDeserializedDAG.from_dag(dag)]
        update_dag_parsing_results_in_db(BUNDLE, None, dags, {}, None, set(), session=session)
    with create_session() as session:
        serialized = SerializedDagModel.get_dag(dag.dag_id, session=session)
        assert serialized is not None, session.scalars(select(ParseImportError.stacktrace)).all()
        for run_id, day in ((EARLIER_RUN_ID, "2026-01-01"), (RUN_ID, DATE)):
            moment = datetime.fromisoformat(day).replace(tzinfo=UTC)
            run = serialized.create_dagrun(
                run_id=run_id,
                logical_date=moment,
                data_interval=(moment, moment),
                run_after=moment,
                run_type=DagRunType.MANUAL,
                triggered_by=DagRunTriggeredByType.TEST,
                state=DagRunState.FAILED,
                session=session,
            )
            records = ws.records(pipeline, day)
            for ti in run.get_task_instances(session=session):
                ti.state = TaskInstanceState.SUCCESS
                if run_id == RUN_ID and ti.task_id == "predict":
                    ti.state = TaskInstanceState.UPSTREAM_FAILED  # never started: no record
                    continue
                if run_id == EARLIER_RUN_ID and ti.task_id != "predict":
                    continue
                XComModel.set(
                    key=STAGE_RECORD_KEY,
                    value=records[ti.task_id].to_json(),
                    dag_id=dag.dag_id,
                    task_id=ti.task_id,
                    run_id=run_id,
                    session=session,
                )


def _token(role: str | None, teams: tuple[str, ...] = (TEAM,)) -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    user = SimpleAuthManagerUser(username=f"u-{role}", role=role, teams=list(teams))
    return get_auth_manager().generate_jwt(user)


def _client(app: Any, token: str | None = None) -> Any:
    from fastapi.testclient import TestClient

    client = TestClient(app)
    if token:
        client.headers["Authorization"] = f"Bearer {token}"
    return client


def test_the_report_page_and_its_plots(airflow_app):
    client = _client(airflow_app, _token("viewer"))
    answer = client.get(PAGE)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'self'" in answer.headers["content-security-policy"]
    page = answer.text
    for task in ("merge", "encode", "train", "evaluate", "predict"):
        assert f"<code>{task}</code>" in page
    assert "data-metric='auc'" in page and "<table class='fmap'>" in page
    # The task that never started shows the partitions it would write for this run's date.
    assert "upstream_failed" in page and "not started in this run" in page
    assert "predict/TAG=m1/dt=2026-01-02" in page
    images = re.findall(r"<img src='([^']+)'", page)
    assert images[0] == f"{PAGE}/plots/evaluate/roc.png"
    for src in images:
        image = client.get(src)
        assert image.status_code == 200, src
        assert image.headers["content-type"] == "image/png"
        assert image.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_the_uis_cookie_is_enough(airflow_app):
    client = _client(airflow_app)
    client.cookies.set("_token", _token("viewer"))  # what the tab's iframe sends
    assert client.get(PAGE).status_code == 200


@pytest.mark.parametrize(
    ("token", "status"),
    [
        (None, 401),
        ("not-a-jwt", 403),
        ("no-role", 403),  # a user the auth manager gives no permission
        ("other-team", 403),  # may read DAGs, not this team's
        ("viewer", 200),
        ("admin", 200),
    ],
)
def test_only_users_who_may_read_the_dag_see_it(airflow_app, token, status):
    tokens = {
        None: None,
        "not-a-jwt": "not-a-jwt",
        "no-role": _token(None),
        "other-team": _token("viewer", ("other",)),
        "viewer": _token("viewer"),
        "admin": _token("admin", ()),
    }
    client = _client(airflow_app, tokens[token])
    assert client.get(PAGE).status_code == status
    assert client.get(f"{PAGE}/plots/evaluate/roc.png").status_code == status


def test_plots_stay_inside_the_runs_evaluate_partition(airflow_app):
    client = _client(airflow_app, _token("viewer"))
    for path in (
        "evaluate/metrics.json",
        "evaluate/..%2Fmetrics.json",
        "evaluate/..%2F..%2F..%2Fmodel%2FTAG=m1%2Fdt=2026-01-02%2Fmanifest.json",
        "train/roc.png",
        "evaluate/nope.png",
    ):
        answer = client.get(f"{PAGE}/plots/{path}")
        assert answer.status_code == 404, (path, answer.status_code)
        assert not answer.content.startswith(b"\x89PNG") and b"model" not in answer.content


def test_an_unknown_run_is_not_found(airflow_app):
    client = _client(airflow_app, _token("viewer"))
    assert client.get("/dlflow/dags/t_pipeline/runs/nope").status_code == 404
    assert client.get("/dlflow/dags/nope/runs/nope").status_code == 404


def test_the_api_server_lists_the_plugin_and_its_run_tab(airflow_app):
    client = _client(airflow_app, _token("admin", ()))
    plugins = {p["name"]: p for p in client.get("/api/v2/plugins").json()["plugins"]}
    plugin = plugins["dlflow_run_report"]
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/dlflow"]
    (view,) = plugin["external_views"]
    assert view["destination"] == "dag_run" and view["url_route"] == "dlflow-report"
    assert view["href"] == "/dlflow/dags/{DAG_ID}/runs/{RUN_ID}"
    # Run from the source tree, the repo's dlflow_airflow.egg-info is a second copy of the entry
    # point beside the installed one: Airflow keeps one and notes the other ("already registered").
    errors = client.get("/api/v2/plugins/importErrors").json()["import_errors"]
    assert [e for e in errors if "already registered" not in e["error"]] == []


def test_a_task_that_ran_without_a_record_borrows_none(airflow_app):
    # The earlier run's tasks ran before they left records (an older dlflow-airflow): their
    # states show, and no partitions another run recorded.
    client = _client(airflow_app, _token("viewer"))
    page = client.get(f"/dlflow/dags/t_pipeline/runs/{quote(EARLIER_RUN_ID, safe='')}").text
    assert page.count("<span class='state state-success'>success</span>") == 5
    assert "not started in this run" not in page
    assert "raw/TAG=f1" not in page
    # Its predict did leave a record: no model was judged for that date.
    assert "blocked by gate" in page and "model/TAG=m1/dt=2026-01-01 is not blessed" in page


def test_an_asset_triggered_run_shows_the_date_of_its_events():
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from dlflow_airflow.ui.app import _partition_date

    event = SimpleNamespace(
        asset=SimpleNamespace(name="dlflow.model.m"), extra={"date": "2026-02-01"}
    )
    later = datetime(2026, 3, 5, 1, tzinfo=UTC)
    triggered = SimpleNamespace(logical_date=None, run_after=later, consumed_asset_events=[event])
    assert _partition_date(triggered) == "2026-02-01"
    manual = SimpleNamespace(logical_date=None, run_after=later, consumed_asset_events=[])
    assert _partition_date(manual) == "2026-03-05"
    undated = SimpleNamespace(
        logical_date=None,
        run_after=later,
        consumed_asset_events=[SimpleNamespace(asset=None, extra={})],
    )
    assert _partition_date(undated) is None
