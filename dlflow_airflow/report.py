"""What a finished run left in the workspace: partitions, metrics, predictions."""

from __future__ import annotations

import json
from dataclasses import dataclass

from dlflow_airflow import storage
from dlflow_airflow.pipeline import Pipeline

# stage kind -> (artifact, which tag names the partition, which date)
_OUTPUTS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "merge": (("raw", "feature", "date"),),
    "encode": (("encoded", "feature", "date"), ("femodel", "feature", "model_date")),
    "train": (("model", "model", "model_date"),),
    "evaluate": (("evaluate", "model", "date"),),
    "predict": (("predict", "model", "date"),),
}


@dataclass(frozen=True)
class Partition:
    stage: str
    artifact: str
    uri: str
    complete: bool


def stage_partitions(pipeline: Pipeline, date: str) -> list[Partition]:
    """Every built-in stage's output partition for ``date``, in task order."""
    from dlflow_airflow.layout import Layout

    spec = pipeline.spec
    layout = Layout(spec.workspace)
    model_date = date if spec.model.date in ("same", "latest") else spec.model.date
    dates = {"date": date, "model_date": model_date}
    tags = {"feature": spec.feature.tag, "model": spec.model.tag}
    out: list[Partition] = []
    for name in pipeline.order:
        stage = pipeline.stages[name]
        for artifact, tag, which in _OUTPUTS.get(stage.kind_name, ()):
            uri = layout.partition(artifact, tags[tag], dates[which])
            out.append(Partition(name, artifact, uri, storage.is_complete(uri)))
        if stage.kind_name == "encode" and getattr(stage.options, "tfrecord", False):
            uri = layout.tfrecord(spec.feature.tag, date)
            out.append(Partition(name, "tfrecord", uri, storage.is_complete(uri)))
    return out


def read_metrics(pipeline: Pipeline, date: str) -> dict | None:
    from dlflow_airflow.layout import Layout

    uri = f"{Layout(pipeline.spec.workspace).evaluate(pipeline.spec.model.tag, date)}/metrics.json"
    return json.loads(storage.read_text(uri)) if storage.exists(uri) else None


def render(pipeline: Pipeline, date: str) -> tuple[str, bool]:
    """A text report and whether every stage output is complete."""
    parts = stage_partitions(pipeline, date)
    lines = [f"Pipeline {pipeline.spec.dag_id}, partition {date}:"]
    for p in parts:
        lines.append(
            f"  {'ok     ' if p.complete else 'MISSING'} {p.stage:<10} {p.artifact:<9} {p.uri}"
        )
    metrics = read_metrics(pipeline, date)
    if metrics:
        shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        lines.append("Evaluation metrics: " + json.dumps(shown, sort_keys=True))
    predict = [p for p in parts if p.artifact == "predict"]
    if predict:
        lines.append(f"Predictions (Parquet): {predict[0].uri}")
    return "\n".join(lines), all(p.complete for p in parts)
