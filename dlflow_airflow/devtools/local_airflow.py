"""A real, local Airflow: api-server, scheduler and dag-processor on 127.0.0.1.

Used by ``dlflow-airflow serve`` (look at the demo in the UI) and by the
end-to-end tests, with the LocalExecutor (``parallelism`` kept small) and one of
two metadata databases:

- ``sqlite`` (default, nothing to set up; ``airflow standalone`` uses it), where
  Airflow refuses to create a backfill while another component writes
  ("Database is locked"): :meth:`LocalAirflow.create_backfill` retries there;
- ``postgres``: a PostgreSQL server of its own in ``<home>/postgres``
  (:mod:`dlflow_airflow.devtools.postgres`), started before Airflow and stopped
  after it, its data kept across restarts; backfills and concurrent runs behave
  as in production.

Two settings Airflow 3.3 needs that are easy to miss:

- ``[core] execution_api_server_url`` must point at this api-server's
  ``/execution/`` when the port is not 8080, or every task dies with
  "Connection refused";
- every process must share one ``[api_auth] jwt_secret``, or the api-server
  refuses the workers' tokens. It is kept in ``<home>/jwt_secret``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlflow_airflow.devtools.demo import airflow_env
from dlflow_airflow.devtools.postgres import LocalPostgres, PostgresError

COMPONENTS = ("api-server", "scheduler", "dag-processor")

# Ports Airflow's own components listen on, (section, key) -> who listens there.
AIRFLOW_PORTS = {
    ("logging", "worker_log_server_port"): "the log server of the scheduler and workers",
    ("logging", "trigger_log_server_port"): "the triggerer's log server",
}

DATABASES = ("sqlite", "postgres")


class LocalAirflowError(RuntimeError):
    """The local Airflow did not start, or an API call failed."""


@dataclass
class LocalAirflow:
    """Start, talk to and stop a local Airflow.

    :param home: AIRFLOW_HOME (created); component logs go to ``<home>/logs/<name>.out``.
    :param dags_folder: the DAG folder the dag-processor parses.
    :param port: the api-server's port (UI and REST API).
    :param env: extra environment variables for every component (e.g. DLFLOW_WORKSPACE).
    :param parallelism: LocalExecutor worker processes.
    :param database: the metadata database, ``sqlite`` (in the home) or ``postgres`` (a
        server of its own in ``<home>/postgres``, started and stopped with the components).
    """

    home: Path
    dags_folder: Path
    port: int = 8080
    env: dict[str, str] = field(default_factory=dict)
    parallelism: int = 2
    database: str = "sqlite"
    _postgres: LocalPostgres | None = field(default=None, init=False, repr=False)
    _procs: dict[str, subprocess.Popen] = field(default_factory=dict, init=False, repr=False)
    _token: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.database not in DATABASES:
            raise LocalAirflowError(
                f"database {self.database!r} is not one of {', '.join(DATABASES)}"
            )

    @property
    def notes(self) -> list[str]:
        """What starting changed outside the home (e.g. folder permissions for PostgreSQL)."""
        return list(self._postgres.notes) if self._postgres else []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environ(self) -> dict[str, str]:
        """Every component's environment (on PostgreSQL: once :meth:`start` has started it)."""
        return {
            **airflow_env(self.home, self.dags_folder),
            **self._database_env(),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": self._jwt_secret(),
            # New and changed YAML files show up within seconds.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "1",
            **self.env,
        }

    def _database_env(self) -> dict[str, str]:
        if self.database == "sqlite":
            return {}  # Airflow's default: <home>/airflow.db
        if self._postgres is None or self._postgres.port is None:
            raise LocalAirflowError("the PostgreSQL server is not running: start() first")
        # The URL holds the database's password: it goes to the components, never to a log.
        # Airflow derives the api-server's async URL (asyncpg) from it.
        return {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self._postgres.url()}

    def _jwt_secret(self) -> str:
        path = self.home / "jwt_secret"
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(32))
        return path.read_text().strip()

    def airflow(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run one ``airflow`` CLI command against this home; output captured."""
        cmd = [str(Path(sys.executable).parent / "airflow"), *args]
        proc = subprocess.run(cmd, env=self.environ(), capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise LocalAirflowError(f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def airflow_ports(self) -> dict[int, str]:
        """Airflow's own ports for this home (its environment, else Airflow's defaults)."""
        from airflow.configuration import conf

        env = {**os.environ, **self.env}  # what environ() passes on for these keys
        ports: dict[int, str] = {}
        for (section, key), who in AIRFLOW_PORTS.items():
            value = env.get(f"AIRFLOW__{section.upper()}__{key.upper()}")
            port = int(value or conf.get_default_value(section, key))
            ports[port] = f"[{section}] {key}, {who}"
        return ports

    def check_port(self) -> None:
        """Refuse a port Airflow itself uses, or one something already listens on.

        :raises LocalAirflowError: naming the conflict, in one line.
        """
        if not 0 < self.port < 65536:
            raise LocalAirflowError(f"port {self.port} is not a TCP port (1-65535)")
        taken = self.airflow_ports().get(self.port)
        if taken:
            raise LocalAirflowError(
                f"port {self.port} is Airflow's own ({taken}); choose another, e.g. --port 8080"
            )
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # As the api-server binds: a port left in TIME_WAIT is free, a listener is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", self.port))
            except OSError as exc:
                raise LocalAirflowError(
                    f"port {self.port} on 127.0.0.1 is in use ({exc.strerror}): another Airflow "
                    "or program listens there; stop it or choose another with --port"
                ) from None

    def start(self, timeout: float = 180) -> None:
        """Check the port, start PostgreSQL (``database="postgres"``), migrate the DB, start
        the three components, wait until the API answers; on failure, stop what started.

        :raises LocalAirflowError: the port is taken (see :meth:`check_port`), PostgreSQL
            did not start, a component exited, or the API did not answer within ``timeout``
            seconds.
        """
        self.check_port()
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "logs").mkdir(exist_ok=True)
        if self.database == "postgres":
            self._postgres = LocalPostgres(self.home / "postgres")
            try:
                self._postgres.start()
            except PostgresError as exc:
                raise LocalAirflowError(str(exc)) from None
        self.airflow("db", "migrate")
        airflow_bin = str(Path(sys.executable).parent / "airflow")
        for name in COMPONENTS:
            out = (self.home / "logs" / f"{name}.out").open("ab")
            self._procs[name] = subprocess.Popen(
                [airflow_bin, name],
                env=self.environ(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # stop() signals the component's whole group
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5):
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(2)
        raise LocalAirflowError(f"the api-server did not answer on {self.url} in {timeout:.0f}s")

    def _check_alive(self) -> None:
        for name, proc in self._procs.items():
            if proc.poll() is not None:
                log = self.home / "logs" / f"{name}.out"
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                raise LocalAirflowError(f"airflow {name} exited ({proc.returncode}):\n{tail}")

    def stop(self, timeout: float = 30) -> None:
        """Stop the components this object started (their process groups only), then
        its PostgreSQL server."""
        for proc in self._procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self._procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self._procs.clear()
        if self._postgres is not None:
            try:
                self._postgres.stop()
            except PostgresError as exc:
                raise LocalAirflowError(str(exc)) from None

    def wait(self) -> None:
        """Block until a component exits (``serve``); Ctrl-C stops all of them."""
        try:
            while True:
                self._check_alive()
                time.sleep(2)
        finally:
            self.stop()

    # -- REST API ---------------------------------------------------------

    def token(self) -> str:
        if self._token is None:
            self._token = self._request("GET", "/auth/token", auth=False)["access_token"]
        return self._token

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call ``/api/v2<path>`` and return the decoded JSON answer."""
        return self._request(method, f"/api/v2{path}", body)

    def _request(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if auth:
            request.add_header("Authorization", f"Bearer {self.token()}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise LocalAirflowError(f"{method} {path}: HTTP {exc.code}: {detail}") from None
        return json.loads(raw) if raw else None

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id``; returns the DAG's details."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                return self.api("GET", f"/dags/{dag_id}")
            except LocalAirflowError:
                time.sleep(2)
        raise LocalAirflowError(f"DAG {dag_id!r} did not appear within {timeout:.0f}s")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 900) -> dict[str, Any]:
        """Wait until a DAG run ends; returns it (``state`` is success or failed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            run = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(3)
        raise LocalAirflowError(f"run {run_id} of {dag_id} did not finish in {timeout:.0f}s")

    def create_backfill(self, body: dict[str, Any], attempts: int = 5) -> dict[str, Any]:
        """``POST /backfills``; on SQLite only, retried while the database is locked.

        On SQLite, Airflow refuses a backfill created while another component
        writes ("Database is locked ... Please use PostgreSQL or MySQL") and may
        leave a backfill without runs that blocks the next one: each retry first
        cancels the DAG's unfinished backfills (none of them can hold a run yet).
        On PostgreSQL the first answer is final.
        """
        for attempt in range(attempts):
            try:
                return self.api("POST", "/backfills", body)
            except LocalAirflowError as exc:
                locked = self.database == "sqlite" and "Database is locked" in str(exc)
                if not locked or attempt == attempts - 1:
                    raise
            time.sleep(2 + 2 * attempt)
            listed = self.api("GET", f"/backfills?dag_id={body['dag_id']}")
            for stale in listed.get("backfills", []):
                if not stale.get("completed_at"):
                    with contextlib.suppress(LocalAirflowError):  # ended meanwhile: 409
                        self.api("PUT", f"/backfills/{stale['id']}/cancel")
        raise AssertionError("unreachable")

    def wait_for_backfill(self, backfill_id: int, timeout: float = 1800) -> list[dict[str, Any]]:
        """Wait until a backfill completes; returns its DAG runs (oldest first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            backfill = self.api("GET", f"/backfills/{backfill_id}")
            if backfill.get("completed_at"):
                query = (
                    f"logical_date_gte={backfill['from_date']}"
                    f"&logical_date_lte={backfill['to_date']}&order_by=logical_date&limit=100"
                )
                query = query.replace("+", "%2B")
                return self.api("GET", f"/dags/{backfill['dag_id']}/dagRuns?{query}")["dag_runs"]
            time.sleep(3)
        raise LocalAirflowError(f"backfill {backfill_id} did not complete in {timeout:.0f}s")
