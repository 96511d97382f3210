"""Train a model on one encoded partition and commit it to the model partition.

Run by the train operator::

    python -m tf_jobs.train --date 2026-01-01 --job '{"workspace": ..., "model": ...}'

Reads ``encoded/TAG=<feature>/dt=<date>`` and the fmap of the model date,
fits the registered model named by ``model.name`` and writes
``model/TAG=<model>/dt=<model date>/`` (``model.keras``, ``history.json``,
``manifest.json``, ``_SUCCESS``) through a staging folder. The last line
printed is the task's result.

Job options read (``job.options``): ``seed`` (42), ``shuffle`` (true),
``shuffle_buffer`` (65536 rows), ``threads`` (the CPUs this process may use).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from dlflow_airflow import storage
from dlflow_airflow.fmap import FeatureMap, FmapError
from dlflow_airflow.jobconf import JobConfig, emit_result
from dlflow_airflow.layout import PartitionDateError
from tf_jobs import inputs, model_io, models
from tf_jobs.inputs import EncodedDataError
from tf_jobs.model_io import ModelNotFoundError
from tf_jobs.models import ModelConfigError

HISTORY_FILE = "history.json"
MANIFEST_FILE = "manifest.json"
DEFAULT_SEED = 42

# Errors caused by the job's config or data: reported as one line, no traceback.
USER_ERRORS = (
    EncodedDataError,
    FmapError,
    ModelConfigError,
    ModelNotFoundError,
    PartitionDateError,
)


def run(job: JobConfig) -> dict[str, Any]:
    """Train, save and commit; returns the task result."""
    label = inputs.single_label(job.feature.labels)
    spec = models.get_model(job.model.name)
    params = models.resolve_params(spec, job.model.params)
    layout = job.layout
    model_date = job.model_date
    fmap = FeatureMap.load(layout.femodel(job.feature.tag, model_date))
    source = inputs.open_encoded(layout.encoded(job.feature.tag, job.date), fmap, label)
    summary = inputs.scan_labels(source, label)
    if not summary.rows:
        raise EncodedDataError(f"encoded partition {source.uri} has no rows to train on")
    if spec.task == models.BINARY:
        inputs.require_binary(summary, label, source.uri)

    options = inputs.input_options(
        job.options, params["batch_size"], shuffle_default=True, seed_default=DEFAULT_SEED
    )
    tf = configure_tensorflow(job.options.get("threads"), options.seed)
    print(
        f"train {spec.name} on {source.uri}: {summary.rows} rows, "
        f"{len(source.files)} part files, positive rate "
        f"{summary.positives / summary.rows:.4f}; params {json.dumps(params, sort_keys=True)}",
        flush=True,
    )
    model = models.build_model(spec, fmap, params)
    dataset = inputs.make_dataset(source, fmap, label, options, rows=summary.rows)
    # shuffle=False: the dataset shuffles itself (Keras cannot shuffle a tf.data input).
    history = model.fit(dataset, epochs=params["epochs"], verbose=2, shuffle=False)
    epochs = _history_rows(history.history)

    final = layout.model(job.model.tag, model_date)
    staging = storage.staging_uri(final)
    try:
        model_io.save_model(model, staging)
        storage.write_text(f"{staging}/{HISTORY_FILE}", json.dumps({"epochs": epochs}, indent=1))
        manifest = {
            "model": {"tag": job.model.tag, "name": spec.name, "date": model_date},
            "feature": {"tag": job.feature.tag, "label": label},
            "fmap_checksum": fmap.checksum,
            "input_columns": fmap.input_columns(),
            "params": params,
            "trained_on": {"date": job.date, "rows": summary.rows, "uri": source.uri},
            "seed": options.seed,
            "tensorflow": tf.__version__,
        }
        storage.write_text(f"{staging}/{MANIFEST_FILE}", json.dumps(manifest, indent=1))
        storage.commit(staging, final)
    except BaseException:
        discard(staging)
        raise
    return {
        "model": final,
        "rows": summary.rows,
        "epochs": len(epochs),
        "final_loss": epochs[-1].get("loss") if epochs else None,
    }


def configure_tensorflow(threads: Any, seed: int) -> Any:
    """Import TensorFlow with quiet logs, bounded threads and fixed seeds; returns ``tf``."""
    # Hides TF's C++ info and warning lines (errors stay) that would flood the
    # task log; TF 2.21 still prints a few lines at import whatever the level.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    count = int(threads) if threads else available_cpus()
    try:
        # Without a cap TF sizes its pools by the host's cores, not the
        # container's share, and oversubscribes a 2-core worker.
        tf.config.threading.set_intra_op_parallelism_threads(count)
        tf.config.threading.set_inter_op_parallelism_threads(min(count, 2))
    except RuntimeError:
        # TF already started in this interpreter (a second job in one test
        # process); its pools cannot be resized, the first setting stays.
        pass
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    return tf


def available_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def discard(staging: str) -> None:
    """Remove a staging folder after a failure; a leftover is harmless, so errors are ignored."""
    try:
        filesystem, path = storage.resolve(staging)
        filesystem.delete_dir(path)
    except OSError:
        pass


def _history_rows(history: dict[str, list[float]]) -> list[dict[str, float]]:
    epochs = max((len(values) for values in history.values()), default=0)
    return [
        {"epoch": i + 1, **{name: float(values[i]) for name, values in history.items()}}
        for i in range(epochs)
    ]


def execute(run_job: Callable[[JobConfig], dict[str, Any]], argv: Sequence[str] | None) -> None:
    """Parse the job, run it and print its result; config and data errors exit 1 in one line."""
    job = JobConfig.from_argv(argv)
    try:
        result = run_job(job)
    except USER_ERRORS as exc:
        print(f"ERROR {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    emit_result(result)


def main(argv: Sequence[str] | None = None) -> None:
    execute(run, argv)


if __name__ == "__main__":
    main()
