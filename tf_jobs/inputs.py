"""Training input: the encoded Parquet partition as a ``tf.data`` pipeline.

Parquet record batches are read with ``pyarrow.dataset`` and turned into
model inputs by :mod:`tf_jobs.batches` (vectorised, the same conversion Spark
predict uses). Shuffling and re-batching happen in numpy on whole Arrow
batches, so no Python code ever runs per row and ``tf.data`` only sees
ready-made training batches.

Example::

    source = open_encoded(layout.encoded("ctr_v1", "2026-01-01"), fmap, "label")
    dataset = make_dataset(source, fmap, "label", InputOptions(batch_size=512, shuffle=True))
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.fmap import FeatureMap
from tf_jobs.batches import input_specs, inputs_from_arrow, labels_from_arrow

if TYPE_CHECKING:
    import tensorflow as tf

    from dlflow_airflow.contract.options import TfJobOptions

# Files Spark and Hadoop leave next to the part files (_SUCCESS, .crc, _temporary).
IGNORED_PREFIXES = ["_", "."]
# Rows per Arrow batch read from Parquet: large enough to amortise per-batch
# overhead, small enough to keep memory flat on wide tables.
READ_BATCH_ROWS = 65_536
# Training batches handed from Python to tf.data per generator call.
GROUP_BATCHES = 16


class EncodedDataError(ValueError):
    """The encoded partition is missing, incomplete, empty or does not fit the fmap."""


@dataclass(frozen=True)
class InputOptions:
    """How the partition is fed to the model.

    :param batch_size: rows per training batch.
    :param shuffle: shuffle part files and rows (training); False keeps the file order.
    :param shuffle_buffer: rows permuted together; bigger mixes better, costs memory.
    :param seed: makes the shuffle order reproducible (it still changes every epoch).
    """

    batch_size: int = 512
    shuffle: bool = False
    shuffle_buffer: int = 65_536
    seed: int = 0


@dataclass(frozen=True)
class EncodedSource:
    """An opened encoded partition: its URI, Arrow dataset and part files."""

    uri: str
    dataset: pads.Dataset

    @property
    def files(self) -> list[str]:
        return list(self.dataset.files)


@dataclass(frozen=True)
class LabelSummary:
    """Facts about the label column found by one columnar scan."""

    rows: int
    positives: float
    values: tuple[float, ...]  # distinct values, at most MAX_DISTINCT_LABELS of them


MAX_DISTINCT_LABELS = 20


def open_encoded(uri: str, fmap: FeatureMap, label: str | None = None) -> EncodedSource:
    """Open a complete encoded partition and check it has the fmap's columns.

    :raises EncodedDataError: no ``_SUCCESS``, no part files, or missing columns.
    """
    if not storage.exists(uri):
        raise EncodedDataError(f"encoded partition {uri} does not exist; did encode run?")
    if not storage.is_complete(uri):
        raise EncodedDataError(
            f"encoded partition {uri} is not complete (no _SUCCESS marker); "
            "encode may still be running or has failed"
        )
    filesystem, path = storage.resolve(uri)
    dataset = pads.dataset(
        path, filesystem=filesystem, format="parquet", ignore_prefixes=IGNORED_PREFIXES
    )
    if not dataset.files:
        raise EncodedDataError(f"encoded partition {uri} has no part files")
    wanted = [*input_specs(fmap), *([label] if label else [])]
    missing = [name for name in wanted if name not in dataset.schema.names]
    if missing:
        raise EncodedDataError(
            f"encoded partition {uri} lacks columns {missing} required by the fmap "
            f"of {fmap.feature_tag}/{fmap.model_date}; it has {dataset.schema.names}"
        )
    return EncodedSource(uri=uri, dataset=dataset)


def scan_labels(source: EncodedSource, label: str) -> LabelSummary:
    """Count rows and positives and collect distinct label values, reading one column."""
    rows = 0
    positives = 0.0
    values: set[float] = set()
    for batch in source.dataset.to_batches(columns=[label], batch_size=READ_BATCH_ROWS):
        column = batch.column(0)
        if column.null_count:
            raise EncodedDataError(
                f"label column {label!r} in {source.uri} has null values; "
                "rows without a label cannot be trained or evaluated"
            )
        rows += len(column)
        positives += float(pc.sum(column).as_py() or 0)
        if len(values) <= MAX_DISTINCT_LABELS:
            values.update(float(v) for v in pc.unique(column).to_pylist())
    return LabelSummary(rows=rows, positives=positives, values=tuple(sorted(values)))


def require_binary(summary: LabelSummary, label: str, uri: str) -> None:
    """A binary classifier learns from labels 0 and 1 only."""
    bad = [v for v in summary.values if v not in (0.0, 1.0)]
    if bad:
        shown = ", ".join(f"{v:g}" for v in bad[:MAX_DISTINCT_LABELS])
        raise EncodedDataError(
            f"label column {label!r} in {uri} has values other than 0 and 1 ({shown}); "
            "a binary classifier needs labels in {0, 1}"
        )


def iter_arrays(
    source: EncodedSource, fmap: FeatureMap, label: str, options: InputOptions, epoch: int = 0
) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
    """Yield (inputs, labels) numpy batches of exactly ``batch_size`` rows (the last may be short).

    With ``shuffle`` the part files are visited in a random order and rows are
    permuted inside windows of ``shuffle_buffer`` rows; ``epoch`` varies the
    order between epochs while keeping runs reproducible.
    """
    columns = [*input_specs(fmap), label]
    rng = np.random.default_rng([options.seed, epoch])
    fragments = list(source.dataset.get_fragments())
    if options.shuffle:
        fragments = [fragments[i] for i in rng.permutation(len(fragments))]
    # Rows gathered before emitting: a shuffle window, or just enough for one batch.
    window = max(options.shuffle_buffer if options.shuffle else 0, options.batch_size)

    pending: list[tuple[dict[str, np.ndarray], np.ndarray]] = []
    pending_rows = 0
    for fragment in fragments:
        for batch in fragment.to_batches(columns=columns, batch_size=READ_BATCH_ROWS):
            if not batch.num_rows:
                continue
            pending.append(_convert(batch, fmap, label))
            pending_rows += batch.num_rows
            if pending_rows >= window:
                chunk = _concat(pending)
                if options.shuffle:
                    chunk = _take(chunk, rng.permutation(len(chunk[1])))
                # Emit whole batches; the tail waits for the next Arrow batch.
                full = len(chunk[1]) - len(chunk[1]) % options.batch_size
                yield from _split(chunk, 0, full, options.batch_size)
                pending = [_take(chunk, slice(full, None))] if full < len(chunk[1]) else []
                pending_rows = len(chunk[1]) - full
    if pending_rows:
        chunk = _concat(pending)
        if options.shuffle:
            chunk = _take(chunk, rng.permutation(len(chunk[1])))
        yield from _split(chunk, 0, len(chunk[1]), options.batch_size)


def make_dataset(
    source: EncodedSource,
    fmap: FeatureMap,
    label: str,
    options: InputOptions,
    rows: int | None = None,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of ``(inputs dict, labels[:, 1])`` batches, prefetched.

    Each iteration (each Keras epoch) re-reads the partition with a new
    shuffle order. Pass ``rows`` (from :func:`scan_labels`) so Keras knows the
    number of steps per epoch.
    """
    import tensorflow as tf

    epochs = itertools.count()

    def generate() -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
        # from_generator calls this once per pass over the data, i.e. once per epoch.
        # Each yield carries a stack of up to GROUP_BATCHES batches: the
        # generator's per-element cost (a Python call under the GIL) is then
        # paid once per group, and unbatch() splits the stack in C++.
        batches = iter_arrays(source, fmap, label, options, epoch=next(epochs))
        group: list[tuple[dict[str, np.ndarray], np.ndarray]] = []
        for batch in batches:
            if group and len(batch[1]) != len(group[0][1]):
                yield _stack(group)
                group = []
            group.append(batch)
            if len(group) == GROUP_BATCHES:
                yield _stack(group)
                group = []
        if group:
            yield _stack(group)

    signature = (
        {
            name: tf.TensorSpec(shape=(None, None, width), dtype=tf.as_dtype(dtype), name=name)
            for name, (dtype, width) in input_specs(fmap).items()
        },
        tf.TensorSpec(shape=(None, None, 1), dtype=tf.float32),
    )
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature).unbatch()
    if rows is not None:
        # Exact by construction: iter_arrays emits ceil(rows / batch_size) batches.
        steps = math.ceil(rows / options.batch_size)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps))
    return dataset.prefetch(tf.data.AUTOTUNE)


def _stack(
    group: list[tuple[dict[str, np.ndarray], np.ndarray]],
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Batches of one size as arrays of shape (batches, rows, width)."""
    return (
        {name: np.stack([b[0][name] for b in group]) for name in group[0][0]},
        np.stack([b[1] for b in group]),
    )


def input_options(options: TfJobOptions, batch_size: int) -> InputOptions:
    """How a train or evaluate stage feeds its input (``shuffle``, ``shuffle_buffer``, ``seed``)."""
    return InputOptions(
        batch_size=batch_size,
        shuffle=options.shuffle,
        shuffle_buffer=options.shuffle_buffer,
        seed=options.seed,
    )


def single_label(labels: Sequence[str]) -> str:
    """The one label column a train or evaluate job reads (``feature.labels``)."""
    if len(labels) != 1:
        raise EncodedDataError(
            f"feature.labels must name exactly one label column to train or evaluate, "
            f"got {list(labels)}"
        )
    return labels[0]


def _convert(
    batch: pa.RecordBatch, fmap: FeatureMap, label: str
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    return inputs_from_arrow(batch, fmap), labels_from_arrow(batch, label).reshape(-1, 1)


def _concat(
    parts: list[tuple[dict[str, np.ndarray], np.ndarray]],
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    inputs = {name: np.concatenate([p[0][name] for p in parts]) for name in parts[0][0]}
    return inputs, np.concatenate([p[1] for p in parts])


def _take(
    chunk: tuple[dict[str, np.ndarray], np.ndarray], index: np.ndarray | slice
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    inputs, labels = chunk
    return {name: values[index] for name, values in inputs.items()}, labels[index]


def _split(
    chunk: tuple[dict[str, np.ndarray], np.ndarray], start: int, stop: int, size: int
) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
    for begin in range(start, stop, size):
        yield _take(chunk, slice(begin, min(begin + size, stop)))
