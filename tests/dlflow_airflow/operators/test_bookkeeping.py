"""Every operator the factory can build carries the run bookkeeping, whatever its backend.

The factory's DAGs are built for every backend (spark-submit, local TF,
Kubernetes pod, Docker container, the upstream sensor, a user kind); each
task class must reach ``StageBookkeeping.execute`` first. Then each one is
run the way Airflow runs it (``task.execute(context)``) with the backend's
own execute stubbed at its boundary (no pod, container or spark-submit
here): it skips when not selected, runs and records its fingerprint, skips
an unchanged rerun, and recomputes under ``force``.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from dlflow_airflow.contract.artifacts import stage_io
from dlflow_airflow.operators.bookkeeping import StageBookkeeping
from dlflow_airflow.operators.fingerprints import FINGERPRINT_FILE, stored_fingerprint
from dlflow_airflow.pipeline.build import Pipeline
from dlflow_airflow.pipeline.factory import build_dag
from tests.dlflow_airflow.operators.test_fingerprints import make_partition
from tests.dlflow_airflow.pipelines import base_pipeline

DATE = "2026-01-02"
RUNNER_BLOCKS = {
    "local": {},
    "kubernetes": {"kubernetes": {"image": "dlflow-tf:1"}},
    "docker": {"docker": {"image": "dlflow-tf:1"}},
}


def _dag(tmp_path: Path, runner: str):
    doc = base_pipeline()
    doc["workspace"] = str(tmp_path)
    doc["stages"]["train"] = {"runner": runner, **RUNNER_BLOCKS[runner]}
    doc["stages"]["wait"] = {
        "kind": "wait_upstream",
        "dependencies": {"seed": {"path": "{workspace}/seed/dt={date}"}},
    }
    doc["stages"]["export"] = {"kind": "tests.dlflow_airflow.user_stages:Export", "target": "x"}
    return build_dag(Pipeline.from_data(doc, source="p.yaml"))


def _all_tasks(tmp_path: Path) -> dict[str, Any]:
    """One task per operator class the factory builds, keyed by a readable name."""
    found: dict[str, Any] = {}
    for runner in RUNNER_BLOCKS:
        for task in _dag(tmp_path, runner).tasks:
            found.setdefault(type(task).__name__, task)
    return found


def test_every_operator_class_the_factory_builds_runs_the_bookkeeping(tmp_path: Path):
    tasks = _all_tasks(tmp_path)
    assert set(tasks) >= {
        "DlflowSparkSubmitOperator",
        "DlflowTfJobOperator",
        "DlflowTfPodOperator",
        "DlflowTfDockerOperator",
        "UpstreamPartitionSensor",
        "EmptyOperator",  # the user kind's operator, given the mixin by the factory
    }
    for name, task in tasks.items():
        assert isinstance(task, StageBookkeeping), name
        assert type(task).execute is StageBookkeeping.execute, name
        assert "stage_date" in type(task).template_fields, name
        assert task.stage_body["stage"]["name"] == task.task_id, name


def _context(task: Any, **params: Any) -> dict[str, Any]:
    return {
        "params": {"force": False, "stages": [], **params},
        "dag_run": SimpleNamespace(run_id="manual__1"),
        "task": task,
        "outlet_events": None,
    }


def _train_inputs(ws: Path) -> None:
    from dlflow_airflow.contract.layout import Layout

    layout = Layout(str(ws))
    make_partition(layout.encoded("f1", DATE), {"part-0.parquet": "rows"})
    make_partition(layout.femodel("f1", DATE), {"fmap.json": "{}"})


def _stub_backend(monkeypatch, task: Any, calls: list[str]) -> None:
    """Replace the backend's own execute (the provider's, or the job launch) by a fake job."""
    body = task.stage_body

    def fake_job(*args: Any, **kwargs: Any) -> dict:
        from dlflow_airflow.contract.jobconf import JobConfig

        calls.append(task.task_id)
        for out in stage_io(JobConfig.from_body(DATE, body)).writes:
            make_partition(out.uri, {"part-0": "output"})
        return {"ok": True}

    name = type(task).__name__
    if name == "DlflowTfPodOperator":
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

        monkeypatch.setattr(KubernetesPodOperator, "execute", fake_job)
    elif name == "DlflowTfDockerOperator":
        from airflow.providers.docker.operators.docker import DockerOperator

        monkeypatch.setattr(DockerOperator, "execute", fake_job)
    elif name == "DlflowTfJobOperator":
        from dlflow_airflow.runners.process import LocalProcess

        monkeypatch.setattr(LocalProcess, "run", fake_job)
    elif name == "DlflowSparkSubmitOperator":
        from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

        monkeypatch.setattr(SparkSubmitOperator, "execute", fake_job)
    else:
        raise AssertionError(f"no stub for {name}")


@pytest.mark.parametrize("runner", sorted(RUNNER_BLOCKS))
def test_train_skips_runs_records_and_forces_on_every_runner(tmp_path, monkeypatch, runner):
    task = _dag(tmp_path, runner).get_task("train")
    task.stage_date = DATE  # what Airflow's template rendering does
    _train_inputs(tmp_path)
    calls: list[str] = []
    _stub_backend(monkeypatch, task, calls)

    with pytest.raises(AirflowSkipException, match="not in params.stages"):
        task.execute(_context(task, stages=["merge"]))
    assert calls == []

    task.execute(_context(task))
    model = Path(str(tmp_path), "model/TAG=m1", f"dt={DATE}")
    recorded = stored_fingerprint(f"file://{model}")
    assert calls == ["train"] and recorded and recorded["date"] == DATE
    assert (model / FINGERPRINT_FILE).is_file()

    with pytest.raises(AirflowSkipException, match="unchanged"):
        task.execute(_context(task))
    assert calls == ["train"]

    task.execute(_context(task, force=True))
    assert calls == ["train", "train"]


def test_spark_operator_skips_runs_records_and_forces(tmp_path, monkeypatch):
    task = _dag(tmp_path, "local").get_task("predict")
    task.stage_date = DATE
    monkeypatch.setattr(type(task), "shipped_py_files", lambda self: None)
    _train_inputs(tmp_path)
    make_partition(f"file://{tmp_path}/model/TAG=m1/dt={DATE}", {"model.keras": "w"})
    calls: list[str] = []
    _stub_backend(monkeypatch, task, calls)
    with pytest.raises(AirflowSkipException):
        task.execute(_context(task, stages=["train"]))
    task.execute(_context(task))
    assert stored_fingerprint(f"file://{tmp_path}/predict/TAG=m1/dt={DATE}")
    with pytest.raises(AirflowSkipException, match="unchanged"):
        task.execute(_context(task))
    task.execute(_context(task, force=True))
    assert calls == ["predict", "predict"]


def test_sensor_and_user_kind_honour_params_stages_and_always_run(tmp_path, monkeypatch):
    dag = _dag(tmp_path, "local")
    sensor, export = dag.get_task("wait"), dag.get_task("export")
    for task in (sensor, export):
        task.stage_date = DATE
        with pytest.raises(AirflowSkipException, match="not in params.stages"):
            task.execute(_context(task, stages=["merge"]))
    # Nothing the contract can list: they run every time (no fingerprint to trust).
    make_partition(f"file://{tmp_path}/seed/dt={DATE}", {"part-0": "x"})
    sensor.mode, sensor.date = "poke", DATE
    assert sensor.execute(_context(sensor)) is not None
    export.execute(_context(export))
    export.execute(_context(export))


def test_an_unknown_params_stage_fails_clearly(tmp_path: Path):
    task = _dag(tmp_path, "local").get_task("merge")
    with pytest.raises(ValueError, match=r"params.stages names no stage \['predcit'\]"):
        task.execute(_context(task, stages=["predcit"]))


def test_a_deferred_pod_records_its_fingerprint_when_it_resumes(tmp_path, monkeypatch):
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    task = _dag(tmp_path, "kubernetes").get_task("train")
    task.stage_date = DATE
    _train_inputs(tmp_path)
    calls: list[str] = []
    _stub_backend(monkeypatch, task, calls)
    fake_job = KubernetesPodOperator.execute
    monkeypatch.setattr(KubernetesPodOperator, "trigger_reentry", fake_job)
    task.resume_execution("trigger_reentry", {}, _context(task))
    assert calls == ["train"]
    assert stored_fingerprint(f"file://{tmp_path}/model/TAG=m1/dt={DATE}")


def test_without_a_model_to_resolve_the_job_decides(tmp_path, monkeypatch):
    # The worker finds no blessed model for latest: no bookkeeping, the job reports why.
    doc = base_pipeline()
    doc["workspace"], doc["model"]["date"] = str(tmp_path), "latest"
    doc["external"] = ["TRAINED_MODEL"]
    doc["stages"] = {"merge": doc["stages"]["merge"], "encode": {}, "predict": {}}
    task = build_dag(Pipeline.from_data(doc, source="p.yaml")).get_task("predict")
    task.stage_date = DATE
    calls: list[str] = []
    monkeypatch.setattr(type(task), "shipped_py_files", lambda self: None)
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    monkeypatch.setattr(SparkSubmitOperator, "execute", lambda self, ctx: calls.append("job"))
    task.execute(_context(task))
    assert calls == ["job"]


def test_a_mapped_user_operator_is_left_alone(caplog):
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    from dlflow_airflow.operators.bookkeeping import bind_stage

    with DAG("mapped", schedule=None):
        mapped = EmptyOperator.partial(task_id="m").expand(doc_md=["a", "b"])
    assert bind_stage(mapped, {"stage": {}}) is mapped
    assert not isinstance(mapped, StageBookkeeping)


def test_old_import_paths_still_work_with_a_deprecation_warning():
    import importlib
    import sys

    for old, new in [("loader", "pipeline.loader"), ("registry", "stages.base")]:
        sys.modules.pop(f"dlflow_airflow.{old}", None)
        with pytest.warns(DeprecationWarning, match=f"moved to dlflow_airflow.{new}"):
            module = importlib.import_module(f"dlflow_airflow.{old}")
        assert module is importlib.import_module(f"dlflow_airflow.{new}")
    from dlflow_airflow.triggers import UpstreamPartitionTrigger

    assert UpstreamPartitionTrigger.__module__ == "dlflow_airflow.triggers.upstream"
