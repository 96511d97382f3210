"""Multi-worker training: the cluster from ``TF_CONFIG``, its strategy and input shards.

The local runner's ``workers: N`` starts N processes with one ``TF_CONFIG``
each; on Kubernetes an operator such as the Training Operator sets it the
same way. Every worker reads the input and keeps every N-th batch, and all
run the same number of steps (the collective all-reduce needs each worker
at every step).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from dlflow_airflow.contract.layout import Layout


@dataclass(frozen=True)
class Cluster:
    """This process's place in the training cluster (1 worker when there is no TF_CONFIG)."""

    workers: int = 1
    index: int = 0

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    @classmethod
    def from_env(cls) -> Cluster:
        raw = os.environ.get("TF_CONFIG")
        if not raw:
            return cls()
        config = json.loads(raw)
        workers = len(config.get("cluster", {}).get("worker", []))
        task = config.get("task", {})
        if task.get("type", "worker") != "worker":
            raise ValueError(
                f"TF_CONFIG task type {task.get('type')!r}: only workers are supported"
            )
        return cls(workers=max(workers, 1), index=int(task.get("index", 0)))


def strategy(cluster: Cluster) -> Any:
    """``MultiWorkerMirroredStrategy`` for a cluster, else the default strategy."""
    import tensorflow as tf

    if cluster.workers > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def shard(dataset: Any, cluster: Cluster, rows: int, batch_size: int) -> Any:
    """This worker's batches: every N-th one, the same count on every worker."""
    if cluster.workers == 1:
        return dataset
    import tensorflow as tf

    steps = -(-rows // batch_size) // cluster.workers
    if steps < 1:
        raise ValueError(
            f"{rows} rows make fewer batches of {batch_size} than there are workers "
            f"({cluster.workers}); lower batch_size or workers"
        )
    options = tf.data.Options()
    # The batches are already this worker's: do not let the strategy shard again.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    sharded = dataset.shard(cluster.workers, cluster.index).take(steps)
    sharded = sharded.apply(tf.data.experimental.assert_cardinality(steps))
    return sharded.with_options(options)


def checkpoint_root(layout: Layout, model_tag: str, model_date: str) -> str:
    """Where a model date's training checkpoints live until the model is committed."""
    return f"{layout.root('model', model_tag)}/_checkpoints/dt={model_date}"


def checkpoint_dir(layout: Layout, model_tag: str, model_date: str, cluster: Cluster) -> str:
    """This worker's checkpoint folder (one per worker when there are several)."""
    base = checkpoint_root(layout, model_tag, model_date)
    return f"{base}/worker-{cluster.index}" if cluster.workers > 1 else base


def fit_multi_worker(
    model: Any,
    dataset: Any,
    *,
    epochs: int,
    strategy: Any,
    checkpoints: str,
    every_steps: int,
) -> dict[str, list[float]]:
    """Train with a custom loop under ``MultiWorkerMirroredStrategy``; returns the history.

    Keras 3's ``fit`` cannot run under this strategy (it reduces dict inputs
    and scalar logs across replicas and fails), so the step is written out:
    per-replica loss, all-reduced gradients through the model's own
    optimizer. Weights are saved every ``every_steps`` steps and at each
    epoch end; a restarted worker resumes at the epoch it was in.
    """
    import keras
    import tensorflow as tf

    loss_fn = keras.losses.get(model.loss)
    optimizer = model.optimizer
    distributed = strategy.experimental_distribute_dataset(dataset)
    start_epoch = _restore(model, checkpoints)

    @tf.function
    def train_step(features: Any, labels: Any) -> Any:
        def replica_step(x: Any, y: Any) -> Any:
            with tf.GradientTape() as tape:
                predictions = model(x, training=True)
                per_row = tf.reshape(loss_fn(y, predictions), [-1])
                loss = tf.nn.compute_average_loss(per_row)
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
            return loss

        per_replica = strategy.run(replica_step, args=(features, labels))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    history: dict[str, list[float]] = {"loss": []}
    step = 0
    for epoch in range(start_epoch, epochs):
        total, batches = 0.0, 0
        for features, labels in distributed:
            total += float(train_step(features, labels))
            batches += 1
            step += 1
            if step % every_steps == 0:
                _save(model, checkpoints, epoch)
        _save(model, checkpoints, epoch + 1)
        history["loss"].append(total / max(batches, 1))
        print(f"Epoch {epoch + 1}/{epochs} - loss: {history['loss'][-1]:.4f}", flush=True)
    return history


def _save(model: Any, checkpoints: str, epoch: int) -> None:
    from dlflow_airflow.contract import storage

    folder = _local(checkpoints)
    os.makedirs(folder, exist_ok=True)
    model.save_weights(os.path.join(folder, "latest.weights.h5"))
    storage.write_text(f"{checkpoints}/epoch.json", json.dumps({"epoch": epoch}))


def _restore(model: Any, checkpoints: str) -> int:
    folder = _local(checkpoints)
    weights = os.path.join(folder, "latest.weights.h5")
    marker = os.path.join(folder, "epoch.json")
    if not (os.path.exists(weights) and os.path.exists(marker)):
        return 0
    model.load_weights(weights)
    with open(marker, encoding="utf-8") as handle:
        epoch = int(json.load(handle)["epoch"])
    print(f"resuming from checkpoint {folder} at epoch {epoch + 1}", flush=True)
    return epoch


def _local(uri: str) -> str:
    from dlflow_airflow.contract.layout import local_path

    return local_path(uri)
