"""A local Spark Connect server for the laptop case (``spark: {mode: connect}``).

``dlflow-airflow run`` starts one for a pipeline in connect mode whose
connection is not in the environment (and ``serve --spark-connect`` for the
UI's runs; see :func:`local_connect_server`): the venv's own ``spark-submit`` runs
Spark's ``SparkConnectServer`` (its jar ships with the pip-installed pyspark)
on ``local[*]``, listening on 127.0.0.1 only, on a free port, with the venv's
Python for its Python workers. :meth:`LocalConnectServer.start` returns once
the server accepts a session; :meth:`LocalConnectServer.stop` stops its
process group. Its log goes to a file (Spark's INFO lines included).

The Airflow connection that points at it is :meth:`LocalConnectServer.connection`
(the Spark provider's ``spark_connect`` type), set as ``AIRFLOW_CONN_<ID>`` in
the environment of the Airflow it serves.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
HOST = "127.0.0.1"
_LOG_TAIL_CHARS = 3000


class ConnectServerError(RuntimeError):
    """The server did not start (the message ends with its log's tail) or did not stop."""


def conn_env_var(conn_id: str) -> str:
    """The environment variable Airflow reads the connection ``conn_id`` from."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"


@dataclass
class LocalConnectServer:
    """Start, check and stop a Spark Connect server on ``local[*]``.

    :param log_file: where the server's output goes (appended; its folder is created).
    :param port: the gRPC port; None picks a free one at :meth:`start`.
    :param python: the Python of the server's Python workers (``spark.pyspark.python``);
        the client's by default, as Spark Connect needs the same minor version on both sides.
    :param driver_memory: the server JVM's heap (it is driver and executors at once).
    :param log_level: the server's Log4j level (its log file grows with every job at INFO).
    :param conf: more Spark settings of the server (launch settings included).
    """

    log_file: Path
    port: int | None = None
    python: str = sys.executable
    driver_memory: str = "2g"
    log_level: str = "WARN"
    conf: Mapping[str, str] = field(default_factory=dict)
    _proc: subprocess.Popen | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        """``sc://127.0.0.1:<port>`` (set once started)."""
        if self.port is None:
            raise ConnectServerError("the server has no port yet: start() it first")
        return f"sc://{HOST}:{self.port}"

    def connection(self) -> str:
        """The Airflow connection (JSON, type ``spark_connect``) that reaches this server."""
        if self.port is None:
            raise ConnectServerError("the server has no port yet: start() it first")
        return json.dumps({"conn_type": "spark_connect", "host": f"sc://{HOST}", "port": self.port})

    def command(self) -> list[str]:
        """The ``spark-submit`` argument list that runs the server."""
        if self.port is None:
            raise ConnectServerError("the server has no port yet: start() it first")
        settings = {
            "spark.connect.grpc.binding.address": HOST,
            "spark.connect.grpc.binding.port": str(self.port),
            "spark.pyspark.python": self.python,
            "spark.pyspark.driver.python": self.python,
            "spark.ui.enabled": "false",
            "spark.log.level": self.log_level,
            **self.conf,
        }
        cmd = [
            str(Path(sys.executable).parent / "spark-submit"),
            "--class",
            SERVER_CLASS,
            "--name",
            "dlflow-spark-connect",
            "--master",
            "local[*]",
            "--driver-memory",
            self.driver_memory,
        ]
        for key, value in settings.items():
            cmd += ["--conf", f"{key}={value}"]
        return cmd

    def start(self, timeout: float = 120) -> None:
        """Start the server and wait until it accepts a session; on failure, stop it.

        :raises ConnectServerError: it exited, or did not accept a session within
            ``timeout`` seconds (with the tail of its log).
        """
        if self._proc is not None:
            raise ConnectServerError(f"already started on {self.url}")
        if self.port is None:
            self.port = free_port()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        bin_dir = str(Path(sys.executable).parent)
        env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
        # Not a Connect client itself: these would turn the server's own PySpark into one.
        for name in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED", "SPARK_LOCAL_REMOTE"):
            env.pop(name, None)
        with self.log_file.open("ab") as out:
            self._proc = subprocess.Popen(
                self.command(),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # stop() signals the JVM and anything it started
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if _accepts_tcp(self.port or 0) and _accepts_session(self.url):
                return
            time.sleep(0.5)
        raise ConnectServerError(
            f"the Spark Connect server did not accept a session on {self.url} in "
            f"{timeout:.0f}s; its log ({self.log_file}) ends:\n{self.log_tail()}"
        )

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise ConnectServerError(
                f"the Spark Connect server exited ({self._proc.returncode}); "
                f"its log ({self.log_file}) ends:\n{self.log_tail()}"
            )

    def log_tail(self) -> str:
        if not self.log_file.exists():
            return ""
        return self.log_file.read_text(errors="replace")[-_LOG_TAIL_CHARS:]

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 30) -> None:
        """Stop the server's process group (SIGTERM, then SIGKILL after ``timeout`` s)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with _gone_already():
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with _gone_already():
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def __enter__(self) -> LocalConnectServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def local_connect_server(
    conn_ids: Iterable[str], log_file: Path, env: MutableMapping[str, str] = os.environ
) -> Iterator[LocalConnectServer | None]:
    """A :class:`LocalConnectServer` behind the connections ``conn_ids`` while the block
    runs: their ``AIRFLOW_CONN_*`` variables are set in ``env`` (and restored after).

    None (nothing started) when ``conn_ids`` is empty or every one of them is already
    in ``env``: a pipeline pointed at a real server keeps it.
    """
    wanted = [c for c in dict.fromkeys(conn_ids) if conn_env_var(c) not in env]
    if not wanted:
        yield None
        return
    server = LocalConnectServer(log_file=log_file)
    server.start()
    try:
        for conn_id in wanted:
            env[conn_env_var(conn_id)] = server.connection()
        yield server
    finally:
        for conn_id in wanted:
            env.pop(conn_env_var(conn_id), None)
        server.stop()


class _gone_already:
    """Ignore a process group that exited between the check and the signal."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> bool:
        return exc_type is ProcessLookupError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _accepts_tcp(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False


def _accepts_session(url: str) -> bool:
    """Whether a Connect session can be opened and answers (then released again).

    Uses the client object directly, not ``SparkSession.builder``: that would mark
    this process (and the Airflow components it starts) as a Connect client.
    """
    from pyspark.sql.connect.client import SparkConnectClient

    client = SparkConnectClient(url)
    client.set_retry_policies([])  # a refused attempt is simply the next poll
    try:
        client.get_configs("spark.app.name")
        client.release_session()
        return True
    except Exception:
        return False
    finally:
        client.close()
