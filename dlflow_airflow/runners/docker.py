"""``runner: docker``: the TF job as a container, through the docker provider.

Needs ``pip install 'dlflow-airflow[docker]'``. Imported only when a pipeline
uses this runner. The container runs ``python -u -m tf_jobs.<job> --date
{{ ds }} --job ...``; the job's result line (its last output line) becomes
the task's XCom, as with the local runner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.docker.operators.docker import DockerOperator
from docker.types import DeviceRequest, Mount

from dlflow_airflow.contract.jobconf import parse_result
from dlflow_airflow.operators.bookkeeping import StageBookkeeping
from dlflow_airflow.runners.base import TfTask

if TYPE_CHECKING:
    from dlflow_airflow.contract.options import DockerSettings


class TfDockerOperator(DockerOperator):
    """A ``tf_jobs`` program in a Docker container; everything else is the provider's.

    Built by :class:`DockerRunner` from a stage's ``docker:`` block. Returns
    the job's result (the ``DLFLOW_RESULT`` line) as XCom instead of the raw
    last log line.
    """

    ui_color = "#fbd38d"

    def execute(self, context: Any) -> dict[str, Any] | None:
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
            image=settings.image,
            command=["python", *task.python_args()],
            environment=dict(settings.env),
            mounts=[
                Mount(target=m.target, source=m.source, type=m.type, read_only=m.read_only)
                for m in settings.mounts
            ],
            auto_remove=settings.auto_remove,
            do_xcom_push=True,
            xcom_all=False,
            stage_body=task.job_body,
            stage_date=task.date,
            **optional,
            **task.task_kwargs,
        )
