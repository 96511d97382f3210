"""The input partition of a train or evaluate run: opened, checked, read as batches.

``options.input`` chooses encode's Parquet partition (``ENCODED_FEATURE``) or
its TFRecords (``TFRECORD_FEATURE``); which partition that is for the run is
the artifact contract's answer (:func:`~dlflow_airflow.contract.artifacts.stage_io`).

Example::

    heads = stage_heads(job, fmap, spec.task)
    data = open_stage_input(stage_io(job), job.options.input, fmap, heads,
                            task=spec.task, purpose="train on")
    with data.reading():
        model.fit(data.dataset(inputs.input_options(job.options, 512)))
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dlflow_airflow.contract.artifacts import ENCODED_FEATURE, TFRECORD_FEATURE, StageIO
from dlflow_airflow.contract.fmap import FeatureMap, FmapError
from dlflow_airflow.contract.jobconf import JobConfig
from dlflow_airflow.contract.tasks import Head, TaskError, label_kinds
from tf_jobs import inputs, tfrecord_input
from tf_jobs.inputs import EncodedDataError, EncodedSource, InputOptions, LabelSummary
from tf_jobs.models import ModelConfigError
from tf_jobs.tfrecord_input import TfRecordSource

if TYPE_CHECKING:
    import tensorflow as tf


@dataclass(frozen=True)
class StageInput:
    """An opened, non-empty input partition and what one scan of its labels found."""

    kind: str  # "parquet" or "tfrecord"
    source: EncodedSource | TfRecordSource
    fmap: FeatureMap
    heads: tuple[Head, ...]
    task: str
    summary: LabelSummary

    @property
    def uri(self) -> str:
        return self.source.uri

    @property
    def labels(self) -> list[str]:
        """The label columns read, in head order."""
        return [head.label for head in self.heads]

    @property
    def rows(self) -> int:
        return self.summary.rows

    def dataset(self, options: InputOptions) -> tf.data.Dataset:
        """``(inputs, labels)`` batches with a known step count, labels shaped for the task."""
        if isinstance(self.source, TfRecordSource):
            return tfrecord_input.make_dataset(
                self.source, self.fmap, self.heads, options, rows=self.rows, task=self.task
            )
        return inputs.make_dataset(
            self.source, self.fmap, self.heads, options, rows=self.rows, task=self.task
        )

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


def stage_heads(job: JobConfig, fmap: FeatureMap, task: str) -> list[Head]:
    """The heads a ``task`` model learns: the fmap's labels as it encoded them, checked
    against the job's ``feature.labels`` and ``model.heads``.

    :raises ModelConfigError: the job's labels or heads do not suit the task.
    :raises FmapError: the fmap was fitted for other labels, or encoded them for
        another task (refit it).
    """
    try:
        kinds = label_kinds(task, job.feature.labels, job.model.heads)
    except TaskError as exc:
        raise ModelConfigError(f"model {job.model.name!r}: {exc}") from None
    where = f"the fmap of {fmap.feature_tag}/{fmap.model_date}"
    try:
        heads = fmap.heads(task)
    except TaskError as exc:
        raise FmapError(f"{where}: {exc}") from None
    if [head.label for head in heads] != list(kinds):
        raise FmapError(
            f"{where} was fitted for labels {[h.label for h in heads]}, but feature.labels "
            f"are {list(kinds)}: refit the fmap (encode option refit: true)"
        )
    changed = [h.label for h in heads if h.kind != kinds[h.label]]
    if changed:
        raise FmapError(
            f"{where} encoded {', '.join(f'{h.label} as {h.kind}' for h in heads)}, but "
            f"model.heads reads {', '.join(f'{label} as {kinds[label]}' for label in changed)}: "
            "refit the fmap (encode option refit: true) after changing the model's heads"
        )
    return heads


def open_stage_input(
    io: StageIO,
    kind: str,
    fmap: FeatureMap,
    heads: Sequence[Head],
    *,
    task: str,
    purpose: str,
) -> StageInput:
    """Open the run's input partition and check it has rows a ``task`` model can use.

    :param kind: ``options.input``: ``parquet`` or ``tfrecord``.
    :param heads: what the model learns (:func:`stage_heads`).
    :param purpose: completes "has no rows to ..." in the empty-input error.
    :raises EncodedDataError: missing, incomplete, empty, or labels that do not fit
        their heads (see :func:`tf_jobs.inputs.check_labels`).
    """
    uri = io.get(TFRECORD_FEATURE if kind == "tfrecord" else ENCODED_FEATURE).uri
    encoded = io.get(ENCODED_FEATURE).uri if io.has(ENCODED_FEATURE) else uri
    return open_input(uri, kind, fmap, heads, task=task, purpose=purpose, encoded=encoded)


def open_input(
    uri: str,
    kind: str,
    fmap: FeatureMap,
    heads: Sequence[Head],
    *,
    task: str,
    purpose: str,
    encoded: str | None = None,
) -> StageInput:
    """Open one input partition (see :func:`open_stage_input`), e.g. the champion's rows.

    :param encoded: the encoded partition recording the label values the fmap did not
        know (default: ``uri`` itself, a Parquet partition).
    """
    source: EncodedSource | TfRecordSource
    if kind == "tfrecord":
        source = tfrecord_input.open_tfrecord(uri)
        summary = tfrecord_input.scan_labels(source, heads)
    else:
        source = inputs.open_encoded(uri, fmap, heads)
        summary = inputs.scan_labels(source, heads)
    if not summary.rows:
        raise EncodedDataError(f"encoded partition {source.uri} has no rows to {purpose}")
    inputs.check_labels(summary, heads, source.uri, encoded or uri)
    return StageInput(kind, source, fmap, tuple(heads), task, summary)
