from __future__ import annotations

import random

from dlflow_airflow.factory import build_dag
from dlflow_airflow.operators.spark import DlflowSparkSubmitOperator
from dlflow_airflow.operators.tf import DlflowTfJobOperator
from dlflow_airflow.pipeline import Pipeline
from tests.dlflow_airflow.pipelines import base_pipeline


def _shape(dag):
    return {t.task_id: (type(t).__name__, sorted(t.upstream_task_ids)) for t in dag.tasks}


def test_shuffled_stages_give_the_same_dag():
    doc = base_pipeline()
    shapes = []
    for seed in range(5):
        names = list(doc["stages"])
        random.Random(seed).shuffle(names)
        shuffled = {**doc, "stages": {n: doc["stages"][n] for n in names}}
        shapes.append(_shape(build_dag(Pipeline.from_data(shuffled, source="p.yaml"))))
    assert all(shape == shapes[0] for shape in shapes)
    assert shapes[0]["predict"] == ("DlflowSparkSubmitOperator", ["encode", "train"])


def test_tasks_render_the_run_date_and_carry_the_spec():
    doc = base_pipeline()
    doc["spark"] = {"conn_id": "spark_yarn", "conf": {"spark.executor.memory": "4g"}}
    doc["default_args"] = {"retries": 3}
    dag = build_dag(Pipeline.from_data(doc, source="p.yaml"))
    encode = dag.get_task("encode")
    assert isinstance(encode, DlflowSparkSubmitOperator)
    assert encode.application_args[:2] == ["--date", "{{ ds }}"]
    assert '"tag": "f1"' in encode.application_args[3]
    assert encode.conf == {"spark.executor.memory": "4g"}
    assert encode._conn_id == "spark_yarn"
    assert encode.retries == 3
    train = dag.get_task("train")
    assert isinstance(train, DlflowTfJobOperator)
    assert train.date == "{{ ds }}"
    assert dag.schedule == "@daily" or str(dag.timetable.summary) == "@daily"
    assert "dlflow" in dag.tags


def test_stage_pool_and_retries_override():
    doc = base_pipeline()
    doc["stages"]["train"] = {"pool": "gpu", "retries": 5}
    dag = build_dag(Pipeline.from_data(doc, source="p.yaml"))
    assert dag.get_task("train").pool == "gpu"
    assert dag.get_task("train").retries == 5
