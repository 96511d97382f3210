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


# ------------------------------------------------------------------ champion/challenger

CHAMPION_GATE = {"auc": {"min": 0.6, "max_drop_vs_blessed": 0.005}}


def test_comparing_with_the_champion_turns_on_encode_for_it(tmp_path: Path):
    from dlflow_airflow.contract.artifacts import CHAMPION_FEATURE

    pipeline = _pipeline(tmp_path, CHAMPION_GATE)
    encode, evaluate = pipeline.stages["encode"], pipeline.stages["evaluate"]
    assert encode.options.champion is True
    assert CHAMPION_FEATURE in encode.produces and CHAMPION_FEATURE in evaluate.needs
    assert ("encode", "evaluate") in pipeline.edges
    body = encode.context(pipeline.spec).job_body()
    assert body["options"]["champion"] is True
    assert CHAMPION_FEATURE in body["stage"]["produces"]
    # Encode commits the champion's rows, evaluate reads them: the contract's partitions.
    config = encode.context(pipeline.spec).job_config(DATE)
    written = stage_io(config).get(CHAMPION_FEATURE)
    assert written.uri == f"file://{tmp_path}/champion/TAG=m1/dt={DATE}"
    assert written.role == "write"
    read = stage_io(evaluate.context(pipeline.spec).job_config(DATE)).get(CHAMPION_FEATURE)
    assert (read.uri, read.role) == (written.uri, "read")
    dag = build_dag(pipeline)
    assert "dlflow.champion.m1" in {a.name for a in dag.get_task("encode").outlets}
    assert "evaluate" in dag.get_task("encode").downstream_task_ids
    # Without max_drop_vs_blessed, nothing changes.
    plain = _pipeline(tmp_path, {"auc": {"min": 0.6}})
    assert plain.stages["encode"].options.champion is False
    assert CHAMPION_FEATURE not in plain.stages["encode"].produces
    assert CHAMPION_FEATURE not in plain.stages["evaluate"].needs


@pytest.mark.parametrize("metric", ["calibration", "positive_rate", "mean_score", "rows"])
def test_max_drop_vs_blessed_is_refused_on_a_metric_without_a_better_side(tmp_path, metric):
    from dlflow_airflow.pipeline.errors import SpecError

    with pytest.raises(SpecError) as info:
        _pipeline(tmp_path, {metric: {"max_drop_vs_blessed": 0.01}})
    message = str(info.value)
    assert f"stages.evaluate.gate: {metric}.max_drop_vs_blessed: not better higher or" in message
    assert "applies to auc, pr_auc, accuracy, r2, log_loss, mse, mae" in message


def test_a_bound_may_be_only_a_drop_but_not_empty(tmp_path: Path):
    from dlflow_airflow.pipeline.errors import SpecError

    assert _pipeline(tmp_path, {"log_loss": {"max_drop_vs_blessed": 0.01}})
    with pytest.raises(SpecError, match="gate bound needs min, max or max_drop_vs_blessed"):
        _pipeline(tmp_path, {"auc": {}})
    with pytest.raises(SpecError, match=r"max_drop_vs_blessed: .*greater than or equal to 0"):
        _pipeline(tmp_path, {"auc": {"max_drop_vs_blessed": -0.1}})


def test_comparing_without_an_encode_stage_names_the_key_or_needs_external(tmp_path: Path):
    from dlflow_airflow.pipeline.errors import SpecError

    doc = base_pipeline()
    doc["workspace"] = str(tmp_path)
    doc["external"] = ["ENCODED_FEATURE", "FMAP"]
    doc["stages"] = {"train": {}, "evaluate": {"gate": CHAMPION_GATE}}
    with pytest.raises(SpecError) as info:
        Pipeline.from_data(doc, source="p.yaml")
    message = str(info.value)
    assert "p.yaml: stages.evaluate.gate.auc.max_drop_vs_blessed: " in message
    assert "list CHAMPION_FEATURE under 'external'" in message
    doc["external"].append("CHAMPION_FEATURE")
    pipeline = Pipeline.from_data(doc, source="p.yaml")
    assert "CHAMPION_FEATURE" in pipeline.stages["evaluate"].needs
