from __future__ import annotations

import random
from datetime import datetime

import pytest

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


def _trainer_and_scorer(schedule: dict) -> tuple:
    """Two pipelines in one workspace: one trains m1, the other scores on ``schedule``."""
    trainer = base_pipeline()
    trainer["dag_id"] = "trainer"
    scorer = base_pipeline()
    scorer.update(dag_id="scorer", schedule=schedule, stages={"predict": {}})
    scorer["external"] = ["ENCODED_FEATURE", "FMAP", "TRAINED_MODEL"]
    return tuple(
        build_dag(Pipeline.from_data(doc, source=f"{doc['dag_id']}.yaml"))
        for doc in (trainer, scorer)
    )


def test_a_pipeline_scheduled_on_assets_waits_for_the_producers_outlets():
    from airflow.sdk import AssetAll
    from airflow.sdk.definitions.timetables.assets import AssetTriggeredTimetable
    from airflow.serialization.serialized_objects import DagSerialization

    trainer, scorer = _trainer_and_scorer({"assets": ["TRAINED_MODEL", "EVALUATE_RESULT"]})
    assert isinstance(scorer.timetable, AssetTriggeredTimetable)
    condition = scorer.timetable.asset_condition
    assert isinstance(condition, AssetAll)
    # The very Assets (name and URI) the trainer's tasks emit events for.
    assert list(condition.objects) == [
        *trainer.get_task("train").outlets,
        *trainer.get_task("evaluate").outlets,
    ]
    # As the scheduler reads it back.
    served = DagSerialization.from_dict(DagSerialization.to_dict(scorer)).timetable
    assert type(served).__name__ == "AssetTriggeredTimetable"
    assert [a.name for a in served.asset_condition.objects] == [
        "dlflow.model.m1",
        "dlflow.evaluate.m1",
    ]


def test_any_of_the_assets_and_a_clock_beside_them():
    from airflow.sdk import AssetAny, AssetOrTimeSchedule, CronTriggerTimetable

    schedule = {
        "assets": ["TRAINED_MODEL", {"artifact": "PREDICT_RESULT", "tag": "other_model"}],
        "when": "any",
        "cron": "@daily",
    }
    _, scorer = _trainer_and_scorer(schedule)
    timetable = scorer.timetable
    assert isinstance(timetable, AssetOrTimeSchedule)
    assert isinstance(timetable.timetable, CronTriggerTimetable)
    assert (timetable.timetable.expression, str(timetable.timetable.timezone)) == (
        "0 0 * * *",
        "UTC",
    )
    assert isinstance(timetable.asset_condition, AssetAny)
    assert [(a.name, a.uri) for a in timetable.asset_condition.objects] == [
        ("dlflow.model.m1", "file:///tmp/dlflow-test-ws/model/TAG=m1"),
        ("dlflow.predict.other_model", "file:///tmp/dlflow-test-ws/predict/TAG=other_model"),
    ]


@pytest.mark.parametrize("intervals", ["False", "True"])
def test_the_clock_beside_assets_dates_runs_as_the_cron_alone_would(monkeypatch, intervals):
    from airflow.sdk import DAG

    from dlflow_airflow.pipeline.factory import cron_timetable

    monkeypatch.setenv("AIRFLOW__SCHEDULER__CREATE_CRON_DATA_INTERVALS", intervals)
    alone = DAG(dag_id="cron_alone", schedule="@daily", start_date=datetime(2026, 1, 1)).timetable
    assert type(cron_timetable("@daily")) is type(alone)
