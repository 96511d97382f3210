"""Human approval on a running Airflow: approving through the REST API blesses, rejecting does not.

The same real Airflow as ``test_airflow_server.py`` (api-server, scheduler,
dag-processor; SQLite; LocalExecutor) parses the demo pipeline made small and
given ``evaluate: {gate: {rows: {min: 1}, approval: true}}``. Two runs (two
dates, two models) each stop at ``evaluate_approval``, waiting for a human
(Airflow 3.3's ``awaiting_input`` state). One is approved and the other
rejected through ``PATCH .../taskInstances/evaluate_approval/-1/hitlDetails``,
as the UI's *Required actions* page does.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DAG_FILES, DAGS_FOLDER, DEMO_PIPELINE
from tests.e2e.airflow import FAILED_STATES, run_report, running_airflow

pytestmark = pytest.mark.e2e

DAG_ID = "dlflow_approval_ctr"
MODEL_TAG = "demo_dnn_v1"
TASK = "evaluate_approval"
# Two dates: two models, one to approve and one to reject.
DATES = {"approve": "2026-03-01", "reject": "2026-03-02"}
WAITING = ("awaiting_input", "deferred")
ENDED = ("success", "failed", "skipped", "upstream_failed", "removed")
# After a task pauses for input, its worker process exits and the scheduler learns of
# it on a later loop. An answer given before that resumes the task while that late
# "success" event is still in flight, and Airflow 3.3's scheduler then marks the
# resumed task failed (its state is queued, the event says success). A person never
# answers within a second; the test waits as long as the scheduler needs.
SETTLE_SECONDS = 10


def _approval_pipeline(folder: Path) -> None:
    """The demo pipeline, small (500 rows, one epoch, no TFRecords), with human approval."""
    (folder / "pipelines").mkdir(parents=True)
    for dag_file in DAG_FILES:
        shutil.copy(DAGS_FOLDER / dag_file, folder)
    text = DEMO_PIPELINE.read_text()
    for old, new in (
        ("dag_id: dlflow_demo_ctr", f"dag_id: {DAG_ID}\nmax_active_runs: 2"),
        ("rows: 20000", "rows: 500"),
        ("epochs: 4", "epochs: 1"),
        ("tfrecord: true", "tfrecord: false"),
        ("  evaluate: {}", "  evaluate:\n    gate: {rows: {min: 1}, approval: true}"),
    ):
        assert old in text, f"{DEMO_PIPELINE} no longer holds {old!r}"
        text = text.replace(old, new)
    (folder / "pipelines" / "approval.yaml").write_text(text)


@pytest.fixture(scope="module")
def airflow(tmp_path_factory) -> Iterator:
    root = tmp_path_factory.mktemp("airflow-approval")
    with running_airflow(root, DAG_ID, _approval_pipeline) as server:
        yield server


def _task(server, run_id: str, task_id: str) -> dict:
    return server.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}")


def _logs(server, run_id: str) -> str:
    """The task states of a run and the end of each failed or skipped task's log."""
    return run_report(server, DAG_ID, run_id, (*FAILED_STATES, "skipped"))


def _wait_for_request(server, run_id: str, timeout: float = 1200) -> dict:
    """Wait until the approval task waits for a human; returns its request (hitlDetails)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _task(server, run_id, TASK)["state"]
        if state in WAITING:
            time.sleep(SETTLE_SECONDS)
            return server.api(
                "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK}/-1/hitlDetails"
            )
        assert state not in ENDED, _logs(server, run_id)
        time.sleep(3)
    raise AssertionError(f"{TASK} of {run_id} never waited for a human\n{_logs(server, run_id)}")


def _model(server, date: str) -> Path:
    return server.workspace / f"model/TAG={MODEL_TAG}" / f"dt={date}"


def test_approving_through_the_api_blesses_and_rejecting_does_not(airflow):
    runs = {
        choice: airflow.api(
            "POST",
            f"/dags/{DAG_ID}/dagRuns",
            {"logical_date": f"{date}T00:00:00Z", "conf": {}},
        )["dag_run_id"]
        for choice, date in DATES.items()
    }
    answers = {}
    for choice, run_id in runs.items():
        request = _wait_for_request(airflow, run_id)
        assert request["options"] == ["Approve", "Reject"]
        assert request["subject"] == f"Bless model {MODEL_TAG}@{DATES[choice]} " + (
            f"(evaluated on {DATES[choice]})?"
        )
        assert "| auc |" in request["body"] and "| rows | 500 | min 1 |" in request["body"]
        # Nothing is blessed while a human has not answered; predict has not run.
        assert not (_model(airflow, DATES[choice]) / "BLESSED").exists()
        assert _task(airflow, run_id, "predict")["state"] in (None, "scheduled", "queued", "none")
        answers[choice] = airflow.api(
            "PATCH",
            f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK}/-1/hitlDetails",
            {
                "chosen_options": ["Approve" if choice == "approve" else "Reject"],
                "params_input": {},
            },
        )

    for choice, run_id in runs.items():
        done = airflow.wait_for_run(DAG_ID, run_id)
        assert done["state"] == "success", _logs(airflow, run_id)
        model = _model(airflow, DATES[choice])
        decision = json.loads((model / "manifest.json").read_text())["approval"]
        assert decision["decision"] == ("approved" if choice == "approve" else "rejected")
        assert decision["by"] == answers[choice]["responded_by"]
        assert decision["run_id"] == run_id
        assert decision["evaluate"].endswith(f"evaluate/TAG={MODEL_TAG}/dt={DATES[choice]}")
        assert _task(airflow, run_id, TASK)["state"] == "success"
        predictions = airflow.workspace / f"predict/TAG={MODEL_TAG}" / f"dt={DATES[choice]}"
        if choice == "approve":
            evidence = json.loads((model / "BLESSED").read_text())
            assert evidence["approved_by"] == answers[choice]["responded_by"]
            assert _task(airflow, run_id, "predict")["state"] == "success"
            assert (predictions / "_SUCCESS").is_file()
        else:
            assert not (model / "BLESSED").exists()
            assert _task(airflow, run_id, "predict")["state"] == "skipped"
            assert not predictions.exists()
