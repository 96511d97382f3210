"""The one place a Spark job builds its session and runs its ``run`` function.

Every job module ends with::

    def main(argv=None):
        run_job("merge", run, argv)

so argument parsing (into the job's own typed options), session defaults,
the result line and session shutdown work the same in all of them. A
:class:`~dlflow_airflow.contract.jobconf.NoRetryError` (a drift gate breached
with ``on_breach: fail``) prints ``ERROR <type>: <message>`` and exits with
:data:`~dlflow_airflow.contract.jobconf.NO_RETRY_EXIT_CODE`, which the Spark
operator turns into a task failure Airflow does not retry.

In Spark Connect mode (the operator put a
:class:`~dlflow_airflow.contract.spark_connect.ConnectSession` in the
environment) the job is a Connect client of a long-lived server instead of a
spark-submit driver (:mod:`spark_jobs.connect`); the rest is the same.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pyspark import SparkConf, SparkContext
from pyspark.sql import SparkSession

from dlflow_airflow.contract.jobconf import (
    NO_RETRY_EXIT_CODE,
    JobConfig,
    NoRetryError,
    emit_result,
)
from dlflow_airflow.contract.schema import DEFAULT_SPARK_LOG_LEVEL, SPARK_LOG_LEVEL_CONF
from dlflow_airflow.contract.spark_connect import ConnectSession
from spark_jobs.connect import interrupt_tagged, remote_session, stopping_on_sigterm
from spark_jobs.read_errors import naming_bad_files

# Defaults only: a key already set (spark-submit --conf, spark-defaults.conf)
# wins, so operators and cluster admins keep control.
DEFAULT_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.parquet.compression.codec": "snappy",
    "spark.sql.adaptive.enabled": "true",
    # Python workers stay alive between tasks, so predict loads its model once.
    "spark.python.worker.reuse": "true",
    # Quiet task logs; the operator passes the pipeline's spark.log_level.
    SPARK_LOG_LEVEL_CONF: DEFAULT_SPARK_LOG_LEVEL,
}

JobRun = Callable[[SparkSession, JobConfig], dict[str, Any]]


def build_session(app_name: str, conf: Mapping[str, str] | None = None) -> SparkSession:
    """A session named ``app_name`` with :data:`DEFAULT_CONF` under any preset conf.

    :param app_name: the Spark application name (shown in the Spark and YARN UIs).
    :param conf: settings that override both the defaults and the preset conf.

    In connect mode the session is the server's (:func:`spark_jobs.connect.remote_session`):
    no JVM starts here, ``app_name`` and ``conf`` do not apply.
    """
    connect = ConnectSession.from_environ(os.environ)
    if connect is not None:
        return remote_session(connect, DEFAULT_CONF)
    # Join spark-submit's JVM (or start one with ``conf``'s launch settings) first:
    # before that, SparkConf() is an empty dict blind to --conf and spark-defaults.conf.
    SparkContext._ensure_initialized(conf=SparkConf(loadDefaults=False).setAll(_str(conf)))
    preset = SparkConf()
    builder = SparkSession.builder.appName(app_name)
    for key, value in DEFAULT_CONF.items():
        if not preset.contains(key):
            builder = builder.config(key, value)
    for key, value in _str(conf):
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _str(conf: Mapping[str, str] | None) -> list[tuple[str, str]]:
    return [(key, str(value)) for key, value in (conf or {}).items()]


def app_name(job: JobConfig) -> str:
    return f"dlflow-{job.stage.name}-{job.feature.tag}-{job.date}"


def run_job(name: str, run: JobRun, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parse the job arguments, run ``run`` in a fresh session, print its result line.

    :param name: the built-in job (``encode``...): it names the options model
        the document is parsed into, and the stage when the document has none.
    """
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)  # its INFO is connection chatter
    job = JobConfig.from_argv(argv, job=name)
    connect = ConnectSession.from_environ(os.environ)
    spark: SparkSession | None = None

    def interrupt() -> None:
        if spark is not None and connect is not None:
            interrupt_tagged(spark, connect.tag)

    # A killed connect task stops its Spark operations and unwinds (staging discarded,
    # client closed); in spark-submit mode the JVM that started this driver handles signals.
    with stopping_on_sigterm(interrupt) if connect else contextlib.nullcontext():
        spark = build_session(app_name(job))
        try:
            with naming_bad_files({}):  # jobs name their inputs; this names any other file
                result = run(spark, job)
            emit_result(result)
        except NoRetryError as exc:
            print(f"ERROR {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            sys.exit(NO_RETRY_EXIT_CODE)
        finally:
            spark.stop()
    return result
