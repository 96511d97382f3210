"""The example pair: weekly training produces the model Asset the daily predict DAG reads."""

from __future__ import annotations

from dlflow_airflow.pipeline.build import Pipeline
from dlflow_airflow.pipeline.factory import build_dag
from tests.conftest import DAGS_FOLDER


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
    assert predict.schedule == "@daily"
    assert '"date": "latest"' in predict.get_task("predict").application_args[3]
