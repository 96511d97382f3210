from __future__ import annotations

import random

from dlflow_airflow.operators.spark import DlflowSparkSubmitOperator
from dlflow_airflow.pipeline.build import Pipeline
from dlflow_airflow.pipeline.factory import build_dag
from dlflow_airflow.runners.local import DlflowTfJobOperator
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


def test_params_force_and_stages_are_in_the_trigger_form():
    dag = build_dag(Pipeline.from_data(base_pipeline(), source="p.yaml"))
    params = dag.params.dump()
    assert params == {"force": False, "stages": []}
    stages = dag.params.get_param("stages").schema
    assert stages["type"] == "array"
    assert set(stages["examples"]) == {"merge", "encode", "train", "evaluate", "predict"}


def test_skipped_stage_does_not_skip_the_stages_after_it():
    dag = build_dag(Pipeline.from_data(base_pipeline(), source="p.yaml"))
    assert {t.trigger_rule for t in dag.tasks} == {"none_failed"}


def test_each_stage_declares_its_outputs_as_assets():
    dag = build_dag(Pipeline.from_data(base_pipeline(), source="p.yaml"))
    names = {t.task_id: sorted(a.name for a in t.outlets) for t in dag.tasks}
    assert names == {
        "merge": ["dlflow.raw.f1"],
        # The fmap is fitted only when absent: announced through an alias, on write.
        "encode": ["dlflow.encoded.f1", "dlflow.femodel.f1.written"],
        "train": ["dlflow.model.m1"],
        "evaluate": ["dlflow.evaluate.m1"],
        "predict": ["dlflow.predict.m1"],
    }
    (model,) = dag.get_task("train").outlets
    assert model.uri == "file:///tmp/dlflow-test-ws/model/TAG=m1"
