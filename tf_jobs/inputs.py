"""Training input: the encoded Parquet partition as a ``tf.data`` pipeline.

Parquet record batches are read with ``pyarrow.dataset`` and turned into
model inputs by :mod:`tf_jobs.batches` (vectorised, the same conversion Spark
predict uses). Shuffling and re-batching happen in numpy on whole Arrow
batches, so no Python code ever runs per row and ``tf.data`` only sees
ready-made training batches. A part file that cannot be read (truncated or
corrupt) is a :class:`CorruptFileError` naming the partition and the file.

Labels are fed per the model's heads (:mod:`tf_jobs.heads`): ``(rows, 1)`` for
one head (int32 class indices for multiclass), ``(rows, n)`` for multilabel,
``{label: (rows, 1)}`` for multitask.

Example::

    heads = fmap.heads("binary")
    source = open_encoded(layout.encoded("ctr_v1", "2026-01-01"), fmap, heads)
    dataset = make_dataset(source, fmap, heads, InputOptions(batch_size=512, shuffle=True),
                           task="binary")
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.artifacts import ENCODING_FILE, unseen_labels_of
from dlflow_airflow.contract.fmap import FeatureMap
from dlflow_airflow.contract.tasks import BINARY, MULTICLASS, UNSEEN_CLASS, Head
from tf_jobs import heads as head_labels
from tf_jobs.batches import input_specs, inputs_from_arrow

if TYPE_CHECKING:
    import tensorflow as tf

    from dlflow_airflow.contract.options import TfJobOptions

log = logging.getLogger(__name__)

# Rows per Arrow batch read from Parquet: large enough to amortise per-batch
# overhead, small enough to keep memory flat on wide tables.
READ_BATCH_ROWS = 65_536
# What pyarrow raises for a file it cannot read (bad magic bytes, corrupt pages...).
READ_ERRORS: tuple[type[BaseException], ...] = (pa.ArrowException, OSError)

Labels = head_labels.Labels
Batch = tuple[dict[str, np.ndarray], Labels]
"""One batch: the model's inputs by name, and its labels (see :mod:`tf_jobs.heads`)."""


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

    ``tf.data`` runs :func:`iter_chunks` as a Python generator and reports what
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
    :param memory_bytes: :func:`make_dataset` reads a partition whose decoded rows take
        at most this many bytes once and serves every epoch from memory, shuffling all
        rows at once; a larger one (and any with 0) is read again each epoch.
    """

    batch_size: int = 512
    shuffle: bool = False
    shuffle_buffer: int = 65_536
    seed: int = 0
    memory_bytes: int = 0


@dataclass(frozen=True)
class EncodedSource:
    """An opened encoded partition: its URI, Arrow dataset and part files."""

    uri: str
    dataset: pads.Dataset

    @property
    def files(self) -> list[str]:
        return list(self.dataset.files)


@dataclass(frozen=True)
class LabelStats:
    """What one scan found in one label column.

    :param total: the sum of the labels (the positives of a 0/1 label).
    :param values: distinct values, at most :data:`MAX_DISTINCT_LABELS` of them.
    :param class_rows: multiclass: rows per class index ``0 .. classes - 1``.
    :param invalid: multiclass: ``(value, rows)`` of every value that is no class
        index (:data:`~dlflow_airflow.contract.tasks.UNSEEN_CLASS`, out of range, fractional).
    """

    label: str
    kind: str
    total: float
    values: tuple[float, ...]
    class_rows: tuple[int, ...] = ()
    invalid: tuple[tuple[float, int], ...] = ()


@dataclass(frozen=True)
class LabelSummary:
    """Facts about the label columns found by one columnar scan, one entry per head."""

    rows: int
    labels: tuple[LabelStats, ...]

    def of(self, label: str) -> LabelStats:
        return next(stats for stats in self.labels if stats.label == label)


MAX_DISTINCT_LABELS = 20


@dataclass
class LabelTally:
    """Accumulates :class:`LabelStats` over batches of label values (Parquet or TFRecord)."""

    heads: Sequence[Head]
    rows: int = 0
    totals: dict[str, float] = field(default_factory=dict)
    values: dict[str, set[float]] = field(default_factory=dict)
    class_rows: dict[str, np.ndarray] = field(default_factory=dict)
    invalid: dict[str, Counter[float]] = field(default_factory=dict)

    def add(self, columns: Mapping[str, np.ndarray]) -> None:
        """One batch: the values of every head's label column, flat, equally long."""
        for head in self.heads:
            values = np.asarray(columns[head.label], dtype=np.float64).reshape(-1)
            self.totals[head.label] = self.totals.get(head.label, 0.0) + float(values.sum())
            seen = self.values.setdefault(head.label, set())
            if len(seen) <= MAX_DISTINCT_LABELS:
                seen.update(np.unique(values).tolist())
            if head.kind == MULTICLASS:
                self._add_classes(head, values)
        self.rows += len(next(iter(columns.values()))) if columns else 0

    def _add_classes(self, head: Head, values: np.ndarray) -> None:
        valid = (values >= 0) & (values < head.width) & (values == np.floor(values))
        counts = np.bincount(values[valid].astype(np.int64), minlength=head.width)
        self.class_rows[head.label] = self.class_rows.get(head.label, 0) + counts
        if not valid.all():
            bad, rows = np.unique(values[~valid], return_counts=True)
            tally = self.invalid.setdefault(head.label, Counter())
            tally.update(dict(zip(bad.tolist(), rows.tolist(), strict=True)))

    def summary(self) -> LabelSummary:
        return LabelSummary(
            rows=self.rows,
            labels=tuple(
                LabelStats(
                    label=head.label,
                    kind=head.kind,
                    total=self.totals.get(head.label, 0.0),
                    values=tuple(sorted(self.values.get(head.label, ()))),
                    class_rows=tuple(int(n) for n in self.class_rows.get(head.label, ())),
                    invalid=tuple(sorted(self.invalid.get(head.label, Counter()).items())),
                )
                for head in self.heads
            ),
        )


def open_encoded(uri: str, fmap: FeatureMap, heads: Sequence[Head] = ()) -> EncodedSource:
    """Open a complete encoded partition and check it has the fmap's and the heads' columns.

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
    wanted = [*input_specs(fmap), *head_labels.label_columns(heads)]
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
            path,
            filesystem=filesystem,
            format="parquet",
            ignore_prefixes=list(storage.IGNORED_PREFIXES),
        )
    except READ_ERRORS as exc:
        raise unreadable(uri, filesystem, storage.part_files(filesystem, path), [], exc) from None


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


def scan_labels(source: EncodedSource, heads: Sequence[Head]) -> LabelSummary:
    """Count rows, sum and collect distinct values of every head's label column, reading
    those columns only; a multiclass head also counts its classes and invalid indices.

    :raises EncodedDataError: a label column has nulls, or is not numeric;
        :class:`CorruptFileError`: a part file cannot be read.
    """
    columns = head_labels.label_columns(heads)
    for name in columns:
        kind = source.dataset.schema.field(name).type
        if not (
            pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
        ):
            raise EncodedDataError(
                f"label column {name!r} in {source.uri} holds {kind}, not numbers; "
                "a label is encoded as a number (a multiclass label as its class index): "
                "rerun encode with an fmap fitted for this model's task (refit: true)"
            )
    try:
        return _scan_labels(source, heads, columns)
    except READ_ERRORS as exc:
        filesystem = source.dataset.filesystem
        raise unreadable(source.uri, filesystem, source.files, columns, exc) from None


def _scan_labels(source: EncodedSource, heads: Sequence[Head], columns: list[str]) -> LabelSummary:
    tally = LabelTally(heads)
    for batch in source.dataset.to_batches(columns=columns, batch_size=READ_BATCH_ROWS):
        for name in columns:
            if batch.column(name).null_count:
                raise EncodedDataError(
                    f"label column {name!r} in {source.uri} has null values; "
                    "rows without a label cannot be trained or evaluated"
                )
        tally.add({name: batch.column(name).to_numpy(zero_copy_only=False) for name in columns})
    return tally.summary()


def check_labels(summary: LabelSummary, heads: Sequence[Head], uri: str, encoded: str) -> None:
    """Every head's labels are what its kind learns: 0/1 for a binary head, a class index
    of the fmap's classes for a multiclass head (regression takes any number).

    :param uri: the scanned partition, named in the errors.
    :param encoded: the encoded partition whose :data:`ENCODING_FILE` counts the label
        values the fmap did not know (``unseen_labels``).
    :raises EncodedDataError: the first head whose labels do not fit.
    """
    for head in heads:
        stats = summary.of(head.label)
        if head.kind == BINARY:
            require_binary(stats, uri)
        elif head.kind == MULTICLASS:
            require_classes(stats, head, uri, encoded)


def require_binary(stats: LabelStats, uri: str) -> None:
    """A binary head learns from labels 0 and 1 only."""
    bad = [v for v in stats.values if v not in (0.0, 1.0)]
    if bad:
        shown = ", ".join(f"{v:g}" for v in bad[:MAX_DISTINCT_LABELS])
        raise EncodedDataError(
            f"label column {stats.label!r} in {uri} has values other than 0 and 1 ({shown}); "
            "a binary classifier needs labels in {0, 1}"
        )


def require_classes(stats: LabelStats, head: Head, uri: str, encoded: str) -> None:
    """A multiclass head learns class indices ``0 .. classes - 1`` (encode's)."""
    if not stats.invalid:
        return
    unseen = sum(rows for value, rows in stats.invalid if value == UNSEEN_CLASS)
    other = [(value, rows) for value, rows in stats.invalid if value != UNSEEN_CLASS]
    found = []
    if unseen:
        found.append(f"{unseen} rows hold a value the fmap did not see at fit")
    if other:
        shown = ", ".join(f"{v:g} ({n} rows)" for v, n in other[:MAX_DISTINCT_LABELS])
        found.append(f"{sum(n for _, n in other)} rows hold no class index ({shown})")
    record = f"{encoded}/{ENCODING_FILE}"
    counts = unseen_label_counts(encoded, head.label)
    where = (
        f"values: {', '.join(f'{v!r}: {n}' for v, n in counts.items())} (from {record})"
        if counts
        else f"per-value counts are in {record} under unseen_labels"
    )
    raise EncodedDataError(
        f"label column {head.label!r} in {uri}: {'; '.join(found)}; the fmap knows "
        f"{head.width} classes {list(head.classes)}; {where}. Refit the fmap (encode "
        "option refit: true) on data with every class, or filter those rows out in merge"
    )


def unseen_label_counts(encoded: str, label: str) -> dict[str, int]:
    """Rows per label value the fmap did not know, as encode recorded them (none: ``{}``)."""
    try:
        recorded = unseen_labels_of(encoded).get(label, {})
    except (OSError, ValueError):
        return {}  # the error being raised matters more than the record's counts
    return {str(value): int(rows) for value, rows in recorded.get("values", {}).items()}


def iter_arrays(
    source: EncodedSource,
    fmap: FeatureMap,
    heads: Sequence[Head],
    options: InputOptions,
    epoch: int = 0,
    *,
    task: str,
) -> Iterator[Batch]:
    """Yield (inputs, labels) numpy batches of exactly ``batch_size`` rows (the last may be short).

    Labels are shaped for a ``task`` model (:func:`tf_jobs.heads.labels_from_arrow`).
    With ``shuffle`` the part files are visited in a random order and rows are
    permuted inside windows of ``shuffle_buffer`` rows; ``epoch`` varies the
    order between epochs while keeping runs reproducible.

    :raises CorruptFileError: a part file cannot be read.
    """
    for chunk in iter_chunks(source, fmap, heads, options, epoch, task=task):
        yield from _split(chunk, 0, _rows(chunk), options.batch_size)


def iter_chunks(
    source: EncodedSource,
    fmap: FeatureMap,
    heads: Sequence[Head],
    options: InputOptions,
    epoch: int = 0,
    *,
    task: str,
) -> Iterator[Batch]:
    """The rows of :func:`iter_arrays`, in the same order, as chunks of whole batches:
    every chunk but the last holds a multiple of ``batch_size`` rows, so cutting each
    chunk into batches gives exactly :func:`iter_arrays`' batches.

    :raises CorruptFileError: a part file cannot be read.
    """
    columns = [*input_specs(fmap), *head_labels.label_columns(heads)]
    by_head = head_labels.by_head(task)
    rng = np.random.default_rng([options.seed, epoch])
    fragments = list(source.dataset.get_fragments())
    if options.shuffle:
        fragments = [fragments[i] for i in rng.permutation(len(fragments))]
    # Rows gathered before emitting: a shuffle window, or just enough for one batch.
    window = max(options.shuffle_buffer if options.shuffle else 0, options.batch_size)

    pending: list[Batch] = []
    pending_rows = 0
    for fragment in fragments:
        for batch in _fragment_batches(source, fragment, columns):
            if not batch.num_rows:
                continue
            pending.append(_convert(batch, fmap, heads, by_head))
            pending_rows += batch.num_rows
            if pending_rows >= window:
                chunk = _concat(pending)
                rows = _rows(chunk)
                if options.shuffle:
                    chunk = _take(chunk, rng.permutation(rows))
                # Emit whole batches; the tail waits for the next Arrow batch.
                full = rows - rows % options.batch_size
                yield _take(chunk, slice(0, full)) if full < rows else chunk
                pending = [_take(chunk, slice(full, None))] if full < rows else []
                pending_rows = rows - full
    if pending_rows:
        chunk = _concat(pending)
        if options.shuffle:
            chunk = _take(chunk, rng.permutation(_rows(chunk)))
        yield chunk


def make_dataset(
    source: EncodedSource,
    fmap: FeatureMap,
    heads: Sequence[Head],
    options: InputOptions,
    rows: int | None = None,
    *,
    task: str,
) -> tf.data.Dataset:
    """A ``tf.data.Dataset`` of ``(inputs dict, labels)`` batches for a ``task`` model, prefetched.

    Pass ``rows`` (from :func:`scan_labels`) so Keras knows the number of steps per
    epoch. A partition that fits ``options.memory_bytes`` (see :func:`decoded_bytes`)
    is read here, once, and every epoch is served from memory; otherwise each
    iteration (each Keras epoch) reads the files again, with a new shuffle order.
    """
    import tensorflow as tf

    size = decoded_bytes(fmap, heads, rows) if rows is not None else 0
    if rows is not None and 0 < size <= options.memory_bytes:
        log.info("%s: %d rows (%.0f MiB decoded) held in memory", source.uri, rows, size / 2**20)
        dataset = _memory_dataset(source, fmap, heads, options, rows, task=task)
    else:
        dataset = _streamed_dataset(source, fmap, heads, options, task=task)
    if rows is not None:
        # Exact by construction: rows rows cut into batch_size batches, the last short.
        steps = math.ceil(rows / options.batch_size)
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps))
    return dataset.prefetch(tf.data.AUTOTUNE)


def decoded_bytes(fmap: FeatureMap, heads: Sequence[Head], rows: int) -> int:
    """The memory ``rows`` rows of model inputs and labels take once decoded."""
    row = sum(dtype.itemsize * width for dtype, width in input_specs(fmap).values())
    row += sum(head_labels.label_dtype(head).itemsize for head in heads)
    return row * rows


def _streamed_dataset(
    source: EncodedSource,
    fmap: FeatureMap,
    heads: Sequence[Head],
    options: InputOptions,
    *,
    task: str,
) -> tf.data.Dataset:
    """The batches of :func:`iter_arrays`, the files read again on each iteration."""
    return _chunks(source, fmap, heads, options, task=task).rebatch(options.batch_size)


def _chunks(
    source: EncodedSource,
    fmap: FeatureMap,
    heads: Sequence[Head],
    options: InputOptions,
    *,
    task: str,
) -> tf.data.Dataset:
    """:func:`iter_chunks` as a dataset; each iteration reads the files (epoch by epoch)."""
    import tensorflow as tf

    epochs = itertools.count()

    def generate() -> Iterator[Batch]:
        # from_generator calls this once per pass over the data, i.e. once per epoch.
        # It yields whole chunks (tens of thousands of rows): the generator's
        # per-element cost (a Python call under the GIL, a copy into a tensor) is paid
        # once per chunk, and rebatch() cuts the chunks into batches in C++ with one
        # copy. The batches are iter_arrays' (rebatch is unbatch + batch).
        yield from iter_chunks(source, fmap, heads, options, epoch=next(epochs), task=task)

    signature = (
        {
            name: tf.TensorSpec(shape=(None, width), dtype=tf.as_dtype(dtype), name=name)
            for name, (dtype, width) in input_specs(fmap).items()
        },
        label_signature(heads, task),
    )
    return tf.data.Dataset.from_generator(generate, output_signature=signature)


def _memory_dataset(
    source: EncodedSource,
    fmap: FeatureMap,
    heads: Sequence[Head],
    options: InputOptions,
    rows: int,
    *,
    task: str,
) -> tf.data.Dataset:
    """The partition read now, once, and kept in memory as tensors.

    Unshuffled: the batches of :func:`iter_arrays`. Shuffled: each epoch a permutation
    of all rows (drawn from ``seed`` and the epoch), gathered in TensorFlow. No file is
    read and no Python runs per batch while training.
    """
    import tensorflow as tf

    in_order = dataclasses.replace(options, shuffle=False)
    held = _chunks(source, fmap, heads, in_order, task=task).cache()
    # Filled now: a cache is kept only once read to its end, and Keras ends an epoch
    # after its steps without reading on (the cache would be dropped every epoch).
    for _ in held:
        pass
    if not options.shuffle:
        return held.rebatch(options.batch_size)

    epochs = itertools.count()

    def permutation() -> Iterator[np.ndarray]:
        # Called once per iteration of the dataset, i.e. once per epoch.
        yield np.random.default_rng([options.seed, next(epochs)]).permutation(rows)

    def shuffled(order: tf.Tensor) -> tf.data.Dataset:
        # All rows as one element (the cache is shared by every epoch), gathered in
        # the epoch's order, then cut into batches.
        whole = held.rebatch(rows)
        return whole.map(
            lambda *data: tf.nest.map_structure(lambda tensor: tf.gather(tensor, order), data)
        ).rebatch(options.batch_size)

    orders = tf.data.Dataset.from_generator(
        permutation, output_signature=tf.TensorSpec(shape=(rows,), dtype=tf.int64)
    )
    return orders.flat_map(shuffled)


def label_signature(heads: Sequence[Head], task: str) -> Any:
    """The ``tf.TensorSpec`` (a dict of them for multitask) of a batch's labels."""
    import tensorflow as tf

    def spec(head: Head, width: int = 1) -> Any:
        return tf.TensorSpec(shape=(None, width), dtype=tf.as_dtype(head_labels.label_dtype(head)))

    if head_labels.by_head(task):
        return {head.name: spec(head) for head in heads}
    return spec(heads[0], 1 if len(heads) == 1 else len(heads))


def input_options(options: TfJobOptions, batch_size: int, memory_mb: int = 0) -> InputOptions:
    """How a train or evaluate stage feeds its input (``shuffle``, ``shuffle_buffer``,
    ``seed``); ``memory_mb``: the largest partition held in memory (train's ``in_memory_mb``)."""
    return InputOptions(
        batch_size=batch_size,
        shuffle=options.shuffle,
        shuffle_buffer=options.shuffle_buffer,
        seed=options.seed,
        memory_bytes=memory_mb * 2**20,
    )


def _convert(
    batch: pa.RecordBatch, fmap: FeatureMap, heads: Sequence[Head], by_head: bool
) -> Batch:
    return (
        inputs_from_arrow(batch, fmap),
        head_labels.labels_from_arrow(batch, heads, by_head=by_head),
    )


def _rows(chunk: Batch) -> int:
    labels = chunk[1]
    return len(next(iter(labels.values())) if isinstance(labels, dict) else labels)


def _join(parts: list[Labels], join: Any) -> Labels:
    """``join`` (np.concatenate, np.stack) of label arrays, or of each head's."""
    if isinstance(parts[0], dict):
        return {name: join([p[name] for p in parts]) for name in parts[0]}
    return join(parts)


def _concat(parts: list[Batch]) -> Batch:
    if len(parts) == 1:
        return parts[0]
    inputs = {name: np.concatenate([p[0][name] for p in parts]) for name in parts[0][0]}
    return inputs, _join([p[1] for p in parts], np.concatenate)


def _take(chunk: Batch, index: np.ndarray | slice) -> Batch:
    inputs, labels = chunk
    taken = (
        {name: values[index] for name, values in labels.items()}
        if isinstance(labels, dict)
        else labels[index]
    )
    return {name: values[index] for name, values in inputs.items()}, taken


def _split(chunk: Batch, start: int, stop: int, size: int) -> Iterator[Batch]:
    for begin in range(start, stop, size):
        yield _take(chunk, slice(begin, min(begin + size, stop)))
