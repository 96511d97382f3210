"""The demo pipeline in Spark Connect mode through a real Airflow, against a local server.

One local Spark Connect server (:mod:`dlflow_airflow.devtools.connect_server`) serves
two runs of ``dlflow-airflow run`` (``airflow dags test``):

- the demo pipeline with ``spark: {mode: connect}``: every stage's partition is
  written, the Spark stages ran as Connect clients (no spark-submit);
- a pipeline whose demo_data cannot finish before its ``execution_timeout``: the
  task is killed, its Spark operations are interrupted by tag, and it leaves no
  partition and nothing staged.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import DEMO_PIPELINE

pytestmark = pytest.mark.e2e

DATE = "2026-01-02"
KILL_DATE = "2026-01-03"
DEMO_DAG = "dlflow_demo_connect"
KILL_DAG = "dlflow_connect_kill"
KILL_AFTER_SECONDS = 8
KILL_ROWS = 6_000_000  # about 25 s of writing on 2 cores: the timeout comes first

DAG_FILE = f'''
from datetime import timedelta
from pathlib import Path

from dlflow_airflow.pipeline.loader import load_dags

dags = load_dags(Path(__file__).parent / "pipelines")
# The killed task (tests/e2e/test_connect.py): demo_data cannot write its rows in time.
dags["{KILL_DAG}"].get_task("demo_data").execution_timeout = timedelta(
    seconds={KILL_AFTER_SECONDS}
)
globals().update(dags)
'''


def _write_dags(folder: Path) -> None:
    demo = yaml.safe_load(DEMO_PIPELINE.read_text())
    # The server's launch settings are its own; a session sets only runtime SQL settings.
    demo["spark"] = {"mode": "connect", "conf": {"spark.sql.shuffle.partitions": 4}}
    demo["dag_id"] = DEMO_DAG
    demo["stages"]["demo_data"] = {"rows": 5000}
    kill = {**demo, "dag_id": KILL_DAG, "stages": {"demo_data": {"rows": KILL_ROWS}}}
    (folder / "pipelines").mkdir(parents=True)
    (folder / "pipelines" / f"{DEMO_DAG}.yaml").write_text(yaml.safe_dump(demo))
    (folder / "pipelines" / f"{KILL_DAG}.yaml").write_text(yaml.safe_dump(kill))
    (folder / "dlflow_pipelines.py").write_text(DAG_FILE)


def _run(home: Path, dags: Path, dag_id: str, day: str) -> subprocess.CompletedProcess:
    cli = Path(sys.executable).parent / "dlflow-airflow"
    return subprocess.run(
        [str(cli), "run", dag_id, "--date", day, "--home", str(home), "--dags", str(dags)],
        capture_output=True,
        text=True,
        timeout=900,
        env=dict(os.environ),
    )


@pytest.fixture(scope="module")
def connect_runs(tmp_path_factory):
    from dlflow_airflow.contract.spark_connect import DEFAULT_CONNECT_CONN_ID
    from dlflow_airflow.devtools.connect_server import conn_env_var, local_connect_server

    root = tmp_path_factory.mktemp("connect")
    home, dags = root / "home", root / "dags"
    _write_dags(dags)
    os.environ.pop(conn_env_var(DEFAULT_CONNECT_CONN_ID), None)
    # Sets AIRFLOW_CONN_SPARK_CONNECT_DEFAULT for both runs, as `dlflow-airflow run` would.
    with local_connect_server([DEFAULT_CONNECT_CONN_ID], root / "spark-connect.log") as server:
        demo = _run(home, dags, DEMO_DAG, DATE)
        killed = _run(home, dags, KILL_DAG, KILL_DATE)
        time.sleep(5)  # an operation that was not interrupted would still be writing
        staged_after = _staged(home / "workspace")
        log = server.log_tail()
    yield home, demo, killed, staged_after, log


def _log(home: Path, dag_id: str, day: str = DATE) -> str:
    path = home / "logs" / dag_id / f"{day}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def _staged(workspace: Path) -> list[Path]:
    """Every file under a staging folder of the workspace."""
    return [p for p in workspace.rglob("*") if p.is_file() and "_staging" in p.parts]


def test_demo_pipeline_runs_in_connect_mode(connect_runs, monkeypatch):
    home, demo, _, _, _ = connect_runs
    log = _log(home, DEMO_DAG)
    assert demo.returncode == 0, demo.stdout + demo.stderr + log[-6000:]
    from dlflow_airflow.devtools.report import stage_partitions
    from dlflow_airflow.pipeline.build import Pipeline

    monkeypatch.setenv("DLFLOW_WORKSPACE", str(home / "workspace"))
    pipeline = Pipeline.from_file(home.parent / "dags" / "pipelines" / f"{DEMO_DAG}.yaml")
    parts = stage_partitions(pipeline, DATE)
    assert {p.status for p in parts} == {"ok"}, [(p.uri, p.status) for p in parts]
    # The Spark stages were Connect clients (pipeline's shared session; merge a private one).
    for job in ("demo_data", "merge", "encode", "predict"):
        assert f"Spark Connect: {job} on sc://127.0.0.1:" in log, job
    assert "private session" in log and "shared session" in log
    assert "spark-submit" not in log
    assert "DLFLOW_RESULT" in log


def test_demo_outputs_are_whole(connect_runs, monkeypatch):
    import pyarrow.dataset as ds

    from dlflow_airflow.contract.layout import Layout, local_path

    home, demo, _, _, _ = connect_runs
    assert demo.returncode == 0
    layout = Layout(str(home / "workspace"))
    encoded = ds.dataset(local_path(layout.encoded("demo_ctr_v1", DATE)), format="parquet")
    predicted = ds.dataset(local_path(layout.predict("demo_dnn_v1", DATE)), format="parquet")
    assert predicted.count_rows() == encoded.count_rows() == 5000


def test_killed_task_interrupts_spark_and_leaves_no_half_partition(connect_runs):
    home, _, killed, staged_after, server_log = connect_runs
    log = _log(home, KILL_DAG, KILL_DATE)
    assert killed.returncode != 0, killed.stdout + log[-4000:]
    assert "AirflowTaskTimeout" in log or "Timeout" in log, log[-4000:]
    # The task's operations on the server were interrupted by their tag: by the job, on the
    # SIGTERM the operator sends first, or by the operator's own interrupt after it.
    said = [line for line in log.splitlines() if "interrupt" in line]
    assert any(
        "interrupted 1 Spark operation(s) of this task" in line
        or "interrupted 1 Spark operation(s) tagged dlflow-dlflow_connect_kill-demo_data-" in line
        for line in said
    ), said
    assert "SPARK_JOB_CANCELLED" in server_log or "OPERATION_CANCELED" in log
    upstream = home / "workspace" / "upstream"
    dated = list(upstream.rglob(f"dt={KILL_DATE}")) if upstream.exists() else []
    # Neither a committed nor a half partition for the date; nothing left staged.
    assert dated == [], dated
    assert staged_after == [], staged_after
