"""An asset-triggered run (no logical date) renders each stage's ``{{ ds }}`` from the
``date`` of the asset events that triggered it, in Airflow's own template context."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from dlflow_airflow.contract.run_date import RunDateError
from dlflow_airflow.pipeline.build import Pipeline
from dlflow_airflow.pipeline.factory import build_dag
from tests.dlflow_airflow.operators.runtime import runtime_context
from tests.dlflow_airflow.pipelines import base_pipeline

NOW = datetime(2026, 1, 20, 8, 0, tzinfo=UTC)


def _scoring_dag(**stages: Any):
    doc = base_pipeline()
    doc["schedule"] = {"assets": ["TRAINED_MODEL"]}
    doc["external"] = ["ENCODED_FEATURE", "FMAP", "TRAINED_MODEL"]
    doc["stages"] = {"predict": {}, **stages}
    return build_dag(Pipeline.from_data(doc, source="score.yaml"))


def _event(extra: dict[str, Any], name: str = "dlflow.model.m1") -> Any:
    from airflow.sdk.api.datamodels._generated import (
        AssetEventDagRunReference,
        AssetReferenceAssetEventDagRun,
    )

    asset = AssetReferenceAssetEventDagRun(name=name, uri=f"file:///ws/{name}", extra={})
    return AssetEventDagRunReference(
        asset=asset,
        extra=extra,
        source_task_id="train",
        source_dag_id="trainer",
        source_run_id="manual__x",
        source_map_index=-1,
        source_aliases=[],
        timestamp=NOW,
    )


def asset_triggered_context(task: Any, events: list[Any]) -> dict[str, Any]:
    """The context Airflow's task runner renders templates with, for an asset-triggered run."""
    from airflow.sdk.api.datamodels._generated import (
        DagRun,
        DagRunState,
        DagRunType,
    )

    run = DagRun(
        dag_id=task.dag_id,
        run_id=f"asset_triggered__{NOW.isoformat()}",
        logical_date=None,
        data_interval_start=None,
        data_interval_end=None,
        run_after=NOW,
        start_date=NOW,
        end_date=None,
        run_type=DagRunType.ASSET_TRIGGERED,
        state=DagRunState.RUNNING,
        consumed_asset_events=events,
        partition_key=None,
    )
    return runtime_context(task, run)


def test_a_stage_of_an_asset_triggered_run_renders_the_newest_event_date():
    predict = _scoring_dag().get_task("predict")
    events = [
        _event({"date": "2026-01-11", "model_date": "2026-01-11"}),
        _event({"date": "2026-01-04"}),
    ]
    context = asset_triggered_context(predict, events)
    assert "ds" not in context  # Airflow gives the run no logical date
    predict.render_template_fields(context)
    assert predict.date == "2026-01-11"  # the job's --date (execute() builds the arguments)
    assert predict.stage_date == "2026-01-11"  # the bookkeeping's
    assert context["ds_nodash"] == "20260111"  # execute() sees the same date


def test_events_without_a_date_fail_the_task_naming_the_asset():
    predict = _scoring_dag().get_task("predict")
    context = asset_triggered_context(predict, [_event({"note": "by hand"})])
    with pytest.raises(RunDateError, match=r"dlflow\.model\.m1\) name no partition date"):
        predict.render_template_fields(context)


def test_the_approval_task_renders_it_too():
    doc = base_pipeline()
    doc["schedule"] = {"assets": [{"artifact": "RAW_FEATURE", "tag": "upstream_f"}]}
    doc["stages"]["evaluate"] = {"gate": {"auc": {"min": 0.5}}, "approval": True}
    approval = build_dag(Pipeline.from_data(doc, source="p.yaml")).get_task("evaluate_approval")
    context = asset_triggered_context(approval, [_event({"date": "2026-01-05"}, "dlflow.raw.x")])
    approval.render_template_fields(context)
    assert approval.stage_date == "2026-01-05"
