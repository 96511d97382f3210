"""``runner: local``: the TF job as subprocesses of the Airflow worker."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

from dlflow_airflow.contract.jobconf import job_argv
from dlflow_airflow.operators.bookkeeping import StageBookkeeping
from dlflow_airflow.runners.base import TF_JOBS, TfTask
from dlflow_airflow.runners.process import LocalProcess


class LocalRunner:
    """``runner: local``: the task is a :class:`DlflowTfJobOperator`."""

    def build_operator(self, task: TfTask) -> BaseOperator:
        return DlflowTfJobOperator(
            job=task.job,
            job_body=task.job_body,
            date=task.date,
            workers=task.workers,
            **task.task_kwargs,
        )


class TfJobOperator(BaseOperator):
    """Run ``tf_jobs.<job>`` for the run's partition in the worker; its result is the XCom.

    ``date`` and ``env`` are the templates (no pipeline sets ``env``); the job
    document is passed verbatim, its arguments built at execute time.

    :param job: the ``tf_jobs`` program: train or evaluate.
    :param job_body: the job config without the date (see :mod:`dlflow_airflow.contract.jobconf`).
    :param date: the partition date; a template, ``{{ ds }}`` by default.
    :param workers: processes to start; more than 1 trains with
        ``MultiWorkerMirroredStrategy`` over a local ``TF_CONFIG`` cluster.
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
        workers: int = 1,
        env: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if job not in TF_JOBS:
            raise ValueError(f"unknown tf job {job!r}; known: {', '.join(TF_JOBS)}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.job = job
        self.job_body = job_body
        self.date = date
        self.workers = workers
        self.env = env or {}
        self._active: LocalProcess | None = None

    def execute(self, context: Any) -> dict[str, Any] | None:
        self._active = LocalProcess()
        try:
            result = self._active.run(
                f"tf_jobs.{self.job}",
                job_argv(self.date, self.job_body),
                env=self.env,
                log=self.log,
                workers=self.workers,
            )
        finally:
            self._active = None
        return result

    def on_kill(self) -> None:
        if self._active is not None:
            self._active.kill()


class DlflowTfJobOperator(StageBookkeeping, TfJobOperator):
    """A local TF stage: :class:`TfJobOperator` with the run bookkeeping of every stage."""

    def __init__(self, *, job_body: dict[str, Any], date: str = "{{ ds }}", **kwargs: Any):
        super().__init__(
            job_body=job_body, date=date, stage_body=job_body, stage_date=date, **kwargs
        )
