"""The example pair: weekly training produces the model Asset the daily predict DAG reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlflow_airflow.pipeline.build import Pipeline
from dlflow_airflow.pipeline.factory import build_dag
from dlflow_airflow.pipeline.yaml_reader import read_yaml
from tests.conftest import DAGS_FOLDER

# The pair as written before it shared a base: the reference its DAGs must still match.
FLAT = Path(__file__).parent / "example_pair_flat"


def _dag(name: str):
    return build_dag(Pipeline.from_file(DAGS_FOLDER / "pipelines" / f"{name}.yaml"))


def test_weekly_training_feeds_daily_predict_through_the_model_asset():
    train = _dag("ctr_weekly_train")
    predict = _dag("ctr_daily_predict")
    assert "predict" not in train.task_ids and "train" not in predict.task_ids
    (model,) = train.get_task("train").outlets
    assert model.name == "dlflow.model.ctr_weekly_dnn"
    assert predict.get_task("predict").inlets == [model]
    assert train.schedule == "@weekly"
    assert '"date": "latest"' in predict.get_task("predict").application_args[3]


def test_daily_predict_runs_daily_and_on_each_weekly_verdict():
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable

    train = _dag("ctr_weekly_train")
    predict = _dag("ctr_daily_predict")
    timetable = predict.timetable
    assert isinstance(timetable, AssetOrTimeSchedule)
    assert isinstance(timetable.timetable, CronTriggerTimetable)
    assert timetable.timetable.expression == "0 0 * * *"  # @daily
    # The verdict: evaluate blesses the model, so the run that follows can use it.
    assert list(timetable.asset_condition.objects) == train.get_task("evaluate").outlets


@pytest.mark.parametrize("name", ["ctr_weekly_train", "ctr_daily_predict"])
def test_the_pair_on_its_shared_base_is_the_pair_written_out(name: str):
    """Both halves extend common/ctr_base.yaml; spec and DAG are those of the flat files."""
    shipped = DAGS_FOLDER / "pipelines" / f"{name}.yaml"
    assert read_yaml(shipped)["extends"] == "common/ctr_base.yaml"
    flat = Pipeline.from_file(FLAT / f"{name}.yaml")
    based = Pipeline.from_file(shipped)
    assert based.spec == flat.spec
    assert based.spec.model_dump_json() == flat.spec.model_dump_json()  # the order of keys too
    assert (based.order, based.edges) == (flat.order, flat.edges)
    assert _tasks(build_dag(based)) == _tasks(build_dag(flat))


def _tasks(dag) -> dict[str, tuple]:
    return {
        task.task_id: (
            type(task).__name__,
            sorted(task.upstream_task_ids),
            [a.name for a in task.inlets],
            [getattr(a, "name", None) for a in task.outlets],
            getattr(task, "application_args", None),
            task.retries,
            task.pool,
        )
        for task in dag.tasks
    }
