"""Run a pipeline for one date through a real Airflow (SQLite, ``airflow dags test``).

Used by ``dlflow-airflow demo`` (the README's quick start) and by the
end-to-end test. Airflow runs in a child process with its own AIRFLOW_HOME,
so nothing leaks into the user's Airflow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

LOCAL_SPARK_CONNECTION = json.dumps({"conn_type": "spark", "host": "local[*]"})


@dataclass(frozen=True)
class DemoSetup:
    home: Path  # holds airflow/ (AIRFLOW_HOME) and workspace/
    dags_folder: Path

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def workspace(self) -> Path:
        return self.home / "workspace"

    def env(self) -> dict[str, str]:
        return {
            **airflow_env(self.airflow_home, self.dags_folder),
            "DLFLOW_WORKSPACE": str(self.workspace),
        }


def airflow_env(airflow_home: Path, dags_folder: Path) -> dict[str, str]:
    """The environment of an isolated Airflow: its own home, DAG folder and Spark connection."""
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW_CONN_SPARK_DEFAULT": os.environ.get(
            "AIRFLOW_CONN_SPARK_DEFAULT", LOCAL_SPARK_CONNECTION
        ),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


def airflow(setup: DemoSetup, *args: str, log: Path | None = None) -> int:
    """Run the ``airflow`` CLI of this interpreter; output to ``log`` or the terminal."""
    cmd = [str(Path(sys.executable).parent / "airflow"), *args]
    if log is None:
        return subprocess.call(cmd, env=setup.env())
    with log.open("a") as handle:
        return subprocess.call(cmd, env=setup.env(), stdout=handle, stderr=subprocess.STDOUT)


def run_dag(setup: DemoSetup, dag_id: str, date: str, log: Path | None = None) -> int:
    setup.airflow_home.mkdir(parents=True, exist_ok=True)
    code = airflow(setup, "db", "migrate", log=log)
    if code != 0:
        return code
    return airflow(setup, "dags", "test", dag_id, date, log=log)
