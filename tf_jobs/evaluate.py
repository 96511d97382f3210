"""Evaluate a committed model on one encoded partition.

Run by the evaluate operator::

    python -m tf_jobs.evaluate --date 2026-01-02 --job '{"workspace": ..., "model": ...}'

Loads ``model/TAG=<model>/dt=<model date>`` (``model.date: latest`` picks the
newest complete model not after the run's date), scores
``encoded/TAG=<feature>/dt=<date>`` and commits ``metrics.json`` to
``evaluate/TAG=<model>/dt=<date>``. The last line printed is the task's
result: the metrics plus ``output``.

Job options read (``job.options``): ``batch_size`` (8192 rows per scoring
step), ``threads``, ``seed``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from dlflow_airflow import storage
from dlflow_airflow.fmap import FeatureMap, FmapError
from dlflow_airflow.jobconf import JobConfig
from tf_jobs import inputs, model_io, models
from tf_jobs.metrics import BinaryMetrics
from tf_jobs.model_io import ModelNotFoundError
from tf_jobs.models import ModelConfigError
from tf_jobs.train import DEFAULT_SEED, MANIFEST_FILE, configure_tensorflow, discard, execute

METRICS_FILE = "metrics.json"
EVAL_BATCH_ROWS = 8192


def run(job: JobConfig) -> dict[str, Any]:
    """Score the partition, commit ``metrics.json``; returns the metrics and ``output``."""
    label = inputs.single_label(job.feature.labels)
    spec = models.get_model(job.model.name)
    if spec.task != models.BINARY:
        raise ModelConfigError(
            f"evaluate computes binary-classification metrics; model {spec.name!r} "
            f"learns {spec.task!r} labels"
        )
    layout = job.layout
    model_date = resolve_model_date(job)
    model_uri = layout.model(job.model.tag, model_date)
    fmap = FeatureMap.load(layout.femodel(job.feature.tag, model_date))
    check_manifest(model_uri, fmap)
    source = inputs.open_encoded(layout.encoded(job.feature.tag, job.date), fmap, label)
    summary = inputs.scan_labels(source, label)
    if not summary.rows:
        raise inputs.EncodedDataError(f"encoded partition {source.uri} has no rows to evaluate")
    inputs.require_binary(summary, label, source.uri)

    tf = configure_tensorflow(
        job.options.get("threads"), int(job.options.get("seed", DEFAULT_SEED))
    )
    model = model_io.load_model(model_uri)
    check_model_inputs(model, fmap, model_uri)
    options = inputs.InputOptions(
        batch_size=int(job.options.get("batch_size", EVAL_BATCH_ROWS)), shuffle=False
    )
    dataset = inputs.make_dataset(source, fmap, label, options, rows=summary.rows)
    # One traced graph instead of an eager call per batch.
    score = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    accumulator = BinaryMetrics()
    for features, labels in dataset:
        accumulator.update(labels.numpy(), score(features).numpy())

    metrics: dict[str, Any] = {
        **accumulator.result(),
        "date": job.date,
        "model_tag": job.model.tag,
        "model_date": model_date,
        "feature_tag": job.feature.tag,
    }
    final = layout.evaluate(job.model.tag, job.date)
    staging = storage.staging_uri(final)
    try:
        storage.write_text(f"{staging}/{METRICS_FILE}", json.dumps(metrics, indent=1))
        storage.commit(staging, final)
    except BaseException:
        discard(staging)
        raise
    auc = "n/a (one class)" if metrics["auc"] is None else f"{metrics['auc']:.4f}"
    print(
        f"evaluate {job.model.tag}@{model_date} on {source.uri}: rows {metrics['rows']}, "
        f"auc {auc}, log_loss {metrics['log_loss']:.4f}, accuracy {metrics['accuracy']:.4f}, "
        f"positive_rate {metrics['positive_rate']:.4f} -> {final}",
        flush=True,
    )
    return {**metrics, "output": final}


def resolve_model_date(job: JobConfig) -> str:
    """The model date to use; ``latest`` is the newest complete model up to the run's date."""
    if job.model.date != "latest":
        return job.model_date
    root = job.layout.root("model", job.model.tag)
    dates = [
        name[len("dt=") :]
        for name in storage.list_names(root)
        if name.startswith("dt=")
        and name[len("dt=") :] <= job.date
        and storage.is_complete(f"{root}/{name}")
    ]
    if not dates:
        raise ModelNotFoundError(f"no complete model under {root} dated on or before {job.date}")
    return max(dates)


def check_manifest(model_uri: str, fmap: FeatureMap) -> None:
    """Refuse a model trained on another fmap: its inputs would mean other things."""
    uri = f"{model_uri}/{MANIFEST_FILE}"
    if not storage.exists(uri):
        return  # a model saved by other means; the input-name check still applies
    trained_with = json.loads(storage.read_text(uri)).get("fmap_checksum")
    if trained_with and trained_with != fmap.checksum:
        raise FmapError(
            f"model {model_uri} was trained with fmap {trained_with}, but the fmap of "
            f"{fmap.feature_tag}/{fmap.model_date} is {fmap.checksum}"
        )


def check_model_inputs(model: Any, fmap: FeatureMap, model_uri: str) -> None:
    names = sorted(tensor.name for tensor in model.inputs)
    expected = sorted(fmap.input_columns())
    if names != expected:
        raise FmapError(f"model {model_uri} takes inputs {names}, but the fmap gives {expected}")


def main(argv: Sequence[str] | None = None) -> None:
    execute(run, argv)


if __name__ == "__main__":
    main()
