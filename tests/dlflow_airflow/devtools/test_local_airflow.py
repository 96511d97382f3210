"""The settings a local Airflow 3.3 needs and its port checks (the running server: tests/e2e)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from dlflow_airflow.devtools.cli import main
from dlflow_airflow.devtools.local_airflow import LocalAirflow, LocalAirflowError


def test_components_share_the_execution_api_url_and_one_jwt_secret(tmp_path: Path):
    server = LocalAirflow(home=tmp_path / "home", dags_folder=tmp_path / "dags", port=8791)
    env = server.environ()
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8791/execution/"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(tmp_path / "dags")
    again = LocalAirflow(home=tmp_path / "home", dags_folder=tmp_path / "dags", port=8791)
    assert again.environ()["AIRFLOW__API_AUTH__JWT_SECRET"] == env["AIRFLOW__API_AUTH__JWT_SECRET"]


def test_extra_env_wins(tmp_path: Path):
    server = LocalAirflow(
        home=tmp_path, dags_folder=tmp_path, env={"AIRFLOW__CORE__PARALLELISM": "1"}
    )
    assert server.environ()["AIRFLOW__CORE__PARALLELISM"] == "1"


@pytest.mark.parametrize(
    ("port", "conflict"),
    [
        (8793, "[logging] worker_log_server_port, the log server of the scheduler and workers"),
        (8794, "[logging] trigger_log_server_port, the triggerer's log server"),
    ],
)
def test_airflows_own_ports_are_refused(tmp_path: Path, port: int, conflict: str):
    server = LocalAirflow(home=tmp_path / "home", dags_folder=tmp_path, port=port)
    with pytest.raises(LocalAirflowError) as info:
        server.start()
    assert (
        str(info.value)
        == f"port {port} is Airflow's own ({conflict}); choose another, e.g. --port 8080"
    )
    assert not (tmp_path / "home").exists()  # refused before anything starts


def test_a_moved_log_server_port_is_refused_where_it_is(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT", "9893")
    assert 8793 not in LocalAirflow(home=tmp_path, dags_folder=tmp_path).airflow_ports()
    with pytest.raises(LocalAirflowError, match="worker_log_server_port"):
        LocalAirflow(home=tmp_path, dags_folder=tmp_path, port=9893).check_port()


def test_a_port_in_use_is_refused(tmp_path: Path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        server = LocalAirflow(home=tmp_path, dags_folder=tmp_path, port=port)
        with pytest.raises(LocalAirflowError, match=f"port {port} on 127.0.0.1 is in use"):
            server.check_port()
    server.check_port()  # free again


def test_serve_prints_the_conflict_in_one_line(tmp_path: Path, capsys):
    argv = ["serve", "--port", "8793", "--home", str(tmp_path), "--dags", str(tmp_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "worker_log_server_port" in err


def test_an_unknown_database_is_refused(tmp_path: Path):
    with pytest.raises(LocalAirflowError, match="'mysql' is not one of sqlite, postgres"):
        LocalAirflow(home=tmp_path, dags_folder=tmp_path, database="mysql")


def test_postgres_needs_its_server_started_first(tmp_path: Path):
    server = LocalAirflow(home=tmp_path, dags_folder=tmp_path, database="postgres")
    with pytest.raises(LocalAirflowError, match="PostgreSQL server is not running"):
        server.environ()
    sqlite = LocalAirflow(home=tmp_path, dags_folder=tmp_path)
    assert "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN" not in sqlite.environ()  # <home>/airflow.db


@pytest.mark.parametrize(("database", "calls"), [("sqlite", 2), ("postgres", 1)])
def test_backfill_creation_is_retried_on_sqlite_only(
    tmp_path: Path, monkeypatch, database: str, calls: int
):
    server = LocalAirflow(home=tmp_path, dags_folder=tmp_path, database=database)
    posts = []

    def api(method: str, path: str, body=None):
        if method == "POST":
            posts.append(body)
            if len(posts) == 1:
                raise LocalAirflowError("POST /backfills: HTTP 409: Database is locked.")
            return {"id": 7}
        return {"backfills": []}

    monkeypatch.setattr(server, "api", api)
    monkeypatch.setattr("dlflow_airflow.devtools.local_airflow.time.sleep", lambda s: None)
    if database == "sqlite":
        assert server.create_backfill({"dag_id": "d"}) == {"id": 7}
    else:
        with pytest.raises(LocalAirflowError, match="Database is locked"):
            server.create_backfill({"dag_id": "d"})
    assert len(posts) == calls
