"""A running local Airflow for the end-to-end tests, and what to say when a run fails."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FAILED_STATES = ("failed", "upstream_failed", "up_for_retry")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_airflow(
    root: Path,
    dag_id: str,
    write_dags: Callable[[Path], None],
    database: str = "postgres",
    *,
    scheduled: bool = False,
) -> Iterator[Any]:
    """An api-server + scheduler + dag-processor over the DAG folder ``write_dags`` fills,
    with ``dag_id`` loaded and unpaused; ``server.workspace`` is the pipelines' workspace.

    The metadata database is PostgreSQL (a server of its own under ``root``), as in
    production: on SQLite, Airflow refuses backfills created while another component writes.
    Unless ``scheduled``, the scheduler creates no runs of its own (no cron tick, no
    asset-triggered run): every run is one the test asks for.
    """
    from dlflow_airflow.devtools.local_airflow import LocalAirflow

    write_dags(root / "dags")
    server = LocalAirflow(
        home=root / "airflow",
        dags_folder=root / "dags",
        port=free_port(),
        env={
            "DLFLOW_WORKSPACE": str(root / "workspace"),
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(scheduled),
        },
        database=database,
    )
    server.start()
    try:
        server.wait_for_dag(dag_id)
        server.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        server.workspace = root / "workspace"
        yield server
    finally:
        server.stop()


def task_states(server: Any, dag_id: str, run_id: str) -> dict[str, str]:
    answer = server.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")
    return {ti["task_id"]: ti["state"] for ti in answer["task_instances"]}


def run_report(
    server: Any, dag_id: str, run_id: str, states: tuple[str, ...] = FAILED_STATES
) -> str:
    """A run's task states and the end of the last log of each task in ``states``."""
    found = task_states(server, dag_id, run_id)
    lines = [f"{run_id}: {found}"]
    folder = server.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
    for task_id, state in found.items():
        logs = sorted(folder.glob(f"task_id={task_id}/*.log"))
        if state in states and logs:
            lines += [f"--- {logs[-1]}", logs[-1].read_text(errors="replace")[-4000:]]
    return "\n".join(lines)
