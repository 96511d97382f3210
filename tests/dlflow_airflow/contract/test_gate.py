"""The gate stands before predict: wait for evaluate, refuse an unblessed model, never retry."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from dlflow_airflow.contract.artifacts import METRICS_FILE, gate_block, stage_io
from dlflow_airflow.contract.model_resolution import blessed_marker
from dlflow_airflow.devtools.report import render
from dlflow_airflow.pipeline.build import Pipeline
from dlflow_airflow.pipeline.factory import build_dag
from tests.dlflow_airflow.operators.test_fingerprints import make_partition
from tests.dlflow_airflow.pipelines import base_pipeline

DATE = "2026-01-02"


def _pipeline(ws: Path, gate: dict | None, mode: str = "same", **evaluate: Any) -> Pipeline:
    doc = base_pipeline()
    doc["workspace"] = str(ws)
    doc["model"]["date"] = mode
    doc["stages"]["evaluate"] = {**({"gate": gate} if gate else {}), **evaluate}
    return Pipeline.from_data(doc, source="p.yaml")


def _context(task: Any, **params: Any) -> dict[str, Any]:
    return {
        "params": {"force": False, "stages": [], **params},
        "dag_run": SimpleNamespace(run_id="r1"),
        "task": task,
        "outlet_events": None,
    }


def _judged(ws: Path, *, blessed: bool) -> None:
    """Inputs of predict for DATE, and evaluate's verdict on the model."""
    make_partition(f"file://{ws}/encoded/TAG=f1/dt={DATE}", {"part-0.parquet": "x"})
    make_partition(f"file://{ws}/femodel/TAG=f1/dt={DATE}", {"fmap.json": "{}"})
    model = make_partition(f"file://{ws}/model/TAG=m1/dt={DATE}", {"model.keras": "w"})
    gate = {"blessed": blessed, "missed": [] if blessed else ["auc 0.7100 < min 0.99 (by 0.28)"]}
    verdict = make_partition(f"file://{ws}/evaluate/TAG=m1/dt={DATE}", {})
    (verdict / METRICS_FILE).write_text(json.dumps({"auc": 0.71, "gate": gate}))
    if blessed:
        Path(blessed_marker(str(model))).write_text("{}")


def test_predict_waits_for_an_evaluate_that_has_a_gate(tmp_path: Path):
    gated = _pipeline(tmp_path, {"auc": {"min": 0.99}})
    assert "EVALUATE_RESULT" in gated.stages["predict"].needs
    assert ("evaluate", "predict") in gated.edges
    ungated = _pipeline(tmp_path, None)
    assert ("evaluate", "predict") not in ungated.edges


@pytest.mark.parametrize("mode", ["same", "2026-01-02"])
def test_a_gate_miss_blocks_predict_before_launch_even_with_force(tmp_path, monkeypatch, mode):
    # Regression: predict scored (and committed) a model whose gate had failed.
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    task = build_dag(_pipeline(tmp_path, {"auc": {"min": 0.99}}, mode)).get_task("predict")
    task.stage_date = DATE
    launched: list[str] = []
    monkeypatch.setattr(SparkSubmitOperator, "execute", lambda self, ctx: launched.append("x"))
    monkeypatch.setattr(type(task), "shipped_py_files", lambda self: None)
    _judged(tmp_path, blessed=False)
    for force in (False, True):
        with pytest.raises(AirflowFailException, match=r"blocked by gate: .*auc 0.7100 < min"):
            task.execute(_context(task, force=force))
    assert launched == []
    assert not (tmp_path / "predict").exists()
    text, complete = render(_pipeline(tmp_path, {"auc": {"min": 0.99}}, mode), DATE)
    assert not complete and "blocked by gate" in text and "auc 0.7100 < min" in text


def test_a_blessed_model_is_scored(tmp_path: Path):
    pipeline = _pipeline(tmp_path, {"auc": {"min": 0.5}})
    _judged(tmp_path, blessed=True)
    config = pipeline.stages["predict"].context(pipeline.spec).job_config(DATE)
    assert gate_block(config, stage_io(config)) is None


def test_an_unjudged_model_is_blocked(tmp_path: Path):
    pipeline = _pipeline(tmp_path, {"auc": {"min": 0.5}})
    make_partition(f"file://{tmp_path}/model/TAG=m1/dt={DATE}", {"model.keras": "w"})
    config = pipeline.stages["predict"].context(pipeline.spec).job_config(DATE)
    assert "was not judged" in gate_block(config, stage_io(config))


def test_a_gate_miss_fails_evaluate_for_good(tmp_path, monkeypatch):
    # gate_miss: fail: the job commits its verdict, then fails; a retry cannot change it.
    from dlflow_airflow.runners.process import LocalProcess

    pipeline = _pipeline(tmp_path, {"auc": {"min": 0.99}}, gate_miss="fail")
    task = build_dag(pipeline).get_task("evaluate")
    task.stage_date = DATE
    make_partition(f"file://{tmp_path}/encoded/TAG=f1/dt={DATE}", {"part-0.parquet": "x"})
    make_partition(f"file://{tmp_path}/femodel/TAG=f1/dt={DATE}", {"fmap.json": "{}"})
    make_partition(f"file://{tmp_path}/model/TAG=m1/dt={DATE}", {"model.keras": "w"})

    def judge_and_fail(self: Any, *args: Any, **kwargs: Any) -> None:
        _judged(tmp_path, blessed=False)
        raise RuntimeError("tf_jobs.evaluate exited with code 1")

    monkeypatch.setattr(LocalProcess, "run", judge_and_fail)
    with pytest.raises(AirflowFailException, match=r"missed the gate \(auc 0.7100 < min"):
        task.execute(_context(task))

    def crash(self: Any, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("out of memory")  # no new verdict: an ordinary, retryable failure

    monkeypatch.setattr(LocalProcess, "run", crash)
    with pytest.raises(RuntimeError, match="out of memory"):
        task.execute(_context(task, force=True))
