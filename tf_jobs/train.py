"""Train a model on one encoded partition and commit it to the model partition.

Run by the train operator::

    python -m tf_jobs.train --date 2026-01-01 --job '{"workspace": ..., "model": ...}'

Reads ``encoded/TAG=<feature>/dt=<date>`` and the fmap of the model date,
fits the registered model named by ``model.name`` and writes
``model/TAG=<model>/dt=<model date>/`` (``model.keras``, ``history.json``,
``manifest.json``, ``_SUCCESS``) through a staging folder. The last line
printed is the task's result.

Job options read (``job.options``, the train stage's YAML keys): ``input``
(parquet | tfrecord), ``warm_start`` (none | latest | YYYY-MM-DD),
``checkpoint_every_steps`` (500; a retried task resumes from the last
checkpoint), ``seed`` (42), ``shuffle`` (true), ``shuffle_buffer`` (65536
rows), ``threads`` (the CPUs this process may use). With ``TF_CONFIG`` naming
several workers (``workers: N``), training uses ``MultiWorkerMirroredStrategy``
and only worker 0 commits the model.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from importlib import metadata
from typing import Any

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.fmap import FeatureMap, FmapError
from dlflow_airflow.contract.jobconf import JobConfig, emit_result
from dlflow_airflow.contract.layout import PartitionDateError, local_path
from dlflow_airflow.contract.model_resolution import ModelNotFoundError, resolve_model_partition
from dlflow_airflow.runners.base import RESULT_FILE_ENV
from tf_jobs import distribution, inputs, model_io, models, tfrecord_input
from tf_jobs.inputs import EncodedDataError
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


@dataclass(frozen=True)
class TrainJobOptions:
    """The train stage's options as the job reads them (validated by the stage's schema)."""

    input: str = "parquet"
    warm_start: str = "none"
    checkpoint_every_steps: int = 500
    seed: int = DEFAULT_SEED
    threads: int | None = None

    @classmethod
    def from_options(cls, raw: dict[str, Any]) -> TrainJobOptions:
        return cls(
            input=str(raw.get("input", "parquet")),
            warm_start=str(raw.get("warm_start", "none")),
            checkpoint_every_steps=int(raw.get("checkpoint_every_steps", 500)),
            seed=int(raw.get("seed", DEFAULT_SEED)),
            threads=raw.get("threads"),
        )


def run(job: JobConfig, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Train, save and commit; returns the task result.

    :param callbacks: extra Keras callbacks (observers, tests).
    """
    label = inputs.single_label(job.feature.labels)
    spec = models.get_model(job.model.name)
    params = models.resolve_params(spec, job.model.params)
    opts = TrainJobOptions.from_options(job.options)
    layout = job.layout
    model_date = job.model_date
    fmap = FeatureMap.load(layout.femodel(job.feature.tag, model_date))
    source, summary = open_input(job, fmap, label, opts.input)
    if not summary.rows:
        raise EncodedDataError(f"encoded partition {source.uri} has no rows to train on")
    if spec.task == models.BINARY:
        inputs.require_binary(summary, label, source.uri)

    options = inputs.input_options(
        job.options, params["batch_size"], shuffle_default=True, seed_default=DEFAULT_SEED
    )
    tf = configure_tensorflow(opts.threads, options.seed)
    cluster = distribution.Cluster.from_env()
    strategy = distribution.strategy(cluster)
    warm_uri = warm_start_partition(job, opts.warm_start, model_date)
    print(
        f"train {spec.name} on {source.uri} ({opts.input}): {summary.rows} rows, "
        f"{len(source.files)} part files, positive rate "
        f"{summary.positives / summary.rows:.4f}; params {json.dumps(params, sort_keys=True)}; "
        f"workers {cluster.workers}; warm start {warm_uri or 'none'}",
        flush=True,
    )
    with strategy.scope():
        model = models.build_model(spec, fmap, params)
        if warm_uri:
            load_warm_weights(model, warm_uri)
    dataset = make_input(source, fmap, label, options, summary.rows, opts.input, cluster)
    checkpoints = distribution.checkpoint_dir(layout, job.model.tag, model_date, cluster)
    try:
        if cluster.workers > 1:
            history = distribution.fit_multi_worker(
                model,
                dataset,
                epochs=params["epochs"],
                strategy=strategy,
                checkpoints=checkpoints,
                every_steps=opts.checkpoint_every_steps,
            )
        else:
            if storage.exists(f"{checkpoints}/latest.weights.h5"):
                print(f"resuming from checkpoint {checkpoints}", flush=True)
            backup = _backup_callback(checkpoints, opts.checkpoint_every_steps)
            # shuffle=False: the dataset shuffles itself (Keras cannot shuffle a tf.data input).
            history = model.fit(
                dataset,
                epochs=params["epochs"],
                verbose=2,
                shuffle=False,
                callbacks=[backup, *callbacks],
            ).history
    except tf.errors.DataLossError as exc:
        raise EncodedDataError(f"corrupt input under {source.uri}: {exc.message}") from None
    epochs = _history_rows(history)
    final = layout.model(job.model.tag, model_date)
    result = {
        "model": final,
        "rows": summary.rows,
        "epochs": len(epochs),
        "final_loss": epochs[-1].get("loss") if epochs else None,
    }
    if not cluster.is_chief:
        return {**result, "worker": cluster.index}  # only the chief commits the partition

    staging = storage.staging_uri(final)
    try:
        model_io.save_model(model, staging)
        storage.write_text(f"{staging}/{HISTORY_FILE}", json.dumps({"epochs": epochs}, indent=1))
        manifest = {
            "model": {"tag": job.model.tag, "name": spec.name, "date": model_date},
            "task": spec.task,
            "feature": {"tag": job.feature.tag, "label": label},
            "fmap_checksum": fmap.checksum,
            "input_columns": fmap.input_columns(),
            "params": params,
            "trained_on": {"date": job.date, "rows": summary.rows, "uri": source.uri},
            "warm_start": warm_uri,
            "workers": cluster.workers,
            "seed": options.seed,
            "history": epochs[-1] if epochs else {},
            "tensorflow": tf.__version__,
            "dlflow_airflow": package_version(),
        }
        storage.write_text(f"{staging}/{MANIFEST_FILE}", json.dumps(manifest, indent=1))
        storage.commit(staging, final)
    except BaseException:
        discard(staging)
        raise
    # The model is committed: a rerun trains afresh.
    discard(distribution.checkpoint_root(layout, job.model.tag, model_date))
    return result


def open_input(job: JobConfig, fmap: FeatureMap, label: str, kind: str) -> tuple[Any, Any]:
    """The opened input partition (``parquet`` or ``tfrecord``) and its label summary."""
    if kind == "tfrecord":
        source = tfrecord_input.open_tfrecord(job.layout.tfrecord(job.feature.tag, job.date))
        return source, tfrecord_input.scan_labels(source, label)
    if kind != "parquet":
        raise EncodedDataError(f"options.input must be 'parquet' or 'tfrecord', got {kind!r}")
    source = inputs.open_encoded(job.layout.encoded(job.feature.tag, job.date), fmap, label)
    return source, inputs.scan_labels(source, label)


def make_input(
    source: Any,
    fmap: FeatureMap,
    label: str,
    options: inputs.InputOptions,
    rows: int,
    kind: str,
    cluster: distribution.Cluster,
) -> Any:
    if kind == "tfrecord":
        dataset = tfrecord_input.make_dataset(source, fmap, label, options, rows=rows)
    else:
        dataset = inputs.make_dataset(source, fmap, label, options, rows=rows)
    return distribution.shard(dataset, cluster, rows, options.batch_size)


def warm_start_partition(job: JobConfig, warm_start: str, model_date: str) -> str | None:
    """The model partition to start from: ``none``, ``latest`` (before this model) or a date."""
    if warm_start == "none":
        return None
    layout = job.layout
    if warm_start == "latest":
        before = (date.fromisoformat(model_date) - timedelta(days=1)).isoformat()
        try:
            return resolve_model_partition(
                layout, job.model.tag, "latest", before, blessed_only=False
            ).uri
        except ModelNotFoundError:
            print(f"warm start: no model of {job.model.tag} before {model_date}; from scratch")
            return None
    return resolve_model_partition(
        layout, job.model.tag, warm_start, model_date, blessed_only=False
    ).uri


def load_warm_weights(model: Any, uri: str) -> None:
    earlier = model_io.load_model(uri)
    try:
        model.set_weights(earlier.get_weights())
    except ValueError as exc:
        raise ModelConfigError(
            f"cannot warm start from {uri}: its weights do not fit this model "
            f"(changed params or fmap?): {exc}"
        ) from None


def _backup_callback(checkpoints: str, every_steps: int) -> Any:
    import keras

    return keras.callbacks.BackupAndRestore(
        local_path(checkpoints) if checkpoints.startswith("file://") else checkpoints,
        save_freq=every_steps,
        delete_checkpoint=False,
    )


def package_version() -> str:
    try:
        return metadata.version("dlflow-airflow")
    except metadata.PackageNotFoundError:
        return "unknown"


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


def execute(
    run_job: Callable[[JobConfig], dict[str, Any]],
    argv: Sequence[str] | None,
    extra_errors: tuple[type[BaseException], ...] = (),
) -> None:
    """Parse the job, run it and print its result; config and data errors exit 1 in one line."""
    job = JobConfig.from_argv(argv)
    try:
        result = run_job(job)
    except (*USER_ERRORS, *extra_errors) as exc:
        print(f"ERROR {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    emit_result(result)
    result_file = os.environ.get(RESULT_FILE_ENV)
    if result_file:  # a container runner hands the result to Airflow through this file
        os.makedirs(os.path.dirname(result_file) or ".", exist_ok=True)
        with open(result_file, "w", encoding="utf-8") as handle:
            json.dump(result, handle)


def main(argv: Sequence[str] | None = None) -> None:
    execute(run, argv)


if __name__ == "__main__":
    main()
