"""The plugin is registered by the package and builds its app only when the api-server asks."""

from __future__ import annotations

import asyncio
from importlib.metadata import entry_points

from dlflow_airflow.provider import get_provider_info
from dlflow_airflow.ui import plugin as plugin_module
from dlflow_airflow.ui.plugin import DlflowRunReportPlugin, FirstRequestApp, root_path


def test_the_package_registers_the_plugin_once():
    # The entry point only: listed in the provider info too, Airflow would load it twice
    # with lazy provider discovery off and report the second as an import error.
    assert "plugins" not in get_provider_info()
    found = {ep.name: ep.value for ep in entry_points(group="airflow.plugins")}
    assert found["dlflow_run_report"] == "dlflow_airflow.ui.plugin:DlflowRunReportPlugin"


def test_the_run_tab_opens_the_report_of_the_run():
    (view,) = DlflowRunReportPlugin.external_views
    assert view["destination"] == "dag_run"
    assert view["href"].endswith("dlflow/dags/{DAG_ID}/runs/{RUN_ID}")
    (app,) = DlflowRunReportPlugin.fastapi_apps
    assert app["url_prefix"] == plugin_module.URL_PREFIX


def test_the_views_follow_a_base_url_with_a_path(monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://example.org/airflow")
    assert root_path() == "/airflow/"
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://localhost:8080")
    assert root_path() == "/"


def test_the_app_is_built_on_its_first_request_only():
    built: list[str] = []
    seen: list[str] = []

    async def inner(scope, receive, send) -> None:
        seen.append(scope["path"])

    def factory():
        built.append("app")
        return inner

    app = FirstRequestApp(factory)
    assert built == []
    for path in ("/a", "/b"):
        asyncio.run(app({"type": "http", "path": path}, None, None))
    assert built == ["app"] and seen == ["/a", "/b"]
