"""TensorFlow stages: run one ``tf_jobs`` program through a runner."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

from dlflow_airflow.jobconf import job_argv
from dlflow_airflow.runners import JobRunner, get_runner

TF_JOBS = ("train", "evaluate")


class DlflowTfJobOperator(BaseOperator):
    """Run ``tf_jobs.<job>`` for the run's partition and return its result as XCom.

    :param job: the ``tf_jobs`` program: train or evaluate.
    :param job_body: the job config without the date (see :mod:`dlflow_airflow.jobconf`).
    :param date: the partition date; a template, ``{{ ds }}`` by default.
    :param runner: where the job runs: ``local`` (a subprocess of the worker).
    :param env: extra environment variables for the job.
    """

    template_fields = ("date", "env")
    ui_color = "#fbd38d"

    def __init__(
        self,
        *,
        job: str,
        job_body: dict[str, Any],
        date: str = "{{ ds }}",
        runner: str = "local",
        env: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if job not in TF_JOBS:
            raise ValueError(f"unknown tf job {job!r}; known: {', '.join(TF_JOBS)}")
        self.job = job
        self.job_body = job_body
        self.date = date
        self.runner = runner
        self.env = env or {}
        self._active: JobRunner | None = None

    def execute(self, context: Any) -> dict[str, Any] | None:
        self._active = get_runner(self.runner)
        try:
            return self._active.run(
                f"tf_jobs.{self.job}",
                job_argv(self.date, self.job_body),
                env=self.env,
                log=self.log,
            )
        finally:
            self._active = None

    def on_kill(self) -> None:
        if self._active is not None:
            self._active.kill()
