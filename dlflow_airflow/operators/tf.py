"""TensorFlow stages: the local operator, and the one function that builds any TF task."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator

from dlflow_airflow.jobconf import job_argv
from dlflow_airflow.rerun import StageRun
from dlflow_airflow.runners import TfTask, get_runner
from dlflow_airflow.runners.local import LocalProcess

TF_JOBS = ("train", "evaluate")


def build_tf_task(
    job: str, job_body: dict[str, Any], options: Any, task_kwargs: dict[str, Any]
) -> BaseOperator:
    """The task for a TF stage, built by the runner its options name.

    :param job: ``train`` or ``evaluate``.
    :param job_body: the ``--job`` document (its ``options`` are the stage's options).
    :param options: the stage's validated options (``runner``, ``workers``, runner block).
    :param task_kwargs: ``BaseOperator`` arguments (task_id, pool, retries...).
    """
    if job not in TF_JOBS:
        raise ValueError(f"unknown tf job {job!r}; known: {', '.join(TF_JOBS)}")
    runner = options.runner
    task = TfTask(
        job=job,
        job_body=job_body,
        settings=getattr(options, runner, None),
        workers=getattr(options, "workers", 1),
        task_kwargs=task_kwargs,
    )
    return get_runner(runner).build_operator(task)


class DlflowTfJobOperator(BaseOperator):
    """Run ``tf_jobs.<job>`` for the run's partition in the worker; its result is the XCom.

    :param job: the ``tf_jobs`` program: train or evaluate.
    :param job_body: the job config without the date (see :mod:`dlflow_airflow.jobconf`).
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
        stage_run = StageRun.begin(self, context, self.job, job_argv(self.date, self.job_body))
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
        stage_run.finish(context)
        return result

    def on_kill(self) -> None:
        if self._active is not None:
            self._active.kill()
