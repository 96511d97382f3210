"""Labels and model outputs, head by head (see :mod:`dlflow_airflow.contract.tasks`).

The one place that knows how a task's labels are fed to Keras and how a
model's outputs split into heads, so train, evaluate and Spark predict agree:

- one head (binary, regression, multiclass): labels ``(rows, 1)``; the model's
  one output is the head (multiclass: ``(rows, classes)`` probabilities);
- multilabel: labels ``(rows, heads)`` stacked in label order; the model gives one
  ``(rows, heads)`` output, or one output per label named after it;
- multitask: labels ``{label: (rows, 1)}``; the model gives one output per label,
  named after it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from dlflow_airflow.contract.fmap import FmapError
from dlflow_airflow.contract.tasks import MULTICLASS, MULTITASK, Head

Labels = np.ndarray | dict[str, np.ndarray]


def label_columns(heads: Sequence[Head]) -> list[str]:
    """The encoded-table columns the heads learn, in order."""
    return [head.label for head in heads]


def by_head(task: str) -> bool:
    """Whether a ``task`` model's labels and outputs are dicts keyed by head (multitask)."""
    return task == MULTITASK


def label_dtype(head: Head) -> np.dtype:
    return np.dtype(np.int32) if head.kind == MULTICLASS else np.dtype(np.float32)


def column_values(batch: pa.RecordBatch, head: Head) -> np.ndarray:
    """One head's labels of an Arrow batch as ``(rows, 1)``; nulls are an error."""
    try:
        column = batch.column(head.label)
    except KeyError:
        raise FmapError(
            f"encoded data has no label column {head.label!r}; it has {batch.schema.names}"
        ) from None
    if column.null_count:
        raise FmapError(f"label column {head.label!r} has {column.null_count} null values")
    values = column.to_numpy(zero_copy_only=False)
    return values.astype(label_dtype(head), copy=False).reshape(-1, 1)


def labels_from_arrow(batch: pa.RecordBatch, heads: Sequence[Head], *, by_head: bool) -> Labels:
    """The labels of an Arrow batch as Keras takes them for ``heads``.

    :param by_head: a dict keyed by head name (multitask) instead of one array.
    """
    if by_head:
        return {head.name: column_values(batch, head) for head in heads}
    if len(heads) == 1:
        return column_values(batch, heads[0])
    return np.concatenate([column_values(batch, head) for head in heads], axis=1)


def split_labels(labels: Labels, heads: Sequence[Head]) -> dict[str, np.ndarray]:
    """Each head's labels as a flat array, from what :func:`labels_from_arrow` made."""
    if isinstance(labels, Mapping):
        return {head.name: np.asarray(labels[head.name]).reshape(-1) for head in heads}
    array = np.asarray(labels)
    if len(heads) == 1:
        return {heads[0].name: array.reshape(-1)}
    return {head.name: array[:, i] for i, head in enumerate(heads)}


def split_outputs(outputs: Any, heads: Sequence[Head]) -> dict[str, np.ndarray]:
    """Each head's predictions from a model's outputs (numpy, or a dict / list of them).

    A multiclass head keeps its ``(rows, classes)`` probabilities; every other
    head is flat ``(rows,)``.

    :raises FmapError: the outputs do not fit the heads (a count or width differs).
    """
    if isinstance(outputs, Mapping):
        missing = [head.name for head in heads if head.name not in outputs]
        if missing and len(outputs) == 1 and len(heads) == 1:
            (only,) = outputs.values()
            return {heads[0].name: _head_values(only, heads[0])}
        if missing:
            raise FmapError(
                f"the model has outputs {sorted(outputs)}, but its heads are "
                f"{[head.name for head in heads]}: name each output after its label"
            )
        return {head.name: _head_values(outputs[head.name], head) for head in heads}
    if isinstance(outputs, list | tuple):
        if len(outputs) != len(heads):
            raise FmapError(f"the model has {len(outputs)} outputs for {len(heads)} heads")
        return {h.name: _head_values(o, h) for h, o in zip(heads, outputs, strict=True)}
    array = np.asarray(outputs)
    if len(heads) == 1:
        return {heads[0].name: _head_values(array, heads[0])}
    array = array.reshape(array.shape[0], -1)
    if array.shape[1] != len(heads):
        raise FmapError(
            f"the model's one output has {array.shape[1]} columns for {len(heads)} heads "
            f"({', '.join(head.label for head in heads)})"
        )
    return {head.name: array[:, i] for i, head in enumerate(heads)}


def _head_values(values: Any, head: Head) -> np.ndarray:
    array = np.asarray(values)
    if head.kind != MULTICLASS:
        if array.ndim > 1 and array.shape[-1] != 1:
            raise FmapError(
                f"head {head.name!r} ({head.label}, {head.kind}) has {array.shape[-1]} values "
                "per row; expected 1"
            )
        return array.reshape(-1)
    array = array.reshape(array.shape[0], -1)
    if array.shape[1] != head.width:
        raise FmapError(
            f"head {head.name!r} ({head.label}) has {array.shape[1]} probabilities per row, "
            f"but the fmap knows {head.width} classes"
        )
    return array
