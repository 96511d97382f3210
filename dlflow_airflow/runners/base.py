"""The runner protocol and the one lookup that chooses a backend.

A *runner* decides where a ``tf_jobs`` program runs and builds the Airflow
task that runs it there:

- ``local``: :class:`~dlflow_airflow.runners.local.DlflowTfJobOperator`, a
  subprocess of the worker (``workers: N`` starts N of them).
- ``kubernetes``: a ``KubernetesPodOperator`` subclass (extra ``[kubernetes]``).
- ``docker``: a ``DockerOperator`` subclass (extra ``[docker]``).

Each backend module is imported only when a pipeline uses it, so a local
pipeline never loads the Kubernetes or Docker providers at DAG parse time.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from dlflow_airflow.contract.jobconf import job_argv

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

# name -> (module, class, pip extra that provides it)
_RUNNERS: dict[str, tuple[str, str, str | None]] = {
    "local": ("dlflow_airflow.runners.local", "LocalRunner", None),
    "kubernetes": ("dlflow_airflow.runners.kubernetes", "KubernetesRunner", "kubernetes"),
    "docker": ("dlflow_airflow.runners.docker", "DockerRunner", "docker"),
}

TF_JOBS = ("train", "evaluate")


class JobFailedError(RuntimeError):
    """The job exited with an error; the message carries the tail of its output.

    :param exit_code: the failed process's exit code, when it exited by itself.
    """

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class RunnerUnavailableError(ImportError):
    """The runner's provider package is not installed."""


@dataclass(frozen=True)
class TfTask:
    """One TF stage's task, before a runner turns it into an operator.

    :param job: the ``tf_jobs`` program: ``train`` or ``evaluate``.
    :param job_body: the job config without the date (see :mod:`dlflow_airflow.contract.jobconf`).
    :param settings: the stage's runner block (``kubernetes:`` / ``docker:``), if any.
    :param workers: local training processes (``train`` only).
    :param task_kwargs: ``BaseOperator`` arguments (task_id, pool, retries...).
    :param date: the partition date template.
    """

    job: str
    job_body: dict[str, Any]
    settings: Any = None
    workers: int = 1
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    date: str = "{{ ds }}"

    @property
    def module(self) -> str:
        return f"tf_jobs.{self.job}"

    def python_args(self) -> list[str]:
        """The arguments after ``python``, the date still a template (see :func:`python_args`)."""
        return python_args(self.job, self.date, self.job_body)


def python_args(job: str, date: str, job_body: dict[str, Any]) -> list[str]:
    """The arguments after ``python``: ``-u -m tf_jobs.<job> --date ... --job ...``.

    Container operators call it again at execute time with the rendered date:
    the job document is never a template.
    """
    return ["-u", "-m", f"tf_jobs.{job}", *job_argv(date, job_body)]


class Runner(Protocol):
    """Builds the Airflow task that runs a TF job on one backend."""

    def build_operator(self, task: TfTask) -> BaseOperator: ...


def runner_names() -> list[str]:
    return sorted(_RUNNERS)


def get_runner(name: str) -> Runner:
    """The runner called ``name``.

    :raises ValueError: an unknown name (the message lists the known ones).
    :raises RunnerUnavailableError: its provider is not installed (names the pip extra).
    """
    if name not in _RUNNERS:
        raise ValueError(f"unknown runner {name!r}; known runners: {', '.join(runner_names())}")
    module_name, class_name, extra = _RUNNERS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RunnerUnavailableError(
            f"runner {name!r} needs the {exc.name or 'provider'} package: "
            f"pip install 'dlflow-airflow[{extra}]'"
        ) from exc
    return getattr(module, class_name)()
