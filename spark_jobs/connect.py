"""A job's session in Spark Connect mode (``spark: {mode: connect}``).

The operator starts the job as ``python -m spark_jobs.<job>`` in the Airflow
worker with a :class:`~dlflow_airflow.contract.spark_connect.ConnectSession`
in its environment. The job is then a Spark Connect client: its plans run on
the long-lived server, so no JVM starts for the task. :func:`remote_session`

- joins the session the operator named: its pipeline's shared session (whose
  Python workers, with TensorFlow and the model predict loaded, stay warm
  from task to task), or a private one for a job that keeps state in it;
- adds the project's code zip (and the user's model modules) as ``pyfile``
  artifacts, so the server's Python workers import the same code as the job;
- tags every operation with the task's tag (:meth:`SparkSession.addTag`), by
  which the operator interrupts them when the task is killed;
- sets the runtime defaults of :data:`spark_jobs.session.DEFAULT_CONF` the
  server does not set itself, then the pipeline's ``spark.conf``, and turns
  the server's plan cache off for it (:data:`PLAN_CACHE_CONF`).

:func:`stopping_on_sigterm` turns the operator's SIGTERM (task timeout, task
stopped) into an exception after interrupting the job's operations, so the
job's ``Staging`` discards what it staged instead of the process dying
mid-write.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import FrameType

from pyspark.sql import SparkSession

from dlflow_airflow.contract.spark_connect import (
    REMOTE_ENV,
    ConnectSession,
    connect_conf_refusal,
    private_session_id,
)

log = logging.getLogger(__name__)
# The server's answer for a session it closed (released, or idle past its timeout).
SESSION_CLOSED = "INVALID_HANDLE.SESSION_CLOSED"
# Off in every job's session. The server caches resolved plans by their protobuf, and a
# job process numbers its plans from 0 as the last job did: a later job of a shared session
# reading the same partition got the earlier job's plan with its file listing, and failed
# on files a rerun had replaced (FAILED_READ_FILE.FILE_NOT_EXIST).
PLAN_CACHE_CONF = "spark.connect.session.planCache.enabled"


class Terminated(SystemExit):
    """SIGTERM from the operator: unwind (discard staging, close the session), then exit."""


def remote_session(
    settings: ConnectSession, defaults: Mapping[str, str] | None = None
) -> SparkSession:
    """The Connect session of ``settings``, tagged, with its artifacts and settings.

    A shared session the server has closed is replaced by a private one.

    :param defaults: settings applied only when the server has not set them itself;
        those a session cannot set (launch and static settings) are skipped: they are
        the server's.
    """
    try:
        return _open(settings, settings.session_id, settings.shared, defaults)
    except Exception as exc:
        if not settings.shared or SESSION_CLOSED not in str(exc):
            raise
        log.warning("the shared Spark Connect session was closed; using a session of its own")
        return _open(settings, private_session_id(), False, defaults)


def _open(
    settings: ConnectSession,
    session_id: str,
    shared: bool,
    defaults: Mapping[str, str] | None,
) -> SparkSession:
    spark = SparkSession.builder.remote(settings.session_url(session_id)).create()
    # Ending the job closes its client; a shared session stays open for the next task.
    spark.release_session_on_close = not shared  # type: ignore[attr-defined]
    try:
        spark.conf.set(PLAN_CACHE_CONF, "false")
        spark.addTag(settings.tag)
        if settings.artifacts:
            spark.addArtifacts(*settings.artifacts, pyfile=True)
        preset = spark.conf.getAll
        for key, value in (defaults or {}).items():
            if key not in preset and connect_conf_refusal(key) is None:
                spark.conf.set(key, value)
        for key, value in settings.conf.items():
            spark.conf.set(key, value)
    except BaseException:
        spark.stop()
        raise
    return spark


def interrupt_tagged(spark: SparkSession, tag: str) -> None:
    """Interrupt the session's running operations tagged ``tag`` (best effort)."""
    try:
        stopped = spark.interruptTag(tag)
        log.warning("interrupted %d Spark operation(s) of this task", len(stopped))
    except Exception as exc:  # the server may be gone; the operator interrupts too
        log.warning("could not interrupt this task's Spark operations: %s", exc)


def interrupt_session(settings: ConnectSession) -> list[str]:
    """Interrupt the operations tagged ``settings.tag`` in its session, from a client of
    its own (the operator's, while the job may hang): the ids of those it stopped."""
    # Here, not at the top: spark-submit mode needs no Connect client (nor grpcio).
    from pyspark.sql.connect.client import SparkConnectClient

    client = SparkConnectClient(settings.session_url())
    client.set_retry_policies([])  # killing a task must not wait for a gone server
    try:
        return list(client.interrupt_tag(settings.tag) or [])
    finally:
        client.close()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m spark_jobs.connect interrupt``: :func:`interrupt_session` for the
    session in the environment (the operator runs it when it kills a task)."""
    parser = argparse.ArgumentParser(description="a Spark Connect session's operations")
    parser.add_argument("action", choices=["interrupt"])
    parser.parse_args(argv)
    settings = ConnectSession.from_environ(os.environ)
    if settings is None:
        print(f"no Spark Connect session in the environment ({REMOTE_ENV})", file=sys.stderr)
        return 2
    stopped = interrupt_session(settings)
    print(f"interrupted {len(stopped)} Spark operation(s) tagged {settings.tag}", flush=True)
    return 0


@contextmanager
def stopping_on_sigterm(before_exit: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Within the block, SIGTERM calls ``before_exit`` then raises :class:`Terminated`
    (exit code 143), so ``with``/``finally`` blocks run."""

    def terminate(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it for good
        before_exit()
        raise Terminated(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
