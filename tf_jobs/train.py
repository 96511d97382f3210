"""Train a model on one encoded partition and commit it to the model partition.

Run by the train operator::

    python -m tf_jobs.train --date 2026-01-01 --job '{"workspace": ..., "model": ...}'

The artifact contract (:func:`~dlflow_airflow.contract.artifacts.stage_io`)
names the partitions: it reads ``encoded/TAG=<feature>/dt=<date>`` (or the
TFRecords with ``input: tfrecord``) and the fmap of the model date, fits the
registered model named by ``model.name`` and writes
``model/TAG=<model>/dt=<model date>/`` (``model.keras``, ``history.json``,
``manifest.json``, ``_SUCCESS``) through a staging folder. The last line
printed is the task's result.

Options: :class:`~dlflow_airflow.contract.options.TrainOptions` (``input``,
``warm_start``, ``checkpoint_every_steps`` (a retried task resumes from the
last checkpoint), ``seed``, ``shuffle``, ``shuffle_buffer``, ``threads``).
With ``TF_CONFIG`` naming several workers (``workers: N``), training uses
``MultiWorkerMirroredStrategy`` and only worker 0 commits the model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from importlib import metadata
from typing import Any

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.artifacts import FMAP, TRAINED_MODEL, stage_io
from dlflow_airflow.contract.fmap import FeatureMap
from dlflow_airflow.contract.jobconf import JobConfig
from dlflow_airflow.contract.layout import local_path
from dlflow_airflow.contract.model_resolution import ModelNotFoundError, resolve_model_partition
from dlflow_airflow.contract.tasks import Head
from tf_jobs import distribution, inputs, model_io, models
from tf_jobs.harness import committing, configure_tensorflow, discard, run_job
from tf_jobs.model_io import HISTORY_FILE, MANIFEST_FILE
from tf_jobs.models import ModelConfigError
from tf_jobs.signature import SIGNATURE_KEY, SignatureError, signature_of
from tf_jobs.stage_input import StageInput, open_stage_input, stage_heads


@dataclass(frozen=True)
class TrainPlan:
    """What one training run uses, settled before TensorFlow starts.

    :param model_date: the model date (the contract's), also the fmap's date.
    :param output: the model partition this run commits.
    """

    job: JobConfig
    spec: models.ModelSpec
    params: dict[str, Any]
    fmap: FeatureMap
    model_date: str
    output: str
    data: StageInput


def run(job: JobConfig, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Train, save and commit; returns the task result.

    :param callbacks: extra Keras callbacks (observers, tests).
    """
    plan = plan_training(job)
    tf = configure_tensorflow(job.options.threads, job.options.seed)
    cluster = distribution.Cluster.from_env()
    # Created before any other TF work, as MultiWorkerMirroredStrategy requires.
    strategy = distribution.strategy(cluster)
    warm_uri = warm_start_partition(job, plan.model_date)
    print(describe(plan, cluster, warm_uri), flush=True)
    with strategy.scope():
        model = models.build_model(plan.spec, plan.fmap, plan.params)
        if warm_uri:
            load_warm_weights(model, warm_uri)
    with plan.data.reading():
        epochs = _history_rows(fit(plan, model, strategy, cluster, callbacks))
    result = {
        "model": plan.output,
        "rows": plan.data.rows,
        "epochs": len(epochs),
        "final_loss": epochs[-1].get("loss") if epochs else None,
    }
    if plan.spec.task != models.BINARY:  # a binary model's result stays as it always was
        result["task"] = plan.spec.task
    if not cluster.is_chief:
        return {**result, "worker": cluster.index}  # only the chief commits the partition
    manifest = build_manifest(plan, epochs, warm_uri, cluster, tf.__version__)
    manifest[SIGNATURE_KEY] = recorded_model_signature(model)
    commit_model(plan, model, epochs, manifest)
    # The model is committed: a rerun trains afresh.
    discard(distribution.checkpoint_root(job.layout, job.model.tag, plan.model_date))
    return result


def plan_training(job: JobConfig) -> TrainPlan:
    """Resolve the model and its params, the run's partitions and heads, and open the input.

    :raises ContractError: ``model.date: latest`` (train writes a model for a date).
    :raises ModelConfigError: the job's labels or heads do not suit the model's task.
    :raises FmapError: the fmap encoded the labels for another task (see
        :func:`~tf_jobs.stage_input.stage_heads`).
    """
    spec = models.get_model(job.model.name)
    params = models.resolve_params(spec, job.model.params)
    io = stage_io(job)
    model_partition = io.get(TRAINED_MODEL)
    fmap = FeatureMap.load(io.get(FMAP).uri)
    heads = stage_heads(job, fmap, spec.task)
    data = open_stage_input(io, job.options.input, fmap, heads, task=spec.task, purpose="train on")
    return TrainPlan(
        job=job,
        spec=spec,
        params=params,
        fmap=fmap,
        model_date=model_partition.date,
        output=model_partition.uri,
        data=data,
    )


def describe(plan: TrainPlan, cluster: distribution.Cluster, warm_uri: str | None) -> str:
    """The task log's line on what is trained on what."""
    data = plan.data
    return (
        f"train {plan.spec.name} ({plan.spec.task}) on {data.uri} ({data.kind}): "
        f"{data.rows} rows, {len(data.source.files)} part files, "
        f"{'; '.join(describe_labels(data))}; "
        f"params {json.dumps(plan.params, sort_keys=True)}; "
        f"workers {cluster.workers}; warm start {warm_uri or 'none'}"
    )


def describe_labels(data: StageInput) -> list[str]:
    """One phrase per head on its labels: positive rate, mean, or rows per class."""
    phrases = []
    for head in data.heads:
        stats = data.summary.of(head.label)
        if head.kind == models.BINARY:
            phrases.append(f"{head.label} positive rate {stats.total / data.rows:.4f}")
        elif head.kind == models.MULTICLASS:
            counts = ", ".join(
                f"{c}: {n}" for c, n in zip(head.classes, stats.class_rows, strict=True)
            )
            phrases.append(f"{head.label} rows per class {{{counts}}}")
        else:
            phrases.append(f"{head.label} mean {stats.total / data.rows:.4g}")
    return phrases


def fit(
    plan: TrainPlan,
    model: Any,
    strategy: Any,
    cluster: distribution.Cluster,
    callbacks: Sequence[Any],
) -> dict[str, list[float]]:
    """Fit ``model`` on this worker's batches, resuming from a checkpoint; returns the history."""
    job, options = plan.job, plan.job.options
    # Several workers each read their share of batches from the files.
    memory_mb = options.in_memory_mb if cluster.workers == 1 else 0
    batches = inputs.input_options(options, plan.params["batch_size"], memory_mb)
    dataset = distribution.shard(
        plan.data.dataset(batches), cluster, plan.data.rows, batches.batch_size
    )
    checkpoints = distribution.checkpoint_dir(job.layout, job.model.tag, plan.model_date, cluster)
    if cluster.workers > 1:
        return distribution.fit_multi_worker(
            model,
            dataset,
            epochs=plan.params["epochs"],
            strategy=strategy,
            checkpoints=checkpoints,
            every_steps=options.checkpoint_every_steps,
        )
    if storage.exists(f"{checkpoints}/latest.weights.h5"):
        print(f"resuming from checkpoint {checkpoints}", flush=True)
    backup = _backup_callback(checkpoints, options.checkpoint_every_steps)
    # shuffle=False: the dataset shuffles itself (Keras cannot shuffle a tf.data input).
    return model.fit(
        dataset,
        epochs=plan.params["epochs"],
        verbose=2,
        shuffle=False,
        callbacks=[backup, *callbacks],
    ).history


def build_manifest(
    plan: TrainPlan,
    epochs: list[dict[str, float]],
    warm_uri: str | None,
    cluster: distribution.Cluster,
    tf_version: str,
) -> dict[str, Any]:
    """What evaluate and people need to know about the model beside its weights."""
    job = plan.job
    return {
        "model": {"tag": job.model.tag, "name": plan.spec.name, "date": plan.model_date},
        "task": plan.spec.task,
        "heads": [head_entry(head) for head in plan.data.heads],
        "feature": {"tag": job.feature.tag, **label_entry(plan.data.labels)},
        "fmap_checksum": plan.fmap.checksum,
        "input_columns": plan.fmap.input_columns(),
        "params": plan.params,
        "trained_on": {"date": job.date, "rows": plan.data.rows, "uri": plan.data.uri},
        "warm_start": warm_uri,
        "workers": cluster.workers,
        "seed": job.options.seed,
        "history": epochs[-1] if epochs else {},
        "tensorflow": tf_version,
        "dlflow_airflow": package_version(),
    }


def recorded_model_signature(model: Any) -> dict[str, Any] | None:
    """The manifest's signature (read by predict's driver instead of loading the model);
    None for a model predict cannot name the outputs of (predict then says why)."""
    try:
        return signature_of(model).to_dict()
    except SignatureError:
        return None


def head_entry(head: Head) -> dict[str, Any]:
    """A head as the manifest records it for evaluate and predict."""
    return {
        "name": head.name,
        "label": head.label,
        "kind": head.kind,
        "classes": list(head.classes),
    }


def label_entry(labels: Sequence[str]) -> dict[str, Any]:
    """The manifest's labels: ``label`` for a one-label model (as before), else ``labels``."""
    return {"label": labels[0]} if len(labels) == 1 else {"labels": list(labels)}


def commit_model(
    plan: TrainPlan, model: Any, epochs: list[dict[str, float]], manifest: dict[str, Any]
) -> None:
    """Write model, history and manifest to a staging folder and commit the model partition."""
    with committing(plan.output) as staging:
        model_io.save_model(model, staging)
        storage.write_text(f"{staging}/{HISTORY_FILE}", json.dumps({"epochs": epochs}, indent=1))
        storage.write_text(f"{staging}/{MANIFEST_FILE}", json.dumps(manifest, indent=1))


def warm_start_partition(job: JobConfig, model_date: str) -> str | None:
    """The model partition ``options.warm_start`` starts from (any complete one, blessed or not).

    ``none``: none; ``latest``: the newest model dated before this one (none is
    fine: training starts from scratch); a date: that model, which must exist.
    """
    warm_start = job.options.warm_start
    if warm_start == "none":
        return None
    if warm_start != "latest":
        return resolve_model_partition(
            job.layout, job.model.tag, warm_start, model_date, blessed_only=False
        ).uri
    before = (date.fromisoformat(model_date) - timedelta(days=1)).isoformat()
    try:
        return resolve_model_partition(
            job.layout, job.model.tag, "latest", before, blessed_only=False
        ).uri
    except ModelNotFoundError:
        print(f"warm start: no model of {job.model.tag} before {model_date}; from scratch")
        return None


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


def _history_rows(history: dict[str, list[float]]) -> list[dict[str, float]]:
    epochs = max((len(values) for values in history.values()), default=0)
    return [
        {"epoch": i + 1, **{name: float(values[i]) for name, values in history.items()}}
        for i in range(epochs)
    ]


def main(argv: Sequence[str] | None = None) -> None:
    run_job("train", run, argv)


if __name__ == "__main__":
    main()
