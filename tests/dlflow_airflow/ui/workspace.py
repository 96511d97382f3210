"""A pipeline run's workspace for the report tests, written where the contract says.

Every partition a stage writes (``stage_io``) gets ``_SUCCESS`` and what its
job leaves there: the fmap and normaliser statistics (the contract's own
classes), the model manifest, evaluate's metrics with real ROC / PR /
calibration PNGs (the evaluate job's own metrics and plot code), and the
drift report (the contract's ``DriftReport``). The stage records are the ones
the bookkeeping pushes: the job document of each task, built by the factory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.artifacts import (
    DRIFT_FILE,
    ENCODED_FEATURE,
    EVALUATE_RESULT,
    FMAP,
    METRICS_FILE,
    TRAINED_MODEL,
    stage_io,
)
from dlflow_airflow.contract.drift import Breach, DriftReport, FeatureDrift
from dlflow_airflow.contract.fmap import Bucket, Feature, FeatureMap, Normalizers
from dlflow_airflow.contract.layout import SUCCESS_MARKER
from dlflow_airflow.contract.model_resolution import MANIFEST_FILE, blessed_marker
from dlflow_airflow.operators.run_report import StageRecord
from dlflow_airflow.pipeline.build import Pipeline
from dlflow_airflow.pipeline.factory import build_dag
from dlflow_airflow.ui.run_report import RunTasks, TaskRun
from tests.dlflow_airflow.pipelines import base_pipeline

DATE = "2026-01-02"
CITIES = ["paris", "lyon", "nice"]


def pipeline(workspace: Path, **evaluate: Any) -> Pipeline:
    doc = base_pipeline()
    doc["workspace"] = str(workspace)
    doc["stages"]["evaluate"] = evaluate or {"gate": {"auc": {"min": 0.5}}}
    return Pipeline.from_data(doc, source="p.yaml")


def records(p: Pipeline, date: str = DATE) -> dict[str, StageRecord]:
    """Each stage task's record, from the operators the factory builds."""
    return {
        task.task_id: StageRecord(date, task.stage_body, "ran: inputs or spec changed")
        for task in build_dag(p).tasks
        if getattr(task, "stage_body", None) is not None
    }


def run_tasks(
    p: Pipeline, states: dict[str, str] | None = None, date: str = DATE, **reasons: str
) -> RunTasks:
    found = records(p, date)
    tasks = []
    for name in p.order:
        record = found[name]
        if name in reasons:
            record = StageRecord(record.date, record.body, reasons[name])
        tasks.append(TaskRun(name, (states or {}).get(name, "success"), record))
    return RunTasks(p.spec.dag_id, f"manual__{date}T00:00:00+00:00", "success", tuple(tasks), date)


def write_run(
    p: Pipeline,
    date: str = DATE,
    *,
    vocab: list[str] = CITIES,
    manifest: dict[str, Any] | None = None,
    blessed: bool = True,
) -> None:
    """Commit every partition the run's stages write, with their jobs' files."""
    for name in p.order:
        config = p.stages[name].context(p.spec).job_config(date)
        for part in stage_io(config).partitions:
            if part.role.value == "read":
                continue
            if part.tag == FMAP:
                write_fmap(part.uri, part.date, vocab)
            elif part.tag == TRAINED_MODEL:
                doc = manifest or {"model": {"tag": "m1", "date": part.date}, "task": "binary"}
                storage.write_text(f"{part.uri}/{MANIFEST_FILE}", json.dumps(doc))
                if blessed:
                    storage.write_text(blessed_marker(part.uri), "")
            elif part.tag == EVALUATE_RESULT:
                write_metrics(part.uri, blessed=blessed)
            elif part.tag == ENCODED_FEATURE:
                storage.write_text(f"{part.uri}/{DRIFT_FILE}", drift_report(date).to_json())
            storage.write_text(f"{part.uri}/{SUCCESS_MARKER}", "")


def write_fmap(uri: str, model_date: str, vocab: list[str]) -> FeatureMap:
    fmap = FeatureMap(
        feature_tag="f1",
        model_date=model_date,
        primary_keys=("uid",),
        labels=("label",),
        buckets=(
            Bucket(
                "user",
                "minmax",
                nums=(Feature("age", "double", 1, 0),),
                ctgs=(Feature("city", "string", len(vocab) + 2, 0, meta={"vocab": vocab}),),
            ),
        ),
    )
    fmap.save(uri)
    Normalizers(fmap.checksum, {"user": {"age": {"min": [18.0], "max": [80.0]}}}).save(uri)
    return fmap


def write_metrics(uri: str, *, blessed: bool = True) -> dict[str, Any]:
    """evaluate's metrics.json and plots, by the job's own metrics and plot code."""
    import numpy as np

    from tf_jobs.metrics import BinaryMetrics
    from tf_jobs.plots import binary_plots

    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 400)
    scores = np.clip(labels * 0.35 + rng.random(400) * 0.65, 0, 1)
    accumulator = BinaryMetrics()
    accumulator.update(labels, scores)
    metrics: dict[str, Any] = dict(accumulator.result())
    missed = [] if blessed else ["auc 0.4000 < min 0.9"]
    metrics["gate"] = {"bounds": {"auc": {"min": 0.5}}, "missed": missed, "blessed": blessed}
    metrics["plots"] = binary_plots(accumulator, uri, "m1 2026-01-02")
    storage.write_text(f"{uri}/{METRICS_FILE}", json.dumps(metrics, indent=1))
    return metrics


def drift_report(date: str) -> DriftReport:
    features = (
        FeatureDrift("city", "string", 0.0, 0.01, psi=0.31, unseen_rate=0.2, unseen_rate_fit=0.0),
        FeatureDrift("age", "scalar", 0.0, 0.0, psi=0.02),
    )
    return DriftReport(
        date=date,
        fmap="file:///ws/femodel/TAG=f1/dt=2026-01-01",
        model_date="2026-01-01",
        rows=400,
        rows_fit=380,
        features=features,
        breaches=(Breach("city", "psi", 0.31, 0.25),),
    )
