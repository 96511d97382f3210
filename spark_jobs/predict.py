"""Predict: score the encoded table of one date with a trained model.

Every partition comes from the artifact contract
(:func:`~dlflow_airflow.contract.artifacts.stage_io`): the ENCODED_FEATURE of
the run's date, the TRAINED_MODEL and FMAP of the model date
(:func:`~dlflow_airflow.contract.artifacts.model_date`: ``latest`` is the
newest blessed model dated on or before the run's date), and the
PREDICT_RESULT it writes.

Scoring runs in ``mapInArrow`` tasks, each reading one row group of the encoded
files with pyarrow (:mod:`spark_jobs.parquet_units`; Spark reads the table and
hands it over when pyarrow cannot, see :func:`predict`). Each Python worker loads
the model once (:func:`cached_scorer`) and keeps it for every later task of the job, since
Spark reuses its Python workers (in connect mode, for later jobs of the pipeline's
session too, until the model is committed anew); each Arrow batch goes to the model whole
(``tf_jobs.batches.inputs_from_arrow``), never row by row.

Output: the primary keys, the prediction columns, then the ``pass_through``
columns. The prediction columns key on the model's task (the manifest's
``task``; the model catalogue's for a model without one):

- binary, regression: one column per model output, named after it (``float``,
  or ``array<float>`` for an output wider than one). The built-in models have
  one output, ``score``; a user model's outputs keep their own names.
- multiclass, multilabel, multitask: one set of columns per head
  (:func:`~dlflow_airflow.contract.tasks.prediction_columns`): ``score_<label>``
  per binary or regression head; per multiclass head one probability column per
  class (``<label>_<class>``) and ``<label>_predicted``, the most probable class
  decoded to the label's own value (``string`` or ``bigint``). The model's
  outputs must fit the heads (:func:`tf_jobs.heads.split_outputs`).

A ``pass_through`` column that is a multiclass label (an int class index in the
encoded table) is decoded back to its class value; a value the fit never saw
(:data:`~dlflow_airflow.contract.tasks.UNSEEN_CLASS`) becomes null.

The driver checks the model's inputs and outputs against the fmap, the heads
and the encoded table before any task starts. The partition is committed only
when it holds exactly the input's rows.

Options: :class:`dlflow_airflow.contract.options.PredictOptions`.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from dlflow_airflow.contract import storage
from dlflow_airflow.contract.artifacts import (
    ENCODED_FEATURE,
    FMAP,
    PREDICT_RESULT,
    TRAINED_MODEL,
    gate_block,
    stage_io,
)
from dlflow_airflow.contract.fmap import FeatureMap, FmapError
from dlflow_airflow.contract.jobconf import JobConfig
from dlflow_airflow.contract.layout import SUCCESS_MARKER
from dlflow_airflow.contract.options import PredictOptions
from dlflow_airflow.contract.tasks import (
    BINARY,
    MULTICLASS,
    REGRESSION,
    UNSEEN_CLASS,
    Head,
    TaskError,
    prediction_columns,
)
from spark_jobs.feature_types import NUMERIC_TYPES
from spark_jobs.parquet_units import (
    UNIT_READ_MARKER,
    ParquetUnit,
    parquet_units,
    read_schema,
    read_unit,
    task_groups,
    written_rows,
)
from spark_jobs.paths import Staging, require_complete
from spark_jobs.read_errors import naming_bad_files
from spark_jobs.session import run_job
from tf_jobs.heads import split_outputs
from tf_jobs.model_io import ModelNotFoundError, model_file_uri, read_manifest, task_of
from tf_jobs.signature import (
    ModelOutput,
    Signature,
    SignatureError,
    recorded_signature,
    signature_of,
)

log = logging.getLogger(__name__)


class PredictError(ValueError):
    """The encoded data, fmap and model do not fit together, or scoring lost rows."""


def output_type(output: ModelOutput) -> T.DataType:
    """A model output's column type: ``float``, or ``array<float>`` when wider than one."""
    return T.FloatType() if output.width == 1 else T.ArrayType(T.FloatType(), False)


@dataclass(frozen=True)
class ClassValues:
    """A multiclass label's classes: index ``i`` decodes to ``classes[i]``,
    :data:`UNSEEN_CLASS` (and null) to null."""

    label: str
    classes: tuple[str | int, ...]

    @property
    def integers(self) -> bool:
        """Integer classes decode to ``bigint``, any other to ``string``."""
        return all(isinstance(c, int) and not isinstance(c, bool) for c in self.classes)

    def spark_type(self) -> T.DataType:
        return T.LongType() if self.integers else T.StringType()

    def decode(self, indices: pa.Array) -> pa.Array:
        """Class indices as the label's own values.

        :raises PredictError: an index the fmap has no class for (the table was
            encoded with another fmap).
        """
        import pyarrow.compute as pc

        unseen = pc.equal(indices, pa.scalar(UNSEEN_CLASS, indices.type))
        indices = pc.if_else(unseen, pa.scalar(None, indices.type), indices)
        bounds = pc.min_max(indices)
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        if low is not None and (low < 0 or high >= len(self.classes)):
            raise PredictError(
                f"label {self.label!r} holds class index {low if low < 0 else high}, but its "
                f"fmap knows {len(self.classes)} classes; the table was encoded with another fmap"
            )
        if self.integers:
            values = pa.array(self.classes, pa.int64())
        else:
            values = pa.array([str(c) for c in self.classes], pa.string())
        return values.take(indices)


def class_values(fmap: FeatureMap, columns: Sequence[str]) -> dict[str, ClassValues]:
    """The multiclass labels among ``columns``, which predict decodes."""
    found = {}
    for name in columns:
        encoding = fmap.label_encoding(name)
        if encoding is not None and encoding.kind == MULTICLASS:
            found[name] = ClassValues(name, encoding.classes)
    return found


class PredictionColumns(Protocol):
    """How a model's outputs become predict's columns (one class per way)."""

    @property
    def names(self) -> list[str]: ...

    def fields(self) -> list[T.StructField]: ...

    def arrays(self, values: list[np.ndarray], rows: int, model_uri: str) -> list[pa.Array]: ...


@dataclass(frozen=True)
class OutputColumns:
    """Binary and regression models: one column per model output, named after it."""

    outputs: tuple[ModelOutput, ...]

    @property
    def names(self) -> list[str]:
        return [out.name for out in self.outputs]

    def fields(self) -> list[T.StructField]:
        return [T.StructField(out.name, output_type(out)) for out in self.outputs]

    def arrays(self, values: list[np.ndarray], rows: int, model_uri: str) -> list[pa.Array]:
        return [
            output_array(v, out, rows, model_uri)
            for v, out in zip(values, self.outputs, strict=True)
        ]


@dataclass(frozen=True)
class HeadColumns:
    """Multiclass, multilabel and multitask models: the columns of each head
    (:func:`~dlflow_airflow.contract.tasks.prediction_columns`)."""

    outputs: tuple[ModelOutput, ...]
    heads: tuple[Head, ...]
    task: str

    @property
    def names(self) -> list[str]:
        return prediction_columns(self.heads, self.task)

    def fields(self) -> list[T.StructField]:
        types: list[T.DataType] = []
        for head in self.heads:
            types += [T.FloatType()] * head.width
            if head.kind == MULTICLASS:
                types.append(ClassValues(head.label, head.classes).spark_type())
        return [T.StructField(n, t) for n, t in zip(self.names, types, strict=True)]

    def split(self, values: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Each head's values; a model of several outputs is read by output name.

        :raises FmapError: the outputs do not fit the heads.
        """
        if len(values) == 1:
            return split_outputs(values[0], self.heads)
        return split_outputs(
            {out.name: v for out, v in zip(self.outputs, values, strict=True)}, self.heads
        )

    def arrays(self, values: list[np.ndarray], rows: int, model_uri: str) -> list[pa.Array]:
        by_head = self.split(values)
        arrays: list[pa.Array] = []
        for head in self.heads:
            head_values = np.asarray(by_head[head.name], np.float32)
            if head.kind != MULTICLASS:
                arrays.append(pa.array(head_values.reshape(-1)))
                continue
            arrays += [pa.array(np.ascontiguousarray(head_values[:, i])) for i in range(head.width)]
            predicted = pa.array(head_values.argmax(axis=1), pa.int32())
            arrays.append(ClassValues(head.label, head.classes).decode(predicted))
        return arrays


@dataclass(frozen=True)
class PredictIO:
    """The partitions of one run (from the artifact contract)."""

    encoded: str
    femodel: str
    model: str
    output: str


# ---------------------------------------------------------------- on executors


class Scorer:
    """A loaded model and its compiled forward pass, numpy in and numpy out."""

    def __init__(self, model: Any) -> None:
        import tensorflow as tf

        self.model = model
        self.outputs = model_signature(model).outputs
        # One traced graph for every batch size (the last batch is smaller).
        self._forward = tf.function(
            lambda inputs: model(inputs, training=False), reduce_retracing=True
        )

    def __call__(self, inputs: dict[str, Any]) -> list[Any]:
        import numpy as np

        result = self._forward(inputs)
        if isinstance(result, dict):
            values = [result[out.name] for out in self.outputs]
        elif isinstance(result, list | tuple):
            values = list(result)
        else:
            values = [result]
        if len(values) != len(self.outputs):
            raise PredictError(
                f"model returned {len(values)} outputs, its signature declares {len(self.outputs)}"
            )
        # .numpy() hands over the tensor's buffer; np.asarray(tensor) would go through __array__.
        return [np.asarray(value.numpy(), dtype=np.float32) for value in values]


# One scorer per Python worker process, keyed by model partition URI and commit stamp: a
# worker outlives the job in connect mode, and a model re-committed at the same URI is new.
_SCORERS: dict[tuple[str, Any], Scorer] = {}
# How many times this process loaded a model (tests check the reuse).
LOADS: list[str] = []


def _limit_tf_threads(threads: int) -> None:
    """Give TensorFlow ``threads`` threads in this worker, so tasks do not oversubscribe."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # TensorFlow already ran in this process; its pool is fixed


def cached_scorer(model_uri: str, tf_threads: int = 0, version: Any = None) -> Scorer:
    """The scorer of ``model_uri``, loaded once per process (and ``version``, the
    model's commit stamp)."""
    key = (model_uri, version)
    if key not in _SCORERS:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        if tf_threads:
            _limit_tf_threads(tf_threads)
        from tf_jobs.model_io import load_model

        _SCORERS.clear()
        log.info("loading model %s in process %d", model_uri, os.getpid())
        _SCORERS[key] = Scorer(load_model(model_uri))
        LOADS.append(model_uri)
    return _SCORERS[key]


def _task_cpus() -> int:
    from pyspark import TaskContext

    context = TaskContext.get()
    return context.cpus() if context is not None else 1


def output_array(values: Any, output: ModelOutput, rows: int, model_uri: str) -> pa.Array:
    """One model output as the Arrow column Spark expects (float or list<float>)."""
    if values.size != rows * output.width:
        raise PredictError(
            f"model {model_uri} output {output.name!r} has {values.size} values for {rows} rows; "
            f"expected {output.width} per row"
        )
    flat = pa.array(values.reshape(-1), pa.float32())
    if output.width == 1:
        return flat
    offsets = pa.array(range(0, rows * output.width + 1, output.width), pa.int32())
    return pa.ListArray.from_arrays(offsets, flat)


def score_batches(
    batches: Iterator[pa.RecordBatch],
    *,
    model_uri: str,
    fmap_json: str,
    keys: list[str],
    inputs: list[str],
    predictions: PredictionColumns,
    pass_through: list[str],
    tf_threads: int,
    model_version: Any = None,
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body: keys + prediction columns + pass-through columns per row."""
    from tf_jobs.batches import inputs_from_arrow

    scorer = cached_scorer(model_uri, tf_threads or _task_cpus(), model_version)
    fmap = FeatureMap.from_json(fmap_json, source=model_uri)
    decoded = class_values(fmap, pass_through)
    names = [*keys, *predictions.names, *pass_through]
    for batch in batches:
        rows = batch.num_rows
        if rows == 0:
            continue
        features = inputs_from_arrow(batch, fmap)
        values = scorer({name: features[name] for name in inputs})
        # Keys and pass-through columns go back as Spark sent them (the types it expects).
        columns = [batch.column(key) for key in keys]
        columns += predictions.arrays(values, rows, model_uri)
        columns += [
            decoded[name].decode(batch.column(name)) if name in decoded else batch.column(name)
            for name in pass_through
        ]
        yield pa.RecordBatch.from_arrays(columns, names=names)


# ---------------------------------------------------------------- on the driver


def predict_io(job: JobConfig) -> PredictIO:
    """The run's partitions, the encoded input and the model checked to be there.

    :raises ModelNotFoundError: ``latest`` finds no blessed model, or the model
        partition is incomplete or has no model file.
    """
    io = stage_io(job)
    paths = PredictIO(
        encoded=io.get(ENCODED_FEATURE).uri,
        femodel=io.get(FMAP).uri,
        model=io.get(TRAINED_MODEL).uri,
        output=io.get(PREDICT_RESULT).uri,
    )
    require_complete(paths.encoded, "predict input (encoded features; run encode first)")
    check_model(paths.model, job)
    blocked = gate_block(job, io)
    if blocked:
        raise PredictError(f"blocked by gate: {blocked}")
    return paths


def check_model(model_uri: str, job: JobConfig) -> None:
    """The model partition must be complete and hold its model file.

    Blessing is the gate's business (:func:`gate_block`): with an evaluate
    stage that has a gate, predict runs after it and refuses an unblessed model.
    """
    if not storage.is_complete(model_uri):
        raise ModelNotFoundError(
            f"no complete model at {model_uri} (model.date {job.model.date!r}, run date "
            f"{job.date}); did the train stage run for that date?"
        )
    if not storage.exists(model_file_uri(model_uri)):
        raise ModelNotFoundError(
            f"model partition {model_uri} is complete but has no {model_file_uri(model_uri)}"
        )


def model_signature(model: Any) -> Signature:
    """A loaded model's inputs and outputs, as :func:`tf_jobs.signature.signature_of` names them."""
    try:
        return signature_of(model)
    except SignatureError as exc:
        raise PredictError(str(exc)) from None


def read_signature(model_uri: str) -> Signature:
    """The model's signature from its manifest (no TensorFlow on the driver); a model
    trained before manifests recorded it is loaded to read it."""
    try:
        recorded = recorded_signature(read_manifest(model_uri))
    except ModelNotFoundError:
        recorded = None
    if recorded is not None:
        return recorded
    from tf_jobs.model_io import load_model

    log.info("model %s has no recorded signature: loading it on the driver", model_uri)
    return model_signature(load_model(model_uri))


def check_inputs(
    inputs: dict[str, int | None], fmap: FeatureMap, encoded: T.StructType, where: PredictIO
) -> None:
    """Every model input must be an encoded column of the fmap's width."""
    from tf_jobs.batches import input_specs

    specs = input_specs(fmap)
    for name, width in inputs.items():
        if name not in encoded.names:
            raise PredictError(
                f"model {where.model} needs input {name!r}, but the encoded table "
                f"{where.encoded} has no such column (it has {encoded.names})"
            )
        if name not in specs:
            raise PredictError(
                f"model {where.model} needs input {name!r}, which fmap {where.femodel} "
                f"does not define (it defines {list(specs)})"
            )
        if width is not None and width != specs[name][1]:
            raise PredictError(
                f"model input {name!r} is {width} wide, fmap {where.femodel} makes it "
                f"{specs[name][1]}; the model was trained with another fmap"
            )


def check_output_columns(
    keys: list[str], predictions: list[str], pass_through: list[str], encoded: T.StructType
) -> None:
    """Pass-through columns must exist, and no two output columns may share a name."""
    missing = [name for name in pass_through if name not in encoded.names]
    if missing:
        raise PredictError(
            f"option pass_through names {missing}, which the encoded table does not have "
            f"(it has {encoded.names})"
        )
    seen: dict[str, str] = {}
    for role, names in (
        ("primary key", keys),
        ("prediction column", predictions),
        ("pass-through column", pass_through),
    ):
        for name in names:
            if name in seen:
                raise PredictError(
                    f"output column {name!r} would be both a {seen[name]} and a {role}; "
                    "rename the model output (or the label) or drop it from pass_through"
                )
            seen[name] = role


def output_fields(
    encoded: T.StructType, fmap: FeatureMap, predictions: PredictionColumns, passed: list[str]
) -> list[T.StructField]:
    """The scored frame's fields: keys, prediction columns, pass-through columns."""
    decoded = class_values(fmap, passed)
    fields = [encoded[k] for k in fmap.primary_keys]
    fields += predictions.fields()
    fields += [
        T.StructField(name, decoded[name].spark_type()) if name in decoded else encoded[name]
        for name in passed
    ]
    return fields


def batch_scorer(
    fmap: FeatureMap,
    model_uri: str,
    inputs: list[str],
    predictions: PredictionColumns,
    options: PredictOptions,
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """:func:`score_batches` bound to this job (what each task runs on its batches)."""
    return functools.partial(
        score_batches,
        model_uri=model_uri,
        fmap_json=fmap.to_json(),
        keys=list(fmap.primary_keys),
        inputs=inputs,
        predictions=predictions,
        pass_through=list(options.pass_through),
        tf_threads=options.tf_threads,
        model_version=storage.modified(f"{model_uri}/{SUCCESS_MARKER}"),
    )


def score_frame(
    encoded: DataFrame,
    fmap: FeatureMap,
    model_uri: str,
    inputs: list[str],
    predictions: PredictionColumns,
    options: PredictOptions | None = None,
    read_rows: Observation | None = None,
) -> DataFrame:
    """``encoded`` scored in ``mapInArrow`` tasks: keys, predictions, pass-through columns.

    :param read_rows: observes ``rows``, the rows read, as the scored frame is computed.
    """
    options = options or PredictOptions()
    passed = list(options.pass_through)
    fields = output_fields(encoded.schema, fmap, predictions, passed)
    scorer = batch_scorer(fmap, model_uri, inputs, predictions, options)
    columns = list(dict.fromkeys([*fmap.primary_keys, *inputs, *passed]))
    selected = encoded.select(*columns)
    if read_rows is not None:
        selected = selected.observe(read_rows, F.count(F.lit(1)).alias("rows"))
    return selected.mapInArrow(scorer, T.StructType(fields))


# Types of key and pass-through columns a task reading the files hands back as Spark
# expects them (a cast at most); any other type is read through Spark.
FILE_READ_TYPES = (*NUMERIC_TYPES, T.StringType, T.BinaryType, T.DateType)


def score_files(
    spark: SparkSession,
    units: list[ParquetUnit],
    encoded: T.StructType,
    fmap: FeatureMap,
    model_uri: str,
    inputs: list[str],
    predictions: PredictionColumns,
    options: PredictOptions,
) -> DataFrame | None:
    """The scored frame of :func:`score_frame`, each task reading a group of row groups
    of the encoded files with pyarrow (:mod:`spark_jobs.parquet_units`); None when a key
    or pass-through column has a type the tasks do not hand back (read through Spark)."""
    from pyspark.sql.pandas.types import to_arrow_type

    passed = list(options.pass_through)
    carried = list(dict.fromkeys([*fmap.primary_keys, *passed]))
    other = [n for n in carried if not isinstance(encoded[n].dataType, FILE_READ_TYPES)]
    if other:
        log.info(
            "predict: Spark reads the encoded table (column(s) %s are of types the tasks "
            "reading the files do not hand back)",
            ", ".join(f"{n} {encoded[n].dataType.simpleString()}" for n in other),
        )
        return None
    types = {name: to_arrow_type(encoded[name].dataType) for name in carried}
    body = functools.partial(
        score_units,
        units=units,
        columns=list(dict.fromkeys([*carried, *inputs])),
        batch_size=options.batch_size,
        types=types,
        scorer=batch_scorer(fmap, model_uri, inputs, predictions, options),
    )
    fields = output_fields(encoded, fmap, predictions, passed)
    # One task per group of row groups: ids 0 .. n-1, one per partition.
    groups = task_groups(units)
    ids = spark.range(0, len(groups), 1, len(groups))
    return ids.mapInArrow(functools.partial(body, groups=groups), T.StructType(fields))


def score_units(
    batches: Iterator[pa.RecordBatch],
    *,
    groups: list[list[int]],
    units: list[ParquetUnit],
    columns: list[str],
    batch_size: int,
    types: dict[str, pa.DataType],
    scorer: Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]],
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body over group ids: read each group's units, score their batches."""

    def read() -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for group in batch.column(0).to_pylist():
                for index in groups[group]:
                    for found in read_unit(units[index], columns, batch_size):
                        yield _as_types(found, types)

    yield from scorer(read())


def _as_types(batch: pa.RecordBatch, types: dict[str, pa.DataType]) -> pa.RecordBatch:
    """``batch`` with the ``types`` columns cast to what Spark expects (when they differ)."""
    columns = list(batch.columns)
    for i, name in enumerate(batch.schema.names):
        wanted = types.get(name)
        if wanted is not None and columns[i].type != wanted:
            columns[i] = columns[i].cast(wanted)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def model_task(job: JobConfig, model_uri: str) -> str:
    """The model's task: its manifest's, else the catalogue's for ``model.name``
    (a model committed without a manifest)."""
    try:
        manifest = read_manifest(model_uri)
    except ModelNotFoundError:
        manifest = {}
    return task_of(manifest, job.model.name)


def prediction_layout(
    task: str, outputs: list[ModelOutput], fmap: FeatureMap, paths: PredictIO
) -> PredictionColumns:
    """How a ``task`` model's outputs become columns, its outputs checked against its heads.

    Binary and regression models keep one column per output; every other task
    writes its heads' columns, so its outputs must fit them (count, names, widths).

    :raises PredictError: the fmap's labels do not suit the task, or the outputs
        do not fit the heads.
    """
    if task in (BINARY, REGRESSION):
        return OutputColumns(tuple(outputs))
    try:
        heads = tuple(fmap.heads(task))
        prediction_columns(heads, task)  # two classes of one label may make one column name
    except TaskError as exc:
        raise PredictError(
            f"model {paths.model} ({task}) with fmap {paths.femodel}: {exc}"
        ) from None
    layout = HeadColumns(tuple(outputs), heads, task)
    # Outputs of one row each, split as the tasks will split every batch.
    probe = [np.zeros((1, out.width), np.float32) for out in outputs]
    try:
        layout.split(probe)
    except FmapError as exc:
        shapes = ", ".join(f"{out.name} ({out.width} wide)" for out in outputs)
        raise PredictError(
            f"model {paths.model} ({task}) has outputs {shapes}, which do not fit the heads "
            f"of fmap {paths.femodel}: {exc}"
        ) from None
    return layout


def check_model_fits(
    fmap: FeatureMap, encoded: T.StructType, paths: PredictIO, passed: list[str], task: str
) -> tuple[list[str], PredictionColumns]:
    """On the driver, before any task starts: the model's inputs and outputs, checked
    against the fmap, the ``task``'s heads and the encoded table."""
    keys = list(fmap.primary_keys)
    missing_keys = [k for k in keys if k not in encoded.names]
    if missing_keys:
        raise PredictError(f"the encoded table {paths.encoded} has no key column(s) {missing_keys}")
    signature = read_signature(paths.model)
    inputs = signature.inputs
    if inputs is None:  # a model that does not name its inputs takes the fmap's
        inputs = {name: None for name in fmap.input_columns()}
    check_inputs(inputs, fmap, encoded, paths)
    predictions = prediction_layout(task, list(signature.outputs), fmap, paths)
    check_output_columns(keys, predictions.names, passed, encoded)
    return list(inputs), predictions


def run(spark: SparkSession, job: JobConfig) -> dict[str, Any]:
    paths = predict_io(job)
    with naming_bad_files({paths.encoded: "predict input (encoded features)"}):
        return predict(spark, job, paths)


def predict(spark: SparkSession, job: JobConfig, paths: PredictIO) -> dict[str, Any]:
    """Score the encoded partition and commit exactly its rows; the job's result.

    The tasks read the encoded files with pyarrow when they can
    (:func:`score_files`); otherwise, or when a task cannot read a file, Spark reads
    the table and hands it over (:func:`score_frame`).
    """
    options: PredictOptions = job.options
    fmap = FeatureMap.load(paths.femodel)
    units = parquet_units(paths.encoded)
    # The schema from the files' footers when Spark wrote them, else from a Spark read.
    schema = read_schema(units) if units else None
    if schema is None:
        schema = spark.read.parquet(paths.encoded).schema
    task = model_task(job, paths.model)
    inputs, predictions = check_model_fits(fmap, schema, paths, list(options.pass_through), task)
    # Set for this job and put back after it: in connect mode the session is shared with
    # the pipeline's other Spark tasks.
    batch_conf = "spark.sql.execution.arrow.maxRecordsPerBatch"
    previous = spark.conf.get(batch_conf, None)
    spark.conf.set(batch_conf, str(options.batch_size))
    try:
        with Staging() as staging:
            folder = staging.folder(paths.output)
            scored = None
            if units:
                scored = score_files(
                    spark, units, schema, fmap, paths.model, inputs, predictions, options
                )
            expected: int | None = None
            if scored is not None:
                expected = sum(unit.rows for unit in units or [])
                try:
                    rows = write_counted(scored, folder)
                except Exception as exc:
                    if UNIT_READ_MARKER not in str(exc):
                        raise
                    log.warning(
                        "predict: a task could not read the encoded files with pyarrow (%s); "
                        "reading them through Spark instead",
                        _read_error_line(str(exc)),
                    )
                    expected = None
            if expected is None:
                # Rows in observed as they are read, rows out from the written footers:
                # one Spark job, no count before it and no read back after it.
                read = Observation("encoded")
                encoded = spark.read.parquet(paths.encoded)
                scored = score_frame(encoded, fmap, paths.model, inputs, predictions, options, read)
                # Overwrite: what the failed file tasks left in the folder goes.
                rows = write_counted(scored, folder, overwrite=True)
                expected = read.get["rows"]
            if expected == 0 and not options.allow_empty:
                raise PredictError(
                    f"the encoded partition {paths.encoded} has no rows; nothing to predict. "
                    "Set the predict option allow_empty: true to commit an empty prediction instead"
                )
            if rows != expected:
                raise PredictError(
                    f"predict wrote {rows} rows for {expected} encoded rows; nothing committed"
                )
            staging.commit()
    finally:
        if previous is None:
            spark.conf.unset(batch_conf)
        else:
            spark.conf.set(batch_conf, previous)
    log.info("scored %d rows with %s into %s", rows, paths.model, paths.output)
    return {"rows": rows, "output": paths.output, "model": paths.model, "columns": scored.columns}


def write_counted(scored: DataFrame, folder: str, *, overwrite: bool = False) -> int:
    """Write ``scored`` as Parquet into ``folder`` (a fresh staging folder, or one to
    ``overwrite``); the rows written (:func:`~spark_jobs.parquet_units.written_rows`)."""
    writer = scored.write
    # The default mode (error if it exists) unless told: Spark Connect's client takes
    # no "errorifexists" by name.
    (writer.mode("overwrite") if overwrite else writer).parquet(folder)
    return written_rows(scored.sparkSession, folder)[0]


def _read_error_line(text: str) -> str:
    """The line of a task's error that names the unreadable file."""
    line = next((line for line in text.splitlines() if UNIT_READ_MARKER in line), text)
    return line.strip()[:500]


def main(argv: list[str] | None = None) -> None:
    run_job("predict", run, argv)


if __name__ == "__main__":
    # Run through the importable module so executors unpickle score_batches by
    # reference and every task of a worker shares its cached model.
    from spark_jobs.predict import main as importable_main

    importable_main()
