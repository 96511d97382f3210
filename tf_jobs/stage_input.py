"""The input partition of a train or evaluate run: opened, checked, read as batches.

``options.input`` chooses encode's Parquet partition (``ENCODED_FEATURE``) or
its TFRecords (``TFRECORD_FEATURE``); which partition that is for the run is
the artifact contract's answer (:func:`~dlflow_airflow.contract.artifacts.stage_io`).

Example::

    data = open_stage_input(stage_io(job), job.options.input, fmap, "label",
                            task=spec.task, purpose="train on")
    with data.reading():
        model.fit(data.dataset(inputs.input_options(job.options, 512)))
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dlflow_airflow.contract.artifacts import ENCODED_FEATURE, TFRECORD_FEATURE, StageIO
from dlflow_airflow.contract.fmap import FeatureMap
from tf_jobs import inputs, models, tfrecord_input
from tf_jobs.inputs import EncodedDataError, EncodedSource, InputOptions, LabelSummary
from tf_jobs.tfrecord_input import TfRecordSource

if TYPE_CHECKING:
    import tensorflow as tf


@dataclass(frozen=True)
class StageInput:
    """An opened, non-empty input partition and what one scan of its labels found."""

    kind: str  # "parquet" or "tfrecord"
    source: EncodedSource | TfRecordSource
    fmap: FeatureMap
    label: str
    summary: LabelSummary

    @property
    def uri(self) -> str:
        return self.source.uri

    @property
    def rows(self) -> int:
        return self.summary.rows

    def dataset(self, options: InputOptions) -> tf.data.Dataset:
        """``(inputs, labels)`` batches with a known step count."""
        if isinstance(self.source, TfRecordSource):
            return tfrecord_input.make_dataset(
                self.source, self.fmap, self.label, options, rows=self.rows
            )
        return inputs.make_dataset(self.source, self.fmap, self.label, options, rows=self.rows)

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Report a corrupt part file met while iterating as an :class:`EncodedDataError`
        (a TFRecord's data loss, or a Parquet file the input generator could not read)."""
        import tensorflow as tf

        try:
            yield
        except tf.errors.DataLossError as exc:
            raise EncodedDataError(f"corrupt input under {self.uri}: {exc.message}") from None
        except tf.errors.OpError as exc:
            message = inputs.corrupt_file_message(exc.message)
            if message is None:
                raise
            raise EncodedDataError(message) from None


def open_stage_input(
    io: StageIO, kind: str, fmap: FeatureMap, label: str, *, task: str, purpose: str
) -> StageInput:
    """Open the run's input partition and check it has rows a ``task`` model can use.

    :param kind: ``options.input``: ``parquet`` or ``tfrecord``.
    :param purpose: completes "has no rows to ..." in the empty-input error.
    :raises EncodedDataError: missing, incomplete, empty, or (binary task) labels not 0/1.
    """
    uri = io.get(TFRECORD_FEATURE if kind == "tfrecord" else ENCODED_FEATURE).uri
    return open_input(uri, kind, fmap, label, task=task, purpose=purpose)


def open_input(
    uri: str, kind: str, fmap: FeatureMap, label: str, *, task: str, purpose: str
) -> StageInput:
    """Open one input partition (see :func:`open_stage_input`), e.g. the champion's rows."""
    source: EncodedSource | TfRecordSource
    if kind == "tfrecord":
        source = tfrecord_input.open_tfrecord(uri)
        summary = tfrecord_input.scan_labels(source, label)
    else:
        source = inputs.open_encoded(uri, fmap, label)
        summary = inputs.scan_labels(source, label)
    if not summary.rows:
        raise EncodedDataError(f"encoded partition {source.uri} has no rows to {purpose}")
    if task == models.BINARY:
        inputs.require_binary(summary, label, source.uri)
    return StageInput(kind, source, fmap, label, summary)
