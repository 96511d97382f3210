"""``runner: kubernetes``: the TF job as a pod, through the cncf-kubernetes provider.

Needs ``pip install 'dlflow-airflow[kubernetes]'``. Imported only when a
pipeline uses this runner. The pod runs the image's ``python -u -m
tf_jobs.<job> --date {{ ds }} --job ...``; its result is written to the
provider's XCom file, so the task returns it as XCom like the local runner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import models as k8s

from dlflow_airflow.contract.jobconf import RESULT_FILE_ENV
from dlflow_airflow.operators.bookkeeping import StageBookkeeping
from dlflow_airflow.runners.base import TfTask

if TYPE_CHECKING:
    from dlflow_airflow.contract.options import KubernetesSettings, KubernetesVolume, Resources

# The file the provider's XCom sidecar reads.
XCOM_RESULT_FILE = "/airflow/xcom/return.json"
GPU_RESOURCE = "nvidia.com/gpu"


class DlflowTfPodOperator(StageBookkeeping, KubernetesPodOperator):
    """A ``tf_jobs`` program in a Kubernetes pod; everything else is the provider's.

    Built by :class:`KubernetesRunner` from a stage's ``kubernetes:`` block;
    the provider handles pod creation, log streaming, XCom, retries and
    ``on_kill`` (deleting the pod); the run bookkeeping is every stage's.
    """

    ui_color = "#fbd38d"


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
            name=f"dlflow-{task.job}",
            image=settings.image,
            namespace=settings.namespace,
            kubernetes_conn_id=settings.conn_id,
            cmds=["python"],
            arguments=task.python_args(),
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
            stage_body=task.job_body,
            stage_date=task.date,
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
