"""Training input: the encoded Parquet partition as a ``tf.data`` pipeline.

Parquet record batches are read with ``pyarrow.dataset`` and turned into
model inputs by :mod:`tf_jobs.batches` (vectorised, the same conversion Spark
predict uses). Shuffling and re-batching happen in numpy on whole Arrow
batches, so no Python code ever runs per row and ``tf.data`` only sees
ready-made training batches. A part file that cannot be read (truncated or
corrupt) is a :class:`CorruptFileError` naming the partition and the file.

Example::

    source = open_encoded(layout.encoded("ctr_v1", "2026-01-01"), fmap, "label")
    dataset = make_dataset(source, fmap, "label", InputOptions(batch_size=512, shuffle=True))
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

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
# What pyarrow raises for a file it cannot read (bad magic bytes, corrupt pages...).
READ_ERRORS: tuple[type[BaseException], ...] = (pa.ArrowException, OSError)


class EncodedDataError(ValueError):
    """The encoded partition is missing, incomplete, empty or does not fit the fmap."""


class CorruptFileError(EncodedDataError):
    """A part file of the encoded partition cannot be read (truncated or corrupt)."""

    def __init__(self, uri: str, file: str, reason: str) -> None:
        super().__init__(
            f"cannot read Parquet file {file} of encoded partition {uri}: {reason}. "
            "The file is truncated or corrupt: rerun encode for that date"
        )


def corrupt_file_message(text: str) -> str | None:
    """The :class:`CorruptFileError` message in a TensorFlow error's text, if any.

    ``tf.data`` runs :func:`iter_arrays` as a Python generator and reports what
    it raised as text inside its own error.
    """
    marker = f"{CorruptFileError.__name__}: "
    start = text.find(marker)
    if start < 0:
        return None
    return text[start + len(marker) :].splitlines()[0]


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

    :raises EncodedDataError: no ``_SUCCESS``, no part files, or missing columns;
        :class:`CorruptFileError` when the footer read for the schema fails.
    """
    if not storage.exists(uri):
        raise EncodedDataError(f"encoded partition {uri} does not exist; did encode run?")
    if not storage.is_complete(uri):
        raise EncodedDataError(
            f"encoded partition {uri} is not complete (no _SUCCESS marker); "
            "encode may still be running or has failed"
        )
    dataset = _dataset(uri)
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


def _dataset(uri: str) -> pads.Dataset:
    """The partition's part files as a dataset (its schema read from one footer)."""
    filesystem, path = storage.resolve(uri)
    try:
        return pads.dataset(
            path, filesystem=filesystem, format="parquet", ignore_prefixes=IGNORED_PREFIXES
        )
    except READ_ERRORS as exc:
        raise unreadable(uri, filesystem, _part_files(filesystem, path), [], exc) from None


def _part_files(filesystem: Any, path: str) -> list[str]:
    """The files under ``path`` a dataset reads (none under an ignored prefix)."""
    ignored = tuple(IGNORED_PREFIXES)
    files = []
    for info in filesystem.get_file_info(pafs.FileSelector(path, recursive=True)):
        parts = info.path[len(path) :].strip("/").split("/")
        if info.type == pafs.FileType.File and not any(p.startswith(ignored) for p in parts):
            files.append(info.path)
    return sorted(files)


def unreadable(
    uri: str, filesystem: Any, files: list[str], columns: list[str], exc: BaseException
) -> EncodedDataError:
    """The error for a failed read of ``files``: the first file whose footer (and
    ``columns``) cannot be read is named; else the partition and ``exc``."""
    for file in files:
        try:
            with filesystem.open_input_file(file) as handle:
                parquet = pq.ParquetFile(handle)  # reads the footer
                if columns:
                    for _ in parquet.iter_batches(columns=columns):
                        pass
        except READ_ERRORS as found:
            return CorruptFileError(uri, file, _first_line(found))
    return EncodedDataError(f"cannot read encoded partition {uri}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _fragment_batches(
    source: EncodedSource, fragment: pads.Fragment, columns: list[str]
) -> Iterator[pa.RecordBatch]:
    """One part file's record batches; a read failure is a :class:`CorruptFileError`."""
    try:
        yield from fragment.to_batches(columns=columns, batch_size=READ_BATCH_ROWS)
    except READ_ERRORS as exc:
        raise CorruptFileError(source.uri, fragment.path, _first_line(exc)) from None


def scan_labels(source: EncodedSource, label: str) -> LabelSummary:
    """Count rows and positives and collect distinct label values, reading one column.

    :raises CorruptFileError: a part file cannot be read.
    """
    try:
        return _scan_labels(source, label)
    except READ_ERRORS as exc:
        filesystem = source.dataset.filesystem
        raise unreadable(source.uri, filesystem, source.files, [label], exc) from None


def _scan_labels(source: EncodedSource, label: str) -> LabelSummary:
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

    :raises CorruptFileError: a part file cannot be read.
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
        for batch in _fragment_batches(source, fragment, columns):
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
