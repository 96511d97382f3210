"""``runner: docker``: the TF job as a container, through the docker provider.

Needs ``pip install 'dlflow-airflow[docker]'``. Imported only when a pipeline
uses this runner. The container runs ``python -u -m tf_jobs.<job> --date
<the run's date> --job ...``; the job's result line (its last output line)
becomes the task's XCom, as with the local runner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.docker.operators.docker import DockerOperator
from docker.types import DeviceRequest, Mount

from dlflow_airflow.contract.jobconf import parse_result
from dlflow_airflow.operators.bookkeeping import StageBookkeeping
from dlflow_airflow.runners.base import TF_JOBS, TfTask, python_args

if TYPE_CHECKING:
    from dlflow_airflow.contract.options import DockerSettings

# The provider's template fields minus every one the runner fills from the pipeline (the job
# document and the ``docker:`` block): they reach the container as written, never through Jinja.
UNTEMPLATED_FIELDS = ("image", "command", "environment", "mounts")


class TfDockerOperator(DockerOperator):
    """A ``tf_jobs`` program in a Docker container; everything else is the provider's.

    Built by :class:`DockerRunner` from a stage's ``docker:`` block. Of the
    pipeline's values only ``date`` is a template; the command is built at
    execute time from it. Returns the job's result (the ``DLFLOW_RESULT``
    line) as XCom instead of the raw last log line.

    :param job: the ``tf_jobs`` program: train or evaluate.
    :param job_body: the job config without the date (see :mod:`dlflow_airflow.contract.jobconf`).
    :param date: the partition date; a template, ``{{ ds }}`` by default.
    :param kwargs: passed to :class:`DockerOperator` (image, environment, mounts, ...);
        the fields the runner fills from YAML are not templated here.
    """

    template_fields = (
        *(f for f in DockerOperator.template_fields if f not in UNTEMPLATED_FIELDS),
        "date",
    )
    ui_color = "#fbd38d"

    def __init__(
        self, *, job: str, job_body: dict[str, Any], date: str = "{{ ds }}", **kwargs: Any
    ) -> None:
        if job not in TF_JOBS:
            raise ValueError(f"unknown tf job {job!r}; known: {', '.join(TF_JOBS)}")
        # Shown as built (the date still a template); execute() rebuilds it with the run's date.
        super().__init__(command=["python", *python_args(job, date, job_body)], **kwargs)
        self.job = job
        self.job_body = job_body
        self.date = date

    def execute(self, context: Any) -> dict[str, Any] | None:
        self.command = ["python", *python_args(self.job, self.date, self.job_body)]
        output = super().execute(context)
        lines = output if isinstance(output, list) else [output]
        for line in reversed(lines):
            text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
            if isinstance(text, str):
                parsed = parse_result(text.strip())
                if parsed is not None:
                    return parsed
        return None


class DlflowTfDockerOperator(StageBookkeeping, TfDockerOperator):
    """A container TF stage: :class:`TfDockerOperator` with every stage's run bookkeeping."""

    def __init__(self, *, job_body: dict[str, Any], date: str = "{{ ds }}", **kwargs: Any):
        super().__init__(
            job_body=job_body, date=date, stage_body=job_body, stage_date=date, **kwargs
        )


class DockerRunner:
    def build_operator(self, task: TfTask) -> DlflowTfDockerOperator:
        settings: DockerSettings = task.settings
        if settings is None:
            raise ValueError("runner 'docker' needs the stage's 'docker' settings")
        optional: dict[str, Any] = {}
        if settings.cpus is not None:
            optional["cpus"] = settings.cpus
        if settings.mem_limit is not None:
            optional["mem_limit"] = settings.mem_limit
        if settings.docker_url is not None:
            optional["docker_url"] = settings.docker_url
        if settings.network_mode is not None:
            optional["network_mode"] = settings.network_mode
        if settings.gpus:
            optional["device_requests"] = [
                DeviceRequest(count=settings.gpus, capabilities=[["gpu"]])
            ]
        return DlflowTfDockerOperator(
            job=task.job,
            job_body=task.job_body,
            date=task.date,
            image=settings.image,
            environment=dict(settings.env),
            mounts=[
                Mount(target=m.target, source=m.source, type=m.type, read_only=m.read_only)
                for m in settings.mounts
            ],
            auto_remove=settings.auto_remove,
            do_xcom_push=True,
            xcom_all=False,
            **optional,
            **task.task_kwargs,
        )
