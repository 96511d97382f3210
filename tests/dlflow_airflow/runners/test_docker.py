"""The docker runner builds the provider's real DockerOperator; no Docker engine is needed."""

from __future__ import annotations

import json

import pytest

from dlflow_airflow.pipeline.build import Pipeline
from dlflow_airflow.pipeline.factory import build_dag
from tests.dlflow_airflow.pipelines import base_pipeline

pytest.importorskip("airflow.providers.docker")

from dlflow_airflow.runners.docker import DlflowTfDockerOperator, TfDockerOperator  # noqa: E402


def _evaluate_task(settings: dict) -> DlflowTfDockerOperator:
    doc = base_pipeline()
    doc["stages"]["evaluate"] = {"runner": "docker", "docker": settings}
    task = build_dag(Pipeline.from_data(doc, source="p.yaml")).get_task("evaluate")
    assert isinstance(task, DlflowTfDockerOperator)
    return task


def test_container_carries_image_command_env_mounts_and_gpus():
    task = _evaluate_task(
        {
            "image": "dlflow-tf:1.0",
            "env": {"DLFLOW_WORKSPACE": "/ws"},
            "mounts": [{"source": "/srv/ws", "target": "/ws"}],
            "gpus": 2,
            "cpus": 3,
            "mem_limit": "8g",
            "network_mode": "host",
        }
    )
    assert task.image == "dlflow-tf:1.0"
    assert task.command[:6] == ["python", "-u", "-m", "tf_jobs.evaluate", "--date", "{{ ds }}"]
    assert json.loads(task.command[7])["options"]["runner"] == "docker"
    assert task.environment == {"DLFLOW_WORKSPACE": "/ws"}
    (mount,) = task.mounts
    assert (mount["Source"], mount["Target"], mount["Type"]) == ("/srv/ws", "/ws", "bind")
    (gpus,) = task.device_requests
    assert (gpus["Count"], gpus["Capabilities"]) == (2, [["gpu"]])
    assert (task.cpus, task.mem_limit, task.network_mode) == (3.0, "8g", "host")
    assert task.auto_remove == "success"
    assert task.do_xcom_push is True and task.xcom_all is False


def test_the_command_gets_the_rendered_date_at_execute(monkeypatch):
    task = _evaluate_task({"image": "dlflow-tf:1.0", "env": {"A": "{{ var.value.x }}"}})
    assert not {"command", "environment", "image", "mounts"} & set(task.template_fields)
    task.render_template_fields({"ds": "2026-01-02"})
    assert task.environment == {"A": "{{ var.value.x }}"}
    from airflow.providers.docker.operators.docker import DockerOperator

    seen = {}
    monkeypatch.setattr(
        DockerOperator, "execute", lambda self, context: seen.update(command=self.command)
    )
    TfDockerOperator.execute(task, {})  # the backend alone, without the run bookkeeping
    assert seen["command"][:6] == ["python", "-u", "-m", "tf_jobs.evaluate", "--date", "2026-01-02"]


def test_result_line_becomes_the_xcom(monkeypatch):
    task = _evaluate_task({"image": "dlflow-tf:1.0"})
    from airflow.providers.docker.operators.docker import DockerOperator

    monkeypatch.setattr(
        DockerOperator, "execute", lambda self, context: 'DLFLOW_RESULT {"auc": 0.9}'
    )
    task.stage_date = "2026-01-02"  # rendered by Airflow before execute
    assert task.execute({}) == {"auc": 0.9}
