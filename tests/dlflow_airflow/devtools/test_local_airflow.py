"""The settings a local Airflow 3.3 needs (the running server is tested in tests/e2e)."""

from __future__ import annotations

from pathlib import Path

from dlflow_airflow.devtools.local_airflow import LocalAirflow


def test_components_share_the_execution_api_url_and_one_jwt_secret(tmp_path: Path):
    server = LocalAirflow(home=tmp_path / "home", dags_folder=tmp_path / "dags", port=8793)
    env = server.environ()
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8793/execution/"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(tmp_path / "dags")
    again = LocalAirflow(home=tmp_path / "home", dags_folder=tmp_path / "dags", port=8793)
    assert again.environ()["AIRFLOW__API_AUTH__JWT_SECRET"] == env["AIRFLOW__API_AUTH__JWT_SECRET"]


def test_extra_env_wins(tmp_path: Path):
    server = LocalAirflow(
        home=tmp_path, dags_folder=tmp_path, env={"AIRFLOW__CORE__PARALLELISM": "1"}
    )
    assert server.environ()["AIRFLOW__CORE__PARALLELISM"] == "1"
