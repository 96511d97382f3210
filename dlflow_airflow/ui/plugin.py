"""The Airflow plugin of the run report: its app in the api-server and a tab on each DAG run.

Registered by the package's ``airflow.plugins`` entry point, which every Airflow
component loads wherever the package is installed (only there: listed in the
provider info too, Airflow would load it twice with lazy provider discovery off
and report the second copy as an import error).

- ``fastapi_apps``: :mod:`.app` under :data:`URL_PREFIX` (``/dlflow``).
- ``external_views``: the "DLFlow report" tab on every DAG run's page
  (``/dags/<dag>/runs/<run>/plugin/dlflow-report``), showing that app's page
  for the run in an iframe. The stage tasks' extra link
  (:class:`~dlflow_airflow.operators.run_report.RunReportLink`) leads there.

Light to import: every Airflow component loads the plugins (scheduler,
dag-processor, workers), so FastAPI, Airflow's security module and the app
are imported on the api-server's first request to it, never before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from airflow.sdk.plugins_manager import AirflowPlugin

from dlflow_airflow.operators.run_report import REPORT_VIEW

URL_PREFIX = "/dlflow"
"""Where the api-server mounts the report's app."""


class FirstRequestApp:
    """An ASGI app that builds the real one (``factory()``) on its first request."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:  # one event loop: no other request runs until the first await
            self._app = self._factory()
        await self._app(scope, receive, send)


def _create_app() -> Any:
    from dlflow_airflow.ui.app import create_app

    return create_app()


def root_path() -> str:
    """The path of the UI's ``[api] base_url`` (``/`` unless Airflow is served under a path)."""
    try:
        from airflow.configuration import conf
    except ImportError:  # a worker with the task SDK alone: the view is the api-server's
        return "/"
    path = urlsplit(conf.get("api", "base_url", fallback="") or "").path
    return path if path.endswith("/") else f"{path}/"


class DlflowRunReportPlugin(AirflowPlugin):
    """The run report of every DAG run built by dlflow-airflow."""

    name = "dlflow_run_report"
    fastapi_apps = [
        {"app": FirstRequestApp(_create_app), "url_prefix": URL_PREFIX, "name": "DLFlow run report"}
    ]
    external_views = [
        {
            "name": "DLFlow report",
            "href": f"{root_path()}{URL_PREFIX.lstrip('/')}/dags/{{DAG_ID}}/runs/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": REPORT_VIEW,
        }
    ]
