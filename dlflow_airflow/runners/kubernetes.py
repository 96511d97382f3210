"""``runner: kubernetes``: the TF job as a pod, through the cncf-kubernetes provider.

Needs ``pip install 'dlflow-airflow[kubernetes]'``. Imported only when a
pipeline uses this runner. The pod runs the image's ``python -u -m
tf_jobs.<job> --date <the run's date> --job ...``; its result is written to the
provider's XCom file, so the task returns it as XCom like the local runner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import models as k8s

from dlflow_airflow.contract.jobconf import RESULT_FILE_ENV
from dlflow_airflow.operators.bookkeeping import StageBookkeeping
from dlflow_airflow.runners.base import TF_JOBS, TfTask, python_args

if TYPE_CHECKING:
    from dlflow_airflow.contract.options import KubernetesSettings, KubernetesVolume, Resources

# The file the provider's XCom sidecar reads.
XCOM_RESULT_FILE = "/airflow/xcom/return.json"
GPU_RESOURCE = "nvidia.com/gpu"
# The provider's template fields minus every one the runner fills from the pipeline (the job
# document and the ``kubernetes:`` block): they reach the pod as written, never through Jinja.
UNTEMPLATED_FIELDS = (
    "image",
    "arguments",
    "env_vars",
    "labels",
    "namespace",
    "container_resources",
    "volumes",
    "volume_mounts",
    "node_selector",
    "kubernetes_conn_id",
)


class TfPodOperator(KubernetesPodOperator):
    """A ``tf_jobs`` program in a Kubernetes pod (without run bookkeeping).

    The provider handles pod creation, log streaming, XCom, retries and
    ``on_kill`` (deleting the pod). Of the pipeline's values only ``date`` is a
    template; the container's arguments are built at execute time from it.

    :param job: the ``tf_jobs`` program: train or evaluate.
    :param job_body: the job config without the date (see :mod:`dlflow_airflow.contract.jobconf`).
    :param date: the partition date; a template, ``{{ ds }}`` by default.
    :param kwargs: passed to :class:`KubernetesPodOperator` (image, namespace, ...);
        the fields the runner fills from YAML are not templated here.
    """

    template_fields = (
        *(f for f in KubernetesPodOperator.template_fields if f not in UNTEMPLATED_FIELDS),
        "date",
    )
    ui_color = "#fbd38d"

    def __init__(
        self, *, job: str, job_body: dict[str, Any], date: str = "{{ ds }}", **kwargs: Any
    ) -> None:
        if job not in TF_JOBS:
            raise ValueError(f"unknown tf job {job!r}; known: {', '.join(TF_JOBS)}")
        kwargs.setdefault("name", f"dlflow-{job}")
        # Shown as built (the date still a template); execute() rebuilds it with the run's date.
        super().__init__(cmds=["python"], arguments=python_args(job, date, job_body), **kwargs)
        self.job = job
        self.job_body = job_body
        self.date = date

    def execute(self, context: Any) -> Any:
        self.arguments = python_args(self.job, self.date, self.job_body)
        return super().execute(context)


class DlflowTfPodOperator(StageBookkeeping, TfPodOperator):
    """A pod TF stage: :class:`TfPodOperator` with every stage's run bookkeeping."""

    def __init__(self, *, job_body: dict[str, Any], date: str = "{{ ds }}", **kwargs: Any):
        super().__init__(
            job_body=job_body, date=date, stage_body=job_body, stage_date=date, **kwargs
        )


class KubernetesRunner:
    def build_operator(self, task: TfTask) -> DlflowTfPodOperator:
        settings: KubernetesSettings = task.settings
        if settings is None:
            raise ValueError("runner 'kubernetes' needs the stage's 'kubernetes' settings")
        optional: dict[str, Any] = {}
        if settings.service_account:
            optional["service_account_name"] = settings.service_account
        if settings.image_pull_policy:
            optional["image_pull_policy"] = settings.image_pull_policy
        if settings.in_cluster is not None:
            optional["in_cluster"] = settings.in_cluster
        return DlflowTfPodOperator(
            job=task.job,
            job_body=task.job_body,
            date=task.date,
            image=settings.image,
            namespace=settings.namespace,
            kubernetes_conn_id=settings.conn_id,
            env_vars=[
                k8s.V1EnvVar(name=name, value=value)
                for name, value in {**settings.env, RESULT_FILE_ENV: XCOM_RESULT_FILE}.items()
            ],
            container_resources=pod_resources(settings.resources),
            volumes=[pod_volume(volume) for volume in settings.volumes],
            volume_mounts=[
                k8s.V1VolumeMount(name=v.name, mount_path=v.mount_path, read_only=v.read_only)
                for v in settings.volumes
            ],
            node_selector=dict(settings.node_selector),
            labels={**settings.labels, "dlflow-job": task.job},
            startup_timeout_seconds=settings.startup_timeout_seconds,
            get_logs=True,
            do_xcom_push=True,
            on_finish_action="delete_pod",
            **optional,
            **task.task_kwargs,
        )


def pod_resources(resources: Resources) -> k8s.V1ResourceRequirements:
    """Requests and limits; GPUs go to both, as Kubernetes requires for extended resources."""
    requests = dict(resources.requests)
    limits = dict(resources.limits)
    if resources.gpus:
        requests[GPU_RESOURCE] = str(resources.gpus)
        limits[GPU_RESOURCE] = str(resources.gpus)
    return k8s.V1ResourceRequirements(requests=requests or None, limits=limits or None)


def pod_volume(volume: KubernetesVolume) -> k8s.V1Volume:
    if volume.claim_name is not None:
        return k8s.V1Volume(
            name=volume.name,
            persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                claim_name=volume.claim_name, read_only=volume.read_only
            ),
        )
    if volume.host_path is not None:
        return k8s.V1Volume(
            name=volume.name, host_path=k8s.V1HostPathVolumeSource(volume.host_path)
        )
    if volume.config_map is not None:
        return k8s.V1Volume(
            name=volume.name, config_map=k8s.V1ConfigMapVolumeSource(name=volume.config_map)
        )
    return k8s.V1Volume(
        name=volume.name, secret=k8s.V1SecretVolumeSource(secret_name=volume.secret)
    )
