"""Predict: score the encoded table of one date with a trained model.

Reads ``layout.encoded(feature.tag, date)`` and the fmap of the model date;
the model is ``layout.model(model.tag, model_date)``, where ``model.date``
``latest`` means the newest committed model dated on or before the run's date.
Scoring runs in ``mapInArrow`` tasks: each Python worker loads the model once
and feeds it whole Arrow batches (``tf_jobs.batches.inputs_from_arrow``).
Output: primary keys + ``score`` at ``layout.predict(model.tag, date)``.

Options: ``batch_size`` (rows per Arrow batch, default 4096).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from dlflow_airflow import storage
from dlflow_airflow.fmap import FeatureMap
from dlflow_airflow.jobconf import JobConfig
from spark_jobs.paths import discard, latest_partition, require_complete
from spark_jobs.session import run_job
from tf_jobs.model_io import ModelNotFoundError, model_file_uri

log = logging.getLogger(__name__)

SCORE_COLUMN = "score"
DEFAULT_BATCH_SIZE = 4096

# One model per Python worker process, keyed by model partition URI.
_MODELS: dict[str, Any] = {}


class PredictError(ValueError):
    """The encoded data, fmap and model do not fit together, or scoring lost rows."""


# ---------------------------------------------------------------- on executors


def cached_model(model_uri: str) -> Any:
    """The model of ``model_uri``, loaded once per process."""
    if model_uri not in _MODELS:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from tf_jobs.model_io import load_model

        _MODELS.clear()
        log.info("loading model %s in process %d", model_uri, os.getpid())
        _MODELS[model_uri] = load_model(model_uri)
    return _MODELS[model_uri]


def score_batches(
    batches: Iterator[pa.RecordBatch],
    *,
    model_uri: str,
    fmap_json: str,
    keys: list[str],
    inputs: list[str],
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow`` body: keys + one float score per input row."""
    import numpy as np
    from keras import ops

    from tf_jobs.batches import inputs_from_arrow

    model = cached_model(model_uri)
    fmap = FeatureMap.from_json(fmap_json, source=model_uri)
    for batch in batches:
        if batch.num_rows == 0:
            continue
        features = inputs_from_arrow(batch, fmap)
        outputs = model({name: features[name] for name in inputs}, training=False)
        if isinstance(outputs, (dict, list, tuple)):
            raise PredictError(f"model {model_uri} returns several outputs; predict needs one")
        scores = np.asarray(ops.convert_to_numpy(outputs), dtype=np.float32).reshape(-1)
        if scores.size != batch.num_rows:
            raise PredictError(
                f"model {model_uri} returned {scores.size} values for {batch.num_rows} rows; "
                "predict needs one score per row"
            )
        # Keys pass through as Spark sent them (same Arrow types it expects back).
        columns = [batch.column(key) for key in keys] + [pa.array(scores, pa.float32())]
        yield pa.RecordBatch.from_arrays(columns, names=[*keys, SCORE_COLUMN])


# ---------------------------------------------------------------- on the driver


def resolve_model(job: JobConfig) -> tuple[str, str]:
    """(model partition URI, model date); ``latest`` picks the newest up to ``date``."""
    if job.model.date == "latest":
        root = job.layout.root("model", job.model.tag)
        partition = latest_partition(root, job.date)
        if partition is None:
            raise ModelNotFoundError(
                f"model.date is 'latest' but {root} has no committed model dated {job.date} "
                "or earlier (a model partition needs its _SUCCESS marker)"
            )
        return partition, partition.rsplit("dt=", 1)[1]
    model_date = job.model_date
    partition = job.layout.model(job.model.tag, model_date)
    if not storage.is_complete(partition) or not storage.exists(model_file_uri(partition)):
        raise ModelNotFoundError(
            f"no committed model at {model_file_uri(partition)} "
            f"(needs {partition}/_SUCCESS); train model {job.model.tag!r} for {model_date} first"
        )
    return partition, model_date


def model_inputs(model: Any, fmap: FeatureMap) -> dict[str, int | None]:
    """Input name -> last dimension, from the model (the fmap's inputs if it has none)."""
    tensors = getattr(model, "inputs", None) or []
    named = {getattr(t, "name", None): t for t in tensors}
    if not tensors or None in named:
        return {name: None for name in fmap.input_columns()}
    return {name: tensor.shape[-1] for name, tensor in named.items()}


def check_inputs(
    inputs: dict[str, int | None], fmap: FeatureMap, encoded: DataFrame, where: dict[str, str]
) -> None:
    """Every model input must be an encoded column of the fmap's width."""
    from tf_jobs.batches import input_specs

    specs = input_specs(fmap)
    for name, width in inputs.items():
        if name not in encoded.columns:
            raise PredictError(
                f"model {where['model']} needs input {name!r}, but the encoded table "
                f"{where['encoded']} has no such column (it has {encoded.columns})"
            )
        if name not in specs:
            raise PredictError(
                f"model {where['model']} needs input {name!r}, which fmap {where['fmap']} "
                f"does not define (it defines {list(specs)})"
            )
        if width is not None and width != specs[name][1]:
            raise PredictError(
                f"model input {name!r} is {width} wide, fmap {where['fmap']} makes it "
                f"{specs[name][1]}; the model was trained with another fmap"
            )


def score_frame(
    encoded: DataFrame, fmap: FeatureMap, model_uri: str, inputs: list[str]
) -> DataFrame:
    keys = list(fmap.primary_keys)
    key_fields = [encoded.schema[k] for k in keys]
    out_schema = T.StructType([*key_fields, T.StructField(SCORE_COLUMN, T.FloatType())])
    scorer = functools.partial(
        score_batches,
        model_uri=model_uri,
        fmap_json=fmap.to_json(),
        keys=keys,
        inputs=inputs,
    )
    return encoded.select(*keys, *inputs).mapInArrow(scorer, out_schema)


def run(spark: SparkSession, job: JobConfig) -> dict[str, Any]:
    batch_size = int(job.options.get("batch_size", DEFAULT_BATCH_SIZE))
    if batch_size < 1:
        raise PredictError(f"option batch_size must be at least 1, got {batch_size}")
    encoded_uri = job.layout.encoded(job.feature.tag, job.date)
    require_complete(encoded_uri, "predict input (encoded features; run encode first)")
    model_uri, model_date = resolve_model(job)
    femodel = job.layout.femodel(job.feature.tag, model_date)
    fmap = FeatureMap.load(femodel)
    encoded = spark.read.parquet(encoded_uri)
    missing_keys = [k for k in fmap.primary_keys if k not in encoded.columns]
    if missing_keys:
        raise PredictError(f"the encoded table {encoded_uri} has no key column(s) {missing_keys}")

    model = cached_model(model_uri)  # on the driver: fail early, learn the inputs
    inputs = model_inputs(model, fmap)
    where = {"model": model_uri, "encoded": encoded_uri, "fmap": femodel}
    check_inputs(inputs, fmap, encoded, where)

    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_size))
    final = job.layout.predict(job.model.tag, job.date)
    staging = storage.staging_uri(final)
    try:
        expected = encoded.count()
        score_frame(encoded, fmap, model_uri, list(inputs)).write.parquet(staging)
        rows = spark.read.parquet(staging).count()
        if rows != expected:
            raise PredictError(
                f"predict wrote {rows} rows for {expected} encoded rows; nothing committed"
            )
        storage.commit(staging, final)
    finally:
        discard(staging)
    log.info("scored %d rows with %s into %s", rows, model_uri, final)
    return {"rows": rows, "output": final, "model": model_uri}


def main(argv: list[str] | None = None) -> None:
    run_job("predict", run, argv)


if __name__ == "__main__":
    # Run through the importable module so executors unpickle score_batches by
    # reference and every task of a worker shares its cached model.
    from spark_jobs.predict import main as importable_main

    importable_main()
