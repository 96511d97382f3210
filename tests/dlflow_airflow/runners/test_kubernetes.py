"""The kubernetes runner builds the provider's real pod; no cluster is needed to inspect it."""

from __future__ import annotations

import json

import pytest

from dlflow_airflow.pipeline.build import Pipeline
from dlflow_airflow.pipeline.factory import build_dag
from tests.dlflow_airflow.pipelines import base_pipeline

pytest.importorskip("airflow.providers.cncf.kubernetes")

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator  # noqa: E402

from dlflow_airflow.runners.kubernetes import DlflowTfPodOperator, TfPodOperator  # noqa: E402

SETTINGS = {
    "image": "registry.example/dlflow-tf:1.0",
    "namespace": "ml",
    "service_account": "trainer",
    "image_pull_policy": "IfNotPresent",
    "resources": {
        "requests": {"cpu": "4", "memory": "16Gi"},
        "limits": {"memory": "16Gi"},
        "gpus": 1,
    },
    "env": {"DLFLOW_WORKSPACE": "s3://bucket/ws"},
    "volumes": [
        {"name": "data", "mount_path": "/data", "claim_name": "dlflow-data"},
        {"name": "conf", "mount_path": "/etc/dlflow", "config_map": "dlflow", "read_only": True},
    ],
    "node_selector": {"accelerator": "nvidia-l4"},
    "labels": {"team": "ranking"},
}


def _train_task(settings: dict | None = None, **train: object) -> DlflowTfPodOperator:
    doc = base_pipeline()
    doc["stages"]["train"] = {"runner": "kubernetes", "kubernetes": settings or SETTINGS, **train}
    task = build_dag(Pipeline.from_data(doc, source="p.yaml")).get_task("train")
    assert isinstance(task, DlflowTfPodOperator)
    return task


def test_pod_carries_image_command_resources_env_and_volumes():
    task = _train_task(retries=2)
    pod = task.build_pod_request_obj(dry_run=True)
    assert pod.metadata.namespace == "ml"
    assert pod.metadata.labels["team"] == "ranking"
    assert pod.metadata.labels["dlflow-job"] == "train"
    assert pod.spec.service_account_name == "trainer"
    assert pod.spec.node_selector == {"accelerator": "nvidia-l4"}
    container = pod.spec.containers[0]
    assert container.image == "registry.example/dlflow-tf:1.0"
    assert container.image_pull_policy == "IfNotPresent"
    assert container.command == ["python"]
    assert container.args[:5] == ["-u", "-m", "tf_jobs.train", "--date", "{{ ds }}"]
    assert json.loads(container.args[6])["model"]["tag"] == "m1"
    assert container.resources.requests == {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}
    assert container.resources.limits == {"memory": "16Gi", "nvidia.com/gpu": "1"}
    env = {e.name: e.value for e in container.env}
    assert env["DLFLOW_WORKSPACE"] == "s3://bucket/ws"
    assert env["DLFLOW_RESULT_FILE"] == "/airflow/xcom/return.json"
    mounts = {m.name: (m.mount_path, m.read_only) for m in container.volume_mounts}
    assert mounts["data"] == ("/data", False)
    assert mounts["conf"] == ("/etc/dlflow", True)
    volumes = {v.name: v for v in pod.spec.volumes}
    assert volumes["data"].persistent_volume_claim.claim_name == "dlflow-data"
    assert volumes["conf"].config_map.name == "dlflow"
    # The provider's XCom sidecar returns the job's result.
    assert task.do_xcom_push is True
    assert task.retries == 2


def test_no_gpu_no_gpu_resource():
    settings = {"image": "img:1", "resources": {"requests": {"cpu": "1"}}}
    pod = _train_task(settings).build_pod_request_obj(dry_run=True)
    resources = pod.spec.containers[0].resources
    assert resources.requests == {"cpu": "1"}
    assert not resources.limits


def test_only_the_run_date_is_templated_and_the_pod_gets_it_at_execute(monkeypatch):
    fields = DlflowTfPodOperator.template_fields
    assert {"date", "stage_date"} <= set(fields)
    assert not {"arguments", "env_vars", "image", "labels"} & set(fields)

    task = _train_task()
    task.render_template_fields({"ds": "2026-01-02"})
    assert task.arguments[4] == "{{ ds }}"  # as built; the job document is no template
    seen = {}
    monkeypatch.setattr(
        KubernetesPodOperator, "execute", lambda self, context: seen.update(args=self.arguments)
    )
    TfPodOperator.execute(task, {})
    assert seen["args"][:5] == ["-u", "-m", "tf_jobs.train", "--date", "2026-01-02"]
    assert json.loads(seen["args"][6]) == task.job_body
