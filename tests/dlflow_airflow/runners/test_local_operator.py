"""TF stage tasks: the runner named in YAML builds the task; providers load only when used."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dlflow_airflow.pipeline.build import Pipeline
from dlflow_airflow.pipeline.factory import build_dag
from dlflow_airflow.runners import RunnerUnavailableError, base, get_runner
from dlflow_airflow.runners.local import DlflowTfJobOperator
from tests.dlflow_airflow.pipelines import base_pipeline


def test_local_train_with_workers_and_tfrecord_input():
    doc = base_pipeline()
    doc["stages"]["encode"] = {"tfrecord": True}
    doc["stages"]["train"] = {"workers": 2, "input": "tfrecord", "warm_start": "latest"}
    pipeline = Pipeline.from_data(doc, source="p.yaml")
    assert "TFRECORD_FEATURE" in pipeline.stages["train"].needs
    train = build_dag(pipeline).get_task("train")
    assert isinstance(train, DlflowTfJobOperator)
    assert train.workers == 2
    assert train.job_body["options"]["warm_start"] == "latest"
    assert train.job_body["options"]["input"] == "tfrecord"


def test_tfrecord_input_without_tfrecords_is_a_graph_error():
    doc = base_pipeline()
    doc["stages"]["train"] = {"input": "tfrecord"}
    with pytest.raises(Exception, match="TFRECORD_FEATURE"):
        Pipeline.from_data(doc, source="p.yaml")


def test_a_local_pipeline_loads_no_container_provider():
    # Airflow's own provider discovery may load provider metadata; the operator
    # modules (and our runner modules that import them) must stay unloaded.
    code = (
        "import sys\n"
        "from dlflow_airflow.pipeline.factory import build_dag\n"
        "from dlflow_airflow.pipeline.build import Pipeline\n"
        "from tests.dlflow_airflow.pipelines import base_pipeline\n"
        "build_dag(Pipeline.from_data(base_pipeline(), source='p.yaml'))\n"
        "print(sorted(m for m in sys.modules if m in ('dlflow_airflow.runners.kubernetes',"
        " 'dlflow_airflow.runners.docker', 'airflow.providers.cncf.kubernetes.operators.pod',"
        " 'airflow.providers.docker.operators.docker')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_missing_provider_names_the_extra(monkeypatch):
    monkeypatch.setitem(
        base._RUNNERS, "kubernetes", ("no_such_provider_pkg.pod", "KubernetesRunner", "kubernetes")
    )
    with pytest.raises(RunnerUnavailableError, match=r"pip install 'dlflow-airflow\[kubernetes\]'"):
        get_runner("kubernetes")


def test_unknown_job_is_refused():
    with pytest.raises(ValueError, match="unknown tf job 'predict'"):
        DlflowTfJobOperator(task_id="p", job="predict", job_body={})
