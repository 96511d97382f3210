"""Labels at encode: checked against the model's task, fitted into the fmap, written.

How each label is written keys on the model's declared task
(:mod:`dlflow_airflow.contract.tasks`), never on its name:

- binary: 0 or 1 in every row (checked here: by a fit before it starts; with a
  reused fmap from the written files' statistics, or as the table is written,
  before anything is committed);
- regression: a number, written as it is;
- multiclass: a string or an integer; the fit records its classes with their
  row counts (:class:`~dlflow_airflow.contract.tasks.LabelEncoding` in the fmap)
  and encode writes each row's class index, :data:`UNSEEN_CLASS` for a value the
  fit never saw. Those values are counted (:func:`unseen_labels`) into the
  encoded partition's ``_ENCODING.json``, so evaluate's error can name them.
"""

from __future__ import annotations

import logging
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from dlflow_airflow.contract.fmap import FeatureMap
from dlflow_airflow.contract.jobconf import JobConfig
from dlflow_airflow.contract.models import get_model
from dlflow_airflow.contract.tasks import (
    BINARY,
    MAX_CLASSES,
    MULTICLASS,
    REGRESSION,
    UNSEEN_CLASS,
    LabelEncoding,
    TaskError,
    default_encodings,
    heads_of,
    label_kinds,
    prediction_columns,
)
from spark_jobs.columns import col, cols
from spark_jobs.feature_types import NUMERIC_TYPES, EncodeError

log = logging.getLogger(__name__)

INTEGER_TYPES = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
UNSEEN_SHOWN = 20
"""The most unseen values of one label counted one by one in ``_ENCODING.json``."""


def job_label_kinds(job: JobConfig) -> dict[str, str]:
    """How the job's model reads each label (``{}`` without labels).

    :raises EncodeError: the labels do not suit the model's task.
    """
    labels = job.feature.labels
    if not labels:
        return {}
    task = get_model(job.model.name).task
    try:
        return label_kinds(task, labels, job.model.heads)
    except TaskError as exc:
        raise EncodeError(f"model {job.model.name!r}: {exc}") from None


def check_labels(frame: DataFrame, job: JobConfig, source: str) -> None:
    """Every label's type suits its kind; binary labels are 0 or 1 in every row (one
    Spark action, only when the model has binary labels)."""
    bad = bad_binary_labels(frame, job, source)
    if bad is not None:
        raise_bad_binary_labels(frame, job, source, bad)


def binary_labels(job: JobConfig) -> list[str]:
    """The labels the job's model learns as binary (0 or 1)."""
    return [label for label, kind in job_label_kinds(job).items() if kind == BINARY]


def bad_binary_labels(
    frame: DataFrame, job: JobConfig, source: str, labels: list[str] | None = None
) -> Column | None:
    """Every label's type checked against its kind (no Spark job); the condition true
    for a row whose binary label (of ``labels``, default all) is not 0 or 1 (None:
    no such label).

    :raises EncodeError: a label whose type does not suit its kind.
    """
    kinds = job_label_kinds(job)
    types = {f.name: f.dataType for f in frame.schema.fields}
    for label, kind in kinds.items():
        _check_type(label, kind, types[label], source, job.model.name)
    binary = [label for label in binary_labels(job) if labels is None or label in labels]
    if not binary:
        return None
    bad = [~col(c).cast("double").isin(0.0, 1.0) | col(c).isNull() for c in binary]
    condition = bad[0]
    for more in bad[1:]:
        condition = condition | more
    return condition


def raise_bad_binary_labels(
    frame: DataFrame, job: JobConfig, source: str, bad: Column, found: str | None = None
) -> None:
    """Raise for the first rows where ``bad`` holds (:func:`bad_binary_labels`), if any.

    :param found: what an earlier pass found bad: raise with it even if the rows read
        now show none (the input changed in between).
    :raises EncodeError: naming up to three such rows' labels.
    """
    binary = binary_labels(job)
    sample = frame.where(bad).select(*cols(binary)).limit(3).collect()
    if sample or found:
        shown = f"e.g. {[row.asDict() for row in sample]}" if sample else found
        raise EncodeError(
            f"{source}: model {job.model.name!r} learns {binary} as binary labels, so they "
            f"must be 0 or 1 in every row; found {shown}"
        )


# Binary label types whose written values the Parquet statistics (min, max, nulls)
# prove to be 0 or 1: encode checks them from the written files' footers, with no
# work per row; other types (a double label may hold 0.5) are checked as written.
STATISTICS_TYPES = (T.BooleanType, *INTEGER_TYPES)


def split_binary_labels(frame: DataFrame, job: JobConfig) -> tuple[list[str], list[str]]:
    """The binary labels whose written values the file statistics check, and the rest."""
    types = {f.name: f.dataType for f in frame.schema.fields}
    binary = binary_labels(job)
    by_statistics = [c for c in binary if isinstance(types.get(c), STATISTICS_TYPES)]
    return by_statistics, [c for c in binary if c not in by_statistics]


def outside_statistics(footers: list[tuple[str, Any]], labels: list[str]) -> dict[str, str] | None:
    """The ``labels`` whose written values are not all 0 or 1 by the files' statistics
    (nulls, or a minimum or maximum outside 0..1), each with what its statistics show;
    None when a column chunk has no statistics to tell."""
    low: dict[str, int] = {}
    high: dict[str, int] = {}
    nulls = dict.fromkeys(labels, 0)
    for _, metadata in footers:
        for group in range(metadata.num_row_groups):
            chunks = metadata.row_group(group)
            by_name = {chunks.column(i).path_in_schema: i for i in range(chunks.num_columns)}
            for label in labels:
                chunk = chunks.column(by_name[label])
                stats = chunk.statistics
                if stats is None or not stats.has_null_count:
                    return None
                nulls[label] += stats.null_count
                if stats.has_min_max:
                    low[label] = min(int(stats.min), low.get(label, int(stats.min)))
                    high[label] = max(int(stats.max), high.get(label, int(stats.max)))
                elif stats.null_count < chunk.num_values:  # values, but no min and max
                    return None
    outside = {}
    for label in labels:
        if nulls[label] or low.get(label, 0) < 0 or high.get(label, 1) > 1:
            values = f", values from {low[label]} to {high[label]}" if label in low else ""
            outside[label] = f"{label!r}: {nulls[label]} null(s){values} in the written rows"
    return outside


def check_written_labels(
    frame: DataFrame,
    job: JobConfig,
    source: str,
    labels: list[str],
    footers: list[tuple[str, Any]] | None,
) -> None:
    """The binary ``labels`` (:func:`split_binary_labels`) are 0 or 1 in every row,
    by the statistics of the written files (``footers``; None: not read), else by a
    Spark pass over ``frame``.

    :raises EncodeError: naming the rows (or, when the input no longer shows them,
        what the statistics showed).
    """
    if not labels:
        return
    outside = None if footers is None else outside_statistics(footers, labels)
    if outside == {}:
        return
    bad = bad_binary_labels(frame, job, source, list(outside or labels))
    if bad is not None:
        raise_bad_binary_labels(
            frame, job, source, bad, "; ".join(outside.values()) if outside else None
        )


def _check_type(label: str, kind: str, data_type: T.DataType, source: str, model: str) -> None:
    if kind == MULTICLASS:
        if isinstance(data_type, (T.StringType, *INTEGER_TYPES)):
            return
        expected = "a string or an integer (a class)"
    elif isinstance(data_type, NUMERIC_TYPES):
        return
    else:
        expected = "a number" if kind == REGRESSION else "0 or 1"
    raise EncodeError(
        f"{source}: label {label!r} has type {data_type.simpleString()}; model {model!r} "
        f"reads it as a {kind} label, which must be {expected} (cast it in merge)"
    )


def fit_label_encodings(frame: DataFrame, job: JobConfig, source: str) -> tuple[LabelEncoding, ...]:
    """Each label's encoding for the fmap; a multiclass label's classes with their counts.

    :raises EncodeError: a multiclass label with more than :data:`MAX_CLASSES` values,
        or none.
    """
    encodings = []
    for label, kind in job_label_kinds(job).items():
        if kind != MULTICLASS:
            encodings.append(LabelEncoding(label, kind))
            continue
        counted = (
            frame.where(col(label).isNotNull())
            .groupBy(col(label).alias("value"))
            .count()
            .limit(MAX_CLASSES + 1)
            .collect()
        )
        if len(counted) > MAX_CLASSES:
            raise EncodeError(
                f"{source}: multiclass label {label!r} has more than {MAX_CLASSES} distinct "
                "values; is it an id? (a class label names few classes)"
            )
        if not counted:
            raise EncodeError(f"{source}: multiclass label {label!r} is null in every row")
        ordered = sorted((row["value"], int(row["count"])) for row in counted)
        encoding = LabelEncoding(
            label, MULTICLASS, tuple(v for v, _ in ordered), tuple(n for _, n in ordered)
        )
        if len(encoding.classes) < 2:
            raise EncodeError(
                f"{source}: multiclass label {label!r} has one class ({encoding.classes[0]!r}) "
                "in every row; a classifier needs at least two"
            )
        try:  # predict names a column after each class: two must not collide
            prediction_columns(heads_of(MULTICLASS, [encoding]), MULTICLASS)
        except TaskError as exc:
            raise EncodeError(f"{source}: label {label!r}: {exc}") from None
        encodings.append(encoding)
    return tuple(encodings)


def check_label_encodings(fmap: FeatureMap, job: JobConfig, source: str) -> None:
    """A reused fmap encodes the labels the way the job's model reads them.

    :raises EncodeError: the model's task or heads changed since the fit (refit).
    """
    kinds = job_label_kinds(job)
    task = get_model(job.model.name).task
    if not fmap.label_encodings and fmap.labels:  # fitted before labels were recorded
        older = {e.name: e.kind for e in default_encodings(fmap.labels, task)}
        if older != kinds:
            raise EncodeError(
                f"fmap {source} was fitted before label encodings were recorded: binary and "
                f"regression models read its labels as they are, a {task} model cannot; "
                "refit it (encode option refit: true, with a model date)"
            )
        return
    fitted = {e.name: e.kind for e in fmap.label_encodings}
    if fitted != kinds:
        raise EncodeError(
            f"fmap {source} encodes the labels as {fitted or 'nothing'}, but model "
            f"{job.model.name!r} reads them as {kinds}; refit it (encode option refit: true, "
            "with a model date) after changing the model's task or heads"
        )


def label_columns(fmap: FeatureMap) -> list[Column]:
    """The encoded table's label columns: as they are, a multiclass label as its class index."""
    columns = []
    for label in fmap.labels:
        encoding = fmap.label_encoding(label)
        if encoding is None or encoding.kind != MULTICLASS:
            columns.append(col(label))
            continue
        classes = F.array(*[F.lit(value) for value in encoding.classes])
        position = F.array_position(classes, col(label)).cast("int")  # 1-based, 0 unseen
        index = F.when(position == 0, F.lit(UNSEEN_CLASS)).otherwise(position - 1)
        columns.append(index.alias(label))
    return columns


def unseen_labels(frame: DataFrame, fmap: FeatureMap) -> dict[str, dict[str, Any]]:
    """Per multiclass label, the rows whose value the fit never saw and the most common
    such values (one Spark action per multiclass label; ``{}`` when there is none)."""
    found: dict[str, dict[str, Any]] = {}
    for encoding in fmap.label_encodings:
        if encoding.kind != MULTICLASS:
            continue
        known = col(encoding.name).isin(list(encoding.classes))
        unseen = frame.where(col(encoding.name).isNotNull() & ~known)
        top = (
            unseen.groupBy(col(encoding.name).alias("value"))
            .count()
            .orderBy(F.desc("count"), F.col("value"))
            .limit(UNSEEN_SHOWN)
            .collect()
        )
        if not top:
            continue
        shown = {str(row["value"]): int(row["count"]) for row in top}
        rows = sum(shown.values()) if len(top) < UNSEEN_SHOWN else unseen.count()
        found[encoding.name] = {"rows": rows, "values": shown}
        log.warning(
            "label %r: %d rows have a class the fmap does not know (e.g. %s); evaluate "
            "refuses them, predict scores them",
            encoding.name,
            rows,
            shown,
        )
    return found
