"""``spark: {mode: connect}``: a Spark stage's job as a Spark Connect client in the worker.

The job (``python -m spark_jobs.<job> --date ... --job ...``) runs as a
subprocess of the Airflow worker, its output streamed into the task log
(:class:`~dlflow_airflow.runners.process.LocalProcess`, as the local TF runner).
It connects to the long-lived Spark Connect server of the Spark provider's
``spark_connect`` connection, so the task starts no JVM. The operator hands
it a :class:`~dlflow_airflow.contract.spark_connect.ConnectSession` through
the environment:

- the session: the pipeline's shared one (same DAG, code, settings and
  connection, within the hour), whose Python workers stay warm from task to
  task, or a private one for a job that keeps state in its session
  (:data:`~dlflow_airflow.contract.spark_connect.PRIVATE_SESSION_JOBS`);
- the code zip of :mod:`dlflow_airflow.operators.shipping` (the project and the
  user's model modules), added to the session as a ``pyfile`` artifact;
- a tag naming the task's try: killing the task (timeout, stop from the UI)
  interrupts the session's operations with that tag, then stops the job,
  whose staging is discarded, so no half partition is left.

The connection's token is part of the URL: the URL goes to the job through
the environment only, never into a log line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

from airflow.sdk import BaseOperator

from dlflow_airflow.contract.jobconf import NO_RETRY_EXIT_CODE, job_argv
from dlflow_airflow.contract.spark_connect import (
    DEFAULT_CONNECT_CONN_ID,
    PRIVATE_SESSION_JOBS,
    ConnectSession,
    connect_conf_error,
    private_session_id,
    shared_session_id,
)
from dlflow_airflow.operators.bookkeeping import StageBookkeeping
from dlflow_airflow.operators.spark import SPARK_JOBS
from dlflow_airflow.runners.base import JobFailedError
from dlflow_airflow.runners.process import LocalProcess

_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_.:+-]+")
INTERRUPT_TIMEOUT_SECONDS = 60


class SparkConnectJobOperator(BaseOperator):
    """Run one dlflow Spark job for the run's partition against a Spark Connect server
    (without run bookkeeping).

    ``date`` and ``env`` are the templates; the job document and ``conf`` are
    passed verbatim, as in spark-submit mode. A job that fails with
    :class:`~dlflow_airflow.contract.jobconf.NoRetryError` fails the task for good.

    :param job: the ``spark_jobs`` program: demo_data, merge, encode or predict.
    :param job_body: the job config without the date (see :mod:`dlflow_airflow.contract.jobconf`).
    :param date: the partition date; a template, ``{{ ds }}`` by default.
    :param conn_id: a ``spark_connect`` connection (the Spark provider's): host
        ``sc://host``, port, and optionally a user id, a token and ``use_ssl``.
    :param conf: runtime SQL settings set on the session (``spark.sql.*``, not static);
        a launch setting is refused (it is the server's).
    :param ship_code: add the code zip of ``dlflow_airflow``, ``spark_jobs``, ``tf_jobs``
        and ``ship_modules`` to the session, so the server's Python workers run this
        code (see :mod:`dlflow_airflow.operators.shipping`).
    :param ship_modules: more modules to ship, e.g. a user's model module.
    :param env: extra environment variables for the job's process.
    :raises ValueError: an unknown job, or ``conf`` with a setting a session cannot set.
    """

    template_fields = ("date", "env")
    ui_color = "#ffefeb"  # the Spark provider's

    def __init__(
        self,
        *,
        job: str,
        job_body: dict[str, Any],
        date: str = "{{ ds }}",
        conn_id: str = DEFAULT_CONNECT_CONN_ID,
        conf: dict[str, Any] | None = None,
        ship_code: bool = True,
        ship_modules: Sequence[str] = (),
        env: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if job not in SPARK_JOBS:
            raise ValueError(f"unknown spark job {job!r}; known: {', '.join(SPARK_JOBS)}")
        conf = {str(k): str(v) for k, v in (conf or {}).items()}
        if error := connect_conf_error(conf):
            raise ValueError(f"conf: {error}")
        self.job = job
        self.job_body = job_body
        self.date = date
        self.conn_id = conn_id
        self.conf = conf
        self.ship_code = ship_code
        self.ship_modules = tuple(ship_modules)
        self.env = env or {}
        self._process: LocalProcess | None = None

    def connection_url(self) -> str:
        """The server's URL (``sc://host:port/;...``) from the connection, its token masked."""
        from airflow.providers.apache.spark.hooks.spark_connect import SparkConnectHook
        from airflow.sdk.log import mask_secret

        hook = SparkConnectHook(self.conn_id)
        password = hook.get_connection(self.conn_id).password
        if password:  # Airflow masks the password; the URL holds it quoted
            mask_secret(quote(password))
        return hook.get_connection_url()

    def session(self, context: Any) -> ConnectSession:
        """The session the job joins: shared, unless the job keeps state in it."""
        url = self.connection_url()
        artifacts: tuple[str, ...] = ()
        if self.ship_code:
            from dlflow_airflow.operators.shipping import build_code_zip

            artifacts = (build_code_zip(self.ship_modules),)
        shared = self.job not in PRIVATE_SESSION_JOBS
        if shared:
            hour = datetime.now(UTC).strftime("%Y-%m-%dT%H")
            # One per pipeline, code and settings; a new one each hour, so a session the
            # server closed when it sat idle is not asked for again.
            code = [Path(a).name for a in artifacts]
            key = [self.dag_id, url, *code, json.dumps(self.conf, sort_keys=True), hour]
            session_id = shared_session_id(*key)
        else:
            session_id = private_session_id()
        return ConnectSession(
            url=url,
            session_id=session_id,
            tag=task_tag(context, self),
            shared=shared,
            artifacts=artifacts,
            conf=self.conf,
        )

    def execute(self, context: Any) -> None:
        session = self.session(context)
        self.log.info(
            "Spark Connect: %s on %s, %s session %s, operations tagged %s",
            self.job,
            endpoint(session.url),
            "shared" if session.shared else "private",
            session.session_id,
            session.tag,
        )
        self._process = LocalProcess(on_stop=lambda: self.interrupt(session))
        try:
            self._process.run(
                f"spark_jobs.{self.job}",
                job_argv(self.date, self.job_body),
                env={**session.environ(), **self.env},
                log=self.log,
            )
        except JobFailedError as exc:
            if exc.exit_code != NO_RETRY_EXIT_CODE:
                raise
            from airflow.sdk.exceptions import AirflowFailException

            # Deterministic (e.g. drift beyond encode.drift with on_breach: fail).
            raise AirflowFailException(
                f"dlflow: the {self.job} job failed for good (exit code {NO_RETRY_EXIT_CODE}), "
                f"not retried; its ERROR line says why:\n{exc}"
            ) from exc
        finally:
            self._process = None

    def interrupt(self, session: ConnectSession) -> None:
        """Interrupt the server's operations tagged with this task's try (best effort).

        From a process of its own (``python -m spark_jobs.connect interrupt``): the worker
        stays free of PySpark, and the job's own client may be stuck.
        """
        cmd = [sys.executable, "-m", "spark_jobs.connect", "interrupt"]
        try:
            done = subprocess.run(
                cmd,
                env={**os.environ, **session.environ()},
                capture_output=True,
                text=True,
                timeout=INTERRUPT_TIMEOUT_SECONDS,
            )
        except subprocess.TimeoutExpired:
            self.log.warning("interrupting the Spark operations tagged %s timed out", session.tag)
            return
        if done.returncode == 0:
            self.log.info("%s", done.stdout.strip())
        else:
            tail = "\n".join(done.stderr.strip().splitlines()[-5:])
            self.log.warning("could not interrupt the operations tagged %s:\n%s", session.tag, tail)

    def on_kill(self) -> None:
        if self._process is not None:
            self._process.kill()


class DlflowSparkConnectOperator(StageBookkeeping, SparkConnectJobOperator):
    """A Spark stage in connect mode: :class:`SparkConnectJobOperator` with the run
    bookkeeping of every stage."""

    def __init__(self, *, job_body: dict[str, Any], date: str = "{{ ds }}", **kwargs: Any):
        super().__init__(
            job_body=job_body, date=date, stage_body=job_body, stage_date=date, **kwargs
        )


def task_tag(context: Any, task: BaseOperator) -> str:
    """``dlflow-<dag>-<task>-<run id>-<try>``: unique per task try within a session."""
    ti = context.get("ti")
    run_id = getattr(context.get("dag_run"), "run_id", None) or getattr(ti, "run_id", "")
    parts = ["dlflow", task.dag_id, task.task_id, str(run_id), str(getattr(ti, "try_number", 0))]
    return _TAG_UNSAFE.sub("_", "-".join(parts))


def endpoint(url: str) -> str:
    """``sc://host:port`` of a Connect URL, without its parameters (a token, say)."""
    netloc = urlparse(url).netloc.rsplit("@", 1)[-1]
    return f"sc://{netloc}"
