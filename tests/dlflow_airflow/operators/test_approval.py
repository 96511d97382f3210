"""Human approval between evaluate and the blessing (``evaluate: {gate: {approval: true}}``).

The approval task is the standard provider's ApprovalOperator, told which
evaluate partition it asks about. Here it runs the way Airflow runs it, on a
tmp workspace holding a judged model: ``execute`` up to the point where
Airflow parks the task for a human (the request written through Airflow's
``upsert_hitl_detail``, stubbed at that boundary), then ``execute_complete``
with the answer the API server hands back when the task resumes.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowSkipException, DownstreamTasksSkipped

from dlflow_airflow.contract.artifacts import (
    DRIFT_FILE,
    METRICS_FILE,
    approval_of,
    gate_block,
    stage_io,
)
from dlflow_airflow.contract.model_resolution import (
    MANIFEST_FILE,
    blessed_marker,
    read_decision,
)
from dlflow_airflow.contract.options import EvaluateOptions
from dlflow_airflow.devtools.report import render
from dlflow_airflow.operators.approval import ModelApprovalOperator
from dlflow_airflow.operators.fingerprints import partition_digest
from dlflow_airflow.pipeline.build import Pipeline
from dlflow_airflow.pipeline.errors import SpecError
from dlflow_airflow.pipeline.factory import build_dag
from tests.dlflow_airflow.operators.test_fingerprints import make_partition
from tests.dlflow_airflow.pipelines import base_pipeline

DATE = "2026-01-02"
GATE = {"auc": {"min": 0.7}, "approval": True}


def _pipeline(ws: Path, **evaluate: Any) -> Pipeline:
    doc = base_pipeline()
    doc["workspace"] = str(ws)
    doc["stages"]["evaluate"] = evaluate or {"gate": GATE}
    return Pipeline.from_data(doc, source="p.yaml")


def _approval_task(ws: Path, **evaluate: Any) -> ModelApprovalOperator:
    task = build_dag(_pipeline(ws, **evaluate)).get_task("evaluate_approval")
    task.stage_date = DATE  # what Airflow's template rendering does
    return task


def _judged(ws: Path, *, missed: list[str] | None = None, drift: bool = True) -> dict[str, Path]:
    """A trained model and evaluate's verdict on it for DATE, as the jobs leave them."""
    encoded = make_partition(f"{ws}/encoded/TAG=f1/dt={DATE}", {"part-0.parquet": "x"})
    make_partition(f"{ws}/femodel/TAG=f1/dt={DATE}", {"fmap.json": "{}"})
    manifest = json.dumps({"fmap_checksum": "abc", "task": "binary"}, indent=1)
    model = make_partition(
        f"{ws}/model/TAG=m1/dt={DATE}", {"model.keras": "w", MANIFEST_FILE: manifest}
    )
    gate = {
        "bounds": {"auc": {"min": 0.7}},
        "missed": missed or [],
        "blessed": False,
        "awaiting_approval": not missed,
    }
    metrics = {"auc": 0.8123, "log_loss": 0.41, "rows": 2000, "model_date": DATE, "gate": gate}
    verdict = make_partition(f"{ws}/evaluate/TAG=m1/dt={DATE}", {})
    (verdict / METRICS_FILE).write_text(json.dumps(metrics, indent=1))
    if drift:
        report = {
            "features": [
                {"feature": "city", "psi": 0.31, "null_rate_change": 0.0, "unseen_rate": 0.3},
                {"feature": "age", "psi": 0.02, "null_rate_change": 0.15},
            ],
            "breaches": ["'city': psi 0.3100 > 0.25"],
            "new_columns": ["extra"],
        }
        (encoded / DRIFT_FILE).write_text(json.dumps(report))
    return {"model": model, "verdict": verdict, "encoded": encoded}


def _context(task: Any, **params: Any) -> dict[str, Any]:
    pushed: list[dict] = []
    ti = SimpleNamespace(
        id="0190-ti", map_index=-1, xcom_push=lambda **kw: pushed.append(kw), pushed=pushed
    )
    return {
        "params": {"force": False, "stages": [], **params},
        "dag_run": SimpleNamespace(run_id="manual__1"),
        "task": task,
        "ti": ti,
        "task_instance": ti,
    }


def _answer(choice: str, user: str | None) -> dict[str, Any]:
    """The event Airflow hands ``execute_complete`` when the task resumes."""
    return {
        "chosen_options": [choice],
        "params_input": {},
        "responded_at": datetime(2026, 1, 3, 9, 30, tzinfo=UTC),
        "responded_by_user": {"id": user, "name": user} if user else None,
        "timedout": user is None,
    }


def _predict_block(pipeline: Pipeline) -> str | None:
    config = pipeline.stages["predict"].context(pipeline.spec).job_config(DATE)
    return gate_block(config, stage_io(config))


# ---------------------------------------------------------------- the YAML and the DAG


def test_approval_is_read_in_the_gate_or_beside_it():
    in_gate = EvaluateOptions.model_validate({"gate": GATE})
    assert in_gate.approval is True and set(in_gate.gate) == {"auc"}
    assert EvaluateOptions.model_validate({"approval": True}).approval is True
    # The job parses the dumped options back into the same model.
    assert EvaluateOptions.model_validate(in_gate.model_dump(mode="json")) == in_gate
    with pytest.raises(ValueError, match="only read with approval"):
        EvaluateOptions.model_validate({"approval_timeout_hours": 4})


def test_the_approval_task_sits_between_evaluate_and_predict(tmp_path: Path):
    dag = build_dag(_pipeline(tmp_path))
    task = dag.get_task("evaluate_approval")
    assert isinstance(task, ModelApprovalOperator)
    assert task.upstream_task_ids == {"evaluate"}
    assert task.downstream_task_ids == {"predict"}
    assert "evaluate_approval" in dag.get_task("predict").upstream_task_ids
    assert task.stage_body["stage"]["name"] == "evaluate"
    assert task.response_timeout is None and task.execution_timeout is None
    # Without a metric bound, approval alone makes predict wait for the verdict.
    alone = _pipeline(tmp_path, approval=True)
    assert "EVALUATE_RESULT" in alone.stages["predict"].needs
    assert alone.approvals == {"evaluate": ("predict",)}
    assert (
        "evaluate_approval"
        not in build_dag(_pipeline(tmp_path, gate={"auc": {"min": 0.5}})).task_ids
    )


def test_a_timeout_rejects_and_no_stage_may_take_the_task_id(tmp_path: Path):
    task = _approval_task(tmp_path, gate=GATE, approval_timeout_hours=36)
    assert task.response_timeout.total_seconds() == 36 * 3600
    assert task.defaults == ["Reject"]
    doc = base_pipeline()
    doc["stages"]["evaluate"] = {"gate": GATE}
    doc["stages"]["evaluate_approval"] = {
        "kind": "tests.dlflow_airflow.user_stages:Export",
        "target": "x",
    }
    with pytest.raises(SpecError, match="evaluate_approval: this name is the task id"):
        Pipeline.from_data(doc, source="p.yaml")


# ---------------------------------------------------------------- the request


def test_the_request_shows_the_metrics_the_gate_and_the_drift(tmp_path, monkeypatch):
    from airflow.providers.standard.operators import hitl
    from airflow.sdk.exceptions import TaskAwaitingInput

    task = _approval_task(tmp_path)
    _judged(tmp_path)
    requests: list[dict] = []
    monkeypatch.setattr(hitl, "upsert_hitl_detail", lambda **kw: requests.append(kw))
    with pytest.raises(TaskAwaitingInput):  # Airflow 3.3 parks the task for a human
        task.execute(_context(task))
    (request,) = requests
    assert request["options"] == ["Approve", "Reject"]
    assert request["subject"] == f"Bless model m1@{DATE} (evaluated on {DATE})?"
    body = request["body"]
    assert "| auc | 0.8123 | min 0.7 |" in body and "| rows | 2000 |" in body
    assert "| city | 0.3100 | 0.0000 | 0.3000 |" in body
    assert body.index("| city |") < body.index("| age |")  # worst first
    assert "beyond the drift gate: 'city': psi 0.3100 > 0.25" in body
    assert "new columns: extra" in body


def test_without_a_drift_report_the_request_says_so(tmp_path: Path):
    task = _approval_task(tmp_path)
    _judged(tmp_path, drift=False)
    from dlflow_airflow.operators.approval import request_body

    assert "no drift report" in request_body(task.verdict())


def test_nothing_to_approve_when_the_model_missed_its_bounds_or_is_blessed(tmp_path: Path):
    task = _approval_task(tmp_path)
    with pytest.raises(AirflowSkipException, match="evaluate has not judged"):
        task.execute(_context(task))
    paths = _judged(tmp_path, missed=["auc 0.6500 < min 0.7 (by 0.0500)"])
    with pytest.raises(AirflowSkipException, match=r"missed the gate \(auc 0.6500 < min 0.7"):
        task.execute(_context(task))
    # Predict's own gate check then says why, as without approval.
    assert "missed the gate" in _predict_block(_pipeline(tmp_path))
    paths = _judged(tmp_path)
    Path(blessed_marker(str(paths["model"]))).write_text("{}")
    with pytest.raises(AirflowSkipException, match="blessed already"):
        task.execute(_context(task))
    with pytest.raises(AirflowSkipException, match="not in params.stages"):
        task.execute(_context(task, stages=["train"]))


# ---------------------------------------------------------------- the answer


def test_approve_blesses_and_records_the_decision_in_the_manifest(tmp_path: Path):
    task = _approval_task(tmp_path)
    paths = _judged(tmp_path)
    pipeline = _pipeline(tmp_path)
    assert "awaiting approval" in _predict_block(pipeline)
    text, _ = render(pipeline, DATE)
    assert "awaiting approval" in text
    digest = partition_digest(str(paths["model"]))

    result = task.execute_complete(_context(task), _answer("Approve", "alice"))

    assert result["chosen_options"] == ["Approve"]
    evidence = json.loads(Path(blessed_marker(str(paths["model"]))).read_text())
    assert evidence["approved_by"] == {"id": "alice", "name": "alice"}
    assert evidence["metrics"] == f"file://{paths['verdict']}"
    decision = read_decision(str(paths["model"]))
    assert decision["decision"] == "approved"
    assert decision["by"]["name"] == "alice"
    assert decision["at"] == "2026-01-03T09:30:00+00:00"
    assert decision["evaluate"] == f"file://{paths['verdict']}"
    assert decision["run_id"] == "manual__1"
    manifest = json.loads((paths["model"] / MANIFEST_FILE).read_text())
    assert manifest["fmap_checksum"] == "abc"  # what train wrote is kept
    assert _predict_block(pipeline) is None
    text, _ = render(pipeline, DATE)
    assert "(approved by alice)" in text
    # A decision is state, not content: evaluate and predict do not rerun for it.
    assert partition_digest(str(paths["model"])) == digest


def test_reject_does_not_bless_records_who_and_skips_predict(tmp_path: Path):
    task = _approval_task(tmp_path)
    paths = _judged(tmp_path)
    context = _context(task)

    with pytest.raises(DownstreamTasksSkipped) as skipped:
        task.execute_complete(context, _answer("Reject", "bob"))

    assert skipped.value.tasks == ["predict"]
    assert not Path(blessed_marker(str(paths["model"]))).exists()
    decision = read_decision(str(paths["model"]))
    assert (decision["decision"], decision["by"]["name"]) == ("rejected", "bob")
    assert decision["evaluate"] == f"file://{paths['verdict']}"
    pipeline = _pipeline(tmp_path)
    assert "was rejected by bob" in _predict_block(pipeline)
    text, complete = render(pipeline, DATE)
    assert not complete and "rejected by bob" in text


def test_a_timed_out_request_is_a_rejection_by_nobody(tmp_path: Path):
    task = _approval_task(tmp_path, gate=GATE, approval_timeout_hours=1)
    paths = _judged(tmp_path)
    with pytest.raises(DownstreamTasksSkipped):
        task.execute_complete(_context(task), _answer("Reject", None))
    decision = read_decision(str(paths["model"]))
    assert decision["decision"] == "rejected" and decision["timed_out"] is True
    config = _pipeline(tmp_path).stages["predict"].context(_pipeline(tmp_path).spec)
    state = approval_of(stage_io(config.job_config(DATE)))
    assert state.describe() == "rejected (no answer in time)"


def test_a_model_judged_again_awaits_a_new_decision(tmp_path: Path):
    task = _approval_task(tmp_path)
    paths = _judged(tmp_path)
    with pytest.raises(DownstreamTasksSkipped):
        task.execute_complete(_context(task), _answer("Reject", "bob"))
    success = paths["verdict"] / "_SUCCESS"
    stamp = success.stat().st_mtime_ns
    os.utime(success, ns=(stamp + 10**9, stamp + 10**9))  # evaluate committed again
    assert "awaiting approval" in _predict_block(_pipeline(tmp_path))
