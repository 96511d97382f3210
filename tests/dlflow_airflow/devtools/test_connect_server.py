"""The local Spark Connect server of ``run`` and ``serve --spark-connect`` (faked here; it
runs for real in tests/spark_jobs/test_connect.py and tests/e2e/test_connect.py)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from dlflow_airflow.devtools import connect_server, demo, report
from dlflow_airflow.devtools.cli import main
from dlflow_airflow.devtools.connect_server import (
    SERVER_CLASS,
    ConnectServerError,
    LocalConnectServer,
    conn_env_var,
    local_connect_server,
)
from tests.conftest import DEMO_PIPELINE

CONN = "AIRFLOW_CONN_SPARK_CONNECT_DEFAULT"


def test_the_server_command_is_an_argument_list(tmp_path: Path) -> None:
    server = LocalConnectServer(log_file=tmp_path / "s.log", port=15999)
    cmd = server.command()
    assert cmd[0] == str(Path(sys.executable).parent / "spark-submit")
    assert cmd[cmd.index("--class") + 1] == SERVER_CLASS
    assert cmd[cmd.index("--master") + 1] == "local[*]"
    conf = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "--conf"]
    assert "spark.connect.grpc.binding.port=15999" in conf
    assert "spark.connect.grpc.binding.address=127.0.0.1" in conf
    assert f"spark.pyspark.python={sys.executable}" in conf
    assert json.loads(server.connection()) == {
        "conn_type": "spark_connect",
        "host": "sc://127.0.0.1",
        "port": 15999,
    }
    assert server.url == "sc://127.0.0.1:15999"


def test_a_server_that_exits_is_reported_with_its_log(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(
        LocalConnectServer, "command", lambda self: [sys.executable, "-c", "print('no java')"]
    )
    server = LocalConnectServer(log_file=tmp_path / "logs" / "s.log")
    with pytest.raises(ConnectServerError, match=r"(?s)exited \(0\).*no java"):
        server.start(timeout=30)
    assert not server.running


@pytest.fixture
def fake_server(monkeypatch) -> list[str]:
    events: list[str] = []
    monkeypatch.setattr(LocalConnectServer, "start", lambda self: events.append("start"))
    monkeypatch.setattr(LocalConnectServer, "stop", lambda self: events.append("stop"))
    monkeypatch.setattr(LocalConnectServer, "connection", lambda self: '{"conn": 1}')
    return events


def test_a_server_starts_only_for_connections_not_in_the_environment(tmp_path, fake_server):
    env: dict[str, str] = {}
    with local_connect_server([], tmp_path / "s.log", env) as server:
        assert server is None
    with local_connect_server(["spark_connect_default"], tmp_path / "s.log", env) as server:
        assert server is not None
        assert env == {CONN: '{"conn": 1}'}
    assert env == {} and fake_server == ["start", "stop"]
    env = {CONN: "a real server"}
    with local_connect_server(["spark_connect_default"], tmp_path / "s.log", env) as server:
        assert server is None
    assert fake_server == ["start", "stop"] and conn_env_var("x_y") == "AIRFLOW_CONN_X_Y"


def test_run_starts_a_server_for_a_pipeline_in_connect_mode(
    tmp_path: Path, monkeypatch, fake_server, capsys
) -> None:
    dags = tmp_path / "dags"
    (dags / "pipelines").mkdir(parents=True)
    doc = yaml.safe_load(DEMO_PIPELINE.read_text())
    doc["spark"] = {"mode": "connect", "conn_id": "laptop_connect"}
    (dags / "pipelines" / "demo_ctr.yaml").write_text(yaml.safe_dump(doc))
    seen: list[str | None] = []

    def fake_airflow(setup, *args, log=None):
        import os

        seen.append(os.environ.get("AIRFLOW_CONN_LAPTOP_CONNECT"))
        return 0

    monkeypatch.setattr(demo, "airflow", fake_airflow)
    monkeypatch.setattr(report, "render", lambda pipeline, day: ("report", True))
    monkeypatch.setattr(connect_server.LocalConnectServer, "url", "sc://127.0.0.1:1")
    home = ["--dags", str(dags), "--home", str(tmp_path / "home")]
    assert main(["run", "demo_ctr", "--date", "2026-01-02", *home]) == 0
    assert fake_server == ["start", "stop"]
    assert seen == ['{"conn": 1}', '{"conn": 1}']  # db migrate, dags test: both see it
    assert "Started a local Spark Connect server on sc://127.0.0.1:1" in capsys.readouterr().out

    # The demo pipeline (submit mode) starts none.
    shutil.copy(DEMO_PIPELINE, dags / "pipelines" / "demo_ctr.yaml")
    assert main(["run", "demo_ctr", "--date", "2026-01-02", *home]) == 0
    assert fake_server == ["start", "stop"]
