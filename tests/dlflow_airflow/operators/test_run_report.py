"""What every stage task leaves for the run report: its record (XCom) and its extra link."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from dlflow_airflow.operators.run_report import (
    REPORT_VIEW,
    STAGE_RECORD_KEY,
    RunReportLink,
    StageRecord,
    report_url,
)
from tests.dlflow_airflow.operators.test_bookkeeping import (
    DATE,
    _all_tasks,
    _context,
    _dag,
    _stub_backend,
    _train_inputs,
)
from tests.dlflow_airflow.operators.test_fingerprints import make_partition


class FakeTI:
    def __init__(self) -> None:
        self.pushed: list[tuple[str, Any]] = []

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed.append((key, value))


def _records(ti: FakeTI) -> list[StageRecord]:
    return [StageRecord.from_json(v) for k, v in ti.pushed if k == STAGE_RECORD_KEY]


def test_every_operator_the_factory_builds_links_to_the_run_report(tmp_path: Path):
    from airflow.serialization.serialized_objects import OperatorSerialization

    for name, task in _all_tasks(tmp_path).items():
        links = [link for link in task.operator_extra_links if isinstance(link, RunReportLink)]
        assert len(links) == 1, name
        # What the api-server reads: the link's name and the XCom the worker fills.
        serialized = OperatorSerialization.serialize_operator(task)
        assert serialized["_operator_extra_links"] == {
            "DLFlow run report": "_link_RunReportLink"
        }, name


def test_the_approval_task_links_to_the_run_report_too():
    from dlflow_airflow.operators.approval import ModelApprovalOperator

    links = ModelApprovalOperator.operator_extra_links
    assert [type(link) for link in links] == [RunReportLink]


def test_the_link_is_the_report_tab_of_the_run():
    run_id = "manual__2026-01-02T00:00:00+00:00"
    url = report_url("ctr daily", run_id, base_url="http://airflow.example:8080/")
    assert url == (
        "http://airflow.example:8080/dags/ctr%20daily/runs/"
        f"manual__2026-01-02T00%3A00%3A00%2B00%3A00/plugin/{REPORT_VIEW}"
    )
    assert report_url("d", "r", base_url="").startswith("/dags/d/runs/r/plugin/")


def test_the_link_reads_the_ui_address_from_the_config(monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example/base")
    key = type("Key", (), {"dag_id": "d", "run_id": "r"})()
    link = RunReportLink().get_link(None, ti_key=key)
    assert link == f"https://airflow.example/base/dags/d/runs/r/plugin/{REPORT_VIEW}"


def test_a_task_records_what_it_ran_with_and_why(tmp_path, monkeypatch):
    task = _dag(tmp_path, "local").get_task("train")
    task.stage_date = DATE  # rendered
    _train_inputs(tmp_path)
    _stub_backend(monkeypatch, task, [])
    ti = FakeTI()

    task.execute({**_context(task), "ti": ti})
    with pytest.raises(AirflowSkipException):
        task.execute({**_context(task), "ti": ti})
    with pytest.raises(AirflowSkipException):
        task.execute({**_context(task, stages=["merge"]), "ti": ti})

    ran, unchanged, unselected = _records(ti)
    assert (ran.date, ran.body) == (DATE, task.stage_body)
    assert ran.reason.startswith("ran: file://")
    assert ran.reason.endswith("model/TAG=m1/dt=2026-01-02 has no _SUCCESS")
    assert unchanged.reason.startswith(f"skipping train for {DATE}: outputs complete and")
    assert unselected.reason == "skipping train: not in params.stages ['merge']"


def test_a_task_blocked_by_the_gate_records_why(tmp_path, monkeypatch):
    from dlflow_airflow.pipeline.build import Pipeline
    from dlflow_airflow.pipeline.factory import build_dag
    from tests.dlflow_airflow.pipelines import base_pipeline

    doc = base_pipeline()
    doc["workspace"] = str(tmp_path)
    doc["stages"]["evaluate"] = {"gate": {"auc": {"min": 0.9}}}
    task = build_dag(Pipeline.from_data(doc, source="p.yaml")).get_task("predict")
    task.stage_date = DATE
    _train_inputs(tmp_path)
    make_partition(f"file://{tmp_path}/model/TAG=m1/dt={DATE}", {"model.keras": "w"})
    ti = FakeTI()
    with pytest.raises(AirflowFailException, match="blocked by gate"):
        task.execute({**_context(task), "ti": ti})
    (record,) = _records(ti)
    assert record.reason.startswith("predict blocked by gate: model file://")
    assert "was not judged" in record.reason


def test_a_record_that_cannot_be_pushed_never_fails_the_stage(tmp_path, monkeypatch):
    task = _dag(tmp_path, "local").get_task("train")
    task.stage_date = DATE
    _train_inputs(tmp_path)
    calls: list[str] = []
    _stub_backend(monkeypatch, task, calls)

    class BrokenTI:
        def xcom_push(self, key: str, value: Any) -> None:
            raise RuntimeError("the API is down")

    task.execute({**_context(task), "ti": BrokenTI()})
    assert calls == ["train"]


def test_records_read_back_tolerate_anything():
    assert StageRecord.from_json({"date": DATE, "body": None}) == StageRecord(DATE, None)
    for junk in (None, "x", [], {"body": {}}, {"date": 3}):
        assert StageRecord.from_json(junk) is None
