"""Training input throughput: our Parquet input and our TFRecord input vs in-memory tensors.

The same model (``dnn_binary_classifier``) is trained from each source for
``--epochs`` measured epochs (default: train's default epochs), after one
warm-up epoch that traces the graph. The clock also counts building the
dataset: our Parquet input (train's default ``in_memory_mb``) reads a
partition that fits in memory there, once. The first epoch is reported apart
for every contender. In-memory tensors are the ceiling:
numpy arrays already in memory before the clock starts. The goal is Parquet
>= 0.9x in-memory (the input is never the bottleneck), at the median of
``--repeat`` interleaved rounds (default 3). Shuffling is off so all do the
same work; the files read every epoch (``in_memory_mb: 0``, what a partition
too big for memory gets) and shuffled Parquet are further contenders.

    .venv/bin/python bench/train_input.py --rows 200000        # quick
    .venv/bin/python bench/train_input.py --rows 2000000       # full size
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from rounds import goal, report  # noqa: E402

from dlflow_airflow.contract.fmap import Bucket, Feature, FeatureMap  # noqa: E402
from dlflow_airflow.contract.models import TRAIN_DEFAULTS  # noqa: E402
from dlflow_airflow.contract.options import TrainOptions  # noqa: E402

NUMS = 16
CATEGORIES = (("city", 200), ("device", 20), ("hour", 25))
ITEM_CATEGORIES = (("category", 500), ("brand", 2000))


def make_fmap() -> FeatureMap:
    def ctgs(specs: tuple[tuple[str, int], ...]) -> tuple[Feature, ...]:
        features, offset = [], 0
        for name, size in specs:
            features.append(Feature(name=name, dtype="string", size=size, offset=offset))
            offset += size
        return tuple(features)

    user = Bucket(
        name="user",
        method="minmax",
        nums=tuple(Feature(name=f"n{i}", dtype="double", size=1, offset=i) for i in range(NUMS)),
        ctgs=ctgs(CATEGORIES),
    )
    item = Bucket(name="item", method="minmax", ctgs=ctgs(ITEM_CATEGORIES))
    return FeatureMap(
        feature_tag="bench",
        model_date="2026-01-01",
        primary_keys=("uid",),
        labels=("label",),
        buckets=(user, item),
    )


def make_table(rows: int, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)

    def ids(specs: tuple[tuple[str, int], ...]) -> np.ndarray:
        columns, offset = [], 0
        for _, size in specs:
            columns.append(offset + rng.integers(0, size, rows, dtype=np.int32))
            offset += size
        return np.stack(columns, axis=1)

    nums = rng.random((rows, NUMS), dtype=np.float32)
    user_ctgs, item_ctgs = ids(CATEGORIES), ids(ITEM_CATEGORIES)
    logit = 3 * (nums[:, 0] - 0.5) + np.where(user_ctgs[:, 0] % 3 == 0, 1.0, -1.0)
    label = (logit + rng.normal(0, 1, rows) > 0).astype(np.int64)
    return pa.table(
        {
            "uid": pa.array(np.arange(rows, dtype=np.int64)),
            "label": pa.array(label),
            "user_nums": _lists(nums, pa.float32()),
            "user_ctgs": _lists(user_ctgs, pa.int32()),
            "item_ctgs": _lists(item_ctgs, pa.int32()),
        }
    )


def _lists(values: np.ndarray, value_type: pa.DataType) -> pa.ListArray:
    rows, width = values.shape
    offsets = pa.array(np.arange(0, rows * width + 1, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1), type=value_type))


def write_inputs(table: pa.Table, root: Path, parts: int) -> tuple[str, str]:
    """The encoded Parquet partition and the TFRecord partition, as encode writes them."""
    from spark_jobs.tfrecord import ColumnSpec, frame_record, serialize_batch

    parquet, records = root / "encoded", root / "tfrecord"
    parquet.mkdir(parents=True)
    records.mkdir(parents=True)
    specs = [
        ColumnSpec("uid", "int64", False),
        ColumnSpec("label", "int64", False),
        ColumnSpec("user_nums", "float", True),
        ColumnSpec("user_ctgs", "int64", True),
        ColumnSpec("item_ctgs", "int64", True),
    ]
    step = -(-table.num_rows // parts)
    for i in range(parts):
        part = table.slice(i * step, step)
        pq.write_table(part, parquet / f"part-{i:05d}.snappy.parquet")
        with open(records / f"part-{i:05d}.tfrecord", "wb") as handle:
            for batch in part.to_batches(max_chunksize=65_536):
                handle.writelines(frame_record(r) for r in serialize_batch(batch, specs))
    for folder in (parquet, records):
        (folder / "_SUCCESS").touch()
    return f"file://{parquet}", f"file://{records}"


class EpochTimer:
    """Wall time of each epoch (a Keras callback, built lazily so keras loads after setup)."""

    @staticmethod
    def create():
        import keras

        class _Timer(keras.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.times: list[float] = []

            def on_epoch_begin(self, epoch, logs=None) -> None:
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None) -> None:
                self.times.append(time.perf_counter() - self._start)

        return _Timer()


def training_seconds(make, fmap: FeatureMap, params: dict, epochs: int) -> tuple[float, float]:
    """Seconds to build the dataset (``make``) plus ``epochs`` epochs of a fresh model,
    after a first epoch that traces the graph (not counted); and that first epoch's."""
    import keras

    from tf_jobs import models

    keras.utils.set_random_seed(7)
    spec = models.get_model("dnn_binary_classifier")
    model = models.build_model(spec, fmap, params)
    timer = EpochTimer.create()
    start = time.perf_counter()
    dataset = make()
    built = time.perf_counter() - start
    model.fit(dataset, epochs=1 + epochs, verbose=0, shuffle=False, callbacks=[timer])
    return built + sum(timer.times[1:]), timer.times[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--epochs", type=int, default=TRAIN_DEFAULTS["epochs"])
    args = parser.parse_args()

    fmap = make_fmap()
    table = make_table(args.rows)
    with tempfile.TemporaryDirectory(prefix="dlflow-bench-") as tmp:
        parquet_uri, tfrecord_uri = write_inputs(table, Path(tmp), args.parts)

        import tensorflow as tf

        from tf_jobs import inputs, models, tfrecord_input
        from tf_jobs.batches import inputs_from_arrow
        from tf_jobs.harness import configure_tensorflow
        from tf_jobs.heads import labels_from_arrow

        configure_tensorflow(None, 7)
        params = {
            **models.TRAIN_DEFAULTS,
            "batch_size": args.batch_size,
            "hidden_units": [64, 32],
            "embedding_dim": 8,
            "dropout": 0.0,
            "learning_rate": 0.001,
        }
        memory_mb = TrainOptions().in_memory_mb
        options = inputs.InputOptions(
            batch_size=args.batch_size, shuffle=False, memory_bytes=memory_mb * 2**20
        )
        streamed = inputs.InputOptions(batch_size=args.batch_size, shuffle=False)
        decoded = inputs.decoded_bytes(fmap, fmap.heads("binary"), args.rows) / 2**20
        print(
            f"{args.rows:,} rows ({decoded:,.0f} MiB decoded; in_memory_mb {memory_mb}), "
            f"batch {args.batch_size}, {args.parts} part files, {args.epochs} epochs, "
            f"{os.cpu_count()} CPUs, TF {tf.__version__}"
        )

        whole = pa.Table.from_batches(table.to_batches()).combine_chunks().to_batches()[0]
        labels = labels_from_arrow(whole, fmap.heads("binary"), by_head=False)
        tensors = (inputs_from_arrow(whole, fmap), labels)
        memory = tf.data.Dataset.from_tensor_slices(tensors).batch(args.batch_size).cache()

        heads = fmap.heads("binary")
        source = inputs.open_encoded(parquet_uri, fmap, heads)
        records = tfrecord_input.open_tfrecord(tfrecord_uri)
        shuffled = dataclasses.replace(options, shuffle=True, seed=7)

        def parquet(how: inputs.InputOptions):
            return lambda: inputs.make_dataset(
                source, fmap, heads, how, rows=args.rows, task="binary"
            )

        datasets = {
            "in-memory tensors": lambda: memory.prefetch(2),
            "parquet (ours)": parquet(options),
            "parquet, files read every epoch": parquet(streamed),
            "tfrecord (ours)": lambda: tfrecord_input.make_dataset(
                records, fmap, heads, streamed, rows=args.rows, task="binary"
            ),
            "parquet, shuffled": parquet(shuffled),
            "parquet, files every epoch, shuffled": parquet(
                dataclasses.replace(streamed, shuffle=True, seed=7)
            ),
        }
        # Interleaved rounds: each contender trains once per round, in turn.
        runs: dict[str, list[float]] = {name: [] for name in datasets}
        firsts: dict[str, list[float]] = {name: [] for name in datasets}
        for _ in range(args.repeat):
            for name, make in datasets.items():
                clocked, first = training_seconds(make, fmap, params, args.epochs)
                runs[name].append(clocked)
                firsts[name].append(first)
        print(f"first epoch (traces the graph), {args.rows:,} rows:")
        for name, seconds in firsts.items():
            report(f"  {name}", seconds)
        print(f"then {args.epochs} epochs (and building the dataset):")
        rows = args.rows * args.epochs
        medians = {name: report(name, seconds, rows) for name, seconds in runs.items()}

    memory_s = medians["in-memory tensors"]
    goal("parquet / in-memory", memory_s / medians["parquet (ours)"], at_least=0.9)
    for name in list(datasets)[2:]:
        print(f"{name + ' / in-memory:':<52} {memory_s / medians[name]:.2f}x")


if __name__ == "__main__":
    main()
