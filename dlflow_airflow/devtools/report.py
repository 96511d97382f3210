"""What a run left in the workspace: every stage's partitions, metrics, predictions.

Each stage's partitions and their states come from :mod:`dlflow_airflow.ui.partitions`,
which the run report in the Airflow UI shows too.
"""

from __future__ import annotations

import json

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.artifacts import EVALUATE_RESULT, METRICS_FILE
from dlflow_airflow.pipeline.build import Pipeline
from dlflow_airflow.ui.partitions import PartitionState, stage_states

__all__ = ["PartitionState", "read_metrics", "render", "stage_partitions"]


def stage_partitions(pipeline: Pipeline, date: str) -> list[PartitionState]:
    """Every built-in stage's written and reused partitions for ``date``, in task order."""
    out: list[PartitionState] = []
    for name in pipeline.order:
        config = pipeline.stages[name].context(pipeline.spec).job_config(date)
        out.extend(stage_states(name, config))
    return out


def read_metrics(pipeline: Pipeline, date: str) -> dict | None:
    """The ``metrics.json`` of the run's evaluate partition (the first evaluate stage's)."""
    return _metrics(stage_partitions(pipeline, date))


def _metrics(parts: list[PartitionState]) -> dict | None:
    for p in parts:
        uri = f"{p.uri}/{METRICS_FILE}"
        if p.tag == EVALUATE_RESULT and p.complete and storage.exists(uri):
            return json.loads(storage.read_text(uri))
    return None


def render(pipeline: Pipeline, date: str) -> tuple[str, bool]:
    """A text report and whether every stage's partitions are there (written or reused)."""
    parts = stage_partitions(pipeline, date)
    lines = [f"Pipeline {pipeline.spec.dag_id}, partition {date}:"]
    lines.extend(p.render() for p in parts)
    metrics = _metrics(parts)
    if metrics:
        shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        lines.append("Evaluation metrics: " + json.dumps(shown, sort_keys=True))
    predict = [p for p in parts if p.artifact == "predict"]
    if predict:
        lines.append(f"Predictions (Parquet): {predict[0].uri}")
    return "\n".join(lines), all(p.complete for p in parts)
