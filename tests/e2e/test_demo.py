"""The demo pipeline for one date, through a real Airflow (``airflow dags test``)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DAGS_FOLDER, DEMO_PIPELINE

pytestmark = pytest.mark.e2e

DATE = "2026-01-02"
OPENLINEAGE_EVENTS = "openlineage.jsonl"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    home = tmp_path_factory.mktemp("demo")
    cli = Path(sys.executable).parent / "dlflow-airflow"
    # OpenLineage's file transport: every task's events, one JSON document a line.
    transport = {"type": "file", "log_file_path": str(home / OPENLINEAGE_EVENTS), "append": True}
    proc = subprocess.run(
        [str(cli), "demo", "--home", str(home), "--dags", str(DAGS_FOLDER), "--date", DATE],
        capture_output=True,
        text=True,
        timeout=1200,
        env={**os.environ, "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport)},
    )
    return home, proc


def _pipeline(home: Path, monkeypatch):
    from dlflow_airflow.pipeline.build import Pipeline

    monkeypatch.setenv("DLFLOW_WORKSPACE", str(home / "workspace"))
    return Pipeline.from_file(DEMO_PIPELINE)


def test_demo_runs_every_stage_through_airflow(demo_run, monkeypatch):
    home, proc = demo_run
    log_file = home / "logs" / "dlflow_demo_ctr" / f"{DATE}.log"
    log = log_file.read_text() if log_file.exists() else ""
    assert proc.returncode == 0, proc.stdout + proc.stderr + log[-5000:]
    from dlflow_airflow.devtools.report import stage_partitions

    parts = stage_partitions(_pipeline(home, monkeypatch), DATE)
    assert {p.artifact for p in parts} == {
        "upstream",
        "raw",
        "encoded",
        "tfrecord",
        "femodel",
        "model",
        "evaluate",
        "predict",
    }
    # model.date same: every partition was written by this run, none reused or missing.
    assert {p.status for p in parts} == {"ok"}, [(p.uri, p.status) for p in parts]
    # Airflow really ran the tasks: each one's output reached the task log.
    assert "Evaluation metrics:" in proc.stdout
    assert "Predictions (Parquet):" in proc.stdout


def test_demo_predictions_cover_every_row_and_model_learns(demo_run, monkeypatch):
    import pyarrow.dataset as ds

    from dlflow_airflow.contract.layout import Layout, local_path
    from dlflow_airflow.devtools.report import read_metrics

    home, proc = demo_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pipeline = _pipeline(home, monkeypatch)
    layout = Layout(pipeline.spec.workspace)
    encoded = ds.dataset(local_path(layout.encoded("demo_ctr_v1", DATE)), format="parquet")
    predicted = ds.dataset(local_path(layout.predict("demo_dnn_v1", DATE)), format="parquet")
    assert predicted.count_rows() == encoded.count_rows() == 20000
    keys = predicted.to_table(columns=["uid"]).column("uid").to_pylist()
    assert len(set(keys)) == len(keys)
    scores = predicted.to_table(columns=["score"]).column("score").to_numpy()
    assert ((scores >= 0) & (scores <= 1)).all()
    metrics = read_metrics(pipeline, DATE)
    assert metrics is not None, json.dumps(metrics)
    assert metrics["auc"] > 0.6


def test_openlineage_reports_each_stages_partitions(demo_run):
    """Each task's COMPLETE event names the partitions the stage read and wrote; each Spark
    job was told its task's run (the parent a Spark OpenLineage listener reports)."""
    home, proc = demo_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = (home / OPENLINEAGE_EVENTS).read_text().splitlines()
    events = [json.loads(line) for line in lines if line.strip()]
    complete = {
        e["job"]["name"].removeprefix("dlflow_demo_ctr."): e
        for e in events
        if e["eventType"] == "COMPLETE" and e["job"]["name"].startswith("dlflow_demo_ctr.")
    }
    ws = home / "workspace"

    def partition(folder: str, tag: str) -> str:
        return str(ws / folder / f"TAG={tag}" / f"dt={DATE}")

    upstream = {
        str(ws / "upstream" / t / f"dt={DATE}") for t in ("seed", "user_profile", "user_behaviour")
    }
    raw, fmap = partition("raw", "demo_ctr_v1"), partition("femodel", "demo_ctr_v1")
    encoded, model = partition("encoded", "demo_ctr_v1"), partition("model", "demo_dnn_v1")
    expected = {
        "demo_data": (set(), upstream),
        "merge": (upstream, {raw}),
        "encode": ({raw}, {encoded, partition("tfrecord", "demo_ctr_v1"), fmap}),
        "train": ({encoded, fmap}, {model}),
        "evaluate": ({encoded, fmap, model}, {partition("evaluate", "demo_dnn_v1")}),
        "predict": ({encoded, fmap, model}, {partition("predict", "demo_dnn_v1")}),
    }
    assert set(complete) == set(expected)
    for task, (inputs, outputs) in expected.items():
        event = complete[task]
        assert {d["namespace"] for d in event["inputs"] + event["outputs"]} <= {"file"}, task
        assert {d["name"] for d in event["inputs"]} == inputs, task
        assert {d["name"] for d in event["outputs"]} == outputs, task
    (predicted,) = complete["predict"]["outputs"]
    assert predicted["outputFacets"]["outputStatistics"]["rowCount"] == 20000

    log = (home / "logs" / "dlflow_demo_ctr" / f"{DATE}.log").read_text()
    parents = dict(
        re.findall(
            r"spark\.openlineage\.parentJobName=dlflow_demo_ctr\.(\w+) "
            r"--conf spark\.openlineage\.parentRunId=([0-9a-f-]+)",
            log,
        )
    )
    assert parents == {
        task: complete[task]["run"]["runId"] for task in ("demo_data", "merge", "encode", "predict")
    }
