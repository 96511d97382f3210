"""Evaluate a committed model on one encoded partition and apply the quality gate.

Run by the evaluate operator::

    python -m tf_jobs.evaluate --date 2026-01-02 --job '{"workspace": ..., "model": ...}'

Resolves the model by ``model.date`` (``same | latest | YYYY-MM-DD``; see
:mod:`dlflow_airflow.contract.model_resolution`), checks its manifest against the
fmap, scores ``encoded/TAG=<feature>/dt=<date>`` (or the TFRecords with
``input: tfrecord``) and commits ``metrics.json`` plus PNG plots to
``evaluate/TAG=<model>/dt=<date>``. Then the gate: a model meeting every
bound gets ``BLESSED`` in its partition, one missing any loses it. The last
line printed is the task's result: the metrics, ``output`` and ``blessed``.

Job options read (``job.options``): ``input``, ``gate``, ``gate_miss``
(warn | fail), ``plots`` (true), ``batch_size`` (8192), ``threads``, ``seed``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.fmap import FeatureMap, FmapError
from dlflow_airflow.contract.jobconf import JobConfig
from dlflow_airflow.contract.model_resolution import (
    ModelNotFoundError,
    ResolvedModel,
    resolve_model_partition,
)
from tf_jobs import inputs, model_io, models, plots, tfrecord_input
from tf_jobs.gate import GateMissedError, check_gate, record_blessing
from tf_jobs.metrics import BinaryMetrics, RegressionMetrics
from tf_jobs.train import (
    DEFAULT_SEED,
    MANIFEST_FILE,
    configure_tensorflow,
    discard,
    execute,
)

METRICS_FILE = "metrics.json"
EVAL_BATCH_ROWS = 8192


def run(job: JobConfig) -> dict[str, Any]:
    """Score the partition, commit metrics and plots, bless or not; returns the result."""
    label = inputs.single_label(job.feature.labels)
    layout = job.layout
    resolved = resolve_model(job)
    fmap = FeatureMap.load(layout.femodel(job.feature.tag, resolved.date))
    manifest = check_manifest(resolved.uri, fmap)
    task = manifest.get("task") or models.get_model(job.model.name).task
    kind = str(job.options.get("input", "parquet"))
    batch_size = int(job.options.get("batch_size", EVAL_BATCH_ROWS))
    options = inputs.InputOptions(batch_size=batch_size, shuffle=False)
    if kind == "tfrecord":
        source = tfrecord_input.open_tfrecord(layout.tfrecord(job.feature.tag, job.date))
        summary = tfrecord_input.scan_labels(source, label)
    else:
        source = inputs.open_encoded(layout.encoded(job.feature.tag, job.date), fmap, label)
        summary = inputs.scan_labels(source, label)
    if not summary.rows:
        raise inputs.EncodedDataError(f"encoded partition {source.uri} has no rows to evaluate")
    if task == models.BINARY:
        inputs.require_binary(summary, label, source.uri)

    tf = configure_tensorflow(
        job.options.get("threads"), int(job.options.get("seed", DEFAULT_SEED))
    )
    model = model_io.load_model(resolved.uri)
    check_model_inputs(model, fmap, resolved.uri)
    if kind == "tfrecord":
        dataset = tfrecord_input.make_dataset(source, fmap, label, options, rows=summary.rows)
    else:
        dataset = inputs.make_dataset(source, fmap, label, options, rows=summary.rows)
    # One traced graph instead of an eager call per batch.
    score = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    accumulator = BinaryMetrics() if task == models.BINARY else RegressionMetrics()
    try:
        for features, labels in dataset:
            accumulator.update(labels.numpy(), score(features).numpy())
    except tf.errors.DataLossError as exc:
        raise inputs.EncodedDataError(f"corrupt input under {source.uri}: {exc.message}") from None

    computed = accumulator.result()
    gate = dict(job.options.get("gate") or {})
    misses = check_gate(computed, gate)
    blessed = not misses
    metrics: dict[str, Any] = {
        **computed,
        "task": task,
        "date": job.date,
        "model_tag": job.model.tag,
        "model_date": resolved.date,
        "feature_tag": job.feature.tag,
        "gate": {"bounds": gate, "missed": [m.describe() for m in misses], "blessed": blessed},
    }
    if isinstance(accumulator, BinaryMetrics):
        metrics["calibration_table"] = accumulator.calibration_table()

    final = layout.evaluate(job.model.tag, job.date)
    staging = storage.staging_uri(final)
    title = f"{job.model.tag}@{resolved.date} on {job.date}"
    try:
        if job.options.get("plots", True):
            metrics["plots"] = _write_plots(accumulator, staging, title)
        storage.write_text(f"{staging}/{METRICS_FILE}", json.dumps(metrics, indent=1))
        storage.commit(staging, final)
    except BaseException:
        discard(staging)
        raise
    record_blessing(
        resolved.uri,
        blessed,
        {"evaluated_on": job.date, "metrics": final, "gate": gate},
    )
    print(f"evaluate {title}: {_summary(computed)} -> {final}", flush=True)
    if misses:
        print(
            f"gate: model {resolved.uri} is NOT blessed; missed: "
            + "; ".join(m.describe() for m in misses),
            flush=True,
        )
        if job.options.get("gate_miss") == "fail":
            raise GateMissedError(
                f"model {resolved.uri} missed the gate: " + "; ".join(m.describe() for m in misses)
            )
    else:
        print(f"gate: model {resolved.uri} is blessed ({len(gate)} bound(s) met)", flush=True)
    result = {k: v for k, v in metrics.items() if k not in ("calibration_table", "gate")}
    return {**result, "output": final, "blessed": blessed}


def resolve_model(job: JobConfig) -> ResolvedModel:
    """The model to evaluate (blessed or not: evaluation is what blesses it)."""
    return resolve_model_partition(
        job.layout, job.model.tag, job.model.date, job.date, blessed_only=False
    )


def resolve_model_date(job: JobConfig) -> str:
    return resolve_model(job).date


def check_manifest(model_uri: str, fmap: FeatureMap) -> dict[str, Any]:
    """The model's manifest; refuses a model trained on another fmap (its inputs differ)."""
    uri = f"{model_uri}/{MANIFEST_FILE}"
    if not storage.exists(uri):
        raise ModelNotFoundError(f"model {model_uri} has no {MANIFEST_FILE}; retrain it")
    manifest = json.loads(storage.read_text(uri))
    trained_with = manifest.get("fmap_checksum")
    if trained_with != fmap.checksum:
        raise FmapError(
            f"model {model_uri} was trained with fmap {trained_with}, but the fmap of "
            f"{fmap.feature_tag}/{fmap.model_date} is {fmap.checksum}"
        )
    return manifest


def check_model_inputs(model: Any, fmap: FeatureMap, model_uri: str) -> None:
    names = sorted(tensor.name for tensor in model.inputs)
    expected = sorted(fmap.input_columns())
    if names != expected:
        raise FmapError(f"model {model_uri} takes inputs {names}, but the fmap gives {expected}")


def _write_plots(accumulator: BinaryMetrics | RegressionMetrics, folder: str, title: str) -> list:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("plots skipped: matplotlib is not installed in the job's environment", flush=True)
        return []
    if isinstance(accumulator, BinaryMetrics):
        return plots.binary_plots(accumulator, folder, title)
    return plots.regression_plots(accumulator, folder, title)


def _summary(metrics: dict[str, Any]) -> str:
    return ", ".join(
        f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v if v is not None else 'n/a'}"
        for k, v in metrics.items()
    )


def main(argv: Sequence[str] | None = None) -> None:
    execute(run, argv, extra_errors=(GateMissedError,))


if __name__ == "__main__":
    main()
