"""Spark stages: submit one ``spark_jobs`` program through the Spark provider."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

from dlflow_airflow.contract.jobconf import NO_RETRY_EXIT_CODE, job_argv
from dlflow_airflow.contract.schema import DEFAULT_SPARK_LOG_LEVEL, SPARK_LOG_LEVEL_CONF
from dlflow_airflow.operators.bookkeeping import StageBookkeeping
from dlflow_airflow.operators.lineage import openlineage_active

SPARK_JOBS = ("demo_data", "merge", "encode", "predict")


def spark_job_path(job: str) -> str:
    """The file spark-submit runs for ``job`` (resolved where the task runs)."""
    if job not in SPARK_JOBS:
        raise ValueError(f"unknown spark job {job!r}; known: {', '.join(SPARK_JOBS)}")
    spec = importlib.util.find_spec(f"spark_jobs.{job}")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"spark_jobs/{job}.py is not installed on this worker")
    return spec.origin


# How the Spark provider's hook reports the exit code of spark-submit (client and local
# mode: the driver's own) and of a Kubernetes driver pod (cluster mode).
_EXIT_CODES = re.compile(r"Error code is: (\d+)|spark exit code is: (\d+)")


def exited_for_good(exc: BaseException) -> bool:
    """Whether a failed submission is a job's :class:`~dlflow_airflow.contract.jobconf.NoRetryError`
    (its exit code :data:`~dlflow_airflow.contract.jobconf.NO_RETRY_EXIT_CODE`).

    YARN cluster mode does not pass the driver's exit code back: there such a
    failure is retried like any other.
    """
    codes = {int(code) for match in _EXIT_CODES.findall(str(exc)) for code in match if code}
    return NO_RETRY_EXIT_CODE in codes


# The provider's template fields minus those a pipeline fills from YAML: the job document
# (``application_args``) and ``spark.conf`` reach spark-submit as written, never through Jinja.
UNTEMPLATED_FIELDS = ("application_args", "conf")


class SparkJobOperator(SparkSubmitOperator):
    """Run one dlflow Spark job for the run's partition (without run bookkeeping).

    Connection, conf, kill and YARN / Kubernetes tracking are the Spark
    provider's; this class only picks the program and builds its arguments.
    Only ``date`` (and the provider's fields that no YAML fills: ``py_files``,
    ``env_vars``, ``name``...) are templates: the job document and ``conf`` are
    passed verbatim, so ``{{ ... }}`` in a pipeline's ``spark.conf`` or
    ``model.params`` reaches the job as text. The arguments are built at
    execute time from the rendered date.

    :param job: the ``spark_jobs`` program: demo_data, merge, encode or predict.
    :param job_body: the job config without the date (see :mod:`dlflow_airflow.contract.jobconf`).
    :param date: the partition date; a template, ``{{ ds }}`` by default, so
        scheduled, manual and backfill runs each process their own partition.
        The one template the DAG factory sets.
    :param spark_python: the Python the driver and executors run; defaults to
        the worker's own interpreter (right for ``local[*]``). The conf keys
        ``spark.pyspark.python`` / ``spark.pyspark.driver.python`` override it
        per side (e.g. the executors' Python on a cluster).
    :param ship_code: zip ``dlflow_airflow``, ``spark_jobs``, ``tf_jobs`` and
        ``ship_modules`` at execute time (cached by content hash, see
        :mod:`dlflow_airflow.operators.shipping`) and pass the zip with ``--py-files``, so
        executors that do not have the project installed can run the job.
    :param ship_modules: more modules to ship, e.g. a user's model module.
    :param log_level: the driver's Log4j level, passed as Spark's ``spark.log.level``
        (applied as the SparkContext starts, so its start-up INFO lines stay out
        of the task log too); a ``spark.log.level`` in ``conf`` wins.
    :param openlineage_inject_parent_job_info: pass the Airflow task's OpenLineage
        identity to the Spark job (``spark.openlineage.parent*`` conf, through the
        Spark provider), so the Spark job's OpenLineage listener names the task's
        run as its parent. None (default): on when the worker has the OpenLineage
        provider installed and enabled; False: never (True: as the Spark provider
        does). A ``spark.openlineage.parent*`` key in ``conf`` wins.
    :param kwargs: passed to :class:`SparkSubmitOperator` (conn_id, conf, py_files, ...);
        ``conf`` is not templated here.
    """

    template_fields = (
        *(f for f in SparkSubmitOperator.template_fields if f not in UNTEMPLATED_FIELDS),
        "date",
    )

    def __init__(
        self,
        *,
        job: str,
        job_body: dict[str, Any],
        date: str = "{{ ds }}",
        spark_python: str | None = None,
        ship_code: bool = True,
        ship_modules: Sequence[str] = (),
        log_level: str = DEFAULT_SPARK_LOG_LEVEL,
        openlineage_inject_parent_job_info: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if job not in SPARK_JOBS:
            raise ValueError(f"unknown spark job {job!r}; known: {', '.join(SPARK_JOBS)}")
        kwargs.setdefault("name", f"dlflow-{job}")
        if openlineage_inject_parent_job_info is not None:
            kwargs["openlineage_inject_parent_job_info"] = openlineage_inject_parent_job_info
        # Shown as built (the date still a template); execute() rebuilds it with the run's date.
        super().__init__(application_args=job_argv(date, job_body), **kwargs)
        self.job = job
        self.job_body = job_body
        self.date = date
        self.spark_python = spark_python
        self.ship_code = ship_code
        self.ship_modules = tuple(ship_modules)
        self.log_level = log_level
        self.openlineage_parent_job_info = openlineage_inject_parent_job_info

    def shipped_py_files(self) -> str | None:
        """``py_files`` plus the project's code zip (built or reused) when shipping is on."""
        if not self.ship_code:
            return self.py_files
        from dlflow_airflow.operators.shipping import build_code_zip

        code_zip = build_code_zip(self.ship_modules)
        self.log.info("shipping project code to executors: %s", code_zip)
        return ",".join(part for part in (self.py_files, code_zip) if part)

    def execute(self, context: Any) -> None:
        self.application = spark_job_path(self.job)
        self.application_args = job_argv(self.date, self.job_body)
        self.py_files = self.shipped_py_files()
        python = self.spark_python or sys.executable
        self.conf = {
            "spark.pyspark.python": python,
            "spark.pyspark.driver.python": python,
            SPARK_LOG_LEVEL_CONF: self.log_level,
            **(self.conf or {}),
        }
        if self.openlineage_parent_job_info is None and openlineage_active():
            # The Spark provider's own injection (what its flag turns on), on by default here.
            from airflow.providers.common.compat.openlineage.utils.spark import (
                inject_parent_job_information_into_spark_properties,
            )

            self.conf = inject_parent_job_information_into_spark_properties(self.conf, context)
        # spark-submit lives next to the interpreter when pyspark is pip-installed;
        # put it on PATH even when the worker was started without activating the venv.
        bin_dir = os.path.dirname(sys.executable)
        path = os.environ.get("PATH", "")
        self.env_vars = {"PATH": f"{bin_dir}{os.pathsep}{path}", **(self.env_vars or {})}
        try:
            super().execute(context)
        except Exception as exc:
            if not exited_for_good(exc):
                raise
            from airflow.sdk.exceptions import AirflowFailException

            # Deterministic (e.g. drift beyond encode.drift with on_breach: fail): the
            # same inputs fail the same way, so a retry would only repeat it.
            raise AirflowFailException(
                f"dlflow: the {self.job} job failed for good (exit code {NO_RETRY_EXIT_CODE}), "
                f"not retried; its ERROR line says why:\n{exc}"
            ) from exc


class DlflowSparkSubmitOperator(StageBookkeeping, SparkJobOperator):
    """A Spark stage: :class:`SparkJobOperator` with the run bookkeeping of every stage."""

    def __init__(self, *, job_body: dict[str, Any], date: str = "{{ ds }}", **kwargs: Any):
        super().__init__(
            job_body=job_body, date=date, stage_body=job_body, stage_date=date, **kwargs
        )
